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
 * `drain`. Step 2 does exactly that.
 *
 * The "buffer zone" of the learning plan: `data` hands us pieces, so we keep them until `end` says the
 * response is complete (we ask with `Connection: close`, so the server closes when done), then parse the
 * whole buffer: status line, headers, and the body — by Content-Length, chunked, or until EOF.
 *
 * Run it:
 *   bun scripts/01-http-raw.ts                    # starts a tiny local server and fetches from it (offline)
 *   bun scripts/01-http-raw.ts http://example.com/ --timeout 5
 *   bun scripts/01-http-raw.ts https://example.com/ --body    # TLS works too; --body prints the body
 * Poke it: in a second terminal run `nc -l 9000`, then `bun scripts/01-http-raw.ts http://127.0.0.1:9000/`,
 * read the request in nc, type `HTTP/1.1 200 OK`, Enter, Enter, some text, then Ctrl+C nc.
 *
 * Builds on: nothing — this is the first lesson. Lesson 02 rebuilds it on StreamReader/StreamWriter.
 */
import type { Socket } from "bun";
import {
  addHeaderLine,
  bodyFraming,
  buildGetRequest,
  HttpError,
  type HttpResponse,
  NoResponseError,
  parseChunkSize,
  parseStatusLine,
  parseTarget,
  shortBodyError,
} from "../lib/http.ts";
import { connectError } from "../lib/streams.ts";

/** Most bytes one response may have: 64 MiB. We buffer until EOF, so the limit bounds our memory. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Default give-up time for the whole exchange: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;

const CRLF = new Uint8Array([0x0d, 0x0a]);
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
  #settled = false;

  constructor(request: string) {
    this.#unsent = utf8.encode(request);
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** connection_made: send the request. */
  connectionMade(socket: Socket<unknown>): void {
    this.#sendSome(socket);
  }

  /** data_received: keep the bytes (Bun gives each chunk its own memory, so no copy is needed). */
  dataReceived(socket: Socket<unknown>, chunk: Uint8Array): void {
    this.#receivedBytes += chunk.length;
    if (this.#receivedBytes > MAX_RESPONSE_BYTES) {
      this.fail(new HttpError(`response larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB; giving up`));
      socket.terminate();
      return;
    }
    this.#chunks.push(chunk);
  }

  /** The kernel has room again: send the rest of the request. */
  drain(socket: Socket<unknown>): void {
    this.#sendSome(socket);
  }

  /** eof_received: the response is complete — parse it. */
  eofReceived(): void {
    if (this.#settled) return;
    let response: HttpResponse;
    try {
      response = parseResponse(joinChunks(this.#chunks, this.#receivedBytes));
    } catch (error) {
      return this.fail(error as Error);
    }
    this.#settle(() => this.#resolve(response));
  }

  /** connection_lost: if the response is not complete yet, it never will be. */
  connectionLost(error?: Error): void {
    if (error) this.fail(new HttpError(`connection lost: ${error.message}`));
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

/** The chunks as one buffer of `totalBytes` (one chunk is returned as it is). */
export function joinChunks(chunks: Uint8Array[], totalBytes: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const joined = new Uint8Array(totalBytes);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

// ── Step 2: parse the whole buffer ────────────────────────────────────────────────────────────────────

/** Finds `needle` in `bytes` at or after `from`; -1 if absent. */
function indexOfBytes(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  let index = bytes.indexOf(needle[0]!, from);
  while (index !== -1) {
    if (needle.every((byte, offset) => bytes[index + offset] === byte)) return index;
    index = bytes.indexOf(needle[0]!, index + 1);
  }
  return -1;
}

/** Reads one CRLF-terminated line at `offset`; returns it and the offset after it, or throws if missing. */
function lineAt(bytes: Uint8Array, offset: number, what: string): { line: string; next: number } {
  const end = indexOfBytes(bytes, CRLF, offset);
  if (end === -1) throw new HttpError(`response ended inside the ${what}`);
  return { line: latin1.decode(bytes.subarray(offset, end)), next: end + CRLF.length };
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
    const headers: Record<string, string> = {};
    offset = status.next;
    for (;;) {
      const header = lineAt(bytes, offset, "headers");
      offset = header.next;
      if (header.line === "") break;
      addHeaderLine(headers, header.line);
    }
    if (code >= 100 && code < 200) continue;
    return { version, status: code, reason, headers, body: parseBody(bytes.subarray(offset), code, headers) };
  }
}

function parseBody(rest: Uint8Array, status: number, headers: Record<string, string>): Uint8Array {
  const framing = bodyFraming(status, headers);
  switch (framing.kind) {
    case "none":
      return new Uint8Array(0);
    case "eof":
      return rest;
    case "length":
      if (rest.length < framing.length) throw shortBodyError(rest.length, framing.length);
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
    const sizeLine = lineAt(rest, offset, "chunked body");
    const size = parseChunkSize(sizeLine.line);
    offset = sizeLine.next;
    if (size === 0) break;
    if (offset + size + CRLF.length > rest.length)
      throw shortBodyError(total + rest.length - offset, "chunked");
    pieces.push(rest.subarray(offset, offset + size));
    total += size;
    offset += size;
    if (rest[offset] !== CRLF[0] || rest[offset + 1] !== CRLF[1])
      throw new HttpError("chunk not followed by CRLF");
    offset += CRLF.length;
  }
  // Trailer fields, until the empty line; we read past them (lesson 02 keeps them).
  for (let trailer = lineAt(rest, offset, "trailers"); trailer.line !== ""; ) {
    offset = trailer.next;
    trailer = lineAt(rest, offset, "trailers");
  }
  return joinChunks(pieces, total);
}

// ── Step 3: connect the protocol to a socket ──────────────────────────────────────────────────────────

/**
 * GETs `url` with one connection and the callbacks above. Rejects with a one-line `Error` for a refused
 * connection, an unknown host, a timeout, or a malformed response.
 */
export async function fetchRaw(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<HttpResponse> {
  const target = parseTarget(url);
  const protocol = new HttpGetProtocol(buildGetRequest(target, false));
  let socket: Socket<unknown> | undefined;
  const timer = setTimeout(() => {
    protocol.fail(new HttpError(`timed out after ${timeoutMs / 1000} s`));
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
          else protocol.fail(new HttpError(`TLS handshake failed: ${error?.message ?? "unknown error"}`));
        },
        data: (socket, chunk) => protocol.dataReceived(socket, chunk),
        drain: (socket) => protocol.drain(socket),
        // With an `end` handler and the default allowHalfOpen: false, Bun closes the socket right after.
        end: () => protocol.eofReceived(),
        close: (_socket, error) => protocol.connectionLost(error),
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
  }
}

// ── Step 4: a local server to talk to, so the lesson runs offline ─────────────────────────────────────

/** Starts a small HTTP server on a free loopback port (Bun.serve). Stop it with `server.stop()`. */
export function startDemoServer() {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === "/chunked") {
        // A streamed body has no length up front: Bun sends it with Transfer-Encoding: chunked.
        // (The pauses make Bun send each part as it comes instead of buffering the whole body.)
        const parts = ["streamed ", "in ", "chunks\n"];
        const body = new ReadableStream({
          async pull(controller) {
            await Bun.sleep(5);
            const part = parts.shift();
            if (part === undefined) controller.close();
            else controller.enqueue(part);
          },
        });
        return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
      }
      return new Response(`hello from ${pathname} — served by Bun.serve on this machine\n`, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    },
  });
}

// ── Step 5: the command line ──────────────────────────────────────────────────────────────────────────

export interface CliOptions {
  urls: string[];
  timeoutMs: number;
  showBody: boolean;
}

/** Parses `[URL…] [--timeout SECONDS] [--body]`. Throws a one-line `Error` for a bad argument. */
export function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { urls: [], timeoutMs: DEFAULT_TIMEOUT_MS, showBody: false };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === "--body") options.showBody = true;
    else if (arg === "--timeout") {
      const seconds = Number(argv[++index]);
      if (!(seconds > 0)) throw new Error("--timeout needs a number of seconds greater than 0");
      options.timeoutMs = seconds * 1000;
    } else if (arg.startsWith("-"))
      throw new Error(`unknown option ${arg} (try: [URL…] [--timeout SECONDS] [--body])`);
    else options.urls.push(arg);
  }
  return options;
}

