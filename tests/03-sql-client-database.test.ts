/**
 * Lesson 03's database side under attack: the embedded database (PGlite in its worker) given a recursive
 * SQL function, a query that sleeps past --statement-timeout, an endless recursive CTE and a million 1 KB
 * rows — and a database that is down. The console runs as a child process (tests/helpers/sql-console-program.ts:
 * lesson 03's own openDatabase and SqlConsole, without the terminal), so that its resident memory is
 * measured alone. Each attack must give one error line (or the bounded result), the console must answer
 * the next query, and the child's peak RSS must stay under the memory limit plus what one sampling
 * interval and the thread's end let through.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Pool } from "../lib/pg.ts";
import type { Message, Screen } from "../lib/screen.ts";
import { SqlConsole } from "../scripts/03-sql-client.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";

const MiB = 1024 * 1024;
const STATEMENT_TIMEOUT_SECONDS = 10;
/**
 * Above what PGlite takes by itself: idle ~0.7–0.9 GiB, and up to ~2.2 GiB of garbage while a query sleeps
 * (measured; lib/pglite-server.ts says why).
 */
const MEMORY_LIMIT_MIB = 2816;
/**
 * What the peak may pass the limit by: memory is read every 50 ms, and ending the busy thread took up to
 * ~0.4 s (measured, loaded machine), while a recursive CTE of 1 KB rows grew the process at ~1.4 GB/s.
 */
const OVERSHOOT_MIB = 768;
/** The child is killed if it ever gets here, so that a regression cannot take the shared machine's memory. */
const SAFETY_CAP_BYTES = 5 * 1024 * MiB;

/** The console as a child process: its output lines, and what it was measured at. */
interface ConsoleChild {
  lines: string[];
  send(line: string): void;
  /** Resolves with the first line matching `pattern` from line `from` on; rejects past `ms`. */
  waitFor(pattern: RegExp, ms: number, from?: number): Promise<string>;
  /** The child's peak and current resident memory, as it reads them itself. */
  rss(): Promise<{ peakBytes: number; nowBytes: number }>;
  /** The highest VmRSS the watchdog saw (it samples /proc every 50 ms). */
  readonly watchedPeakBytes: number;
  stop(): Promise<void>;
}

