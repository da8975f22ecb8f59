/**
 * bench/cluster-loadgen.ts — the load generator for chat servers of several processes, run in its own
 * process. User i connects to PORTS[i % PORTS.length], so the users are split evenly over the nodes (one
 * port listed twice drives a single server with the same split). Prints one JSON line.
 *
 *   bun bench/cluster-loadgen.ts fanout  PORT,PORT USERS MESSAGES  → {"operations": deliveries, "seconds": …}
 *   bun bench/cluster-loadgen.ts latency PORT,PORT USERS RATE SECONDS → {"joined": true} once its users
 *       are in, then {"bytes": received, "sent": lines}
 *   bun bench/cluster-loadgen.ts observe PORT,PORT first|last → {"ready": true}, then at stdin's end
 *       {"samples": …, "p50": ms, "p99": ms, "max": ms}
 *
 * fanout: every user sends MESSAGES lines, the next when its own copy comes back; deliveries are counted
 * by newline bytes and a user spots its own copy by searching for `\nuN: ` natively (Buffer.indexOf).
 * latency: RATE lines a second, in total, from every user in turn, each carrying the time it was sent;
 * everyone reads, and counts bytes only. observe (another process): one user per node reads every line, and
 * the time from send to delivery of each line sent on another node is a sample. A node writes a batch to
 * its users in the order they joined, so where an observer stands in that order matters: `first` joins
 * before the generator's users (the first written to), `last` after them, during the warm-up (the last
 * written to) — between them, the best and the worst placed user of the room.
 */
import type { Socket } from "bun";

const NEWLINE = 0x0a;
const CONNECT_BATCH = 250;
/** Joined when no byte has arrived for this long after every OK: 300 ms. */
const QUIET_MS = 300;
/**
 * A name still held by the previous run's user (in lesson 07 a departing user's name is freed in Redis a
 * moment after its socket closes) is asked for again after 100 ms; every user must have its OK within 30 s,
 * or the generator says so and exits 1 — a run must never wait for ever.
 */
const RETRY_TAKEN_MS = 100;
const JOIN_DEADLINE_MS = 30_000;

interface UserData {
  index: number;
}

async function connectAll(
  ports: number[],
  count: number,
  onData: (index: number, chunk: Buffer) => void,
): Promise<Socket<UserData>[]> {
  const sockets: Socket<UserData>[] = [];
  for (let start = 0; start < count; start += CONNECT_BATCH) {
    const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - start) }, (_, offset) =>
      Bun.connect<UserData>({
        hostname: "127.0.0.1",
        port: ports[(start + offset) % ports.length]!,
        data: { index: start + offset },
        socket: { data: (socket, chunk) => onData(socket.data.index, chunk) },
      }),
    );
    sockets.push(...(await Promise.all(batch)));
  }
  for (const socket of sockets) socket.setNoDelay(true);
  return sockets;
}

/** Every user sends CONNECT uN; resolves once all have their OK and the room has gone quiet. */
async function joinAll(
  ports: number[],
  users: number,
  onMeasured: (index: number, chunk: Buffer) => void,
  namePrefix = "u",
  waitForQuiet = true,
) {
  let measuring = false;
  let oks = 0;
  let lastData = performance.now();
  const allJoined = Promise.withResolvers<void>();
  const ok = Buffer.from("OK welcome");
  const taken = Buffer.from("ERR name taken");
  const connect = (index: number) => sockets[index]!.write(`CONNECT ${namePrefix}${index}\n`);
  const sockets = await connectAll(ports, users, (index, chunk) => {
    if (measuring) return onMeasured(index, chunk);
    lastData = performance.now();
    // Each user's OK (or ERR) is the first line it gets, so it starts a chunk.
    if (chunk.subarray(0, taken.length).equals(taken)) setTimeout(() => connect(index), RETRY_TAKEN_MS);
    else if (chunk.subarray(0, ok.length).equals(ok) && ++oks === users) allJoined.resolve();
  });
  for (const index of sockets.keys()) connect(index);
  const deadline = setTimeout(() => {
    console.error(`error: ${users - oks} of ${users} users got no OK within ${JOIN_DEADLINE_MS / 1000} s`);
    process.exit(1);
  }, JOIN_DEADLINE_MS);
  await allJoined.promise;
  clearTimeout(deadline);
  while (waitForQuiet && performance.now() - lastData < QUIET_MS) await Bun.sleep(50);
  measuring = true;
  return sockets;
}

