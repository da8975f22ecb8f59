/**
 * lib/connection-pool.ts — a few reusable connections per origin, as browsers and undici keep them.
 *
 * A request takes an idle connection of its origin if one is still good, or opens a new one while the
 * origin has fewer than `maxPerOrigin`; otherwise it waits, first come first served, for one to be handed
 * back. So a slow response holds one connection, not the whole origin, and N requests never open more
 * than `maxPerOrigin` sockets.
 */

/** Connections per origin, as browsers (6 per host for HTTP/1.1) and undici's default pool use. */
export const DEFAULT_MAX_CONNECTIONS_PER_ORIGIN = 6;

/** What the pool needs to know about the connections it holds. */
export interface ConnectionPoolOptions<C> {
  /** Most connections open (busy or idle) per origin. Default {@link DEFAULT_MAX_CONNECTIONS_PER_ORIGIN}. */
  maxPerOrigin?: number;
  /** Whether an idle connection may still carry a request (checked when it is taken). */
  isReusable: (connection: C) => boolean;
  /** Closes a connection the pool lets go of. */
  discard: (connection: C) => void;
}

/** A request waiting for its turn: it is handed an idle connection, or `null` (its slot: open one). */
interface Waiter<C> {
  resolve: (connection: C | null) => void;
  reject: (error: Error) => void;
}

interface Origin<C> {
  /** Connections open, busy or idle, plus slots being opened: never more than `maxPerOrigin`. */
  open: number;
  /** Idle connections, most recently used last. */
  idle: C[];
  waiting: Waiter<C>[];
}

/** No connection was handed back within `maxWaitMs`. */
export class PoolWaitTimeoutError extends Error {
  override name = "PoolWaitTimeoutError";
  constructor(readonly waitedMs: number) {
    super(`no connection became free within ${waitedMs} ms`);
  }
}

/** The pool is closed: no connection will be given out. */
export class PoolClosedError extends Error {
  override name = "PoolClosedError";
  constructor() {
    super("the connection pool is closed");
  }
}

/** Connections by origin, at most `maxPerOrigin` each, given out in FIFO order when all are busy. */
export class ConnectionPool<C> {
  readonly maxPerOrigin: number;
  readonly #options: ConnectionPoolOptions<C>;
  readonly #origins = new Map<string, Origin<C>>();
  #closed = false;

  constructor(options: ConnectionPoolOptions<C>) {
    this.maxPerOrigin = options.maxPerOrigin ?? DEFAULT_MAX_CONNECTIONS_PER_ORIGIN;
    if (!Number.isInteger(this.maxPerOrigin) || this.maxPerOrigin < 1)
      throw new RangeError(`maxPerOrigin must be a positive integer, got ${this.maxPerOrigin}`);
    this.#options = options;
  }

  /** Connections open to `origin` (busy or idle). */
  openConnections(origin: string): number {
    return this.#origins.get(origin)?.open ?? 0;
  }

