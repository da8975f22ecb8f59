/**
 * lib/http.ts — the pieces of HTTP/1.1 (RFC 9112) that lessons 01 and 02 share: the request we send, the
 * status line and header fields we parse, and how the body is framed. Lesson 01 applies them to a buffer
 * it collected until EOF; lesson 02 applies them line by line to a StreamReader.
 *
 * A response is:
 *   HTTP/1.1 200 OK\r\n                 ← status line
 *   Content-Type: text/plain\r\n        ← header fields, one per line
 *   Content-Length: 5\r\n
 *   \r\n                                ← an empty line ends the head
 *   hello                               ← body, framed by Content-Length, by chunks, or by EOF
 */

/** Longest status line or header line we accept: 8 KiB, like most servers' own limit. */
export const MAX_HEAD_LINE_BYTES = 8 * 1024;
/** Most header fields in one response: 100 (Node's default `maxHeadersCount` is 2,000; 100 is plenty). */
export const MAX_HEADER_COUNT = 100;
/** Default give-up time for one request, connecting included: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** A plain Content-Length: up to 15 digits (beyond 2^53 bytes nobody sends). */
const DECIMAL = /^\d{1,15}$/;

/** Default ports for the URL schemes we speak. */
const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443 };

/** What went wrong, for a caller that handles some failures and not others. */
export type HttpErrorCode =
  /** Not an `http:`/`https:` URL. */
  | "bad-url"
  /** A status line, header line or chunk framing that does not follow RFC 9112. */
  | "malformed"
  /** A head line over {@link MAX_HEAD_LINE_BYTES}, more than {@link MAX_HEADER_COUNT} fields, a body over its limit. */
  | "too-large"
  /** The response ended before it was complete. */
  | "truncated"
  /** The server closed the connection without a byte of response. */
  | "no-response"
  /** No complete response within the deadline. */
  | "timeout"
  /** The TLS handshake failed (an untrusted certificate, a wrong host name…). */
  | "tls";

/** A failed request; `message` is one line fit for the user, `code` says which kind of failure it was. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly code: HttpErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The server closed the connection before sending a single byte of response (a kept-alive connection may be retried). */
export class NoResponseError extends HttpError {
  override name = "NoResponseError";
  constructor() {
    super("no-response", "the server closed the connection without a response");
  }
}

/** No complete response within `timeoutMs`. */
export class HttpTimeoutError extends HttpError {
  override name = "HttpTimeoutError";
  constructor(readonly timeoutMs: number) {
    super("timeout", `timed out after ${timeoutMs / 1000} s`);
  }
}

/** The body ended (the connection closed) before the bytes its framing announced. */
export class ShortBodyError extends HttpError {
  override name = "ShortBodyError";
  constructor(
    /** Body bytes received. */
    readonly received: number,
    /** Bytes announced by Content-Length, or `"chunked"` when a chunk was cut short. */
    readonly expected: number | "chunked",
  ) {
    super(
      "truncated",
      `body shorter than announced: got ${received} of ${expected} bytes before the connection closed`,
    );
  }
}

/**
 * Header fields, names lower-cased. A null-prototype object: a field named `constructor` or `__proto__`
 * is a field like any other, never one of Object's own properties. Make one with {@link newHeaders}.
 */
export type HttpHeaders = Record<string, string>;

/** An empty {@link HttpHeaders}. */
export function newHeaders(): HttpHeaders {
  return Object.create(null);
}

export interface HttpResponse {
  /** HTTP version of the status line, e.g. `HTTP/1.1`. */
  version: string;
  status: number;
  reason: string;
  /** Header fields, names lower-cased; repeated fields joined with `, ` (RFC 9110 §5.3). */
  headers: HttpHeaders;
  body: Uint8Array;
}

/** What a request needs from a URL. */
export interface Target {
  host: string;
  port: number;
  tls: boolean;
  /** Path and query, as sent on the request line. */
  path: string;
  /** The `Host` header: host, plus the port when it is not the default. */
  authority: string;
  /** Scheme, host and port as the URL gives them (`http://example.com:8080`): the key for connection reuse. */
  origin: string;
}

/** Parses an `http:` or `https:` URL. Throws `HttpError` with a one-line reason for anything else. */
export function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HttpError("bad-url", `invalid URL: ${url}`);
  }
  const defaultPort = DEFAULT_PORTS[parsed.protocol];
  if (defaultPort === undefined)
    throw new HttpError(
      "bad-url",
      `unsupported URL scheme ${parsed.protocol} in ${url} (use http: or https:)`,
    );
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1"); // [::1] → ::1
  const port = parsed.port ? Number(parsed.port) : defaultPort;
  return {
    host,
    port,
    tls: parsed.protocol === "https:",
    path: `${parsed.pathname || "/"}${parsed.search}`,
    authority: parsed.host,
    origin: `${parsed.protocol}//${parsed.host}`,
  };
}

