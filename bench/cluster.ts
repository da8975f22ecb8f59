/**
 * bench/cluster.ts — lesson 07 under load (`bun run bench cluster`), every server driven by the same load
 * generator (bench/cluster-loadgen.ts) in a process of its own, each cluster on a private redis-server.
 *
 * - fan-out: 500 users split over 2 nodes, each sending 5 messages, the next when its own copy returns —
 *   lesson 07 (2 nodes + Redis) vs lesson 05 alone (one process, the same split of users) vs the tutorial
 *   way (bench/peers/node-chat-cluster.mjs: 2 node:net servers relaying through Redis PUBLISH/SUBSCRIBE,
 *   one write() per recipient).
 * - latency: 1,000 users over 2 nodes, 2,000 messages a second in total; p50/p99 from send to delivery on
 *   the other node, for the first and for the last user a node writes each batch to — and the CPU each
 *   process used meanwhile (from /proc), since two nodes, Redis and the generator share two cores.
 * - one Redis's ceiling for this design: XADD (pipelined) and XREAD (batches of 1,000) entries per second.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { RedisClient } from "bun";
import { APPEND } from "../lib/chat-cluster/cluster-scripts.ts";
import { type RedisServer, startRedisServer } from "../lib/redis-server.ts";
import { compare, formatRate, median, report, startChild } from "./measure.ts";

const ROOT = `${import.meta.dir}/..`;
const LESSON_07 = `${ROOT}/scripts/07-chat-cluster.ts`;
const FANOUT_USERS = 500;
const FANOUT_MESSAGES = 5;
const LATENCY_USERS = 1000;
const LATENCY_RATE = 2000;
const LATENCY_SECONDS = 3;
/** Entries for the XADD/XREAD measurement, each ~60 bytes like a chat line. */
const STREAM_ENTRIES = 200_000;

type Started = Awaited<ReturnType<typeof startChild>>;

/** A server under test: its ports (one per node), its processes by name, and how to stop it. */
interface Contender {
  ports: number[];
  processes?: Record<string, number>;
  stop(): Promise<void>;
}

