/**
 * lib/pglite-server.ts — an embedded PostgreSQL (PGlite: PostgreSQL compiled to WebAssembly) served on a
 * free loopback port from its own thread, so that a program's event loop never waits for it — and kept
 * from wedging or eating the machine.
 *
 * PGlite runs queries on the thread that owns it, and a query runs to its end before that thread does
 * anything else: `select pg_sleep(3)` on the main thread would stop every timer, key and socket for 3 s.
 * Here PGlite and `PGLiteSocketServer` (which speaks PostgreSQL's wire protocol on a TCP port) live in a
 * Bun Worker — a thread of the same process. The program talks to it over loopback exactly as to a real
 * server; a slow query ties up only the worker. Being a thread, it cannot outlive the process: whatever way
 * the program ends, the database ends with it.
 *
 * What a real server has and PGlite lacks, the main thread supplies. PGlite has no timers (measured:
 * `SET statement_timeout = '500ms'` is accepted, and `SELECT pg_sleep(2)` still runs 2 s) and its socket
 * server ignores CancelRequest; nothing can interrupt a query from inside the thread, which is busy running
 * it. So the worker says when the database starts and ends a piece of work (`busy`, `idle`), and the main
 * thread times it: past `statementTimeoutMs`, or with the process's resident memory past
 * `memoryLimitBytes`, it ends the thread (Worker.terminate() stops even a WebAssembly loop: measured
 * ~0.2 s, and the thread's memory is given back) and starts a fresh database on the same port, with the
 * setup SQL again. The same when an answer outgrows `maxAnswerBytes`, or when PGlite itself fails (a PANIC, such as `ERRORDATA_STACK_SIZE exceeded`
 * after a recursive SQL function, after which it answers nothing again). Connections to the old database
 * are closed with the thread; a client reconnects to the same URL.
 *
 * The memory limit is on the whole process, garbage included, and PGlite makes plenty: it reads the clock
 * through a JavaScript import that allocates a BigInt per call (emscripten's `clock_time_get`), and
 * `pg_sleep` reads it in a busy loop — ~0.4 GB/s of garbage that the thread, busy, collects only at ~2.2 GB
 * (measured). A limit must sit above that; lesson 03's is 3 GiB. (The same busy thread is why
 * `statement_timeout` never fires: emscripten's timers are JavaScript timers, and its event loop waits for
 * the query to end.)
 */

/**
 * What the worker is asked to do: start (once) on `port` (0: any free one), then stop. `setupSql`: SQL run
 * before the port opens (e.g. a sample schema); empty for none.
 */
export type PGliteServerRequest =
  | { kind: "start"; setupSql: string; port: number; maxAnswerBytes: number }
  | { kind: "stop" };

/**
 * What the worker answers: its port, or why it could not start; that the database started (`busy`) or
 * ended (`idle`) a piece of protocol; that PGlite failed (`broken`); that an answer passed
 * `maxAnswerBytes` (`answer-limit`); and, when asked to stop, that it did.
 */
export type PGliteServerReply =
  | { kind: "listening"; port: number }
  | { kind: "failed"; message: string }
  | { kind: "busy" }
  | { kind: "idle" }
  | { kind: "broken"; message: string }
  | { kind: "answer-limit" }
  | { kind: "stopped" };

export interface PGliteServerOptions {
  /** Longest the database may work on one query, milliseconds (default 0: no limit). */
  statementTimeoutMs?: number;
  /**
   * Most resident memory the process may reach while the database runs, bytes (default 0: no limit). Set
   * it above what the database takes at rest (PGlite: ~0.7–0.9 GiB, and ~2.2 GiB of garbage while a query
   * sleeps); a limit the process never gets under is not acted on.
   */
  memoryLimitBytes?: number;
  /**
   * Most bytes one query's answer may take, bytes (default 0: no limit). The database makes an answer
   * faster than a client takes it, and the thread holds what is not sent yet: a million 1 KB rows made it
   * hold ~1 GB, and ending a thread that holds that much took up to 3 s, growing all the while (measured).
   * Past the limit the rest of the answer is dropped, not held, and the database restarted (~0.1 s).
   */
  maxAnswerBytes?: number;
  /** Called once per restart, as it begins (the old database is gone; the new one is starting). */
  onRestart?: (restart: PGliteRestart) => void;
}

