/**
 * Lesson 02 — The same HTTP client on StreamReader / StreamWriter
 *
 * What it teaches: lesson 01 reacted to callbacks and had to keep its own buffer until EOF. Here
 * `lib/streams.ts` keeps the buffer, and we simply *await* what we need next, in the order the protocol
 * defines it:
 *
 *   await reader.readUntil("\n")   the status line, then each header line, until the empty line
 *   await reader.readExactly(n)    a body of Content-Length bytes
 *   await reader.readUntil("\n") + readExactly(size + 2)   each chunk of a chunked body
 *   writer.write(request)          queues and returns at once: not a coroutine (asyncio's write() is not either)
 *   await writer.drain()           the brake: waits while more than 64 KiB are queued (lesson 04 shows why)
 *
 * Because we read exactly one response and know where it ends, the connection can stay open for the next
 * request (keep-alive). And because nothing blocks, several URLs are fetched at the same time — the
 * asyncio `gather` of the book is `Promise.all`. `HttpClient` keeps a small pool per origin (up to
 * `maxConnectionsPerOrigin`, 6 as browsers and undici do): a request takes an idle connection or opens one
 * up to the cap, else waits its turn — so a slow response holds one connection, not the whole origin.
 *
 * Never trust the peer: a head line is read with `readUntil`, which fails as soon as the line passes
 * the limit (an endless header costs 8 KiB, not the whole deadline); a connection with bytes nobody asked
 * for is closed, never reused — at once if they came after a response, when the pool next looks at it if
 * they arrived while it sat idle — so an unrequested response cannot pass for the answer to the next
 * request.
 *
 * Run it:
 *   bun scripts/02-http-streams.ts                     # offline: two local servers, four URLs at once
 *   bun scripts/02-http-streams.ts --trace             # …and a line as each write and each await returns
 *   bun scripts/02-http-streams.ts http://example.com/ https://example.org/ --timeout 5 --body
 *   bun scripts/02-http-streams.ts --help
 * Poke it: `nc -l 9000` in a second terminal, then `bun scripts/02-http-streams.ts http://127.0.0.1:9000/
 * --trace`; answer `HTTP/1.1 200 OK`, `Content-Length: 3`, an empty line — each Enter ends one
 * `await reader.readUntil("\n")` — then `abc`, Enter (nc sends a line only then): `readExactly(3)`
 * returns, and the client is done without waiting for you to close nc (lesson 01 had to wait for EOF).
 *
 * Builds on: lesson 01 (the same requests and parsing rules, from lib/http.ts) and lib/streams.ts
 * (asyncio.open_connection ↔ openConnection; StreamReader.readline ↔ readLine, readuntil ↔ readUntil,
 * readexactly ↔ readExactly; StreamWriter.write ↔ write, drain ↔ drain). The pool is lib/connection-pool.ts; the demo server, the command line and
 * the printout are shared with lesson 01 (lib/http-demo-server.ts, lib/args.ts, lib/http-cli.ts).
 */
import { parseCommandLine } from "../lib/args.ts";
import { concat } from "../lib/bytes.ts";
import {
  ConnectionPool,
  DEFAULT_MAX_CONNECTIONS_PER_ORIGIN,
  PoolClosedError,
  PoolWaitTimeoutError,
} from "../lib/connection-pool.ts";
import { Deadline } from "../lib/deadline.ts";
import { GetRequestCache } from "../lib/get-request-cache.ts";
import {
  addHeaderLine,
  bodyFraming,
  buildGetRequest,
  DEFAULT_TIMEOUT_MS,
  HttpError,
  type HttpHeaders,
  type HttpResponse,
  HttpTimeoutError,
  headLineTooLong,
  keepsAlive,
  MAX_HEAD_LINE_BYTES,
  MAX_HEADER_COUNT,
  NoResponseError,
  newHeaders,
  parseChunkSize,
  parseStatusLine,
  parseTarget,
  ShortBodyError,
  type Target,
  tooManyHeaders,
} from "../lib/http.ts";
import { countUrls, formatResponse, HTTP_CLIENT_FLAGS, URL_ARGUMENTS } from "../lib/http-cli.ts";
import { startDemoServer } from "../lib/http-demo-server.ts";
import { showControls } from "../lib/sanitize.ts";
import {
  ConnectionLostError,
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  type StreamReader,
  type StreamWriter,
  WRITE_HIGH_WATER,
} from "../lib/streams.ts";

