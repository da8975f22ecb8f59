import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PgError } from "../lib/pg.ts";
import { formatError, formatResult, formatTable, MAX_TABLE_ROWS } from "../scripts/03-sql-client.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";
import { startInPty } from "./helpers/pty.ts";
import { runScript } from "./helpers/run.ts";

describe("lesson 03: formatting results", () => {
  const fields = [
    { name: "id", typeOid: 23 },
    { name: "name", typeOid: 25 },
  ];

  test("draws a compact table with a header rule", () => {
    expect(
      formatTable(
        fields,
        [
          { id: 1, name: "ann" },
          { id: 22, name: null },
        ],
        80,
      ),
    ).toEqual(["id │ name", "───┼─────", "1  │ ann", "22 │ NULL"]);
  });

  test("narrows the widest column to fit the width, cutting values with …", () => {
    const lines = formatTable(fields, [{ id: 1, name: "a very long product name indeed" }], 20);
    for (const line of lines) expect(Bun.stringWidth(line)).toBeLessThanOrEqual(20);
    expect(lines[2]).toEndWith("…");
  });

  test("shows the first rows and counts the rest", () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({ id: i, name: `n${i}` }));
    const messages = formatResult(7, { command: "SELECT", rowCount: 25, fields, rows }, 1.5, 80);
    expect(messages).toHaveLength(1 + 2 + MAX_TABLE_ROWS + 1);
    expect(messages.at(-1)).toBe("… 15 more rows");
    expect(JSON.stringify(messages[0])).toContain("25 rows in 1.5 ms");
  });

  test("reports errors with their SQLSTATE", () => {
    const error = new PgError({ severity: "ERROR", code: "42P01", message: 'relation "x" does not exist' });
    expect(JSON.stringify(formatError(3, error))).toContain('ERROR 42P01: relation \\"x\\" does not exist');
  });
});

/** PIDs whose command line starts with `prefix` (arguments separated by NUL), read from /proc. */
function processesRunning(prefix: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "latin1").startsWith(prefix)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

describe("lesson 03 in a real terminal", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "lesson03-"));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** The terminal settings after the console are exactly those before it. */
  function expectTerminalRestored() {
    expect(readFileSync(`${folder}/after`, "utf8")).toBe(readFileSync(`${folder}/before`, "utf8"));
  }

  /** Runs the console between two `stty -g`, so the test can compare the terminal settings. */
  function startConsole(args = "") {
    return startInPty([
      "bash",
      "-c",
      `stty -g > ${folder}/before; bun scripts/03-sql-client.ts ${args}; code=$?; stty -g > ${folder}/after; exit $code`,
    ]);
  }

  test("answers a query above the input line, runs a query while a delay sleeps, and restores the terminal", async () => {
    const program = startConsole();
    await program.waitFor((rows) => rows[23]!.startsWith("sql>"), "the prompt on the last row");
    program.type("select 41 + 1 as answer\r");
    let rows = await program.waitFor((rows) => rows.some((row) => row.trim() === "42"), "42");
    expect(rows[23]).toStartWith("sql>");
    program.type("2\r");
    await program.waitFor((rows) => rows.some((row) => row.includes("sleeping 2 s")), "the delay starting");
    program.type("select 'quick' as q\r");
    rows = await program.waitFor(
      (rows) => rows.some((row) => row.includes("slept 2 s")),
      "the delay ending",
      10_000,
    );
    const quick = rows.findIndex((row) => row.trim() === "quick");
    const slept = rows.findIndex((row) => row.includes("slept 2 s"));
    expect(quick).toBeGreaterThan(-1);
    expect(quick).toBeLessThan(slept); // the query finished first, though typed after the delay
    expect(rows[23]).toStartWith("sql>");
    program.type("\\q\r");
    expect(await program.exited).toBe(0);
    expectTerminalRestored();
  }, 60_000);

  test("SIGTERM restores the terminal too", async () => {
    const program = startConsole();
    await program.waitFor((rows) => rows[23]!.startsWith("sql>"), "the prompt");
    program.type("typed but not sent");
    const lesson = processesRunning("bun\0scripts/03-sql-client.ts");
    expect(lesson.length).toBeGreaterThan(0);
    for (const pid of lesson) process.kill(pid, "SIGTERM");
    expect(await program.exited).toBe(143);
    expectTerminalRestored();
  }, 60_000);

  test("Ctrl+C quits with 130 and restores the terminal; errors show their SQLSTATE", async () => {
    const program = startConsole();
    await program.waitFor((rows) => rows[23]!.startsWith("sql>"), "the prompt");
    program.type("select * from no_such_table\r");
    await program.waitFor((rows) => rows.some((row) => row.includes("ERROR 42P01")), "the error");
    program.type("half typed\x03");
    expect(await program.exited).toBe(130);
    expectTerminalRestored();
  }, 60_000);
});

describe("lesson 03 as a command", () => {
  test("says it needs a terminal when stdin is piped", async () => {
    const { exitCode, stderr } = await runScript(["scripts/03-sql-client.ts"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe(
      "error: this console reads keys from a terminal, but stdin is not one (is it piped?). Run it in a terminal.",
    );
  });

  const availability = postgresAvailability();
  if ("skipReason" in availability)
    console.log(`skipping lesson 03 against PostgreSQL: ${availability.skipReason}`);
  describe.skipIf(!("bin" in availability))("with --url against a real PostgreSQL", () => {
    let cluster: PostgresCluster;
    beforeAll(async () => {
      if ("bin" in availability) cluster = await startPostgres(availability.bin);
    }, 60_000);
    afterAll(() => cluster?.stop());

    test("runs slow and fast queries at once on the pool", async () => {
      const program = startInPty([
        "bun",
        "scripts/03-sql-client.ts",
        "--url",
        cluster.url("scram"),
        "--pool",
        "2",
      ]);
      await program.waitFor((rows) => rows[23]!.startsWith("sql>"), "the prompt");
      program.type("select pg_sleep(1.5), 'slow' as s\r");
      program.type("select 'fast' as f\r");
      const rows = await program.waitFor(
        (rows) => rows.some((row) => row.endsWith("│ slow")),
        "the slow result",
        10_000,
      );
      expect(rows.findIndex((row) => row.trim() === "fast")).toBeLessThan(
        rows.findIndex((row) => row.endsWith("│ slow")),
      );
      program.type("\x04");
      expect(await program.exited).toBe(0);
    }, 60_000);
  });
});
