import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Client, connect, PgConnectionError } from "../lib/pg.ts";
import { type PGliteRestart, type PGliteServer, startPGliteServer } from "../lib/pglite-server.ts";

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

describe("startPGliteServer: PGlite on its own thread, served on a loopback port", () => {
  let server: PGliteServer;
  // One connection for all: PGLiteSocketServer serves one client at a time.
  let client: Client;
  // A server whose setup fails, started alongside (its test is below): the two starts overlap.
  let failedStart: Promise<unknown>;
  beforeAll(async () => {
    failedStart = startPGliteServer("SELECT * FROM no_such_table").catch((error: Error) => error);
    server = await startPGliteServer("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3);");
    client = await connect(server.url);
    await failedStart; // no other database starting while the tests below time things
  }, 60_000);
  afterAll(async () => {
    await client?.close().catch(() => {});
    await server?.stop();
  });

  test("runs the setup SQL before the port opens, and answers our own client at its url", async () => {
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
    const { rows } = await client.query<{ total: number }>("SELECT sum(n)::int AS total FROM t");
    expect(rows).toEqual([{ total: 6 }]);
  });

  test("a query that keeps the database busy leaves this thread free: timers keep firing", async () => {
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const started = performance.now();
    await client.query("SELECT pg_sleep(0.5)");
    clearInterval(ticker);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(450);
    // Every 10 ms for 0.5 s is ~50 ticks; on the database's own thread there would be none (the sleep
    // holds the thread). 10 leaves room for a loaded machine.
    expect(ticks).toBeGreaterThan(10);
  });

  test("setup SQL that fails rejects with the database's message", async () => {
    const error = await failedStart;
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('relation "no_such_table" does not exist');
  });

  test("stop() closes the port even while a query runs, within its grace period, and twice is harmless", async () => {
    const running = client.query("SELECT pg_sleep(10)").catch((error: Error) => error);
    await Bun.sleep(200);
    const started = performance.now();
    const graceMs = 200;
    const stopping = server.stop(graceMs);
    expect(server.stop()).toBe(stopping);
    await stopping;
    expect(performance.now() - started).toBeLessThan(graceMs + 1000);
    expect(await listening(server.port)).toBe(false);
    expect(await running).toBeInstanceOf(Error); // the connection went with the thread
  });
});

describe("startPGliteServer's limits: a database past one is ended and started afresh", () => {
  test("past statementTimeoutMs: one onRestart, the same URL, the setup SQL run again (changes gone)", async () => {
    const restarts: PGliteRestart[] = [];
    const server = await startPGliteServer("CREATE TABLE t (n int); INSERT INTO t VALUES (1);", {
      statementTimeoutMs: 500,
      onRestart: (restart) => restarts.push(restart),
    });
    try {
      const url = server.url;
      const client = await connect(url);
      await client.query("INSERT INTO t VALUES (2)");
      const started = performance.now();
      const error = await client.query("SELECT pg_sleep(30)").catch((e: Error) => e);
      expect(error).toBeInstanceOf(PgConnectionError); // the connection went with the thread
      expect(performance.now() - started).toBeLessThan(500 + 2_000);
      expect(restarts).toEqual([
        { cause: "statement-timeout", message: "a query ran past the 0.5 s statement timeout" },
      ]);
      expect(server.restarts).toBe(1);
      await server.ready();
      expect(server.url).toBe(url);
      const fresh = await connect(url);
      expect((await fresh.query<{ n: number }>("SELECT count(*)::int AS n FROM t")).rows).toEqual([{ n: 1 }]);
      await fresh.close();
    } finally {
      await server.stop();
    }
  }, 60_000);
});
