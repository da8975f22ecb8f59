/**
 * lib/websocket/handshake.ts — the opening handshake, server side (RFC 6455 §4.2.1, §4.2.2), the version
 * rule (§4.4) and the Origin check (§10.2).
 *
 * A browser asks, in an ordinary HTTP/1.1 GET:
 *
 *   GET /chat HTTP/1.1
 *   Host: 127.0.0.1:8080
 *   Upgrade: websocket
 *   Connection: keep-alive, Upgrade          ← a token list (Firefox sends this one)
 *   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 *   Sec-WebSocket-Version: 13
 *   Origin: http://127.0.0.1:8080
 *
 * and the server, if it agrees, answers with the head below — after which the connection carries frames:
 *
 *   HTTP/1.1 101 Switching Protocols
 *   Upgrade: websocket
 *   Connection: Upgrade
 *   Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=     ← base64(SHA-1(key + the RFC's GUID))
 *
 * The accept value proves the server read *this* handshake (a cache or a confused HTTP server would not
 * compute it). It is not security: anyone can compute it.
 *
 * The Origin check is. A browser lets any page open a WebSocket to any server, and sends along the cookies
 * it holds for that server: without the check, a page on another site could join the room as whoever is
 * logged in there (cross-site WebSocket hijacking). Browsers always send `Origin` and pages cannot forge
 * it; so a request from another origin is refused (403), one from the page's own origin (the `Host` it
 * asked for) or a listed one is allowed, and one with no `Origin` at all is not from a browser (`nc`, a
 * test client, a load generator) and is allowed — such a client can send any Origin it likes anyway.
 *
 * No subprotocol and no extension is agreed: the reply never has `Sec-WebSocket-Protocol` or
 * `Sec-WebSocket-Extensions`, so a permessage-deflate offer is declined (lib/websocket/connection.ts says
 * why), and a client that required a subprotocol gives up, as §4.1 tells it to.
 */
import type { RequestHead } from "../http-request-head.ts";
import { showControls } from "../sanitize.ts";

/** The protocol version this server speaks (§4.4, §11.6): 13, the only one browsers have sent since 2011. */
export const WEBSOCKET_VERSION = 13;
/** Appended to the client's key before hashing (§1.3, §4.2.2). */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A key is a random 16-byte value, base64-encoded: 22 characters and `==` (§4.1). */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/;
/** An origin, serialized (RFC 6454 §6.2): scheme, `://`, host, optional port — no path, no user. */
const ORIGIN_PATTERN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\s]+$/i;

/** What `checkUpgrade` decided: the 101 head to write, or the refusal to send instead. */
export type UpgradeDecision =
  | { ok: true; response: string }
  | {
      ok: false;
      status: number;
      /** One line, for the response body and the log (control characters shown, not obeyed). */
      reason: string;
      /** Header fields the refusal must carry (426: `Sec-WebSocket-Version`; 405: `Allow`). */
      headers: Record<string, string>;
    };

export interface UpgradeOptions {
  /**
   * Origins allowed besides the page's own, e.g. `http://localhost:5173` (lesson 08's `--allow-origin`).
   * Compared as origins: scheme, host (lower-cased) and port.
   */
  allowedOrigins?: readonly string[];
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2 step 5.4): base64(SHA-1(key + GUID)). */
export function acceptKeyFor(key: string): string {
  return new Bun.CryptoHasher("sha1").update(key + ACCEPT_GUID).digest("base64");
}

/**
 * Whether the request asks to become a WebSocket: its `Upgrade` header lists the `websocket` token. Such a
 * request goes to {@link checkUpgrade}, which checks everything else; any other goes to the HTTP routes.
 */
export function isWebSocketUpgrade(head: RequestHead): boolean {
  return hasToken(head.headers.upgrade, "websocket");
}

/**
 * Checks a request against §4.2.1 and the Origin rule, and says how to answer it:
 * - 405 (with `Allow: GET`) for another method;
 * - 400 for HTTP/1.0, a `Connection` header without the `upgrade` token, or a `Sec-WebSocket-Key` that is
 *   not the base64 of 16 bytes (missing, repeated, or the wrong length);
 * - 426 (with `Upgrade: websocket`) when `Upgrade` does not list `websocket` (RFC 9110 §15.5.22);
 * - 426 (with `Sec-WebSocket-Version: 13`) when the version is not 13 or is missing (§4.4);
 * - 403 for an `Origin` that is neither the page's own (`http://` + `Host`) nor in `allowedOrigins`;
 * - else `ok` and the full 101 head (ending in the empty line) to write before the first frame.
 */
