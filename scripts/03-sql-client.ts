/**
 * Lesson 03 — A non-blocking SQL console: cbreak input, the deque screen, our own PostgreSQL client
 *
 * What it teaches: a program that keeps listening to you while it works. Type a query and press Enter:
 * it runs on a connection pool, and you can type the next one at once; results appear above the input line
 * as they finish, in whatever order that is. Type a number N and a task sleeps N seconds, then reports —
 * the book's "delay" demo — while queries keep coming back.
 *
 * Three terminal modes:
 *   cooked (canonical) — the terminal driver collects a line, handles Backspace, and hands it over on Enter;
 *   raw — every byte goes to the program at once: no echo, no editing, Ctrl+C is just the byte 0x03;
 *   cbreak — like raw, but Ctrl+C still becomes SIGINT.
 * Why `readLine` cannot do this: in cooked mode the program sees nothing until Enter, and anything it
 * prints lands in the middle of what you are typing. So we switch the terminal to character-at-a-time mode
 * (Bun gives us raw; lib/cbreak.ts plays the driver's part for Ctrl+C), keep the line being typed
 * ourselves (lib/line-editor.ts), and split the screen (lib/screen.ts): the last row is the input line, and
 * everything above is a scroll region fed from a deque of messages ("max elements = number of rows"). New
 * results scroll the region; the input line is never touched by them. lib/terminal-ui.ts runs the loop
 * that joins them — key → line editor → input line redrawn → Enter hands over a line — for lessons 03 and 06.
 *
 * Non-blocking needs one more thing: nothing on our thread may run long. A network database is no
 * trouble (we only wait for its answer), but the embedded one, PGlite, runs queries on the thread that owns
 * it — `select pg_sleep(3)` there would freeze the keys for 3 s. So it runs in a Worker thread
 * (lib/pglite-server.ts) and serves the wire protocol on a loopback port, like any server.
 *
 * The book's version put the terminal in cbreak mode and never gave it back, and redrew the whole deque on
 * every message. Here every way out (\q, Ctrl+C, Ctrl+D, SIGTERM, a crash) restores the terminal, and a
 * message is written once at the bottom of the region. Leaving with \q or Ctrl+D exits 0; Ctrl+C exits 130
 * (as a shell reports a program that SIGINT ended); SIGTERM exits 143. The database thread ends with us.
 *
 *   asyncio (book)                           here
 *   tty.setcbreak(sys.stdin)                 enterCbreak() (raw mode) — and its restore(), always
 *   await read(1) per character              `for await (const line of ui.lines)` (keys → line editor)
 *   asyncpg.create_pool(…)                   new Pool(url, { max }) from lib/pg.ts (lesson material too)
 *   asyncio.create_task(run_query(…))        pool.simpleQuery(sql).then(print) — not awaited
 *   loop.run_in_executor(…) for blocking     a Worker thread for the embedded database
 *
 * Run it:   bun scripts/03-sql-client.ts                        # an embedded PGlite database, offline
 *           bun scripts/03-sql-client.ts --url postgres://user:pass@localhost/db --pool 4
 * Try:      select * from product limit 5        then, quickly:   3    and    select count(*) from product
 *           select pg_sleep(3)   then keep typing: the keys still echo, and a `1` typed meanwhile reports
 *           first (the embedded pool has one connection, so a query queues behind the sleep; with a real
 *           server and --pool 4, a fast query typed meanwhile comes back first too)
 *
 * Builds on: lib/streams.ts (lesson 02) through lib/pg.ts, our PostgreSQL client.
 */
import { parseCommandLine } from "../lib/args.ts";
import {
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
  type QueryResult,
  redact,
  resolveOptions,
} from "../lib/pg.ts";
import { startPGliteServer } from "../lib/pglite-server.ts";
import type { Message, Screen, Span } from "../lib/screen.ts";
import { startSpinner } from "../lib/spinner.ts";
import { openTerminalUi, type TerminalUi } from "../lib/terminal-ui.ts";

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
  "demo-modes": {
    kind: "boolean",
    help: "see what the program reads in cooked, cbreak and raw mode, in hex; then exit",
  },
  redraw: {
    kind: "boolean",
    help: "redraw every row from the deque on each message (the book's way), not scroll a region",
  },
} as const;

/** Rows of a result shown in its table: 10; the rest are counted. */
export const MAX_TABLE_ROWS = 10;
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
  stop(): Promise<void>;
}

/**
 * PGlite (PostgreSQL compiled to WebAssembly) with the sample data, served on a free loopback port, so
 * that our own wire-protocol client talks to it exactly as to a real server. It runs in its own thread
 * (lib/pglite-server.ts): PGlite works on the thread that owns it, so on ours `select pg_sleep(3)` — or
 * just starting it — would freeze the keys, the spinner and the screen for as long as it takes.
 */
export async function startEmbeddedDatabase(): Promise<Database> {
  const server = await startPGliteServer(SAMPLE_SCHEMA);
  return {
    url: server.url,
    description: `embedded PGlite on 127.0.0.1:${server.port} (tables: brand, product_size, product — 5,000 products)`,
    // PGlite runs one query at a time; more connections would only queue behind each other.
    poolSize: 1,
    stop: () => server.stop(),
  };
}

