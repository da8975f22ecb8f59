/**
 * lib/chat-cluster/cluster-node.ts — one chat node's side of the shared room in Redis: `ClusterNode` is
 * the room's name registry (claim / release / who) and its bus (publish a line; every batch read back
 * from the stream is handed to `deliver`).
 *
 * - Order: every line for the room is one `XADD` to one stream (trimmed with `MAXLEN ~ history`); every
 *   node reads it with a blocking `XREAD` on its own connection, in batches of up to
 *   {@link READ_BATCH_ENTRIES} (and {@link READ_REPLY_BYTES}), resuming from the last ID it delivered —
 *   after a reconnect too, so nothing the others said meanwhile is missed or delivered twice.
 * - Uniqueness: a name is a key `PREFIX name:LOWERCASE` set with `NX` to the node's id (cluster-scripts.ts).
 * - Liveness — a lease: `PREFIX alive:ID` expires after `nodeTimeoutSeconds` unless renewed; every
 *   heartbeat (a quarter of the timeout, 250 ms at most) renews it and removes dead nodes — in one Lua
 *   script, so each dead node's users are announced `* NAME left (server lost)` exactly once.
 * - Fencing: a lease that ran out is never renewed. Every script that speaks for this node (APPEND,
 *   CLAIM, HEARTBEAT, REGISTER on a reconnect) first checks, inside Redis, that the lease is still this
 *   node's — its incarnation's id, and the session token of its current connection — and a line that
 *   speaks for a name, that the name is still this node's. A node that was paused or cut off past the
 *   timeout (and so declared dead, its users announced as gone) finds out from the refusal — not from its
 *   own clock, which it cannot trust — tells its users `* disconnected: this server lost its place in the
 *   cluster`, closes them, and joins again as a new incarnation (a new id). See {@link ClusterNode.placeLost}.
 * - Deadlines: every reply is awaited for a bounded time (redis-link.ts): half the node timeout, and a
 *   blocking XREAD its BLOCK time on top. A late reply fails the link, and the reconnect path runs.
 * - Link failure: while Redis is unreachable the node is paused (`hooks.paused()`); what it had to send is
 *   kept in order and sent again after it reconnects. Each line carries this node's line number; APPEND
 *   adds line N only right after line N − 1 (a resend of a line that did arrive is skipped, a line whose
 *   predecessor failed waits for it). On each reconnect it registers again and reconciles its names with
 *   its users (a claim whose reply was lost is freed); a changed epoch means Redis lost its data, so
 *   reading starts over at the new stream's beginning and the names of the users online here are claimed
 *   again.
 * - Error replies (`-WRONGTYPE` when another client changed a key's type, `-LOADING`, `-BUSY`): one log
 *   line, then the same command again after a capped backoff — for the reader and for queued lines alike.
 *
 * Contract: `claim()` and `who()` reject while paused (the room answers `ERR chat paused: reconnecting`);
 * `publish()`, `release()` and `releaseAndAnnounce()` never fail — they are queued until Redis has them (or
 * dropped, if this node is declared dead: a survivor announced its users). `stop()` sends what is queued
 * (2 s at most), unregisters the node, and closes both connections.
 */
import { createHash, randomUUID } from "node:crypto";
import type { NameRegistry, RoomBus, WhoList } from "../../scripts/05-chat-server.ts";
import { ClusterKeys } from "./cluster-keys.ts";
import {
  APPEND,
  CLAIM,
  HEARTBEAT,
  RECONCILE,
  REGISTER,
  RELEASE,
  UNREGISTER,
  WHO,
} from "./cluster-scripts.ts";
import { RedisLink } from "./redis-link.ts";
import { RedisReplyError, type RespReply, type RespValue } from "./resp-connection.ts";
import { compareStreamIds, decodeXreadReply, encodeEntry, MAX_ENTRY_FIELD_BYTES } from "./room-entry.ts";

/** Entries one XREAD may return: 1,000 — big batches are what make the fan-out cheap. */
export const READ_BATCH_ENTRIES = 1000;
/**
 * Bytes one XREAD reply may keep: 4 MiB (about 1,000 lines of 4 KiB). Past it, the rest of the reply is
 * not kept and is read again (resp-parser.ts): what a node holds of the stream at once is bounded,
 * whatever another client put in it.
 */
