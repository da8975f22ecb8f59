/**
 * bench/pg.ts — lib/pg against postgres.js, Bun's built-in SQL and node-postgres (`pg`), one connection
 * each, on a private PostgreSQL cluster started for the run (the tests' fixture). Workloads, over plain
 * TCP (`sslmode=disable` for everyone): `SELECT 1` one at a time, `SELECT 1` with 64 queries in flight, a
 * 1,000-row result, a 1,000,000-row `COPY … FROM STDIN` (lib/pg and postgres.js: the others have no
 * COPY); and `SELECT 1` with 64 in flight over TLS.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import postgres from "postgres";
import { type Client, connect } from "../lib/pg.ts";
import { postgresAvailability, startPostgres } from "../tests/helpers/postgres.ts";
import { compare, report } from "./measure.ts";

/**
 * Sequential rounds last ~0.3–0.7 s per driver: at 2,000 queries (50–130 ms) a burst of other work on a
 * shared machine decided a round, and the same pair of drivers measured anywhere from 0.8× to 1.2×.
 */
const SEQUENTIAL = 10_000;
const PIPELINED = 20_000;
const WINDOW = 64;
const WIDE_QUERIES = 100;
const WIDE_SQL = "SELECT g AS n, md5(g::text) AS h, now() AS t FROM generate_series(1, 1000) g";
const COPY_ROWS = 1_000_000;
const COPY_ROWS_PER_CHUNK = 1000;

/** The COPY data, made once and given to every driver: `n<TAB>md5-like text<NEWLINE>` in 1,000-row strings. */
function copyChunks(): string[] {
  const chunks: string[] = [];
  for (let start = 0; start < COPY_ROWS; start += COPY_ROWS_PER_CHUNK) {
    let chunk = "";
    for (let n = start; n < start + COPY_ROWS_PER_CHUNK; n++) chunk += `${n}\tsome text for row ${n}\n`;
    chunks.push(chunk);
  }
  return chunks;
}

interface Driver {
  name: string;
  selectOne(): Promise<unknown>;
  wide(): Promise<unknown>;
  close(): Promise<void>;
}

async function drivers(url: string): Promise<Driver[]> {
  const plain = `${url}?sslmode=disable`;
  const ours = await connect(plain);
  const postgresJs = postgres(plain, { max: 1 });
  const bunSql = new Bun.SQL({ url: plain, max: 1 });
  const nodePg = new pg.Client({ connectionString: plain });
  await nodePg.connect();
  return [
    {
      name: "lib/pg",
      selectOne: () => ours.query("SELECT 1"),
      wide: () => ours.query(WIDE_SQL),
      close: () => ours.close(),
    },
    {
      name: "postgres.js",
      selectOne: () => postgresJs`SELECT 1`.then((rows) => rows),
      wide: () => postgresJs.unsafe(WIDE_SQL, [], { prepare: true }).then((rows) => rows),
      close: () => postgresJs.end(),
    },
    {
      name: "Bun.sql",
      selectOne: () => bunSql`SELECT 1`.then((rows: unknown) => rows),
      wide: () => bunSql.unsafe(WIDE_SQL).then((rows: unknown) => rows),
      close: () => bunSql.close(),
    },
    {
      name: "pg (node-postgres)",
      selectOne: () => nodePg.query("SELECT 1"),
      wide: () => nodePg.query(WIDE_SQL),
      close: () => nodePg.end(),
    },
  ];
}

/** The same three over TLS (`sslmode=require`; certificates not checked, as `require` means). */
async function tlsDrivers(url: string): Promise<Driver[]> {
  const tls = `${url}?sslmode=require`;
  const ours = await connect(tls);
  const postgresJs = postgres(url, { max: 1, ssl: "require" });
  const bunSql = new Bun.SQL({ url: tls, max: 1, tls: { rejectUnauthorized: false } });
  const noWide = () => Promise.resolve();
  return [
    { name: "lib/pg", selectOne: () => ours.query("SELECT 1"), wide: noWide, close: () => ours.close() },
    {
      name: "postgres.js",
      selectOne: () => postgresJs`SELECT 1`.then((rows) => rows),
      wide: noWide,
      close: () => postgresJs.end(),
    },
    {
      name: "Bun.sql",
      selectOne: () => bunSql`SELECT 1`.then((rows: unknown) => rows),
      wide: noWide,
      close: () => bunSql.close(),
    },
  ];
}

