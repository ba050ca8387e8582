// The --diagnostics page: connect through this proxy, probe, chart, explain the close.
import { WebsockifyClient, ByteQueue } from "./websockify.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// A probe: MAGIC, u32 sequence number, 8 bytes of padding (random: a pattern won't hide loss).
const MAGIC = new TextEncoder().encode("WSDIAG1:");
const PROBE_SIZE = MAGIC.length + 12;
const PROBE_INTERVAL = 500; // ms
const SPEAK_FIRST_WAIT = 700; // ms the target may talk before the first probe
const ECHO_WAIT = 3000; // ms for the first probe to come back
const HISTORY = 60; // seconds on the chart

let config = {};
let client = null;
let probeTimer = null;
let tickTimer = null;
let seq = 0;
let pending = new Map(); // seq -> sent at (performance.now())
let echoes = new ByteQueue(); // received bytes, scanned for probes
let kind = "unknown";
let rtts = [];
let samples = []; // {t, rtt|null, down, up} per second
let lastCounts = { sent: 0, received: 0 };
let intervalRtts = [];
let firstBytes = null;

// What the page learned; read by humans in the console and by the project's tests.
window.diagnostics = { get kind() { return kind; }, get rtts() { return rtts; },
  get samples() { return samples; }, get client() { return client; } };

function log(text) {
  const line = `${new Date().toISOString().slice(11, 23)}  ${text}\n`;
  $("log").textContent += line;
  $("log").scrollTop = $("log").scrollHeight;
}

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
  return `${i ? bytes.toFixed(1) : bytes} ${units[i]}`;
}

function printable(bytes) {
  let text = "";
  for (const b of bytes) text += b >= 32 && b < 127 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  return text;
}

function guessService(bytes) {
  const text = new TextDecoder().decode(bytes);
  if (/^RFB \d{3}\.\d{3}\n/.test(text)) return `a VNC server (${text.trim()})`;
  if (text.startsWith("SSH-")) return `an SSH server (${text.trim()})`;
  if (/^220[ -]/.test(text)) return "an SMTP or FTP server";
  if (/^\+OK/.test(text)) return "a POP3 server";
  return "a service that speaks first";
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const base = `${scheme}//${location.host}/`;
  const token = $("token").value.trim();
  if (!config.tokenPlugin || !token) return base;
  const from = config.tokenFrom || "query";
  if (from === "query") return `${base}?token=${encodeURIComponent(token)}`;
  if (from === "path") return `${base}${encodeURIComponent(token)}`;
  return base; // cookie:NAME is set before connecting; header:NAME cannot be sent by a browser
}

function showUrl() {
  $("url").textContent = wsUrl();
}

async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    config = await response.json();
  } catch (err) {
    log(`could not read config.json: ${err}`);
  }
  $("version").textContent = config.version ? `Proxy version ${config.version}.` : "";
  if (config.tokenPlugin) {
    $("target").textContent = `chosen per connection by the token plugin ${config.tokenPlugin}`;
    $("token-row").hidden = false;
    const from = config.tokenFrom || "query";
    const hints = {
      query: "sent as ?token=",
      path: "sent as the last path segment",
    };
    let hint = hints[from];
    if (!hint && from.startsWith("cookie:")) hint = `sent as the cookie ${from.slice(7)}`;
    if (!hint && from.startsWith("header:")) hint = `expected in the header ${from.slice(7)}, which a browser cannot set`;
    if (config.hostToken) hint = "taken from the Host header: open this page under that host name";
    $("token-hint").textContent = hint || "";
  } else {
    $("target").textContent = config.target || "?";
  }
  if (params.get("token")) $("token").value = params.get("token");
  showUrl();
}

function setState(state) {
  $("state").textContent = state;
  $("state").className = state;
  $("connect").disabled = state === "open" || state === "connecting";
  $("disconnect").disabled = !(state === "open" || state === "connecting");
  $("burst").disabled = !(state === "open" && kind === "echo");
}

function resetStats() {
  clearInterval(probeTimer);
  probeTimer = null;
  seq = 0;
  pending = new Map();
  echoes = new ByteQueue();
  kind = "unknown";
  rtts = [];
  samples = [];
  intervalRtts = [];
  lastCounts = { sent: 0, received: 0 };
  firstBytes = null;
  for (const id of ["rtt", "kind", "first-bytes", "close-code", "close-reason"]) $(id).textContent = "–";
  $("rtt-stats").textContent = "";
  $("explanation").textContent = "";
}

