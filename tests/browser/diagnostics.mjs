// The --diagnostics page in headless Chromium.
//
//   node diagnostics.mjs ECHO_PAGE_URL REFUSED_PAGE_URL SHOT_DIR
//
// ECHO_PAGE_URL is the page of a proxy in front of a TCP echo server: it connects
// (?connect=1), waits for round-trip times and a drawn chart, runs the throughput test and
// disconnects. REFUSED_PAGE_URL is the page of a proxy whose target refuses connections:
// the close must be explained in words. Prints one JSON object of observations.
import { withPage, waitFor } from "./chromium.mjs";

const [echoPage, refusedPage, shotDir] = process.argv.slice(2);
const text = (page, id) => page.$eval(`#${id}`, (el) => el.textContent);

// Pixels of the chart near each line colour (anti-aliasing blurs the exact values).
function chartPixels() {
  const canvas = document.getElementById("chart");
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const colours = { rtt: [214, 39, 40], down: [31, 119, 180], up: [44, 160, 44] };
  const counts = { rtt: 0, down: 0, up: 0, white: 0 };
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r === 255 && g === 255 && b === 255) counts.white += 1;
    for (const [name, [cr, cg, cb]] of Object.entries(colours)) {
      if (Math.abs(r - cr) + Math.abs(g - cg) + Math.abs(b - cb) < 40) counts[name] += 1;
    }
  }
  counts.total = data.length / 4;
  return counts;
}

await withPage(async (page) => {
  const out = {};
  await page.goto(`${echoPage}?connect=1`);
  out.target = await text(page, "target");
  await waitFor(async () => (await text(page, "state")) === "open", { what: "state open" });
  out.chartBefore = await page.evaluate(chartPixels);
  await waitFor(() => page.evaluate(() => window.diagnostics.samples.filter((s) => s.rtt !== null).length >= 3),
    { timeout: 20000, what: "3 seconds of round-trip samples" });
  out.kind = await text(page, "kind");
  out.rtt = await text(page, "rtt");
  out.rttStats = await text(page, "rtt-stats");
  out.rtts = await page.evaluate(() => window.diagnostics.rtts.length);
  out.chart = await page.evaluate(chartPixels);
  await page.click("#burst");
  await waitFor(async () => (await text(page, "log")).includes("throughput test: 1 MiB echoed"),
    { timeout: 30000, what: "the throughput test" });
  await waitFor(() => page.evaluate(() => window.diagnostics.samples.some((s) => s.down > 512 * 1024)),
    { timeout: 5000, what: "a throughput sample" });
  out.chartAfterBurst = await page.evaluate(chartPixels);
  out.received = await text(page, "received");
  out.sent = await text(page, "sent");
  await page.screenshot({ path: `${shotDir}/diagnostics-echo.png`, fullPage: true });
  await page.click("#disconnect");
  await waitFor(async () => (await text(page, "state")) === "closed", { what: "state closed" });
  out.closeCode = await text(page, "close-code");
  out.closeReason = await text(page, "close-reason");
  out.explanation = await text(page, "explanation");
  out.log = await text(page, "log");

  await page.goto(`${refusedPage}?connect=1`);
  await waitFor(async () => (await text(page, "state")) === "closed", { what: "the refused close" });
  out.refused = {
    closeCode: await text(page, "close-code"),
    closeReason: await text(page, "close-reason"),
    explanation: await text(page, "explanation"),
  };
  await page.screenshot({ path: `${shotDir}/diagnostics-refused.png`, fullPage: true });
  return out;
});