export function checkUpgrade(head: RequestHead, options: UpgradeOptions = {}): UpgradeDecision {
  const { headers } = head;
  if (head.method !== "GET") {
    return refuse(405, `a WebSocket handshake is a GET, not ${head.method}`, { allow: "GET" });
  }
  if (head.version !== "HTTP/1.1") return refuse(400, "a WebSocket handshake needs HTTP/1.1");
  if (!hasToken(headers.upgrade, "websocket")) {
    return refuse(426, "this resource is a WebSocket: Upgrade: websocket expected", {
      upgrade: "websocket",
      connection: "Upgrade",
    });
  }
  if (!hasToken(headers.connection, "upgrade")) {
    return refuse(400, "Connection header without the upgrade token");
  }
  const version = headers["sec-websocket-version"];
  if (version !== String(WEBSOCKET_VERSION)) {
    const got = version === undefined ? "none" : `"${showControls(version.slice(0, 40))}"`;
    return refuse(426, `WebSocket version ${WEBSOCKET_VERSION} only (got ${got})`, {
      "sec-websocket-version": String(WEBSOCKET_VERSION),
    });
  }
  const key = headers["sec-websocket-key"];
  if (key === undefined || !KEY_PATTERN.test(key)) {
    return refuse(400, "Sec-WebSocket-Key is not the base64 of 16 bytes");
  }
  const origin = headers.origin;
  if (origin !== undefined && !originAllowed(origin, headers.host, options.allowedOrigins ?? [])) {
    return refuse(403, `origin "${showControls(origin.slice(0, 80))}" is not allowed`);
  }
  return {
    ok: true,
    response:
      "HTTP/1.1 101 Switching Protocols\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${acceptKeyFor(key)}\r\n` +
      "\r\n",
  };
}

/**
 * The HTTP response for a refusal: status line, the decision's headers, a one-line text body saying why,
 * `Connection: close` (a failed handshake ends the connection). For a RequestHeadError too:
 * `refusalResponse({ ok: false, status: error.status, reason: error.reason, headers: {} })`.
 */
export function refusalResponse(decision: Extract<UpgradeDecision, { ok: false }>): string {
  const body = `${decision.reason}\n`;
  let head = `HTTP/1.1 ${decision.status} ${STATUS_TEXT[decision.status] ?? "Error"}\r\n`;
  for (const [name, value] of Object.entries(decision.headers)) head += `${name}: ${value}\r\n`;
  head +=
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n";
  return head + body;
}

/** Reason phrases (RFC 9110 §15) of the refusals a handshake or a request head gets. */
const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  505: "HTTP Version Not Supported",
};

/**
 * An origin in the one form two origins are compared in — `scheme://host[:port]`, host lower-cased, the
 * scheme's default port dropped (RFC 6454 §6.2) — or `null` if `value` is not an http(s) origin (the
 * browser's `null` origin of a sandboxed page or a file included). For `--allow-origin` too.
 */
export function normalizeOrigin(value: string): string | null {
  if (!ORIGIN_PATTERN.test(value)) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return url.origin;
}

/** The Origin rule: the page's own origin (`http://` + its Host), or one of `allowed`. */
function originAllowed(origin: string, host: string | undefined, allowed: readonly string[]): boolean {
  const normalized = normalizeOrigin(origin);
  if (normalized === null) return false;
  if (host !== undefined && normalized === normalizeOrigin(`http://${host}`)) return true;
  return allowed.some((one) => normalizeOrigin(one) === normalized);
}

/** Whether a comma-separated header value lists `token`, compared case-insensitively (RFC 9110 §5.6.1). */
function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const part of value.split(",")) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

function refuse(
  status: number,
  reason: string,
  headers: Record<string, string> = {},
): Extract<UpgradeDecision, { ok: false }> {
  return { ok: false, status, reason, headers };
}
