import { describe, expect, test } from "bun:test";
import {
  ConnectionPool,
  DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
  PoolClosedError,
  PoolWaitTimeoutError,
} from "../lib/connection-pool.ts";

/** A stand-in connection: the pool only stores, checks and discards it. */
interface Fake {
  id: number;
  good: boolean;
  discarded: boolean;
}

function makePool(maxPerOrigin?: number) {
  let opened = 0;
  const pool = new ConnectionPool<Fake>({
    maxPerOrigin,
    isReusable: (connection) => connection.good,
    discard: (connection) => {
      connection.discarded = true;
    },
  });
  const open = async (): Promise<Fake> => ({ id: ++opened, good: true, discarded: false });
  return { pool, open, opened: () => opened };
}

describe("ConnectionPool", () => {
  test("defaults to 6 connections per origin, as browsers and undici", () => {
    expect(DEFAULT_MAX_CONNECTIONS_PER_ORIGIN).toBe(6);
    expect(makePool().pool.maxPerOrigin).toBe(6);
    expect(() => makePool(0)).toThrow("maxPerOrigin must be a positive integer");
  });

  test("reuses an idle connection that is still good, and discards one that is not", async () => {
    const { pool, open, opened } = makePool();
    const first = await pool.acquire("a", open);
    expect(first.reused).toBe(false);
    pool.release("a", first.connection, true);
    const again = await pool.acquire("a", open);
    expect(again).toEqual({ connection: first.connection, reused: true });
    again.connection.good = false; // say, bytes arrived while it sat idle
    pool.release("a", again.connection, true);
    const fresh = await pool.acquire("a", open);
    expect(fresh.reused).toBe(false);
    expect(first.connection.discarded).toBe(true);
    expect(opened()).toBe(2);
  });

  test("opens up to the cap per origin, then hands connections back in FIFO order", async () => {
    const { pool, open, opened } = makePool(2);
    const a = await pool.acquire("o", open);
    const b = await pool.acquire("o", open);
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) =>
      pool.acquire("o", open).then((lease) => {
        order.push(n);
        return lease;
      }),
    );
    expect(opened()).toBe(2);
    expect(pool.openConnections("o")).toBe(2);
    pool.release("o", a.connection, true);
    const first = await waiting[0]!;
    expect(first).toEqual({ connection: a.connection, reused: true });
    pool.release("o", b.connection, false); // not reusable: the waiter opens its own in that slot
    const second = await waiting[1]!;
    expect(second.reused).toBe(false);
    pool.release("o", first.connection, true);
    await waiting[2];
    expect(order).toEqual([1, 2, 3]);
    expect(opened()).toBe(3);
    expect(pool.openConnections("o")).toBe(2);
  });

  test("keeps origins apart", async () => {
    const { pool, open } = makePool(1);
    await pool.acquire("x", open);
    const other = await pool.acquire("y", open);
    expect(other.reused).toBe(false);
  });

  test("frees the slot when opening fails, for the next waiter to try", async () => {
    const { pool, open } = makePool(1);
    const failing = pool.acquire("o", async () => {
      await Bun.sleep(5);
      throw new Error("refused");
    });
    const next = pool.acquire("o", open);
    await expect(failing).rejects.toThrow("refused");
    expect((await next).reused).toBe(false);
    expect(pool.openConnections("o")).toBe(1);
  });

  test("a fresh acquire skips idle connections but keeps to the cap", async () => {
    const { pool, open } = makePool(1);
    const lease = await pool.acquire("o", open);
    pool.release("o", lease.connection, true);
    const fresh = await pool.acquire("o", open, { fresh: true });
    expect(fresh.reused).toBe(false);
    expect(lease.connection.discarded).toBe(true);
    expect(pool.openConnections("o")).toBe(1);
  });

  test("a waiter that gives up leaves the queue", async () => {
    const { pool, open } = makePool(1);
    const lease = await pool.acquire("o", open);
    const quitter = pool.acquire("o", open, { maxWaitMs: 20 });
    const stayer = pool.acquire("o", open, { maxWaitMs: 5000 });
    await expect(quitter).rejects.toBeInstanceOf(PoolWaitTimeoutError);
    await expect(quitter).rejects.toThrow("no connection became free within 20 ms");
    pool.release("o", lease.connection, true);
    expect(await stayer).toEqual({ connection: lease.connection, reused: true });
  });

  test("close discards idle connections and fails waiters and later requests", async () => {
    const { pool, open } = makePool(1);
    const lease = await pool.acquire("o", open);
    const waiter = pool.acquire("o", open);
    pool.close();
    await expect(waiter).rejects.toBeInstanceOf(PoolClosedError);
    await expect(pool.acquire("o", open)).rejects.toThrow("the connection pool is closed");
    pool.release("o", lease.connection, true); // a request that finishes after close
    expect(lease.connection.discarded).toBe(true);
  });
});
