/**
 * Lesson 02 — The same HTTP client on StreamReader / StreamWriter
 *
 * What it teaches: lesson 01 reacted to callbacks and had to keep its own buffer until EOF. Here
 * `lib/streams.ts` keeps the buffer, and we simply *await* what we need next, in the order the protocol
 * defines it:
 *
 *   await reader.readLine()        the status line, then each header line, until the empty line
 *   await reader.readExactly(n)    a body of Content-Length bytes
 *   await reader.readLine() + readExactly(size + 2)   each chunk of a chunked body
 *   writer.write(request)          never blocks, never loses bytes (lib/streams queues what Bun's write() refuses)
 *
 * Because we read exactly one response and know where it ends, the connection can stay open for the next
 * request (keep-alive): `HttpClient` keeps one connection per origin and reuses it. And because nothing
 * blocks, several URLs are fetched at the same time — the asyncio `gather` of the book is `Promise.all`.
 *
 * Run it:
 *   bun scripts/02-http-streams.ts                     # offline: two local servers, four URLs at once
 *   bun scripts/02-http-streams.ts http://example.com/ https://example.org/ --timeout 5 --body
 * Poke it: `nc -l 9000` in a second terminal, then `bun scripts/02-http-streams.ts http://127.0.0.1:9000/`;
 * answer `HTTP/1.1 200 OK`, `Content-Length: 3`, an empty line, `abc` — the client returns as soon as the
 * third byte arrives, without waiting for you to close nc (lesson 01 had to wait for EOF).
 *
 * Builds on: lesson 01 (same requests and parsing rules, from lib/http.ts; its demo server) and
 * lib/streams.ts (asyncio.open_connection ↔ openConnection; StreamReader.readline ↔ readLine).
 */
import {
  addHeaderLine,
  bodyFraming,
  buildGetRequest,
  HttpError,
  type HttpResponse,
  MAX_HEAD_LINE_BYTES,
  MAX_HEADER_COUNT,
  NoResponseError,
  parseChunkSize,
  parseStatusLine,
  parseTarget,
  shortBodyError,
  type Target,
} from "../lib/http.ts";
import {
  ConnectionLostError,
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  type StreamReader,
  type StreamWriter,
} from "../lib/streams.ts";
import { DEFAULT_TIMEOUT_MS, formatResponse, joinChunks, parseArgs, startDemoServer } from "./01-http-raw.ts";

/** Largest body we accept: 64 MiB; a bigger one is an error, not an out-of-memory. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Read size while reading a body that ends at EOF: 64 KiB. */
const READ_CHUNK_BYTES = 64 * 1024;

const latin1 = new TextDecoder("latin1");

// ── Step 1: read one response from a StreamReader ─────────────────────────────────────────────────────

/** Reads one CRLF (or LF) line of the head, without its terminator. */
async function readHeadLine(reader: StreamReader, what: string): Promise<string> {
  let line: Uint8Array;
  try {
    line = await reader.readLine();
  } catch (error) {
    if (error instanceof LimitOverrunError) throw new HttpError(`${what} longer than ${reader.limit} bytes`);
    throw error;
  }
  if (line.length === 0 && what === "status line") throw new NoResponseError();
  return headLineText(line, what);
}

function headLineText(line: Uint8Array, what: string): string {
  if (line.length === 0 || line[line.length - 1] !== 0x0a)
    throw new HttpError(`response ended inside the ${what}`);
  if (line.length > MAX_HEAD_LINE_BYTES)
    throw new HttpError(`${what} longer than ${MAX_HEAD_LINE_BYTES} bytes`);
  const text = latin1.decode(line);
  return text.slice(0, text.endsWith("\r\n") ? -2 : -1);
}

/**
 * Reads one whole response. Interim 1xx responses are skipped. Throws `HttpError` (one line) for a
 * malformed head, a bad chunk size, a body over {@link MAX_BODY_BYTES}, or a body shorter than announced;
 * a connection error as it comes from the reader.
 */
