/**
 * lib/pg/pool.ts against a database that is down or broken: a refused port, a server that accepts and
 * closes at once (a raw Bun.listen peer), a fake PostgreSQL that never answers — six queries at once on a
 * pool of two, and every one of them must settle, each within a deadline.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { PgConnectionError, PgPoolTimeoutError, Pool } from "../lib/pg.ts";
import { type FakePostgres, startFakePostgres } from "./helpers/fake-postgres.ts";

const QUERIES = 6;
const MAX = 2;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const stop of cleanup.splice(0)) stop();
});

/** Settles `promise`, or rejects with "stranded" past `ms` (so a query that waits forever fails the test). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`stranded: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Six queries at once; each one's outcome (an Error, or its result), each within `ms`. */
async function sixAtOnce(pool: Pool, ms: number): Promise<unknown[]> {
  const outcomes = Array.from({ length: QUERIES }, () =>
    within(pool.query("SELECT 1"), ms).catch((error: Error) => error),
  );
  return Promise.all(outcomes);
}

function fake(script: Parameters<typeof startFakePostgres>[0]): FakePostgres {
  const server = startFakePostgres(script);
  cleanup.push(() => server.stop());
  return server;
}

/** A port nothing listens on: one that was just free. */
function refusedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

describe("Pool never strands a query", () => {
  test("a refused port: all 6 queries on a pool of 2 reject with the connect error, within 3 s", async () => {
    const port = refusedPort();
    const pool = new Pool({ host: "127.0.0.1", port, user: "ann", database: "shop" }, { max: MAX });
    const outcomes = await sixAtOnce(pool, 3_000);
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(PgConnectionError);
      expect((outcome as Error).message).not.toContain("stranded");
    }
    expect(pool.size).toBe(0);
    expect(pool.waiting).toBe(0);
    await pool.close();
  });

  test("a server that accepts and closes at once: all 6 reject, each after its own attempt", async () => {
    let accepted = 0;
    const listener: TCPSocketListener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(socket) {
          accepted++;
          socket.end();
        },
        data() {},
      },
    });
    cleanup.push(() => listener.stop(true));
    const pool = new Pool(
      { host: "127.0.0.1", port: listener.port, user: "ann", database: "shop", sslmode: "disable" },
      { max: MAX },
    );
    const outcomes = await sixAtOnce(pool, 3_000);
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(PgConnectionError);
      expect((outcome as Error).message).toContain("closed the connection");
    }
    expect(accepted).toBe(QUERIES); // retried within the cap: one attempt per query, never more than 2 at once
    await pool.close();
  });

  test("a failed connect hands its slot on: after 2 refused logins the other 4 queries are answered", async () => {
    const server = fake(async (connection) => {
      await connection.opening;
      if (server.connections.length <= MAX) return connection.close();
      connection.acceptWithoutPassword();
      await connection.answerQueries();
    });
    const pool = new Pool(server.options({ sslmode: "disable" }), { max: MAX });
    const outcomes = await sixAtOnce(pool, 3_000);
    expect(outcomes.filter((outcome) => outcome instanceof PgConnectionError)).toHaveLength(MAX);
    expect(outcomes.filter((outcome) => !(outcome instanceof Error))).toHaveLength(QUERIES - MAX);
    expect(pool.size).toBeLessThanOrEqual(MAX);
    await pool.close();
  });

  test("a fake PostgreSQL that never answers: connect timeouts, then acquireTimeoutMs, settle all 6", async () => {
    const server = fake(() => {}); // accepts, reads, never says a word
    const pool = new Pool(server.options({ sslmode: "disable", connectTimeoutMs: 400 }), {
      max: MAX,
      acquireTimeoutMs: 1_000,
    });
    const started = performance.now();
    const outcomes = await sixAtOnce(pool, 3_000);
    const elapsed = performance.now() - started;
    const timedOutConnecting = outcomes.filter(
      (outcome) => outcome instanceof PgConnectionError && !(outcome instanceof PgPoolTimeoutError),
    );
    const timedOutWaiting = outcomes.filter((outcome) => outcome instanceof PgPoolTimeoutError);
    // 0.4 s: two connects time out; 0.8 s: two more; 1.0 s: the last two give up waiting.
    expect(timedOutConnecting.length + timedOutWaiting.length).toBe(QUERIES);
    expect(timedOutConnecting.length).toBeGreaterThanOrEqual(MAX);
    expect((timedOutConnecting[0] as Error).message).toContain("timed out after 0.4 s connecting");
    expect(timedOutWaiting.length).toBeGreaterThanOrEqual(1);
    expect(elapsed).toBeLessThan(2_500);
    await pool.close();
  });

  test("acquireTimeoutMs: queries queued behind 2 that never end reject with a PgPoolTimeoutError that carries data", async () => {
    const server = fake(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword(); // then silence: a query never ends
    });
    const pool = new Pool(server.options({ sslmode: "disable" }), { max: MAX, acquireTimeoutMs: 300 });
    const started = performance.now();
    const running = [pool.query("SELECT 1"), pool.query("SELECT 2")];
    for (const query of running) query.catch(() => {});
    const queued = await Promise.all(
      Array.from({ length: QUERIES - MAX }, () =>
        within(pool.query("SELECT 3"), 2_000).catch((error: Error) => error),
      ),
    );
    expect(performance.now() - started).toBeLessThan(1_500);
    for (const error of queued) {
      expect(error).toBeInstanceOf(PgPoolTimeoutError);
      const timeout = error as PgPoolTimeoutError;
      expect(timeout).toMatchObject({ timeoutMs: 300, max: MAX, open: MAX });
      expect(timeout.message).toBe(
        "no database connection came free within 0.3 s (all 2 of 2 busy or connecting)",
      );
    }
    expect(pool.waiting).toBe(0);
    // The server goes away: the two running queries settle too.
    server.stop();
    for (const query of running) await expect(within(query, 2_000)).rejects.toBeInstanceOf(PgConnectionError);
    await pool.close();
  });

  test("acquireTimeoutMs must be a positive number of milliseconds a timer can hold", () => {
    expect(() => new Pool("postgres://a@127.0.0.1/b", { acquireTimeoutMs: 0 })).toThrow(RangeError);
    expect(() => new Pool("postgres://a@127.0.0.1/b", { acquireTimeoutMs: 2 ** 31 })).toThrow(RangeError);
  });
});
