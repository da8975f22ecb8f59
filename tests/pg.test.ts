import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ScramClient, ScramError } from "../lib/pg/auth.ts";
import { type Client, connect, PgConnectionError, PgError, Pool, resolveOptions } from "../lib/pg.ts";
import {
  type PostgresCluster,
  postgresAvailability,
  startPglite,
  startPostgres,
  USERS,
} from "./helpers/postgres.ts";
import { startProxy } from "./helpers/proxy.ts";

// ── Behaviour every server must show: run against PGlite (always) and real PostgreSQL ────────────────

function sharedCases(name: string, getUrl: () => string) {
  describe(`${name}: queries`, () => {
    let client: Client;
    beforeAll(async () => {
      client = await connect(getUrl());
    });
    afterAll(() => client?.close());

    test("returns rows as objects keyed by column name, with fields and the command tag", async () => {
      const result = await client.query("SELECT 1 AS one, 'two' AS two");
      expect(result).toEqual({
        command: "SELECT",
        rowCount: 1,
        fields: [
          { name: "one", typeOid: 23 },
          { name: "two", typeOid: 25 },
        ],
        rows: [{ one: 1, two: "two" }],
      });
    });

    test("round-trips every supported type, NULLs included", async () => {
      const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
      const when = new Date("2024-02-29T12:34:56.789Z");
      const { rows } = await client.query(
        `SELECT $1::int2 AS i2, $2::int4 AS i4, $3::int8 AS i8, $4::float4 AS f4, $5::float8 AS f8,
                $6::numeric AS num, $7::bool AS yes, $8::text AS txt, $9::varchar AS vc, $10::uuid AS id,
                $11::json AS js, $12::jsonb AS jb, $13::date AS d, $14::timestamp AS ts, $15::timestamptz AS tz,
                $16::bytea AS bin, $17::int4[] AS ints, $18::text[] AS texts, $19::int4 AS nothing, $20::name AS nm`,
        [
          -32768,
          2147483647,
          9007199254740993n,
          1.5,
          -0.1,
          "12345678901234567890.123456789",
          true,
          "héllo 🎉",
          "v",
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          { a: [1, "x"] },
          { b: null },
          new Date("2024-02-29T00:00:00Z"),
          when,
          when,
          bytes,
          [1, null, 3],
          ["a,b", 'q"uote', "back\\slash", null, "NULL", "{}"],
          null,
          "pg_class",
        ],
      );
      expect(rows[0]).toEqual({
        i2: -32768,
        i4: 2147483647,
        i8: 9007199254740993n,
        f4: 1.5,
        f8: -0.1,
        num: "12345678901234567890.123456789",
        yes: true,
        txt: "héllo 🎉",
        vc: "v",
        id: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        js: { a: [1, "x"] },
        jb: { b: null },
        d: new Date("2024-02-29T00:00:00Z"),
        ts: when,
        tz: when,
        bin: bytes,
        ints: [1, null, 3],
        texts: ["a,b", 'q"uote', "back\\slash", null, "NULL", "{}"],
        nothing: null,
        nm: "pg_class",
      });
    });

    test("keeps the connection usable after an error, with every field of the ErrorResponse", async () => {
      const error = await client.query("SELECT * FROM no_such_table").catch((e) => e);
      expect(error).toBeInstanceOf(PgError);
      expect(error.code).toBe("42P01");
      expect(error.severity).toBe("ERROR");
      expect(error.message).toBe('relation "no_such_table" does not exist');
      expect(error.position).toBe("15");
      expect((await client.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
    });

    test("simpleQuery's maxRows keeps the first rows of each result and counts them all", async () => {
      const results = await client.simpleQuery(
        "SELECT g AS n FROM generate_series(1, 100000) g; SELECT 'x' AS only; COPY (SELECT generate_series(1, 50)) TO STDOUT",
        { maxRows: 3 },
      );
      expect(results[0]!.rows).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect(results[0]!.rowCount).toBe(100_000);
      expect(results[1]!.rows).toEqual([{ only: "x" }]);
      expect(results[2]!.rows).toEqual([{ copy: "1" }, { copy: "2" }, { copy: "3" }]);
      expect(results[2]!.rowCount).toBe(50);
      expect((await client.simpleQuery("SELECT 1 AS one", { maxRows: 0 }))[0]!.rows).toEqual([]);
      await expect(client.simpleQuery("SELECT 1", { maxRows: -1 })).rejects.toThrow(RangeError);
    });

    test("runs several statements with simpleQuery, one result each", async () => {
      const results = await client.simpleQuery(
        "CREATE TEMP TABLE items (id int, name text); INSERT INTO items VALUES (1, 'a'), (2, NULL); SELECT * FROM items ORDER BY id",
      );
      expect(results.map((result) => [result.command, result.rowCount])).toEqual([
        ["CREATE TABLE", null],
        ["INSERT", 2],
        ["SELECT", 2],
      ]);
      expect(results[2]!.rows).toEqual([
        { id: 1, name: "a" },
        { id: 2, name: null },
      ]);
    });

    test("pipelines 1,000 concurrent queries and matches every answer to its query", async () => {
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          client.query("SELECT $1::int AS n, $2::text AS s", [i, `q${i}`]),
        ),
      );
      expect(results.every((result, i) => result.rows[0]!.n === i && result.rows[0]!.s === `q${i}`)).toBe(
        true,
      );
    });

    test("fails only the query with the error in the middle of a pipeline", async () => {
      const outcomes = await Promise.allSettled([
        client.query("SELECT 1 AS n"),
        client.query("SELECT 1/0"),
        client.query("SELECT 3 AS n"),
        client.query("SELEC syntax error"),
        client.query("SELECT 5 AS n"),
      ]);
      expect(
        outcomes.map((outcome) =>
          outcome.status === "fulfilled" ? outcome.value.rows[0] : (outcome.reason as PgError).code,
        ),
      ).toEqual([{ n: 1 }, "22012", { n: 3 }, "42601", { n: 5 }]);
    });

    test("reads a 100,000-row result", async () => {
      const { rows, rowCount } = await client.query(
        "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 100000) g",
      );
      expect(rowCount).toBe(100000);
      expect(rows.length).toBe(100000);
      expect(rows[99999]).toEqual({
        n: 100000,
        h: new Bun.CryptoHasher("md5").update("100000").digest("hex"),
      });
    });

    test("sends a 16 MB parameter", async () => {
      const big = "x".repeat(16 * 1024 * 1024);
      const { rows } = await client.query("SELECT length($1::text) AS n, md5($1::text) AS h", [big]);
      expect(rows[0]).toEqual({ n: big.length, h: new Bun.CryptoHasher("md5").update(big).digest("hex") });
    });

    test("passes notices to onNotice and goes on", async () => {
      const notices: string[] = [];
      client.onNotice = (notice) => notices.push(`${notice.severity} ${notice.code}: ${notice.message}`);
      await client.simpleQuery("DO $$ BEGIN RAISE NOTICE 'careful: %', 42; END $$");
      client.onNotice = () => {};
      expect(notices).toEqual(["NOTICE 00000: careful: 42"]);
    });

    test("keeps answering correctly when the statement cache evicts", async () => {
      const small = await connect({ ...resolveOptions(getUrl()), statementCacheSize: 2 });
      const texts = ["SELECT $1::int + 1 AS n", "SELECT $1::int + 2 AS n", "SELECT $1::int + 3 AS n"];
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => small.query<{ n: number }>(texts[i % 3]!, [i])),
      );
      expect(results.map((result) => result.rows[0]!.n)).toEqual(
        Array.from({ length: 30 }, (_, i) => i + (i % 3) + 1),
      );
      await small.close();
    });

    test("returns an empty result for an empty query", async () => {
      expect(await client.simpleQuery("")).toEqual([{ command: "", rowCount: null, fields: [], rows: [] }]);
    });
  });
}