export async function readResponse(reader: StreamReader): Promise<HttpResponse> {
  for (;;) {
    const { version, status, reason } = parseStatusLine(await readHeadLine(reader, "status line"));
    const headers: Record<string, string> = {};
    for (let count = 0; ; count++) {
      const line = await readHeadLine(reader, "header line");
      if (line === "") break;
      if (count === MAX_HEADER_COUNT) throw new HttpError(`more than ${MAX_HEADER_COUNT} header fields`);
      addHeaderLine(headers, line);
    }
    if (status >= 100 && status < 200) continue;
    return { version, status, reason, headers, body: await readBody(reader, status, headers) };
  }
}

async function readBody(
  reader: StreamReader,
  status: number,
  headers: Record<string, string>,
): Promise<Uint8Array> {
  const framing = bodyFraming(status, headers);
  switch (framing.kind) {
    case "none":
      return new Uint8Array(0);
    case "length":
      checkBodySize(framing.length);
      return readExactlyOrShort(reader, framing.length, 0);
    case "chunked":
      return readChunkedBody(reader, headers);
    case "eof":
      return readBodyToEof(reader);
  }
}

function checkBodySize(bytes: number): void {
  if (bytes > MAX_BODY_BYTES)
    throw new HttpError(`body of ${bytes} bytes is over the limit of ${MAX_BODY_BYTES} bytes`);
}

/** `readExactly`, with an early EOF turned into "body shorter than announced". */
async function readExactlyOrShort(reader: StreamReader, n: number, alreadyRead: number): Promise<Uint8Array> {
  try {
    return await reader.readExactly(n);
  } catch (error) {
    if (error instanceof IncompleteReadError)
      throw shortBodyError(alreadyRead + error.partial.length, alreadyRead + n);
    throw error;
  }
}

/** `size\r\n` data `\r\n` … `0\r\n`, then trailer fields (added to `headers`) and an empty line. */
async function readChunkedBody(reader: StreamReader, headers: Record<string, string>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const size = parseChunkSize(await readHeadLine(reader, "chunk size line"));
    if (size === 0) break;
    checkBodySize(total + size);
    const chunk = await readExactlyOrShort(reader, size + 2, total);
    if (chunk[size] !== 0x0d || chunk[size + 1] !== 0x0a) throw new HttpError("chunk not followed by CRLF");
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
  return joinChunks(chunks, total);
}

async function readBodyToEof(reader: StreamReader): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = await reader.read(READ_CHUNK_BYTES);
    if (chunk.length === 0) return joinChunks(chunks, total);
    total += chunk.length;
    checkBodySize(total);
    chunks.push(chunk);
  }
}

/** Whether the connection may carry another request after this response (RFC 9112 §9.3). */
function canReuse(response: HttpResponse): boolean {
  const connection = (response.headers.connection ?? "").toLowerCase();
  if (connection.includes("close")) return false;
  if (bodyFraming(response.status, response.headers).kind === "eof") return false;
  return response.version === "HTTP/1.1" || connection.includes("keep-alive");
}

// ── Step 2: one request on one connection, with a deadline ────────────────────────────────────────────

export interface GetOptions {
  /** Give up after this many milliseconds (default 10 s). */
  timeoutMs?: number;
}

interface Connection {
  reader: StreamReader;
  writer: StreamWriter;
  /** The request deadline: one timer per connection, re-armed for each request (cheaper than a new one). */
  deadline: ReturnType<typeof setTimeout> | null;
  deadlineMs: number;
  busy: boolean;
  timedOut: boolean;
}

function timeoutError(timeoutMs: number): HttpError {
  return new HttpError(`timed out after ${timeoutMs / 1000} s`);
}

