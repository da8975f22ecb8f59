/**
 * Lesson 05 — A chat server that holds up
 *
 * What it teaches: many clients sharing state, and the three things that break a naive chat server —
 * a slow client, a hostile client, and a client that just goes away. The protocol (usable from `nc`):
 *
 *   → CONNECT alice            first line: a name, 1–32 of A–Z a–z 0–9 _ -, unique ignoring case
 *   ← OK welcome alice, 2 users online
 *   ← ERR name taken: alice    (or: missing name, invalid name, server full) — send CONNECT again on the
 *                              same connection
 *   → hello everyone           after OK, every line goes to every user, the sender too…
 *   ← alice: hello everyone    …as `name: text`
 *   ← * bob joined             server notices start with `* `
 *   → /who   ← * online (2): alice, bob   (the count, then at most 100 names, sorted)
 *   → /quit  ← * bye
 *   ← ERR line too long (max 4096 bytes)   ← ERR slow down   (flood control; the line is dropped)
 *   ← * disconnected: idle for 60 s        (then the server closes the connection; before OK it is
 *                                          `ERR registration timeout for 60 s`)
 *
 * The book's server (chapter 8) and what this one does instead:
 * - `message.split(' ')` crashed on `CONNECT` without a name or with extra spaces → every malformed first
 *   line gets an `ERR` with the reason, and the client may try again.
 * - A second `CONNECT alice` silently replaced the first alice → names are unique, ignoring case.
 * - A normal EOF announced "left" but kept the user → every way out (/quit, EOF, reset, idle, slow-consumer
 *   cut, shutdown) goes through one `depart()`, which removes the user once and tells the others once.
 * - The idle timeout removed users without telling anyone, and measured the time to a *complete* line with
 *   `wait_for(readline(), 60)` → one sweep timer checks every user's last complete line (and, before
 *   CONNECT, the time since connecting); the user gets a notice, the others are told.
 * - The broadcast awaited each client's `drain()` in turn, so one client that stopped reading stalled the
 *   whole room → a broadcast never awaits anyone: it queues one shared, encoded buffer on each user's
 *   StreamWriter and moves on. A user whose queue is still over `--sendq` bytes once the kernel has taken
 *   what it will is cut (and the others told).
 *
 * Where the code is: the room's rules — registration, flood control, /who, departures, the idle sweep,
 * the per-turn batched fan-out — are in lib/chat-room.ts, because lesson 07 runs the same room across
 * several processes. This file is the single-process wiring: the room's default parts (a Map of names, a
 * bus that delivers each turn's lines at its end) on lib/streams' line server.
 *
 * Speed: a turn's broadcasts are encoded once, as one buffer every user's writer queues (`writeShared`,
 * never a copy per user), and each writer joins what it holds into one `socket.write()` at the end of the
 * turn — one system call per user per turn, however many messages arrived (lib/chat-room.ts,
 * lib/stream-writer.ts).
 *
 * Why callbacks here, where lesson 04 awaits: lesson 04's `startServer` gives each client an async function
 * that awaits `readLine()` — one promise per line. A chat room never needs to wait: a line arrives, the
 * rules run, replies are queued. So `startLineServer` calls `onLine(user, line)` straight from the socket's
 * `data` handler: no promise, no async frame per line. Measured (`bun run bench echo`, the same echo both
 * ways, side by side on a shared two-core machine): the awaiting server runs at 0.89–0.98× of the
 * callback one. Small for an echo; a chat room pays it on every line of every user, and gains nothing.
 *
 *   asyncio (book)                          here
 *   asyncio.start_server(client_connected)  startLineServer(room.lineHandlers()): onConnect, onLine, onEnd, onClose
 *   await reader.readline()                 onLine(user, line), called synchronously per line
 *   writer.write(); await writer.drain()    user.writer.writeShared(bytes) — never awaited per user
 *   asyncio.wait_for(readline(), 60)        room.startIdleSweep(): one timer over every connection
 *
 * Run it:    bun scripts/05-chat-server.ts [--port 8000] [--idle 60] [--help for every limit]
 * Poke it:   `nc 127.0.0.1 8000` in two more terminals; type `CONNECT ann` in one and `CONNECT bob` in the
 *            other, then chat. Or `bun scripts/06-chat-client.ts` (lesson 06). A line too long to paste
 *            (a terminal cuts a pasted line at 4,095 bytes): `head -c 5000 /dev/zero | tr '\0' x |
 *            (echo CONNECT ann; cat; echo) | nc -q 1 127.0.0.1 8000` → `ERR line too long (max 4096 bytes)`.
 *
 * Builds on: lesson 04 (a server, shared state, graceful shutdown) — its subject, not its `startServer`:
 * lib/line-server.ts (framing with lib/lines, a StreamWriter per user) and lib/chat-room.ts (the rules).
 */