/** COPY … FROM STDIN of the chunks into a fresh unlogged table: lib/pg's copyFrom and postgres.js's writable. */
async function copyContestants(url: string, chunks: string[]) {
  const plain = `${url}?sslmode=disable`;
  const ours: Client = await connect(plain);
  const postgresJs = postgres(plain, { max: 1, onnotice: () => {} });
  await ours.simpleQuery("CREATE UNLOGGED TABLE IF NOT EXISTS copy_ours (n int, s text)");
  await ours.simpleQuery("CREATE UNLOGGED TABLE IF NOT EXISTS copy_theirs (n int, s text)");
  return {
    contestants: [
      {
        name: "lib/pg",
        run: async () => {
          await ours.simpleQuery("TRUNCATE copy_ours");
          return ours.copyFrom("COPY copy_ours FROM STDIN", chunks);
        },
      },
      {
        name: "postgres.js",
        run: async () => {
          await postgresJs`TRUNCATE copy_theirs`;
          const writable = await postgresJs`COPY copy_theirs FROM STDIN`.writable();
          await pipeline(Readable.from(chunks), writable);
          return COPY_ROWS;
        },
      },
    ],
    close: async () => {
      await ours.close();
      await postgresJs.end();
    },
  };
}

async function sequential(run: () => Promise<unknown>, count: number): Promise<number> {
  for (let i = 0; i < count; i++) await run();
  return count;
}

/** Keeps `window` queries in flight until `count` are done. */
async function inFlight(run: () => Promise<unknown>, count: number, window: number): Promise<number> {
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await run();
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return count;
}

export async function benchPg(rounds = 7): Promise<void> {
  // node-postgres warns once that it queues concurrent queries; the measurement shows what that costs.
  process.noDeprecation = true;
  const availability = postgresAvailability();
  if ("skipReason" in availability) {
    console.log(`\nPostgreSQL benchmark skipped: ${availability.skipReason}`);
    return;
  }
  const cluster = await startPostgres(availability.bin);
  const all = await drivers(cluster.url("trust"));
  try {
    const workloads: {
      title: string;
      unit: string;
      run: (driver: Driver) => Promise<number>;
      targets: Record<string, number>;
    }[] = [
      {
        title: `SELECT 1, one at a time (${SEQUENTIAL} per round)`,
        unit: "queries/s",
        run: (d: Driver) => sequential(d.selectOne, SEQUENTIAL),
        targets: { "Bun.sql": 1.0 },
      },
      {
        title: `SELECT 1, ${WINDOW} in flight (${PIPELINED} per round)`,
        unit: "queries/s",
        run: (d: Driver) => inFlight(d.selectOne, PIPELINED, WINDOW),
        targets: { "postgres.js": 1.0, "Bun.sql": 1.0 },
      },
      {
        title: `a 1,000-row result (3 columns), one at a time (${WIDE_QUERIES} per round)`,
        unit: "results/s",
        run: (d: Driver) => sequential(d.wide, WIDE_QUERIES),
        targets: {},
      },
    ];
    for (const workload of workloads) {
      const results = await compare(
        all.map((driver) => ({ name: driver.name, run: () => workload.run(driver) })),
        rounds,
      );
      report(`PostgreSQL: ${workload.title}`, workload.unit, results, "lib/pg", workload.targets);
    }
    const tls = await tlsDrivers(cluster.url("trust"));
    try {
      const results = await compare(
        tls.map((driver) => ({
          name: driver.name,
          run: () => inFlight(driver.selectOne, PIPELINED, WINDOW),
        })),
        rounds,
      );
      report(
        `PostgreSQL over TLS: SELECT 1, ${WINDOW} in flight (${PIPELINED} per round)`,
        "queries/s",
        results,
        "lib/pg",
        {},
      );
    } finally {
      for (const driver of tls) await driver.close();
    }
    const copy = await copyContestants(cluster.url("trust"), copyChunks());
    try {
      const results = await compare(copy.contestants, Math.min(rounds, 5));
      report(
        `PostgreSQL: COPY … FROM STDIN, ${COPY_ROWS.toLocaleString("en")} rows`,
        "rows/s",
        results,
        "lib/pg",
        {
          "postgres.js": 1.0,
        },
      );
    } finally {
      await copy.close();
    }
  } finally {
    for (const driver of all) await driver.close();
    await cluster.stop();
  }
}

if (import.meta.main) await benchPg();
