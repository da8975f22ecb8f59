/**
 * Lesson 05 — A chat server that holds up
 *
 * What it teaches: many clients sharing state, and the three things that break a naive chat server —
 * a slow client, a hostile client, and a client that just goes away. The protocol (usable from `nc`):
 *
 *   → CONNECT alice            first line: a name, 1–32 of A–Z a–z 0–9 _ -, unique ignoring case
 *   ← OK welcome alice, 2 users online: alice, bob
 *   ← ERR name taken: alice    (or: missing name, invalid name, server full) — try again on the same line
 *   → hello everyone           after OK, every line goes to every user, the sender too…
 *   ← alice: hello everyone    …as `name: text`
 *   ← * bob joined             server notices start with `* `
 *   → /who   ← * online (2): alice, bob          → /quit   ← * bye
 *   ← ERR line too long (max 4096 bytes)   ← ERR slow down   (flood control; the line is dropped)
 *   ← * disconnected: idle for 60 s        (then the server closes the connection)
 *
 * The book's server (chapter 8) and what this one does instead:
 * - `message.split(' ')` crashed on `CONNECT` without a name or with extra spaces → every malformed first
 *   line gets an `ERR` with the reason, and the client may try again.
 * - A second `CONNECT alice` silently replaced the first alice → names are unique, ignoring case.
 * - A normal EOF announced "left" but kept the user → every way out (/quit, EOF, reset, idle, slow-consumer
 *   cut, shutdown) goes through one `depart()`, which removes the user once and tells the others once.
 * - The idle timeout removed users without telling anyone, and measured the time to a *complete* line with
 *   `wait_for(readline(), 60)` → one sweep timer checks every user's last complete line; the user gets a
 *   notice, the others are told.
 * - The broadcast awaited each client's `drain()` in turn, so one client that stopped reading stalled the
 *   whole room → a broadcast never awaits anyone: it queues one shared, encoded buffer on each user's
 *   StreamWriter and moves on. A user whose queue is still over `--sendq` bytes once the kernel has taken
 *   what it will is cut (and the others told).
 *
 * Speed: each user's StreamWriter joins everything queued for it in one turn of the event loop into one
 * `socket.write()`; a message is encoded once for all recipients (`writeShared`), never copied per user;
 * lines are framed with lib/lines' LineDecoder right in the `data` handler — no promise per line.
 *
 *   asyncio (book)                          here
 *   asyncio.start_server(client_connected)  Bun.listen({ socket: { open, data, drain, end, close } })
 *   await reader.readline()                 LineDecoder.push(chunk) → onLine(line), synchronously
 *   writer.write(); await writer.drain()    user.writer.writeShared(bytes) — never awaited per user
 *   asyncio.wait_for(readline(), 60)        one setInterval sweep over every connection's last line
 *
 * Run it:    bun scripts/05-chat-server.ts [--port 8000] [--idle 60] [--help for every limit]
 * Poke it:   `nc 127.0.0.1 8000` in two more terminals; type `CONNECT ann` in one and `CONNECT bob` in the
 *            other, then chat. Or `bun scripts/06-chat-client.ts` (lesson 06).
 *
 * Builds on: lesson 04 (a server, shared state, graceful shutdown), lib/lines.ts (framing) and
 * lib/streams.ts (StreamWriter: the send queue that never loses bytes).
 */
import type { Socket, TCPSocketListener } from "bun";
import { parseCommandLine } from "../lib/args.ts";
import { LineDecoder } from "../lib/lines.ts";
import { stripControls } from "../lib/sanitize.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import { atEndOfTurn, closeAll, StreamWriter } from "../lib/streams.ts";

// ── Step 1: the limits, each a flag ───────────────────────────────────────────────────────────────────

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  idle: {
    kind: "number",
    default: 60,
    min: 0.1,
    help: "seconds without a complete line before a user is disconnected",
  },
  // 4 KiB: a chat line is a sentence or a paste, not a file; it also bounds what a line costs every user.
  "max-line": { kind: "int", default: 4096, min: 16, help: "longest line in bytes; longer ones get ERR" },
  // 256 KiB: ~3,000 typical messages of backlog — far more than a reader that is merely slow needs.
  sendq: { kind: "int", default: 256 * 1024, min: 1024, help: "bytes queued for one user before it is cut" },
  // 10 lines at once, then 5 a second: a paste of a few lines passes, a flood does not.
  "flood-burst": { kind: "int", default: 10, min: 1, help: "lines a user may send in a burst" },
  "flood-rate": {
    kind: "number",
    default: 5,
    min: 0.01,
    help: "lines per second a user may send after the burst",
  },
  // 10,000 users cost < 64 MB (see README); the operating system's file limit is usually 1,024–65,536.
  "max-users": {
    kind: "int",
    default: 10_000,
    min: 1,
    help: "users online at once (and connections still registering)",
  },
  quiet: { kind: "boolean", help: "do not log joins and departures" },
} as const;