/** Connects to the target; past `timeoutMs`, gives up with a timeout error. */
async function connect(target: Target, timeoutMs: number): Promise<Connection> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError(timeoutMs)), timeoutMs);
  });
  try {
    const [reader, writer] = await Promise.race([
      openConnection(target.host, target.port, { tls: target.tls }),
      deadline,
    ]);
    return { reader, writer, deadline: null, deadlineMs: 0, busy: false, timedOut: false };
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the request's deadline: past it, the connection is aborted (which fails the pending read). */
function armDeadline(connection: Connection, timeoutMs: number): void {
  connection.busy = true;
  connection.timedOut = false;
  if (connection.deadline && connection.deadlineMs === timeoutMs) {
    connection.deadline.refresh();
    return;
  }
  if (connection.deadline) clearTimeout(connection.deadline);
  connection.deadlineMs = timeoutMs;
  connection.deadline = setTimeout(() => {
    if (!connection.busy) return; // it went off between requests: nothing to time out
    connection.timedOut = true;
    connection.writer.abort();
  }, timeoutMs);
  // The socket keeps the process alive while a response is awaited; an idle connection's timer should not.
  connection.deadline.unref();
}

/**
 * Sends a GET on `connection` and reads the response. Past `timeoutMs` the connection is aborted, which
 * makes the pending read fail; that failure is reported as the timeout it is.
 */
async function exchange(connection: Connection, request: Uint8Array, timeoutMs: number) {
  armDeadline(connection, timeoutMs);
  try {
    connection.writer.writeShared(request);
    // One request per connection at a time: nothing else will join this write, so send it now.
    connection.writer.flushNow();
    return await readResponse(connection.reader);
  } catch (error) {
    connection.writer.abort();
    throw connection.timedOut ? timeoutError(timeoutMs) : error;
  } finally {
    connection.busy = false;
  }
}

const utf8 = new TextEncoder();

function closeConnection(connection: Connection): void {
  if (connection.deadline) clearTimeout(connection.deadline);
  connection.writer.close();
}

/** GETs `url` on a fresh connection that is closed afterwards (`Connection: close`). */
export async function httpGet(url: string, options: GetOptions = {}): Promise<HttpResponse> {
  const target = parseTarget(url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const connection = await connect(target, timeoutMs);
  const response = await exchange(connection, utf8.encode(buildGetRequest(target, false)), timeoutMs);
  closeConnection(connection);
  return response;
}

// ── Step 3: a keep-alive client — one reusable connection per origin ──────────────────────────────────

/** Per origin: its idle connection, and the requests waiting for their turn on it. */
interface Origin {
  idle: Connection | null;
  busy: boolean;
  waiting: (() => void)[];
}

/** How many parsed URLs HttpClient remembers: 256 (a client GETs the same few URLs over and over). */
const TARGET_CACHE_SIZE = 256;

/**
 * An HTTP/1.1 client that keeps one connection per origin open and reuses it. Requests to one origin take
 * turns on its connection; requests to different origins run at once. A GET on a reused connection that
 * the server closed while it sat idle is retried once on a fresh one (GET is safe to repeat).
 */
export class HttpClient {
  readonly #origins = new Map<string, Origin>();
  /** Parsed URLs and their encoded keep-alive requests, by URL. */
  readonly #targets = new Map<string, { target: Target; request: Uint8Array }>();
  #closed = false;

  async get(url: string, options: GetOptions = {}): Promise<HttpResponse> {
    if (this.#closed) throw new Error("HttpClient is closed");
    const { target, request } = this.#target(url);
    const origin = this.#origin(target.origin);
    if (origin.busy) await new Promise<void>((resolve) => origin.waiting.push(resolve));
    origin.busy = true;
    try {
      return await this.#getInTurn(target, request, origin, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    } finally {
      const next = origin.waiting.shift();
      if (next) next();
      else origin.busy = false;
    }
  }

  /** Closes every idle connection. Requests under way finish; later `get()` calls throw. */
  close(): void {
    this.#closed = true;
    for (const origin of this.#origins.values()) if (origin.idle) closeConnection(origin.idle);
    this.#origins.clear();
  }

  async #getInTurn(
    target: Target,
    request: Uint8Array,
    origin: Origin,
    timeoutMs: number,
  ): Promise<HttpResponse> {
    const reused = origin.idle;
    origin.idle = null;
    if (reused && !reused.writer.isClosing()) {
      try {
        return this.#keepOrClose(await exchange(reused, request, timeoutMs), reused, origin);
      } catch (error) {
        // The server may have closed (or reset) the idle connection just as we sent: retry once on a new one.
        if (!(error instanceof NoResponseError || error instanceof ConnectionLostError)) throw error;
      }
    }
    const connection = await connect(target, timeoutMs);
    return this.#keepOrClose(await exchange(connection, request, timeoutMs), connection, origin);
  }

  #keepOrClose(response: HttpResponse, connection: Connection, origin: Origin): HttpResponse {
    if (canReuse(response) && !this.#closed) origin.idle = connection;
    else closeConnection(connection);
    return response;
  }

  #origin(key: string): Origin {
    let origin = this.#origins.get(key);
    if (!origin) {
      origin = { idle: null, busy: false, waiting: [] };
      this.#origins.set(key, origin);
    }
    return origin;
  }

  #target(url: string): { target: Target; request: Uint8Array } {
    let cached = this.#targets.get(url);
    if (!cached) {
      if (this.#targets.size >= TARGET_CACHE_SIZE) this.#targets.clear();
      const target = parseTarget(url);
      cached = { target, request: utf8.encode(buildGetRequest(target, true)) };
      this.#targets.set(url, cached);
    }
    return cached;
  }
}

// ── Step 4: the command line — several URLs at once ───────────────────────────────────────────────────

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(argv);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
  // With no URL: two local servers, i.e. two origins — HttpClient keeps one connection to each, so the
  // two slow /chunked responses run at the same time, while requests to one origin take turns.
  const demos = options.urls.length === 0 ? [startDemoServer(), startDemoServer()] : [];
  if (demos.length > 0) {
    console.log(
      `no URL given: fetching four URLs at once from two local demo servers: ${demos.map((demo) => demo.url.host).join(" and ")}`,
    );
    options.urls = demos.flatMap((demo, index) =>
      [`/chunked`, `/${"ab"[index]}`].map((path) => new URL(path, demo.url).href),
    );
  }
  const client = new HttpClient();
  const started = performance.now();
  // Start every request, then print each as it completes: the book's `asyncio.as_completed`.
  const results = options.urls.map(async (url) => {
    const begun = performance.now();
    try {
      const response = await client.get(url, { timeoutMs: options.timeoutMs });
      const elapsed = (performance.now() - begun).toFixed(1);
      console.log(`[${elapsed} ms] ${formatResponse(url, response, options.showBody)}`);
      return true;
    } catch (error) {
      console.error(`[${(performance.now() - begun).toFixed(1)} ms] ${url}: ${(error as Error).message}`);
      return false;
    }
  });
  const succeeded = await Promise.all(results);
  console.log(`${options.urls.length} URLs in ${(performance.now() - started).toFixed(1)} ms`);
  client.close();
  for (const demo of demos) demo.stop(true);
  return succeeded.every(Boolean) ? 0 : 1;
}

if (import.meta.main) process.exit(await main());

/* A real run (bun scripts/02-http-streams.ts). The two /chunked responses (each ~24 ms: the server
   pauses between chunks) ran at the same time on two connections; /a and /b waited their turn behind them:

no URL given: fetching four URLs at once from two local demo servers: 127.0.0.1:39883 and 127.0.0.1:42487
[24.8 ms] http://127.0.0.1:39883/chunked → 200 OK
  content-type: text/plain; charset=utf-8
  date: Thu, 26 Nov 2026 18:13:28 GMT
  transfer-encoding: chunked
  (19 bytes of body)
[23.8 ms] http://127.0.0.1:39883/a → 200 OK
  …
[23.8 ms] http://127.0.0.1:42487/chunked → 200 OK
  …
[24.0 ms] http://127.0.0.1:42487/b → 200 OK
  …
4 URLs in 26.0 ms
*/
