/**
 * Lesson 03 — A non-blocking SQL console: terminal modes and read(1), the deque screen, our own PostgreSQL client
 *
 * What it teaches: a program that keeps listening to you while it works. Type a query and press Enter:
 * it runs on a connection pool, and you can type the next one at once; results appear above the input line
 * as they finish, in whatever order that is. Type a number N and a task sleeps N seconds, then reports —
 * the book's "delay" demo — while queries keep coming back.
 *
 * First, what it is built on: three terminal modes (`--demo-modes` shows each one, Step 4).
 *   cooked (canonical) — the terminal driver collects a line, handles Backspace and echoes, and hands the
 *     line over on Enter: type `ab`, Backspace, `c`, Enter, and one read() returns `61 63 0a`, "ac\n";
 *   cbreak — each key reaches the program as it is typed, unechoed; Ctrl+C is still SIGINT
 *     (`stty -icanon -echo`: ICANON and ECHO off, ISIG on);
 *   raw — every byte at once, nothing processed: Ctrl+C is the byte 03, Enter the byte 0d.
 * Why `readLine` cannot do this: in cooked mode the program sees nothing until Enter, and anything it
 * prints lands in the middle of what you are typing. So the console reads one key at a time — the book's
 * `read(1)` is lib/cbreak's `await keys.readKey()`: one character (all its UTF-8 bytes), one arrow (all
 * its escape bytes) or one paste — and lib/terminal-ui.ts runs the loop both consoles share (lessons 03
 * and 06): `for (;;) { const key = await readKey(); … }` → line editor (lib/line-editor.ts) → input line
 * redrawn → Enter hands over a line. Bun offers raw mode only (`setRawMode`), so the console runs in raw
 * mode and answers the byte 03 as SIGINT would: restore the terminal, close the pool, exit 130. (The
 * demo's cbreak step is the real one, set with `stty`.)
 *
 * The screen (lib/screen.ts): the last row is the input line, and the rows above show the end of a deque
 * of messages ("max elements = number of rows"). The book's way, `--redraw`: on each message, move to the
 * top and redraw every row from the deque. The default: write the message once at the bottom of a scroll
 * region (DECSTBM), and the terminal moves the rest up; the input line is never touched. Both look the
 * same; what the region buys, measured (`bun run bench screen`, 80×24, one-line messages): 70 bytes
 * written per message instead of 805, and 3.2× the messages per second shown.
 *
 * Non-blocking needs one more thing: nothing on our thread may run long. A network database is no
 * trouble (we only wait for its answer), but the embedded one, PGlite, runs queries on the thread that owns
 * it — `select pg_sleep(3)` there would freeze the keys for 3 s. So it runs in a Worker thread
 * (lib/pglite-server.ts) and serves the wire protocol on a loopback port, like any server.
 *
 * The book's version put the terminal in cbreak mode and never gave it back. Here every way out (\q,
 * Ctrl+C, Ctrl+D, SIGTERM, SIGHUP, a crash) restores the terminal. Leaving with \q or Ctrl+D exits 0;
 * Ctrl+C exits 130 (as a shell reports a program that SIGINT ended); SIGTERM exits 143. The database
 * thread ends with us.
 *
 *   asyncio (book)                           here
 *   tty.setcbreak(sys.stdin)                 enterCbreak() (raw mode) — and its restore(), always;
 *                                            setTerminalMode("cbreak", saved) for the real one (stty)
 *   await stdin_reader.read(1)               await keys.readKey() (lib/cbreak) — one key, never half of one
 *   deque(maxlen=rows), redraw every row     Deque + Screen (lib/screen): --redraw, or a scroll region
 *   asyncpg.create_pool(…)                   new Pool(url, { max }) from lib/pg.ts (lesson material too)
 *   asyncio.create_task(run_query(…))        pool.simpleQuery(sql).then(print) — not awaited
 *   loop.run_in_executor(…) for blocking     a Worker thread for the embedded database
 *
 * Run it:   bun scripts/03-sql-client.ts --demo-modes           # first: what a read() gets in each mode
 *           bun scripts/03-sql-client.ts                        # the console, on an embedded PGlite, offline
 *           bun scripts/03-sql-client.ts --redraw               # the same, with the book's screen
 *           bun scripts/03-sql-client.ts --url postgres://user:pass@localhost/db --pool 4
 * Try:      select * from product limit 5        then, quickly:   3    and    select count(*) from product
 *           select pg_sleep(3)   then keep typing: the keys still echo, and a `1` typed meanwhile reports
 *           first (the embedded pool has one connection, so a query queues behind the sleep; with a real
 *           server and --pool 4, a fast query typed meanwhile comes back first too)
 *           in --demo-modes: an arrow in cbreak mode (three bytes, 1b 5b 41, one key: up), é (c3 a9, one
 *           key), Backspace in cooked mode (never seen: the driver took it) and in raw mode (7f)
 * Break it: the book's `tty.setcbreak` is never undone. Leave a terminal that way by hand:
 *           `stty -icanon -echo; cat` — nothing you type is echoed, and cat gets each key at once (what you
 *           see is cat's copy). Ctrl+C, then `stty sane` typed blind, gives it back. The console gives it
 *           back on every way out: `stty -g` before it and after `kill -TERM`, `kill -HUP` or Ctrl+C
 *           print the same settings.
 *
 * Every query typed gets an answer — a result or one error line — whatever the database does:
 *   down, or gone mid-session:  each query tries to connect afresh and shows why it could not (connection
 *                               refused, a timeout); none waits for ever (the pool's acquireTimeoutMs, 30 s)
 *   a query that runs away:     --statement-timeout SECONDS (30; 0 for none). A server gets a CancelRequest;
 *                               the embedded database, which ignores one, is restarted with the sample data
 *   a query that eats memory:   --memory-limit MIB (3072): the embedded database is restarted with one line
 *   a million-row result:       only the 10 rows shown are kept; the rest are counted as they stream past
 *                               (the embedded database restarts on an answer over 256 MiB: it holds it)
 *   a query that wedges PGlite  (a recursive SQL function): detected, and the database restarted
 * Try:      create function f(int) returns int as 'select f($1 + 1)' language sql;   then   select f(1)
 *           with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r
 *
 * Builds on: lib/streams.ts (lesson 02) through lib/pg.ts, our PostgreSQL client.
 */
