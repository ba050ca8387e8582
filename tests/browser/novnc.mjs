// noVNC in headless Chromium, connected through the proxy to a real Xvnc desktop.
//
//   node novnc.mjs PAGE_URL SHOT_DIR NAME SPEC_JSON
//
// SPEC_JSON: {"root": [x, y], "rootColour": [r, g, b], "terminal": [x, y, w, h],
//             "type": "green", "typedColour": [r, g, b]}  (framebuffer coordinates)
// Waits until the canvas shows the desktop (root colour at "root", a white terminal),
// clicks into the terminal, types, and waits for the terminal to show the text and, after
// Enter, for the root window to take the typed colour. Prints one JSON object.
import { withPage, waitFor } from "./chromium.mjs";

const [pageUrl, shotDir, name, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);

// Runs in the page: the largest canvas is noVNC's screen.
function snapshot([x, y, w, h]) {
  const canvases = [...document.querySelectorAll("canvas")];
  if (!canvases.length) return null;
  const canvas = canvases.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  if (canvas.width < x + w || canvas.height < y + h) return null;
  const ctx = canvas.getContext("2d");
  const region = Array.from(ctx.getImageData(x, y, w, h).data);
  const rect = canvas.getBoundingClientRect();
  return { width: canvas.width, height: canvas.height, region,
    rect: { left: rect.left, top: rect.top, width: rect.width, height: rect.height } };
}

const pixel = (snap, dx = 0, dy = 0, w = 1) => snap.region.slice((dy * w + dx) * 4, (dy * w + dx) * 4 + 3);
const near = (a, b, tolerance = 24) => a.every((v, i) => Math.abs(v - b[i]) <= tolerance);
const differing = (a, b) => {
  let n = 0;
  for (let i = 0; i < a.region.length; i += 4) {
    if (a.region[i] !== b.region[i] || a.region[i + 1] !== b.region[i + 1] || a.region[i + 2] !== b.region[i + 2]) n += 1;
  }
  return n;
};
const whiteShare = (snap) => {
  let n = 0;
  for (let i = 0; i < snap.region.length; i += 4) if (snap.region[i] > 240 && snap.region[i + 1] > 240 && snap.region[i + 2] > 240) n += 1;
  return n / (snap.region.length / 4);
};

await withPage(async (page) => {
  const out = {};
  const [rx, ry] = spec.root;
  const term = spec.terminal;
  await page.goto(pageUrl);
  const root = () => page.evaluate(snapshot, [rx, ry, 1, 1]);
  const terminal = () => page.evaluate(snapshot, term);
  // The desktop is drawn: root colour where no window is, a white terminal.
  const first = await waitFor(async () => {
    const r = await root();
    const t = await terminal();
    return r && t && near(pixel(r), spec.rootColour) && whiteShare(t) > 0.5 ? { r, t } : null;
  }, { timeout: 30000, what: "the remote desktop on the canvas" });
  out.canvas = [first.r.width, first.r.height];
  out.rootBefore = pixel(first.r);
  out.terminalWhiteShare = whiteShare(first.t);
  await page.screenshot({ path: `${shotDir}/${name}-connected.png` });

  // Click into the terminal (pointer focus), then type.
  const rect = first.r.rect;
  const scaleX = rect.width / first.r.width;
  const scaleY = rect.height / first.r.height;
  await page.mouse.click(rect.left + (term[0] + term[2] / 2) * scaleX, rect.top + (term[1] + term[3] / 2) * scaleY);
  const beforeTyping = await terminal();
  await page.keyboard.type(spec.type, { delay: 40 });
  const typed = await waitFor(async () => {
    const t = await terminal();
    const n = differing(beforeTyping, t);
    return n > 30 ? { t, n } : null;
  }, { timeout: 15000, what: "the typed text in the terminal" });
  out.terminalPixelsChanged = typed.n;
  await page.screenshot({ path: `${shotDir}/${name}-typed.png` });
  await page.keyboard.press("Enter");
  const after = await waitFor(async () => {
    const r = await root();
    return r && near(pixel(r), spec.typedColour) ? r : null;
  }, { timeout: 15000, what: "the root window in the typed colour" });
  out.rootAfter = pixel(after);
  await page.screenshot({ path: `${shotDir}/${name}-after-enter.png` });
  return out;
});