// ── PGlite: always available ──────────────────────────────────────────────────────────────────────────

let pglite: Awaited<ReturnType<typeof startPglite>>;
beforeAll(async () => {
  pglite = await startPglite();
});
afterAll(() => pglite?.stop());

sharedCases("PGlite", () => pglite.url);

// ── Real PostgreSQL: a private cluster ────────────────────────────────────────────────────────────────

const availability = postgresAvailability();
if ("skipReason" in availability)
  console.log(`skipping the real-PostgreSQL tests: ${availability.skipReason}`);
const hasPostgres = "bin" in availability;

describe.skipIf(!hasPostgres)("PostgreSQL", () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    if ("bin" in availability) cluster = await startPostgres(availability.bin);
  }, 60_000);
  afterAll(() => cluster?.stop());

  sharedCases("PostgreSQL", () => cluster.url("trust"));

  describe("authentication", () => {
    for (const kind of ["trust", "password", "md5", "scram"] as const) {
      test(`${kind}: the right password connects`, async () => {
        const client = await connect(cluster.url(kind));
        const { rows } = await client.query("SELECT current_user AS who");
        expect(rows).toEqual([{ who: USERS[kind].user }]);
        await client.close();
      });
    }

    for (const kind of ["password", "md5", "scram"] as const) {
      test(`${kind}: a wrong password is the server's error 28P01, not a hang`, async () => {
        const error = await connect(cluster.url(kind, "wrong")).catch((e) => e);
        expect(error).toBeInstanceOf(PgError);
        expect(error.code).toBe("28P01");
        expect(error.message).toBe(`password authentication failed for user "${USERS[kind].user}"`);
      });
    }

    test("a missing password is one clear line", async () => {
      const url = `postgres://${USERS.scram.user}@127.0.0.1:${cluster.port}/postgres`;
      await expect(connect(url)).rejects.toThrow(
        "the server asks for a password (scram-sha-256) and none was given",
      );
    });

    test("a server whose SCRAM signature is wrong is refused", async () => {
      const fake = startFakeScramServer();
      try {
        const error = await connect({
          host: "127.0.0.1",
          port: fake.port,
          user: "u",
          password: "p",
          sslmode: "disable",
        }).catch((e) => e);
        expect(error).toBeInstanceOf(PgConnectionError);
        expect(error.message).toBe(
          "connection failed: SCRAM: the server's signature is wrong — it does not know the password; refusing it",
        );
        expect(error.cause).toBeInstanceOf(ScramError);
      } finally {
        fake.stop();
      }
    });
  });

  describe("a session and its server", () => {
    test("reads timestamptz correctly in a non-UTC session time zone", async () => {
      const client = await connect(cluster.url("trust"));
      await client.simpleQuery("SET TIME ZONE 'Asia/Kolkata'");
      const { rows } = await client.query(
        "SELECT '2024-06-01 12:00:00+00'::timestamptz AS noon, '2024-06-01 12:00:00+00'::timestamptz::text AS shown",
      );
      expect(rows[0]!.shown).toBe("2024-06-01 17:30:00+05:30");
      expect(rows[0]!.noon).toEqual(new Date("2024-06-01T12:00:00Z"));
      await client.close();
    });

    test("LISTEN/NOTIFY delivers notifications until unlistened", async () => {
      const listener = await connect(cluster.url("trust"));
      const notifier = await connect(cluster.url("trust"));
      const received: string[] = [];
      const first = Promise.withResolvers<void>();
      const stop = await listener.listen("lesson events", ({ payload }) => {
        received.push(payload);
        first.resolve();
      });
      await notifier.query("SELECT pg_notify('lesson events', 'hello')");
      await first.promise;
      await stop();
      await notifier.query("SELECT pg_notify('lesson events', 'after')");
      await listener.query("SELECT 1"); // a round trip: a notification would have arrived by now
      expect(received).toEqual(["hello"]);
      await listener.close();
      await notifier.close();
    });

    test("cancel() stops pg_sleep(10) with SQLSTATE 57014 and the connection goes on", async () => {
      const client = await connect(cluster.url("trust"));
      // (catch at once: the rejection may come before cancel() itself returns)
      const sleeping = client.query("SELECT pg_sleep(10)").catch((e) => e);
      await Bun.sleep(100);
      const started = performance.now();
      await client.cancel();
      const error = await sleeping;
      expect(error.code).toBe("57014");
      expect(performance.now() - started).toBeLessThan(5000); // promptly: far from the 10 s
      expect((await client.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
      await client.close();
    });

    test("pg_terminate_backend on its own backend rejects pending and later queries cleanly", async () => {
      const client = await connect(cluster.url("trust"));
      const admin = await connect(cluster.superuserUrl);
      const pending = client.query("SELECT pg_sleep(5)").catch((e) => e);
      await Bun.sleep(100);
      await admin.query("SELECT pg_terminate_backend($1)", [client.processId]);
      const error = await pending;
      expect(error.code).toBe("57P01"); // admin_shutdown, the server's own FATAL
      await expect(client.query("SELECT 1")).rejects.toBeInstanceOf(PgConnectionError);
      expect(client.closed).toBe(true);
      await admin.close();
    });

    test("a Pool runs queries on separate connections at the same time", async () => {
      const pool = new Pool(cluster.url("trust"), { max: 3 });
      const pids = await Promise.all(
        [0, 1, 2].map(() => pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid, pg_sleep(0.2)")),
      );
      expect(new Set(pids.map((result) => result.rows[0]!.pid)).size).toBe(3);
      expect(pool.size).toBe(3);
      await pool.close();
      await expect(pool.query("SELECT 1")).rejects.toThrow("the pool is closed");
    });
  });

  describe("through a misbehaving network", () => {
    test("pipelining: 50 queries through a 40 ms proxy take far fewer than 50 round trips", async () => {
      const proxy = await startProxy(cluster.port, { latencyMs: 20 });
      const client = await connect({ ...resolveOptions(cluster.url("trust")), port: proxy.port });
      try {
        await client.query("SELECT $1::int AS n", [0]); // prepare the statement once
        const started = performance.now();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => client.query("SELECT $1::int AS n", [i])),
        );
        const elapsed = performance.now() - started;
        expect(results.map((result) => result.rows[0]!.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
        // One round trip is ≥ 40 ms here; 50 sequential ones would be ≥ 2,000 ms.
        expect(elapsed).toBeLessThan(10 * 40);
      } finally {
        await client.close();
        proxy.stop();
      }
    });

    test("every server message delivered one byte per TCP segment still parses", async () => {
      const proxy = await startProxy(cluster.port, { byteByByte: true });
      const client = await connect({ ...resolveOptions(cluster.url("scram")), port: proxy.port });
      try {
        const { rows } = await client.query("SELECT 'héllo'::text AS t, 7::int8 AS n, ARRAY['a','b'] AS arr");
        expect(rows).toEqual([{ t: "héllo", n: 7n, arr: ["a", "b"] }]);
        const errors = await client.query("SELECT 1/0").catch((e) => e);
        expect(errors.code).toBe("22012");
      } finally {
        await client.close();
        proxy.stop();
      }
    });

    test("a server that goes away rejects every pending and later query — never a hang", async () => {
      const proxy = await startProxy(cluster.port);
      const client = await connect({ ...resolveOptions(cluster.url("trust")), port: proxy.port });
      const pending = Promise.allSettled([client.query("SELECT pg_sleep(5)"), client.query("SELECT 1")]);
      await Bun.sleep(100);
      proxy.cutAll();
      for (const outcome of await pending) {
        expect(outcome.status).toBe("rejected");
        expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(PgConnectionError);
      }
      await expect(client.query("SELECT 1")).rejects.toBeInstanceOf(PgConnectionError);
      proxy.stop();
    });
  });
});

// ── Settings and failures that need no server ────────────────────────────────────────────────────────

describe("connection settings", () => {
  test("reads a URL, with libpq's environment variables for what it leaves out", () => {
    const env = {
      PGHOST: "db.example",
      PGPORT: "6543",
      PGUSER: "env_user",
      PGPASSWORD: "env pw",
      PGDATABASE: "envdb",
    };
    expect(resolveOptions("postgres://ann:s%40cret@host:5433/shop?connect_timeout=3", env)).toMatchObject({
      host: "host",
      port: 5433,
      user: "ann",
      password: "s@cret",
      database: "shop",
      connectTimeoutMs: 3000,
    });
    expect(resolveOptions({}, env)).toMatchObject({
      host: "db.example",
      port: 6543,
      user: "env_user",
      password: "env pw",
      database: "envdb",
    });
  });

  test("refuses what it cannot do with one line", () => {
    expect(() => resolveOptions("mysql://x")).toThrow("a database URL starts with postgres://");
    expect(() => resolveOptions("postgres://h/db?sslmode=required")).toThrow(
      'invalid sslmode "required": use one of disable, allow, prefer, require, verify-ca, verify-full',
    );
  });

  test("a number that is not one is refused with what was given, not NaN", () => {
    expect(() => resolveOptions("postgres://h/db?port=abc", {})).toThrow(
      'invalid port "abc": use a whole number',
    );
    expect(() => resolveOptions("postgres://h/db?connect_timeout=soon", {})).toThrow(
      'invalid connect_timeout "soon": use a whole number',
    );
    expect(() => resolveOptions("postgres://h/db?keepalives_idle=-1", {})).toThrow(
      'invalid keepalives_idle "-1": use a whole number',
    );
    expect(() => resolveOptions("postgres://h/db?connect_timeout=3000000", {})).toThrow(
      "a connect timeout of 3000000 s is over a timer's limit (24.8 days)",
    );
    expect(() => resolveOptions("postgres://h/db", { PGPORT: "54 32" })).toThrow(
      'invalid PGPORT "54 32": use a whole number',
    );
  });

  test("connect_timeout=0 waits as long as it takes, as in libpq, instead of timing out at once", async () => {
    const url = new URL(pglite.url);
    url.searchParams.set("connect_timeout", "0");
    expect(resolveOptions(url.href, {}).connectTimeoutMs).toBe(0);
    const client = await connect(url.href);
    try {
      expect((await client.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.close();
    }
  });

  test("a refused connection is a PgConnectionError naming the address", async () => {
    const error = await connect("postgres://u@127.0.0.1:1/db").catch((e) => e);
    expect(error).toBeInstanceOf(PgConnectionError);
    // The words come from the error's code, once: no second address, no stack.
    expect(error.message).toBe(
      "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
    );
    expect(error.cause.code).toBe("ECONNREFUSED");
  });

  test("an IPv6 address is named in brackets in the error, as in the URL", async () => {
    await expect(connect("postgres://u@[::1]:1/db")).rejects.toThrow(
      "cannot connect to PostgreSQL at [::1]:1: ",
    );
  });

  test("a server that never answers the startup times out", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      await expect(connect({ host: "127.0.0.1", port: silent.port, connectTimeoutMs: 300 })).rejects.toThrow(
        `timed out after 0.3 s connecting to 127.0.0.1:${silent.port}`,
      );
    } finally {
      silent.stop(true);
    }
  });
});

/** A fake PostgreSQL that runs SCRAM properly up to SASLFinal, then sends a made-up server signature. */
function startFakeScramServer() {
  const message = (type: string, body: Buffer) => {
    const header = Buffer.alloc(5);
    header.write(type, 0, "latin1");
    header.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  };
  const auth = (code: number, data: Buffer = Buffer.alloc(0)) => {
    const body = Buffer.alloc(4 + data.length);
    body.writeInt32BE(code, 0);
    data.copy(body, 4);
    return message("R", body);
  };
  const server = Bun.listen<{ step: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { step: 0 };
      },
      data(socket, chunk) {
        const step = socket.data.step++;
        if (step === 0) socket.write(auth(10, Buffer.from("SCRAM-SHA-256\0\0")));
        else if (step === 1) {
          const clientFirst = chunk.toString("latin1");
          const nonce = /r=([^,\0]+)/.exec(clientFirst)![1]!;
          const serverFirst = `r=${nonce}server,s=${Buffer.from("salt").toString("base64")},i=4096`;
          socket.write(auth(11, Buffer.from(serverFirst)));
        } else if (step === 2) {
          socket.write(auth(12, Buffer.from(`v=${Buffer.alloc(32, 7).toString("base64")}`)));
          socket.write(auth(0));
        }
      },
    },
  });
  return { port: server.port, stop: () => server.stop(true) };
}

describe("SCRAM-SHA-256", () => {
  test("computes RFC 7677's example proof and checks the server's signature", async () => {
    // RFC 7677 §3, user "user", password "pencil".
    const scram = new ScramClient("pencil", "rOprNGfwEbeRWgbNEkqO");
    expect(scram.clientFirstMessage()).toBe("n,,n=,r=rOprNGfwEbeRWgbNEkqO");
    // The RFC's exchange names the user in client-first; ours leaves it empty (PostgreSQL takes it from
    // the startup message), so the proof differs from the RFC's — check the structure and the signature.
    const final = await scram.clientFinalMessage(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    expect(final).toMatch(
      /^c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj\)hNlF\$k0,p=[A-Za-z0-9+/]{43}=$/,
    );
    expect(() => scram.verifyServerFinal("v=AAAA")).toThrow("the server's signature is wrong");
    expect(new ScramClient("x", "abc").clientFinalMessage("r=zzz,s=AA==,i=1")).rejects.toThrow(
      "does not extend ours",
    );
  });
});