export interface ChatOptions {
  host: string;
  port: number;
  idleSeconds: number;
  maxLineBytes: number;
  sendQueueBytes: number;
  floodBurst: number;
  floodRate: number;
  maxUsers: number;
  log: (line: string) => void;
}

export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** How long shutdown waits for clients to take their last bytes before cutting them: 2 s. */
const SHUTDOWN_GRACE_MS = 2000;

// ── Step 2: one connection — its send queue, its line framing, its state ──────────────────────────────

/** Why a user leaves; each has its own notice to the others. */
type Departure = "quit" | "left" | "lost" | "idle" | "not reading" | "shutdown";

const DEPARTURE_NOTICES: Record<Departure, (name: string) => string> = {
  quit: (name) => `* ${name} left`,
  left: (name) => `* ${name} left`,
  lost: (name) => `* ${name} left (connection lost)`,
  idle: (name) => `* ${name} was disconnected (idle)`,
  "not reading": (name) => `* ${name} was disconnected (not reading)`,
  shutdown: () => "",
};

class Client {
  /** Null until CONNECT succeeds. */
  name: string | null = null;
  /** `performance.now()` of the last complete line (or of connecting). */
  lastLineAt = performance.now();
  /** Flood control: a token bucket, refilled at floodRate per second up to floodBurst. */
  tokens: number;
  tokensAt = performance.now();
  gone = false;
  readonly maxLineBytes: number;
  readonly decoder: LineDecoder;

  constructor(
    readonly writer: StreamWriter,
    readonly room: ChatRoom,
  ) {
    this.tokens = room.options.floodBurst;
    this.maxLineBytes = room.options.maxLineBytes;
    // The client itself is the decoder's handler (onLine, onLineTooLong): no closures per connection.
    this.decoder = new LineDecoder(this);
  }

  onLine(line: string): void {
    this.room.handleLine(this, line);
  }

  onLineTooLong(): void {
    this.room.lineTooLong(this);
  }
}

// ── Step 3: the room — every rule of the protocol ─────────────────────────────────────────────────────

const utf8 = new TextEncoder();

export class ChatRoom {
  /** Registered users by lower-cased name: names are unique ignoring case. */
  readonly users = new Map<string, Client>();
  /** Every open connection, registered or not. */
  readonly clients = new Set<Client>();
  #shuttingDown = false;
  #checkScheduled = false;
  /** Lines broadcast during this turn of the event loop, sent at its end. */
  #turn: string[] = [];
  /** Users who joined during this turn → index in #turn of the first line they should get. */
  readonly #joinedDuringTurn = new Map<Client, number>();

  constructor(readonly options: ChatOptions) {}

  /**
   * A new connection. At most `maxUsers` connections may be waiting to register at once (on top of the
   * users): past that, a newcomer gets `ERR server full` and is closed — a flood of idle connections
   * cannot use up the server's sockets and memory.
   */
  accept(writer: StreamWriter): Client {
    const client = new Client(writer, this);
    this.clients.add(client);
    if (this.clients.size - this.users.size > this.options.maxUsers) {
      this.#send(client, `ERR server full (${this.options.maxUsers} users)`);
      this.depart(client, "left");
    }
    return client;
  }

