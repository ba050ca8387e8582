// Benchmark target server (one port for every scenario, so each proxy needs one target).
// The client's first 9 bytes choose what the connection does: a mode byte and a u64 BE:
//   'S' sink:   count the bytes that follow; acknowledge with the u64 BE running total,
//               at most one ack per ACK_MS and always a trailing one once data stops.
//   'R' source: write the u64 count of bytes (in 64 KiB writes, honouring backpressure).
//   'E' echo:   echo every byte that follows.
// Usage: node backend.mjs PORT   (prints "ready PORT" once listening)
import net from 'node:net';

const ACK_MS = 2;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

function sink(sock, first) {
  let count = 0;
  let timer = null;
  const ack = () => {
    timer = null;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(count));
    sock.write(b);
  };
  const onData = (d) => {
    count += d.length;
    if (timer === null) timer = setTimeout(ack, ACK_MS);
  };
  sock.on('data', onData);
  if (first.length) onData(first);
  sock.on('close', () => { if (timer) clearTimeout(timer); });
}

function source(sock, total) {
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!sock.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        sock.once('drain', pump);
        return;
      }
    }
  };
  sock.on('data', () => {});
  pump();
}

function echo(sock, first) {
  if (first.length) sock.write(first);
  sock.on('data', (d) => sock.write(d));
}

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => {});
  let head = Buffer.alloc(0);
  const onHead = (d) => {
    head = Buffer.concat([head, d]);
    if (head.length < 9) return;
    sock.off('data', onHead);
    const mode = String.fromCharCode(head[0]);
    const param = head.readBigUInt64BE(1);
    const rest = head.subarray(9);
    if (mode === 'S') sink(sock, rest);
    else if (mode === 'R') source(sock, Number(param));
    else if (mode === 'E') echo(sock, rest);
    else sock.destroy();
  };
  sock.on('data', onHead);
});
server.maxConnections = 100000;
server.listen({ port: Number(process.argv[2]), host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`ready ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
