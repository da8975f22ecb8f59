/**
 * bench/loadgen.ts — the one load generator every server in `bun run bench` is measured with, run in its
 * own process so that it and the server each have a core. Prints one JSON line with its measurement.
 *
 *   bun bench/loadgen.ts echo   PORT CONNECTIONS ROUND_TRIPS   → {"operations": round trips, "seconds": …}
 *   bun bench/loadgen.ts fanout PORT USERS MESSAGES            → {"operations": deliveries, "seconds": …}
 *   bun bench/loadgen.ts idle   PORT USERS                     → {"ready": USERS} once all joined and quiet
 */
import type { Socket } from "bun";
import { LineDecoder } from "../lib/lines.ts";

const NEWLINE = 0x0a;
const CONNECT_BATCH = 250;

async function connectAll(port: number, count: number, onData: (index: number, chunk: Uint8Array) => void) {
  const sockets: Socket<{ index: number }>[] = [];
  for (let start = 0; start < count; start += CONNECT_BATCH) {
    const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - start) }, (_, offset) =>
      Bun.connect<{ index: number }>({
        hostname: "127.0.0.1",
        port,
        data: { index: start + offset },
        socket: { data: (socket, chunk) => onData(socket.data.index, chunk) },
      }),
    );
    sockets.push(...(await Promise.all(batch)));
  }
  for (const socket of sockets) socket.setNoDelay(true);
  return sockets;
}

/** Round trips per connection before timing starts: the JIT of both processes warms up first. */
const ECHO_WARMUP_ROUND_TRIPS = 200;

/** Every connection sends a line, waits for its echo, `roundTrips` times (after an untimed warm-up). */
async function echo(port: number, connections: number, roundTrips: number) {
  const line = new TextEncoder().encode("ping, a short line of text\n");
  const greeted = new Array<boolean>(connections).fill(false);
  const remaining = new Array<number>(connections).fill(0);
  let running = 0;
  let passDone = Promise.withResolvers<void>();
  const sockets = await connectAll(port, connections, (index, chunk) => {
    let at = chunk.indexOf(NEWLINE);
    if (!greeted[index]) {
      // The first line may be a greeting (lesson 04 has one): the first echo of "ping," ends it.
      if (!new TextDecoder().decode(chunk).includes("ping,")) return;
      greeted[index] = true;
      at = chunk.indexOf(NEWLINE, new TextDecoder().decode(chunk).indexOf("ping,"));
    }
    for (; at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) {
      if (--remaining[index]! > 0) sockets[index]!.write(line);
      else if (--running === 0) passDone.resolve();
    }
  });
  /** Every connection does `count` round trips; resolves when all have. */
  const pass = (count: number) => {
    passDone = Promise.withResolvers<void>();
    remaining.fill(count);
    running = connections;
    for (const socket of sockets) socket.write(line);
    return passDone.promise;
  };
  await pass(ECHO_WARMUP_ROUND_TRIPS);
  const started = performance.now();
  await pass(roundTrips);
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.end();
  return { operations: connections * roundTrips, seconds };
}

/**
 * USERS join; then each sends MESSAGES lines, the next when its own copy comes back. While measuring,
 * lines are not decoded: deliveries are counted by newline bytes, and a user spots its own copy by
 * searching for `\nuN: ` natively (Buffer.indexOf) — so the generator keeps up with a fast server.
 */
async function fanout(port: number, users: number, messages: number) {
  const padding = "x".repeat(40);
  const sent = new Array<number>(users).fill(0);
  const registered = Promise.withResolvers<void>();
  const settled = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  let joined = 0;
  let measuring = false;
  let deliveries = 0;
  const expectedDeliveries = users * users * messages;
  // Before measuring, user i gets its OK and the joins of the users after it: users - i lines.
  let settling = (users * (users + 1)) / 2;
  const send = (index: number) => sockets[index]!.write(`m${sent[index]!++} ${padding}\n`);
  const ownMarkers = Array.from({ length: users }, (_, index) => Buffer.from(`\nu${index}: `));
  /** The last bytes of each user's previous chunk, to find a marker split across two chunks. */
  const tails = Array.from({ length: users }, () => Buffer.alloc(0));
  const decoders = Array.from(
    { length: users },
    () =>
      new LineDecoder({
        onLine: (line) => {
          if (line.startsWith("OK") && ++joined === users) registered.resolve();
          if (--settling === 0) settled.resolve();
        },
      }),
  );
  const onMeasuredData = (index: number, chunk: Buffer) => {
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) deliveries++;
    const marker = ownMarkers[index]!;
    let own = 0;
    for (let at = chunk.indexOf(marker); at !== -1; at = chunk.indexOf(marker, at + 1)) own++;
    const seam = Buffer.concat([tails[index]!, chunk.subarray(0, marker.length - 1)]);
    if (tails[index]!.length > 0 && seam.indexOf(marker) !== -1) own++;
    tails[index] = Buffer.from(chunk.subarray(Math.max(0, chunk.length - (marker.length - 1))));
    for (; own > 0; own--) if (sent[index]! < messages) send(index);
    if (deliveries === expectedDeliveries) finished.resolve();
  };
  const sockets = await connectAll(port, users, (index, chunk) => {
    if (measuring) onMeasuredData(index, chunk as Buffer);
    else decoders[index]!.push(chunk);
  });
  for (const [index, socket] of sockets.entries()) socket.write(`CONNECT u${index}\n`);
  await registered.promise;
  await settled.promise;
  measuring = true;
  tails.fill(Buffer.from("\n")); // the last line before measuring ended with a newline
  const started = performance.now();
  for (let index = 0; index < users; index++) send(index);
  await finished.promise;
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.end();
  return { operations: deliveries, seconds };
}

/** USERS join and stay, reading everything; reports once all have joined and the traffic has stopped. */
async function idle(port: number, users: number) {
  let lastData = performance.now();
  let oks = 0;
  const allJoined = Promise.withResolvers<void>();
  const okPrefix = new TextEncoder().encode("OK ");
  const sockets = await connectAll(port, users, (_index, chunk) => {
    lastData = performance.now();
    // The OK is the first line each user gets: it starts a chunk.
    if (chunk[0] === okPrefix[0] && chunk[1] === okPrefix[1] && chunk[2] === okPrefix[2] && ++oks === users) {
      allJoined.resolve();
    }
  });
  for (const [index, socket] of sockets.entries()) socket.write(`CONNECT idle${index}\n`);
  await allJoined.promise;
  while (performance.now() - lastData < 1000) await Bun.sleep(200);
  return { ready: users, sockets };
}

if (import.meta.main) {
  const [mode, ...numbers] = process.argv.slice(2);
  const [port, count, rounds] = numbers.map(Number) as [number, number, number];
  if (mode === "echo") console.log(JSON.stringify(await echo(port, count, rounds)));
  else if (mode === "fanout") console.log(JSON.stringify(await fanout(port, count, rounds)));
  else if (mode === "idle") {
    const { ready } = await idle(port, count);
    console.log(JSON.stringify({ ready }));
    await new Promise(() => {}); // hold the connections until killed
  } else {
    console.error("usage: bun bench/loadgen.ts echo|fanout|idle PORT COUNT [ROUNDS]");
    process.exit(2);
  }
}
