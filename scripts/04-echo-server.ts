/**
 * Lesson 04 — An echo server on startServer (asyncio.start_server)
 *
 * What it teaches: the server side of lib/streams. `startServer(onClient)` listens, and for every
 * connection calls `onClient(reader, writer)` — asyncio's `client_connected_cb`. Each client gets its own
 * async function that simply loops `await reader.readLine()` → `writer.write(line)`; the event loop runs
 * thousands of them at once, because every `await` hands control back while that client has nothing to say.
 *
 * Each client is greeted with how many *other* clients are connected: one Set of writers is the shared
 * state. (The book's broadcast version removed writers from its list while iterating over it; here each
 * client removes only itself, in a `finally`, whatever way it left.)
 *
 * The write side has a trap, and `--demo-drain` shows it (Step 4). `writer.write()` is not a coroutine: it
 * appends to a queue and returns at once, whether the client reads or not — asyncio's `write()` appends to
 * the transport's buffer the same way. A client that sends and never reads makes that queue grow without
 * bound: the demo's server, with the `await writer.drain()` of Step 1 left out, queues 10 MiB more every
 * second, and its RSS follows. With it, the queue stays at the high-water mark (64 KiB): `drain()` waits
 * until the queue is back under it, so the server stops reading, the client's own sends back up, and the
 * memory is the kernel's socket buffers — bounded — not ours.
 *
 * Two limits keep a server's memory and sockets bounded whatever clients do: `--max-clients` (past it, a
 * newcomer gets `ERR server full` and is closed) and `--idle` (a client silent that long — no complete line
 * — is told and disconnected, by one sweep timer over every client, as in lesson 05).
 *
 *   asyncio                                  here
 *   asyncio.start_server(cb, host, port)  ↔  startServer(onClient, { host, port })
 *   server.sockets[0].getsockname()       ↔  server.port (the real one when 0 was asked)
 *   await reader.readline()               ↔  await reader.readLine()
 *   writer.write(data) — not a coroutine  ↔  writer.write(data) — queues, returns at once
 *   await writer.drain()                  ↔  await writer.drain() — waits while > 64 KiB are queued
 *   transport.get_write_buffer_size()     ↔  writer.bufferedBytes
 *   writer.get_extra_info("peername")     ↔  writer.peer
 *
 * Run it:    bun scripts/04-echo-server.ts [--port 8000] [--max-line BYTES] [--max-clients N] [--idle SECONDS]
 *            bun scripts/04-echo-server.ts --demo-drain     # ~9 s: the memory issue, then the brake; no network
 * Poke it:   in a second and third terminal, `nc 127.0.0.1 8000`, and type. Each greeting counts the others.
 *            (No nc? `bun scripts/06-chat-client.ts` speaks to chat servers; for echo, `telnet` works too.)
 *            Too long a line: a terminal cuts what you paste at 4,095 bytes, so generate one instead —
 *            `head -c 100000 /dev/zero | tr '\0' x | nc -q 1 127.0.0.1 8000` (the reply is `ERR line too
 *            long: 100000 bytes and no newline, the limit is 65536`), or start with --max-line 16 and type
 *            17 characters: `ERR line too long: 17 bytes before the newline, the limit is 16` (the limit
 *            counts what comes before the newline; telnet's `\r` counts too).
 * Stop it:   Ctrl+C — connected clients are told, everything queued is flushed, exit code 0. (An nc client
 *            shows `* server shutting down` and stays open: OpenBSD nc quits only when you press Enter or
 *            Ctrl+C there. Same after `* disconnected: idle for 60 s`.)
 * Break it:  scripts/naive/echo-no-drain.ts is this server without `await writer.drain()`. Start both, then
 *            send each 64 MiB that is never read back (scripts/naive/break.ts no-read):
 *              bun scripts/naive/echo-no-drain.ts --port 8001        bun scripts/04-echo-server.ts
 *              bun scripts/naive/break.ts no-read --port 8001
 *              → BROKEN: the server took all 64.0 MiB while I read nothing back — it holds the echoes in
 *                its memory (server pid 27472: rss 31.8 MiB → 128.9 MiB)
 *              bun scripts/naive/break.ts no-read --port 8000
 *              → HOLDS: the server stopped taking after 11.8 MiB of 64.0 MiB (kernel buffers included) —
 *                it waits in drain() until I read (server pid 27474: rss 32.1 MiB → 44.9 MiB)
 *
 * Builds on: lib/streams.ts (lesson 02's StreamReader/StreamWriter, here from the server side).
 */