/**
 * The database to use — the server at `url`, or the embedded one — with a pool on it, checked with one
 * query. Throws, having stopped whatever it started, if that fails.
 */
async function openDatabase(
  url: string | undefined,
  poolSize: number,
): Promise<{ database: Database; pool: Pool; version: string }> {
  const database = url
    ? { url, description: redact(url), poolSize, stop: async () => {} }
    : await startEmbeddedDatabase();
  const pool = new Pool(database.url, { max: database.poolSize });
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
  const summary: Span[] = [
    { text: `[#${number}] `, style: { dim: true } },
    { text: `${what} in ${elapsedMs.toFixed(1)} ms`, style: { color: "green" } },
  ];
  const table = formatTable(result.fields, result.rows, width);
  const more =
    result.rows.length > MAX_TABLE_ROWS ? [`… ${result.rows.length - MAX_TABLE_ROWS} more rows`] : [];
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

const HELP: Message[] = [
  "Type SQL and press Enter: it runs on the pool while you keep typing; results appear as they finish.",
  "Type a number N (2, 0.5): a task sleeps N seconds, then reports — the book's delay demo.",
  "\\help shows this; \\q, Ctrl+C or Ctrl+D (on an empty line) quits.",
];

// ── Step 3: the console — what each submitted line does ───────────────────────────────────────────────

export class SqlConsole {
  #counter = 0;

  constructor(
    private readonly screen: Screen,
    private readonly pool: Pool,
    private readonly columns: () => number,
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

  /** Runs SQL on the pool; the result is printed when it comes, in whatever order that is. */
  #runSql(number: number, sql: string): void {
    this.screen.print([
      { text: `[#${number}] `, style: { dim: true } },
      { text: sql, style: { color: "cyan" } },
    ]);
    const started = performance.now();
    this.pool.simpleQuery(sql).then(
      (results) => {
        const elapsed = performance.now() - started;
        if (results.length === 0) this.screen.print(`[#${number}] (no statement)`);
        for (const result of results)
          for (const message of formatResult(number, result, elapsed, this.columns()))
            this.screen.print(message);
      },
      (error) => this.screen.print(formatError(number, error)),
    );
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
// Each step ends with `q` (in cooked mode, the line `q`); the terminal is given back as it was however
// the demo ends — q, Ctrl+C in cooked mode, SIGTERM, SIGHUP, an error.

const MODE_STEPS: { mode: TerminalMode; intro: string; ends: (bytes: Uint8Array) => boolean }[] = [
  {
    mode: "cooked",
    intro: "1/3 cooked: type ab, Backspace, c, Enter. Then the line q (q, Enter).",
    ends: (bytes) => latin1.decode(bytes) === "q\n",
  },
  {
    mode: "cbreak",
    intro: "2/3 cbreak (stty -icanon -echo): type keys, an arrow, é. Ctrl+C or q ends it.",
    ends: (bytes) => bytes.includes(0x71), // q
  },
  {
    mode: "raw",
    intro: "3/3 raw (stty raw -echo): type Ctrl+C, Enter, an arrow. q ends it.",
    ends: (bytes) => bytes.includes(0x71),
  },
];
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();

/** `61 63 0a  "ac\n"` — a chunk as bytes in hex, and as text. */
export function describeBytes(bytes: Uint8Array): string {
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  return `${hex}  ${JSON.stringify(utf8.decode(bytes))}`;
}

/** Prints a line in any mode: raw mode does no output processing, so `\n` alone would not return. */
const say = (line: string) => process.stdout.write(`${line}\r\n`);

/**
 * One step: the terminal in `mode`, every chunk read printed as it arrives, until the step's end — or,
 * in cbreak mode, SIGINT.
 */
function runModeStep(step: (typeof MODE_STEPS)[number], saved: string): Promise<void> {
  // The mode first, then the words: a key typed after them is read in the mode they name.
  setTerminalMode(step.mode, saved);
  say("");
  say(step.intro);
  const { promise, resolve } = Promise.withResolvers<void>();
  const onData = (chunk: Uint8Array) => {
    say(`  read ${chunk.length} byte${chunk.length === 1 ? "" : "s"}: ${describeBytes(chunk)}`);
    if (step.ends(chunk)) resolve();
  };
  const onInterrupt = () => {
    say("  SIGINT: the driver turned Ctrl+C into a signal; no byte arrived");
    resolve();
  };
  process.stdin.on("data", onData);
  if (step.mode === "cbreak") process.on("SIGINT", onInterrupt);
  process.stdin.resume();
  return promise.finally(() => {
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
    for (const step of MODE_STEPS) {
      // Our SIGINT handler steps aside while cbreak's step owns Ctrl+C.
      if (step.mode === "cbreak") process.off("SIGINT", handlers[0][1]);
      await runModeStep(step, saved);
      if (step.mode === "cbreak") process.on("SIGINT", handlers[0][1]);
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
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/03-sql-client.ts [--url URL] [--pool N]");
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
  const connecting = openDatabase(flags.url, flags.pool);
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
  progress.stop(`Connected: ${database.description}`);

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

  const sqlConsole = new SqlConsole(screen, pool, () => process.stdout.columns ?? 80);
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
*/