/** The bytes of a GET request. `keepAlive: false` asks the server to close after the response. */
export function buildGetRequest(target: Target, keepAlive: boolean): string {
  return (
    `GET ${target.path} HTTP/1.1\r\n` +
    `Host: ${target.authority}\r\n` +
    "User-Agent: bun-async-lessons/1\r\n" +
    "Accept: */*\r\n" +
    `Connection: ${keepAlive ? "keep-alive" : "close"}\r\n` +
    "\r\n"
  );
}

/** Parses `HTTP/1.1 200 OK`. */
export function parseStatusLine(line: string): { version: string; status: number; reason: string } {
  const match = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(line);
  if (!match) throw new HttpError("malformed", `malformed status line: ${JSON.stringify(line.slice(0, 80))}`);
  return { version: match[1]!, status: Number(match[2]), reason: match[3] ?? "" };
}

/** Adds one `Name: value` header line to `headers` (made by {@link newHeaders}). */
export function addHeaderLine(headers: HttpHeaders, line: string): void {
  const colon = line.indexOf(":");
  const rawName = line.slice(0, colon);
  // RFC 9112 §5.1: no whitespace in the name, nor between the name and the colon.
  if (colon <= 0 || rawName.includes(" ") || rawName.includes("\t")) {
    throw new HttpError("malformed", `malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const name = rawName.toLowerCase();
  const value = line.slice(colon + 1).trim();
  const previous = headers[name];
  headers[name] = previous === undefined ? value : `${previous}, ${value}`;
}

/** How the body of a response is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "eof" };

/** Decides the body framing of a response to a GET from its status and headers. */
export function bodyFraming(status: number, headers: HttpHeaders): BodyFraming {
  // 1xx, 204 No Content and 304 Not Modified never have a body.
  if (status < 200 || status === 204 || status === 304) return { kind: "none" };
  const transferEncoding = headers["transfer-encoding"];
  if (transferEncoding !== undefined) {
    const codings = transferEncoding
      .toLowerCase()
      .split(",")
      .map((coding) => coding.trim());
    if (codings[codings.length - 1] === "chunked") return { kind: "chunked" };
    return { kind: "eof" };
  }
  const contentLength = headers["content-length"];
  if (contentLength !== undefined && DECIMAL.test(contentLength))
    return { kind: "length", length: Number(contentLength) };
  if (contentLength !== undefined) {
    // Repeated identical values ("5, 5") are allowed; different ones are an attack or a bug.
    const values = new Set(contentLength.split(",").map((value) => value.trim()));
    const [only] = values;
    if (values.size !== 1 || !DECIMAL.test(only!)) {
      throw new HttpError("malformed", `invalid Content-Length: ${JSON.stringify(contentLength)}`);
    }
    return { kind: "length", length: Number(only) };
  }
  return { kind: "eof" };
}

/** Parses a chunk-size line (`1a3f` or `1a3f;name=value`), returning the size in bytes. */
export function parseChunkSize(line: string): number {
  const size = line.split(";", 1)[0]!.trim();
  if (!/^[0-9a-fA-F]{1,12}$/.test(size))
    throw new HttpError("malformed", `bad chunk size: ${JSON.stringify(line.slice(0, 40))}`);
  return Number.parseInt(size, 16);
}

/** A head line longer than {@link MAX_HEAD_LINE_BYTES}; `what` names it (`status line`, `header line`…). */
export function headLineTooLong(what: string): HttpError {
  return new HttpError("too-large", `${what} longer than ${MAX_HEAD_LINE_BYTES} bytes`);
}

/** More than {@link MAX_HEADER_COUNT} header fields. */
export function tooManyHeaders(): HttpError {
  return new HttpError("too-large", `more than ${MAX_HEADER_COUNT} header fields`);
}

/**
 * Whether the connection may carry another request after this response (RFC 9112 §9.3). Never after a
 * response whose framing is suspect (RFC 9112 §6.3): one with both Transfer-Encoding and Content-Length
 * ("might indicate an attempt to perform request smuggling or response splitting") is read by its
 * Transfer-Encoding, and one in HTTP/1.0 with Transfer-Encoding has faulty framing — a client "MUST …
 * close the connection after processing the message". Whatever an intermediary made of such a message,
 * the bytes after it cannot be trusted as the next response.
 */
export function keepsAlive(response: HttpResponse): boolean {
  const connection = (response.headers.connection ?? "").toLowerCase();
  if (connection.includes("close")) return false;
  const { headers } = response;
  if (
    headers["transfer-encoding"] !== undefined &&
    (headers["content-length"] !== undefined || response.version === "HTTP/1.0")
  )
    return false;
  if (bodyFraming(response.status, headers).kind === "eof") return false;
  return response.version === "HTTP/1.1" || connection.includes("keep-alive");
}