  handleLine(client: Client, rawLine: string): void {
    if (client.gone) return;
    client.lastLineAt = performance.now();
    if (!this.#takeToken(client)) return this.#send(client, "ERR slow down");
    const line = stripControls(rawLine).trim();
    if (client.name === null) return this.#register(client, line);
    if (line === "") return;
    if (line.startsWith("/")) return this.#command(client, line);
    this.broadcast(`${client.name}: ${line}`);
  }

  lineTooLong(client: Client): void {
    client.lastLineAt = performance.now();
    this.#send(client, `ERR line too long (max ${this.options.maxLineBytes} bytes)`);
  }

  /** `CONNECT <name>`: validate, check uniqueness and room, then welcome and announce. */
  #register(client: Client, line: string): void {
    const words = line.split(/\s+/);
    if (words[0]?.toUpperCase() !== "CONNECT") return this.#send(client, "ERR send CONNECT <name> first");
    if (words.length < 2 || words[1] === "")
      return this.#send(client, "ERR missing name: send CONNECT <name>");
    if (words.length > 2) return this.#send(client, "ERR invalid name: one word, no spaces");
    const name = words[1]!;
    if (!NAME_PATTERN.test(name)) {
      return this.#send(client, "ERR invalid name: use 1-32 letters, digits, _ or -");
    }
    if (this.users.has(name.toLowerCase())) return this.#send(client, `ERR name taken: ${name}`);
    if (this.users.size >= this.options.maxUsers) {
      return this.#send(client, `ERR server full (${this.options.maxUsers} users)`);
    }
    client.name = name;
    this.users.set(name.toLowerCase(), client);
    this.#send(
      client,
      `OK welcome ${name}, ${this.users.size} user${this.users.size === 1 ? "" : "s"} online`,
    );
    this.broadcast(`* ${name} joined`);
    this.#joinedDuringTurn.set(client, this.#turn.length);
    this.options.log(`+ ${name} joined from ${client.writer.peer} (${this.users.size} online)`);
  }

  #command(client: Client, line: string): void {
    const command = line.split(/\s+/, 1)[0]!.toLowerCase();
    if (command === "/who") {
      const names = [...this.users.values()].map((user) => user.name);
      return this.#send(client, `* online (${names.length}): ${names.join(", ")}`);
    }
    if (command === "/quit") {
      this.#send(client, "* bye");
      return this.depart(client, "quit");
    }
    this.#send(client, `ERR unknown command ${command} (commands: /who, /quit)`);
  }

  /**
   * Sends one line to every user. Lines broadcast during one turn of the event loop are sent together at
   * its end: encoded once, as one buffer that every user's writer queues (`writeShared`) — one buffer and
   * one system call per user per turn, however many messages arrived. Nobody is awaited. A user who joined
   * during the turn gets only the lines after their own join notice. (Replies to one user, like `OK` or
   * `ERR`, are written at once, so they can arrive just before the broadcasts of the same turn.)
   */
  broadcast(text: string): void {
    if (this.#turn.length === 0) atEndOfTurn(this.#deliverTurn);
    this.#turn.push(`${text}\n`);
  }

  readonly #deliverTurn = (): void => {
    const lines = this.#turn;
    this.#turn = [];
    const everything = utf8.encode(lines.join(""));
    const lineStarts = this.#joinedDuringTurn.size > 0 ? byteOffsets(lines) : [];
    for (const user of this.users.values()) {
      const from = this.#joinedDuringTurn.get(user);
      if (from === undefined) user.writer.writeShared(everything);
      // A late joiner gets a view of the tail of the same buffer: no copy per user.
      else if (from < lines.length) user.writer.writeShared(everything.subarray(lineStarts[from]));
    }
    this.#joinedDuringTurn.clear();
    this.#checkSendQueuesSoon();
  };
  #send(client: Client, text: string): void {
    if (client.gone) return;
    client.writer.write(`${text}\n`);
    this.#checkSendQueuesSoon();
  }

  /**
   * Cuts the users whose queue is over `--sendq` — once this turn's writes have been offered to the kernel
   * (writers flush in the end-of-turn pass, a `setImmediate` queued before this one). What is left queued
   * then is what the client has not read; a burst that the kernel took at once does not count.
   */
  #checkSendQueuesSoon(): void {
    if (this.#checkScheduled) return;
    this.#checkScheduled = true;
    setImmediate(() => {
      this.#checkScheduled = false;
      const limit = this.options.sendQueueBytes;
      for (const client of this.clients) {
        if (client.writer.bufferedBytes > limit) this.depart(client, "not reading");
      }
    });
  }

  /** Refills the bucket for the time passed, then takes one token if there is one. */
  #takeToken(client: Client): boolean {
    const now = performance.now();
    const { floodBurst, floodRate } = this.options;
    client.tokens = Math.min(floodBurst, client.tokens + ((now - client.tokensAt) / 1000) * floodRate);
    client.tokensAt = now;
    if (client.tokens < 1) return false;
    client.tokens -= 1;
    return true;
  }

  /**
   * The one way out. Removes the client once, tells the others once, and closes the connection: gently
   * (what is queued is still sent) unless the client is not reading, when waiting would be pointless.
   */
  depart(client: Client, why: Departure): void {
    if (client.gone) return;
    client.gone = true;
    this.clients.delete(client);
    if (why === "not reading") client.writer.abort();
    else if (!client.writer.isClosing()) client.writer.close();
    if (client.name === null) return;
    this.users.delete(client.name.toLowerCase());
    if (!this.#shuttingDown) this.broadcast(DEPARTURE_NOTICES[why](client.name));
    this.options.log(`- ${client.name} ${why} (${this.users.size} online)`);
  }

  /** One pass over every connection: who has been silent too long? */
  sweepIdle(now = performance.now()): void {
    const limitMs = this.options.idleSeconds * 1000;
    for (const client of this.clients) {
      if (now - client.lastLineAt <= limitMs) continue;
      const reason = client.name === null ? "ERR registration timeout" : "* disconnected: idle";
      this.#send(client, `${reason} for ${this.options.idleSeconds} s`);
      this.depart(client, "idle");
    }
  }

  /** Tells everyone, closes every connection after its queue is sent, and waits (2 s at most). */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    // Taken before depart() empties the set: these are the writers to wait for (and to cut after the grace).
    const writers = [...this.clients].map((client) => client.writer);
    for (const client of this.clients) {
      this.#send(client, "* server shutting down");
      this.depart(client, "shutdown");
    }
    await closeAll(writers, SHUTDOWN_GRACE_MS);
  }
}

