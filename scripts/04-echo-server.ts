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
 *   asyncio                                  here
 *   asyncio.start_server(cb, host, port)  ↔  startServer(onClient, { host, port })
 *   server.sockets[0].getsockname()       ↔  server.port (the real one when 0 was asked)
 *   await reader.readline()               ↔  await reader.readLine()
 *   writer.write(data); await drain()     ↔  writer.write(data); await writer.drain()
 *   writer.get_extra_info("peername")     ↔  writer.peer
 *
 * Run it:    bun scripts/04-echo-server.ts [--host 127.0.0.1] [--port 8000] [--max-line BYTES] [--quiet]
 * Poke it:   in a second and third terminal, `nc 127.0.0.1 8000`, and type. Each greeting counts the others.
 *            (No nc? `bun scripts/06-chat-client.ts` speaks to chat servers; for echo, `telnet` works too.)
 * Stop it:   Ctrl+C — connected clients are told, everything queued is flushed, exit code 0.
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
  type StreamReader,
  type StreamServer,
  type StreamWriter,
  startServer,
} from "../lib/streams.ts";

/** How long shutdown waits for clients to take their last bytes before cutting them: 2 s. */
const SHUTDOWN_GRACE_MS = 2000;

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  "max-line": { kind: "int", default: DEFAULT_LIMIT, min: 1, help: "longest line echoed, in bytes" },
  quiet: { kind: "boolean", help: "do not log each connection" },
} as const;

// ── Step 1: what one client gets — its own coroutine ──────────────────────────────────────────────────

/** The greeting: how many *other* clients are connected right now. */
export function greeting(others: number): string {
  return `welcome! ${others} other client${others === 1 ? " is" : "s are"} connected. Type a line and it comes back.\n`;
}

async function serveClient(reader: StreamReader, writer: StreamWriter, clients: Set<StreamWriter>, log: Log) {
  writer.write(greeting(clients.size));
  clients.add(writer);
  log(`+ ${writer.peer} connected (${clients.size} connected)`);
  try {
    for (;;) {
      let line: Uint8Array;
      try {
        line = await reader.readLine();
      } catch (error) {
        // readLine skipped the whole over-long line: say so, and the connection goes on.
        if (!(error instanceof LimitOverrunError)) throw error;
        writer.write(`ERR line too long: ${error.consumed} bytes, the limit is ${reader.limit}\n`);
        continue;
      }
      if (line.length === 0) break; // EOF: the client is done
      writer.write(line);
      // The brake: a client that sends faster than it reads waits here, not in our memory.
      await writer.drain();
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
  } finally {
    clients.delete(writer);
    writer.close();
    log(`- ${writer.peer} left (${clients.size} connected)`);
  }
}

// ── Step 2: the server, and how it shuts down ─────────────────────────────────────────────────────────

type Log = (line: string) => void;

export interface EchoServer {
  server: StreamServer;
  /** Writers of the connected clients. */
  clients: Set<StreamWriter>;
  /** Stops accepting, tells every client, flushes and closes them (cutting any still there after 2 s). */
  shutdown(): Promise<void>;
}

export async function startEchoServer(
  options: { host?: string; port?: number; maxLine?: number; log?: Log } = {},
): Promise<EchoServer> {
  const clients = new Set<StreamWriter>();
  const log = options.log ?? (() => {});
  const server = await startServer((reader, writer) => serveClient(reader, writer, clients, log), {
    host: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    limit: options.maxLine ?? DEFAULT_LIMIT,
  });
  async function shutdown() {
    server.close();
    for (const writer of clients) writer.write("* server shutting down\n");
    await closeAll(clients, SHUTDOWN_GRACE_MS);
  }
  return { server, clients, shutdown };
}

// ── Step 3: the command line ──────────────────────────────────────────────────────────────────────────

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
      log: flags.quiet ? undefined : (line) => console.log(line),
    });
  } catch (error) {
    console.error(`error: cannot listen on ${flags.host}:${flags.port}: ${(error as Error).message}`);
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