/** Largest body we accept: 64 MiB; a bigger one is an error, not an out-of-memory. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Read size while reading a body that ends at EOF: 64 KiB. */
const READ_CHUNK_BYTES = 64 * 1024;
/**
 * The reader's limit: a head line's. `readUntil` fails the moment this many bytes sit buffered without a
 * newline. (Bodies are read with `readExactly`/`read`, which the limit does not bound.)
 */
const READER_LIMIT = MAX_HEAD_LINE_BYTES;

const latin1 = new TextDecoder("latin1");
const CR = 0x0d;
const LF = 0x0a;
/** The separator head lines are read up to: `\n` (a `\r` before it is dropped afterwards). */
const LINE_END = new Uint8Array([LF]);

// ── Step 1: read one response from a StreamReader ─────────────────────────────────────────────────────

/** What reading a response needs of a StreamReader: its three awaits (a traced one has them too). */
type ResponseReader = Pick<StreamReader, "readUntil" | "readExactly" | "read">;

/**
 * Reads one line of the head, without its `\r\n` (or bare `\n`, RFC 9112 §2.2). `readUntil` — not
 * `readLine`, which would skip an over-long line to its end — so an endless line fails at the limit.
 */
async function readHeadLine(reader: ResponseReader, what: string): Promise<string> {
  let line: Uint8Array;
  try {
    line = await reader.readUntil(LINE_END);
  } catch (error) {
    if (error instanceof LimitOverrunError) throw headLineTooLong(what);
    if (!(error instanceof IncompleteReadError)) throw error;
    if (error.partial.length === 0 && what === "status line") throw new NoResponseError();
    const seen = latin1.decode(error.partial.subarray(0, 80));
    throw new HttpError(
      "truncated",
      `response ended inside the ${what}, after ${error.partial.length} bytes: ${JSON.stringify(seen)}`,
    );
  }
  const text = latin1.decode(line);
  return text.slice(0, line.length >= 2 && line[line.length - 2] === CR ? -2 : -1);
}

/**
 * Reads one whole response. Interim 1xx responses are skipped. Throws `HttpError` (one line) for a
 * malformed head, a bad chunk size, a body over {@link MAX_BODY_BYTES}, or a body shorter than announced;
 * a connection error as it comes from the reader.
 */
export async function readResponse(reader: ResponseReader): Promise<HttpResponse> {
  for (;;) {
    const { version, status, reason } = parseStatusLine(await readHeadLine(reader, "status line"));
    const headers = newHeaders();
    for (let count = 0; ; count++) {
      const line = await readHeadLine(reader, "header line");
      if (line === "") break;
      if (count === MAX_HEADER_COUNT) throw tooManyHeaders();
      addHeaderLine(headers, line);
    }
    if (status >= 100 && status < 200) continue;
    return { version, status, reason, headers, body: await readBody(reader, status, headers) };
  }
}

async function readBody(reader: ResponseReader, status: number, headers: HttpHeaders): Promise<Uint8Array> {
  const framing = bodyFraming(status, headers);
  switch (framing.kind) {
    case "none":
      return new Uint8Array(0);
    case "length":
      checkBodySize(framing.length);
      return readExactlyOrShort(reader, framing.length, 0, framing.length);
    case "chunked":
      return readChunkedBody(reader, headers);
    case "eof":
      return readBodyToEof(reader);
  }
}