function sendProbe() {
  if (!client || client.state !== "open") return;
  const probe = new Uint8Array(PROBE_SIZE);
  probe.set(MAGIC);
  seq += 1;
  new DataView(probe.buffer).setUint32(MAGIC.length, seq);
  crypto.getRandomValues(probe.subarray(MAGIC.length + 4));
  pending.set(seq, performance.now());
  client.send(probe);
  return seq;
}

function startProbing() {
  if (probeTimer || !$("probe").checked) return;
  probeTimer = setInterval(sendProbe, PROBE_INTERVAL);
}

function scanEchoes(data) {
  echoes.push(data);
  while (echoes.length >= PROBE_SIZE) {
    const head = echoes.peek(MAGIC.length);
    if (!head.every((b, i) => b === MAGIC[i])) {
      // Not a probe (burst data or the target's own bytes): skip to the next candidate.
      echoes.skip(1);
      const next = echoes.indexOf(MAGIC[0]);
      echoes.skip(next < 0 ? echoes.length : next);
      continue;
    }
    echoes.skip(MAGIC.length);
    const n = echoes.u32();
    echoes.skip(8);
    const sentAt = pending.get(n);
    if (sentAt === undefined) continue;
    pending.delete(n);
    const rtt = performance.now() - sentAt;
    rtts.push(rtt);
    intervalRtts.push(rtt);
    if (kind !== "echo") {
      kind = "echo";
      $("kind").textContent = "echoes what it receives: probing round-trip time";
      log("the target echoed the first probe");
      setState(client.state);
      startProbing();
    }
    $("rtt").textContent = `${rtt.toFixed(1)} ms`;
    const sorted = [...rtts].sort((a, b) => a - b);
    const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
    $("rtt-stats").textContent = `(min ${sorted[0].toFixed(1)}, avg ${avg.toFixed(1)}, ` +
      `max ${sorted[sorted.length - 1].toFixed(1)} ms over ${rtts.length} probes)`;
  }
  // Bytes that are not probes: keep only a tail that may start a probe.
  if (echoes.length > 64 * 1024) echoes.skip(echoes.length - PROBE_SIZE);
}

function afterOpen() {
  setTimeout(() => {
    if (!client || client.state !== "open") return;
    if (firstBytes) {
      kind = "speaks-first";
      $("kind").textContent = `spoke first: probably ${guessService(firstBytes)}; not probing, ` +
        "as probes would disturb its protocol";
      log("the target spoke first: no probes sent");
      return;
    }
    const first = sendProbe();
    log("the target is silent: sent probe 1");
    setTimeout(() => {
      if (kind === "unknown" && pending.has(first)) {
        kind = "silent";
        $("kind").textContent = `did not echo a probe within ${ECHO_WAIT / 1000} s ` +
          "(a service that waits for its own protocol)";
        log("no echo: probing stopped");
      }
    }, ECHO_WAIT);
  }, SPEAK_FIRST_WAIT);
}

function tick() {
  if (!client) return;
  const sent = client.bytesSent;
  const received = client.bytesReceived;
  const up = sent - lastCounts.sent;
  const down = received - lastCounts.received;
  lastCounts = { sent, received };
  const rtt = intervalRtts.length ? intervalRtts.reduce((a, b) => a + b, 0) / intervalRtts.length : null;
  intervalRtts = [];
  samples.push({ t: Date.now(), rtt, down, up });
  if (samples.length > HISTORY) samples.shift();
  $("down-rate").textContent = `${human(down)}/s`;
  $("up-rate").textContent = `${human(up)}/s`;
  updateCounters();
  drawChart();
}

