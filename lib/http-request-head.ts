/**
 * lib/http-request-head.ts — the server's side of lesson 02: an HTTP/1.1 request head (RFC 9112 §2–§5),
 * read from a StreamReader line by line with `readUntil`, capped.
 *
 *   GET /chat HTTP/1.1\r\n              ← request line: method, target, version (§3)
 *   Host: 127.0.0.1:8080\r\n            ← header fields, one per line (§5)
 *   Upgrade: websocket\r\n
 *   \r\n                                ← an empty line ends the head
 *
 * Never trust the peer: the whole head is capped ({@link MAX_REQUEST_HEAD_BYTES}, 431 past it), each line
 * is read with `readUntil` (which fails once the reader's `limit` is buffered with no newline — not
 * `readLine`, which would skip an endless line to its end), and everything the errors quote is passed
 * through `showControls`, so a hostile head cannot drive the terminal of whoever reads the log.
 */
import { addHeaderLine, type HttpHeaders, MAX_HEADER_COUNT, newHeaders } from "./http.ts";
import { showControls } from "./sanitize.ts";
import { IncompleteReadError, LimitOverrunError, type StreamReader } from "./stream-reader.ts";

/** Largest request head we read: 8 KiB, request line and header fields together (Node's default is 16 KiB). */
export const MAX_REQUEST_HEAD_BYTES = 8 * 1024;
/** Empty lines ignored before a request line (RFC 9112 §2.2 says a server SHOULD ignore at least one): 4. */
const MAX_LEADING_EMPTY_LINES = 4;
/** How much of a bad line an error quotes: 80 characters. */
const QUOTE_CHARS = 80;

const LF = 0x0a;
const CR = 0x0d;
const LINE_END = new Uint8Array([LF]);
/** Head bytes are ISO-8859-1 (RFC 9110 §5.5: field values are octets; anything non-ASCII is opaque). */
const latin1 = new TextDecoder("latin1");

/** `token` (RFC 9110 §5.6.2): a method, a field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A request target: visible ASCII, no spaces (RFC 9112 §3.2; what every real target looks like). */
const TARGET = /^[!-~]+$/;
/** `HTTP-version` (RFC 9112 §2.3). */
const VERSION = /^HTTP\/\d\.\d$/;
/** A field value may hold HTAB, SP, visible ASCII and obs-text; any other control is refused (RFC 9110 §5.5). */
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/** One request head. */
export interface RequestHead {
  /** The method, case-sensitive as sent (`GET`). */
  method: string;
  /** The request target as sent: `/chat?x=1` (origin form), or `*`, or an absolute URL. */
  target: string;
  version: "HTTP/1.1" | "HTTP/1.0";
  /**
   * Header fields: a null-prototype object (a field named `__proto__` is a field like any other), names
   * lower-cased, a repeated field's values joined with `, ` (RFC 9110 §5.3).
   */
  headers: HttpHeaders;
}

