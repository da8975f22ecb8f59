import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PgError } from "../lib/pg.ts";
import { Screen } from "../lib/screen.ts";
import {
  formatError,
  formatResult,
  formatTable,
  MAX_DELAY_SECONDS,
  MAX_TABLE_ROWS,
  SqlConsole,
} from "../scripts/03-sql-client.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";
import { type PtyProgram, startInPty } from "./helpers/pty.ts";
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

/** The embedded database's port, read from the "Connected to embedded PGlite on 127.0.0.1:PORT" line. */
function databasePort(rows: string[]): number {
  const match = rows.join("\n").match(/embedded PGlite on 127\.0\.0\.1:(\d+)/);
  if (!match) throw new Error(`no database port on the screen:\n${rows.join("\n")}`);
  return Number(match[1]);
}

describe("lesson 03: the delay demo", () => {
  test("a delay longer than a timer holds is refused, not reported as slept at once", async () => {
    let written = "";
    const shown = () => Bun.stripANSI(written);
    const screen = new Screen({
      output: { write: (text: string) => (written += text) },
      columns: 80,
      rows: 10,
      prompt: "> ",
    });
    screen.start();
    const pool = {} as ConstructorParameters<typeof SqlConsole>[1]; // a delay never touches the database
    const sqlConsole = new SqlConsole(screen, pool, () => 80);
    sqlConsole.submit(String(MAX_DELAY_SECONDS + 1));
    sqlConsole.submit("0.05");
    await Bun.sleep(200);
    expect(shown()).toContain(`[#1] a delay is at most ${MAX_DELAY_SECONDS} s (24.8 days)`);
    expect(shown()).not.toContain("slept 2147484 s");
    expect(shown()).toContain("[#2] slept 0.05 s");
  });
});