import { parseCommandLine } from "../lib/args.ts";
import {
  type Key,
  KeyReader,
  NotATerminalError,
  restoreTerminalMode,
  SIGNAL_EXIT_CODES,
  saveTerminalMode,
  setTerminalMode,
  type TerminalMode,
  TerminalModeError,
} from "../lib/cbreak.ts";
import { MAX_TIMER_MS } from "../lib/deadline.ts";
import {
  ConnectOptionsError,
  type Field,
  PgError,
  Pool,
  parseUrl,
  type QueryResult,
  redact,
  resolveOptions,
} from "../lib/pg.ts";
import { startPGliteServer } from "../lib/pglite-server.ts";
import type { Message, Screen, Span } from "../lib/screen.ts";
import { startSpinner } from "../lib/spinner.ts";
import { openTerminalUi, type TerminalUi } from "../lib/terminal-ui.ts";

/** The longest --statement-timeout: what a timer holds, 2,147,483 s (24.8 days). */
const MAX_STATEMENT_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

export const FLAGS = {
  url: {
    kind: "string",
    value: "URL",
    help: "postgres://user:password@host:port/database (default: an embedded PGlite)",
  },
  pool: {
    kind: "int",
    default: 4,
    min: 1,
    max: 100,
    help: "connections in the pool (the embedded database uses 1)",
  },
  "statement-timeout": {
    kind: "number",
    default: 30,
    min: 0,
    max: MAX_STATEMENT_TIMEOUT_SECONDS,
    value: "SECONDS",
    help: "longest a query may run (0: no limit); the embedded database is restarted past it",
  },
  "memory-limit": {
    kind: "int",
    // Above what PGlite takes by itself: ~0.7–0.9 GiB idle, and up to ~2.2 GiB of garbage while a query
    // sleeps (lib/pglite-server.ts says why).
    default: 3072,
    min: 2048,
    max: 1024 * 1024,
    value: "MIB",
    help: "most memory (resident, MiB) this process may take; past it the embedded database is restarted",
  },
  "demo-modes": {
    kind: "boolean",
    help: "see what the program reads in cooked, cbreak and raw mode, in hex; then exit",
  },
  redraw: {
    kind: "boolean",
    help: "redraw every row from the deque on each message (the book's way), not scroll a region",
  },
} as const;

