/**
 * bench/websocket-loadgen.ts — the load generator for WebSocket chat and echo servers (`bun run bench
 * websocket`), run in its own process. It speaks WebSocket on raw sockets (Bun.connect): its own small
 * client side of RFC 6455 — the opening handshake (§4.1), masked frames out (§5.3), unmasked frames in —
 * independent of the server code it measures, so it costs the same for every server. Prints one JSON line.
 *
 *   bun bench/websocket-loadgen.ts fanout PORT USERS MESSAGES   → {"operations": deliveries, "seconds": …}
 *   bun bench/websocket-loadgen.ts echo   PORT CONNECTIONS ROUND_TRIPS → {"operations": round trips, …}
 *
 * fanout (GET /chat, lesson 05's protocol, one line per text message): USERS join, then each sends
 * MESSAGES lines, the next when its own copy comes back; every text frame that arrives is one delivery.
 * echo (GET /echo): each connection sends a short text message and waits for it to come back.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "bun";

const CONNECT_BATCH = 250;
/** Round trips per connection before timing starts: both processes' JIT warms up first. */
const ECHO_WARMUP_ROUND_TRIPS = 200;
const HEAD_END = Buffer.from("\r\n\r\n");
const utf8 = new TextEncoder();

/** A client frame (§5.2): FIN, the opcode, the MASK bit, the length, a fresh masking key, the payload masked. */
function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const frame = new Uint8Array(2 + lengthBytes + 4 + length);
  frame[0] = 0x80 | opcode;
  const view = new DataView(frame.buffer);
  if (lengthBytes === 0) frame[1] = 0x80 | length;
  else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126;
    view.setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(length));
  }
  const keyAt = 2 + lengthBytes;
  const key = randomBytes(4);
  frame.set(key, keyAt);
  for (let index = 0; index < length; index++) frame[keyAt + 4 + index] = payload[index]! ^ key[index & 3]!;
  return frame;
}

const maskedText = (text: string) => maskedFrame(0x1, utf8.encode(text));

/**
 * Counts the server's frames (unmasked, §5.1) in a connection's bytes as they arrive, and hands each
 * complete frame's payload (a view, valid during the call) to `onFrame`. A frame split over two chunks
 * waits, copied, for the rest.
 */
class FrameCounter {
  #pending: Buffer | null = null;

  constructor(readonly onFrame: (opcode: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    const bytes = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = null;
    let at = 0;
    while (bytes.length - at >= 2) {
      const length7 = bytes[at + 1]! & 0x7f;
      const header = length7 < 126 ? 2 : length7 === 126 ? 4 : 10;
      if (bytes.length - at < header) break;
      const length =
        length7 < 126
          ? length7
          : length7 === 126
            ? bytes.readUInt16BE(at + 2)
            : Number(bytes.readBigUInt64BE(at + 2));
      if (bytes.length - at < header + length) break;
      this.onFrame(bytes[at]! & 0x0f, bytes.subarray(at + header, at + header + length));
      at += header + length;
    }
    if (at < bytes.length) this.#pending = Buffer.from(bytes.subarray(at));
  }
}

interface Connection {
  index: number;
  /** Until the 101 response: the bytes of the head so far. */
  head: Buffer | null;
  upgraded: PromiseWithResolvers<void>;
  frames: FrameCounter | null;
}

/**
 * Opens `count` WebSocket connections to `path` (in batches) and waits for every 101; `onFrame(index, …)`
 * gets each frame of connection `index`.
 */
async function connectAll(
  port: number,
  path: string,
  count: number,
  onFrame: (index: number, opcode: number, payload: Buffer) => void,
): Promise<Socket<Connection>[]> {
  const sockets: Socket<Connection>[] = [];
  for (let start = 0; start < count; start += CONNECT_BATCH) {
    const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - start) }, async (_, offset) => {
      const index = start + offset;
      const data: Connection = {
        index,
        head: Buffer.alloc(0),
        upgraded: Promise.withResolvers(),
        frames: null,
      };
      data.frames = new FrameCounter((opcode, payload) => onFrame(index, opcode, payload));
      const socket = await Bun.connect<Connection>({
        hostname: "127.0.0.1",
        port,
        data,
        socket: { data: onData, close: (socket) => socket.data.upgraded.reject(new Error("closed")) },
      });
      socket.setNoDelay(true);
      const key = randomBytes(16).toString("base64");
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      await data.upgraded.promise;
      return socket;
    });
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