/** Where each of `lines` starts in their UTF-8 encoding, joined. */
function byteOffsets(lines: string[]): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (const line of lines) {
    offsets.push(offset);
    offset += Buffer.byteLength(line, "utf8");
  }
  return offsets;
}

// ── Step 4: wiring the room to Bun's socket handlers ──────────────────────────────────────────────────

export interface ChatServer {
  room: ChatRoom;
  hostname: string;
  port: number;
  /** Stops accepting and the idle sweep, then shuts the room down. */
  close(): Promise<void>;
}

export function startChatServer(options: ChatOptions): ChatServer {
  const room = new ChatRoom(options);
  const listener: TCPSocketListener<Client> = Bun.listen<Client>({
    hostname: options.host,
    port: options.port,
    socket: {
      open(socket) {
        socket.data = room.accept(new StreamWriter(socket as Socket<unknown>));
      },
      data(socket, chunk) {
        socket.data.decoder.push(chunk);
      },
      drain(socket) {
        socket.data.writer.onDrain();
      },
      end(socket) {
        // EOF (FIN): an unterminated last line still counts (`nc` sends one at Ctrl+D), then the user left.
        socket.data.decoder.end();
        room.depart(socket.data, "left");
      },
      close(socket, error) {
        room.depart(socket.data, error ? "lost" : "left");
        socket.data.writer.onClose(error);
      },
      error(socket) {
        room.depart(socket.data, "lost");
      },
    },
  });
  // One timer for everyone; a quarter of the idle time keeps the error under 25 % (and under 1 s).
  const sweepMs = Math.min(1000, (options.idleSeconds * 1000) / 4);
  const sweeper = setInterval(() => room.sweepIdle(), sweepMs);
  return {
    room,
    hostname: listener.hostname,
    port: listener.port,
    async close() {
      clearInterval(sweeper);
      listener.stop();
      await room.shutdown();
    },
  };
}

// ── Step 5: the command line ──────────────────────────────────────────────────────────────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/05-chat-server.ts [flags]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  let server: ChatServer;
  try {
    server = startChatServer({
      host: flags.host,
      port: flags.port,
      idleSeconds: flags.idle,
      maxLineBytes: flags["max-line"],
      sendQueueBytes: flags.sendq,
      floodBurst: flags["flood-burst"],
      floodRate: flags["flood-rate"],
      maxUsers: flags["max-users"],
      log: flags.quiet ? () => {} : (line) => console.log(line),
    });
  } catch (error) {
    console.error(`error: cannot listen on ${flags.host}:${flags.port}: ${(error as Error).message}`);
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