/**
 * Rows of a result shown in its table: 10; the rest are counted, not kept — each query asks the pool for at
 * most this many rows per result (simpleQuery's `maxRows`), so `select` of a million rows holds 10.
 */
export const MAX_TABLE_ROWS = 10;
/**
 * Most one answer of the embedded database may take: 256 MiB. Its thread holds what our client has not yet
 * read, and the console keeps 10 rows of it; past this the database is restarted (lib/pglite-server.ts).
 */
const EMBEDDED_MAX_ANSWER_BYTES = 256 * 1024 * 1024;
/** Widest a table column gets before its values are cut with "…": 40 cells. */
const MAX_COLUMN_WIDTH = 40;
/**
 * Longest delay the demo takes: 2,147,483 s (24.8 days), as a timer holds at most 2^31 − 1 ms — a longer
 * one would fire at once.
 */
export const MAX_DELAY_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
const PROMPT = "sql> ";

// ── Step 1: a database to talk to ─────────────────────────────────────────────────────────────────────

/** The book's shop, small: brands, sizes and a few thousand products, generated at start-up. */
export const SAMPLE_SCHEMA = `
CREATE TABLE brand (brand_id serial PRIMARY KEY, brand_name text NOT NULL);
CREATE TABLE product_size (product_size_id serial PRIMARY KEY, product_size_name text NOT NULL);
CREATE TABLE product (
  product_id serial PRIMARY KEY,
  product_name text NOT NULL,
  brand_id int NOT NULL REFERENCES brand,
  product_size_id int NOT NULL REFERENCES product_size,
  price numeric(8, 2) NOT NULL
);
INSERT INTO brand (brand_name) SELECT 'brand ' || g FROM generate_series(1, 100) g;
INSERT INTO product_size (product_size_name) VALUES ('XS'), ('S'), ('M'), ('L'), ('XL');
INSERT INTO product (product_name, brand_id, product_size_id, price)
  SELECT 'product ' || g, 1 + g % 100, 1 + g % 5, round((5 + (g * 37 % 1000) / 10.0)::numeric, 2)
  FROM generate_series(1, 5000) g;
`;

export interface Database {
  url: string;
  /** One line saying which database this is. */
  description: string;
  poolSize: number;
  /** Resolves when the database takes queries: at once, unless the embedded one is being restarted. */
  ready(): Promise<void>;
  /** Times the embedded database was restarted (always 0 for a server). */
  readonly restarts: number;
  /** Why it was restarted last, one line; null if never. */
  readonly lastRestart: string | null;
  stop(): Promise<void>;
}

/** How far a query may go (from --statement-timeout and --memory-limit). */
export interface QueryLimits {
  /** Longest a query may run; 0: no limit. */
  statementTimeoutMs: number;
  /** Most resident memory of this process, bytes, past which the embedded database is restarted. */
  memoryLimitBytes: number;
}

/**
 * PGlite (PostgreSQL compiled to WebAssembly) with the sample data, served on a free loopback port, so
 * that our own wire-protocol client talks to it exactly as to a real server. It runs in its own thread
 * (lib/pglite-server.ts): PGlite works on the thread that owns it, so on ours `select pg_sleep(3)` — or
 * just starting it — would freeze the keys, the spinner and the screen for as long as it takes.
 *
 * A runaway query cannot be stopped the way a server's is: PGlite ignores `statement_timeout` and
 * CancelRequest, and its thread is busy running the query. So lib/pglite-server.ts watches from our thread:
 * past the statement timeout, past the memory limit, or when PGlite itself fails (a recursive SQL function
 * wedges it), it ends the thread and starts a fresh database with the sample data — anything the user
 * changed is gone — and each query caught in it gets one line that says why.
 */
