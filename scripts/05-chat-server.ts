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
 *   StreamWriter and moves on. A user whose queue stays over `--sendq` bytes for a second once the kernel
 *   has taken what it will (or goes over 64 × `--sendq` at once) is cut, and the others told.
 *
 * Where the code is: all of it is here, in the order a line meets it — the limits (step 1), who is online
 * (step 2), where a line for everyone goes (step 3), one member (step 4), the room's rules (step 5), and
 * the wiring onto lib/line-server.ts, which owns the sockets and the framing (step 6). Two parts of the
 * room are plugged in, so that lesson 07 can run this same room across several processes and lesson 08
 * can seat browsers in it: the {@link NameRegistry} (here a Map; lesson 07: Redis) and the
 * {@link RoomBus} (here the lines of one event-loop turn; lesson 07: a Redis stream). A connection may
 * also bring its own {@link LineFraming} (lesson 08: WebSocket text frames) — the rules never change.
 *
 * Speed: a turn's broadcasts are encoded once, as one buffer every user's writer queues (`writeShared`,
 * never a copy per user), and each writer joins what it holds into one `socket.write()` at the end of the
 * turn — one system call per user per turn, however many messages arrived (`deliver` below,
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
 * Break it:  scripts/naive/chat-server.ts makes the book's five mistakes above on purpose, on this protocol;
 *            scripts/naive/break.ts has an attack for each. Three terminals:
 *              bun scripts/naive/chat-server.ts --port 8001 --idle 3
 *              bun scripts/05-chat-server.ts --idle 3 --flood-burst 100000   (flood control raised, so that
 *                 slow-client's flood reaches the user who stopped reading)
 *              bun scripts/naive/break.ts ATTACK --port 8001 --idle 3     then the same with --port 8000
 *            (slow-client takes ~3 s in which its users say nothing: start both servers with --idle 10 and
 *            give the attack --idle 10, or the idle sweep cuts them first.)
 *            slow-client     naive: room frozen: bob's line did not reach ann in 2 s
 *                            here:  room fine … the room was told "* sam was disconnected (not reading)"
 *            split-crash     naive: "CONNECT" → no answer, connection closed (the handler crashed)
 *                            here:  "CONNECT" → "ERR missing name: send CONNECT <name>"
 *            duplicate-name  naive: a second "CONNECT ann" got "OK welcome ann, 2 users online"
 *                            here:  … got "ERR name taken: ann"
 *            eof-ghost       naive: bob saw "* ann left", yet /who says "* online (2): ann, bob"
 *                            here:  … /who says "* online (1): bob"
 *            idle-trickle    naive: trickled "CONNECT annn…" for 7.0 s … still holds the connection
 *                            here:  cut after 3.3 s: "ERR registration timeout for 3 s"
 *            idle-silent     naive: cut after 3.0 s: she got no notice, and bob was not told
 *                            here:  she got "* disconnected: idle for 3 s", and bob "* ann was disconnected (idle)"
 *
 * Builds on: lesson 04 (a server, shared state, graceful shutdown) — its subject, not its `startServer`:
 * lib/line-server.ts (framing with lib/lines, a StreamWriter per user, pause/resume of a connection's
 * lines) and lib/sanitize.ts (what a line may not carry to others' terminals).
 */
import { type Flags, parseCommandLine } from "../lib/args.ts";
import { stripControls } from "../lib/sanitize.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import {
  atEndOfTurn,
  closeAll,
  type LineServerHandlers,
  ListenError,
  type StreamWriter,
  startLineServer,
} from "../lib/streams.ts";

// ── Step 1: the limits, each a flag ───────────────────────────────────────────────────────────────────

/** The room's limits as command-line flags (lessons 07 and 08 take them too, with listeners of their own). */
export const ROOM_FLAGS = {
  idle: {
    kind: "number",
    default: 60,
    min: 0.1,
    value: "SECONDS",
    help: "seconds without a complete line before a user is disconnected (and to finish CONNECT)",
  },
  // 4 KiB: a chat line is a sentence or a paste, not a file; it also bounds what a line costs every user.
  "max-line": {
    kind: "int",
    default: 4096,
    min: 16,
    value: "BYTES",
    help: "longest line in bytes; longer ones get ERR",
  },
  // 256 KiB: ~3,000 typical messages of backlog — far more than a reader that is merely slow needs.
  sendq: {
    kind: "int",
    default: 256 * 1024,
    min: 1024,
    value: "BYTES",
    help: "bytes queued for one user for 1 s (or 64 times this at once) before it is cut",
  },
  // 10 lines at once, then 5 a second: a paste of a few lines passes, a flood does not.
  "flood-burst": {
    kind: "int",
    default: 10,
    min: 1,
    value: "LINES",
    help: "lines a user may send in a burst",
  },
  "flood-rate": {
    kind: "number",
    default: 5,
    min: 0.01,
    value: "RATE",
    help: "lines per second a user may send after the burst",
  },
  // 10,000 users cost < 64 MB (see README); the operating system's file limit is usually 1,024–65,536.
  "max-users": {
    kind: "int",
    default: 10_000,
    min: 1,
    help: "users online at once in this process (and connections still registering)",
  },
} as const;

/** The room's limits. */
export interface RoomOptions {
  idleSeconds: number;
  maxLineBytes: number;
  sendQueueBytes: number;
  floodBurst: number;
  floodRate: number;
  /** Users online at once in this process; as many connections again may wait to register. */
  maxUsers: number;
  log: (line: string) => void;
}

/** The room's options from parsed {@link ROOM_FLAGS}. */
export function roomOptionsFromFlags(
  flags: Flags<typeof ROOM_FLAGS>,
  log: (line: string) => void,
): RoomOptions {
  return {
    idleSeconds: flags.idle,
    maxLineBytes: flags["max-line"],
    sendQueueBytes: flags.sendq,
    floodBurst: flags["flood-burst"],
    floodRate: flags["flood-rate"],
    maxUsers: flags["max-users"],
    log,
  };
}

/** The room's limits, plus where to listen. */
export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  ...ROOM_FLAGS,
  quiet: { kind: "boolean", help: "do not log joins and departures" },
} as const;

// ── Step 2: who is online — names, unique ignoring case ───────────────────────────────────────────────
//
// The book kept a dict of name → writer, and a second CONNECT alice silently replaced the first. Here a
// claim either succeeds or says the name is taken. The room asks through a small interface, the first of
// its two seams: in this lesson a Map answers at once; in lesson 07 Redis answers later (a promise) or not
// at all (the registry is unreachable), and the room handles all three.

/** A name is 1–32 of A–Z a–z 0–9 _ -. */
export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/**
 * `/who` lists at most this many names (sorted), after the count: 100 names of up to 32 characters make a
 * line of ~3.4 KB, under the 4 KiB line limit clients use — a room of 10,000 must not make a line no
 * client can read (or one `/who` a 340 KB reply).
 */
export const WHO_MAX_NAMES = 100;
/** `/who` costs one flood token per this many bytes of reply (a chat line costs one): 1 KiB. */
export const WHO_BYTES_PER_TOKEN = 1024;

/** `/who`'s answer: how many are online, and the first names in sorted order. */
export interface WhoList {
  count: number;
  /** At most the limit asked for, sorted (ignoring case). */
  names: string[];
}

/**
 * Who is online, across every process of the room. Names are unique ignoring case. Each method may
 * answer at once or with a promise; a rejected promise means the registry cannot be reached (the user is
 * told `ERR chat paused: reconnecting` and may try again).
 */
export interface NameRegistry {
  /** Claims `name`: resolves with the number of users online including it, or null if it is taken. */
  claim(name: string): number | null | Promise<number | null>;
  /** Frees a claimed name (a departure). Failures are the registry's to handle (log, retry). */
  release(name: string): void;
  /**
   * Optional: frees `name` and publishes its departure `notice` as one step. For a registry that can lose
   * its names (lesson 07: a node declared dead between the two steps would free a name that nobody then
   * announces — or announce a departure a survivor already announced). Without it, the room calls
   * `release()` and then publishes the notice.
   */
  releaseAndAnnounce?(name: string, notice: string): void;
  /** The count and the first `limit` names, sorted ignoring case. */
  who(limit: number): WhoList | Promise<WhoList>;
}

/** The registry of a room in one process: a Map. */
export class LocalNames implements NameRegistry {
  /** Lower-cased name → name as typed. */
  readonly #names = new Map<string, string>();
  /** Sorted names, kept until the next join or departure: `/who` at 10,000 users does not sort each time. */
  #sorted: string[] | null = null;

  get size(): number {
    return this.#names.size;
  }

  claim(name: string): number | null {
    const key = name.toLowerCase();
    if (this.#names.has(key)) return null;
    this.#names.set(key, name);
    this.#sorted = null;
    return this.#names.size;
  }

  release(name: string): void {
    if (this.#names.delete(name.toLowerCase())) this.#sorted = null;
  }

  who(limit: number): WhoList {
    this.#sorted ??= [...this.#names.keys()].sort().map((key) => this.#names.get(key)!);
    return { count: this.#names.size, names: this.#sorted.slice(0, limit) };
  }
}

// ── Step 3: where a line for everyone goes — the bus ──────────────────────────────────────────────────
//
// The second seam. A line for everyone is published to a bus, and comes back from it to `deliver`, which
// fans it out. In one process the bus is just "the end of this turn of the event loop": every line
// published during the turn goes out together, in one write per user. In lesson 07 the bus is a Redis
// stream that every node reads, so every user on every node sees one order.

/** Where a line for the whole room goes. Every line published must come back once, in order, to {@link ChatRoom.deliver}. */
export interface RoomBus {
  /**
   * `speaker`: the name the line speaks for (`NAME: text`, `* NAME joined`). A bus whose process can lose
   * a name (lesson 07) refuses the line if the name is no longer this process's; lesson 05's ignores it.
   */
  publish(line: string, speaker?: string): void;
  /**
   * Optional: calls `then` once every line published so far has been delivered. A user that half-closes
   * leaves only then, so it still gets its own copy of its last line. Without it, it leaves at once.
   */
  afterDelivered?(then: () => void): void;
}

/**
 * The bus of a room in one process: the lines published during one turn of the event loop are delivered together at its
 * end — one buffer and one write per user per turn, however many messages arrived in it.
 */
export class LocalBus implements RoomBus {
  #turn: string[] = [];
  /** Waiting for this turn's lines to be delivered (see {@link afterDelivered}). */
  #afterTurn: (() => void)[] = [];

  constructor(readonly deliver: (lines: string[]) => void) {}

  publish(line: string): void {
    if (this.#turn.length === 0) atEndOfTurn(this.#deliverTurn);
    this.#turn.push(line);
  }

  /** At once if nothing is waiting to be delivered, else right after this turn's delivery. */
  afterDelivered(then: () => void): void {
    if (this.#turn.length === 0) then();
    else this.#afterTurn.push(then);
  }

  readonly #deliverTurn = (): void => {
    const lines = this.#turn;
    const after = this.#afterTurn;
    this.#turn = [];
    this.#afterTurn = [];
    this.deliver(lines);
    for (const then of after) then();
  };
}

// ── Step 4: one member — a connection, registered or not ──────────────────────────────────────────────
//
// The room does not own sockets: it is handed connections (here by lib/line-server; in lesson 08 by a
// WebSocket). For each it keeps a name, two clocks and a flood bucket.

/** What the room needs from a connection (lib/line-server's LineConnection is one). */
export interface ChatConnection {
  readonly writer: StreamWriter;
  readonly peer: string;
  /** Hold this connection's next lines (in order) until {@link resumeReading}. */
  pauseReading(): void;
  resumeReading(): void;
  /** How this connection's lines go on the wire. Default {@link LINE_FRAMING}: UTF-8 text and `\n`. */
  readonly framing?: LineFraming;
  /**
   * Called once when the room closes this connection, just before its writer is closed (or aborted, for
   * a user that is not reading): a last word in the connection's own protocol — lesson 08 queues a
   * WebSocket Close frame here.
   */
  beforeClose?(why: Departure): void;
}

/**
 * How one kind of connection puts the room's lines on the wire. The room encodes each batch once per
 * framing, and every user of that framing gets the same bytes (`writeShared`: no copy per user).
 */
export interface LineFraming {
  /** One line: a reply to one user. */
  encodeLine(text: string): Uint8Array;
  /** A batch of lines, for every user of this framing. */
  encodeBatch(lines: readonly string[]): Uint8Array;
  /** Where each of `lines` starts in `encodeBatch(lines)`: a late joiner gets the tail after its notice. */
  lineStarts(lines: readonly string[]): number[];
}

const utf8 = new TextEncoder();

/** This lesson's protocol: each line is its UTF-8 text and a `\n`. */
export const LINE_FRAMING: LineFraming = {
  encodeLine: (text) => utf8.encode(`${text}\n`),
  encodeBatch: (lines) => utf8.encode(`${lines.join("\n")}\n`),
  lineStarts: (lines) => {
    const starts: number[] = [];
    let offset = 0;
    for (const line of lines) {
      starts.push(offset);
      offset += Buffer.byteLength(line, "utf8") + 1;
    }
    return starts;
  },
};

/** Why a user leaves; each has its own notice to the others. */
export type Departure = "quit" | "left" | "lost" | "idle" | "not reading" | "shutdown";

const DEPARTURE_NOTICES: Record<Departure, (name: string) => string> = {
  quit: (name) => `* ${name} left`,
  left: (name) => `* ${name} left`,
  lost: (name) => `* ${name} left (connection lost)`,
  idle: (name) => `* ${name} was disconnected (idle)`,
  "not reading": (name) => `* ${name} was disconnected (not reading)`,
  shutdown: (name) => `* ${name} left (server shutting down)`,
};

/** The reply to every line while the room is paused (lesson 07: Redis is unreachable). */
export const PAUSED_REPLY = "ERR chat paused: reconnecting";

/** One connection to this process, registered or not: its name, its clocks, its flood bucket. */
export class ChatMember {
  /** Null until CONNECT succeeds. */
  name: string | null = null;
  /** `performance.now()` of connecting: registration must finish within `--idle` of it. */
  readonly connectedAt = performance.now();
  /** `performance.now()` of the last complete line (or of connecting). */
  lastLineAt = this.connectedAt;
  /** Flood control: a token bucket, refilled at floodRate per second up to floodBurst; may go below 0. */
  tokens: number;
  tokensAt = this.connectedAt;
  /** A reply is awaited (a claim, a `/who`): reading is paused until it is written. */
  waiting = false;
  /** The peer sent EOF while a reply was awaited: leave once it is written. */
  endedWhileWaiting = false;
  /** Registered, but its own join notice has not come back from the bus yet: it gets no lines until then. */
  awaitingJoinNotice = false;
  /** Sent `/quit`: its lines before it are on their way round the bus; nothing after it counts. */
  quitting = false;
  gone = false;

  constructor(
    readonly connection: ChatConnection,
    floodBurst: number,
  ) {
    this.tokens = floodBurst;
  }

  get writer(): StreamWriter {
    return this.connection.writer;
  }
}

// ── Step 5: the room — registration, the broadcast, departures, the idle sweep ────────────────────────
//
// Every rule of the protocol, reacting to one line at a time. Nothing in the room awaits: a reply that
// must wait (a claim in Redis) pauses that user's reading instead, so its lines keep their order and
// nobody else waits. The broadcast queues one shared buffer on each writer and moves on; a writer whose
// queue stays over `--sendq` is cut. Every way out goes through `depart()`, once.

/**
 * How long a closed connection may take to read its last lines (and to close its own half) before it is
 * cut — at shutdown, and after any departure: 2 s. Without it a peer that stops reading would keep its
 * socket for ever.
 */
const CLOSE_GRACE_MS = 2000;
/** A join notice is `* NAME joined`: what {@link ChatRoom.deliver} looks for to start a new user's feed. */
const JOIN_NOTICE = /^\* ([A-Za-z0-9_-]{1,32}) joined$/;

export interface RoomParts {
  /** Default: a {@link LocalNames}. */
  names?: NameRegistry;
  /** Default: a {@link LocalBus} delivering to this room. */
  bus?: RoomBus;
  /**
   * What the log calls the count of this process's users: `online` (default — this process is the room)
   * or, where the room spans processes, e.g. `on this node` (lesson 07).
   */
  countLabel?: string;
}

/**
 * A user's queue may stay over `--sendq` this long before it is cut: 1 s. One batch may be bigger than
 * `--sendq` (lesson 07 reads up to 4 MiB of stream entries at once): a reader is judged by what it fails
 * to take over time, not by the size of one batch.
 */
export const SENDQ_PATIENCE_MS = 1000;
/** …but a queue over this many times `--sendq` is cut at once, patience or not: memory stays bounded. */
export const SENDQ_CEILING_FACTOR = 64;

/**
 * Every rule of the chat protocol, for the users connected to this process.
 *
 * Wiring: call {@link accept} for each new connection, {@link handleLine} / {@link lineTooLong} for its
 * lines, {@link endOfInput} at its EOF, {@link depart} when it closes, {@link sweepIdle} every second or
 * so; hand every batch of lines the bus carries to {@link deliver}.
 */
export class ChatRoom {
  readonly names: NameRegistry;
  readonly bus: RoomBus;
  /** Users registered through this process, by lower-cased name. */
  readonly users = new Map<string, ChatMember>();
  /** Every open connection to this process, registered or not. */
  readonly clients = new Set<ChatMember>();
  /** Users whose join notice has not been delivered yet, by lower-cased name. */
  readonly #awaitingJoin = new Map<string, ChatMember>();
  /** Claims in flight: they count against `maxUsers` until they settle. */
  #claiming = 0;
  #paused = false;
  #shuttingDown = false;
  /** Publish departures during shutdown too (see {@link shutdown}). */
  #announceShutdown = false;
  #checkScheduled = false;
  /** Users whose queue is over `--sendq`, and since when (`performance.now()`). */
  readonly #overSince = new Map<ChatMember, number>();
  #recheck: ReturnType<typeof setTimeout> | null = null;
  readonly #countLabel: string;

  constructor(
    readonly options: RoomOptions,
    parts: RoomParts = {},
  ) {
    this.names = parts.names ?? new LocalNames();
    this.bus = parts.bus ?? new LocalBus((lines) => this.deliver(lines));
    this.#countLabel = parts.countLabel ?? "online";
  }

  /**
   * A new connection. At most `maxUsers` connections may be waiting to register at once (on top of the
   * users): past that, a newcomer gets `ERR server full` and is closed — a flood of idle connections
   * cannot use up the server's sockets and memory.
   */
  accept(connection: ChatConnection): ChatMember {
    const member = new ChatMember(connection, this.options.floodBurst);
    this.clients.add(member);
    if (this.clients.size - this.users.size > this.options.maxUsers) {
      this.#send(member, `ERR server full (${this.options.maxUsers} users)`);
      this.depart(member, "left");
    }
    return member;
  }

  // ── Lines from a user ──

  handleLine(member: ChatMember, rawLine: string): void {
    if (member.gone || member.quitting) return;
    member.lastLineAt = performance.now();
    if (!this.#takeTokens(member, 1)) return this.#send(member, "ERR slow down");
    if (member.name === null) return this.#register(member, rawLine);
    const line = stripControls(rawLine).trim();
    if (line === "") return;
    if (line.startsWith("/")) return this.#command(member, line);
    if (this.#paused) return this.#send(member, PAUSED_REPLY);
    this.publish(`${member.name}: ${line}`, member.name);
  }

  lineTooLong(member: ChatMember): void {
    member.lastLineAt = performance.now();
    this.#send(member, `ERR line too long (max ${this.options.maxLineBytes} bytes)`);
  }

  /**
   * The peer sent EOF (a half-close: it still reads). It leaves once the replies it is waiting for are
   * written and the lines it published have come back from the bus — its own copy of its last line too.
   */
  endOfInput(member: ChatMember): void {
    if (member.quitting) return; // it leaves with its `* bye`
    if (member.waiting) member.endedWhileWaiting = true;
    else this.#leaveAfterDelivery(member);
  }

  #leaveAfterDelivery(member: ChatMember): void {
    if (member.name === null || !this.bus.afterDelivered) return this.depart(member, "left");
    this.bus.afterDelivered(() => this.depart(member, "left"));
  }

  /**
   * `CONNECT <name>`: the name is checked as typed (a control character makes it invalid, never silently
   * removed), then claimed in the registry; the user is welcomed, and everyone told through the bus.
   */
  #register(member: ChatMember, rawLine: string): void {
    const words = rawLine.trim().split(/[ \t]+/);
    if (words[0]?.toUpperCase() !== "CONNECT") return this.#send(member, "ERR send CONNECT <name> first");
    if (words.length < 2 || words[1] === "")
      return this.#send(member, "ERR missing name: send CONNECT <name>");
    if (words.length > 2) return this.#send(member, "ERR invalid name: one word, no spaces");
    const name = words[1]!;
    if (!NAME_PATTERN.test(name)) {
      return this.#send(member, "ERR invalid name: use 1-32 letters, digits, _ or -");
    }
    if (this.#paused) return this.#send(member, PAUSED_REPLY);
    if (this.users.size + this.#claiming >= this.options.maxUsers) {
      return this.#send(member, `ERR server full (${this.options.maxUsers} users)`);
    }
    this.#claiming++;
    this.#whenReady(
      member,
      () => this.names.claim(name),
      (online) => {
        this.#claiming--;
        this.#claimed(member, name, online);
      },
      (error) => {
        this.#claiming--;
        this.options.log(`! claim of ${name} failed: ${error.message}`);
        this.#send(member, PAUSED_REPLY);
      },
    );
  }

  #claimed(member: ChatMember, name: string, online: number | null): void {
    if (online === null) return this.#send(member, `ERR name taken: ${name}`);
    if (member.gone) return this.names.release(name);
    member.name = name;
    member.awaitingJoinNotice = true;
    this.users.set(name.toLowerCase(), member);
    this.#awaitingJoin.set(name.toLowerCase(), member);
    this.#send(member, `OK welcome ${name}, ${online} user${online === 1 ? "" : "s"} online`);
    this.publish(`* ${name} joined`, name);
    this.options.log(
      `+ ${name} joined from ${member.connection.peer} (${this.users.size} ${this.#countLabel})`,
    );
  }

  /**
   * `/quit`: the user leaves once the lines it sent before have come back from the bus, so it still gets
   * its own copy of them (`printf 'CONNECT bob\nhi\n/quit\n' | nc -N …` shows `bob: hi`, then `* bye`).
   */
  #quit(member: ChatMember): void {
    member.quitting = true;
    const leave = (): void => {
      this.#send(member, "* bye");
      this.depart(member, "quit");
    };
    if (member.name === null || !this.bus.afterDelivered) return leave();
    this.bus.afterDelivered(leave);
  }

  #command(member: ChatMember, line: string): void {
    const command = line.split(/\s+/, 1)[0]!.toLowerCase();
    if (command === "/quit") return this.#quit(member);
    if (command !== "/who") {
      return this.#send(member, `ERR unknown command ${command} (commands: /who, /quit)`);
    }
    if (this.#paused) return this.#send(member, PAUSED_REPLY);
    this.#whenReady(
      member,
      () => this.names.who(WHO_MAX_NAMES),
      (list) => this.#sendWho(member, list),
      () => this.#send(member, PAUSED_REPLY),
    );
  }

  /**
   * `* online (COUNT): a, b, …` — at most {@link WHO_MAX_NAMES} names, then `… and N more`. The reply's
   * size costs flood tokens beyond the line's own: asking for a big list is not free.
   */
  #sendWho(member: ChatMember, { count, names }: WhoList): void {
    const more = count > names.length ? `, … and ${count - names.length} more` : "";
    const reply = `* online (${count}): ${names.join(", ")}${more}`;
    this.#send(member, reply);
    member.tokens -= Math.floor(Buffer.byteLength(reply) / WHO_BYTES_PER_TOKEN);
  }

  /**
   * Runs `ask`; hands its answer to `then` — at once if it has one, else when its promise settles, with
   * the user's reading paused meanwhile so that its next lines wait their turn.
   */
  #whenReady<R>(
    member: ChatMember,
    ask: () => R | Promise<R>,
    then: (result: R) => void,
    failed: (error: Error) => void,
  ): void {
    let answer: R | Promise<R>;
    try {
      answer = ask();
    } catch (error) {
      return failed(error as Error);
    }
    if (!(answer instanceof Promise)) return then(answer);
    member.waiting = true;
    member.connection.pauseReading();
    answer.then(then, failed).finally(() => {
      member.waiting = false;
      if (member.gone) return;
      if (member.endedWhileWaiting) return this.#leaveAfterDelivery(member);
      member.connection.resumeReading();
    });
  }

  // ── Lines to everyone ──

  /** Sends one line to the whole room, through the bus; `speaker`: the name it speaks for (see {@link RoomBus}). */
  publish(text: string, speaker?: string): void {
    this.bus.publish(text, speaker);
  }

  /**
   * Delivers lines from the bus to the users of this process: encoded once, as one buffer that every
   * user's writer queues (`writeShared`) — one buffer and one write per user per batch. Nobody is awaited.
   * A user whose join notice is in the batch gets only the lines after it; one whose notice has not come
   * yet gets nothing. (Replies to one user, like `OK` or `ERR`, are written at once.)
   */
  deliver(lines: readonly string[]): void {
    if (lines.length === 0) return;
    const batch = new EncodedBatch(lines);
    const joiners = this.#awaitingJoin.size > 0 ? this.#joinNoticesIn(lines) : null;
    for (const user of this.users.values()) {
      const framing = user.connection.framing ?? LINE_FRAMING;
      if (!user.awaitingJoinNotice) {
        user.writer.writeShared(batch.bytes(framing));
        continue;
      }
      const after = joiners?.get(user);
      if (after === undefined) continue;
      user.awaitingJoinNotice = false;
      // A late joiner gets a view of the tail of the same buffer: no copy per user.
      if (after < lines.length) user.writer.writeShared(batch.tail(framing, after));
    }
    this.#checkSendQueuesSoon();
  }

  /** The users of this process whose join notice is among `lines` → index of the line after it. */
  #joinNoticesIn(lines: readonly string[]): Map<ChatMember, number> {
    const found = new Map<ChatMember, number>();
    for (let index = 0; index < lines.length; index++) {
      const name = JOIN_NOTICE.exec(lines[index]!)?.[1];
      const user = name === undefined ? undefined : this.#awaitingJoin.get(name.toLowerCase());
      if (user === undefined) continue;
      found.set(user, index + 1);
      this.#awaitingJoin.delete(name!.toLowerCase());
    }
    return found;
  }

  #send(member: ChatMember, text: string): void {
    if (member.gone || member.writer.isClosing()) return;
    const framing = member.connection.framing;
    member.writer.write(framing ? framing.encodeLine(text) : `${text}\n`);
    this.#checkSendQueuesSoon();
  }

  /**
   * Looks at the send queues once this turn's writes have been offered to the kernel (writers flush in the
   * end-of-turn pass, a `setImmediate` queued before this one): what is left queued then is what the
   * client has not read; a burst that the kernel took at once does not count. A user is cut when its queue
   * has stayed over `--sendq` for {@link SENDQ_PATIENCE_MS}, or is over {@link SENDQ_CEILING_FACTOR} ×
   * `--sendq` at any time.
   */
  #checkSendQueuesSoon(): void {
    if (this.#checkScheduled) return;
    this.#checkScheduled = true;
    setImmediate(() => {
      this.#checkScheduled = false;
      this.#checkSendQueues();
    });
  }

  #checkSendQueues(): void {
    const limit = this.options.sendQueueBytes;
    const now = performance.now();
    for (const member of this.clients) {
      const queued = member.writer.bufferedBytes;
      if (queued <= limit) {
        if (this.#overSince.size > 0) this.#overSince.delete(member);
        continue;
      }
      const since = this.#overSince.get(member);
      if (since === undefined) this.#overSince.set(member, now);
      if (
        queued > limit * SENDQ_CEILING_FACTOR ||
        (since !== undefined && now - since >= SENDQ_PATIENCE_MS)
      ) {
        this.depart(member, "not reading");
      }
    }
    // Someone is over but still within the patience: look again when it runs out, even if nothing is sent.
    if (this.#overSince.size > 0 && this.#recheck === null) {
      this.#recheck = setTimeout(() => {
        this.#recheck = null;
        this.#checkSendQueues();
      }, SENDQ_PATIENCE_MS);
      this.#recheck.unref();
    }
  }

  /** Refills the bucket for the time passed, then takes `count` tokens if there are that many. */
  #takeTokens(member: ChatMember, count: number): boolean {
    const now = performance.now();
    const { floodBurst, floodRate } = this.options;
    member.tokens = Math.min(floodBurst, member.tokens + ((now - member.tokensAt) / 1000) * floodRate);
    member.tokensAt = now;
    if (member.tokens < count) return false;
    member.tokens -= count;
    return true;
  }

  // ── Leaving ──

  /**
   * The one way out. Removes the member once, frees its name, tells everyone once (through the bus), and
   * closes the connection: gently (what is queued is still sent) unless the client is not reading, when
   * waiting would be pointless.
   */
  depart(member: ChatMember, why: Departure): void {
    if (member.gone) return;
    member.gone = true;
    this.clients.delete(member);
    this.#overSince.delete(member);
    member.connection.beforeClose?.(why);
    if (why === "not reading") member.writer.abort();
    else member.writer.close(CLOSE_GRACE_MS);
    if (member.name === null) return;
    const name = member.name;
    const key = name.toLowerCase();
    this.users.delete(key);
    this.#awaitingJoin.delete(key);
    const announce = !this.#shuttingDown || this.#announceShutdown;
    if (announce && this.names.releaseAndAnnounce) {
      this.names.releaseAndAnnounce(name, DEPARTURE_NOTICES[why](name));
    } else {
      this.names.release(name);
      if (announce) this.publish(DEPARTURE_NOTICES[why](name));
    }
    this.options.log(`- ${name} ${why} (${this.users.size} ${this.#countLabel})`);
  }

  /**
   * The user `name` of this process must go without a departure: its name is no longer this process's
   * (another process holds it now, or the registry declared this process dead and announced its users
   * itself). It is told `notice` and closed; nothing is released, nobody else is told. False if there is
   * no such user here.
   */
  evict(name: string, notice: string): boolean {
    const member = this.users.get(name.toLowerCase());
    if (!member) return false;
    this.users.delete(name.toLowerCase());
    this.#awaitingJoin.delete(name.toLowerCase());
    member.name = null; // depart() then frees nothing and announces nothing
    this.#send(member, notice);
    this.depart(member, "left");
    this.options.log(`- ${name} evicted: ${notice} (${this.users.size} ${this.#countLabel})`);
    return true;
  }

  /**
   * The handlers that put this room on lib/line-server: each connection becomes a member, each line, EOF
   * and close goes to the room. What this lesson and lesson 07 pass to `startLineServer`.
   */
  lineHandlers(): LineServerHandlers<ChatMember> {
    return {
      onConnect: (connection) => this.accept(connection),
      onLine: (member, line) => this.handleLine(member, line),
      onLineTooLong: (member) => this.lineTooLong(member),
      onEnd: (member) => this.endOfInput(member),
      onClose: (member, error) => this.depart(member, error ? "lost" : "left"),
    };
  }

  /**
   * Starts the idle sweep: one timer for everyone, every quarter of `--idle` (1 s at most), so a user is
   * cut at most 25 % (and 1 s) late. Returns the function that stops it.
   */
  startIdleSweep(): () => void {
    const everyMs = Math.min(1000, (this.options.idleSeconds * 1000) / 4);
    const sweeper = setInterval(() => this.sweepIdle(), everyMs);
    return () => clearInterval(sweeper);
  }

  /** Registration and silence are both bounded by `--idle`. */
  sweepIdle(now = performance.now()): void {
    const limitMs = this.options.idleSeconds * 1000;
    for (const member of this.clients) {
      if (member.name === null) {
        // Registration is timed from connecting: lines that never complete a CONNECT do not extend it.
        if (now - member.connectedAt <= limitMs) continue;
        this.#send(member, `ERR registration timeout for ${this.options.idleSeconds} s`);
      } else {
        if (now - member.lastLineAt <= limitMs) continue;
        this.#send(member, `* disconnected: idle for ${this.options.idleSeconds} s`);
      }
      this.depart(member, "idle");
    }
  }

  // ── Paused (lesson 07: the shared state cannot be reached) ──

  /** While paused, lines, CONNECTs and `/who` get {@link PAUSED_REPLY}; users stay connected. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
  }

  /**
   * Tells everyone here, closes every connection after its queue is sent, and waits (2 s at most).
   * `announce`: also publish each user's departure to the room (lesson 07: one node of many stops);
   * lesson 05's room ends with its one process, so nobody is left to tell.
   */
  async shutdown(announce = false): Promise<void> {
    this.#shuttingDown = true;
    this.#announceShutdown = announce;
    // Taken before depart() empties the set: these are the writers to wait for (and to cut after the grace).
    const writers = [...this.clients].map((member) => member.writer);
    for (const member of this.clients) {
      this.#send(member, "* server shutting down");
      this.depart(member, "shutdown");
    }
    await closeAll(writers, CLOSE_GRACE_MS);
  }
}

