/**
 * lib/pglite-server.worker.ts — the thread side of lib/pglite-server.ts: PGlite and its socket server.
 * Messages in: `{ kind: "start", setupSql, port, maxAnswerBytes }`, then `{ kind: "stop" }`. Messages out:
 * see PGliteServerReply — among them `busy` and `idle` around every piece of protocol the database runs,
 * `broken` when PGlite itself fails, and `answer-limit` when an answer outgrows `maxAnswerBytes`, so that the
 * main thread can time a query and end a wedged or runaway database.
 */
import type { PGlite } from "@electric-sql/pglite";
import type { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import type { PGliteServerReply, PGliteServerRequest } from "./pglite-server.ts";

declare const self: Worker;

let db: PGlite | null = null;
let server: PGLiteSocketServer | null = null;

function reply(message: PGliteServerReply): void {
  self.postMessage(message);
}

/** Frontend message types that the backend must answer with a ReadyForQuery (manual: "Message Flow"). */
const QUERY = 0x51; // 'Q'
const SYNC = 0x53; // 'S'
/** What a Query may end with instead: CopyInResponse, the server then waits for COPY data. */
const READY_FOR_QUERY = 0x5a; // 'Z'
const COPY_IN_RESPONSE = 0x47; // 'G'
/**
 * The type of the last backend message in a stream of chunks, read from the framing alone (type byte,
 * Int32 length) — bodies are skipped, so a response of any size costs nothing to follow.
 */
class LastMessageType {
  type = 0;
  #header = new Uint8Array(5);
  #headerBytes = 0;
  #bodyLeft = 0;

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; ) {
      if (this.#bodyLeft > 0) {
        const skipped = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= skipped;
        i += skipped;
        continue;
      }
      this.#header[this.#headerBytes++] = chunk[i++]!;
      if (this.#headerBytes === 5) {
        const view = new DataView(this.#header.buffer);
        this.type = this.#header[0]!;
        this.#bodyLeft = view.getInt32(1) - 4;
        this.#headerBytes = 0;
      }
    }
  }
}

/** What the main thread is told when a query's answer stops short of its ReadyForQuery. */
const STOPPED_SHORT =
  "it stopped answering in the middle of a query, and answers nothing since (PGlite does so after a PANIC, such as a recursive SQL function running out of stack)";

/**
 * Tells the main thread when the database is working (a query runs to its end before this thread does
 * anything else, so the main thread must be the one to time it), and when PGlite fails. A query's SQL
 * errors come back as ErrorResponse messages. PGlite itself failing looks otherwise: after a recursive SQL
 * function (a PANIC, `ERRORDATA_STACK_SIZE exceeded`, in PGlite's own log) the query's answer stops after
 * its RowDescription, with no ReadyForQuery — the client would wait for ever — and every later query gets
 * no answer at all (measured); or a call throws. Either is reported as `broken`, and the main thread ends
 * the thread and starts a fresh database.
 */
function reportActivity(database: PGlite, maxAnswerBytes: number): void {
  const execute = database.execProtocolRawStream.bind(database);
  database.execProtocolRawStream = async (message, options) => {
    reply({ kind: "busy" });
    const last = new LastMessageType();
    let answerBytes = 0;
    try {
      await execute(message, {
        ...options,
        onRawData: (data) => {
          answerBytes += data.length;
          if (maxAnswerBytes > 0 && answerBytes > maxAnswerBytes) {
            // Dropped, not queued: the main thread ends this thread on hearing of it.
            if (answerBytes - data.length <= maxAnswerBytes) reply({ kind: "answer-limit" });
            return;
          }
          last.push(data);
          options.onRawData(data);
        },
      });
      const answered =
        last.type === READY_FOR_QUERY || (message[0] === QUERY && last.type === COPY_IN_RESPONSE);
      if ((message[0] === QUERY || message[0] === SYNC) && !answered)
        reply({ kind: "broken", message: STOPPED_SHORT });
    } catch (error) {
      reply({ kind: "broken", message: (error as Error).message ?? String(error) });
      throw error;
    } finally {
      reply({ kind: "idle" });
    }
  };
}

async function start(setupSql: string, port: number, maxAnswerBytes: number): Promise<void> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-socket"),
  ]);
  db = await PGlite.create();
  if (setupSql) await db.exec(setupSql);
  reportActivity(db, maxAnswerBytes);
  server = new PGLiteSocketServer({ db, host: "127.0.0.1", port });
  await server.start();
  reply({ kind: "listening", port: Number(server.getServerConn().split(":").pop()) });
}

async function stop(): Promise<void> {
  await server?.stop();
  await db?.close();
  reply({ kind: "stopped" });
}

self.onmessage = (event: MessageEvent<PGliteServerRequest>) => {
  const request = event.data;
  if (request.kind === "start") {
    start(request.setupSql, request.port, request.maxAnswerBytes).catch((error) =>
      reply({ kind: "failed", message: (error as Error).message ?? String(error) }),
    );
  } else {
    stop().catch(() => reply({ kind: "stopped" }));
  }
};