export async function startEmbeddedDatabase(limits: QueryLimits): Promise<Database> {
  const server = await startPGliteServer(SAMPLE_SCHEMA, {
    statementTimeoutMs: limits.statementTimeoutMs,
    memoryLimitBytes: limits.memoryLimitBytes,
    maxAnswerBytes: EMBEDDED_MAX_ANSWER_BYTES,
  });
  return {
    url: server.url,
    description: `embedded PGlite on 127.0.0.1:${server.port} (tables: brand, product_size, product — 5,000 products)`,
    // PGlite runs one query at a time; more connections would only queue behind each other.
    poolSize: 1,
    ready: () =>
      server.ready().catch((error: Error) => {
        throw new Error(`the embedded database could not be restarted: ${error.message}`);
      }),
    get restarts() {
      return server.restarts;
    },
    get lastRestart() {
      return server.lastRestart?.message ?? null;
    },
    stop: () => server.stop(),
  };
}

/**
 * The database to use — the server at `url`, or the embedded one — with a pool on it, checked with one
 * query. Throws, having stopped whatever it started, if that fails.
 */
export async function openDatabase(
  url: string | undefined,
  poolSize: number,
  limits: QueryLimits,
): Promise<{ database: Database; pool: Pool; version: string }> {
  const database: Database = url
    ? {
        url,
        description: redact(url),
        poolSize,
        ready: async () => {},
        restarts: 0,
        lastRestart: null,
        stop: async () => {},
      }
    : await startEmbeddedDatabase(limits);
  // A server cancels a query that runs too long (queryTimeoutMs sends it a CancelRequest); the embedded
  // database cannot, so its limit is kept by lib/pglite-server.ts instead.
  const pool = new Pool(
    { ...parseUrl(database.url), queryTimeoutMs: url ? limits.statementTimeoutMs : 0 },
    { max: database.poolSize },
  );
  try {
    const { rows } = await pool.query<{ version: string }>("SELECT version() AS version");
    return { database, pool, version: rows[0]?.version.split(",")[0] ?? "" };
  } catch (error) {
    await pool.close();
    await database.stop();
    throw error;
  }
}

// ── Step 2: results as text that fits the screen ──────────────────────────────────────────────────────

/** A value as the table shows it. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "infinity" : value.toISOString();
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString("hex")}`;
  if (typeof value === "object")
    return JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? String(item) : item));
  return String(value);
}

/** Cuts `text` to at most `width` cells, ending in "…" when cut. */
function fit(text: string, width: number): string {
  if (Bun.stringWidth(text) <= width) return text + " ".repeat(width - Bun.stringWidth(text));
  let out = "";
  for (const character of text) {
    if (Bun.stringWidth(out + character) > width - 1) break;
    out += character;
  }
  return `${out}…${" ".repeat(Math.max(0, width - 1 - Bun.stringWidth(out)))}`;
}

/**
 * A compact table of the first rows that fits in `width` cells: the widest columns give way first.
 * Returns its lines (header, rule, rows).
 */
export function formatTable(fields: Field[], rows: Record<string, unknown>[], width: number): string[] {
  if (fields.length === 0) return [];
  const shown = rows
    .slice(0, MAX_TABLE_ROWS)
    .map((row) => fields.map((field) => formatValue(row[field.name])));
  const widths = fields.map((field, column) =>
    Math.min(
      MAX_COLUMN_WIDTH,
      Math.max(Bun.stringWidth(field.name), ...shown.map((cells) => Bun.stringWidth(cells[column]!))),
    ),
  );
  const separators = 3 * (fields.length - 1); // " │ "
  while (widths.reduce((sum, w) => sum + w, 0) + separators > width && Math.max(...widths) > 3) {
    widths[widths.indexOf(Math.max(...widths))]!--;
  }
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => fit(cell, widths[column]!))
      .join(" │ ")
      .trimEnd();
  return [
    line(fields.map((field) => field.name)),
    widths.map((w) => "─".repeat(w)).join("─┼─"),
    ...shown.map(line),
  ];
}

