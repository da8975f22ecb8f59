/**
 * Lesson 01 — An HTTP client on raw socket callbacks (asyncio's transports and protocols)
 *
 * What it teaches: the lowest level of async networking. We do not *wait* for anything. We hand Bun an
 * object of callbacks, and Bun calls them as things happen on the socket:
 *
 *   Bun handler            asyncio Protocol method     when
 *   open(socket)        ↔  connection_made(transport)  the TCP connection is up: send the request
 *   handshake(socket,…) ↔  (inside asyncio's transport) TLS is set up — for https, *this* is connection_made
 *   data(socket, bytes) ↔  data_received(data)         some bytes arrived — any amount, any split
 *   drain(socket)       ↔  (resume_writing)            the kernel has room again for what write() refused
 *   end(socket)         ↔  eof_received()              the server sent FIN: no more bytes will come
 *   close(socket, err)  ↔  connection_lost(exc)        the connection is gone (err set if it failed)
 *
 * The socket itself plays asyncio's *transport*: `socket.write()` ↔ `transport.write()`, `socket.end()` ↔
 * `transport.close()`. One difference matters: asyncio's transport buffers what the kernel will not take
 * yet; Bun's `write()` does not — it returns how many bytes it sent, and the rest is ours to send from
 * `drain`. Step 1 does exactly that.
 *
 * The buffer zone: `data` hands us pieces, so we keep them until `end` says the response is complete (we
 * ask with `Connection: close`, so the server closes when done), then parse the whole buffer: status line,
 * headers, and the body — by Content-Length, chunked, or until EOF. One thing cannot wait for EOF: a peer
 * that sends an endless header line. The head is watched as it arrives, and the exchange fails the moment
 * a line passes 8 KiB — not at the 64 MiB buffer limit, nor at the deadline.
 *
 * Lines end in `\r\n`, but a bare `\n` is accepted too (RFC 9112 §2.2 allows it): that is what `nc` sends.
 *
 * Run it:
 *   bun scripts/01-http-raw.ts                    # starts a tiny local server and fetches from it (offline)
 *   bun scripts/01-http-raw.ts --body             # …and prints the bodies too (the rule everywhere: --body)
 *   bun scripts/01-http-raw.ts --trace            # …and a line for each callback as Bun calls it
 *   bun scripts/01-http-raw.ts http://example.com/ --timeout 5
 *   bun scripts/01-http-raw.ts https://example.com/ --body    # TLS works too
 *   bun scripts/01-http-raw.ts --help
 * Poke it: in a second terminal run `nc -l 9000`, then `bun scripts/01-http-raw.ts http://127.0.0.1:9000/
 * --body --trace`, read the request in nc, type `HTTP/1.1 200 OK`, Enter, Enter, some text, Enter (nc
 * sends a line only when you press Enter): each Enter is one `data_received`, and nothing is printed
 * yet. Then Ctrl+C nc: that closes the connection, `eof_received` fires, and the EOF ends the body.
 *
 * Builds on: nothing — this is the first lesson. Lesson 02 rebuilds it on StreamReader/StreamWriter.
 */
import type { Socket } from "bun";
import { parseCommandLine } from "../lib/args.ts";
import { concat } from "../lib/bytes.ts";
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
  MAX_HEAD_LINE_BYTES,
  MAX_HEADER_COUNT,
  NoResponseError,
  newHeaders,
  parseChunkSize,
  parseStatusLine,
  parseTarget,
  ShortBodyError,
  tooManyHeaders,
} from "../lib/http.ts";
import { formatResponse, HTTP_CLIENT_FLAGS, URL_ARGUMENTS } from "../lib/http-cli.ts";
import { startDemoServer } from "../lib/http-demo-server.ts";
import { connectError } from "../lib/streams.ts";

/** Where `--trace` sends one line per callback, as it fires. */
export type Trace = (line: string) => void;

/** Most bytes one response may have: 64 MiB. We buffer until EOF, so the limit bounds our memory. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** How long a trace waits for `close` after the response settled: 1 s (it comes within a turn or two). */
const TRACE_CLOSE_WAIT_MS = 1000;

const CR = 0x0d;
const LF = 0x0a;
const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");

// ── Step 1: the protocol — the state of one exchange, and one method per event ─────────────────────────

/**
 * asyncio's `Protocol` for one GET: sends the request when connected, buffers every chunk, and parses the
 * response at EOF. `response` settles exactly once.
 */
export class HttpGetProtocol {
  readonly response: Promise<HttpResponse>;
  #resolve!: (response: HttpResponse) => void;
  #reject!: (error: Error) => void;
  /** Request bytes the kernel has not taken yet. */
  #unsent: Uint8Array;
  /** The buffer zone: every chunk received, kept until EOF. */
  #chunks: Uint8Array[] = [];
  #receivedBytes = 0;
  readonly #head = new HeadWatch();
  #settled = false;
  readonly #trace: Trace | undefined;

