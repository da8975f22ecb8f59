/**
 * lib/pglite-server.ts — an embedded PostgreSQL (PGlite: PostgreSQL compiled to WebAssembly) served on a
 * free loopback port from its own thread, so that a program's event loop never waits for it.
 *
 * PGlite runs queries on the thread that owns it, and a query runs to its end before that thread does
 * anything else: `select pg_sleep(3)` on the main thread would stop every timer, key and socket for 3 s.
 * Here PGlite and `PGLiteSocketServer` (which speaks PostgreSQL's wire protocol on a TCP port) live in a
 * Bun Worker — a thread of the same process. The program talks to it over loopback exactly as to a real
 * server; a slow query ties up only the worker. Being a thread, it cannot outlive the process: whatever way
 * the program ends, the database ends with it.
 */

/**
 * What the worker is asked to do: start (once), then stop. `setupSql`: SQL run before the port opens (e.g. a
 * sample schema); empty for none.
 */
export type PGliteServerRequest = { kind: "start"; setupSql: string } | { kind: "stop" };

/** What the worker answers: its port, or why it could not start; and, when asked to stop, that it did. */
export type PGliteServerReply =
  | { kind: "listening"; port: number }
  | { kind: "failed"; message: string }
  | { kind: "stopped" };

export interface PGliteServer {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (PGlite does no authentication). */
  url: string;
  port: number;
  /**
   * Closes the port and the database, waiting at most `graceMs` for that (a query may be running); then ends
   * the thread and resolves once it has ended, its port closed. Calling it again returns the same promise.
   */
  stop(graceMs?: number): Promise<void>;
}

/** How long `stop()` lets the worker close the database before ending the thread: 1 s. */
export const STOP_GRACE_MS = 1000;

/**
 * Starts PGlite in a worker, runs `setupSql`, and resolves once its port accepts connections. Rejects with
 * the database's error message when PGlite cannot start or the setup SQL fails.
 */
export function startPGliteServer(setupSql = ""): Promise<PGliteServer> {
  const worker = new Worker(new URL("./pglite-server.worker.ts", import.meta.url));
  const { promise, resolve, reject } = Promise.withResolvers<PGliteServer>();
  let stopped: Promise<void> | null = null;
  const stoppedReply = Promise.withResolvers<void>();
  worker.onmessage = (event: MessageEvent<PGliteServerReply>) => {
    const reply = event.data;
    if (reply.kind === "listening") {
      resolve({
        url: `postgres://postgres@127.0.0.1:${reply.port}/postgres`,
        port: reply.port,
        stop: (graceMs = STOP_GRACE_MS) => {
          stopped ??= stopWorker(worker, stoppedReply.promise, graceMs);
          return stopped;
        },
      });
    } else if (reply.kind === "failed") {
      worker.terminate();
      reject(new Error(reply.message));
    } else {
      stoppedReply.resolve();
    }
  };
  worker.onerror = (event) => {
    worker.terminate();
    reject(new Error(event.message || "the database thread failed"));
  };
  worker.postMessage({ kind: "start", setupSql } satisfies PGliteServerRequest);
  return promise;
}

async function stopWorker(worker: Worker, stoppedReply: Promise<void>, graceMs: number): Promise<void> {
  const ended = new Promise<void>((resolve) => worker.addEventListener("close", () => resolve()));
  worker.postMessage({ kind: "stop" } satisfies PGliteServerRequest);
  let timer: Timer | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([stoppedReply, deadline]);
  clearTimeout(timer);
  // A query still running cannot be interrupted from outside: end the thread, and with it its sockets.
  worker.terminate();
  await ended;
}
