// Usage: node client.mjs URL BINARY_HEX TEXT
// Connects with subprotocol "binary", sends BINARY_HEX as one binary message and TEXT as one
// text message, collects what comes back until it has as many bytes as it sent, closes with
// 1000, and prints one JSON object per line: open, message..., close. Exits 0 on success,
// 1 on error or after 10 s.
import WebSocket from "ws";

const [url, binaryHex, text] = process.argv.slice(2);
if (url === undefined || binaryHex === undefined || text === undefined) {
  console.error("usage: node client.mjs URL BINARY_HEX TEXT");
  process.exit(2);
}
const binary = Buffer.from(binaryHex, "hex");
const expected = binary.length + Buffer.byteLength(text, "utf8");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const timer = setTimeout(() => {
  out({ event: "timeout" });
  process.exit(1);
}, 10000);

const ws = new WebSocket(url, ["binary"]);
let received = 0;

ws.on("open", () => {
  out({ event: "open", protocol: ws.protocol });
  ws.send(binary, { binary: true });
  ws.send(text);
});

ws.on("message", (data, isBinary) => {
  const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  received += buf.length;
  out({ event: "message", binary: isBinary, hex: buf.toString("hex") });
  if (received >= expected) {
    ws.close(1000, "bye");
  }
});

ws.on("close", (code, reason) => {
  out({ event: "close", code, reason: reason.toString("utf8") });
  clearTimeout(timer);
  process.exit(0);
});

ws.on("error", (err) => {
  out({ event: "error", message: String(err && err.message) });
  clearTimeout(timer);
  process.exit(1);
});
