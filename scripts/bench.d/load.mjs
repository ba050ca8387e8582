// Benchmark load generator: one scenario against one peer, result as one JSON line.
// Usage: node load.mjs ws|tcp PORT SCENARIO [key=value ...]
//   ws  = WebSocket client (npm ws, masking in C by bufferutil), subprotocol "binary"
//   tcp = plain TCP (direct to the target, or through socat)
// Every loop is bounded in time (secs=) and, where it counts, in number (count=).
// The JSON carries "cpu": this process's user+system CPU seconds during the scenario.
import net from 'node:net';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.BENCH_NODE}/package.json`);
const WebSocket = require('ws');

const [kind, portArg, scenario, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const opt = Object.fromEntries(rest.map((kv) => kv.split('=')));
const secs = Number(opt.secs ?? 2);
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function header(mode, param = 0n) {
  const b = Buffer.alloc(9);
  b[0] = mode.charCodeAt(0);
  b.writeBigUInt64BE(BigInt(param), 1);
  return b;
}

// A connection with the same small interface over ws and tcp.
function connect(timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const conn = { onData: () => {}, closed: null };
    const timer = setTimeout(() => { conn.kill?.(); reject(new Error('connect timeout')); }, timeoutMs);
    if (kind === 'ws') {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['binary'], { perMessageDeflate: false });
      conn.closed = new Promise((r) => ws.on('close', r));
      ws.on('error', (e) => { clearTimeout(timer); reject(e); });
      ws.on('message', (d) => conn.onData(d));
      conn.send = (b) => ws.send(b, { binary: true });
      conn.buffered = () => ws.bufferedAmount;
      conn.close = () => { ws.close(1000); return conn.closed; };
      conn.kill = () => ws.terminate();
      ws.on('open', () => { clearTimeout(timer); resolve(conn); });
    } else {
      const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
      conn.closed = new Promise((r) => s.on('close', r));
      s.on('error', (e) => { clearTimeout(timer); reject(e); });
      s.on('data', (d) => conn.onData(d));
      conn.send = (b) => s.write(b);
      conn.buffered = () => s.writableLength;
      conn.close = () => { s.end(); return conn.closed; };
      conn.kill = () => s.destroy();
      s.on('connect', () => { clearTimeout(timer); resolve(conn); });
    }
  });
}

// Resolve once `n` bytes have arrived (or reject after timeoutMs).
function expectBytes(conn, n, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    let got = 0;
    const timer = setTimeout(() => reject(new Error('echo timeout')), timeoutMs);
    conn.onData = (d) => {
      got += d.length;
      if (got >= n) { clearTimeout(timer); conn.onData = () => {}; resolve(); }
    };
  });
}

// Client -> target into the sink: `size`-byte messages, at most `window` bytes unacknowledged,
// sending for `secs` (or `total` bytes), then waiting for the last ack. Returns bytes/s.
// `stop` ({ stopped }): send until it is set instead of for `secs` (the load-under-echo streams).
async function toSink(size, { total = Infinity, window = 8 << 20, waitMs = 60000, stop = null } = {}) {
  const conn = await connect();
  conn.send(header('S'));
  const msg = Buffer.alloc(size, 0xa5);
  let sent = 0; let acked = 0; let pending = Buffer.alloc(0);
  const t0 = now(); const end = t0 + secs * 1000;
  let done;
  const finished = new Promise((r) => { done = r; });
  const more = () => (stop ? !stop.stopped : now() < end);
  const fill = () => {
    while (sent - acked < window && sent < total && more()) {
      conn.send(msg); sent += size;
    }
    if (acked >= sent && (sent >= total || !more())) done(now());
  };
  conn.onData = (d) => {
    pending = Buffer.concat([pending, d]);
    const whole = pending.length - (pending.length % 8);
    if (whole) { acked = Number(pending.readBigUInt64BE(whole - 8)); pending = pending.subarray(whole); }
    fill();
  };
  // The window may still be open when time runs out; a timer re-checks the end.
  const tick = setInterval(fill, 50);
  fill();
  const limit = stop ? stop.done.then(() => sleep(waitMs)) : sleep(secs * 1000 + waitMs);
  const t1 = await Promise.race([finished, limit.then(() => null)]);
  clearInterval(tick);
  conn.kill();
  if (t1 === null) return { bytes: acked, seconds: secs + waitMs / 1000, timedOut: true };
  return { bytes: acked, seconds: (t1 - t0) / 1000 };
}

// 32-byte echo round trips on one connection: p50/p99 in µs after `warmup` rounds.
async function echoRun(warmup = 200) {
  const conn = await connect();
  const payload = Buffer.alloc(32, 0x42);
  conn.send(header('E'));
  const lat = [];
  const count = Number(opt.count ?? 5000);
  const end = now() + secs * 1000;
  for (let i = 0; i < count + warmup && now() < end; i++) {
    const got = expectBytes(conn, 32);
    const t = process.hrtime.bigint();
    conn.send(payload);
    await got;
    if (i >= warmup) lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  conn.kill();
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { value: pct(0.5), p50: pct(0.5), p99: pct(0.99), unit: 'us', n: lat.length };
}

const scenarios = {
  async c2t() {
    const r = await toSink(64 * 1024);
    return { value: r.bytes / r.seconds / 2 ** 20, unit: 'MiB/s', ...r };
  },
  async msgs1k() {
    const r = await toSink(1024, { window: 1 << 20 });
    return { value: r.bytes / 1024 / r.seconds, unit: 'msg/s', ...r };
  },
  async big() {
    const size = Number(opt.mib ?? 16) * 2 ** 20;
    const r = await toSink(size, { total: size, window: size, waitMs: Number(opt.wait ?? 30) * 1000 });
    return { value: r.timedOut ? null : r.seconds, unit: 's', ...r };
  },
  async t2c() {
    const conn = await connect();
    let bytes = 0; let t0 = null;
    conn.onData = (d) => { if (t0 === null) t0 = now(); else bytes += d.length; };
    conn.send(header('R', 2n ** 50n));
    await sleep(secs * 1000);
    const t1 = now();
    conn.kill();
    return { value: t0 === null ? null : bytes / ((t1 - t0) / 1000) / 2 ** 20, unit: 'MiB/s', bytes };
  },
  async echo() {
    return echoRun();
  },
  // Issue #19: the echo round trip on one connection while `streams` others upload 64 KiB
  // messages through the same proxy. The uploads run in a child process (scenario
  // "streams"), so this event loop only waits for echoes: the latency is the proxy's.
  async loaded() {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), kind, portArg,
      'streams', `count=${Number(opt.streams ?? 2)}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.on('exit', r));
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    await sleep(300); // the streams are connected and flowing before the first echo
    let r;
    try {
      r = await echoRun(Number(opt.warmup ?? 50));
    } finally {
      child.stdin.end('stop\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    const last = out.trim().split('\n').pop();
    r.stream_bytes = last ? JSON.parse(last).value : null;
    return r;
  },
  // `count` uploads of 64 KiB messages into the sink until "stop" arrives on stdin.
  async streams() {
    const stop = { stopped: false };
    stop.done = new Promise((r) => { stop.finish = r; });
    const all = Array.from({ length: Number(opt.count ?? 2) },
      () => toSink(64 * 1024, { window: 4 << 20, waitMs: 5000, stop }));
    const rl = readline.createInterface({ input: process.stdin });
    await new Promise((r) => { rl.once('line', r); rl.once('close', r); });
    rl.close();
    stop.stopped = true;
    stop.finish();
    const done = await Promise.all(all);
    return { value: done.reduce((a, d) => a + d.bytes, 0), unit: 'bytes' };
  },
  async conns() {
    const parallel = Number(opt.parallel ?? 8);
    const msg = Buffer.concat([header('E'), Buffer.alloc(32, 0x43)]);
    const end = now() + secs * 1000;
    let ok = 0; let failed = 0;
    const loop = async () => {
      while (now() < end && failed < 100) {
        try {
          const conn = await connect();
          const got = expectBytes(conn, 32);
          conn.send(msg);
          await got;
          await Promise.race([conn.close(), sleep(5000)]);
          ok++;
        } catch { failed++; }
      }
    };
    const t0 = now();
    await Promise.all(Array.from({ length: parallel }, loop));
    return { value: ok / ((now() - t0) / 1000), unit: 'conn/s', ok, failed };
  },
  // Open `count` connections (each proven with a 1-byte echo), report, wait for "check"
  // on stdin, then echo 1 byte on every one and report how many still answer.
  async idle() {
    const count = Number(opt.count ?? 1000);
    const inflight = Number(opt.parallel ?? 64);
    const conns = []; let failed = 0; let next = 0;
    const deadline = now() + Number(opt.open_secs ?? 120) * 1000;
    const opener = async () => {
      while (next < count && now() < deadline && failed < 200) {
        next++;
        try {
          const conn = await connect();
          const got = expectBytes(conn, 1);
          conn.send(Buffer.concat([header('E'), Buffer.from('x')]));
          await got;
          conns.push(conn);
        } catch { failed++; }
      }
    };
    await Promise.all(Array.from({ length: inflight }, opener));
    process.stdout.write(JSON.stringify({ opened: conns.length, failed }) + '\n');
    const rl = readline.createInterface({ input: process.stdin });
    await new Promise((r) => rl.once('line', r));
    rl.close();
    // echo_secs: from the first send to the last answer (scripts/idle-check, #19).
    const t0 = now(); let last = t0;
    const results = await Promise.allSettled(conns.map((c) => {
      const got = expectBytes(c, 1, 20000).then(() => { last = now(); });
      c.send(Buffer.from('y'));
      return got;
    }));
    const echoing = results.filter((r) => r.status === 'fulfilled').length;
    for (const c of conns) c.kill();
    return { value: echoing, unit: 'conns', opened: conns.length, failed,
      echo_secs: (last - t0) / 1000 };
  },
};

const cpu0 = process.cpuUsage();
const w0 = now();
const result = await scenarios[scenario]();
const cpu = process.cpuUsage(cpu0);
result.cpu = (cpu.user + cpu.system) / 1e6;
result.wall = (now() - w0) / 1000;
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
