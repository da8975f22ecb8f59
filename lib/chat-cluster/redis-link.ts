/**
 * lib/chat-cluster/redis-link.ts — a node's two connections to Redis, and what it does when they drop.
 *
 * Two connections, because a blocking `XREAD` ties up the connection it is sent on until it returns: one
 * (`read()`) only ever waits on the stream; the other (`command()`) runs everything else. They are up or
 * down together: when either drops, the other is closed too, `onDown` runs at once, and the link
 * reconnects both with a capped, jittered backoff (50 ms, doubling, at most 2 s), then runs `onUp` — which
 * must bring the node back in step (register, reconcile its names) before the link counts as up.
 *
 * Deadlines: every reply is awaited for at most `replyTimeoutMs` (a blocking `XREAD`: its `BLOCK` time
 * plus that) — the handshake at startup and after every reconnect included. A late reply fails the link
 * with one line that names the command (`redis: connection lost (no reply to XREAD within 3500 ms)`), and
 * the reconnect path runs; at startup, `start()` rejects with that line. Without them, a blackholed link
 * (no reset ever comes) left a node deaf for good while its heartbeat, on the other connection, was fine.
 *
 * The connections are resp-connection.ts's, not Bun's built-in `RedisClient`: Bun's client parses a whole
 * reply before anyone can see its size (a 300 MB stream entry is 300 MB in every node), and its commands
 * wait as long as the server likes. The handshake is `HELLO 2` (RESP2; `AUTH` in it when the URL has a
 * password), then `SELECT` when the URL names a database (`redis://HOST:PORT/2`).
 */
import {
  RedisDeadlineError,
  RespConnection,
  type RespParserLimits,
  type RespReply,
  type RespValue,
} from "./resp-connection.ts";

/** First reconnect delay: 50 ms; each failure doubles it… */
export const RECONNECT_FIRST_MS = 50;
/** …up to 2 s, so a node finds a Redis that came back within ~2 s of its return. */
export const RECONNECT_MAX_MS = 2000;
/** A TCP connect that has not completed in 2 s has failed. */
export const CONNECT_TIMEOUT_MS = 2000;
/** Redis's default port, when the URL names none. */
const REDIS_DEFAULT_PORT = 6379;

export interface RedisLinkOptions {
  /** `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`. */
  url: string;
  /** The longest any reply may take (a blocking XREAD: its BLOCK time on top). */
  replyTimeoutMs: number;
  /** Bounds for the replies of each connection (resp-parser.ts). */
  commandLimits: RespParserLimits;
  readerLimits: RespParserLimits;
}

export interface RedisLinkEvents {
  /** Both connections are open (again) and past the handshake: resynchronise. A throw counts as a failed attempt. */
  onUp(): Promise<void>;
  /** The link counts as up: work may start (after `onUp` resolved). */
  onReady(): void;
  /** A connection dropped (once per outage). */
  onDown(error: Error): void;
  log(line: string): void;
}

/** Where a `redis://` URL points. */
interface RedisAddress {
  host: string;
  port: number;
  user: string;
  password: string;
  db: number;
}

function parseRedisUrl(url: string): RedisAddress {
  const parsed = new URL(url);
  const db = parsed.pathname.replace(/^\//, "");
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ""),
    port: Number(parsed.port || REDIS_DEFAULT_PORT),
    user: decodeURIComponent(parsed.username) || "default",
    password: decodeURIComponent(parsed.password),
    db: /^\d+$/.test(db) ? Number(db) : 0,
  };
}