/** The messages for one finished statement: a summary line, then its table. */
export function formatResult(
  number: number,
  result: QueryResult,
  elapsedMs: number,
  width: number,
): Message[] {
  const count = result.rowCount ?? result.rows.length;
  const what = result.fields.length > 0 ? `${count} row${count === 1 ? "" : "s"}` : result.command || "done";
  // The rows not shown were never kept (maxRows): their number is the command tag's count less those shown.
  const hidden = count - Math.min(result.rows.length, MAX_TABLE_ROWS);
  const summary: Span[] = [
    { text: `[#${number}] `, style: { dim: true } },
    { text: `${what} in ${elapsedMs.toFixed(1)} ms`, style: { color: "green" } },
  ];
  const table = formatTable(result.fields, result.rows, width);
  const more = result.fields.length > 0 && hidden > 0 ? [`… ${hidden} more rows`] : [];
  return [summary, ...table, ...more];
}

export function formatError(number: number, error: unknown): Message {
  const text =
    error instanceof PgError
      ? `ERROR ${error.code}: ${error.message}`
      : `ERROR: ${(error as Error).message ?? String(error)}`;
  return [
    { text: `[#${number}] `, style: { dim: true } },
    { text, style: { color: "red" } },
  ];
}

/** The line for a query the embedded database's restart took with it: why, and what that means. */
export function formatRestart(number: number, why: string): Message {
  return [
    { text: `[#${number}] `, style: { dim: true } },
    {
      text: `ERROR: ${why}: the embedded database was restarted with the sample data (changes made since are gone)`,
      style: { color: "red" },
    },
  ];
}

const HELP: Message[] = [
  "Type SQL and press Enter: it runs on the pool while you keep typing; results appear as they finish.",
  "Type a number N (2, 0.5): a task sleeps N seconds, then reports — the book's delay demo.",
  "\\help shows this; \\q, Ctrl+C or Ctrl+D (on an empty line) quits.",
];

// ── Step 3: the console — what each submitted line does ───────────────────────────────────────────────

export class SqlConsole {
  #counter = 0;

  /** `database`: how to wait out, and explain, a restart of the embedded database (none for a server). */
  constructor(
    private readonly screen: Screen,
    private readonly pool: Pool,
    private readonly columns: () => number,
    private readonly database?: Pick<Database, "ready" | "restarts" | "lastRestart">,
  ) {}

  /** Handles one submitted line. Returns false when the user asked to quit. */
  submit(line: string): boolean {
    const text = line.trim();
    if (text === "") return true;
    if (text === "\\q" || text === "\\quit") return false;
    if (text === "\\help" || text === "\\?" || text === "help") {
      for (const message of HELP) this.screen.print(message);
      return true;
    }
    const number = ++this.#counter;
    if (/^\d+(\.\d+)?$/.test(text)) this.#delay(number, Number(text));
    else this.#runSql(number, text);
    return true;
  }

  /** The delay demo: a task that sleeps, then reports; nothing waits for it. */
  #delay(number: number, seconds: number): void {
    if (seconds > MAX_DELAY_SECONDS) {
      this.screen.print([
        { text: `[#${number}] `, style: { dim: true } },
        { text: `a delay is at most ${MAX_DELAY_SECONDS} s (24.8 days)`, style: { color: "red" } },
      ]);
      return;
    }
    this.screen.print([
      { text: `[#${number}] `, style: { dim: true } },
      { text: `sleeping ${seconds} s…`, style: { color: "yellow" } },
    ]);
    setTimeout(() => {
      this.screen.print([
        { text: `[#${number}] `, style: { dim: true } },
        { text: `slept ${seconds} s`, style: { color: "yellow" } },
      ]);
    }, seconds * 1000);
  }

  /**
   * Runs SQL on the pool; the result is printed when it comes, in whatever order that is. Every query gets
   * an answer: its result, or one error line — the server's error, the connect error when the database is
   * down (each query tries to connect afresh: lib/pg/pool.ts), a timeout, or why the embedded database was
   * restarted under it.
   */
  #runSql(number: number, sql: string): void {
    this.screen.print([
      { text: `[#${number}] `, style: { dim: true } },
      { text: sql, style: { color: "cyan" } },
    ]);
    const started = performance.now();
    const restarts = this.database?.restarts ?? 0;
    this.#execute(sql).then(
      (results) => {
        const elapsed = performance.now() - started;
        if (results.length === 0) this.screen.print(`[#${number}] (no statement)`);
        for (const result of results)
          for (const message of formatResult(number, result, elapsed, this.columns()))
            this.screen.print(message);
      },
      (error) => {
        const restarted = this.database && this.database.restarts > restarts;
        this.screen.print(
          restarted
            ? formatRestart(number, this.database!.lastRestart ?? "it failed")
            : formatError(number, error),
        );
      },
    );
  }

  /** Waits out a restart of the embedded database, then runs `sql`, keeping the rows a table shows. */
  async #execute(sql: string): Promise<QueryResult[]> {
    await this.database?.ready();
    return this.pool.simpleQuery(sql, { maxRows: MAX_TABLE_ROWS });
  }
}