function checkBodySize(bytes: number): void {
  if (bytes > MAX_BODY_BYTES)
    throw new HttpError("too-large", `body of ${bytes} bytes is over the limit of ${MAX_BODY_BYTES} bytes`);
}

/** `readExactly`, with an early EOF turned into "body shorter than announced". */
async function readExactlyOrShort(
  reader: ResponseReader,
  n: number,
  alreadyRead: number,
  expected: number | "chunked",
): Promise<Uint8Array> {
  try {
    return await reader.readExactly(n);
  } catch (error) {
    if (error instanceof IncompleteReadError)
      throw new ShortBodyError(alreadyRead + error.partial.length, expected);
    throw error;
  }
}

/** `size\r\n` data `\r\n` … `0\r\n`, then trailer fields (added to `headers`) and an empty line. */
async function readChunkedBody(reader: ResponseReader, headers: HttpHeaders): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const size = parseChunkSize(await readHeadLine(reader, "chunk size line"));
    if (size === 0) break;
    checkBodySize(total + size);
    const chunk = await readExactlyOrShort(reader, size + 2, total, "chunked");
    if (chunk[size] !== CR || chunk[size + 1] !== LF)
      throw new HttpError("malformed", "chunk not followed by CRLF");
    chunks.push(chunk.subarray(0, size));
    total += size;
  }
  for (
    let line = await readHeadLine(reader, "trailer");
    line !== "";
    line = await readHeadLine(reader, "trailer")
  ) {
    addHeaderLine(headers, line);
  }
  return concat(chunks, total);
}

async function readBodyToEof(reader: ResponseReader): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = await reader.read(READ_CHUNK_BYTES);
    if (chunk.length === 0) return concat(chunks, total);
    total += chunk.length;
    checkBodySize(total);
    chunks.push(chunk);
  }
}

/** Where `--trace` sends one line per await, as it returns. */
export type Trace = (line: string) => void;

/** Most bytes of what was read shown in a trace line: 40. */
const TRACE_SHOWN_BYTES = 40;

const utf8Text = new TextDecoder();

/** `"HTTP/1.1 200 OK\r\n"` — quoted, escaped, cut at {@link TRACE_SHOWN_BYTES}, safe for a terminal. */
function shown(bytes: Uint8Array): string {
  const text = JSON.stringify(utf8Text.decode(bytes.subarray(0, TRACE_SHOWN_BYTES)));
  return showControls(bytes.length > TRACE_SHOWN_BYTES ? `${text}…` : text);
}

/** `reader`, with a trace line each time one of its awaits returns: what it waited for, and got. */
function tracedReader(reader: StreamReader, trace: Trace): ResponseReader {
  const got = (bytes: Uint8Array) => `${bytes.length} byte${bytes.length === 1 ? "" : "s"} ${shown(bytes)}`;
  return {
    async readUntil(separator) {
      const line = await reader.readUntil(separator);
      trace(`await reader.readUntil("\\n") → ${got(line)}`);
      return line;
    },
    async readExactly(n) {
      const bytes = await reader.readExactly(n);
      trace(`await reader.readExactly(${n}) → ${got(bytes)}`);
      return bytes;
    },
    async read(n) {
      const bytes = await reader.read(n);
      trace(`await reader.read(${n}) → ${bytes.length === 0 ? "EOF" : got(bytes)}`);
      return bytes;
    },
  };
}

// ── Step 2: one request on one connection, with a deadline ────────────────────────────────────────────

export interface GetOptions {
  /**
   * Give up after this many milliseconds (default 10 s): one deadline for the whole request — the wait for
   * a pooled connection, connecting, sending, and reading the response to its last byte — not one per stage.
   */
  timeoutMs?: number;
  /** Hears of each write and each await of the exchange as it returns (`--trace`). */
  trace?: Trace;
}

/** A request's one deadline: what it was given, and the moment (performance.now()) it runs out. */
interface RequestDeadline {
  timeoutMs: number;
  endsAt: number;
}

function requestDeadline(timeoutMs: number): RequestDeadline {
  return { timeoutMs, endsAt: performance.now() + timeoutMs };
}