/** Why the database was restarted. */
export type PGliteRestartCause = "statement-timeout" | "memory-limit" | "answer-limit" | "failed";

export interface PGliteRestart {
  cause: PGliteRestartCause;
  /** One line: what happened (`a query ran past the 30 s statement timeout`). */
  message: string;
}

export interface PGliteServer {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (PGlite does no authentication); the same after a restart. */
  url: string;
  port: number;
  /** Restarts so far. */
  readonly restarts: number;
  /** The latest restart, or null. */
  readonly lastRestart: PGliteRestart | null;
  /** Resolves once the database serves: at once, unless it is restarting. Rejects if a restart failed. */
  ready(): Promise<void>;
  /**
   * Closes the port and the database, waiting at most `graceMs` for that (a query may be running); then ends
   * the thread and resolves once it has ended, its port closed. Calling it again returns the same promise.
   */
  stop(graceMs?: number): Promise<void>;
}

/** How long `stop()` lets the worker close the database before ending the thread: 1 s. */
export const STOP_GRACE_MS = 1000;
/** How often the process's resident memory is read while the database works: every 50 ms. */
export const MEMORY_CHECK_INTERVAL_MS = 50;

const MiB = 1024 * 1024;

/**
 * Starts PGlite in a worker, runs `setupSql`, and resolves once its port accepts connections. Rejects with
 * the database's error message when PGlite cannot start or the setup SQL fails. `options` bound each query
 * (see PGliteServerOptions); past a bound the database is restarted as the file header says.
 */
export async function startPGliteServer(
  setupSql = "",
  options: PGliteServerOptions = {},
): Promise<PGliteServer> {
  const server = new SupervisedServer(setupSql, options);
  await server.ready();
  return server;
}

/** One worker thread: its port, and what settles when it says it stopped and when it has ended. */
interface Thread {
  worker: Worker;
  port: number;
  stoppedReply: Promise<void>;
  ended: Promise<void>;
}

class SupervisedServer implements PGliteServer {
  url = "";
  port = 0;
  restarts = 0;
  lastRestart: PGliteRestart | null = null;
  readonly #setupSql: string;
  readonly #options: PGliteServerOptions;
  #thread: Thread | null = null;
  #ready: Promise<void>;
  #restarting = false;
  #stopped: Promise<void> | null = null;
  #statementTimer: ReturnType<typeof setTimeout> | undefined;
  #memoryTimer: ReturnType<typeof setInterval> | undefined;