// ── Step 4: the three terminal modes, as the program sees them (--demo-modes) ─────────────────────────
//
// Before the console, what it is built on. `--demo-modes` puts the terminal in each mode in turn, with
// `stty` (lib/cbreak's setTerminalMode), and prints every chunk of bytes a read() from stdin returns, in
// hex, the moment it returns:
// - cooked: type `ab`, Backspace, `c`, Enter. Nothing arrives while you type; on Enter, `61 63 0a` — "ac\n".
//   The driver did the editing (and the echo): the program never saw the `b` or the Backspace.
// - cbreak (`stty -icanon -echo`): each key arrives as it is typed, and nothing is echoed — the program
//   would have to draw it. Ctrl+C arrives as no byte at all: the driver turned it into SIGINT (ISIG is
//   still on), which this step catches to end itself. This is where the book reads with read(1).
// - raw (`stty raw -echo`, what Bun's setRawMode(true) sets): Ctrl+C is the byte 03, Enter the byte 0d
//   (no ICRNL to make it 0a), and the program must move to a new line itself (`\r\n`: no output processing).
// In cbreak and raw mode each chunk also goes to a KeyReader, and a loop `await`s `readKey()` — read(1) —
// and prints the key it gets: the three bytes of an arrow come back as one key, `up`; the two of é as
// one character. Each step ends with `q` (in cooked mode, the line `q`); the terminal is given back as it
// was however the demo ends — q, Ctrl+C in cooked mode, SIGTERM, SIGHUP, an error.

const MODE_STEPS: { mode: TerminalMode; intro: string }[] = [
  { mode: "cooked", intro: "1/3 cooked: type ab, Backspace, c, Enter. Then the line q (q, Enter)." },
  { mode: "cbreak", intro: "2/3 cbreak (stty -icanon -echo): type keys, an arrow, é. Ctrl+C or q ends it." },
  { mode: "raw", intro: "3/3 raw (stty raw -echo): type Ctrl+C, Enter, an arrow. q ends it." },
];
const utf8 = new TextDecoder();
const LINE_Q = "q\n";

/**
 * Text in quotes with every invisible character escaped: JSON.stringify escapes C0 controls (`\u0003`) but
 * prints DEL (Backspace's 0x7f), C1 controls and bidi/zero-width marks as they are — invisible, or worse.
 */