  /** `trace`, if given, hears of each callback as it fires (`--trace`). */
  constructor(request: string, trace?: Trace) {
    this.#trace = trace;
    this.#unsent = utf8.encode(request);
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** connection_made: send the request. */
  connectionMade(socket: Socket<unknown>): void {
    const size = this.#unsent.length;
    this.#sendSome(socket);
    this.#trace?.(`connection_made: sent the request, ${size - this.#unsent.length} of ${size} bytes`);
  }

  /** data_received: keep the bytes (Bun gives each chunk its own memory, so no copy is needed). */
  dataReceived(socket: Socket<unknown>, chunk: Uint8Array): void {
    this.#receivedBytes += chunk.length;
    this.#trace?.(`data_received: ${plural(chunk.length, "byte")}, ${this.#receivedBytes} in the buffer`);
    const tooMuch =
      this.#receivedBytes > MAX_RESPONSE_BYTES
        ? new HttpError(
            "too-large",
            `response larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB; giving up`,
          )
        : this.#head.check(chunk);
    if (tooMuch) {
      this.fail(tooMuch);
      socket.terminate();
      return;
    }
    this.#chunks.push(chunk);
  }

  /** The kernel has room again: send the rest of the request. */
  drain(socket: Socket<unknown>): void {
    const size = this.#unsent.length;
    this.#sendSome(socket);
    this.#trace?.(`drain: sent ${size - this.#unsent.length} more request bytes`);
  }

  /** eof_received: the response is complete — parse it. */
  eofReceived(): void {
    if (this.#settled) return;
    this.#trace?.(`eof_received: the server is done; parsing the ${this.#receivedBytes} bytes buffered`);
    let response: HttpResponse;
    try {
      response = parseResponse(concat(this.#chunks, this.#receivedBytes));
    } catch (error) {
      return this.fail(error as Error);
    }
    this.#settle(() => this.#resolve(response));
  }

  /** connection_lost: if the response is not complete yet, it never will be. */
  connectionLost(error?: Error): void {
    this.#trace?.(`connection_lost${error ? `: ${error.message}` : ""}`);
    if (error) this.fail(new HttpError("truncated", `connection lost: ${error.message}`));
    else this.eofReceived();
  }

  /** Settles the exchange with an error (a timeout, a parse error, a lost connection). */
  fail(error: Error): void {
    this.#settle(() => this.#reject(error));
  }

  /** Bun's `write()` takes what the kernel has room for; keep the rest for `drain`. */
  #sendSome(socket: Socket<unknown>): void {
    if (this.#unsent.length === 0) return;
    const written = socket.write(this.#unsent);
    if (written > 0) this.#unsent = this.#unsent.subarray(written);
  }

  #settle(settle: () => void): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#chunks = [];
    settle();
  }
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** A status line of an interim response (`HTTP/1.1 100 Continue`): another head follows it. */
const INTERIM_STATUS = /^HTTP\/\d\.\d 1\d\d/;
/** Bytes of a status line kept to spot an interim one. */
const STATUS_PREFIX_BYTES = 12;

/**
 * Watches the head while it arrives, line by line, without keeping it: the exchange fails as soon as a
 * line passes {@link MAX_HEAD_LINE_BYTES} or the fields pass {@link MAX_HEADER_COUNT}. Once the head is
 * over (and it was not a 1xx), the body is not looked at.
 */
class HeadWatch {
  /** Bytes of the line being received so far. */
  #lineBytes = 0;
  /** Its last byte, to tell an empty `\r\n` line from a one-byte one. */
  #lastByte = 0;
  /** Lines of the current head so far (the status line included). */
  #lines = 0;
  /** The first bytes of the current status line. */
  #status = "";
  #over = false;

  /** Looks at one chunk; returns the error to fail with, or null. */
  check(chunk: Uint8Array): HttpError | null {
    let from = 0;
    while (!this.#over) {
      const newline = chunk.indexOf(LF, from);
      const end = newline === -1 ? chunk.length : newline;
      if (this.#lines === 0 && this.#status.length < STATUS_PREFIX_BYTES)
        this.#status += latin1.decode(
          chunk.subarray(from, Math.min(end, from + STATUS_PREFIX_BYTES - this.#status.length)),
        );
      if (end > from) this.#lastByte = chunk[end - 1]!;
      this.#lineBytes += end - from;
      // One byte of grace for the `\r` of a `\r\n`.
      if (this.#lineBytes > MAX_HEAD_LINE_BYTES + 1)
        return headLineTooLong(this.#lines === 0 ? "status line" : "header line");
      if (newline === -1) return null;
      this.#endLine();
      if (this.#lines > MAX_HEADER_COUNT + 1) return tooManyHeaders();
      from = newline + 1;
    }
    return null;
  }

  #endLine(): void {
    const empty = this.#lineBytes === 0 || (this.#lineBytes === 1 && this.#lastByte === CR);
    if (empty && this.#lines > 0) {
      // The end of a head: an interim response's is followed by another one.
      if (INTERIM_STATUS.test(this.#status)) {
        this.#lines = 0;
        this.#status = "";
      } else this.#over = true;
    } else this.#lines++;
    this.#lineBytes = 0;
  }
}

// ── Step 2: parse the whole buffer ────────────────────────────────────────────────────────────────────

/**
 * Reads one line at `offset`, ended by `\r\n` or a bare `\n` (RFC 9112 §2.2: a recipient may accept a lone
 * LF, and `nc` sends one); returns it and the offset after it. Throws, saying what it saw, if it is cut off.
 */
function lineAt(bytes: Uint8Array, offset: number, what: string): { line: string; next: number } {
  const newline = bytes.indexOf(LF, offset);
  if (newline === -1) {
    const seen = latin1.decode(bytes.subarray(offset, offset + 80));
    throw new HttpError(
      "truncated",
      `response ended inside the ${what}, after ${bytes.length - offset} bytes: ${JSON.stringify(seen)}`,
    );
  }
  const end = newline > offset && bytes[newline - 1] === CR ? newline - 1 : newline;
  return { line: latin1.decode(bytes.subarray(offset, end)), next: newline + 1 };
}

/**
 * Parses a complete response (everything up to EOF). Interim 1xx responses (100 Continue, 103 Early
 * Hints) are skipped. Throws `HttpError` for a malformed head, a bad chunk size or a short body.
 */
export function parseResponse(bytes: Uint8Array): HttpResponse {
  if (bytes.length === 0) throw new NoResponseError();
  let offset = 0;
  for (;;) {
    const status = lineAt(bytes, offset, "status line");
    const { version, status: code, reason } = parseStatusLine(status.line);
    const headers = newHeaders();
    offset = status.next;
    for (let count = 0; ; count++) {
      const header = lineAt(bytes, offset, "header line");
      offset = header.next;
      if (header.line === "") break;
      if (count === MAX_HEADER_COUNT) throw tooManyHeaders();
      addHeaderLine(headers, header.line);
    }
    if (code >= 100 && code < 200) continue;
    return { version, status: code, reason, headers, body: parseBody(bytes.subarray(offset), code, headers) };
  }
}

function parseBody(rest: Uint8Array, status: number, headers: HttpHeaders): Uint8Array {
  const framing = bodyFraming(status, headers);
  switch (framing.kind) {
    case "none":
      return new Uint8Array(0);
    case "eof":
      return rest;
    case "length":
      if (rest.length < framing.length) throw new ShortBodyError(rest.length, framing.length);
      return rest.subarray(0, framing.length);
    case "chunked":
      return parseChunkedBody(rest);
  }
}

/** Decodes `Transfer-Encoding: chunked`: `size\r\n data\r\n` … `0\r\n` trailers `\r\n`. */
function parseChunkedBody(rest: Uint8Array): Uint8Array {
  const pieces: Uint8Array[] = [];
  let total = 0;
  let offset = 0;
  for (;;) {
    const sizeLine = lineAt(rest, offset, "chunk size line");
    const size = parseChunkSize(sizeLine.line);
    offset = sizeLine.next;
    if (size === 0) break;
    if (offset + size + 2 > rest.length) throw new ShortBodyError(total + rest.length - offset, "chunked");
    pieces.push(rest.subarray(offset, offset + size));
    total += size;
    offset += size;
    if (rest[offset] !== CR || rest[offset + 1] !== LF)
      throw new HttpError("malformed", "chunk not followed by CRLF");
    offset += 2;
  }
  // Trailer fields, until the empty line; we read past them (lesson 02 keeps them).
  for (let trailer = lineAt(rest, offset, "trailer"); trailer.line !== ""; ) {
    offset = trailer.next;
    trailer = lineAt(rest, offset, "trailer");
  }
  return concat(pieces, total);
}

// ── Step 3: connect the protocol to a socket ──────────────────────────────────────────────────────────

/**
 * GETs `url` with one connection and the callbacks above. Rejects with a one-line `Error` for a refused
 * connection, an unknown host, a timeout (`HttpTimeoutError`), or a malformed response (`HttpError`).
 * With `trace`, each callback is reported as it fires.
 */
export async function fetchRaw(
  url: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  trace?: Trace,
): Promise<HttpResponse> {
  const target = parseTarget(url);
  const protocol = new HttpGetProtocol(buildGetRequest(target, false), trace);
  let socket: Socket<unknown> | undefined;
  const closed = Promise.withResolvers<void>();
  const timer = setTimeout(() => {
    protocol.fail(new HttpTimeoutError(timeoutMs));
    socket?.terminate();
  }, timeoutMs);
  try {
    socket = await Bun.connect({
      hostname: target.host,
      port: target.port,
      tls: target.tls,
      socket: {
        // Over TLS the connection is "made" only once the handshake is done: Bun's write() returns 0 before.
        open: (socket) => {
          if (!target.tls) protocol.connectionMade(socket);
        },
        handshake: (socket, success, error) => {
          if (success) protocol.connectionMade(socket);
          else
            protocol.fail(new HttpError("tls", `TLS handshake failed: ${error?.message ?? "unknown error"}`));
        },
        data: (socket, chunk) => protocol.dataReceived(socket, chunk),
        drain: (socket) => protocol.drain(socket),
        // With an `end` handler and the default allowHalfOpen: false, Bun closes the socket right after.
        end: () => protocol.eofReceived(),
        close: (_socket, error) => {
          protocol.connectionLost(error);
          closed.resolve();
        },
        connectError: () => {},
      },
    });
  } catch (error) {
    clearTimeout(timer);
    throw connectError(error, target.host, target.port);
  }
  try {
    return await protocol.response;
  } finally {
    clearTimeout(timer);
    // Bun calls `close` just after `end`: a trace waits for it, so its line is not under the next URL's.
    if (trace) await Promise.race([closed.promise, Bun.sleep(TRACE_CLOSE_WAIT_MS)]);
  }
}

// ── Step 4: the command line ──────────────────────────────────────────────────────────────────────────

const USAGE = "bun scripts/01-http-raw.ts [URL…] [--timeout SECONDS] [--body] [--trace]";

export const FLAGS = {
  ...HTTP_CLIENT_FLAGS,
  trace: {
    kind: "boolean",
    help: "print a line for each callback (connection_made, data_received, …) as it fires",
  },
} as const;

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, USAGE, URL_ARGUMENTS);
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  let urls = flags.positionals;
  // The lesson runs offline: with no URL, a local server (lib/http-demo-server.ts) to fetch from.
  const demo = urls.length === 0 ? startDemoServer() : undefined;
  if (demo) {
    console.log(
      `no URL given: fetching from a local demo server at ${demo.url}` +
        (flags.body ? "" : " (add --body to see the bodies)"),
    );
    urls = [new URL("/hello", demo.url).href, new URL("/chunked", demo.url).href];
  }
  const trace = flags.trace ? (line: string) => console.log(`  · ${line}`) : undefined;
  let failures = 0;
  for (const url of urls) {
    try {
      if (trace) console.log(`GET ${url}`);
      console.log(formatResponse(url, await fetchRaw(url, flags.timeout * 1000, trace), flags.body));
    } catch (error) {
      failures++;
      console.error(`${url}: ${(error as Error).message}`);
    }
  }
  demo?.stop(true);
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) process.exit(await main());

/* A real run (bun scripts/01-http-raw.ts --body):

no URL given: fetching from a local demo server at http://127.0.0.1:36391/
http://127.0.0.1:36391/hello → 200 OK
  content-type: text/plain; charset=utf-8
  date: Fri, 27 Nov 2026 05:15:38 GMT
  content-length: 58
  (58 bytes of body)
hello from /hello — served by Bun.serve on this machine
http://127.0.0.1:36391/chunked → 200 OK
  content-type: text/plain; charset=utf-8
  date: Fri, 27 Nov 2026 05:15:38 GMT
  transfer-encoding: chunked
  (19 bytes of body)
streamed in chunks

   And the Poke it, with --trace (`nc -l 18700` in the other terminal; `HTTP/1.1 200 OK`, Enter, Enter,
   `some text`, Enter — three data_received, one per Enter, and nothing else until Ctrl+C in nc):

$ bun scripts/01-http-raw.ts http://127.0.0.1:18700/ --body --trace
GET http://127.0.0.1:18700/
  · connection_made: sent the request, 106 of 106 bytes
  · data_received: 16 bytes, 16 in the buffer
  · data_received: 1 byte, 17 in the buffer
  · data_received: 10 bytes, 27 in the buffer
  · eof_received: the server is done; parsing the 27 bytes buffered
  · connection_lost
http://127.0.0.1:18700/ → 200 OK
  (10 bytes of body)
some text
*/
