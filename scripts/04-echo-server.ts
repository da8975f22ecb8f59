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
 * Two limits keep a server's memory and sockets bounded whatever clients do: `--max-clients` (past it, a
 * newcomer gets `ERR server full` and is closed) and `--idle` (a client silent that long — no complete line
 * — is told and disconnected, by one sweep timer over every client, as in lesson 05).
 *
 *   asyncio                                  here
 *   asyncio.start_server(cb, host, port)  ↔  startServer(onClient, { host, port })
 *   server.sockets[0].getsockname()       ↔  server.port (the real one when 0 was asked)
 *   await reader.readline()               ↔  await reader.readLine()
 *   writer.write(data); await drain()     ↔  writer.write(data); await writer.drain()
 *   writer.get_extra_info("peername")     ↔  writer.peer
 *
 * Run it:    bun scripts/04-echo-server.ts [--port 8000] [--max-line BYTES] [--max-clients N] [--idle SECONDS]
 * Poke it:   in a second and third terminal, `nc 127.0.0.1 8000`, and type. Each greeting counts the others.
 *            (No nc? `bun scripts/06-chat-client.ts` speaks to chat servers; for echo, `telnet` works too.)
 *            Too long a line: a terminal cuts what you paste at 4,095 bytes, so generate one instead —
 *            `head -c 100000 /dev/zero | tr '\0' x | nc -q 1 127.0.0.1 8000` (or start with --max-line 16
 *            and type 17 characters): the reply is `ERR line too long: …`.
 * Stop it:   Ctrl+C — connected clients are told, everything queued is flushed, exit code 0.
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
} as const;

// ── Step 1: what one client gets — its own coroutine ──────────────────────────────────────────────────

/** The greeting: how many *other* clients are connected right now. */
export function greeting(others: number): string {
  return `welcome! ${others} other client${others === 1 ? " is" : "s are"} connected. Type a line and it comes back.\n`;
}

async function serveClient(reader: StreamReader, writer: StreamWriter, shared: Clients, log: Log) {
  const { clients, lastLineAt } = shared;
  if (clients.size >= shared.maxClients) {
    writer.write(`ERR server full (${shared.maxClients} clients)\n`);
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
        writer.write(`ERR line too long: ${error.consumed} bytes, the limit is ${reader.limit}\n`);
        continue;
      }
      // EOF: the client is done; or the idle sweep closed this writer while we waited.
      if (line.length === 0 || writer.isClosing()) break;
      lastLineAt.set(writer, performance.now());
      writer.write(line);
      // The brake: a client that sends faster than it reads waits here, not in our memory.
      await writer.drain();
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
  log?: Log;
}

export async function startEchoServer(options: EchoOptions = {}): Promise<EchoServer> {
  const shared: Clients = {
    clients: new Set<StreamWriter>(),
    lastLineAt: new Map(),
    maxClients: options.maxClients ?? FLAGS["max-clients"].default,
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

// ── Step 4: the command line ──────────────────────────────────────────────────────────────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/04-echo-server.ts [flags]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
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
  console.log(`listening on ${echo.server.hostname}:${echo.server.port}`);
  const signal = await waitForShutdownSignal();
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
*/