function quoted(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `61 63 0a  "ac\n"` — a chunk as bytes in hex, and as text. */
export function describeBytes(bytes: Uint8Array): string {
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  return `${hex}  ${quoted(utf8.decode(bytes))}`;
}

/** A key as the demo names it: `"a"`, `up`, `interrupt`, `paste "…"`. */
export function describeKey(key: Key): string {
  if (key.kind === "text") return quoted(key.text);
  if (key.kind === "paste") return `paste ${quoted(key.text)}`;
  return key.kind;
}

/** Prints a line in any mode: raw mode does no output processing, so `\n` alone would not return. */
const say = (line: string) => process.stdout.write(`${line}\r\n`);

/**
 * One step: the terminal in `mode`, and every chunk a read() returns printed as it arrives. In cooked
 * mode a chunk is a line, and the line `q` ends the step. In cbreak and raw mode the chunks also go to a
 * KeyReader, and a loop awaits `readKey()` — read(1) — and prints each key; the key `q` ends the step, and
 * so does SIGINT in cbreak mode.
 */
function runModeStep(mode: TerminalMode, intro: string, saved: string): Promise<void> {
  // The mode first, then the words: a key typed after them is read in the mode they name.
  setTerminalMode(mode, saved);
  say("");
  say(intro);
  const { promise, resolve } = Promise.withResolvers<void>();
  const keys = new KeyReader();
  const onData = (chunk: Uint8Array) => {
    say(`  read ${chunk.length} byte${chunk.length === 1 ? "" : "s"}: ${describeBytes(chunk)}`);
    if (mode === "cooked" && utf8.decode(chunk) === LINE_Q) resolve();
    if (mode !== "cooked") keys.push(chunk);
  };
  const readKeys = async () => {
    for (let key = await keys.readKey(); key !== null; key = await keys.readKey()) {
      say(`    readKey() → ${describeKey(key)}`);
      if (key.kind === "text" && key.text === "q") resolve();
    }
  };
  const onInterrupt = () => {
    say("  SIGINT: the driver turned Ctrl+C into a signal; no byte arrived");
    resolve();
  };
  process.stdin.on("data", onData);
  if (mode === "cbreak") process.on("SIGINT", onInterrupt);
  if (mode !== "cooked") void readKeys();
  process.stdin.resume();
  return promise.finally(() => {
    keys.end();
    process.stdin.off("data", onData);
    process.off("SIGINT", onInterrupt);
    process.stdin.pause();
  });
}

/** --demo-modes: the three steps; the terminal restored on every way out. Returns the exit code. */
async function demoModes(): Promise<number> {
  const saved = saveTerminalMode();
  const restore = () => restoreTerminalMode(saved);
  const exitAfterRestore = (code: number) => () => {
    restore();
    process.exit(code);
  };
  // Outside cbreak's step, SIGINT (Ctrl+C in cooked mode) ends the demo as it would end any program.
  const handlers = [
    ["SIGINT", exitAfterRestore(SIGNAL_EXIT_CODES.SIGINT)],
    ["SIGTERM", exitAfterRestore(SIGNAL_EXIT_CODES.SIGTERM)],
    ["SIGHUP", exitAfterRestore(SIGNAL_EXIT_CODES.SIGHUP)],
    ["exit", restore],
  ] as const;
  say("What the program reads from the terminal, in hex, as each read() returns.");
  try {
    for (const [event, handler] of handlers) process.on(event, handler);
    for (const { mode, intro } of MODE_STEPS) {
      // Our SIGINT handler steps aside while cbreak's step owns Ctrl+C.
      if (mode === "cbreak") process.off("SIGINT", handlers[0][1]);
      await runModeStep(mode, intro, saved);
      if (mode === "cbreak") process.on("SIGINT", handlers[0][1]);
    }
  } finally {
    restore();
    for (const [event, handler] of handlers) process.off(event, handler);
  }
  say("");
  say("Terminal restored. The console itself reads in raw mode, one key at a time.");
  return 0;
}

// ── Step 5: the program — connect, switch the terminal, loop over keys, always restore ────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    FLAGS,
    "bun scripts/03-sql-client.ts [--url URL] [--pool N] [--statement-timeout SECONDS] [--memory-limit MIB] [--redraw] [--demo-modes]",
  );
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  // A --url that cannot be read (not postgres://, port=abc, sslmode=maybe) is a usage error, found before
  // anything starts; only a URL that can be tried and then fails is a failure to connect (exit 1).
  if (flags.url !== undefined) {
    try {
      resolveOptions(flags.url);
    } catch (error) {
      if (!(error instanceof ConnectOptionsError)) throw error;
      console.error(`error: --url: ${error.message} (see --help)`);
      return 2;
    }
  }
  if (!process.stdin.isTTY) {
    console.error(
      "error: this console reads keys from a terminal, but stdin is not one (is it piped?). Run it in a terminal.",
    );
    return 2;
  }
  if (flags["demo-modes"]) {
    try {
      return await demoModes();
    } catch (error) {
      if (!(error instanceof TerminalModeError)) throw error;
      console.error(`error: cannot switch the terminal's mode: ${error.message}`);
      return 1;
    }
  }

  // A spinner while the database starts or the connection is made. Ctrl+C (or SIGTERM) meanwhile ends the
  // wait at once with 130 (143); whatever was being started is closed behind us.
  const progress = startSpinner(
    flags.url ? `Connecting to ${redact(flags.url)}` : "Starting the embedded database (PGlite)",
  );
  const limits: QueryLimits = {
    statementTimeoutMs: flags["statement-timeout"] * 1000,
    memoryLimitBytes: flags["memory-limit"] * 1024 * 1024,
  };
  const connecting = openDatabase(flags.url, flags.pool, limits);
  const outcome = await Promise.race([connecting, progress.interrupted]).catch((error: Error) => error);
  if (typeof outcome === "number") {
    progress.stop("Interrupted.", "failed");
    connecting.then(
      ({ pool, database }) => pool.close().then(() => database.stop()),
      () => {},
    );
    return outcome;
  }
  if (outcome instanceof Error) {
    progress.stop(`Cannot connect: ${outcome.message}`, "failed");
    return 1;
  }
  const { database, pool, version } = outcome;
  progress.stop("Database ready");

  let ui: TerminalUi;
  try {
    ui = openTerminalUi(PROMPT, { redrawEveryRow: flags.redraw });
  } catch (error) {
    await pool.close();
    await database.stop();
    if (!(error instanceof NotATerminalError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }
  // The screen takes over the terminal from here: what the spinner said is said again in its area.
  const { screen } = ui;
  screen.print([{ text: `Connected to ${database.description}: ${version}.`, style: { bold: true } }]);
  screen.print("Type SQL, or a number of seconds to sleep, or \\help. \\q quits.");

  const sqlConsole = new SqlConsole(screen, pool, () => process.stdout.columns ?? 80, database);
  for await (const line of ui.lines) if (!sqlConsole.submit(line)) break;
  ui.close();
  await Promise.race([pool.close(), Bun.sleep(1000)]);
  await database.stop();
  return ui.lines.exitCode; // 130 after Ctrl+C, as if SIGINT had ended us; else 0
}

if (import.meta.main) process.exit(await main());

/* A real session (80×24, embedded database), typed: the GROUP BY query, `2`, `select 41 + 1 as answer`
   (which came back while the delay slept), and a query on a table that does not exist:

Connected to embedded PGlite on 127.0.0.1:34139 (tables: brand, product_size,
product — 5,000 products): PostgreSQL 18.6 (PGlite 0.5.16) on
wasm32-unknown-emscripten.
Type SQL, or a number of seconds to sleep, or \help. \q quits.
[#1] select brand_name, count(*), round(avg(price), 2) as avg_price from product
 join brand using (brand_id) group by 1 order by 3 desc limit 3
[#1] 3 rows in 40.9 ms
brand_name │ count │ avg_price
───────────┼───────┼──────────
brand 28   │ 50    │ 59.90
brand 55   │ 50    │ 59.80
brand 82   │ 50    │ 59.70
[#2] sleeping 2 s…
[#3] select 41 + 1 as answer
[#3] 1 row in 2.5 ms
answer
──────
42
[#2] slept 2 s
[#4] select * from nope
[#4] ERROR 42P01: relation "nope" does not exist

sql> select p█

   And `bun scripts/03-sql-client.ts --demo-modes` (typed: a, b, Backspace, c, Enter, q, Enter; then a, ↑,
   é, Ctrl+C; then Ctrl+C, Enter, ↑, q). The `ac` and `q` lines are the driver's echo, in cooked mode only:

What the program reads from the terminal, in hex, as each read() returns.

1/3 cooked: type ab, Backspace, c, Enter. Then the line q (q, Enter).
ac
  read 3 bytes: 61 63 0a  "ac\n"
q
  read 2 bytes: 71 0a  "q\n"

2/3 cbreak (stty -icanon -echo): type keys, an arrow, é. Ctrl+C or q ends it.
  read 1 byte: 61  "a"
    readKey() → "a"
  read 3 bytes: 1b 5b 41  "\u001b[A"
    readKey() → up
  read 2 bytes: c3 a9  "é"
    readKey() → "é"
  SIGINT: the driver turned Ctrl+C into a signal; no byte arrived

3/3 raw (stty raw -echo): type Ctrl+C, Enter, an arrow. q ends it.
  read 1 byte: 03  "\u0003"
    readKey() → interrupt
  read 1 byte: 0d  "\r"
    readKey() → enter
  read 3 bytes: 1b 5b 41  "\u001b[A"
    readKey() → up
  read 1 byte: 71  "q"
    readKey() → "q"

Terminal restored. The console itself reads in raw mode, one key at a time.
*/