/**
 * Milliseconds left before `deadline`, at least 1 (a timer of 0 would fire before the work it bounds began).
 * Rounded to whole milliseconds: a connection taken at once gets exactly `timeoutMs` again, so its
 * Deadline re-arms by refresh() (lib/deadline.ts) rather than a new timer — at most 0.5 ms late.
 */
function timeLeft(deadline: RequestDeadline): number {
  return Math.max(1, Math.round(deadline.endsAt - performance.now()));
}

/** One connection: the stream pair, and the deadline of the request it is carrying. */
interface Connection {
  reader: StreamReader;
  writer: StreamWriter;
  /** Past it, the connection is aborted — which fails the pending read. */
  deadline: Deadline;
}

/** Connects to the target; past the request's deadline, gives up with a timeout error. */
async function connect(target: Target, requestDeadline: RequestDeadline): Promise<Connection> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HttpTimeoutError(requestDeadline.timeoutMs)),
      timeLeft(requestDeadline),
    );
  });
  try {
    const [reader, writer] = await Promise.race([
      openConnection(target.host, target.port, { tls: target.tls, limit: READER_LIMIT }),
      deadline,
    ]);
    return { reader, writer, deadline: new Deadline(() => writer.abort()) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends a GET on `connection` and reads the response. Past the request's deadline the connection is
 * aborted, which makes the pending read fail; that failure is reported as the timeout it is. On any failure
 * the connection is aborted: what is left in it cannot be trusted.
 */
async function exchange(
  connection: Connection,
  request: Uint8Array,
  deadline: RequestDeadline,
  trace?: Trace,
) {
  connection.deadline.arm(timeLeft(deadline));
  try {
    // write() is not a coroutine: it queues the request and returns at once (Bun's socket.write() takes
    // only what the kernel has room for; the writer keeps the rest and sends it as room appears).
    // drain() is the brake: it returns at once while at most 64 KiB wait, else when the kernel has taken
    // enough. A GET is a few hundred bytes, so here it never waits — but it is the pattern for every write,
    // and a request with a big body would wait here instead of piling up in memory.
    connection.writer.write(request);
    trace?.(`writer.write(request): ${request.length} bytes, returned at once (not awaited)`);
    await connection.writer.drain();
    trace?.(
      `await writer.drain() → ${connection.writer.bufferedBytes} bytes still queued (it waits only above ${WRITE_HIGH_WATER / 1024} KiB)`,
    );
    return await readResponse(trace ? tracedReader(connection.reader, trace) : connection.reader);
  } catch (error) {
    connection.writer.abort();
    throw connection.deadline.expired ? new HttpTimeoutError(deadline.timeoutMs) : error;
  } finally {
    connection.deadline.disarm();
  }
}

function closeConnection(connection: Connection): void {
  connection.deadline.clear();
  connection.writer.close();
}

/**
 * Whether an idle connection can carry the next request. Not if the server closed it, and not if it holds
 * bytes: nobody asked for them, and read as the next response they would desynchronise every answer after.
 */
function isReusable(connection: Connection): boolean {
  const { reader, writer } = connection;
  return !writer.isClosing() && reader.bufferedBytes === 0 && !reader.atEof() && reader.exception() === null;
}

const utf8 = new TextEncoder();

/** GETs `url` on a fresh connection that is closed afterwards (`Connection: close`). */
export async function httpGet(url: string, options: GetOptions = {}): Promise<HttpResponse> {
  const target = parseTarget(url);
  const deadline = requestDeadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const connection = await connect(target, deadline);
  try {
    const request = utf8.encode(buildGetRequest(target, false));
    return await exchange(connection, request, deadline, options.trace);
  } finally {
    closeConnection(connection);
  }
}

// ── Step 3: a keep-alive client — a small pool of connections per origin ──────────────────────────────

export interface HttpClientOptions {
  /** Most connections open to one origin at a time (default 6, as browsers and undici). */
  maxConnectionsPerOrigin?: number;
}

/**
 * An HTTP/1.1 client that keeps connections open and reuses them: up to `maxConnectionsPerOrigin` per
 * origin, handed out first come first served when all are busy. A GET on a reused connection that the
 * server closed while it sat idle is retried once on a fresh one (GET is safe to repeat).
 */
export class HttpClient {
  readonly maxConnectionsPerOrigin: number;
  readonly #pool: ConnectionPool<Connection>;
  readonly #requests = new GetRequestCache();
  #closed = false;

  constructor(options: HttpClientOptions = {}) {
    this.maxConnectionsPerOrigin = options.maxConnectionsPerOrigin ?? DEFAULT_MAX_CONNECTIONS_PER_ORIGIN;
    this.#pool = new ConnectionPool({
      maxPerOrigin: this.maxConnectionsPerOrigin,
      isReusable,
      discard: closeConnection,
    });
  }

  async get(url: string, options: GetOptions = {}): Promise<HttpResponse> {
    if (this.#closed) throw new Error("HttpClient is closed");
    const { target, request } = this.#requests.get(url);
    const deadline = requestDeadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    try {
      return await this.#getOnce(target, request, deadline, false, options.trace);
    } catch (error) {
      // The server may have closed (or reset) the idle connection just as we sent: retry once on a new one,
      // within what is left of the same deadline.
      if (!(error instanceof StaleConnectionError)) throw error;
      return await this.#getOnce(target, request, deadline, true, options.trace);
    }
  }

  /** Closes every idle connection and fails the requests waiting for one; requests under way finish. */
  close(): void {
    this.#closed = true;
    this.#pool.close();
  }

  async #getOnce(
    target: Target,
    request: Uint8Array,
    deadline: RequestDeadline,
    fresh: boolean,
    trace?: Trace,
  ) {
    // The deadline covers the wait for a connection, too, and connecting: each stage gets what is left.
    // An idle connection at hand is taken at once; else the pool opens one, or queues us for one.
    const idle = fresh ? undefined : this.#pool.takeIdle(target.origin);
    let lease: { connection: Connection; reused: boolean };
    try {
      lease = idle
        ? { connection: idle, reused: true }
        : await this.#pool.acquire(target.origin, () => connect(target, deadline), {
            fresh,
            maxWaitMs: timeLeft(deadline),
          });
    } catch (error) {
      if (error instanceof PoolClosedError) throw new Error("HttpClient is closed");
      throw error instanceof PoolWaitTimeoutError ? new HttpTimeoutError(deadline.timeoutMs) : error;
    }
    const { connection, reused } = lease;
    let response: HttpResponse;
    try {
      response = await exchange(connection, request, deadline, trace);
    } catch (error) {
      this.#pool.release(target.origin, connection, false);
      const stale = reused && (error instanceof NoResponseError || error instanceof ConnectionLostError);
      throw stale ? new StaleConnectionError(error as Error) : error;
    }
    // Bytes left after the response were not asked for: such a connection is not reused.
    const reusable = keepsAlive(response) && connection.reader.bufferedBytes === 0 && !this.#closed;
    this.#pool.release(target.origin, connection, reusable);
    return response;
  }
}