import { parseCommandLine } from "../lib/args.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import {
  ConnectionLostError,
  closeAll,
  DEFAULT_LIMIT,
  LimitOverrunError,
  ListenError,
  openConnection,
  type StreamReader,
  type StreamServer,
  type StreamWriter,
  startServer,
} from "../lib/streams.ts";

/**
 * How long a client we close may take to read its last lines (and close its own half) before it is cut —
 * at shutdown, when refused, when idle: 2 s. Without it, a client that reads nothing keeps its socket.
 */
const CLOSE_GRACE_MS = 2000;

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  "max-line": {
    kind: "int",
    default: DEFAULT_LIMIT,
    min: 1,
    value: "BYTES",
    help: "longest line echoed, in bytes",
  },
  // 1,000: each client may hold ~2 × --max-line being read and 64 KiB queued to send — at most ~200 MB in
  // all with the defaults, and well under a default open-files limit of 1,024.
  "max-clients": { kind: "int", default: 1000, min: 1, help: "clients connected at once; more get ERR" },
  idle: {
    kind: "number",
    default: 60,
    min: 0.1,
    value: "SECONDS",
    help: "seconds without a complete line before a client is cut",
  },
  quiet: { kind: "boolean", help: "do not log each connection" },
  "demo-drain": {
    kind: "boolean",
    help: "watch the memory issue: a client that never reads, 4 s without drain(), 4 s with it; then exit",
  },
} as const;

// ── Step 1: what one client gets — its own coroutine ──────────────────────────────────────────────────

/** The greeting: how many *other* clients are connected right now. */
export function greeting(others: number): string {
  return `welcome! ${others} other client${others === 1 ? " is" : "s are"} connected. Type a line and it comes back.\n`;
}

/**
 * The reply to a line over the limit. The limit counts the bytes before the `\n` (a `\r` sent by telnet
 * counts too), so the reply counts the same bytes: 17 typed characters are "17 bytes", not 18.
 */
export function tooLongReply(error: LimitOverrunError, limit: number): string {
  const length = error.endsWithNewline
    ? `${error.consumed - 1} bytes before the newline`
    : `${error.consumed} bytes and no newline`;
  return `ERR line too long: ${length}, the limit is ${limit}\n`;
}

/** The reply to a newcomer past --max-clients: `ERR server full (1 client)`, `… (1000 clients)`. */
export function serverFullReply(maxClients: number): string {
  return `ERR server full (${maxClients} client${maxClients === 1 ? "" : "s"})\n`;
}

