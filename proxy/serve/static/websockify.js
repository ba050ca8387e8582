// websockify.js: a small, dependency-free ES module for talking to a websockify proxy
// (this project's or the original) from a browser or from Node.js 18+.
//
//   import { WebsockifyClient } from "./websockify.js";
//   const client = new WebsockifyClient("ws://127.0.0.1:6080/", { reconnect: true });
//   client.on("close", (e) => console.log(e.explanation));
//   await client.open();
//   client.sendText("hello\n");
//   const reply = await client.read(5);           // Uint8Array of 5 bytes
//
// The proxy relays bytes, not messages: one WebSocket message may carry part of what the
// target wrote, or several writes. `client.queue` (a ByteQueue) collects everything
// received, so a protocol parser can wait for and take exactly N bytes, u8/u16/u32, text
// or a line. Node.js before 22 has no global WebSocket: pass `{ WebSocket }` from the `ws`
// package (or install `ws` where this file can import it).

/** Close codes, as websockify and this proxy use them, explained in words. */
export const CLOSE_CODES = Object.freeze({
  1000: "Normal closure",
  1001: "Going away",
  1002: "Protocol error",
  1003: "Unsupported data",
  1005: "No status code",
  1006: "Abnormal closure (no close frame)",
  1007: "Invalid data",
  1008: "Policy violation",
  1009: "Message too big",
  1011: "Internal error",
  1015: "TLS handshake failure",
});

/**
 * A sentence explaining a close: what websockify meant by the code and reason, and what
 * to check next. `opened` is whether the WebSocket was open before it closed.
 */
