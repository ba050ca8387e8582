// Shared by the drivers: start Debian's Chromium through playwright-core (no browser
// download) and report what a test asserts on as one JSON line on stdout.
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// The flags python.md lists for this machine: without the background-networking ones
// Chromium keeps trying to reach Google and the closed network refuses it.
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Run `body(page, browser)` in a fresh headless Chromium; print its result as JSON. */
export async function withPage(body, { timeout = 20000 } = {}) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout });
  const console_ = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(timeout);
    page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
    const result = await body(page, browser);
    result.console = console_;
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (err) {
    process.stderr.write(`driver failed: ${err.stack || err}\nbrowser console:\n${console_.join("\n")}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** Poll `check()` (async, truthy = done) every `interval` ms until `timeout` ms pass. */
export async function waitFor(check, { timeout = 15000, interval = 100, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
