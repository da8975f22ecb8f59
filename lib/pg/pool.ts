/**
 * lib/pg/pool.ts — a few connections shared by many callers: each query borrows an idle connection (or
 * opens one, up to `max`), and gives it back when done. Queries on different connections run at the same
 * time on the server — what the SQL console needs to keep answering while a slow query runs.
 *
 * No caller is ever stranded. Callers wait in order for a connection; whenever one frees up — returned,
 * lost, or a connection attempt that failed — the next caller in line gets it (or the slot, and opens a
 * connection of its own). A failed connect rejects only the caller it was made for, with its error; the
 * callers behind it each make their own attempt, within `max` at a time (as pg-pool and asyncpg do), so a
 * database that is down answers every query with the reason, and one that comes back is used at once. And
 * no caller waits longer than `acquireTimeoutMs` for a connection, connecting included.
 */

import { MAX_TIMER_MS } from "../deadline.ts";
import { Client, PgConnectionError, type QueryResult, type SimpleQueryOptions } from "./client.ts";
import { PgPoolTimeoutError } from "./errors.ts";
import type { ConnectOptions } from "./options.ts";

/**
 * How long a caller waits for a connection by default (for a busy one to come back, or for a new one to be
 * made): 30 s, as HikariCP's `connectionTimeout`. Past it, the query rejects with PgPoolTimeoutError.
 */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 30_000;

export interface PoolOptions {
  /** Most connections open at once (default 10). */
  max?: number;
  /**
   * Longest wait for a connection, milliseconds, connecting included (default
   * {@link DEFAULT_ACQUIRE_TIMEOUT_MS}). The query then rejects with {@link PgPoolTimeoutError}, not sent.
   */
  acquireTimeoutMs?: number;
}

/** A caller in line for a connection. */
interface Waiter {
  resolve(client: Client): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** It has its connection, its error, or its timeout: whatever comes later is not for it. */
  settled: boolean;
}

export class Pool {
  readonly max: number;
  readonly acquireTimeoutMs: number;
  readonly #connect: () => Promise<Client>;
  readonly #idle: Client[] = [];
  /** Callers waiting for a connection, oldest first. */
  readonly #waiting: Waiter[] = [];
  /** Connections open or being opened. */
  #open = 0;
  #closed = false;

  constructor(urlOrOptions?: string | ConnectOptions, options: PoolOptions = {}) {
    this.max = options.max ?? 10;
    if (!Number.isInteger(this.max) || this.max < 1) throw new RangeError("max must be a positive integer");
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS;
    if (!(this.acquireTimeoutMs > 0 && this.acquireTimeoutMs <= MAX_TIMER_MS))
      throw new RangeError(`acquireTimeoutMs must be between 1 and ${MAX_TIMER_MS} (a timer's limit)`);
    this.#connect = () => Client.connect(urlOrOptions);
  }

  /** Connections open now (idle or busy), or being opened. */
  get size(): number {
    return this.#open;
  }

  /** Callers waiting for a connection now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
    return this.withClient((client) => client.query<Row>(text, params));
  }

  /** Client.simpleQuery on a pooled connection (`options.maxRows` bounds what each result keeps). */
  simpleQuery(text: string, options?: SimpleQueryOptions): Promise<QueryResult[]> {
    return this.withClient((client) => client.simpleQuery(text, options));
  }

  /**
   * Runs `work` with a connection of its own (for a transaction, say), then returns it to the pool. Rejects
   * without running `work` when no connection could be had: the connect error of the attempt made for this
   * call, {@link PgPoolTimeoutError} after `acquireTimeoutMs`, or PgConnectionError once the pool is closed.
   */
  async withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.#acquire();
    try {
      return await work(client);
    } finally {
      this.#release(client);
    }
  }

  /** Closes idle connections now and busy ones when they are returned; waiting and later queries reject. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const waiter of this.#waiting.splice(0)) settle(waiter, new PgConnectionError("the pool is closed"));
    await Promise.all(this.#idle.splice(0).map((client) => client.close()));
  }

  #acquire(): Promise<Client> {
    if (this.#closed) return Promise.reject(new PgConnectionError("the pool is closed"));
    // The common case: a connection at hand and nobody before us — no timer to arm.
    const idle = this.#waiting.length === 0 ? this.#takeIdle() : undefined;
    if (idle) return Promise.resolve(idle);
    const { promise, resolve, reject } = Promise.withResolvers<Client>();
    const waiter: Waiter = { resolve, reject, timer: undefined as never, settled: false };
    waiter.timer = setTimeout(() => this.#expire(waiter), this.acquireTimeoutMs);
    this.#waiting.push(waiter);
    this.#serve();
    return promise;
  }

  /** Past `acquireTimeoutMs`: out of the line. (A connection being opened for it goes to the next caller.) */
  #expire(waiter: Waiter): void {
    const index = this.#waiting.indexOf(waiter);
    if (index !== -1) this.#waiting.splice(index, 1);
    settle(waiter, new PgPoolTimeoutError(this.acquireTimeoutMs, this.max, this.#open, this.#waiting.length));
  }

  /** Gives waiting callers, oldest first, an idle connection, or a slot to open one in, while there are any. */
  #serve(): void {
    while (this.#waiting.length > 0) {
      const idle = this.#takeIdle();
      if (idle) {
        settle(this.#waiting.shift()!, idle);
      } else if (this.#open < this.max) {
        this.#openFor(this.#waiting.shift()!);
      } else return;
    }
  }

  /** An idle connection that is still open, or undefined. */
  #takeIdle(): Client | undefined {
    for (let client = this.#idle.pop(); client; client = this.#idle.pop()) {
      if (!client.closed) return client;
      this.#open--;
    }
    return undefined;
  }

  /** Opens a connection for `waiter`. Failed, the slot goes to the next caller in line. */
  #openFor(waiter: Waiter): void {
    this.#open++;
    this.#connect().then(
      (client) => {
        if (waiter.settled)
          this.#release(client); // it timed out meanwhile: someone else may use it
        else settle(waiter, client);
      },
      (error: Error) => {
        this.#open--;
        settle(waiter, error);
        this.#serve();
      },
    );
  }

  #release(client: Client): void {
    if (this.#closed || client.closed) {
      this.#open--;
      if (!client.closed) void client.close();
      // A waiter may now open a fresh connection in its place.
      if (!this.#closed) this.#serve();
      return;
    }
    this.#idle.push(client);
    this.#serve();
  }
}

/** Settles `waiter` once: with a connection, or with why there is none. */
function settle(waiter: Waiter, outcome: Client | Error): void {
  if (waiter.settled) return;
  waiter.settled = true;
  clearTimeout(waiter.timer);
  if (outcome instanceof Error) waiter.reject(outcome);
  else waiter.resolve(outcome);
}
