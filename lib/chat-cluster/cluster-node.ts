/**
 * lib/chat-cluster/cluster-node.ts — one chat node's side of the shared room in Redis: `ClusterNode` is
 * the room's name registry (claim / release / who) and its bus (publish a line; every batch read back
 * from the stream is handed to `deliver`).
 *
 * - Order: every line for the room is one `XADD` to one stream (trimmed with `MAXLEN ~ history`); every
 *   node reads it with a blocking `XREAD` on its own connection, in batches of up to
 *   {@link READ_BATCH_ENTRIES}, resuming from the last ID it delivered — after a reconnect too, so nothing
 *   the others said meanwhile is missed or delivered twice.
 * - Uniqueness: a name is a key `PREFIX name:LOWERCASE` set with `NX` to the node's id (cluster-scripts.ts).
 * - Liveness: `PREFIX alive:ID` expires after `nodeTimeoutSeconds` unless renewed; every heartbeat (a
 *   quarter of the timeout, 250 ms at most) renews it and removes dead nodes — in one Lua script, so each
 *   dead node's users are announced `* NAME left (server lost)` exactly once, by whichever node ran first.
 * - Link failure: while Redis is unreachable the node is paused (`hooks.paused()`); what it had to send is
 *   kept in order and sent again after it reconnects. Each line carries this node's sequence number, and
 *   the APPEND script adds it only if it is newer than the last one it added for the node: a line whose
 *   reply was lost with the connection (it did arrive) is not added twice. On each
 *   (re)connect it registers again; a changed epoch means Redis lost its data, so reading starts over at
 *   the new stream's beginning and the names of the users online here are claimed again.
 *
 * Contract: `claim()` and `who()` reject while paused (the room answers `ERR chat paused: reconnecting`);
 * `publish()` and `release()` never fail — they are queued until Redis has them. `stop()` sends what is
 * queued (2 s at most), unregisters the node, and closes both connections.
 */
import { randomUUID } from "node:crypto";
// Types only: the room is lesson 05's, and this is the registry and bus it is given in lesson 07.
import type { NameRegistry, RoomBus, WhoList } from "../../scripts/05-chat-server.ts";
import { ClusterKeys } from "./cluster-keys.ts";
import { APPEND, CLAIM, HEARTBEAT, RECLAIM, REGISTER, RELEASE, UNREGISTER, WHO } from "./cluster-scripts.ts";
import { RedisLink } from "./redis-link.ts";
import { compareStreamIds, decodeXreadReply, encodeEntry } from "./room-entry.ts";

/** Entries one XREAD may return: 1,000 — big batches are what make the fan-out cheap. */
export const READ_BATCH_ENTRIES = 1000;
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
  /** Names another node took while this one was cut off: their users here must go. */
  namesLost(names: string[]): void;
  /**
   * Redis lost the stream: a user here still waiting for its own join notice to come back will never see
   * it — everything in the new stream is news to everyone here.
   */
  streamLost(): void;
}

/** Something for Redis that must not be lost: a line for the room, or a name to free. */
type PendingOp = { line: string; sent: boolean } | { release: string; sent: boolean };

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