async function serveClient(reader: StreamReader, writer: StreamWriter, shared: Clients, log: Log) {
  const { clients, lastLineAt } = shared;
  if (clients.size >= shared.maxClients) {
    writer.write(serverFullReply(shared.maxClients));
    writer.close(CLOSE_GRACE_MS);
    return;
  }
  writer.write(greeting(clients.size));
  clients.add(writer);
  lastLineAt.set(writer, performance.now());
  log(`+ ${writer.peer} connected (${clients.size} connected)`);
  try {
    for (;;) {
      let line: Uint8Array;
      try {
        line = await reader.readLine();
      } catch (error) {
        // readLine skipped the whole over-long line: say so, and the connection goes on.
        if (!(error instanceof LimitOverrunError)) throw error;
        if (writer.isClosing()) break; // shutdown or the idle sweep closed it meanwhile
        writer.write(tooLongReply(error, reader.limit));
        continue;
      }
      // EOF: the client is done; or the idle sweep closed this writer while we waited.
      if (line.length === 0 || writer.isClosing()) break;
      lastLineAt.set(writer, performance.now());
      writer.write(line);
      // The brake: a client that sends faster than it reads waits here, not in our memory. Without this
      // line (`drain: false`, the first half of --demo-drain, Step 5) every echo piles up in the queue.
      if (shared.drain) await writer.drain();
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
  } finally {
    clients.delete(writer);
    lastLineAt.delete(writer);
    writer.close(CLOSE_GRACE_MS);
    log(`- ${writer.peer} left (${clients.size} connected)`);
  }
}

// ── Step 2: the limits — how many, and how long silent ────────────────────────────────────────────────

type Log = (line: string) => void;

/** The shared state: who is connected, and when each last sent a complete line. */
interface Clients {
  clients: Set<StreamWriter>;
  lastLineAt: Map<StreamWriter, number>;
  maxClients: number;
  /** Await `writer.drain()` after each echo. */
  drain: boolean;
}

/**
 * One pass over every client: who has been silent for more than `idleSeconds`? They are told and closed —
 * gently (what is queued is still sent), then cut if they are not reading that either. Their coroutine
 * ends when its `readLine()` sees the connection close.
 */
function sweepIdle({ clients, lastLineAt }: Clients, idleSeconds: number, log: Log): void {
  const now = performance.now();
  for (const writer of clients) {
    if (now - (lastLineAt.get(writer) ?? now) <= idleSeconds * 1000 || writer.isClosing()) continue;
    log(`- ${writer.peer} idle for ${idleSeconds} s`);
    writer.write(`* disconnected: idle for ${idleSeconds} s\n`);
    writer.close(CLOSE_GRACE_MS);
  }
}

// ── Step 3: the server, and how it shuts down ─────────────────────────────────────────────────────────

export interface EchoServer {
  server: StreamServer;
  /** Writers of the connected clients. */
  clients: Set<StreamWriter>;
  /** Stops accepting, tells every client, flushes and closes them (cutting any still there after 2 s). */
  shutdown(): Promise<void>;
}

export interface EchoOptions {
  host?: string;
  port?: number;
  maxLine?: number;
  /** Default {@link FLAGS}' `max-clients`. */
  maxClients?: number;
  /** Seconds; default {@link FLAGS}' `idle`. */
  idleSeconds?: number;
  /**
   * Await `writer.drain()` after each echo (default true). False only to watch what goes wrong without it
   * (--demo-drain): the queue of a client that never reads grows without bound.
   */
  drain?: boolean;
  log?: Log;
}

export async function startEchoServer(options: EchoOptions = {}): Promise<EchoServer> {
  const shared: Clients = {
    clients: new Set<StreamWriter>(),
    lastLineAt: new Map(),
    maxClients: options.maxClients ?? FLAGS["max-clients"].default,
    drain: options.drain ?? true,
  };
  const { clients } = shared;
  const log = options.log ?? (() => {});
  const server = await startServer((reader, writer) => serveClient(reader, writer, shared, log), {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    limit: options.maxLine ?? DEFAULT_LIMIT,
  });
  const idleSeconds = options.idleSeconds ?? FLAGS.idle.default;
  // One timer for everyone; a quarter of the idle time keeps the error under 25 % (and under 1 s).
  const sweeper = setInterval(() => sweepIdle(shared, idleSeconds, log), Math.min(1000, idleSeconds * 250));
  async function shutdown() {
    clearInterval(sweeper);
    server.close();
    for (const writer of clients) writer.write("* server shutting down\n");
    await closeAll(clients, CLOSE_GRACE_MS);
  }
  return { server, clients, shutdown };
}

// ── Step 4: the demo — the memory issue, and the brake ────────────────────────────────────────────────
//
// `writer.write()` is not a coroutine: it appends to the writer's queue and returns at once, whether the
// peer reads or not. asyncio's `StreamWriter.write()` is the same — it appends to the transport's buffer
// and returns; only `await writer.drain()` waits, until that buffer is back under its high-water mark.
// So an echo server whose client sends and never reads keeps every echo it cannot send, in memory, for
// as long as the client likes: the "potential memory issue". `--demo-drain` runs this server twice with
// such a client, once with the `await writer.drain()` of Step 1 left out and once with it, and prints the
// server's queue (`writer.bufferedBytes`) and this process's RSS once a second.
//
// Without drain the queue grows by what the client sends, 10 MiB a second, and the RSS with it. With
// drain the queue stays at about the high-water mark (64 KiB): the server stops reading while it waits,
// its reader pauses the socket, the kernel's buffers fill (~9.7 MiB on loopback, both directions), and the
// client's own `await drain()` waits — "client sent" stops growing. The brake reaches the sender.

/** The demo client's line: 16 KiB, newline included (under the reader's 64 KiB limit). */
const DEMO_LINE_BYTES = 16 * 1024;
/** It sends 32 lines every 50 ms: 512 KiB per tick, 10 MiB/s — enough to see, not enough to hurt. */
const DEMO_LINES_PER_TICK = 32;
const DEMO_TICK_MS = 50;
/** Each half of the demo lasts 4 s, one report a second. */
const DEMO_SECONDS = 4;
const MiB = 1024 * 1024;

/** `81920` → `80.0 KiB`; `12582912` → `12.0 MiB`. */
export function formatBytes(bytes: number): string {
  return bytes < MiB ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / MiB).toFixed(1)} MiB`;
}

const rssMiB = () => `${Math.round(process.memoryUsage().rss / MiB)} MiB`;

/**
 * A client that sends 16 KiB lines at 10 MiB/s and never reads the echo (after the greeting). Its own
 * sending loop writes and awaits `drain()`, so it is held back when the server stops reading.
 */
async function startFloodingClient(port: number) {
  const [reader, writer] = await openConnection("127.0.0.1", port);
  await reader.readLine(); // the greeting — the last thing this client reads
  const line = new Uint8Array(DEMO_LINE_BYTES).fill(0x78); // "xxx…x\n"
  line[DEMO_LINE_BYTES - 1] = 0x0a;
  let written = 0;
  let stopped = false;
  const sending = (async () => {
    while (!stopped) {
      for (let count = 0; count < DEMO_LINES_PER_TICK; count++) writer.write(line);
      written += DEMO_LINES_PER_TICK * DEMO_LINE_BYTES;
      await writer.drain();
      await Bun.sleep(DEMO_TICK_MS);
    }
  })();
  return {
    /** Bytes the kernel took from the client so far (what it wrote, less what still waits in its queue). */
    sentBytes: () => written - writer.bufferedBytes,
    async stop() {
      stopped = true;
      writer.abort();
      await sending.catch(() => {}); // a pending drain() rejects: the connection is gone, as we asked
    },
  };
}

/** One half of the demo: the echo server, with or without drain, against the flooding client. */
async function runDemoHalf(drain: boolean): Promise<void> {
  const label = drain ? "drain" : "no drain";
  console.log(
    drain
      ? "drain: each echo is writer.write(line); await writer.drain() — the high-water mark is 64 KiB"
      : "no drain: each echo is writer.write(line) alone",
  );
  const echo = await startEchoServer({ drain });
  const client = await startFloodingClient(echo.server.port);
  for (let second = 1; second <= DEMO_SECONDS; second++) {
    await Bun.sleep(1000);
    const queued = [...echo.clients][0]?.bufferedBytes ?? 0;
    console.log(
      `${label}: queued ${formatBytes(queued)}, rss ${rssMiB()}, client sent ${formatBytes(client.sentBytes())}`,
    );
  }
  await client.stop();
  await echo.shutdown();
  Bun.gc(true); // the queue is garbage now; collect it so the next half starts from the same RSS
  console.log(`${label}: client gone, its queue freed — rss ${rssMiB()}`);
}

/** --demo-drain: both halves, ~9 s; rss is this whole process (server and client). */
async function demoDrain(): Promise<number> {
  console.log(
    "demo: an echo server, and a client that sends 16 KiB lines at 10 MiB/s and never reads the echo.",
  );
  console.log(
    `${DEMO_SECONDS} s without drain(), then ${DEMO_SECONDS} s with it. rss is this process (server and client): ${rssMiB()} now.`,
  );
  await runDemoHalf(false);
  await runDemoHalf(true);
  return 0;
}

// ── Step 5: the command line ──────────────────────────────────────────────────────────────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/04-echo-server.ts [flags]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  if (flags["demo-drain"]) return await demoDrain();
  let echo: EchoServer;
  try {
    echo = await startEchoServer({
      host: flags.host,
      port: flags.port,
      maxLine: flags["max-line"],
      maxClients: flags["max-clients"],
      idleSeconds: flags.idle,
      log: flags.quiet ? undefined : (line) => console.log(line),
    });
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
  // Handle Ctrl+C before saying we listen: whoever starts us may stop us the moment it reads that line.
  const shutdown = waitForShutdownSignal();
  console.log(`listening on ${echo.server.hostname}:${echo.server.port}`);
  const signal = await shutdown;
  console.log(`${signal}: shutting down, telling ${echo.clients.size} client(s)`);
  await echo.shutdown();
  return 0;
}

if (import.meta.main) process.exit(await main());

/* A real session — the server, two clients (A, B: `nc 127.0.0.1 8000` would show the same), A leaves,
   then Ctrl+C:

$ bun scripts/04-echo-server.ts
listening on 127.0.0.1:8000
+ 127.0.0.1:45556 connected (1 connected)
+ 127.0.0.1:45564 connected (2 connected)
- 127.0.0.1:45556 left (1 connected)
SIGINT: shutting down, telling 1 client(s)
- 127.0.0.1:45564 left (0 connected)

A < welcome! 0 other clients are connected. Type a line and it comes back.
B < welcome! 1 other client is connected. Type a line and it comes back.
B > hello
B < hello
B < * server shutting down

   Too long a line, with --max-line 16 (`printf 'abcdefghijklmnopq\nshort\n' | nc -q 1 127.0.0.1 8000`):

welcome! 0 other clients are connected. Type a line and it comes back.
ERR line too long: 17 bytes before the newline, the limit is 16
short

   And `bun scripts/04-echo-server.ts --demo-drain` (2 cores, shared with other work):

demo: an echo server, and a client that sends 16 KiB lines at 10 MiB/s and never reads the echo.
4 s without drain(), then 4 s with it. rss is this process (server and client): 30 MiB now.
no drain: each echo is writer.write(line) alone
no drain: queued 5.8 MiB, rss 52 MiB, client sent 10.0 MiB
no drain: queued 15.8 MiB, rss 67 MiB, client sent 20.0 MiB
no drain: queued 25.8 MiB, rss 78 MiB, client sent 30.0 MiB
no drain: queued 35.3 MiB, rss 88 MiB, client sent 39.5 MiB
no drain: client gone, its queue freed — rss 42 MiB
drain: each echo is writer.write(line); await writer.drain() — the high-water mark is 64 KiB
drain: queued 63.5 KiB, rss 51 MiB, client sent 9.7 MiB
drain: queued 63.5 KiB, rss 45 MiB, client sent 9.7 MiB
drain: queued 63.5 KiB, rss 45 MiB, client sent 9.7 MiB
drain: queued 63.5 KiB, rss 45 MiB, client sent 9.7 MiB
drain: client gone, its queue freed — rss 45 MiB

   What it shows: without drain the queue grows by all the client sends (less the ~4 MiB the kernel's
   buffers hold), and the RSS with it; with drain it never passes the high-water mark, and "client sent"
   stops at ~9.7 MiB — what loopback's socket buffers hold in both directions — because the client's own
   `await drain()` now waits. The rss is this one process, the client's bounded queue included.
*/
