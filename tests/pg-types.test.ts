import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { formatTimestamp } from "../lib/pg/parameters.ts";
import { parseTimestamp } from "../lib/pg/types.ts";
import { type Client, connect, ParameterTypeError, PgResultValueError, PgValueTextError } from "../lib/pg.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";

/**
 * Edge values per type, as SQL literals. The round-trip property: what the client reads for each, sent
 * back as a parameter of that type, is stored unchanged (compared as the server's text).
 */
const EDGE_VALUES: Record<string, string[]> = {
  int2: ["-32768", "32767", "0"],
  int4: ["-2147483648", "2147483647"],
  int8: ["-9223372036854775808", "9223372036854775807", "9007199254740993"],
  oid: ["4294967295", "0"],
  float4: ["NaN", "Infinity", "-Infinity", "-0", "1.1", "3.4028235e+38", "1e-45"],
  float8: ["NaN", "Infinity", "-Infinity", "-0", "0.1", "1.7976931348623157e+308", "5e-324", "1e+21"],
  numeric: ["0", "-1.5000", "12345678901234567890.123456789", "NaN", "Infinity", "-Infinity", "1e-30"],
  bool: ["true", "false"],
  text: ["", `quote ' and "double"`, "back\\slash", "héllo 🎉", "NULL", "{}", "a,b", "line\nbreak\ttab"],
  varchar: ["v", ""],
  "char(5)": ["ab", "abcde"],
  name: ["pg_class"],
  uuid: ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
  json: ["[]", "{}", '"str"', "1", '[1,"x",null]', '{"a":{"b":[true,false]}}', '"q\\" and \\\\ b"', "1.5"],
  jsonb: ["[]", "{}", '"str"', "1", '[1, "x", null]', '{"a": {"b": [true, false]}}', '"q\\" and \\\\ b"'],
  bytea: ["\\x", "\\x00ff10", "\\x5c22"],
  date: [
    "0001-01-01",
    "0099-12-31",
    "0044-03-15 BC",
    "4713-01-01 BC",
    "2024-02-29",
    "9999-12-31",
    "12345-06-07",
    "5874897-12-31",
    "infinity",
    "-infinity",
  ],
  timestamp: [
    "0001-01-01 00:00:00",
    "0044-03-15 12:34:56.789 BC",
    "0099-06-30 23:59:59.999",
    "2024-02-29 23:59:59.999",
    "294276-12-31 23:59:59",
    "infinity",
    "-infinity",
  ],
  timestamptz: [
    "0001-01-01 00:00:00+00",
    "0044-03-15 12:00:00+00 BC",
    "1900-01-01 00:00:00-03:30:52",
    "2024-02-29 23:59:59.999+05:30",
    "294276-12-31 23:59:59+00",
    "infinity",
    "-infinity",
  ],
  "int4[]": ["{}", "{1,NULL,3}", "{{1,2},{3,4}}"],
  "int8[]": ["{9223372036854775807,NULL}"],
  "text[]": [`{"a,b","q\\"uote","back\\\\slash",NULL,"NULL","{}",""}`, "{}"],
  "varchar[]": ["{x,y}"],
  "bool[]": ["{t,f,NULL}"],
  "float8[]": ["{-0,NaN,Infinity,0.1}"],
  "numeric[]": ["{1.50,NaN,NULL}"],
  "bytea[]": [`{"\\\\x00ff",NULL}`],
  "date[]": [`{0001-01-01,"0044-03-15 BC",infinity,NULL}`],
  "timestamptz[]": [`{"2024-01-01 00:00:00+00","0010-01-01 00:00:00+00 BC"}`],
  "uuid[]": ["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"],
  "json[]": [`{"[]","{\\"a\\":1}","\\"s\\""}`],
  "jsonb[]": [`{"[]","{\\"a\\": 1}",NULL}`],
};