export function explainClose(code, reason = "", opened = true) {
  reason = reason || "";
  switch (code) {
    case 1000:
      if (reason === "Target closed") {
        return "The target closed its TCP connection; the proxy ended the WebSocket normally.";
      }
      return "The connection was closed normally" + (reason ? ` (${reason}).` : ".");
    case 1001:
      return reason === "Server shutting down"
        ? "The proxy is shutting down (restart or stop); reconnect later."
        : "The other side went away" + (reason ? ` (${reason}).` : ".");
    case 1002:
      return `The proxy found a WebSocket protocol error in what this client sent: ${reason || "no reason given"}.`;
    case 1003:
      return reason.startsWith("Unsupported: Text frames")
        ? "The proxy refuses text messages (websockify's behaviour, or --text-frames reject): send binary data."
        : `The proxy does not support what was sent: ${reason || "no reason given"}.`;
    case 1005:
      return "The connection was closed without a status code.";
    case 1006:
      if (!opened) {
        return "The WebSocket never opened. The proxy refused the handshake or nothing answered: " +
          "check the URL and port, the token (websockify closes without an answer on a missing or " +
          "unknown token), authentication (401/403), the subprotocol and ws:// versus wss://.";
      }
      return "The connection dropped without a close frame: the network, the proxy process or a " +
        "load balancer in between ended it.";
    case 1007:
      return "The proxy received invalid data (for example a text message that is not UTF-8).";
    case 1008:
      return `The proxy's policy rejected the connection: ${reason || "no reason given"}.`;
    case 1009:
      return "A message was larger than the proxy accepts (its maximum message size).";
    case 1011:
      if (reason === "Failed to connect to downstream server") {
        return "The proxy accepted the WebSocket but could not connect to the target: the TCP " +
          "connection was refused, timed out or the host is unreachable. Check that the target " +
          "service runs at the configured host and port.";
      }
      return `The proxy hit an internal error: ${reason || "no reason given"}.`;
    case 1015:
      return "The TLS handshake failed (certificate not trusted, or wss:// to a plain port).";
    default:
      if (code >= 4000 && code <= 4999) {
        return `Closed by the application with code ${code}` + (reason ? `: ${reason}.` : ".");
      }
      return `Closed with code ${code}` + (reason ? `: ${reason}.` : ".");
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes of a message or of data to send, as a Uint8Array (strings are UTF-8). */
export function toBytes(data) {
  if (typeof data === "string") return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && typeof data.byteLength === "number") return new Uint8Array(data);
  throw new TypeError("expected a string, an ArrayBuffer or a typed array");
}

/** The queue was closed while a reader waited (the connection ended). */
export class QueueClosedError extends Error {
  constructor(message = "connection closed") {
    super(message);
    this.name = "QueueClosedError";
  }
}

/** A FIFO of received bytes with readers for protocol parsers. */
export class ByteQueue {
  constructor() {
    this._chunks = [];
    this._offset = 0; // consumed bytes of _chunks[0]
    this._length = 0;
    this._waiters = [];
    this._error = null;
  }

  /** Bytes available now. */
  get length() {
    return this._length;
  }

  /** Append bytes (a Uint8Array, ArrayBuffer or string); wakes readers. */
  push(data) {
    const bytes = toBytes(data);
    if (bytes.byteLength === 0) return;
    this._chunks.push(bytes);
    this._length += bytes.byteLength;
    this._wake();
  }

  /** Drop everything and forget a previous close (a new connection starts). */
  reset() {
    this._chunks = [];
    this._offset = 0;
    this._length = 0;
    this._error = null;
  }

  /** Reject every waiting reader (and later ones, until reset) with `error`. */
  close(error = new QueueClosedError()) {
    this._error = error;
    this._wake();
  }

  /** Resolve when at least `n` bytes are available; reject if the queue closes first. */
  wait(n, { timeout = 0 } = {}) {
    if (this._length >= n) return Promise.resolve();
    if (this._error) return Promise.reject(this._error);
    return new Promise((resolve, reject) => {
      const waiter = { n, resolve, reject, timer: null };
      if (timeout > 0) {
        waiter.timer = setTimeout(() => {
          this._waiters = this._waiters.filter((w) => w !== waiter);
          reject(new Error(`timed out waiting for ${n} bytes (${this._length} available)`));
        }, timeout);
      }
      this._waiters.push(waiter);
    });
  }

  /** A copy of the first `n` bytes, left in the queue. */
  peek(n) {
    this._need(n);
    const out = new Uint8Array(n);
    let filled = 0;
    let offset = this._offset;
    for (const chunk of this._chunks) {
      if (filled === n) break;
      const take = Math.min(n - filled, chunk.byteLength - offset);
      out.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset = 0;
    }
    return out;
  }

  /** Remove and return the first `n` bytes. */
  shift(n) {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  /** Remove `n` bytes. */
  skip(n) {
    this._need(n);
    this._length -= n;
    while (n > 0) {
      const left = this._chunks[0].byteLength - this._offset;
      if (n < left) {
        this._offset += n;
        return;
      }
      n -= left;
      this._chunks.shift();
      this._offset = 0;
    }
  }

  u8() {
    return this.shift(1)[0];
  }

  /** Unsigned 16-bit integer, big-endian (network order) unless `littleEndian`. */
  u16(littleEndian = false) {
    return new DataView(this.shift(2).buffer).getUint16(0, littleEndian);
  }

  /** Unsigned 32-bit integer, big-endian (network order) unless `littleEndian`. */
  u32(littleEndian = false) {
    return new DataView(this.shift(4).buffer).getUint32(0, littleEndian);
  }

  /** `n` bytes decoded as UTF-8. */
  text(n) {
    return decoder.decode(this.shift(n));
  }

  /** Index of the first `byte` in the queue, or -1. */
  indexOf(byte) {
    let base = 0;
    let offset = this._offset;
    for (const chunk of this._chunks) {
      const i = chunk.indexOf(byte, offset);
      if (i >= 0) return base + i - offset;
      base += chunk.byteLength - offset;
      offset = 0;
    }
    return -1;
  }

  /** A line without its "\n" (and "\r"), or null when no complete line is queued. */
  line() {
    const end = this.indexOf(10);
    if (end < 0) return null;
    const text = this.text(end + 1);
    return text.replace(/\r?\n$/, "");
  }

  _need(n) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`bad byte count ${n}`);
    if (n > this._length) throw new RangeError(`need ${n} bytes, ${this._length} queued`);
  }

  _wake() {
    const waiting = this._waiters;
    this._waiters = [];
    for (const w of waiting) {
      if (this._length >= w.n) {
        clearTimeout(w.timer);
        w.resolve();
      } else if (this._error) {
        clearTimeout(w.timer);
        w.reject(this._error);
      } else {
        this._waiters.push(w);
      }
    }
  }
}

