// The Sessions view of the --diagnostics page in headless Chromium (issue #21).
//
//   node sessions.mjs PAGE_URL USER PASSWORD SHOT_DIR
//
// Two sessions are open when it starts (the Python test holds their clients). It signs
// in, waits for both rows, sorts by id both ways, closes the first row from the page and
// waits until one row is left. Prints one JSON object of observations.
import { withPage, waitFor } from "./chromium.mjs";

const [pageUrl, user, password, shotDir] = process.argv.slice(2);

const rows = (page) => page.$$eval("#sessions tbody tr", (trs) => trs.map((tr) => ({
  id: Number(tr.dataset.id),
  peerPort: Number(tr.dataset.peerPort),
  cells: [...tr.cells].map((td) => td.textContent),
})));

// Blue pixels in a row's sparkline (the line is #1f77b4).
const sparkPixels = (page, id) => page.$eval(`#sessions tr[data-id="${id}"] canvas.spark`, (canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && data[i + 2] > 120) n += 1;
  return n;
});

await withPage(async (page) => {
  const out = {};
  await page.goto(pageUrl);
  await waitFor(() => page.evaluate(() => !document.getElementById("sessions-view").hidden),
    { what: "the Sessions view" });
  await page.fill("#admin-user", user);
  await page.fill("#admin-password", "wrong");
  await page.click("#admin-watch");
  await waitFor(async () => (await page.textContent("#sessions-status")).startsWith("401"),
    { what: "the 401 of wrong credentials" });
  out.refused = await page.textContent("#sessions-status");
  await page.fill("#admin-password", password);
  await page.click("#admin-watch");
  await waitFor(async () => (await rows(page)).length === 2, { what: "two sessions" });
  out.status = await page.textContent("#sessions-status");
  out.headings = await page.$$eval("#sessions thead th", (ths) => ths.map((th) => th.textContent));
  out.before = await rows(page);
  // The sparkline needs two refreshes with bytes moving between them; the test's
  // clients send once a refresh, so wait for a drawn line.
  await waitFor(async () => (await sparkPixels(page, out.before[0].id)) > 0,
    { timeout: 10000, what: "a drawn sparkline" });
  out.spark = await sparkPixels(page, out.before[0].id);
  await page.click('#sessions th[data-key="id"]'); // already by id: now descending
  out.descending = (await rows(page)).map((r) => r.id);
  await page.click('#sessions th[data-key="id"]');
  out.ascending = (await rows(page)).map((r) => r.id);
  await page.screenshot({ path: `${shotDir}/sessions.png`, fullPage: true });
  const closing = out.ascending[0];
  await page.click(`#sessions tr[data-id="${closing}"] button.close-session`);
  await waitFor(async () => (await rows(page)).length === 1, { what: "one session left" });
  out.closed = closing;
  out.after = await rows(page);
  out.closedFromPage = await page.evaluate(() => window.sessionsView.closed);
  return out;
});