export class RedisLink {
  readonly #address: RedisAddress;
  #commands: RespConnection | null = null;
  #reader: RespConnection | null = null;
  #up = false;
  #closed = false;
  #reconnecting = false;
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly options: RedisLinkOptions,
    readonly events: RedisLinkEvents,
  ) {
    this.#address = parseRedisUrl(options.url);
  }

  /** True between a successful `onUp` and the next drop. */
  get up(): boolean {
    return this.#up;
  }

  /**
   * Runs a command on the command connection, with the reply deadline. Rejects at once while the
   * connections are not open; with a `RedisReplyError` for an error reply (the link stays up).
   */
  command(args: readonly string[], name = args[0]!): Promise<RespValue> {
    if (!this.#commands) return Promise.reject(new Error("redis link down"));
    return this.#commands.send(args, this.options.replyTimeoutMs, name);
  }

  /** Runs a blocking command on the reader connection: it may take `blockMs` plus the reply deadline. */
  read(args: readonly string[], blockMs: number): Promise<RespReply> {
    if (!this.#reader) return Promise.reject(new Error("redis link down"));
    return this.#reader.request(args, blockMs + this.options.replyTimeoutMs);
  }

  /** The first connection: throws one line (what did not answer, or why it cannot connect) if Redis is not usable now. */
  async start(): Promise<void> {
    this.#reconnecting = true;
    try {
      await this.#connectBoth();
      await this.events.onUp();
      this.#up = true;
      this.events.onReady();
    } catch (error) {
      this.close();
      throw error;
    } finally {
      this.#reconnecting = false;
    }
  }

  /** Closes both connections for good. */
  close(): void {
    this.#closed = true;
    this.#up = false;
    clearTimeout(this.#retryTimer);
    this.#closeBoth();
  }

  /** Tears the link down as if the network had failed (used when Redis's answers say we are out of step). */
  fail(reason: string): void {
    this.#dropped(new Error(reason));
  }

  async #connectBoth(): Promise<void> {
    const { host, port } = this.#address;
    const onClose = (error: Error) => this.#dropped(error);
    const open = (limits: RespParserLimits) =>
      RespConnection.open(host, port, { limits, connectTimeoutMs: CONNECT_TIMEOUT_MS, onClose });
    const [commands, reader] = await Promise.allSettled([
      open(this.options.commandLimits),
      open(this.options.readerLimits),
    ]);
    if (commands.status === "rejected" || reader.status === "rejected") {
      if (commands.status === "fulfilled") commands.value.close();
      if (reader.status === "fulfilled") reader.value.close();
      throw commands.status === "rejected" ? commands.reason : (reader as PromiseRejectedResult).reason;
    }
    this.#commands = commands.value;
    this.#reader = reader.value;
    await Promise.all([this.#handshake(commands.value), this.#handshake(reader.value)]);
  }

  /** `HELLO 2` (with `AUTH` when the URL has a password), then `SELECT` when it names a database. */
  async #handshake(connection: RespConnection): Promise<void> {
    const { user, password, db } = this.#address;
    const hello = password ? ["HELLO", "2", "AUTH", user, password] : ["HELLO", "2"];
    const reply = await connection.send(hello, this.options.replyTimeoutMs, "HELLO");
    if (!Array.isArray(reply)) throw new Error(`HELLO got ${JSON.stringify(reply)} (not a Redis 6+ server?)`);
    if (db !== 0) await connection.send(["SELECT", String(db)], this.options.replyTimeoutMs);
  }

  #closeBoth(): void {
    this.#commands?.close();
    this.#reader?.close();
    this.#commands = null;
    this.#reader = null;
  }

  #dropped(error: Error): void {
    if (this.#closed) return;
    if (this.#reconnecting) {
      // A connection of the attempt in progress failed: the attempt fails with it (its awaits reject).
      this.#closeBoth();
      return;
    }
    const wasUp = this.#up;
    this.#up = false;
    // Both or neither: a reader still blocked on a dead-but-open link would never see the resumed stream.
    this.#closeBoth();
    if (wasUp) {
      this.events.log(`redis: connection lost (${error.message}); reconnecting`);
      this.events.onDown(error);
    }
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.#failures);
    // Full jitter on the upper half: many nodes cut off together do not all retry in the same instant.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#retry();
    }, delay);
  }

  async #retry(): Promise<void> {
    if (this.#closed) return;
    this.#reconnecting = true;
    try {
      await this.#connectBoth();
      await this.events.onUp();
      this.#reconnecting = false;
      if (this.#closed) return;
      if (!this.#commands?.open || !this.#reader?.open) throw new Error("dropped while resyncing");
      this.#up = true;
      this.#failures = 0;
      this.events.log("redis: reconnected");
      this.events.onReady();
    } catch (error) {
      this.#reconnecting = false;
      if (this.#closed) return;
      // A reconnect that reached Redis but got no answer is worth one line; a refused connect is not news.
      if (error instanceof RedisDeadlineError && this.#failures === 0) {
        this.events.log(`redis: reconnect failed (${error.message}); retrying`);
      }
      this.#failures++;
      this.#closeBoth();
      this.#scheduleRetry();
    }
  }
}