function onData(socket: Socket<Connection>, chunk: Buffer): void {
  const connection = socket.data;
  if (connection.head === null) return connection.frames!.push(chunk);
  const head = Buffer.concat([connection.head, chunk]);
  const end = head.indexOf(HEAD_END);
  if (end === -1) {
    connection.head = head;
    return;
  }
  connection.head = null;
  const statusLine = head.subarray(0, head.indexOf("\r\n")).toString();
  if (!statusLine.startsWith("HTTP/1.1 101")) {
    connection.upgraded.reject(new Error(`no upgrade: ${statusLine}`));
    return;
  }
  connection.upgraded.resolve();
  if (end + 4 < head.length) connection.frames!.push(head.subarray(end + 4));
}

const TEXT = 0x1;

/**
 * USERS join; then each sends MESSAGES lines, the next when its own copy comes back (a text frame that
 * starts `uN: `). Every text frame is one delivery.
 */
async function fanout(port: number, users: number, messages: number) {
  const padding = "x".repeat(40);
  const sent = new Array<number>(users).fill(0);
  const ownMarkers = Array.from({ length: users }, (_, index) => Buffer.from(`u${index}: `));
  const registered = Promise.withResolvers<void>();
  const settled = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  let oks = 0;
  // Before measuring, each user gets its OK and the join of every user who registered after it.
  let settling = (users * (users + 1)) / 2;
  let measuring = false;
  let deliveries = 0;
  const expected = users * users * messages;
  const send = (index: number) => sockets[index]!.write(maskedText(`m${sent[index]!++} ${padding}`));
  const sockets = await connectAll(port, "/chat", users, (index, opcode, payload) => {
    if (opcode !== TEXT) return;
    if (!measuring) {
      if (payload[0] === 0x4f /* O */ && payload[1] === 0x4b /* K */ && ++oks === users) registered.resolve();
      if (--settling === 0) settled.resolve();
      return;
    }
    deliveries++;
    const marker = ownMarkers[index]!;
    if (
      payload.length >= marker.length &&
      payload.compare(marker, 0, marker.length, 0, marker.length) === 0
    ) {
      if (sent[index]! < messages) send(index);
    }
    if (deliveries === expected) finished.resolve();
  });
  for (const [index, socket] of sockets.entries()) socket.write(maskedText(`CONNECT u${index}`));
  await registered.promise;
  await settled.promise;
  measuring = true;
  const started = performance.now();
  for (let index = 0; index < users; index++) send(index);
  await finished.promise;
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.end();
  return { operations: deliveries, seconds };
}

/** Every connection sends a text message to /echo and waits for it back, `roundTrips` times. */
async function echo(port: number, connections: number, roundTrips: number) {
  const frame = maskedText("ping, a short line of text");
  const remaining = new Array<number>(connections).fill(0);
  let running = 0;
  let passDone = Promise.withResolvers<void>();
  const sockets = await connectAll(port, "/echo", connections, (index, opcode) => {
    if (opcode !== TEXT) return;
    if (--remaining[index]! > 0) sockets[index]!.write(frame);
    else if (--running === 0) passDone.resolve();
  });
  const pass = (count: number) => {
    passDone = Promise.withResolvers<void>();
    remaining.fill(count);
    running = connections;
    for (const socket of sockets) socket.write(frame);
    return passDone.promise;
  };
  await pass(ECHO_WARMUP_ROUND_TRIPS);
  const started = performance.now();
  await pass(roundTrips);
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.end();
  return { operations: connections * roundTrips, seconds };
}

if (import.meta.main) {
  const [mode, ...numbers] = process.argv.slice(2);
  const [port, count, rounds] = numbers.map(Number) as [number, number, number];
  if (mode === "fanout") console.log(JSON.stringify(await fanout(port, count, rounds)));
  else if (mode === "echo") console.log(JSON.stringify(await echo(port, count, rounds)));
  else {
    console.error("usage: bun bench/websocket-loadgen.ts fanout|echo PORT COUNT ROUNDS");
    process.exit(2);
  }
}