async function findWebSocket(given) {
  if (given) return given;
  if (typeof globalThis.WebSocket === "function") return globalThis.WebSocket;
  try {
    const mod = await import("ws");
    return mod.WebSocket || mod.default;
  } catch (err) {
    throw new Error("no WebSocket implementation: pass { WebSocket } from the 'ws' package " +
      "(npm install ws) on Node.js before 22");
  }
}

const DEFAULTS = Object.freeze({
  protocols: ["binary"],
  reconnect: false,
  minDelay: 250, // ms before the first reconnect
  maxDelay: 10000, // ms, the backoff's ceiling
  factor: 2,
  maxRetries: Infinity, // reconnects in a row without a working connection
  stableAfter: 5000, // ms open (or any data received) = a working connection
  // A client sending what the proxy refuses would only be refused again.
  noReconnectCodes: [1002, 1003, 1007, 1008, 1009],
  queue: true,
  WebSocket: undefined,
});

/**
 * One logical connection through the proxy, reconnecting with exponential backoff when
 * `reconnect` is set. Events (listen with `on(type, fn)`, which returns an `off`):
 *   open        {url, protocol, attempt}
 *   message     {data: Uint8Array}
 *   close       {code, reason, wasClean, opened, explanation, willReconnect, delay}
 *   error       {message}
 *   reconnecting {attempt, delay}
 */
export class WebsockifyClient {
  constructor(url, options = {}) {
    this.url = String(url);
    this.options = { ...DEFAULTS, ...options };
    this.queue = new ByteQueue();
    this.state = "idle"; // connecting | open | closing | closed
    this.protocol = "";
    this.bytesSent = 0;
    this.bytesReceived = 0;
    this.messagesSent = 0;
    this.messagesReceived = 0;
    this.lastClose = null;
    this._listeners = new Map();
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._stopped = false;
  }

  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  /** Resolve at the next "open"; reject at a "close" after which no reconnect follows. */
  open() {
    this._stopped = false;
    const opened = new Promise((resolve, reject) => {
      const offOpen = this.on("open", (event) => {
        offOpen();
        offClose();
        resolve(event);
      });
      const offClose = this.on("close", (event) => {
        if (event.willReconnect) return;
        offOpen();
        offClose();
        const error = new Error(event.explanation);
        error.code = event.code;
        error.reason = event.reason;
        reject(error);
      });
    });
    if (this.state === "idle" || this.state === "closed") this._connect();
    return opened;
  }

  /** Send bytes (Uint8Array, ArrayBuffer, typed array) or a string as UTF-8 bytes. */
  send(data) {
    if (this.state !== "open") throw new Error(`cannot send: connection is ${this.state}`);
    const bytes = toBytes(data);
    this._ws.send(bytes);
    this.bytesSent += bytes.byteLength;
    this.messagesSent += 1;
  }

  /** Send `text` as UTF-8 in a binary message (websockify refuses text messages). */
  sendText(text) {
    this.send(encoder.encode(String(text)));
  }

  /** Wait for and take exactly `n` received bytes. */
  async read(n, options) {
    await this.queue.wait(n, options);
    return this.queue.shift(n);
  }