  /**
   * A connection to `origin`: an idle one that is still reusable (`reused: true`), else a new one from
   * `open()` if the origin is under its cap, else the next one handed back, in FIFO order. With
   * `fresh: true` an idle connection is not taken. Hand it back with {@link release}. If `open()` fails
   * the slot is freed and the error thrown. Past `maxWaitMs` in the queue, the request leaves it and
   * rejects with {@link PoolWaitTimeoutError} (a timer is made only for a request that has to wait).
   */
  acquire(
    origin: string,
    open: () => Promise<C>,
    options: { fresh?: boolean; maxWaitMs?: number } = {},
  ): Promise<{ connection: C; reused: boolean }> {
    if (this.#closed) return Promise.reject(new PoolClosedError());
    const entry = this.#origin(origin);
    if (!options.fresh) {
      const idle = this.#takeIdle(entry);
      if (idle !== undefined) return Promise.resolve({ connection: idle, reused: true });
    }
    return this.#openOrWait(origin, entry, open, options);
  }

  /**
   * An idle connection of `origin` that is still reusable, taken at once (hand it back with
   * {@link release}); `undefined` if there is none. `acquire` without the promise, for the common case.
   */
  takeIdle(origin: string): C | undefined {
    const entry = this.#origins.get(origin);
    return entry && !this.#closed ? this.#takeIdle(entry) : undefined;
  }

  async #openOrWait(
    origin: string,
    entry: Origin<C>,
    open: () => Promise<C>,
    options: { fresh?: boolean; maxWaitMs?: number },
  ): Promise<{ connection: C; reused: boolean }> {
    if (entry.open < this.maxPerOrigin) {
      entry.open++;
    } else if (entry.idle.length > 0) {
      // Only with `fresh`: close an idle connection and open a new one in its slot.
      this.#options.discard(entry.idle.shift()!);
    } else {
      const handed = await this.#wait(entry, options.maxWaitMs);
      // The slot is ours now (counted in `open`): reuse what was handed over if it is still good.
      if (handed !== null) {
        if (!options.fresh && this.#options.isReusable(handed)) return { connection: handed, reused: true };
        this.#options.discard(handed);
      }
    }
    try {
      return { connection: await open(), reused: false };
    } catch (error) {
      this.#freeSlot(origin, entry);
      throw error;
    }
  }

  /**
   * Hands a connection back: to the first waiting request if there is one, else to the idle list. With
   * `reusable: false` it is discarded and its slot passed on (or freed).
   */
  release(origin: string, connection: C, reusable: boolean): void {
    const entry = this.#origins.get(origin);
    if (!entry || this.#closed) {
      this.#options.discard(connection);
      return;
    }
    const next = entry.waiting.shift();
    if (next) {
      if (reusable) next.resolve(connection);
      else {
        this.#options.discard(connection);
        next.resolve(null);
      }
      return;
    }
    if (reusable) entry.idle.push(connection);
    else {
      entry.open--;
      this.#options.discard(connection);
    }
  }

  /** Closes every idle connection and fails every waiting request; later `acquire` calls throw. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#origins.values()) {
      for (const connection of entry.idle) this.#options.discard(connection);
      for (const waiter of entry.waiting) waiter.reject(new PoolClosedError());
    }
    this.#origins.clear();
  }

  #origin(origin: string): Origin<C> {
    let entry = this.#origins.get(origin);
    if (!entry) {
      entry = { open: 0, idle: [], waiting: [] };
      this.#origins.set(origin, entry);
    }
    return entry;
  }

  /** The most recently used idle connection that is still reusable; the others found on the way are closed. */
  #takeIdle(entry: Origin<C>): C | undefined {
    for (let connection = entry.idle.pop(); connection !== undefined; connection = entry.idle.pop()) {
      if (this.#options.isReusable(connection)) return connection;
      entry.open--;
      this.#options.discard(connection);
    }
    return undefined;
  }

  #wait(entry: Origin<C>, maxWaitMs?: number): Promise<C | null> {
    return new Promise((resolve, reject) => {
      if (maxWaitMs === undefined) {
        entry.waiting.push({ resolve, reject });
        return;
      }
      const timer = setTimeout(() => {
        const index = entry.waiting.indexOf(waiter);
        if (index === -1) return; // already served
        entry.waiting.splice(index, 1);
        reject(new PoolWaitTimeoutError(maxWaitMs));
      }, maxWaitMs);
      const waiter: Waiter<C> = {
        resolve: (connection) => {
          clearTimeout(timer);
          resolve(connection);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      entry.waiting.push(waiter);
    });
  }

  /** A slot whose `open()` failed: pass it to the next waiter (to open its own), or free it. */
  #freeSlot(origin: string, entry: Origin<C>): void {
    if (this.#origins.get(origin) !== entry) return; // closed meanwhile
    const next = entry.waiting.shift();
    if (next) next.resolve(null);
    else entry.open--;
  }
}