/** A reused connection turned out closed: the request may be retried on a fresh one. */
class StaleConnectionError extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}

// ── Step 4: the command line — several URLs at once ───────────────────────────────────────────────────

const USAGE = "bun scripts/02-http-streams.ts [URL…] [--timeout SECONDS] [--body] [--trace]";

export const FLAGS = {
  ...HTTP_CLIENT_FLAGS,
  trace: {
    kind: "boolean",
    help: "print a line for each write and each await (readUntil, readExactly, …) as it returns",
  },
} as const;

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, USAGE, URL_ARGUMENTS);
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  let urls = flags.positionals;
  // With no URL: two local servers, i.e. two origins. On each, the slow /chunked and a fast path are asked
  // for at once: each gets its own pooled connection, so the fast one finishes first.
  const demos = urls.length === 0 ? [startDemoServer(), startDemoServer()] : [];
  if (demos.length > 0) {
    console.log(
      `no URL given: fetching four URLs at once from two local demo servers: ${demos.map((demo) => demo.url.host).join(" and ")}` +
        (flags.body ? "" : " (add --body to see the bodies)"),
    );
    urls = demos.flatMap((demo, index) =>
      [`/chunked`, `/${"ab"[index]}`].map((path) => new URL(path, demo.url).href),
    );
  }
  const timeoutMs = flags.timeout * 1000;
  const client = new HttpClient();
  const started = performance.now();
  // Start every request, then print each as it completes: the book's `asyncio.as_completed`.
  // --trace: each request is #1, #2, … so that the interleaving of their awaits can be followed.
  if (flags.trace) for (const [index, url] of urls.entries()) console.log(`#${index + 1} GET ${url}`);
  const traceOf = (index: number) =>
    flags.trace ? (line: string) => console.log(`  #${index + 1} · ${line}`) : undefined;
  const results = urls.map(async (url, index) => {
    const begun = performance.now();
    try {
      const response = await client.get(url, { timeoutMs, trace: traceOf(index) });
      const elapsed = (performance.now() - begun).toFixed(1);
      console.log(`[${elapsed} ms] ${formatResponse(url, response, flags.body)}`);
      return true;
    } catch (error) {
      console.error(`[${(performance.now() - begun).toFixed(1)} ms] ${url}: ${(error as Error).message}`);
      return false;
    }
  });
  const succeeded = await Promise.all(results);
  console.log(`${countUrls(urls.length)} in ${(performance.now() - started).toFixed(1)} ms`);
  client.close();
  for (const demo of demos) demo.stop(true);
  return succeeded.every(Boolean) ? 0 : 1;
}