export const READ_REPLY_BYTES = 4 * 1024 * 1024;
/** Bytes any other reply may keep: 1 MiB (the largest is `/who`'s 100 names). */
const COMMAND_REPLY_BYTES = 1024 * 1024;
/** How long one XREAD waits for a new entry before asking again: 1 s. */
const READ_BLOCK_MS = 1000;
/**
 * After delivering a batch, a node waits as long as the delivery took (its writes included) before reading
 * the next one, up to {@link READ_LINGER_MAX_MS}. Each batch costs one write per local user however few
 * lines it holds: a node that read again at once would, under load, make many small batches and spend its
 * core on system calls — taken from the clients, the other nodes and Redis. Waiting in proportion keeps a
 * node writing at most half the time, and a batch then holds whatever arrived meanwhile; a node with a
 * handful of users delivers in microseconds, so it hardly waits at all. Measured on 2 shared cores (README):
 * the fan-out benchmark rose by about a third, latency at 2,000 messages/s to 1,000 users did not move.
 */
export const READ_LINGER_PER_DELIVERY = 1;
/** The longest a node waits between two batches: 4 ms. */
export const READ_LINGER_MAX_MS = 4;
/** The heartbeat runs every quarter of the node timeout, and at least every 250 ms, so a dead node is
 *  noticed within the timeout + 250 ms. */
const HEARTBEAT_MAX_MS = 250;
/** How long `stop()` waits for queued lines and releases to reach Redis: 2 s. */
const STOP_FLUSH_MS = 2000;
/** After an error reply, the same command again in 50 ms, doubling… */
const RETRY_FIRST_MS = 50;
/** …up to 2 s: a key made sane again is noticed within ~2 s. */
const RETRY_MAX_MS = 2000;

/** What this node's users are told when it finds it was declared dead. */
export const LOST_PLACE_NOTICE = "* disconnected: this server lost its place in the cluster";

export interface ClusterNodeOptions {
  /** `redis://HOST:PORT`. */
  url: string;
  prefix: string;
  nodeTimeoutSeconds: number;
  /** The stream keeps about this many entries (`XADD … MAXLEN ~ history`). */
  history: number;
  log: (line: string) => void;
}

/** What the node tells the room it serves. */
export interface ClusterNodeHooks {
  /** A batch of lines from the stream, in the room's order. */
  deliver(lines: string[]): void;
  /** Redis is unreachable: refuse what needs it. */
  paused(): void;
  /** Back in step with Redis. */
  resumed(): void;
  /** The names of the users online on this node (claimed again after Redis lost them). */
  onlineNames(): string[];
  /** Names that are no longer this node's (another node holds them): their users here must go. */
  namesLost(names: string[]): void;
  /**
   * Redis lost the stream: a user here still waiting for its own join notice to come back will never see
   * it — everything in the new stream is news to everyone here.
   */
  streamLost(): void;
  /**
   * This node was declared dead (its lease ran out) and its users announced as gone: every user here must
   * go, told {@link LOST_PLACE_NOTICE}, without a departure of their own.
   */
  placeLost(): void;
}

/** How a line is fenced: it speaks for a name, it is the departure that frees one, or neither. */
type LineMode = "" | "speaks" | "departs";

/** Something for Redis that must not be lost: a line for the room, or a name to free. */
type PendingOp =
  | { kind: "line"; line: string; seq: number; mode: LineMode; name: string; sent: boolean; tries: number }
  | { kind: "release"; name: string; sent: boolean };

/** A reply that was not a well-formed answer to our own script: Redis is not what we think. */
export class ClusterProtocolError extends Error {
  override name = "ClusterProtocolError";
  constructor(
    message: string,
    readonly reply: unknown,
  ) {
    super(message);
  }
}

/** This node was declared dead: it may not claim or speak until it has joined again. */
export class PlaceLostError extends Error {
  override name = "PlaceLostError";
  constructor() {
    super("this node lost its place in the cluster");
  }
}

