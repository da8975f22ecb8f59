/**
 * lib/chat-room.ts — the chat room's rules and protocol replies, apart from how users reach it.
 *
 * Lesson 05 runs one room in one process; lesson 07 runs one room across several processes through Redis.
 * Both use this class. What differs between them is plugged in:
 * - a {@link NameRegistry}: who is online, names unique ignoring case. Lesson 05: a Map ({@link LocalNames});
 *   lesson 07: Redis `SET NX`. A claim may be asynchronous and may fail.
 * - a {@link RoomBus}: where a line for everyone goes. Lesson 05: this turn's batch, delivered at the end of
 *   the turn ({@link LocalBus}); lesson 07: `XADD` to a Redis stream, whose reader hands each batch of
 *   entries to {@link ChatRoom.deliver}. Joins and every departure go through the bus too, so each is
 *   announced once, to everyone, in the room's one order — the sender's own copy included.
 *
 * The room itself never awaits: it reacts to each line, and a reply that must wait (a claim, `/who` from a
 * remote registry) pauses that user's reading until it is written, so a user's lines keep their order.
 */
import type { Flags } from "./args.ts";
import type { LineServerHandlers } from "./line-server.ts";
import { stripControls } from "./sanitize.ts";
import { atEndOfTurn, closeAll, type StreamWriter } from "./stream-writer.ts";

// ── The limits, as flags both chat lessons accept ─────────────────────────────────────────────────────

/** The room's limits as command-line flags (lesson 05 and 07 add `--host`, `--port`, … of their own). */
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
    help: "bytes queued for one user before it is cut",
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

// ── What is plugged in ────────────────────────────────────────────────────────────────────────────────

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
  /** The count and the first `limit` names, sorted ignoring case. */
  who(limit: number): WhoList | Promise<WhoList>;
}

/** Where a line for the whole room goes. Every line published must come back once, in order, to {@link ChatRoom.deliver}. */
export interface RoomBus {
  publish(line: string): void;
  /**
   * Optional: calls `then` once every line published so far has been delivered. A user that half-closes
   * leaves only then, so it still gets its own copy of its last line. Without it, it leaves at once.
   */
  afterDelivered?(then: () => void): void;
}

/** Lesson 05's registry: a Map in this process. */
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

/**
 * Lesson 05's bus: the lines published during one turn of the event loop are delivered together at its
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

// ── One member: a connection, registered or not ──────────────────────────────────────────────────────

/** What the room needs from a connection (lib/line-server's LineConnection is one). */
export interface ChatConnection {
  readonly writer: StreamWriter;
  readonly peer: string;
  /** Hold this connection's next lines (in order) until {@link resumeReading}. */
  pauseReading(): void;
  resumeReading(): void;
}

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

// ── The room ──────────────────────────────────────────────────────────────────────────────────────────

const utf8 = new TextEncoder();
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
}

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

  constructor(
    readonly options: RoomOptions,
    parts: RoomParts = {},
  ) {
    this.names = parts.names ?? new LocalNames();
    this.bus = parts.bus ?? new LocalBus((lines) => this.deliver(lines));
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
    if (member.gone) return;
    member.lastLineAt = performance.now();
    if (!this.#takeTokens(member, 1)) return this.#send(member, "ERR slow down");
    if (member.name === null) return this.#register(member, rawLine);
    const line = stripControls(rawLine).trim();
    if (line === "") return;
    if (line.startsWith("/")) return this.#command(member, line);
    if (this.#paused) return this.#send(member, PAUSED_REPLY);
    this.publish(`${member.name}: ${line}`);
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
    this.publish(`* ${name} joined`);
    this.options.log(`+ ${name} joined from ${member.connection.peer} (${this.users.size} online)`);
  }

  #command(member: ChatMember, line: string): void {
    const command = line.split(/\s+/, 1)[0]!.toLowerCase();
    if (command === "/quit") {
      this.#send(member, "* bye");
      return this.depart(member, "quit");
    }
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

  /** Sends one line to the whole room, through the bus. */
  publish(text: string): void {
    this.bus.publish(text);
  }

  /** Old name of {@link publish}. */
  broadcast(text: string): void {
    this.publish(text);
  }

  /**
   * Delivers lines from the bus to the users of this process: encoded once, as one buffer that every
   * user's writer queues (`writeShared`) — one buffer and one write per user per batch. Nobody is awaited.
   * A user whose join notice is in the batch gets only the lines after it; one whose notice has not come
   * yet gets nothing. (Replies to one user, like `OK` or `ERR`, are written at once.)
   */
  deliver(lines: readonly string[]): void {
    if (lines.length === 0) return;
    const everything = utf8.encode(`${lines.join("\n")}\n`);
    const joiners = this.#awaitingJoin.size > 0 ? this.#joinNoticesIn(lines) : null;
    let lineStarts: number[] | null = null;
    for (const user of this.users.values()) {
      if (!user.awaitingJoinNotice) {
        user.writer.writeShared(everything);
        continue;
      }
      const after = joiners?.get(user);
      if (after === undefined) continue;
      user.awaitingJoinNotice = false;
      lineStarts ??= byteOffsets(lines);
      // A late joiner gets a view of the tail of the same buffer: no copy per user.
      if (after < lines.length) user.writer.writeShared(everything.subarray(lineStarts[after]));
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
    member.writer.write(`${text}\n`);
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
      for (const member of this.clients) {
        if (member.writer.bufferedBytes > limit) this.depart(member, "not reading");
      }
    });
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
    if (why === "not reading") member.writer.abort();
    else member.writer.close(CLOSE_GRACE_MS);
    if (member.name === null) return;
    const key = member.name.toLowerCase();
    this.users.delete(key);
    this.#awaitingJoin.delete(key);
    this.names.release(member.name);
    if (!this.#shuttingDown || this.#announceShutdown) this.publish(DEPARTURE_NOTICES[why](member.name));
    this.options.log(`- ${member.name} ${why} (${this.users.size} online)`);
  }

  /**
   * The handlers that put this room on lib/line-server: each connection becomes a member, each line, EOF
   * and close goes to the room. What lessons 05 and 07 both pass to `startLineServer`.
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

  /** Registration and silence are both bounded by `--idle` (lessons 05 and 07). */
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

/** Where each of `lines` starts in their UTF-8 encoding, joined with `\n`. */
function byteOffsets(lines: readonly string[]): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (const line of lines) {
    offsets.push(offset);
    offset += Buffer.byteLength(line, "utf8") + 1;
  }
  return offsets;
}
