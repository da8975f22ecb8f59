import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PgError } from "../lib/pg.ts";
import { Screen } from "../lib/screen.ts";
import {
  describeBytes,
  formatError,
  formatResult,
  formatTable,
  MAX_DELAY_SECONDS,
  MAX_TABLE_ROWS,
  SqlConsole,
} from "../scripts/03-sql-client.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";
import { descendantsRunning, isRunning } from "./helpers/processes.ts";
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

/** The lesson's own process under `program` (its bash wrapper): exactly one, or the test fails. */
function lessonProcess(program: PtyProgram): number {
  const found = descendantsRunning(program.pid, "bun\0scripts/03-sql-client.ts");
  expect(found).toHaveLength(1);
  return found[0]!;
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
    const lesson = lessonProcess(terminated);
    process.kill(lesson, "SIGTERM");
    expect(await terminated.exited).toBe(143);
    expectTerminalRestored("spinner-sigterm");
    expect(isRunning(lesson)).toBe(false);
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
    const lesson = lessonProcess(terminated);
    process.kill(lesson, "SIGTERM");
    expect(await terminated.exited).toBe(143);
    expectTerminalRestored("sigterm");
    expect(isRunning(lesson)).toBe(false);
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

describe("lesson 03 --demo-modes in a real terminal", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "lesson03-modes-"));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** The demo between two `stty -g` (files named after `label`), in an 80×40 PTY. */
  async function startDemo(label: string): Promise<PtyProgram> {
    const program = startInPty(
      [
        "bash",
        "-c",
        `stty -g > ${folder}/${label}.before; bun scripts/03-sql-client.ts --demo-modes; code=$?; stty -g > ${folder}/${label}.after; exit $code`,
      ],
      80,
      40,
    );
    await program.waitFor((rows) => rows.some((row) => row.startsWith("1/3 cooked")), "the cooked step");
    return program;
  }

  function expectTerminalRestored(label: string) {
    expect(readFileSync(`${folder}/${label}.after`, "utf8")).toBe(
      readFileSync(`${folder}/${label}.before`, "utf8"),
    );
  }

  /** The `read N bytes: …` lines on the screen after the row starting with `heading`. */
  const readsAfter = (rows: string[], heading: string) =>
    rows
      .slice(rows.findIndex((row) => row.startsWith(heading)) + 1)
      .filter((row) => row.startsWith("  read ") || row.startsWith("  SIGINT"));
  const screenHas = (text: string) => (rows: string[]) => rows.some((row) => row.includes(text));

  test("cooked: nothing until Enter, then 61 63 0a; cbreak: each byte as typed, Ctrl+C is SIGINT and ends the step; raw: 03 and 0d arrive as bytes; q exits 0 with the terminal restored", async () => {
    const program = await startDemo("steps");
    program.type("ab");
    await Bun.sleep(200);
    program.type("\x7f"); // Backspace: the driver's VERASE
    program.type("c");
    await program.waitFor(screenHas("ac"), "the driver's echo of the edited line");
    await Bun.sleep(200);
    expect(readsAfter(program.screen.rows(), "1/3 cooked")).toEqual([]); // not a byte before Enter
    program.type("\r");
    await program.waitFor(screenHas("read 3 bytes"), "the line");
    program.type("q\r");
    await program.waitFor(screenHas("2/3 cbreak"), "the cbreak step");

    program.type("a");
    await program.waitFor(screenHas('read 1 byte: 61  "a"'), "a, without Enter");
    program.type("b");
    await program.waitFor(screenHas('read 1 byte: 62  "b"'), "b, without Enter");
    program.type("\x03");
    await program.waitFor(screenHas("3/3 raw"), "the raw step, after Ctrl+C ended cbreak's");
    program.type("\x03");
    await program.waitFor(screenHas("read 1 byte: 03"), "Ctrl+C as a byte");
    program.type("\r");
    await program.waitFor(screenHas("read 1 byte: 0d"), "Enter as a byte");
    program.type("q");
    expect(await program.exited).toBe(0);
    await program.screen.write("");
    const rows = program.screen.rows();
    expect(readsAfter(rows, "1/3 cooked").slice(0, 2)).toEqual([
      '  read 3 bytes: 61 63 0a  "ac\\n"',
      '  read 2 bytes: 71 0a  "q\\n"',
    ]);
    expect(readsAfter(rows, "2/3 cbreak").slice(0, 3)).toEqual([
      '  read 1 byte: 61  "a"',
      '  read 1 byte: 62  "b"',
      "  SIGINT: the driver turned Ctrl+C into a signal; no byte arrived",
    ]);
    expect(readsAfter(rows, "3/3 raw")).toEqual([
      '  read 1 byte: 03  "\\u0003"',
      '  read 1 byte: 0d  "\\r"',
      '  read 1 byte: 71  "q"',
    ]);
    // In cbreak and raw mode each read also goes through readKey(): one key per character, 03 is Ctrl+C.
    const keysRead = rows.filter((row) => row.startsWith("    readKey() → ")).map((row) => row.slice(16));
    expect(keysRead).toEqual(['"a"', '"b"', "interrupt", "enter", '"q"']);
    expect(rows.some((row) => row.includes("Terminal restored"))).toBe(true);
    expectTerminalRestored("steps");
  }, 30_000);

  test("Ctrl+C in cooked mode exits 130; SIGTERM in cbreak mode 143; SIGHUP in raw mode 129 — each with the terminal restored", async () => {
    const interrupted = await startDemo("cooked-ctrl-c");
    interrupted.type("half a line\x03");
    expect(await interrupted.exited).toBe(130);
    expectTerminalRestored("cooked-ctrl-c");

    const terminated = await startDemo("cbreak-sigterm");
    terminated.type("q\r");
    await terminated.waitFor(screenHas("2/3 cbreak"), "the cbreak step");
    process.kill(lessonProcess(terminated), "SIGTERM");
    expect(await terminated.exited).toBe(143);
    expectTerminalRestored("cbreak-sigterm");

    const hungUp = await startDemo("raw-sighup");
    hungUp.type("q\r");
    await hungUp.waitFor(screenHas("2/3 cbreak"), "the cbreak step");
    hungUp.type("q");
    await hungUp.waitFor(screenHas("3/3 raw"), "the raw step");
    process.kill(lessonProcess(hungUp), "SIGHUP");
    expect(await hungUp.exited).toBe(129);
    expectTerminalRestored("raw-sighup");
  }, 60_000);
});

describe("lesson 03: what --demo-modes prints for a chunk", () => {
  test("Backspace (DEL) and other invisible characters are escaped, never printed raw", () => {
    expect(describeBytes(Uint8Array.of(0x61, 0x7f))).toBe('61 7f  "a\\u007f"');
    expect(describeBytes(Uint8Array.of(0x03))).toBe('03  "\\u0003"');
    expect(describeBytes(new TextEncoder().encode("\u202e"))).toBe('e2 80 ae  "\\u202e"');
    expect(describeBytes(new TextEncoder().encode("é"))).toBe('c3 a9  "é"');
  });
});