if (import.meta.main) process.exit(await main());

/* A real run (bun scripts/02-http-streams.ts). On each origin, /a (or /b) and the slow /chunked (~25 ms:
   the server pauses between chunks) were asked for at once; each got its own pooled connection, so the fast
   ones finished first (before the pool, they waited their turn behind /chunked: all four took ~24 ms):

no URL given: fetching four URLs at once from two local demo servers: 127.0.0.1:33333 and 127.0.0.1:44411 (add --body to see the bodies)
[2.5 ms] http://127.0.0.1:33333/a → 200 OK
  content-type: text/plain; charset=utf-8
  date: Fri, 04 Dec 2026 01:42:02 GMT
  content-length: 54
  (54 bytes of body)
[2.6 ms] http://127.0.0.1:44411/b → 200 OK
  …
[23.2 ms] http://127.0.0.1:33333/chunked → 200 OK
  content-type: text/plain; charset=utf-8
  date: Fri, 04 Dec 2026 01:42:02 GMT
  transfer-encoding: chunked
  (19 bytes of body)
[22.3 ms] http://127.0.0.1:44411/chunked → 200 OK
  …
4 URLs in 23.5 ms

   And the Poke it (`nc -l 18700` in the other terminal; each line typed there, then Enter):

$ bun scripts/02-http-streams.ts http://127.0.0.1:18700/ --trace
#1 GET http://127.0.0.1:18700/
  #1 · writer.write(request): 111 bytes, returned at once (not awaited)
  #1 · await writer.drain() → 111 bytes still queued (it waits only above 64 KiB)
  #1 · await reader.readUntil("\n") → 16 bytes "HTTP/1.1 200 OK\n"
  #1 · await reader.readUntil("\n") → 18 bytes "Content-Length: 3\n"
  #1 · await reader.readUntil("\n") → 1 byte "\n"
  #1 · await reader.readExactly(3) → 3 bytes "abc"
[2706.5 ms] http://127.0.0.1:18700/ → 200 OK
  content-length: 3
  (3 bytes of body)
1 URL in 2706.9 ms
*/