function updateCounters() {
  if (!client) return;
  $("sent").textContent = human(client.bytesSent);
  $("received").textContent = human(client.bytesReceived);
  $("msgs-sent").textContent = client.messagesSent;
  $("msgs-received").textContent = client.messagesReceived;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 5, 10]) if (m * p >= value) return m * p;
  return 10 * p;
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const left = 48, right = 64, top = 10, bottom = 24;
  const pw = w - left - right, ph = h - top - bottom;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#e5e5e5";
  ctx.fillStyle = "#666";
  ctx.font = "11px sans-serif";
  const rttMax = niceMax(Math.max(1, ...samples.map((s) => s.rtt || 0)));
  const rateMax = niceMax(Math.max(1, ...samples.map((s) => Math.max(s.down, s.up) / 1024)));
  for (let i = 0; i <= 4; i += 1) {
    const y = top + ph - (ph * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + pw, y);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(`${((rttMax * i) / 4).toFixed(rttMax < 20 ? 1 : 0)}`, left - 4, y + 4);
    ctx.textAlign = "left";
    ctx.fillText(`${((rateMax * i) / 4).toFixed(rateMax < 20 ? 1 : 0)}`, left + pw + 4, y + 4);
  }
  ctx.textAlign = "center";
  ctx.fillText(`last ${HISTORY} s`, left + pw / 2, h - 6);
  const x = (i) => left + pw - ((samples.length - 1 - i) * pw) / (HISTORY - 1);
  const line = (color, value, max, dash = []) => {
    ctx.strokeStyle = color;
    ctx.setLineDash(dash);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    samples.forEach((s, i) => {
      const v = value(s);
      if (v === null) { drawing = false; return; }
      const y = top + ph - (Math.min(v, max) / max) * ph;
      if (drawing) ctx.lineTo(x(i), y); else ctx.moveTo(x(i), y);
      drawing = true;
    });
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
  };
  line("#1f77b4", (s) => s.down / 1024, rateMax);
  line("#2ca02c", (s) => s.up / 1024, rateMax, [6, 6]); // dashed: an echo's lines coincide
  line("#d62728", (s) => s.rtt, rttMax);
}

async function burst() {
  if (!client || kind !== "echo") return;
  const total = 1024 * 1024;
  const chunk = new Uint8Array(64 * 1024); // zeros: never mistaken for a probe
  const start = performance.now();
  const target = client.bytesReceived + total;
  log("throughput test: sending 1 MiB");
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (client.state !== "open") return;
    client.send(chunk);
    while (client.bufferedAmount > 512 * 1024) await new Promise((r) => setTimeout(r, 5));
  }
  const deadline = start + 30000;
  while (client.state === "open" && client.bytesReceived < target && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const seconds = (performance.now() - start) / 1000;
  log(`throughput test: 1 MiB echoed in ${seconds.toFixed(2)} s (${human(total / seconds)}/s each way)`);
}

function connect() {
  if (client) client.close();
  resetStats();
  const from = config.tokenFrom || "query";
  if (config.tokenPlugin && from.startsWith("cookie:")) {
    document.cookie = `${from.slice(7)}=${encodeURIComponent($("token").value.trim())}; path=/; SameSite=Strict`;
  }
  const url = wsUrl();
  log(`connecting to ${url}`);
  const current = new WebsockifyClient(url);
  client = current;
  setState("connecting");
  current.on("open", (e) => {
    setState("open");
    log(`open (subprotocol '${e.protocol || "none"}')`);
    clearInterval(tickTimer);
    tickTimer = setInterval(tick, 1000);
    afterOpen();
  });
  current.on("message", (e) => {
    if (!firstBytes) {
      firstBytes = e.data.slice(0, 64);
      $("first-bytes").textContent = printable(firstBytes);
    }
    scanEchoes(e.data);
    updateCounters();
  });
  current.on("error", (e) => log(`error: ${e.message}`));
  current.on("close", (e) => {
    if (client !== current) return;
    clearInterval(probeTimer);
    probeTimer = null;
    clearInterval(tickTimer);
    tickTimer = null;
    tick();
    setState("closed");
    $("close-code").textContent = `${e.code} (${closeName(e.code)})`;
    $("close-reason").textContent = e.reason ? `'${e.reason}'` : "(none)";
    $("explanation").textContent = e.explanation;
    log(`closed: ${e.code} '${e.reason}' (${e.wasClean ? "clean" : "not clean"})`);
  });
  current.open().catch(() => {}); // the close handler reports it
}

function closeName(code) {
  const names = { 1000: "normal", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
    1005: "no status", 1006: "abnormal", 1007: "invalid data", 1008: "policy", 1009: "too big",
    1011: "internal error / target unreachable", 1015: "TLS" };
  return names[code] || "application";
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", () => client && client.close(1000, "closed from the diagnostics page"));
$("burst").addEventListener("click", burst);
$("token").addEventListener("input", showUrl);
$("probe").addEventListener("change", () => {
  if (!$("probe").checked) { clearInterval(probeTimer); probeTimer = null; } else if (kind === "echo") startProbing();
});

await loadConfig();
drawChart();
if (params.get("connect") === "1") connect();