const sqlString = (text: string) => `'${text.replaceAll("'", "''")}'`;
const tableName = (type: string) => `rt_${type.replace(/\W/g, "_")}`;

/** A small deterministic PRNG (mulberry32), so a failure can be reproduced. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = [..."ab ,{}\"'\\\n\tNULé🎉", "NULL", "\u0001"];

const availability = postgresAvailability();
if ("skipReason" in availability) console.log(`skipping the type tests: ${availability.skipReason}`);

describe.skipIf(!("bin" in availability))("values ⇄ PostgreSQL types, on a real server", () => {
  let cluster: PostgresCluster;
  let client: Client;
  beforeAll(async () => {
    if (!("bin" in availability)) return;
    cluster = await startPostgres(availability.bin);
    client = await connect(cluster.url("trust"));
    // A historical zone: St. John's was −03:30:52 until 1935, so offsets with seconds come back.
    await client.simpleQuery("SET TimeZone = 'America/St_Johns'");
    for (const type of Object.keys(EDGE_VALUES))
      await client.simpleQuery(`CREATE TABLE ${tableName(type)} (k serial, v ${type})`);
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await cluster?.stop();
  });

  /**
   * Reads the value stored under `k`, writes it back as a parameter of the column's type, and returns the
   * server's text of both: the round-trip property is that they are equal.
   */
  async function roundTrip(type: string, k: number) {
    const table = tableName(type);
    const read = await client.query<{ v: unknown }>(`SELECT v FROM ${table} WHERE k = $1`, [k]);
    const value = read.rows[0]!.v;
    const written = await client.query<{ k: number }>(`INSERT INTO ${table} (v) VALUES ($1) RETURNING k`, [
      value,
    ]);
    const { rows } = await client.query<{ a: string | null; b: string | null }>(
      `SELECT (SELECT v::text FROM ${table} WHERE k = $1) AS a, (SELECT v::text FROM ${table} WHERE k = $2) AS b`,
      [k, written.rows[0]!.k],
    );
    return { value, ...rows[0]! };
  }

  test("every edge value read from the server and sent back is stored unchanged", async () => {
    const mismatches: string[] = [];
    for (const [type, literals] of Object.entries(EDGE_VALUES)) {
      for (const literal of literals) {
        const inserted = await client.simpleQuery(
          `INSERT INTO ${tableName(type)} (v) VALUES (${sqlString(literal)}::${type}) RETURNING k`,
        );
        const k = Number(inserted[0]!.rows[0]!.k);
        const { value, a, b } = await roundTrip(type, k);
        if (a !== b) mismatches.push(`${type} ${literal}: read ${String(value)}, stored ${a} then ${b}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  test("random values of each type survive the same round trip (seeded, 40 per type)", async () => {
    const next = random(20_241_127);
    const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
    const randomText = () => Array.from({ length: Math.floor(next() * 12) }, () => pick(ALPHABET)).join("");
    const randomDouble = () => {
      const bytes = new Uint8Array(8).map(() => Math.floor(next() * 256));
      return new DataView(bytes.buffer).getFloat64(0);
    };
    // Every millisecond from 4713 BC to a Date's limit, as PostgreSQL's timestamps allow.
    const earliest = Date.UTC(-4712, 0, 1);
    const latest = 8.64e15;
    const randomDate = () => new Date(Math.floor(earliest + next() * (latest - earliest)));
    const randomJson = (depth: number): unknown => {
      const kind = Math.floor(next() * (depth > 2 ? 4 : 6));
      if (kind === 0) return randomText();
      if (kind === 1) return Math.floor(next() * 2 ** 53) * (next() < 0.5 ? -1 : 1);
      if (kind === 2) return next() < 0.5;
      if (kind === 3) return Number(next().toPrecision(8));
      if (kind === 4) return Array.from({ length: Math.floor(next() * 4) }, () => randomJson(depth + 1));
      return Object.fromEntries(
        Array.from({ length: Math.floor(next() * 4) }, () => [randomText(), randomJson(depth + 1)]),
      );
    };
    const generators: Record<string, () => unknown> = {
      int8: () => BigInt.asIntN(64, BigInt(Math.floor(next() * 2 ** 53)) * 1_000_003n),
      float8: randomDouble,
      text: randomText,
      bytea: () => new Uint8Array(Math.floor(next() * 20)).map(() => Math.floor(next() * 256)),
      date: () => {
        const date = randomDate();
        return new Date(Date.UTC(0, 0, 1) + Math.floor((date.getTime() - Date.UTC(0, 0, 1)) / 864e5) * 864e5);
      },
      timestamp: randomDate,
      timestamptz: randomDate,
      jsonb: () => randomJson(0),
      json: () => randomJson(0),
      "int4[]": () =>
        Array.from({ length: Math.floor(next() * 5) }, () => (next() < 0.2 ? null : (next() * 2 ** 31) | 0)),
      "text[]": () =>
        Array.from({ length: Math.floor(next() * 5) }, () => (next() < 0.2 ? null : randomText())),
    };
    const mismatches: string[] = [];
    for (const [type, generate] of Object.entries(generators)) {
      for (let i = 0; i < 40; i++) {
        const original = generate();
        const inserted = await client.query<{ k: number }>(
          `INSERT INTO ${tableName(type)} (v) VALUES ($1) RETURNING k`,
          [original],
        );
        const { value, a, b } = await roundTrip(type, inserted.rows[0]!.k);
        if (a !== b) mismatches.push(`${type}: sent ${String(original)}, read ${String(value)}: ${a} ≠ ${b}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  test("json and jsonb parameters take any JSON value: arrays, strings, numbers, objects", async () => {
    const values = [[], [1, "x", null], "str", 42, { a: [1, { b: "c" }] }, true, 12345678901234567890n];
    for (const value of values) {
      const { rows } = await client.query<{ j: unknown; b: unknown; text: string }>(
        "SELECT $1::json AS j, $1::jsonb AS b, $1::jsonb::text AS text",
        [value],
      );
      const expected = typeof value === "bigint" ? Number(value) : value;
      expect(rows[0]!.j).toEqual(expected);
      expect(rows[0]!.b).toEqual(expected);
    }
    // The empty array stays an array (it used to become '{}', an empty object).
    const { rows } = await client.query<{ t: string }>("SELECT jsonb_typeof($1::jsonb) AS t", [[]]);
    expect(rows[0]!.t).toBe("array");
  });

  test("a JS array goes in as a PostgreSQL array only for an array type", async () => {
    const { rows } = await client.query<{ a: (number | null)[]; n: number }>(
      "SELECT $1::int4[] AS a, array_length($1::int4[], 1) AS n",
      [[1, null, 3]],
    );
    expect(rows[0]).toEqual({ a: [1, null, 3], n: 3 });
    await expect(client.query("SELECT $1::int4 AS x", [[1]])).rejects.toThrow(
      "parameter $1 (int4): a JS array needs an array type (or json/jsonb)",
    );
  });

  test("a value the declared type cannot take is a ParameterTypeError naming it, and nothing is sent", async () => {
    const cases: [string, unknown[], string][] = [
      ["SELECT $1::int4 AS x", [3.5], "parameter $1 (int4): expects an integer, got the number 3.5"],
      ["SELECT $1::int8 AS x", [2 ** 60], "parameter $1 (int8): expects an integer"],
      [
        "SELECT $1::text AS a, $2::bool AS b",
        ["ok", 1],
        "parameter $2 (bool): expects a boolean, got the number 1",
      ],
      ["SELECT $1::bytea AS x", [{}], "parameter $1 (bytea): expects a Uint8Array, got an object"],
      ["SELECT $1::date AS x", [new Date(Number.NaN)], "parameter $1 (date): an Invalid Date"],
      [
        "SELECT $1::timestamptz AS x",
        ["2024-01-01", 1].slice(1),
        "parameter $1 (timestamptz): expects a Date",
      ],
      ["SELECT $1::text AS x", [{ a: 1 }], "parameter $1 (text): expects a string, got an object"],
    ];
    for (const [sql, params, message] of cases) {
      const failure = client.query(sql, params);
      await expect(failure).rejects.toBeInstanceOf(ParameterTypeError);
      await expect(failure).rejects.toThrow(message);
    }
    // A Date into a text parameter is its ISO 8601 form.
    const when = new Date("2024-02-29T12:34:56.789Z");
    expect((await client.query("SELECT $1::text AS t", [when])).rows).toEqual([
      { t: "2024-02-29T12:34:56.789Z" },
    ]);
    // The connection is in step: the next query answers normally.
    expect((await client.query("SELECT $1::int4 AS x", [7])).rows).toEqual([{ x: 7 }]);
  });

  test("a value the client cannot read rejects its query with a PgResultValueError, and the connection goes on", async () => {
    await client.query("SET bytea_output = 'escape'");
    try {
      const failure = client.query("SELECT 1 AS n, '\\x01'::bytea AS b");
      await expect(failure).rejects.toBeInstanceOf(PgResultValueError);
      await expect(failure).rejects.toBeInstanceOf(TypeError);
      await expect(failure).rejects.toThrow(
        "cannot read a value of the result: bytea in escape format is not supported; set bytea_output = 'hex'",
      );
      expect(((await failure.catch((error) => error)) as Error).cause).toBeInstanceOf(PgValueTextError);
    } finally {
      await client.query("RESET bytea_output");
    }
    expect((await client.query("SELECT '\\x01'::bytea AS b")).rows).toEqual([{ b: new Uint8Array([1]) }]);
  });

  test("dates before year 100, BC dates, and ±infinity read exactly", async () => {
    const { rows } = await client.query<Record<string, unknown>>(
      `SELECT '0001-01-01'::date AS d1, '0099-12-31'::date AS d99, '0044-03-15 BC'::date AS bc,
              '0044-03-15 12:00:00+00 BC'::timestamptz AS tbc, 'infinity'::date AS inf,
              '-infinity'::timestamptz AS ninf, '294276-12-31 23:59:59'::timestamp AS far`,
    );
    const at = (year: number, month: number, day: number, hour = 0) => {
      const date = new Date(Date.UTC(2000, month - 1, day, hour));
      date.setUTCFullYear(year);
      return date;
    };
    expect(rows[0]).toEqual({
      d1: at(1, 1, 1),
      d99: at(99, 12, 31),
      bc: at(-43, 3, 15), // 44 BC is astronomical year −43
      tbc: at(-43, 3, 15, 12),
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      far: "294276-12-31 23:59:59", // beyond a Date: the text, which round-trips
    });
  });

  test("a historical offset with seconds is applied to the second", async () => {
    const { rows } = await client.query<{ t: Date }>("SELECT '1900-01-01 00:00:00'::timestamptz AS t");
    expect(rows[0]!.t).toEqual(new Date("1900-01-01T03:30:52Z"));
  });
});

describe("date text, without a server", () => {
  test("formats and parses years 1–99 and BC without shifting them", () => {
    for (const year of [1, 5, 99, 100, 0, -43, -4712, 2024, 12345]) {
      const date = new Date(Date.UTC(2000, 6, 4, 5, 6, 7, 89));
      date.setUTCFullYear(year);
      const text = formatTimestamp(date, true);
      expect(parseTimestamp(text)).toEqual(date);
    }
    expect(formatTimestamp(new Date(Date.UTC(2000, 0, 1)), true)).toBe("2000-01-01 00:00:00.000+00");
    const bc = new Date(0);
    bc.setUTCFullYear(-43, 2, 15);
    expect(formatTimestamp(bc, false)).toBe("0044-03-15 00:00:00.000 BC");
  });
});
