/**
 * bench/servers.ts — lessons 04 and 05 under load, next to their baselines, all driven by the same load
 * generator (bench/loadgen.ts) in a process of its own.
 *
 * - echo: 50 connections, one line in flight each — lesson 04 vs a bare Bun.listen echo, the same echo on
 *   lib's callback line server (what lesson 05 runs on: no promise per line), and a node:net line echo
 *   (run by Node.js).
 * - chat fan-out: 500 users each sending 5 messages, the next when its own copy returns — lesson 05 vs a
 *   node:net chat server (run by Node.js) with one write() per recipient per message.
 * - memory: 10,000 idle users, each join announced to all — lesson 05's resident memory.
 */
import { residentBytes } from "../tests/helpers/servers.ts";
import { compare, report, startChild } from "./measure.ts";

const ROOT = `${import.meta.dir}/..`;
const ECHO_CONNECTIONS = 50;
const ECHO_ROUND_TRIPS = 1000;
const CHAT_USERS = 500;
const CHAT_MESSAGES = 5;
const IDLE_USERS = 10_000;

async function loadgen(...args: (string | number)[]): Promise<{ operations: number; seconds: number }> {
  const child = Bun.spawn(["bun", `${ROOT}/bench/loadgen.ts`, ...args.map(String)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error(`loadgen ${args.join(" ")} failed`);
  return JSON.parse(output);
}

/**
 * Starts `servers` (name → command line), drives each with the load generator (`load` = its mode and
 * numbers after the port) in interleaved rounds, and reports them against the first one.
 */
async function compareServers(
  title: string,
  unit: string,
  servers: Record<string, string[]>,
  load: (string | number)[],
  targets: Record<string, number>,
  rounds: number,
): Promise<void> {
  const started = await Promise.all(
    Object.entries(servers).map(async ([name, argv]) => [name, await startChild(argv)] as const),
  );
  try {
    const [mode, ...numbers] = load;
    const results = await compare(
      started.map(([name, { port }]) => ({ name, run: () => loadgen(mode!, port, ...numbers) })),
      rounds,
    );
    report(title, unit, results, started[0]![0], targets);
  } finally {
    for (const [, { child }] of started) child.kill();
  }
}

export function benchEcho(rounds = 9): Promise<void> {
  return compareServers(
    `echo: ${ECHO_CONNECTIONS} connections, one line in flight each`,
    "round trips/s",
    {
      "lesson 04 (startServer)": ["bun", `${ROOT}/scripts/04-echo-server.ts`, "--port", "0", "--quiet"],
      "bare Bun.listen echo": ["bun", `${ROOT}/bench/peers/bun-echo-server.ts`],
      "startLineServer echo (callbacks)": ["bun", `${ROOT}/bench/peers/line-echo-server.ts`],
      "node:net line echo (Node.js)": ["node", `${ROOT}/bench/peers/node-echo-server.mjs`],
    },
    ["echo", ECHO_CONNECTIONS, ECHO_ROUND_TRIPS],
    { "bare Bun.listen echo": 0.9, "node:net line echo (Node.js)": 1.2 },
    rounds,
  );
}

export function benchChat(rounds = 5): Promise<void> {
  return compareServers(
    `chat fan-out: ${CHAT_USERS} users × ${CHAT_MESSAGES} messages`,
    "deliveries/s",
    {
      "lesson 05 (chat server)": ["bun", `${ROOT}/scripts/05-chat-server.ts`, "--port", "0", "--quiet"],
      "node:net chat (Node.js)": ["node", `${ROOT}/bench/peers/node-chat-server.mjs`],
    },
    ["fanout", CHAT_USERS, CHAT_MESSAGES],
    { "node:net chat (Node.js)": 10 },
    rounds,
  );
}

export async function benchMemory(): Promise<void> {
  const { port, child } = await startChild([
    "bun",
    `${ROOT}/scripts/05-chat-server.ts`,
    "--port",
    "0",
    "--quiet",
  ]);
  const before = residentBytes(child.pid);
  const load = Bun.spawn(["bun", `${ROOT}/bench/loadgen.ts`, "idle", String(port), String(IDLE_USERS)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  try {
    const reader = load.stdout.getReader();
    const { value } = await reader.read();
    if (!value) throw new Error("loadgen idle exited early");
    const after = residentBytes(child.pid);
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
    const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
    // The target is read as 64 MiB (67.1 MB); both units are printed so nobody has to guess.
    const verdict = after < 64 * 2 ** 20 ? "met" : "NOT met";
    console.log(`\nmemory: ${IDLE_USERS} idle users on lesson 05 (each join announced to all)`);
    console.log(`  server RSS at start: ${mib(before)} (${megabytes(before)})`);
    console.log(
      `  server RSS with ${IDLE_USERS} users: ${mib(after)} (${megabytes(after)})  (target < 64 MiB: ${verdict})`,
    );
  } finally {
    load.kill();
    child.kill();
  }
}