/** A callback waiting for this node's lines up to `seq` to be read back (see `afterDelivered`). */
interface DeliveryWaiter {
  seq: number;
  then: () => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ClusterNode implements NameRegistry, RoomBus {
  readonly keys: ClusterKeys;
  readonly #link: RedisLink;
  /** This incarnation's id: new at every start, and again after the node was declared dead. */
  #id = randomUUID();
  /** Registered under #id (false until the first REGISTER, and again once declared dead). */
  #registered = false;
  /** The token of the current connection's registration: the value of `alive:ID` (see FENCE). */
  #session = "";
  #epoch: string | null = null;
  #lastId = "0-0";
  /** Incremented on every reconnect: an XREAD loop of an older connection stops. */
  #generation = 0;
  #nextOp = 1;
  /** Line numbers of this incarnation: the next, the highest acknowledged, the highest sent. */
  #nextLineSeq = 1;
  #ackedLineSeq = 0;
  /** The seq of the last line this node published, and the highest of its own it has read back. */
  #lastLineSeq = 0;
  #deliveredSeq = 0;
  /** Callbacks waiting for this node's lines up to `seq` to come back from the stream. */
  #afterDelivered: DeliveryWaiter[] = [];
  /** Ops not yet acknowledged by Redis, in order. */
  readonly #pending = new Map<number, PendingOp>();
  /** Resending ops after an error reply: the timer, how many tries in a row, whether it was logged. */
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retries = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beating = false;
  #stopped = false;

  constructor(
    readonly options: ClusterNodeOptions,
    readonly hooks: ClusterNodeHooks,
  ) {
    this.keys = new ClusterKeys(options.prefix);
    this.#link = new RedisLink(
      {
        url: options.url,
        replyTimeoutMs: this.#ttlMs / 2,
        commandLimits: { maxBulkBytes: COMMAND_REPLY_BYTES, maxReplyBytes: COMMAND_REPLY_BYTES },
        readerLimits: { maxBulkBytes: MAX_ENTRY_FIELD_BYTES, maxReplyBytes: READ_REPLY_BYTES },
      },
      {
        onUp: () => this.#resync(),
        onReady: () => this.#ready(),
        onDown: () => this.hooks.paused(),
        log: options.log,
      },
    );
  }

  /** This incarnation's id (it changes when the node joins again after being declared dead). */
  get id(): string {
    return this.#id;
  }