  constructor(setupSql: string, options: PGliteServerOptions) {
    this.#setupSql = setupSql;
    this.#options = options;
    this.#ready = this.#spawn(0);
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.#stopped ??= (async () => {
      this.#disarm();
      await this.#ready.catch(() => {});
      if (this.#thread) await stopThread(this.#thread, graceMs);
      this.#thread = null;
    })();
    return this.#stopped;
  }

  /** Starts a worker on `port`; it becomes the current one once it listens. */
  async #spawn(port: number): Promise<void> {
    const thread = await startThread(
      this.#setupSql,
      port,
      this.#options.maxAnswerBytes ?? 0,
      (worker, reply) => {
        if (worker === this.#thread?.worker) this.#onActivity(reply);
      },
    );
    if (this.#stopped) {
      thread.worker.terminate();
      return;
    }
    this.#thread = thread;
    this.port = thread.port;
    this.url = `postgres://postgres@127.0.0.1:${thread.port}/postgres`;
    this.#watchMemory();
  }

  #onActivity(reply: PGliteServerReply): void {
    if (reply.kind === "busy") this.#startStatementTimer();
    else if (reply.kind === "idle") clearTimeout(this.#statementTimer);
    else if (reply.kind === "broken") this.#restart("failed", `the database failed (${reply.message})`);
    else if (reply.kind === "answer-limit") {
      const limit = Math.round((this.#options.maxAnswerBytes ?? 0) / MiB);
      this.#restart("answer-limit", `a query's answer passed ${limit} MiB`);
    }
  }

  /** The database started on a query: past `statementTimeoutMs`, it is restarted. */
  #startStatementTimer(): void {
    const { statementTimeoutMs = 0 } = this.#options;
    clearTimeout(this.#statementTimer);
    if (statementTimeoutMs <= 0) return;
    this.#statementTimer = setTimeout(
      () =>
        this.#restart(
          "statement-timeout",
          `a query ran past the ${statementTimeoutMs / 1000} s statement timeout`,
        ),
      statementTimeoutMs,
    );
  }

  /**
   * Reads the process's resident memory every MEMORY_CHECK_INTERVAL_MS while a database runs — not only
   * while it computes: a result is made faster than a client takes it, so the thread may hold a whole
   * answer for the client long after the query itself ended (measured: a million 1 KB rows, made in ~3 s,
   * held for 20 s more). The limit is acted on once the process has been under it: a limit below what a
   * fresh database takes by itself would otherwise restart it every MEMORY_CHECK_INTERVAL_MS for ever.
   */
  #watchMemory(): void {
    const { memoryLimitBytes = 0 } = this.#options;
    clearInterval(this.#memoryTimer);
    if (memoryLimitBytes <= 0) return;
    let beenUnder = false;
    this.#memoryTimer = setInterval(() => {
      const resident = process.memoryUsage.rss();
      beenUnder ||= resident <= memoryLimitBytes;
      if (resident <= memoryLimitBytes || !beenUnder) return;
      this.#restart(
        "memory-limit",
        `a query took the process's memory to ${Math.round(resident / MiB)} MiB, past the limit of ${Math.round(memoryLimitBytes / MiB)} MiB`,
      );
    }, MEMORY_CHECK_INTERVAL_MS);
    this.#memoryTimer.unref(); // the database's sockets keep the process alive, not its watchdog
  }

  #disarm(): void {
    clearTimeout(this.#statementTimer);
    clearInterval(this.#memoryTimer);
  }

  /** Ends the current thread and starts a fresh database, with the setup SQL, on the same port. */
  #restart(cause: PGliteRestartCause, message: string): void {
    if (this.#restarting || this.#stopped || !this.#thread) return;
    this.#disarm();
    this.#restarting = true;
    this.restarts++;
    this.lastRestart = { cause, message };
    const old = this.#thread;
    this.#thread = null;
    this.#ready = (async () => {
      old.worker.terminate();
      await old.ended;
      // The ended thread's memory (gigabytes, after a runaway query) goes back only when the collector
      // runs: run it now, before the fresh database asks for ~1 GiB of its own.
      Bun.gc(true);
      await this.#spawn(this.port); // the same URL: clients reconnect where they were
    })().finally(() => {
      this.#restarting = false;
    });
    this.#ready.catch(() => {}); // ready() reports it
    this.#options.onRestart?.(this.lastRestart);
  }
}

/** A worker started on `port`; its activity replies go to `onActivity`. */
function startThread(
  setupSql: string,
  port: number,
  maxAnswerBytes: number,
  onActivity: (worker: Worker, reply: PGliteServerReply) => void,
): Promise<Thread> {
  const worker = new Worker(new URL("./pglite-server.worker.ts", import.meta.url));
  const ended = new Promise<void>((resolve) => worker.addEventListener("close", () => resolve()));
  const stoppedReply = Promise.withResolvers<void>();
  const { promise, resolve, reject } = Promise.withResolvers<Thread>();
  let listening = false;
  worker.onmessage = (event: MessageEvent<PGliteServerReply>) => {
    const reply = event.data;
    if (reply.kind === "listening") {
      listening = true;
      resolve({ worker, port: reply.port, stoppedReply: stoppedReply.promise, ended });
    } else if (reply.kind === "failed") {
      worker.terminate();
      reject(new Error(reply.message));
    } else if (reply.kind === "stopped") {
      stoppedReply.resolve();
    } else {
      onActivity(worker, reply);
    }
  };
  worker.onerror = (event) => {
    const message = event.message || "the database thread failed";
    // Once serving, an uncaught error in the thread is the database failing.
    if (listening) return onActivity(worker, { kind: "broken", message });
    worker.terminate();
    reject(new Error(message));
  };
  worker.postMessage({ kind: "start", setupSql, port, maxAnswerBytes } satisfies PGliteServerRequest);
  return promise;
}

async function stopThread(thread: Thread, graceMs: number): Promise<void> {
  thread.worker.postMessage({ kind: "stop" } satisfies PGliteServerRequest);
  let timer: Timer | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([thread.stoppedReply, deadline]);
  clearTimeout(timer);
  // A query still running cannot be interrupted from outside: end the thread, and with it its sockets.
  thread.worker.terminate();
  await thread.ended;
}