import { parseCommandLine } from "../lib/args.ts";
import { ChatRoom, ROOM_FLAGS, type RoomOptions, roomOptionsFromFlags } from "../lib/chat-room.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import { ListenError, startLineServer } from "../lib/streams.ts";

export { NAME_PATTERN } from "../lib/chat-room.ts";

// ── Step 1: the limits, each a flag ───────────────────────────────────────────────────────────────────

/** The room's limits (lib/chat-room.ts, shared with lesson 07), plus where to listen. */
export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  ...ROOM_FLAGS,
  quiet: { kind: "boolean", help: "do not log joins and departures" },
} as const;

export interface ChatOptions extends RoomOptions {
  host: string;
  port: number;
}

// ── Step 2: the room's rules live in lib/chat-room.ts; here they meet the sockets ─────────────────────

export interface ChatServer {
  room: ChatRoom;
  hostname: string;
  port: number;
  /** Stops accepting and the idle sweep, then shuts the room down. */
  close(): Promise<void>;
}

/**
 * One process, one room: the room's names in a Map, its broadcasts batched per turn of the event loop
 * (ChatRoom's defaults), its users on a line server that calls the room for every line.
 */
export function startChatServer(options: ChatOptions): ChatServer {
  const room = new ChatRoom(options);
  const server = startLineServer(room.lineHandlers(), {
    host: options.host,
    port: options.port,
    maxLineBytes: options.maxLineBytes,
  });
  const stopSweep = room.startIdleSweep();
  return {
    room,
    hostname: server.hostname,
    port: server.port,
    async close() {
      stopSweep();
      server.close();
      await room.shutdown();
    },
  };
}

// ── Step 3: the command line ──────────────────────────────────────────────────────────────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/05-chat-server.ts [flags]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  let server: ChatServer;
  try {
    const log = flags.quiet ? () => {} : (line: string) => console.log(line);
    server = startChatServer({ host: flags.host, port: flags.port, ...roomOptionsFromFlags(flags, log) });
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
  console.log(`listening on ${server.hostname}:${server.port}`);
  const signal = await waitForShutdownSignal();
  console.log(`${signal}: shutting down, telling ${server.room.clients.size} connection(s)`);
  await server.close();
  return 0;
}

if (import.meta.main) process.exit(await main());

/* A real session — the server, then ann and bob (as `nc 127.0.0.1 8000` would show it), then Ctrl+C:

$ bun scripts/05-chat-server.ts
listening on 127.0.0.1:8000
+ ann joined from 127.0.0.1:53866 (1 online)
+ bob joined from 127.0.0.1:53880 (2 online)
- bob quit (1 online)
SIGINT: shutting down, telling 1 connection(s)
- ann shutdown (0 online)

ann > CONNECT ann                     bob > CONNECT Ann
ann < OK welcome ann, 1 user online   bob < ERR name taken: Ann
ann < * bob joined                    bob > CONNECT bob
ann < bob: hi ann                     bob < OK welcome bob, 2 users online
ann > hi bob!                         bob > hi ann
ann < ann: hi bob!                    bob < bob: hi ann
ann < * bob left                      bob < ann: hi bob!
ann < * server shutting down          bob > /who
                                      bob < * online (2): ann, bob
                                      bob > /quit
                                      bob < * bye
*/
