import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Client, connect, PgError } from "../lib/pg.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";

const availability = postgresAvailability();
if ("skipReason" in availability)
  console.log(`skipping the statement-cache tests: ${availability.skipReason}`);

describe.skipIf(!("bin" in availability))("the statement cache heals itself", () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    if ("bin" in availability) cluster = await startPostgres(availability.bin);
  }, 60_000);
  afterAll(() => cluster?.stop());

  let client: Client;
  const fresh = async (options: { statementCacheSize?: number } = {}) => {
    await client?.close();
    const url = new URL(cluster.url("trust"));
    client = await connect({
      host: url.hostname,
      port: Number(url.port),
      user: url.username,
      database: "postgres",
      ...options,
    });
    return client;
  };
  afterAll(() => client?.close());

  /** How many prepared statements the server holds for this session. */
  const preparedOnServer = async () =>
    Number(
      (await client.query<{ n: bigint }>("SELECT count(*) AS n FROM pg_prepared_statements")).rows[0]!.n,
    );

  test("after ALTER TABLE … TYPE, the cached statement is prepared again and the old one closed", async () => {
    await fresh();
    await client.simpleQuery("CREATE TABLE altered (id int, v int); INSERT INTO altered VALUES (1, 2)");
    const select = "SELECT v FROM altered WHERE id = $1";
    expect((await client.query(select, [1])).rows).toEqual([{ v: 2 }]);
    expect(await preparedOnServer()).toBe(2); // this SELECT and the count itself
    await client.simpleQuery("ALTER TABLE altered ALTER v TYPE text");
    // Without healing this is 0A000 "cached plan must not change result type".
    expect((await client.query(select, [1])).rows).toEqual([{ v: "2" }]);
    expect(await preparedOnServer()).toBe(2); // the stale one was closed, not abandoned on the server
  });

  test("after DISCARD ALL, cached statements are prepared again", async () => {
    await fresh();
    const select = "SELECT $1::int + 1 AS n";
    expect((await client.query(select, [1])).rows).toEqual([{ n: 2 }]);
    await client.simpleQuery("DISCARD ALL");
    expect((await client.query(select, [2])).rows).toEqual([{ n: 3 }]);
  });

  test("a statement deallocated behind the cache's back (26000) is prepared again and run once more", async () => {
    await fresh();
    const select = "SELECT $1::text AS t";
    expect((await client.query(select, ["a"])).rows).toEqual([{ t: "a" }]);
    const names = await client.simpleQuery("SELECT name FROM pg_prepared_statements");
    // DEALLOCATE one by one (not DISCARD ALL, whose command tag the client sees).
    for (const { name } of names[0]!.rows) await client.simpleQuery(`DEALLOCATE "${name}"`);
    expect((await client.query(select, ["b"])).rows).toEqual([{ t: "b" }]);
  });

  test("after search_path changes, the statement finds the other schema's table", async () => {
    await fresh();
    await client.simpleQuery(`
      CREATE SCHEMA one; CREATE SCHEMA two;
      CREATE TABLE one.t (v int); INSERT INTO one.t VALUES (1);
      CREATE TABLE two.t (v text); INSERT INTO two.t VALUES ('two')`);
    await client.simpleQuery("SET search_path = one");
    expect((await client.query("SELECT v FROM t")).rows).toEqual([{ v: 1 }]);
    await client.simpleQuery("SET search_path = two");
    expect((await client.query("SELECT v FROM t")).rows).toEqual([{ v: "two" }]);
  });

  test("inside a transaction the error surfaces (a retry cannot help) and the statement is dropped", async () => {
    await fresh();
    await client.simpleQuery("CREATE TABLE in_tx (v int); INSERT INTO in_tx VALUES (5)");
    const select = "SELECT v FROM in_tx";
    expect((await client.query(select)).rows).toEqual([{ v: 5 }]);
    await client.simpleQuery("BEGIN; ALTER TABLE in_tx ALTER v TYPE bigint");
    const failure = client.query(select);
    await expect(failure).rejects.toBeInstanceOf(PgError);
    await expect(failure).rejects.toMatchObject({ code: "0A000" });
    await client.simpleQuery("ROLLBACK");
    // Dropped from the cache: prepared afresh, it works again.
    expect((await client.query(select)).rows).toEqual([{ v: 5 }]);
  });

  test("each pipelined copy of a failing statement reports the real error, not 26000", async () => {
    await fresh();
    const results = await Promise.allSettled([
      client.query("SELECT * FROM missing_table"),
      client.query("SELECT * FROM missing_table"),
      client.query("SELECT * FROM missing_table WHERE 1 = $1", [1]),
      client.query("SELECT * FROM missing_table WHERE 1 = $1", [1]),
    ]);
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toMatchObject({
        code: "42P01",
        message: 'relation "missing_table" does not exist',
      });
    }
  });

  test("a pipelined copy gets its own answer: the table created between the two copies is found", async () => {
    await fresh();
    const [first, create, second] = await Promise.allSettled([
      client.query("SELECT * FROM later"),
      client.query("CREATE TABLE later (x int)"),
      client.query("SELECT * FROM later"),
    ]);
    expect(first).toMatchObject({ status: "rejected", reason: { code: "42P01" } });
    expect(create).toMatchObject({ status: "fulfilled" });
    expect(second).toMatchObject({ status: "fulfilled", value: { rows: [] } });
  });

  test("queries issued while a statement's parameter types are awaited keep their order", async () => {
    await fresh();
    await client.simpleQuery("CREATE TABLE ordered (n int)");
    const inserts = Array.from({ length: 200 }, (_, i) =>
      i % 2
        ? client.query("INSERT INTO ordered VALUES ($1)", [i])
        : client.simpleQuery(`INSERT INTO ordered VALUES (${i})`),
    );
    const read = client.query<{ n: number }>("SELECT n FROM ordered ORDER BY ctid");
    await Promise.all(inserts);
    expect((await read).rows.map((row) => row.n)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  test("evicted statements are closed on the server", async () => {
    await fresh({ statementCacheSize: 3 });
    for (let i = 0; i < 20; i++) await client.query(`SELECT ${i} AS n WHERE $1::int = 1`, [1]);
    expect(await preparedOnServer()).toBeLessThanOrEqual(3);
  });

  test("with the cache off, every statement is closed after its query", async () => {
    await fresh({ statementCacheSize: 0 });
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.query<{ n: number }>("SELECT $1::int AS n", [i])),
    );
    expect(answers.map((answer) => answer.rows[0]!.n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await preparedOnServer()).toBe(1); // only the count's own statement, while it runs
  });
});
