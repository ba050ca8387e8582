// The JS client library (proxy/serve/static/websockify.js) against a TCP echo target, in Node
// (with the ws package) or in headless Chromium (imported from the --diagnostics path).
//
//   node library.mjs node LIBRARY_FILE ECHO_WS_URL REFUSED_WS_URL DEAD_WS_URL
//   node library.mjs chromium LIBRARY_URL ECHO_WS_URL REFUSED_WS_URL DEAD_WS_URL SHOT_DIR
//
// Prints one JSON object of observations; tests/integration/test_browser.py asserts on it.
import { pathToFileURL } from "node:url";

// Runs where the library runs: in Node, or in the page (passed as source to evaluate()).
async function scenario(mod, urls, WebSocket) {
  const out = {};
  const client = new mod.WebsockifyClient(urls.echo, { WebSocket });
  const opened = await client.open();
  out.protocol = opened.protocol;
  client.send(new Uint8Array([1, 2, 3, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]));
  out.first = Array.from(await client.read(3));
  await client.queue.wait(6, { timeout: 5000 });
  out.u16 = client.queue.u16();
  out.u32 = client.queue.u32();
  client.sendText("h\u00e9llo\nworld\n");
  await client.queue.wait(13, { timeout: 5000 });
  out.lines = [client.queue.line(), client.queue.line(), client.queue.line()];
  client.send(new Uint8Array([9, 8, 7]).buffer);
  out.arrayBuffer = Array.from(await client.read(3, { timeout: 5000 }));
  const big = new Uint8Array(300 * 1024);
  for (let i = 0; i < big.length; i += 1) big[i] = (i * 7 + (i >> 9)) & 255;
  client.send(big);
  const back = await client.read(big.length, { timeout: 10000 });
  out.bigEqual = back.length === big.length && back.every((b, i) => b === big[i]);
  out.bigMessages = client.messagesReceived;
  out.bytesSent = client.bytesSent;
  out.bytesReceived = client.bytesReceived;
  const closed = new Promise((resolve) => client.on("close", resolve));
  client.close(1000, "bye");
  const event = await closed;
  out.close = { code: event.code, reason: event.reason, wasClean: event.wasClean,
    willReconnect: event.willReconnect, explanation: event.explanation };
  out.readAfterClose = await client.read(1).then(() => "resolved", (e) => e.name);

  // A target that refuses: each connection opens, then closes 1011; two reconnects.
  const events = [];
  const retrying = new mod.WebsockifyClient(urls.refused, { WebSocket, reconnect: true,
    minDelay: 50, maxDelay: 200, maxRetries: 2 });
  for (const type of ["open", "close", "reconnecting"]) {
    retrying.on(type, (e) => events.push({ type, code: e.code, reason: e.reason,
      willReconnect: e.willReconnect, attempt: e.attempt, explanation: e.explanation }));
  }
  const gaveUp = new Promise((resolve) => retrying.on("close", (e) => { if (!e.willReconnect) resolve(); }));
  retrying.open().catch(() => {});
  await gaveUp;
  out.reconnect = events;

  // Nothing listens: the WebSocket never opens (1006).
  const dead = new mod.WebsockifyClient(urls.dead, { WebSocket });
  out.dead = await dead.open().then(() => ({ opened: true }),
    (e) => ({ opened: false, code: e.code, message: e.message }));
  out.explain = {
    textRefused: mod.explainClose(1003, "Unsupported: Text frames are not supported"),
    shutdown: mod.explainClose(1001, "Server shutting down"),
    app: mod.explainClose(4001, "custom"),
  };
  return out;
}

const [mode, library, echo, refused, dead, shotDir] = process.argv.slice(2);
const urls = { echo, refused, dead };

if (mode === "node") {
  const { WebSocket } = await import("ws");
  const mod = await import(pathToFileURL(library).href);
  try {
    const out = await scenario(mod, urls, WebSocket);
    process.stdout.write(JSON.stringify(out) + "\n");
  } catch (err) {
    process.stderr.write(`scenario failed: ${err.stack || err}\n`);
    process.exitCode = 1;
  }
} else {
  const { withPage } = await import("./chromium.mjs");
  await withPage(async (page) => {
    // A page of the proxy's origin, so the module import is same-origin.
    await page.goto(new URL("config.json", library).href);
    const out = await page.evaluate(async ([source, moduleUrl, urls]) => {
      const mod = await import(moduleUrl);
      const run = (0, eval)(`(${source})`);
      return run(mod, urls, undefined);
    }, [scenario.toString(), library, urls]);
    if (shotDir) await page.screenshot({ path: `${shotDir}/library.png` });
    return out;
  });
}