  /** Wait for and take `n` received bytes as UTF-8 text. */
  async readText(n, options) {
    return decoder.decode(await this.read(n, options));
  }

  /** Bytes queued for sending but not yet on the wire. */
  get bufferedAmount() {
    return this._ws ? this._ws.bufferedAmount : 0;
  }

  /** Close and stop reconnecting. */
  close(code = 1000, reason = "") {
    this._stopped = true;
    clearTimeout(this._timer);
    this._timer = null;
    if (this._ws && (this.state === "open" || this.state === "connecting")) {
      this.state = "closing";
      this._ws.close(code, reason);
    } else if (this.state !== "closing") {
      this.state = "closed";
    }
  }

  _emit(type, event) {
    event.type = type;
    for (const listener of [...(this._listeners.get(type) || [])]) {
      try {
        listener(event);
      } catch (err) {
        setTimeout(() => { throw err; }); // report, but keep the other listeners running
      }
    }
  }

  async _connect() {
    this.state = "connecting";
    let ws;
    try {
      const Impl = await findWebSocket(this.options.WebSocket);
      ws = new Impl(this.url, this.options.protocols);
    } catch (err) {
      this.state = "closed";
      this._emit("error", { message: err.message, error: err });
      this._closed({ code: 1006, reason: "", wasClean: false }, false);
      return;
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    let opened = false;
    let openedAt = 0;
    let received = false;
    ws.onopen = () => {
      opened = true;
      this.state = "open";
      this.protocol = ws.protocol || "";
      this.queue.reset();
      openedAt = Date.now();
      this._emit("open", { url: this.url, protocol: this.protocol, attempt: this._attempt });
    };
    ws.onmessage = (event) => {
      const data = toBytes(event.data);
      received = true;
      this.bytesReceived += data.byteLength;
      this.messagesReceived += 1;
      if (this.options.queue) this.queue.push(data);
      this._emit("message", { data });
    };
    ws.onerror = (event) => {
      this._emit("error", { message: event && event.message ? event.message : "WebSocket error" });
    };
    ws.onclose = (event) => {
      if (this._ws === ws) this._ws = null;
      // A connection that worked (data came, or it lasted) starts the backoff over;
      // websockify opens and then closes 1011 when the target is down, which does not.
      if (received || (opened && Date.now() - openedAt >= this.options.stableAfter)) {
        this._attempt = 0;
      }
      this._closed(event, opened);
    };
    if (this._stopped) {
      // close() was called while the WebSocket implementation was being loaded.
      this.state = "closing";
      ws.close();
    }
  }

  _closed(event, opened) {
    const code = event.code || 1005;
    const reason = event.reason || "";
    const retry = this.options.reconnect && !this._stopped &&
      !this.options.noReconnectCodes.includes(code) && this._attempt < this.options.maxRetries;
    const delay = retry ? this._backoff() : 0;
    this.state = "closed";
    this.queue.close(new QueueClosedError(`connection closed (${code})`));
    this.lastClose = { code, reason, wasClean: Boolean(event.wasClean), opened,
      explanation: explainClose(code, reason, opened) };
    this._emit("close", { ...this.lastClose, willReconnect: retry, delay });
    if (retry) {
      this._attempt += 1;
      this._emit("reconnecting", { attempt: this._attempt, delay });
      this._timer = setTimeout(() => {
        this._timer = null;
        if (!this._stopped) this._connect();
      }, delay);
    }
  }

  _backoff() {
    const { minDelay, maxDelay, factor } = this.options;
    const base = Math.min(maxDelay, minDelay * Math.pow(factor, this._attempt));
    return Math.round(base / 2 + Math.random() * base / 2); // jitter: 50-100 %
  }
}

/** Connect and resolve with the open client (rejects with the close explanation). */
export async function connect(url, options) {
  const client = new WebsockifyClient(url, options);
  await client.open();
  return client;
}
