/**
 * lib/chat-cluster/redis-link.ts — a node's two connections to Redis, and what it does when they drop.
 *
 * Two connections, because a blocking `XREAD` ties up the connection it is sent on until it returns: one
 * (`reader`) only ever waits on the stream; the other (`commands`) runs everything else. They are up or
 * down together: when either drops, the other is closed too, `onDown` runs at once, and the link
 * reconnects both with a capped, jittered backoff (50 ms, doubling, at most 2 s), then runs `onUp` — which
 * must bring the node back in step (register, claim names again) before the link counts as up.
 *
 * Why not Bun's own auto-reconnect: with it, a dropped connection is reported only once Bun gives up
 * retrying, and commands sent meanwhile wait in its offline queue — a node would neither know it is cut off
 * nor be able to answer its users. With `autoReconnect: false` Bun reports every drop (`onclose`) and
 * `connect()` on the same client connects again; with `enableOfflineQueue: false` a command sent while
 * down fails at once instead of waiting.
 */
import { RedisClient } from "bun";
import { openConnection } from "../streams.ts";

/** First reconnect delay: 50 ms; each failure doubles it… */
export const RECONNECT_FIRST_MS = 50;
/** …up to 2 s, so a node finds a Redis that came back within ~2 s of its return. */
export const RECONNECT_MAX_MS = 2000;
/** A connection attempt that has not completed in 2 s has failed. */
const CONNECT_TIMEOUT_MS = 2000;

export interface RedisLinkEvents {
  /** Both connections are open (again): resynchronise. A throw counts as a failed attempt. */
  onUp(): Promise<void>;
  /** The link counts as up: work may start (after `onUp` resolved). */
  onReady(): void;
  /** A connection dropped (once per outage). */
  onDown(error: Error): void;
  log(line: string): void;
}

export class RedisLink {
  readonly commands: RedisClient;
  readonly reader: RedisClient;
  #up = false;
  #closed = false;
  #reconnecting = false;
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly url: string,
    readonly events: RedisLinkEvents,
  ) {
    const options = {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: CONNECT_TIMEOUT_MS,
    };
    this.commands = new RedisClient(url, options);
    this.reader = new RedisClient(url, options);
    this.commands.onclose = (error) => this.#dropped(error);
    this.reader.onclose = (error) => this.#dropped(error);
  }

  /** True between a successful `onUp` and the next drop. */
  get up(): boolean {
    return this.#up;
  }

  /** The first connection: throws (with Bun's one-line reason) if Redis cannot be reached now. */
  async start(): Promise<void> {
    this.#reconnecting = true;
    try {
      await Promise.all([this.commands.connect(), this.reader.connect()]);
      await this.events.onUp();
      this.#up = true;
      this.events.onReady();
    } catch (error) {
      this.close();
      throw await explainFailedStart(this.url, error as Error);
    } finally {
      this.#reconnecting = false;
    }
  }

  /** Closes both connections for good. */
  close(): void {
    this.#closed = true;
    this.#up = false;
    clearTimeout(this.#retryTimer);
    this.commands.close();
    this.reader.close();
  }

  /** Tears the link down as if the network had failed (used when a reply never comes). */
  fail(reason: string): void {
    this.#dropped(new Error(reason));
  }

  #dropped(error: Error): void {
    if (this.#closed || this.#reconnecting) return;
    const wasUp = this.#up;
    this.#up = false;
    // Both or neither: a reader still blocked on a dead-but-open link would never see the resumed stream.
    if (this.commands.connected) this.commands.close();
    if (this.reader.connected) this.reader.close();
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
      if (!this.commands.connected) await this.commands.connect();
      if (!this.reader.connected) await this.reader.connect();
      await this.events.onUp();
      this.#reconnecting = false;
      if (this.#closed) return;
      if (!this.commands.connected || !this.reader.connected) throw new Error("dropped while resyncing");
      this.#up = true;
      this.#failures = 0;
      this.events.log("redis: reconnected");
      this.events.onReady();
    } catch {
      this.#reconnecting = false;
      if (this.#closed) return;
      this.#failures++;
      if (this.commands.connected) this.commands.close();
      if (this.reader.connected) this.reader.close();
      this.#scheduleRetry();
    }
  }
}

/** Redis's default port, when the URL names none. */
const REDIS_DEFAULT_PORT = 6379;

/**
 * Bun's client says only "Connection closed" when nothing listens: try a plain TCP connect to the same
 * address for the operating system's reason (`cannot connect to 127.0.0.1:1: connection refused …`).
 * If TCP gets through, the problem is Redis itself (a password, a TLS port): its own message stands.
 */
async function explainFailedStart(url: string, error: Error): Promise<Error> {
  let host: string;
  let port: number;
  try {
    const parsed = new URL(url);
    host = parsed.hostname.replace(/^\[|\]$/g, "");
    port = Number(parsed.port || REDIS_DEFAULT_PORT);
  } catch {
    return error;
  }
  const probe = openConnection(host, port).then(
    ([, writer]) => {
      writer.abort();
      return error;
    },
    (tcpError: Error) => tcpError,
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const gaveUp = new Promise<Error>((resolve) => {
    timer = setTimeout(() => resolve(error), CONNECT_TIMEOUT_MS);
  });
  return Promise.race([probe, gaveUp]).finally(() => clearTimeout(timer));
}