/** Prints the status line, the headers and (with --body, or for the demo) the body. */
export function formatResponse(url: string, response: HttpResponse, showBody: boolean): string {
  const lines = [`${url} → ${response.status} ${response.reason}`];
  for (const [name, value] of Object.entries(response.headers)) lines.push(`  ${name}: ${value}`);
  lines.push(`  (${response.body.length} bytes of body)`);
  if (showBody) lines.push(new TextDecoder().decode(response.body).trimEnd());
  return lines.join("\n");
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let options: CliOptions;
  try {
    options = parseArgs(argv);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
  const demo = options.urls.length === 0 ? startDemoServer() : undefined;
  if (demo) {
    console.log(`no URL given: fetching from a local demo server at ${demo.url}`);
    options.urls = [new URL("/hello", demo.url).href, new URL("/chunked", demo.url).href];
    options.showBody = true;
  }
  let failures = 0;
  for (const url of options.urls) {
    try {
      console.log(formatResponse(url, await fetchRaw(url, options.timeoutMs), options.showBody));
    } catch (error) {
      failures++;
      console.error(`${url}: ${(error as Error).message}`);
    }
  }
  demo?.stop(true);
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) process.exit(await main());

/* A real run (bun scripts/01-http-raw.ts):

no URL given: fetching from a local demo server at http://127.0.0.1:35313/
http://127.0.0.1:35313/hello → 200 OK
  content-type: text/plain; charset=utf-8
  date: Thu, 26 Nov 2026 18:13:23 GMT
  content-length: 58
  (58 bytes of body)
hello from /hello — served by Bun.serve on this machine
http://127.0.0.1:35313/chunked → 200 OK
  content-type: text/plain; charset=utf-8
  date: Thu, 26 Nov 2026 18:13:23 GMT
  transfer-encoding: chunked
  (19 bytes of body)
streamed in chunks
*/