function startConsoleChild(args: string[]): ConsoleChild {
  const child = Bun.spawn(["bun", `${import.meta.dir}/helpers/sql-console-program.ts`, ...args], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines: string[] = [];
  let waiters: (() => void)[] = [];
  void (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
      for (const wake of waiters.splice(0)) wake();
    }
  })();
  let watchedPeakBytes = 0;
  const watchdog = setInterval(() => {
    try {
      const text = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const resident = Number(/VmRSS:\s+(\d+) kB/.exec(text)?.[1] ?? 0) * 1024;
      watchedPeakBytes = Math.max(watchedPeakBytes, resident);
      if (resident > SAFETY_CAP_BYTES) child.kill("SIGKILL");
    } catch {
      // the child has ended
    }
  }, 50);
  const waitFor = async (pattern: RegExp, ms: number, from = 0) => {
    const deadline = performance.now() + ms;
    for (;;) {
      const found = lines.slice(from).find((line) => pattern.test(line));
      if (found) return found;
      const left = deadline - performance.now();
      if (left <= 0 || child.exitCode !== null)
        throw new Error(
          `no line matching ${pattern} within ${ms} ms; the console printed:\n${lines.join("\n")}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  const send = (line: string) => {
    child.stdin.write(`${line}\n`);
    child.stdin.flush();
  };
  return {
    lines,
    send,
    waitFor,
    async rss() {
      const from = lines.length;
      send("\\rss");
      return JSON.parse((await waitFor(/^rss /, 5_000, from)).slice(4));
    },
    get watchedPeakBytes() {
      return watchedPeakBytes;
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.exited;
      clearTimeout(timer);
      clearInterval(watchdog);
      waiters = [];
    },
  };
}

/** Types `sql` as query `mine`; resolves with the first answer line of its number (not the echo of the SQL). */
async function answerOn(child: ConsoleChild, mine: number, sql: string, ms: number): Promise<string> {
  const from = child.lines.length;
  child.send(sql);
  const echo = `[#${mine}] ${sql}`;
  await child.waitFor(new RegExp(`^${RegExp.escape(echo)}$`), 5_000, from);
  return child.waitFor(new RegExp(`^\\[#${mine}\\] (?!${RegExp.escape(sql)}$)`), ms, from);
}

describe("lesson 03's embedded database cannot wedge or eat the machine", () => {
  let console03: ConsoleChild;
  let number = 0;
  beforeAll(async () => {
    console03 = startConsoleChild([String(STATEMENT_TIMEOUT_SECONDS), String(MEMORY_LIMIT_MIB)]);
    await console03.waitFor(/^ready$/, 60_000);
  }, 70_000);
  afterAll(() => console03?.stop());

  const answer = (sql: string, ms: number) => answerOn(console03, ++number, sql, ms);

  /** The console answers the next query with the sample data: 5,000 products. */
  async function expectUsable(): Promise<void> {
    const from = console03.lines.length;
    expect(await answer("select count(*) as n from product", 30_000)).toMatch(/1 row in/);
    await console03.waitFor(/^5000$/, 5_000, from);
  }

  async function expectMemoryBounded(): Promise<number> {
    const { peakBytes } = await console03.rss();
    expect(peakBytes).toBeLessThan((MEMORY_LIMIT_MIB + OVERSHOOT_MIB) * MiB);
    expect(console03.watchedPeakBytes).toBeLessThan((MEMORY_LIMIT_MIB + OVERSHOOT_MIB) * MiB);
    return peakBytes;
  }

  test("a recursive SQL function: one error line, the database restarted with its sample data, the next query answered", async () => {
    expect(
      await answer("create function f(int) returns int as 'select f($1 + 1)' language sql", 10_000),
    ).toMatch(/CREATE FUNCTION in [\d.]+ ms$/);
    const started = performance.now();
    const line = await answer("select f(1)", 20_000);
    expect(line).toBe(
      `[#${number}] ERROR: the database failed (it stopped answering in the middle of a query, and answers nothing since (PGlite does so after a PANIC, such as a recursive SQL function running out of stack)): the embedded database was restarted with the sample data (changes made since are gone)`,
    );
    expect(performance.now() - started).toBeLessThan(10_000); // detected, not waited out
    await expectUsable();
    // The function went with the old database: the sample data is all there is.
    expect(await answer("select f(1)", 10_000)).toBe(
      `[#${number}] ERROR 42883: function f(integer) does not exist`,
    );
    await expectMemoryBounded();
  }, 90_000);

  test(`select pg_sleep(60) ends at --statement-timeout ${STATEMENT_TIMEOUT_SECONDS} with one line; the next query is answered`, async () => {
    const started = performance.now();
    const line = await answer("select pg_sleep(60)", 30_000);
    const elapsed = performance.now() - started;
    expect(line).toBe(
      `[#${number}] ERROR: a query ran past the ${STATEMENT_TIMEOUT_SECONDS} s statement timeout: the embedded database was restarted with the sample data (changes made since are gone)`,
    );
    expect(elapsed).toBeGreaterThan(STATEMENT_TIMEOUT_SECONDS * 1000 - 100);
    expect(elapsed).toBeLessThan(STATEMENT_TIMEOUT_SECONDS * 1000 + 3_000);
    await expectUsable();
  }, 90_000);

  test("an endless recursive CTE is ended by a limit with one line (whichever comes first); RSS stays bounded", async () => {
    const line = await answer(
      "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r",
      STATEMENT_TIMEOUT_SECONDS * 1000 + 10_000,
    );
    expect(line).toMatch(
      new RegExp(
        `^\\[#${number}\\] ERROR: a query (ran past the ${STATEMENT_TIMEOUT_SECONDS} s statement timeout|took the process's memory to \\d+ MiB, past the limit of ${MEMORY_LIMIT_MIB} MiB): the embedded database was restarted`,
      ),
    );
    const peak = await expectMemoryBounded();
    console.log(`endless recursive CTE: ${line.slice(0, 90)}… peak RSS ${Math.round(peak / MiB)} MiB`);
    await expectUsable();
  }, 90_000);

  test(`an endless recursive CTE of 1 KB rows is ended at --memory-limit ${MEMORY_LIMIT_MIB} with one line; RSS stays bounded`, async () => {
    const line = await answer(
      "with recursive r(n, pad) as (select 1, repeat('x', 1000) union all select n + 1, pad from r) select count(*) from r",
      STATEMENT_TIMEOUT_SECONDS * 1000 + 10_000,
    );
    expect(line).toMatch(
      new RegExp(
        `^\\[#${number}\\] ERROR: a query took the process's memory to \\d+ MiB, past the limit of ${MEMORY_LIMIT_MIB} MiB: the embedded database was restarted with the sample data`,
      ),
    );
    const peak = await expectMemoryBounded();
    console.log(
      `endless CTE of 1 KB rows: peak RSS ${Math.round(peak / MiB)} MiB (limit ${MEMORY_LIMIT_MIB} MiB)`,
    );
    await expectUsable();
  }, 90_000);

  test("100,000 1 KB rows: 10 kept and shown, the rest counted", async () => {
    const from = console03.lines.length;
    const line = await answer("select repeat('x', 1000) as kb from generate_series(1, 100000)", 60_000);
    expect(line).toMatch(/100000 rows in/);
    await console03.waitFor(/^… 99990 more rows$/, 5_000, from);
    await expectMemoryBounded();
  }, 90_000);

  test("a million 1 KB rows: the answer passes 256 MiB and the database is restarted with one line; RSS stays bounded", async () => {
    const line = await answer("select repeat('x', 1000) as kb from generate_series(1, 1000000)", 60_000);
    expect(line).toBe(
      `[#${number}] ERROR: a query's answer passed 256 MiB: the embedded database was restarted with the sample data (changes made since are gone)`,
    );
    const peak = await expectMemoryBounded();
    console.log(`a million 1 KB rows: peak RSS ${Math.round(peak / MiB)} MiB`);
    await expectUsable();
  }, 120_000);
});

const availability = postgresAvailability();
describe.skipIf(!("bin" in availability))("lesson 03 with --url against a real PostgreSQL", () => {
  let cluster: PostgresCluster;
  const children: ConsoleChild[] = [];
  beforeAll(async () => {
    if ("bin" in availability) cluster = await startPostgres(availability.bin);
  }, 60_000);
  afterAll(async () => {
    for (const child of children) await child.stop();
    cluster?.stop();
  });

  async function consoleOn(statementTimeoutSeconds: number): Promise<ConsoleChild> {
    const child = startConsoleChild([String(statementTimeoutSeconds), "3072", cluster.url("trust")]);
    children.push(child);
    await child.waitFor(/^ready$/, 30_000);
    return child;
  }

  test("--statement-timeout 1: select pg_sleep(30) is cancelled on the server with one line; the next query is answered", async () => {
    const child = await consoleOn(1);
    const started = performance.now();
    expect(await answerOn(child, 1, "select pg_sleep(30)", 10_000)).toBe(
      "[#1] ERROR: the query ran longer than 1000 ms and was cancelled",
    );
    expect(performance.now() - started).toBeLessThan(1_000 + 2_000);
    expect(await answerOn(child, 2, "select 41 + 1 as answer", 5_000)).toMatch(/^\[#2\] 1 row in/);
  }, 30_000);

  test("a million 1 KB rows: the console keeps the 10 it shows and counts the rest; its RSS stays under 200 MiB", async () => {
    const child = await consoleOn(0);
    const from = child.lines.length;
    const line = await answerOn(
      child,
      1,
      "select repeat('x', 1000) as kb from generate_series(1, 1000000)",
      60_000,
    );
    expect(line).toMatch(/^\[#1\] 1000000 rows in/);
    await child.waitFor(/^… 999990 more rows$/, 5_000, from);
    const { peakBytes } = await child.rss();
    console.log(
      `a million 1 KB rows from PostgreSQL: the console's peak RSS ${Math.round(peakBytes / MiB)} MiB`,
    );
    expect(peakBytes).toBeLessThan(200 * MiB); // the rows alone are ~1 GB
  }, 90_000);
});

describe("lesson 03 when the database is down", () => {
  test("every query typed gets an answer: one error line each, within the connect error's time", async () => {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = listener.port;
    listener.stop(true); // nothing listens there now
    const printed: string[] = [];
    const screen = {
      print: (message: Message) =>
        printed.push(typeof message === "string" ? message : message.map((span) => span.text).join("")),
    } as unknown as Screen;
    const pool = new Pool(`postgres://ann@127.0.0.1:${port}/shop?sslmode=disable`, { max: 1 });
    const sqlConsole = new SqlConsole(screen, pool, () => 80);
    for (let i = 1; i <= 5; i++) sqlConsole.submit(`select ${i}`);
    const deadline = performance.now() + 5_000;
    const answers = () => printed.filter((line) => /^\[#\d\] ERROR/.test(line));
    while (answers().length < 5 && performance.now() < deadline) await Bun.sleep(20);
    expect(answers()).toHaveLength(5);
    for (const line of answers()) expect(line).toMatch(/^\[#\d\] ERROR: .*(refused|ECONNREFUSED)/i);
    await pool.close();
  });
});