/** A request head we refuse; `status` is the response it deserves, `reason` one line saying why. */
export class RequestHeadError extends Error {
  override name = "RequestHeadError";
  constructor(
    /** 400 Bad Request, 408 Request Timeout, 431 Request Header Fields Too Large, 505 HTTP Version Not Supported. */
    readonly status: 400 | 408 | 431 | 505,
    /** One line, control characters shown (never obeyed). */
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** What the reader is failed with when a head's deadline passes (see {@link readRequestHead}). */
class HeadDeadlineError extends Error {
  override name = "HeadDeadlineError";
}

/**
 * Reads one request head.
 *
 * - Returns `null` at a clean EOF before any byte of it (a keep-alive client went away), and after only
 *   the empty lines a client may send between requests.
 * - Throws {@link RequestHeadError}: 431 once the head passes `maxBytes` (at most `maxBytes` + the reader's
 *   `limit` bytes are ever buffered: give the connection's StreamReader `limit: MAX_REQUEST_HEAD_BYTES` for
 *   the cap to fire within the cap even while one endless line is still arriving), also past
 *   {@link MAX_HEADER_COUNT} fields; 400 for a malformed request line or field line, a bare CR, an
 *   obs-fold continuation line, a missing or repeated `Host` in HTTP/1.1 (RFC 9112 §3.2), or EOF inside
 *   the head; 505 for a version other than HTTP/1.1 and HTTP/1.0.
 * - `timeoutMs`: the head must be complete this many ms after the call — a client that sends it a byte a
 *   minute (slowloris) holds the connection no longer. When it passes: 408 if part of a head arrived,
 *   `null` if nothing did (an idle keep-alive connection). Either way the reader is failed (its reads
 *   reject from then on): the connection is to be closed.
 * - A connection error comes as the reader throws it (e.g. `ConnectionLostError`).
 *
 * Bytes after the head (a body, the next pipelined request) stay in the reader.
 */
export async function readRequestHead(
  reader: StreamReader,
  maxBytes = MAX_REQUEST_HEAD_BYTES,
  timeoutMs?: number,
): Promise<RequestHead | null> {
  const progress: HeadProgress = { maxBytes, bytes: 0 };
  if (timeoutMs === undefined) return readHead(reader, progress);
  const deadline = new HeadDeadlineError(`no complete request head within ${timeoutMs} ms`);
  const timer = setTimeout(() => reader.setException(deadline), timeoutMs);
  timer.unref();
  try {
    return await readHead(reader, progress);
  } catch (error) {
    if (error !== deadline) throw error;
    if (progress.bytes === 0 && reader.bufferedBytes === 0) return null;
    throw new RequestHeadError(408, deadline.message);
  } finally {
    clearTimeout(timer);
  }
}

async function readHead(reader: StreamReader, progress: HeadProgress): Promise<RequestHead | null> {
  let requestLine = "";
  for (let empty = 0; requestLine === ""; empty++) {
    if (empty > MAX_LEADING_EMPTY_LINES) throw new RequestHeadError(400, "empty lines instead of a request");
    const line = await readHeadLine(reader, progress);
    if (line === null) return null;
    requestLine = line;
  }
  const { method, target, version } = parseRequestLine(requestLine);
  const headers = newHeaders();
  let hosts = 0;
  for (let count = 0; ; count++) {
    const line = await readHeadLine(reader, progress);
    if (line === null) throw endedInside(progress.bytes);
    if (line === "") break;
    if (count === MAX_HEADER_COUNT) {
      throw new RequestHeadError(431, `more than ${MAX_HEADER_COUNT} header fields`);
    }
    if (line.startsWith(" ") || line.startsWith("\t")) {
      // obs-fold: a server must refuse it or unfold it (RFC 9112 §5.2); we refuse.
      throw new RequestHeadError(400, `folded header line: ${quote(line)}`);
    }
    if (addFieldLine(headers, line) === "host") hosts++;
  }
  if (version === "HTTP/1.1" && hosts !== 1) {
    throw new RequestHeadError(400, hosts === 0 ? "no Host header" : "more than one Host header");
  }
  return { method, target, version, headers };
}

/** Bytes of the head read so far, against its cap. */
interface HeadProgress {
  readonly maxBytes: number;
  bytes: number;
}

/**
 * One head line without its `\r\n` (or bare `\n`, RFC 9112 §2.2), counted in `progress`; `null` at EOF
 * before the line's first byte.
 */
async function readHeadLine(reader: StreamReader, progress: HeadProgress): Promise<string | null> {
  let line: Uint8Array;
  try {
    line = await reader.readUntil(LINE_END);
  } catch (error) {
    if (error instanceof LimitOverrunError) throw headTooLarge(progress, progress.bytes + error.consumed);
    if (!(error instanceof IncompleteReadError)) throw error;
    if (error.partial.length === 0) return null;
    const bytes = progress.bytes + error.partial.length;
    throw bytes > progress.maxBytes ? headTooLarge(progress, bytes) : endedInside(bytes);
  }
  progress.bytes += line.length;
  if (progress.bytes > progress.maxBytes) throw headTooLarge(progress, progress.bytes);
  const end = line.length >= 2 && line[line.length - 2] === CR ? line.length - 2 : line.length - 1;
  const text = latin1.decode(line.subarray(0, end));
  // A CR anywhere else is a bare CR: refused, since two parsers could split the head differently (§2.2).
  if (text.includes("\r")) throw new RequestHeadError(400, `bare CR in a head line: ${quote(text)}`);
  return text;
}

/** `method SP request-target SP HTTP-version` (RFC 9112 §3). */
function parseRequestLine(line: string): Pick<RequestHead, "method" | "target" | "version"> {
  const parts = line.split(" ");
  const [method, target, version] = parts;
  if (parts.length !== 3 || !TOKEN.test(method!) || !TARGET.test(target!) || !VERSION.test(version!)) {
    throw new RequestHeadError(400, `malformed request line: ${quote(line)}`);
  }
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new RequestHeadError(
      505,
      `HTTP version ${quote(version!)} not supported (HTTP/1.1 and HTTP/1.0 are)`,
    );
  }
  return { method: method!, target: target!, version };
}

/**
 * Adds `Name: value` to `headers` (lib/http.ts's `addHeaderLine`, which lesson 02 uses for responses),
 * after the checks a server owes its request fields: the name a token, no control characters in the value.
 * Returns the lower-cased name.
 */
function addFieldLine(headers: HttpHeaders, line: string): string {
  const colon = line.indexOf(":");
  const name = line.slice(0, colon);
  if (colon <= 0 || !TOKEN.test(name) || BAD_VALUE_CHAR.test(line.slice(colon + 1))) {
    throw new RequestHeadError(400, `malformed header line: ${quote(line)}`);
  }
  addHeaderLine(headers, line);
  return name.toLowerCase();
}

function headTooLarge(progress: HeadProgress, bytes: number): RequestHeadError {
  return new RequestHeadError(
    431,
    `request head larger than ${progress.maxBytes} bytes (${bytes} bytes read without its end)`,
  );
}

function endedInside(bytes: number): RequestHeadError {
  return new RequestHeadError(400, `connection closed inside the request head, after ${bytes} bytes`);
}

/** A piece of the peer's text for an error: quoted, shortened, its control characters shown not obeyed. */
function quote(text: string): string {
  const short = text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text;
  return `"${showControls(short)}"`;
}
