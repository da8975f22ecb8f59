/**
 * bench/pg.ts — lib/pg against postgres.js, Bun's built-in SQL and node-postgres (`pg`), one connection
 * each, on a private PostgreSQL cluster started for the run (the tests' fixture). Three workloads:
 * `SELECT 1` one at a time, `SELECT 1` with 64 queries in flight, and a 1,000-row result.
 */
import pg from "pg";
import postgres from "postgres";
import { connect } from "../lib/pg.ts";
import { postgresAvailability, startPostgres } from "../tests/helpers/postgres.ts";
import { compare, report } from "./measure.ts";

const SEQUENTIAL = 2000;
const PIPELINED = 20_000;
const WINDOW = 64;
const WIDE_QUERIES = 100;
const WIDE_SQL = "SELECT g AS n, md5(g::text) AS h, now() AS t FROM generate_series(1, 1000) g";

interface Driver {
  name: string;
  selectOne(): Promise<unknown>;
  wide(): Promise<unknown>;
  close(): Promise<void>;
}

async function drivers(url: string): Promise<Driver[]> {
  const ours = await connect(url);
  const postgresJs = postgres(url, { max: 1 });
  const bunSql = new Bun.SQL({ url, max: 1 });
  const nodePg = new pg.Client({ connectionString: url });
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
        targets: { "postgres.js": 1.0, "Bun.sql": 0.9 },
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
  } finally {
    for (const driver of all) await driver.close();
    await cluster.stop();
  }
}

if (import.meta.main) await benchPg();
