/**
 * bench/websocket.ts — lesson 08 under load (`bun run bench websocket`), next to Bun's own WebSocket
 * server and the `ws` package, every server driven by the same raw-socket WebSocket load generator
 * (bench/websocket-loadgen.ts) in a process of its own.
 *
 * - fan-out: 500 WebSocket users each sending 5 messages, the next when its own copy returns — lesson 08's
 *   room (each batch encoded once as frames every user's writer shares) vs Bun.serve's native WebSocket
 *   server with `server.publish` (uWebSockets, C++; bench/peers/bun-websocket-chat.ts) vs the `ws` package
 *   under Node.js with one `send()` per recipient (bench/peers/node-ws-chat.mjs) — all lesson 05's protocol.
 * - echo: 50 connections, one message in flight each — lesson 08's /echo vs Bun's native echo.
 *
 * Each server's CPU time per operation (from /proc, median over the rounds) is printed too: on a shared
 * machine a rate moves with the load, while what one operation costs the server hardly does.
 */
import { cpuSeconds } from "./cluster.ts";
import { compare, median, report, startChild } from "./measure.ts";

const ROOT = `${import.meta.dir}/..`;
const FANOUT_USERS = 500;
const FANOUT_MESSAGES = 5;
const ECHO_CONNECTIONS = 50;
const ECHO_ROUND_TRIPS = 1000;

const LESSON_08 = ["bun", `${ROOT}/scripts/08-web-chat.ts`, "--port", "0", "--tcp-port", "0", "--quiet"];
const BUN_NATIVE = ["bun", `${ROOT}/bench/peers/bun-websocket-chat.ts`];
const WS_PACKAGE = ["node", `${ROOT}/bench/peers/node-ws-chat.mjs`];

async function loadgen(...args: (string | number)[]): Promise<{ operations: number; seconds: number }> {
  const child = Bun.spawn(["bun", `${ROOT}/bench/websocket-loadgen.ts`, ...args.map(String)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error(`websocket-loadgen ${args.join(" ")} failed`);
  return JSON.parse(output);
}

/** Starts `servers`, drives each with the load generator in interleaved rounds, reports against the first. */
async function compareServers(
  title: string,
  unit: string,
  servers: Record<string, string[]>,
  load: [mode: string, ...numbers: number[]],
  targets: Record<string, number>,
  rounds: number,
): Promise<void> {
  const started = await Promise.all(
    Object.entries(servers).map(async ([name, argv]) => [name, await startChild(argv)] as const),
  );
  try {
    const [mode, ...numbers] = load;
    const cpuPerOperation = new Map<string, number[]>(started.map(([name]) => [name, []]));
    const results = await compare(
      started.map(([name, { port, child }]) => ({
        name,
        run: async () => {
          const before = cpuSeconds(child.pid);
          const measured = await loadgen(mode, port, ...numbers);
          cpuPerOperation.get(name)!.push((cpuSeconds(child.pid) - before) / measured.operations);
          return measured;
        },
      })),
      rounds,
    );
    report(title, unit, results, started[0]![0], targets);
    const costs = [...cpuPerOperation].map(
      ([name, costs]) => `${name} ${(median(costs) * 1e6).toFixed(2)} µs`,
    );
    console.log(`  server CPU per operation (the generator's warm-up included): ${costs.join(", ")}`);
  } finally {
    for (const [, { child }] of started) child.kill();
  }
}

export function benchWebSocketFanout(rounds = 5): Promise<void> {
  return compareServers(
    `WebSocket fan-out: ${FANOUT_USERS} users × ${FANOUT_MESSAGES} messages`,
    "deliveries/s",
    {
      "lesson 08 (our WebSocket, the room)": LESSON_08,
      "Bun.serve websocket + publish": BUN_NATIVE,
      "ws package (Node.js)": WS_PACKAGE,
    },
    ["fanout", FANOUT_USERS, FANOUT_MESSAGES],
    { "Bun.serve websocket + publish": 1.0, "ws package (Node.js)": 20 },
    rounds,
  );
}

export function benchWebSocketEcho(rounds = 7): Promise<void> {
  return compareServers(
    `WebSocket echo: ${ECHO_CONNECTIONS} connections, one message in flight each`,
    "round trips/s",
    { "lesson 08 /echo": LESSON_08, "Bun.serve websocket echo": BUN_NATIVE },
    ["echo", ECHO_CONNECTIONS, ECHO_ROUND_TRIPS],
    { "Bun.serve websocket echo": 0.9 },
    rounds,
  );
}

export async function benchWebSocket(): Promise<void> {
  await benchWebSocketFanout();
  await benchWebSocketEcho();
}
