/**
 * lib/pg/pool.ts — a few connections shared by many callers: each query borrows an idle connection (or
 * opens one, up to `max`), and gives it back when done. Queries on different connections run at the same
 * time on the server — what the SQL console needs to keep answering while a slow query runs.
 */
import { Client, PgConnectionError, type QueryResult } from "./client.ts";
import type { ConnectOptions } from "./options.ts";

export interface PoolOptions {
  /** Most connections open at once (default 10). */
  max?: number;
}

export class Pool {
  readonly max: number;
  readonly #connect: () => Promise<Client>;
  readonly #idle: Client[] = [];
  readonly #waiting: ((client: Client | Error) => void)[] = [];
  #open = 0;
  #closed = false;

  constructor(urlOrOptions?: string | ConnectOptions, options: PoolOptions = {}) {
    this.max = options.max ?? 10;
    if (!Number.isInteger(this.max) || this.max < 1) throw new RangeError("max must be a positive integer");
    this.#connect = () => Client.connect(urlOrOptions);
  }

  /** Connections open now (idle or busy). */
  get size(): number {
    return this.#open;
  }

  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
    return this.withClient((client) => client.query<Row>(text, params));
  }

  simpleQuery(text: string): Promise<QueryResult[]> {
    return this.withClient((client) => client.simpleQuery(text));
  }

  /** Runs `work` with a connection of its own (for a transaction, say), then returns it to the pool. */
  async withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.#acquire();
    try {
      return await work(client);
    } finally {
      this.#release(client);
    }
  }

  /** Closes idle connections now and busy ones when they are returned; later queries reject. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const resolve of this.#waiting.splice(0)) resolve(new PgConnectionError("the pool is closed"));
    await Promise.all(this.#idle.splice(0).map((client) => client.close()));
  }

  async #acquire(): Promise<Client> {
    if (this.#closed) throw new PgConnectionError("the pool is closed");
    for (let client = this.#idle.pop(); client; client = this.#idle.pop()) {
      if (!client.closed) return client;
      this.#open--;
    }
    if (this.#open < this.max) {
      this.#open++;
      try {
        return await this.#connect();
      } catch (error) {
        this.#open--;
        throw error;
      }
    }
    const next = await new Promise<Client | Error>((resolve) => this.#waiting.push(resolve));
    if (next instanceof Error) throw next;
    return next;
  }

  #release(client: Client): void {
    if (client.closed) {
      this.#open--;
      // A waiter may now open a fresh connection in its place.
      const waiter = this.#waiting.shift();
      if (waiter) this.#acquire().then(waiter, waiter);
      return;
    }
    if (this.#closed) {
      this.#open--;
      void client.close();
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter) waiter(client);
    else this.#idle.push(client);
  }
}