describe("lesson 03 in a real terminal, on its embedded database", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "lesson03-"));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** The terminal settings after the console are exactly those before it. */
  function expectTerminalRestored(label: string) {
    expect(readFileSync(`${folder}/${label}.after`, "utf8")).toBe(
      readFileSync(`${folder}/${label}.before`, "utf8"),
    );
  }

  /** Runs the console between two `stty -g` (files named after `label`), to compare the terminal settings. */
  function startConsole(label: string) {
    return startInPty(
      [
        "bash",
        "-c",
        `stty -g > ${folder}/${label}.before; bun scripts/03-sql-client.ts; code=$?; stty -g > ${folder}/${label}.after; exit $code`,
      ],
      80,
      24,
      { CI: "false" }, // under CI=true the spinner does not animate
    );
  }

  test("the spinner moves while the database starts; keys echo within 100 ms during select pg_sleep(2); results come in their own order; Ctrl+C exits 130, restores the terminal and leaves no database behind", async () => {
    const program = startConsole("interrupt");
    // Every change of the spinner's row, timed: a frozen event loop would show as one long gap.
    const changes: number[] = [];
    let previous = "";
    let rows = await program.waitFor(
      (rows) => {
        const spinner = rows.find((row) => row.includes("Starting the embedded database")) ?? "";
        if (spinner && spinner !== previous) changes.push(performance.now());
        previous = spinner;
        return rows[23]!.startsWith("sql>") && rows[0] !== "";
      },
      "the prompt and the first message",
      30_000,
      5,
    );
    const gaps = changes.slice(1).map((at, index) => at - changes[index]!);
    expect(changes.length).toBeGreaterThanOrEqual(5);
    expect(Math.max(...gaps)).toBeLessThan(1000); // frames come every 80 ms; PGlite on our thread froze it ~2 s
    // What the spinner said when it stopped is said again at the top of the screen, and stays there.
    expect(rows[0]).toStartWith("Connected to embedded PGlite on 127.0.0.1:");
    expect(rows.join(" ")).toContain("PostgreSQL");
    const port = databasePort(rows);
    expect(await listening(port)).toBe(true);

    program.type("select pg_sleep(2), 'slow' as s\r");
    await program.waitFor((rows) => rows.some((row) => row.includes("[#1] select pg_sleep")), "the query");
    await Bun.sleep(300); // the sleep is running now
    const echoes: number[] = [];
    let typed = "";
    for (const key of "abcde") {
      typed += key;
      const started = performance.now();
      program.type(key);
      await program.waitFor((rows) => rows[23] === `sql> ${typed}`, `"${typed}" echoed`, 10_000, 2);
      echoes.push(performance.now() - started);
      await Bun.sleep(50);
    }
    console.log(`key echo during pg_sleep: ${echoes.map((ms) => ms.toFixed(0)).join(", ")} ms`);
    expect(Math.max(...echoes)).toBeLessThan(100);
    expect(program.screen.rows().some((row) => row.endsWith("│ slow"))).toBe(false); // still sleeping
    // A delay typed during the sleep reports before the sleep's result: nothing waits for the database.
    program.type("\x15" + "0.2\r");
    rows = await program.waitFor((rows) => rows.some((row) => row.endsWith("│ slow")), "the slow result");
    const slept = rows.findIndex((row) => row.includes("slept 0.2 s"));
    expect(slept).toBeGreaterThan(-1);
    expect(slept).toBeLessThan(rows.findIndex((row) => row.endsWith("│ slow")));
    expect(rows[0]).toStartWith("Connected to embedded PGlite"); // still there

    program.type("select 41 + 1 as answer\r");
    await program.waitFor((rows) => rows.some((row) => row.trim() === "42"), "42");
    program.type("select * from no_such_table\r");
    rows = await program.waitFor((rows) => rows.some((row) => row.includes("ERROR 42P01")), "the error");
    expect(rows[23]).toStartWith("sql>");
    program.type("half typed\x03");
    expect(await program.exited).toBe(130);
    expectTerminalRestored("interrupt");
    expect(await listening(port)).toBe(false);
  }, 60_000);

  test("Ctrl+C while the database starts exits 130 (not clack's 0), says so and restores the terminal; SIGTERM then exits 143", async () => {
    const starting = (program: PtyProgram) =>
      program.waitFor(
        (rows) => rows.some((row) => row.includes("Starting the embedded database")),
        "the spinner",
        10_000,
        5,
      );
    const interrupted = startConsole("spinner-interrupt");
    await starting(interrupted);
    interrupted.type("\x03");
    expect(await interrupted.exited).toBe(130);
    expect(interrupted.screen.rows().join("\n")).toContain("▲  Interrupted.");
    expectTerminalRestored("spinner-interrupt");

    const terminated = startConsole("spinner-sigterm");
    await starting(terminated);
    const lesson = processesRunning("bun\0scripts/03-sql-client.ts");
    expect(lesson.length).toBe(1);
    process.kill(lesson[0]!, "SIGTERM");
    expect(await terminated.exited).toBe(143);
    expectTerminalRestored("spinner-sigterm");
    expect(processesRunning("bun\0scripts/03-sql-client.ts")).toEqual([]);
  }, 60_000);

  test("\\q exits 0 and SIGTERM 143, each restoring the terminal and taking the database with it", async () => {
    // Two consoles at once: the test waits for two database starts at the same time, not one after the other.
    const [quitter, terminated] = [startConsole("quit"), startConsole("sigterm")];
    const ready = (program: PtyProgram) =>
      program.waitFor((rows) => rows[23]!.startsWith("sql>") && rows[0] !== "", "the prompt", 30_000);
    const [quitterPort, terminatedPort] = (await Promise.all([ready(quitter), ready(terminated)])).map(
      databasePort,
    );

    quitter.type("\\q\r");
    expect(await quitter.exited).toBe(0);
    expectTerminalRestored("quit");
    expect(await listening(quitterPort!)).toBe(false);

    terminated.type("typed but not sent");
    const lesson = processesRunning("bun\0scripts/03-sql-client.ts");
    expect(lesson.length).toBe(1);
    process.kill(lesson[0]!, "SIGTERM");
    expect(await terminated.exited).toBe(143);
    expectTerminalRestored("sigterm");
    expect(processesRunning("bun\0scripts/03-sql-client.ts")).toEqual([]);
    expect(await listening(terminatedPort!)).toBe(false);
  }, 60_000);
});

describe("lesson 03 as a command", () => {
  test("a --url it cannot read is a usage error: one line, exit 2, before anything starts", async () => {
    for (const [url, message] of [
      ["localhost/shop", "invalid database URL: localhost/shop"],
      ["http://localhost/shop", "a database URL starts with postgres://, not http://"],
      ["postgres://ann:secret@localhost/shop?port=abc", 'invalid port "abc": use a whole number'],
    ]) {
      const { exitCode, stdout, stderr } = await runScript(["scripts/03-sql-client.ts", "--url", url!]);
      expect(exitCode).toBe(2);
      expect(stderr.trim()).toBe(`error: --url: ${message} (see --help)`);
      expect(stdout).toBe("");
    }
  });

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
      program.type("select pg_sleep(0.5), 'slow' as s\r");
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