async function loadgen<T>(...args: (string | number)[]): Promise<T> {
  const child = Bun.spawn(["bun", `${ROOT}/bench/cluster-loadgen.ts`, ...args.map(String)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error(`cluster-loadgen ${args.join(" ")} failed`);
  return JSON.parse(output);
}

async function stopAll(children: Started[], redis: RedisServer | null): Promise<void> {
  for (const { child } of children) child.kill("SIGTERM");
  await Promise.all(children.map(({ child }) => child.exited));
  await redis?.stop();
}

/** Lesson 07: a private Redis and `nodes` node processes, each on a port of its own. */
async function startLesson07(nodes: number): Promise<Contender> {
  const redis = await startRedisServer();
  const children: Started[] = [];
  for (let i = 0; i < nodes; i++) {
    children.push(
      await startChild(["bun", LESSON_07, "--node", "--port", "0", "--redis", redis.url, "--quiet"]),
    );
  }
  const processes: Record<string, number> = { redis: redis.pid() };
  for (const [index, { child }] of children.entries()) processes[`node ${index + 1}`] = child.pid;
  return { ports: children.map(({ port }) => port), processes, stop: () => stopAll(children, redis) };
}

async function startLesson05(): Promise<Contender> {
  const server = await startChild(["bun", `${ROOT}/scripts/05-chat-server.ts`, "--port", "0", "--quiet"]);
  return { ports: [server.port, server.port], stop: () => stopAll([server], null) };
}

async function startTutorialPeer(nodes: number): Promise<Contender> {
  const redis = await startRedisServer();
  const children: Started[] = [];
  for (let i = 0; i < nodes; i++) {
    children.push(
      await startChild(["node", `${ROOT}/bench/peers/node-chat-cluster.mjs`, String(redis.port)]),
    );
  }
  return { ports: children.map(({ port }) => port), stop: () => stopAll(children, redis) };
}

export async function benchClusterFanout(rounds = 5): Promise<void> {
  const contenders = {
    "lesson 07 (2 nodes + Redis stream)": await startLesson07(2),
    "lesson 05 alone (1 process)": await startLesson05(),
    "node:net + PUBLISH (2 nodes, Node.js)": await startTutorialPeer(2),
  };
  try {
    const results = await compare(
      Object.entries(contenders).map(([name, { ports }]) => ({
        name,
        run: () =>
          loadgen<{ operations: number; seconds: number }>(
            "fanout",
            ports.join(","),
            FANOUT_USERS,
            FANOUT_MESSAGES,
          ),
      })),
      rounds,
    );
    report(
      `cluster fan-out: ${FANOUT_USERS} users over 2 nodes × ${FANOUT_MESSAGES} messages`,
      "deliveries/s",
      results,
      "lesson 07 (2 nodes + Redis stream)",
      { "node:net + PUBLISH (2 nodes, Node.js)": 8, "lesson 05 alone (1 process)": 0.8 },
    );
  } finally {
    for (const contender of Object.values(contenders)) await contender.stop();
  }
}

interface LatencySamples {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/** What /proc counts CPU time in: USER_HZ, 100 per second on Linux (proc(5), `getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) `pid` has used so far, from /proc/PID/stat (Linux); NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Reads a child's stdout one line at a time. */
function lineReader(stream: ReadableStream<Uint8Array>): () => Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  return async () => {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("a benchmark process exited early");
      text += decoder.decode(value, { stream: true });
    }
    const line = text.slice(0, text.indexOf("\n"));
    text = text.slice(line.length + 1);
    return line;
  };
}

function spawnLoadgen(...args: (string | number)[]) {
  const child = Bun.spawn(["bun", `${ROOT}/bench/cluster-loadgen.ts`, ...args.map(String)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  return { child, nextLine: lineReader(child.stdout) };
}

interface LatencyRun {
  first: LatencySamples;
  last: LatencySamples;
  bytes: number;
  /** Each process's CPU use while the lines flowed, in % of one core. */
  cpu: Record<string, number>;
}

/**
 * One latency run: the first observers (one user per node, in a process of their own, so that the figure
 * is the servers' and not the generator's backlog) join; then the generator's users; then, during the
 * warm-up, the last observers — so that each batch a node writes goes to a first observer first and to a
 * last observer last.
 */
async function latencyRun(cluster: Contender): Promise<LatencyRun> {
  const ports = cluster.ports.join(",");
  const first = spawnLoadgen("observe", ports, "first");
  await first.nextLine();
  const load = spawnLoadgen(
    "latency",
    ports,
    LATENCY_USERS - 2 * cluster.ports.length,
    LATENCY_RATE,
    LATENCY_SECONDS,
  );
  await load.nextLine();
  const last = spawnLoadgen("observe", ports, "last");
  await last.nextLine();
  const processes: [name: string, pids: number[]][] = [
    ...Object.entries(cluster.processes ?? {}).map(([name, pid]): [string, number[]] => [name, [pid]]),
    ["load generator", [load.child.pid]],
    ["observers (2 processes)", [first.child.pid, last.child.pid]],
  ];
  const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const cpuBefore = processes.map(([, pids]) => cpuOf(pids));
  const startedAt = performance.now();
  const result = JSON.parse(await load.nextLine()) as { bytes: number };
  const seconds = (performance.now() - startedAt) / 1000;
  const cpu: Record<string, number> = {};
  for (const [index, [name, pids]] of processes.entries()) {
    cpu[name] = (100 * (cpuOf(pids) - cpuBefore[index]!)) / seconds;
  }
  await load.child.exited;
  const samples = [first, last].map(async ({ child, nextLine }) => {
    child.stdin.end();
    const line = await nextLine();
    await child.exited;
    return JSON.parse(line) as LatencySamples;
  });
  const [firstSamples, lastSamples] = await Promise.all(samples);
  return { first: firstSamples!, last: lastSamples!, bytes: result.bytes, cpu };
}

const formatSamples = ({ p50, p99, max }: LatencySamples) =>
  `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${max.toFixed(1)} ms`;

export async function benchClusterLatency(runs = 3): Promise<void> {
  const cluster = await startLesson07(2);
  try {
    console.log(
      `\ncluster latency: ${LATENCY_USERS} users over 2 nodes, ${LATENCY_RATE} messages/s for ${LATENCY_SECONDS} s, send → delivery on the other node`,
    );
    const p99s: number[] = [];
    for (let run = 1; run <= runs; run++) {
      const { first, last, bytes, cpu } = await latencyRun(cluster);
      p99s.push(last.p99);
      const megabytes = (bytes / (LATENCY_SECONDS + 1) / 1e6).toFixed(0);
      console.log(`  run ${run}: first-written user ${formatSamples(first)} (${first.samples} samples)`);
      console.log(
        `         last-written user  ${formatSamples(last)} (${last.samples} samples; ${megabytes} MB/s to the users)`,
      );
      const usage = Object.entries(cpu).map(([name, percent]) => `${name} ${percent.toFixed(0)}`);
      console.log(
        `         CPU, % of one core: ${usage.join(", ")}; load average ${loadavg()[0]!.toFixed(2)}`,
      );
    }
    const p99 = median(p99s);
    console.log(
      `  median p99, last-written user: ${p99.toFixed(2)} ms  (target < 10 ms: ${p99 < 10 ? "met" : "NOT met"})`,
    );
  } finally {
    await cluster.stop();
  }
}

/** How many stream entries one Redis takes and gives per second, the way lesson 07 uses it. */
export async function benchRedisStream(): Promise<void> {
  const redis = await startRedisServer();
  const client = new RedisClient(redis.url);
  try {
    await client.connect();
    const line = ["line", `u123: m4 ${"x".repeat(40)}`, "node", "0f4e2a4c-9d7b-4f5e-8a39-1c2b3d4e5f60"];
    const started = performance.now();
    const chunk = 10_000;
    for (let done = 0; done < STREAM_ENTRIES; done += chunk) {
      const batch = [];
      for (let i = 0; i < chunk; i++) {
        batch.push(client.send("XADD", ["room", "MAXLEN", "~", String(STREAM_ENTRIES), "*", ...line]));
      }
      await Promise.all(batch);
    }
    const addSeconds = (performance.now() - started) / 1000;
    // What a node really sends per line: the APPEND script (an XADD at most once per sequence number).
    const scriptStarted = performance.now();
    for (let done = 0; done < STREAM_ENTRIES; done += chunk) {
      const batch = [];
      for (let seq = done + 1; seq <= done + chunk; seq++) {
        batch.push(
          client.send("EVAL", [APPEND, "2", "room2", "seq:n", String(STREAM_ENTRIES), String(seq), ...line]),
        );
      }
      await Promise.all(batch);
    }
    const scriptSeconds = (performance.now() - scriptStarted) / 1000;
    const readStarted = performance.now();
    let last = "0-0";
    let read = 0;
    for (;;) {
      const reply = await client.send("XREAD", ["COUNT", "1000", "STREAMS", "room", last]);
      const entries = reply?.room as [string, string[]][] | undefined;
      if (!entries || entries.length === 0) break;
      read += entries.length;
      last = entries.at(-1)![0];
    }
    const readSeconds = (performance.now() - readStarted) / 1000;
    console.log(
      `\none Redis (redis-server ${await version(client)}), entries of ~${line[1]!.length + 44} bytes:`,
    );
    console.log(`  XADD, pipelined:        ${formatRate(STREAM_ENTRIES / addSeconds)} entries/s`);
    console.log(`  APPEND script (EVAL):   ${formatRate(STREAM_ENTRIES / scriptSeconds)} entries/s`);
    console.log(`  XREAD COUNT 1000:       ${formatRate(read / readSeconds)} entries/s (per reading node)`);
  } finally {
    client.close();
    await redis.stop();
  }
}

async function version(client: RedisClient): Promise<string> {
  const info = String(await client.send("INFO", ["server"]));
  return /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
}

export async function benchCluster(): Promise<void> {
  await benchClusterFanout();
  await benchClusterLatency();
  await benchRedisStream();
}