/**
 * One batch of lines, encoded at most once per framing — in lesson 05 once, for everyone. The last
 * framing asked for is kept at hand: users of one framing cost no lookup.
 */
class EncodedBatch {
  #framing: LineFraming | null = null;
  #bytes: Uint8Array | null = null;
  #others: Map<LineFraming, Uint8Array> | null = null;
  #starts: Map<LineFraming, number[]> | null = null;

  constructor(readonly lines: readonly string[]) {}

  bytes(framing: LineFraming): Uint8Array {
    if (framing === this.#framing) return this.#bytes!;
    // A second framing in the batch: keep the first one's bytes for the users still to come.
    if (this.#framing !== null) {
      this.#others ??= new Map();
      this.#others.set(this.#framing, this.#bytes!);
    }
    this.#bytes = this.#others?.get(framing) ?? framing.encodeBatch(this.lines);
    this.#framing = framing;
    return this.#bytes;
  }

  /** The lines from index `from` on, as a view of the same bytes. */
  tail(framing: LineFraming, from: number): Uint8Array {
    this.#starts ??= new Map();
    let starts = this.#starts.get(framing);
    if (starts === undefined) {
      starts = framing.lineStarts(this.lines);
      this.#starts.set(framing, starts);
    }
    return this.bytes(framing).subarray(starts[from]);
  }
}

// ── Step 6: the room meets the sockets ────────────────────────────────────────────────────────────────

export interface ChatOptions extends RoomOptions {
  host: string;
  port: number;
}

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

// ── Step 7: the command line ──────────────────────────────────────────────────────────────────────────

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
  // Handle Ctrl+C before saying we listen: whoever starts us may stop us the moment it reads that line.
  const shutdown = waitForShutdownSignal();
  console.log(`listening on ${server.hostname}:${server.port}`);
  const signal = await shutdown;
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