  get #ttlMs(): number {
    return Math.round(this.options.nodeTimeoutSeconds * 1000);
  }

  /** Connects and registers; throws (one line: what did not answer, or why not) when Redis is not usable now. */
  async start(): Promise<void> {
    await this.#link.start();
    const every = Math.min(HEARTBEAT_MAX_MS, this.#ttlMs / 4);
    this.#heartbeat = setInterval(() => void this.#beat(), every);
  }

  // ── The registry ──

  /** Claims `name` for this node: the number of users online in the cluster, or null if taken. */
  async claim(name: string): Promise<number | null> {
    if (!this.#link.up) throw new Error("redis link down");
    const { keys } = this;
    const id = this.#id;
    const reply = await this.#eval(
      "CLAIM",
      CLAIM,
      [keys.name(name), keys.names(id), keys.nodes, keys.alive(id), keys.epoch],
      [id, name, keys.prefix, this.#session, this.#epoch ?? ""],
    );
    if (!Array.isArray(reply)) throw new ClusterProtocolError("unexpected reply to CLAIM", reply);
    if (id !== this.#id) throw new PlaceLostError(); // declared dead meanwhile: that claim dies with it
    if (reply[0] === "ok") return Number(reply[1]);
    if (reply[0] === "taken") return null;
    this.#refused(String(reply[0]), "CLAIM");
    throw new Error(`claim refused (${String(reply[0])})`);
  }

  /** Frees `name` without a notice (a claim whose user left before it was welcomed); queued while paused. */
  release(name: string): void {
    this.#enqueue({ kind: "release", name, sent: false });
  }

  /** Frees `name` and announces `notice`, in one fenced step (see APPEND's `departs`); queued while paused. */
  releaseAndAnnounce(name: string, notice: string): void {
    this.#enqueueLine(notice, "departs", name);
  }

  /** The user count and the first `limit` names of the whole cluster, sorted ignoring case. */
  async who(limit: number): Promise<WhoList> {
    if (!this.#link.up) throw new Error("redis link down");
    const reply = await this.#eval("WHO", WHO, [this.keys.nodes], [this.keys.prefix, String(limit)]);
    if (!Array.isArray(reply) || !Array.isArray(reply[1])) {
      throw new ClusterProtocolError("unexpected reply to WHO", reply);
    }
    return { count: Number(reply[0]), names: reply[1].map(String) };
  }

  // ── The bus ──

  /** Sends one line to the whole room: an XADD now, or once Redis is back. `speaker`: see RoomBus. */
  publish(line: string, speaker?: string): void {
    this.#enqueueLine(line, speaker === undefined ? "" : "speaks", speaker ?? "");
  }

  /**
   * Calls `then` once every line this node has published so far has come back from the stream and been
   * delivered here (a user that half-closes leaves only then, so it still gets its own last line) — or
   * after `--node-timeout` at most, or at `stop()`: a line lost with a Redis restarted empty never comes
   * back, and the user must not wait for it for ever.
   */
  afterDelivered(then: () => void): void {
    const seq = this.#lastLineSeq;
    if (seq <= this.#deliveredSeq || this.#stopped) return then();
    const waiter: DeliveryWaiter = { seq, then, timer: setTimeout(() => this.#release(waiter), this.#ttlMs) };
    this.#afterDelivered.push(waiter);
  }

  #release(waiter: DeliveryWaiter): void {
    const index = this.#afterDelivered.indexOf(waiter);
    if (index === -1) return;
    this.#afterDelivered.splice(index, 1);
    clearTimeout(waiter.timer);
    waiter.then();
  }

  /** Releases the waiters whose lines have all come back (all of them with `everyone`). */
  #releaseDelivered(everyone = false): void {
    for (const waiter of [...this.#afterDelivered]) {
      if (everyone || waiter.seq <= this.#deliveredSeq) this.#release(waiter);
    }
  }

  #enqueueLine(line: string, mode: LineMode, name: string): void {
    const seq = this.#nextLineSeq++;
    this.#lastLineSeq = seq;
    this.#enqueue({ kind: "line", line, seq, mode, name, sent: false, tries: 0 });
  }

  #enqueue(op: PendingOp): void {
    const key = this.#nextOp++;
    this.#pending.set(key, op);
    if (this.#link.up) this.#send(key, op);
  }

  /** Sends one op. The commands of one turn leave together on the connection: they arrive in order. */
  #send(key: number, op: PendingOp): void {
    op.sent = true;
    const { keys } = this;
    const id = this.#id;
    if (op.kind === "release") {
      this.#eval("RELEASE", RELEASE, [keys.name(op.name), keys.names(id)], [id, op.name]).then(
        () => this.#pending.delete(key),
        (error: Error) => this.#opFailed(op, "RELEASE", error),
      );
      return;
    }
    op.tries++;
    const scriptKeys = [keys.room, keys.seq(id), keys.alive(id), keys.epoch];
    if (op.mode !== "") scriptKeys.push(keys.name(op.name), keys.names(id));
    const args = [
      String(this.options.history),
      String(op.seq),
      String(this.#ackedLineSeq),
      String(this.#nextLineSeq - 1),
      this.#epoch ?? "",
      this.#session,
      id,
      op.mode,
      op.name,
      ...encodeEntry(op.line, id, op.seq),
    ];
    this.#eval("APPEND", APPEND, scriptKeys, args).then(
      (reply) => this.#appended(key, op, id, reply),
      (error: Error) => this.#opFailed(op, "APPEND", error),
    );
  }

  /** APPEND's answer (see cluster-scripts.ts). */
  #appended(key: number, op: PendingOp & { kind: "line" }, id: string, reply: RespValue): void {
    if (id !== this.#id) return; // an earlier incarnation's: its queue is gone
    if (reply === "repaired") {
      this.options.log(`! seq:${id} in redis was not this node's (another client wrote it): reset`);
    }
    switch (reply) {
      case "repaired":
      case "added":
      case "dup":
      case "name":
        this.#pending.delete(key);
        if (op.seq > this.#ackedLineSeq) this.#ackedLineSeq = op.seq;
        this.#retries = 0;
        if (reply === "name" && op.mode === "speaks") this.#nameGone(op.name);
        return;
      case "gap":
        op.sent = false;
        this.#scheduleRetry();
        return;
      default:
        op.sent = false;
        this.#refused(String(reply), "APPEND");
    }
  }

  /** A line that speaks for a name Redis says is no longer ours: that user cannot stay. */
  #nameGone(name: string): void {
    this.options.log(`! ${name}: the name is no longer this node's in redis; the line was refused`);
    this.hooks.namesLost([name]);
  }

  /** A fence said no (`epoch`, `dead`, `stale`; see cluster-scripts.ts FENCE). */
  #refused(status: string, command: string): void {
    if (status === "dead") return this.#placeLost();
    if (status === "epoch") return this.#link.fail(`${command}: redis lost its data (a new epoch)`);
    if (status === "stale") return this.#link.fail(`${command}: this node's session in redis was replaced`);
    this.options.log(`! unexpected reply to ${command}: ${JSON.stringify(status).slice(0, 60)}`);
    this.#scheduleRetry();
  }

  #opFailed(op: PendingOp, command: string, error: Error): void {
    op.sent = false; // kept: it is sent again (APPEND skips it if it did arrive)
    // The connection's own failures run the reconnect, which sends it again; an error reply does not.
    if (!(error instanceof RedisReplyError)) return;
    if (this.#retries === 0) this.options.log(`redis: ${command} failed (${error.message}); retrying`);
    this.#scheduleRetry();
  }

  /** Sends the unsent ops again after a capped backoff (50 ms, doubling, 2 s at most). */
  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#stopped) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.#retries++);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#link.up) this.#flushPending();
    }, delay);
  }

  #flushPending(): void {
    for (const [key, op] of this.#pending) if (!op.sent) this.#send(key, op);
  }

  // ── Reading the stream ──

  async #readLoop(generation: number): Promise<void> {
    const key = this.keys.room;
    let troubles = 0;
    while (generation === this.#generation && !this.#stopped) {
      const asked = performance.now();
      let reply: RespReply;
      try {
        reply = await this.#link.read(
          [
            "XREAD",
            "COUNT",
            String(READ_BATCH_ENTRIES),
            "BLOCK",
            String(READ_BLOCK_MS),
            "STREAMS",
            key,
            this.#lastId,
          ],
          READ_BLOCK_MS,
        );
      } catch (error) {
        // The link is down (a reset, a deadline): the next reconnect starts a new loop from #lastId.
        if (!(error instanceof RedisReplyError) || generation !== this.#generation) return;
        await this.#readTrouble(`XREAD failed (${error.message})`, troubles++);
        continue;
      }
      if (generation !== this.#generation) return;
      const batch = decodeXreadReply(reply.value, key, reply.cut);
      // Nothing new, and at once: not what a blocking XREAD does. Waiting is better than spinning.
      const instantlyEmpty = batch.lastId === null && performance.now() - asked < READ_BLOCK_MS / 2;
      if (batch.malformed || instantlyEmpty) {
        await this.#readTrouble(
          `XREAD got ${batch.malformed ?? "an empty reply without blocking"}`,
          troubles++,
        );
        continue;
      }
      if (troubles > 0) this.options.log("redis: reading the stream again");
      troubles = 0;
      for (const { id, reason } of batch.skipped) {
        this.options.log(`! skipped stream entry ${id} in ${key}: ${reason}`);
      }
      if (batch.lastId !== null) this.#lastId = batch.lastId;
      if (batch.entries.length === 0) continue;
      const started = performance.now();
      this.hooks.deliver(batch.entries.map((entry) => entry.line));
      const id = this.#id;
      for (const entry of batch.entries) {
        if (entry.node === id && entry.seq > this.#deliveredSeq) this.#deliveredSeq = entry.seq;
      }
      if (this.#afterDelivered.length > 0) this.#releaseDelivered();
      // The batch's writes leave in this turn's flush pass, queued before this: after it, they are done.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const linger = Math.min(READ_LINGER_MAX_MS, (performance.now() - started) * READ_LINGER_PER_DELIVERY);
      if (linger >= 1) await Bun.sleep(linger);
    }
  }

  /** A reply that is not a batch: one log line per run of them, then a capped backoff before asking again. */
  async #readTrouble(what: string, troubles: number): Promise<void> {
    if (troubles === 0) this.options.log(`redis: ${what}; retrying`);
    await Bun.sleep(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** troubles));
  }

  // ── Joining, liveness, and coming back ──

  /** Runs on every (re)connect, before the node counts as up. */
  async #resync(): Promise<void> {
    const firstTime = this.#epoch === null;
    let registered = await this.#register();
    if (registered.status === "dead") {
      this.#placeLost(false);
      registered = await this.#register();
    }
    const { epoch, lastId, firstId } = registered;
    const dataLost = !firstTime && epoch !== this.#epoch;
    this.#epoch = epoch;
    if (firstTime) this.#lastId = lastId;
    else if (dataLost) {
      this.options.log("redis: its data is gone (restarted empty?): reading the new stream from its start");
      this.#lastId = "0-0";
      this.#forgetLinesInFlight();
      this.hooks.streamLost();
    } else if (this.#lastId !== "0-0" && compareStreamIds(firstId, this.#lastId) > 0) {
      // Trimmed past our position while we were away (more than --history entries): say so, not silently.
      this.hooks.deliver(["* some messages were missed while this server was reconnecting"]);
    }
    if (!firstTime) await this.#reconcile();
    this.#flushPending();
  }

  /**
   * Redis lost its data: a line sent before that may be in the stream that was lost — read there by some
   * nodes, by this one perhaps — or may not. Sent again, it would be seen twice by whoever read it the
   * first time; so it is not sent again (at most once), and a departure among them only frees its name.
   * Lines never sent go out as usual.
   */
  #forgetLinesInFlight(): void {
    let forgotten = 0;
    for (const [key, op] of this.#pending) {
      if (op.kind !== "line" || op.tries === 0) continue;
      forgotten++;
      if (op.mode === "departs") this.#pending.set(key, { kind: "release", name: op.name, sent: false });
      else this.#pending.delete(key);
    }
    // The new stream has no line numbers of ours: the next one it takes is the first still queued.
    let firstQueued = this.#nextLineSeq;
    for (const op of this.#pending.values())
      if (op.kind === "line" && op.seq < firstQueued) firstQueued = op.seq;
    this.#ackedLineSeq = firstQueued - 1;
    if (forgotten > 0)
      this.options.log(`redis: ${forgotten} line(s) in flight when it lost its data may be lost`);
  }

  /** REGISTER (see cluster-scripts.ts): `resume` this incarnation, or join as a new one. */
  async #register(): Promise<{ epoch: string; status: string; lastId: string; firstId: string }> {
    const { keys } = this;
    const session = randomUUID();
    const reply = await this.#eval(
      "REGISTER",
      REGISTER,
      [keys.epoch, keys.nodes, keys.alive(this.#id), keys.room],
      [
        randomUUID(),
        this.#id,
        String(this.#ttlMs),
        session,
        this.#registered ? "resume" : "new",
        this.#epoch ?? "",
        keys.prefix,
        String(this.options.history),
      ],
    );
    if (!Array.isArray(reply) || reply.length !== 4) {
      throw new ClusterProtocolError("unexpected reply to REGISTER", reply);
    }
    const [epoch, status, lastId, firstId] = reply.map(String) as [string, string, string, string];
    if (status !== "dead") {
      this.#session = session;
      this.#registered = true;
    }
    return { epoch, status, lastId, firstId };
  }

  /**
   * After a reconnect: the names Redis lists for this node must be exactly its users' (and those of the
   * departures still queued, which free their names themselves). A claim whose reply was lost is freed; a
   * name Redis lost is claimed again, or — taken meanwhile — its user goes.
   */
  async #reconcile(): Promise<void> {
    const keep = new Set(this.hooks.onlineNames());
    for (const op of this.#pending.values())
      if (op.kind === "line" && op.mode === "departs") keep.add(op.name);
    const { keys } = this;
    const reply = await this.#eval(
      "RECONCILE",
      RECONCILE,
      [keys.names(this.#id)],
      [keys.prefix, this.#id, ...keep],
    );
    if (!Array.isArray(reply) || !Array.isArray(reply[0])) {
      throw new ClusterProtocolError("unexpected reply to RECONCILE", reply);
    }
    const lost = reply[0].map(String);
    const freed = Number(reply[1]);
    if (freed > 0)
      this.options.log(`redis: freed ${freed} name(s) this node held without a user (a lost reply)`);
    if (lost.length > 0) {
      this.options.log(`redis: ${lost.length} name(s) were taken while this node was cut off`);
      this.hooks.namesLost(lost);
    }
  }

  /**
   * This incarnation was declared dead: its lease ran out while it was paused or cut off, and its users
   * were (or are about to be) announced `left (server lost)` by whoever reaped it. It must not speak for
   * them again: what it had queued is dropped, its users are told and closed, and it joins again as a
   * new incarnation — through a reconnect, unless it is already in one (`reconnect` false).
   */
  #placeLost(reconnect = true): void {
    this.options.log(
      "redis: this node's lease ran out (paused or cut off past --node-timeout): it was declared dead; " +
        "disconnecting its users and joining again as a new node",
    );
    this.#id = randomUUID();
    this.#registered = false;
    this.#nextLineSeq = 1;
    this.#ackedLineSeq = 0;
    this.#lastLineSeq = 0;
    this.#deliveredSeq = 0;
    // The users go first, without a departure: a half-closed user waiting for its last line (see
    // afterDelivered) must find itself gone when its wait ends below — else it would depart now, and
    // its departure, queued under the new id, would announce a second time what the reaper announced.
    this.hooks.placeLost();
    this.#releaseDelivered(true);
    this.#pending.clear();
    if (reconnect) this.#link.fail("this node lost its place in the cluster");
  }

  #ready(): void {
    const generation = ++this.#generation;
    this.hooks.resumed();
    this.#flushPending();
    void this.#readLoop(generation);
  }

  /**
   * Renews this node's lease and cleans up dead nodes. Its reply is awaited for half the node timeout,
   * like every reply (redis-link.ts): a link that stays silent longer is torn down and rebuilt.
   */
  async #beat(): Promise<void> {
    if (this.#beating || !this.#link.up) return;
    this.#beating = true;
    const { keys } = this;
    const id = this.#id;
    try {
      const reply = await this.#eval(
        "HEARTBEAT",
        HEARTBEAT,
        [keys.nodes, keys.alive(id), keys.epoch, keys.room],
        [
          keys.prefix,
          id,
          String(this.#ttlMs),
          this.#epoch ?? "",
          String(this.options.history),
          this.#session,
        ],
      );
      if (!Array.isArray(reply)) throw new ClusterProtocolError("unexpected reply to HEARTBEAT", reply);
      if (Number(reply[1]) > 0) this.options.log(`cleaned up ${reply[1]} user(s) of dead node(s)`);
      if (reply[0] !== "ok" && !this.#stopped && id === this.#id)
        this.#refused(String(reply[0]), "HEARTBEAT");
    } catch (error) {
      // The link reports its own failures; an error reply is logged, and the next beat tries again.
      if (error instanceof RedisReplyError) this.options.log(`redis: HEARTBEAT failed (${error.message})`);
    } finally {
      this.#beating = false;
    }
  }

  /**
   * Runs a script by its SHA-1 (`EVALSHA`), and by its text (`EVAL`, which also loads it) only when Redis
   * answers `NOSCRIPT` — a Redis restarted empty has forgotten its script cache. A trick for speed: the
   * APPEND script is ~1.5 KB, sent and hashed by Redis once per line with EVAL; with EVALSHA its 40-byte
   * hash (README: the fan-out figure it buys).
   */
  async #eval(name: string, script: string, keys: string[], args: string[]): Promise<RespValue> {
    const sha = scriptSha(script);
    try {
      return await this.#link.command(
        ["EVALSHA", sha, String(keys.length), ...keys, ...args],
        `EVALSHA ${name}`,
      );
    } catch (error) {
      if (!(error instanceof RedisReplyError) || error.code !== "NOSCRIPT") throw error;
      return this.#link.command(["EVAL", script, String(keys.length), ...keys, ...args], `EVAL ${name}`);
    }
  }

  /**
   * Leaves the cluster on purpose: waits (2 s at most) for queued lines and releases to reach Redis, then
   * frees whatever names are left without announcing them (the room announced its departures), forgets
   * this node, and closes both connections.
   */
  async stop(): Promise<void> {
    clearInterval(this.#heartbeat);
    const deadline = performance.now() + STOP_FLUSH_MS;
    while (this.#pending.size > 0 && performance.now() < deadline) await Bun.sleep(10);
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#releaseDelivered(true);
    if (this.#link.up) {
      const { keys } = this;
      await this.#eval(
        "UNREGISTER",
        UNREGISTER,
        [keys.room],
        [keys.prefix, this.#id, "0", this.#id, ""],
      ).catch((error: Error) => this.options.log(`redis: could not unregister: ${error.message}`));
    }
    this.#link.close();
  }
}

/** Each script's SHA-1, as Redis names it (EVALSHA), computed once. */
const scriptShas = new Map<string, string>();
function scriptSha(script: string): string {
  let sha = scriptShas.get(script);
  if (sha === undefined) {
    sha = createHash("sha1").update(script).digest("hex");
    scriptShas.set(script, sha);
  }
  return sha;
}