async function fanout(ports: number[], users: number, messages: number) {
  const padding = "x".repeat(40);
  const sent = new Array<number>(users).fill(0);
  const finished = Promise.withResolvers<void>();
  let deliveries = 0;
  const expectedDeliveries = users * users * messages;
  const ownMarkers = Array.from({ length: users }, (_, index) => Buffer.from(`\nu${index}: `));
  /** Each user's previous chunk's last bytes: a marker may be split across two chunks. */
  const tails = Array.from({ length: users }, () => Buffer.from("\n"));
  const send = (index: number) => sockets[index]!.write(`m${sent[index]!++} ${padding}\n`);
  const sockets = await joinAll(ports, users, (index, chunk) => {
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) deliveries++;
    const marker = ownMarkers[index]!;
    let own = 0;
    for (let at = chunk.indexOf(marker); at !== -1; at = chunk.indexOf(marker, at + 1)) own++;
    // A marker split across the previous chunk and this one: only the seam needs joining.
    const seam = Buffer.concat([tails[index]!, chunk.subarray(0, marker.length - 1)]);
    if (seam.indexOf(marker) !== -1) own++;
    tails[index] = Buffer.from(chunk.subarray(Math.max(0, chunk.length - (marker.length - 1))));
    for (; own > 0; own--) if (sent[index]! < messages) send(index);
    if (deliveries >= expectedDeliveries) finished.resolve();
  });
  const started = performance.now();
  for (let index = 0; index < users; index++) send(index);
  await finished.promise;
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.end();
  return { operations: deliveries, seconds };
}

/** Fraction `q` of sorted `values` (nearest rank). */
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Latency warm-up before samples count: 1 s. */
const LATENCY_WARMUP_MS = 1000;
/** The pacing timer's period: 5 ms (RATE / 200 lines each tick, on average). */
const PACE_MS = 5;
/** Wall-clock milliseconds, fractional: comparable between the sender and observer processes. */
const wallClock = () => performance.timeOrigin + performance.now();

/**
 * USERS readers and senders: RATE lines a second in total, from each user in turn, as
 * `n<node> @<wall-clock ms>` (`w@` during the warm-up, which observers do not count). Reads and counts
 * bytes only.
 */
async function latency(ports: number[], users: number, rate: number, seconds: number) {
  const nodes = ports.length;
  let received = 0;
  let sent = 0;
  const sockets = await joinAll(ports, users, (_index, chunk) => {
    received += chunk.length;
  });
  console.log(JSON.stringify({ joined: true }));
  const started = performance.now();
  let next = 0;
  const timer = setInterval(() => {
    const elapsed = performance.now() - started;
    const tag = elapsed < LATENCY_WARMUP_MS ? "w@" : "@";
    const due = Math.floor((elapsed / 1000) * rate) - sent;
    for (let i = 0; i < due; i++) {
      const index = next;
      next = (next + 1) % users;
      sockets[index]!.write(`n${index % nodes} ${tag}${wallClock()}\n`);
      sent++;
    }
  }, PACE_MS);
  await Bun.sleep(LATENCY_WARMUP_MS + seconds * 1000);
  clearInterval(timer);
  await Bun.sleep(200); // the last lines land
  for (const socket of sockets) socket.end();
  return { bytes: received, sent };
}

/**
 * One observer per node, in a process of its own — so that what is measured is the servers' latency, not
 * this generator's backlog of a thousand sockets: prints `{"ready": true}` once joined, then times each
 * line sent from another node, until its stdin closes; then prints the quantiles.
 */
async function observe(ports: number[], place: "first" | "last") {
  const samples: number[] = [];
  const pending = ports.map(() => "");
  await joinAll(
    ports,
    ports.length,
    (index, chunk) => {
      const now = wallClock();
      const lines = (pending[index] + chunk.toString("utf8")).split("\n");
      pending[index] = lines.pop()!;
      for (const line of lines) {
        const at = line.indexOf(" @");
        if (at === -1) continue;
        const from = Number(line.slice(line.indexOf(": n") + 3, at));
        if (from !== index) samples.push(now - Number(line.slice(at + 2)));
      }
    },
    place,
    // The last observers join while the room is busy: it never goes quiet, and the warm-up's lines are
    // not timed anyway.
    place === "first",
  );
  console.log(JSON.stringify({ ready: true }));
  for await (const _ of process.stdin) {
    // until the benchmark closes our stdin
  }
  samples.sort((a, b) => a - b);
  return {
    samples: samples.length,
    p50: quantile(samples, 0.5),
    p99: quantile(samples, 0.99),
    max: samples.at(-1) ?? Number.NaN,
  };
}

if (import.meta.main) {
  const [mode, portList, ...numbers] = process.argv.slice(2);
  const place = numbers[0] === "last" ? "last" : "first";
  const ports = (portList ?? "").split(",").map(Number);
  const [users, a, b] = numbers.map(Number) as [number, number, number];
  if (mode === "fanout") console.log(JSON.stringify(await fanout(ports, users, a)));
  else if (mode === "latency") console.log(JSON.stringify(await latency(ports, users, a, b)));
  else if (mode === "observe") console.log(JSON.stringify(await observe(ports, place)));
  else {
    console.error(
      "usage: bun bench/cluster-loadgen.ts fanout|latency|observe PORT,PORT [USERS … | first|last]",
    );
    process.exit(2);
  }
  process.exit(0);
}