/** A callback waiting for this node's lines up to `seq` to be read back (see `afterDelivered`). */
interface DeliveryWaiter {
  seq: number;
  then: () => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ClusterNode implements NameRegistry, RoomBus {
  /** Unique per process start: a restarted node is a new node (its predecessor is cleaned up). */
  readonly id = randomUUID();
  readonly keys: ClusterKeys;
  readonly #link: RedisLink;
  #epoch: string | null = null;
  #lastId = "0-0";
  /** Incremented on every reconnect: an XREAD loop of an older connection stops. */
  #generation = 0;
  #nextSeq = 1;
  /** The seq of the last line this node published, and the highest of its own it has read back. */
  #lastLineSeq = 0;
  #deliveredSeq = 0;
  /** Callbacks waiting for this node's lines up to `seq` to come back from the stream. */
  #afterDelivered: DeliveryWaiter[] = [];
  /** Ops not yet acknowledged by Redis, by seq, in order. */
  readonly #pending = new Map<number, PendingOp>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #beating = false;
  #stopped = false;

  constructor(
    readonly options: ClusterNodeOptions,
    readonly hooks: ClusterNodeHooks,
  ) {
    this.keys = new ClusterKeys(options.prefix);
    this.#link = new RedisLink(options.url, {
      onUp: () => this.#resync(),
      onReady: () => this.#ready(),
      onDown: () => this.hooks.paused(),
      log: options.log,
    });
  }

  get #ttlMs(): number {
    return Math.round(this.options.nodeTimeoutSeconds * 1000);
  }

  /** Connects and registers; throws (one line) when Redis cannot be reached now. */
  async start(): Promise<void> {
    await this.#link.start();
    const every = Math.min(HEARTBEAT_MAX_MS, this.#ttlMs / 4);
    this.#heartbeat = setInterval(() => void this.#beat(), every);
  }

  // ── The registry ──

  /** Claims `name` for this node: the number of users online in the cluster, or null if taken. */
  async claim(name: string): Promise<number | null> {
    const { keys } = this;
    const reply = await this.#eval(
      CLAIM,
      [keys.name(name), keys.names(this.id), keys.nodes],
      [this.id, name, keys.prefix],
    );
    if (!Array.isArray(reply)) throw new ClusterProtocolError("unexpected reply to CLAIM", reply);
    if (reply[0] === "ok") return Number(reply[1]);
    if (reply[0] === "taken") return null;
    // This node was cleaned up while cut off: register again (a reconnect), and let the user retry.
    this.#link.fail("this node is no longer registered");
    throw new Error("node not registered");
  }

  /** Frees `name`; queued while paused. */
  release(name: string): void {
    this.#enqueue({ release: name, sent: false });
  }

  /** The user count and the first `limit` names of the whole cluster, sorted ignoring case. */
  async who(limit: number): Promise<WhoList> {
    const reply = await this.#eval(WHO, [this.keys.nodes], [this.keys.prefix, String(limit)]);
    if (!Array.isArray(reply) || !Array.isArray(reply[1])) {
      throw new ClusterProtocolError("unexpected reply to WHO", reply);
    }
    return { count: Number(reply[0]), names: reply[1].map(String) };
  }

  // ── The bus ──

  /** Sends one line to the whole room: an XADD now, or once Redis is back. */
  publish(line: string): void {
    this.#lastLineSeq = this.#nextSeq;
    this.#enqueue({ line, sent: false });
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

  #enqueue(op: PendingOp): void {
    const seq = this.#nextSeq++;
    this.#pending.set(seq, op);
    if (this.#link.up) this.#send(seq, op);
  }

  /** Sends one op. Bun pipelines the commands of one turn on the connection: they arrive in order. */
  #send(seq: number, op: PendingOp): void {
    op.sent = true;
    const { keys } = this;
    const done =
      "line" in op
        ? this.#eval(
            APPEND,
            [keys.room, keys.seq(this.id)],
            [String(this.options.history), String(seq), ...encodeEntry(op.line, this.id, seq)],
          )
        : this.#eval(RELEASE, [keys.name(op.release), keys.names(this.id)], [this.id, op.release]);
    done.then(
      () => this.#pending.delete(seq),
      // Kept: it is sent again after the reconnect (APPEND skips it if it did arrive).
      () => {
        op.sent = false;
      },
    );
  }

  #flushPending(): void {
    for (const [seq, op] of this.#pending) if (!op.sent) this.#send(seq, op);
  }

  // ── Reading the stream ──

  async #readLoop(generation: number): Promise<void> {
    const key = this.keys.room;
    while (generation === this.#generation && !this.#stopped) {
      let reply: unknown;
      try {
        reply = await this.#link.reader.send("XREAD", [
          "COUNT",
          String(READ_BATCH_ENTRIES),
          "BLOCK",
          String(READ_BLOCK_MS),
          "STREAMS",
          key,
          this.#lastId,
        ]);
      } catch {
        return; // the link is down: the next reconnect starts a new loop from #lastId
      }
      if (generation !== this.#generation) return;
      const batch = decodeXreadReply(reply, key);
      for (const { id, reason } of batch.skipped) {
        this.options.log(`! skipped stream entry ${id} in ${key}: ${reason}`);
      }
      if (batch.lastId !== null) this.#lastId = batch.lastId;
      if (batch.entries.length === 0) continue;
      const started = performance.now();
      this.hooks.deliver(batch.entries.map((entry) => entry.line));
      for (const entry of batch.entries) {
        if (entry.node === this.id && entry.seq > this.#deliveredSeq) this.#deliveredSeq = entry.seq;
      }
      if (this.#afterDelivered.length > 0) this.#releaseDelivered();
      // The batch's writes leave in this turn's flush pass, queued before this: after it, they are done.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const linger = Math.min(READ_LINGER_MAX_MS, (performance.now() - started) * READ_LINGER_PER_DELIVERY);
      if (linger >= 1) await Bun.sleep(linger);
    }
  }

  // ── Joining, liveness, and coming back ──

  /** Runs on every (re)connect, before the node counts as up. */
  async #resync(): Promise<void> {
    const { keys } = this;
    const candidate = randomUUID();
    const reply = await this.#eval(
      REGISTER,
      [keys.epoch, keys.nodes, keys.alive(this.id), keys.room],
      [candidate, this.id, String(this.#ttlMs)],
    );
    if (!Array.isArray(reply) || reply.length !== 4) {
      throw new ClusterProtocolError("unexpected reply to REGISTER", reply);
    }
    const [epoch, wasMember, lastId, firstId] = reply.map(String) as [string, string, string, string];
    const firstTime = this.#epoch === null;
    const dataLost = !firstTime && epoch !== this.#epoch;
    const cleanedUp = !firstTime && !dataLost && wasMember === "0";
    this.#epoch = epoch;
    if (firstTime) this.#lastId = lastId;
    else if (dataLost) {
      this.options.log("redis: its data is gone (restarted empty?): reading the new stream from its start");
      this.#lastId = "0-0";
      this.hooks.streamLost();
    } else if (this.#lastId !== "0-0" && compareStreamIds(firstId, this.#lastId) > 0) {
      // Trimmed past our position while we were away (more than --history entries): say so, not silently.
      this.hooks.deliver(["* some messages were missed while this server was reconnecting"]);
    }
    if (!firstTime) await this.#claimAgain(cleanedUp);
    this.#flushPending();
  }

  /** After Redis lost our names (or us): claim each online user's name again. */
  async #claimAgain(announce: boolean): Promise<void> {
    const online = this.hooks.onlineNames();
    if (announce) {
      this.options.log("redis: this node was taken for dead while cut off; announcing its users again");
      this.#forgetDeparturesOthersHeard(new Set(online.map((name) => name.toLowerCase())));
    }
    if (online.length === 0) return;
    const { keys } = this;
    const lost = await this.#eval(
      RECLAIM,
      [keys.names(this.id), keys.room],
      [keys.prefix, this.id, String(this.options.history), announce ? "announce" : "", ...online],
    );
    if (!Array.isArray(lost)) throw new ClusterProtocolError("unexpected reply to RECLAIM", lost);
    this.options.log(`redis: claimed ${online.length - lost.length} name(s) again, ${lost.length} taken`);
    if (lost.length > 0) this.hooks.namesLost(lost.map(String));
  }

  /**
   * Taken for dead, this node's users were announced as `left (server lost)`: a departure notice of ours
   * still queued for one of them (it left while we were cut off) would tell everyone a second time.
   */
  #forgetDeparturesOthersHeard(online: Set<string>): void {
    for (const [seq, op] of this.#pending) {
      if (!("line" in op)) continue;
      const name = /^\* ([A-Za-z0-9_-]+) (?:left|was disconnected)/.exec(op.line)?.[1];
      if (name !== undefined && !online.has(name.toLowerCase())) this.#pending.delete(seq);
    }
  }

  #ready(): void {
    const generation = ++this.#generation;
    this.hooks.resumed();
    this.#flushPending();
    void this.#readLoop(generation);
  }

  /**
   * Renews this node's liveness and cleans up dead nodes. A reply that does not come within half the
   * node timeout means the link is dead even if no error says so: it is torn down and rebuilt.
   */
  async #beat(): Promise<void> {
    if (this.#beating || !this.#link.up) return;
    this.#beating = true;
    const { keys } = this;
    const watchdog = setTimeout(() => this.#link.fail("heartbeat got no reply"), this.#ttlMs / 2);
    try {
      const reply = await this.#eval(
        HEARTBEAT,
        [keys.nodes, keys.alive(this.id), keys.epoch, keys.room],
        [keys.prefix, this.id, String(this.#ttlMs), this.#epoch ?? "", String(this.options.history)],
      );
      if (!Array.isArray(reply)) throw new ClusterProtocolError("unexpected reply to HEARTBEAT", reply);
      if (Number(reply[1]) > 0) this.options.log(`cleaned up ${reply[1]} user(s) of dead node(s)`);
      // Redis does not know us (it lost its data, or took us for dead): reconnect, which registers again.
      if (Number(reply[0]) !== 1 && !this.#stopped) this.#link.fail("this node is no longer registered");
    } catch {
      // The link reports its own failures; a heartbeat that failed is simply the next one's job.
    } finally {
      clearTimeout(watchdog);
      this.#beating = false;
    }
  }

  #eval(script: string, keys: string[], args: string[]): Promise<unknown> {
    return this.#link.commands.send("EVAL", [script, String(keys.length), ...keys, ...args]);
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
    this.#releaseDelivered(true);
    if (this.#link.up) {
      const { keys } = this;
      await this.#eval(UNREGISTER, [keys.room], [keys.prefix, this.id, "0", this.id, ""]).catch(
        (error: Error) => this.options.log(`redis: could not unregister: ${error.message}`),
      );
    }
    this.#link.close();
  }
}
