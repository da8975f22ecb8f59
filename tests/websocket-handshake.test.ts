/**
 * The opening handshake (RFC 6455 §4.2) and the Origin check (§10.2): lib/websocket/handshake.ts on its
 * own, then over a real socket against the echo server — what is accepted (and that the 101 is exactly
 * right), what is refused with which status, and that a refused connection is closed.
 */
import { describe, expect, test } from "bun:test";
import type { RequestHead } from "../lib/http-request-head.ts";
import {
  acceptKeyFor,
  checkUpgrade,
  isWebSocketUpgrade,
  normalizeOrigin,
  WEBSOCKET_VERSION,
} from "../lib/websocket/handshake.ts";
import { closeNormally, expectText, TCP_CLOSE_MS, TEXT, useEchoServer } from "./helpers/websocket-cases.ts";
import {
  clientFrame,
  EXAMPLE_KEY,
  handshakeRequest,
  RawWebSocketClient,
} from "./helpers/websocket-client.ts";

/** A browser's handshake head, with `fields` changed (an empty string removes one). */
function headWith(fields: Record<string, string> = {}, method = "GET"): RequestHead {
  const headers: Record<string, string> = Object.assign(Object.create(null), {
    host: "127.0.0.1:8080",
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": EXAMPLE_KEY,
    "sec-websocket-version": "13",
  });
  for (const [name, value] of Object.entries(fields)) {
    if (value === "") delete headers[name];
    else headers[name] = value;
  }
  return { method, target: "/", version: "HTTP/1.1", headers };
}

describe("handshake.ts", () => {
  test("the RFC's example key gives the RFC's example accept (§1.3)", () => {
    expect(acceptKeyFor(EXAMPLE_KEY)).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    expect(WEBSOCKET_VERSION).toBe(13);
  });

  test("the 101 head, exactly", () => {
    expect(checkUpgrade(headWith())).toEqual({
      ok: true,
      response:
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    });
  });

  test("isWebSocketUpgrade: the websocket token in Upgrade, any case, in a list", () => {
    expect(isWebSocketUpgrade(headWith())).toBe(true);
    expect(isWebSocketUpgrade(headWith({ upgrade: "WebSocket" }))).toBe(true);
    expect(isWebSocketUpgrade(headWith({ upgrade: "h2c, websocket" }))).toBe(true);
    expect(isWebSocketUpgrade(headWith({ upgrade: "websockets" }))).toBe(false);
    expect(isWebSocketUpgrade(headWith({ upgrade: "" }))).toBe(false);
  });

  test("Connection is a token list: Firefox's 'keep-alive, Upgrade' is fine; 'upgraded' is not", () => {
    expect(checkUpgrade(headWith({ connection: "keep-alive, Upgrade" })).ok).toBe(true);
    expect(checkUpgrade(headWith({ connection: "UPGRADE" })).ok).toBe(true);
    expect(checkUpgrade(headWith({ connection: "upgraded" }))).toMatchObject({ ok: false, status: 400 });
    expect(checkUpgrade(headWith({ connection: "keep-alive" }))).toMatchObject({ ok: false, status: 400 });
  });

  test("keys: base64 of exactly 16 bytes", () => {
    expect(checkUpgrade(headWith({ "sec-websocket-key": "" }))).toMatchObject({ status: 400 });
    expect(checkUpgrade(headWith({ "sec-websocket-key": "abc" }))).toMatchObject({ status: 400 });
    const fifteen = Buffer.alloc(15, 1).toString("base64");
    const seventeen = Buffer.alloc(17, 1).toString("base64");
    expect(checkUpgrade(headWith({ "sec-websocket-key": fifteen }))).toMatchObject({ status: 400 });
    expect(checkUpgrade(headWith({ "sec-websocket-key": seventeen }))).toMatchObject({ status: 400 });
    expect(checkUpgrade(headWith({ "sec-websocket-key": `${EXAMPLE_KEY}, ${EXAMPLE_KEY}` }))).toMatchObject({
      status: 400,
    });
    expect(checkUpgrade(headWith({ "sec-websocket-key": Buffer.alloc(16, 9).toString("base64") })).ok).toBe(
      true,
    );
  });

  test("normalizeOrigin: scheme, lower-cased host, port without the default; anything else null", () => {
    expect(normalizeOrigin("http://LOCALHOST:8080")).toBe("http://localhost:8080");
    expect(normalizeOrigin("http://example.com:80")).toBe("http://example.com");
    expect(normalizeOrigin("https://example.com:443")).toBe("https://example.com");
    expect(normalizeOrigin("null")).toBeNull();
    expect(normalizeOrigin("http://example.com/path")).toBeNull();
    expect(normalizeOrigin("http://user@example.com")).toBeNull();
    expect(normalizeOrigin("ftp://example.com")).toBeNull();
    expect(normalizeOrigin("file://")).toBeNull();
  });

  test("Origin: same as the page's own (any case, default port or not) is allowed; others 403", () => {
    expect(checkUpgrade(headWith({ origin: "http://127.0.0.1:8080" })).ok).toBe(true);
    expect(checkUpgrade(headWith({ host: "LocalHost:8080", origin: "http://localhost:8080" })).ok).toBe(true);
    expect(checkUpgrade(headWith({ host: "example.com", origin: "http://example.com:80" })).ok).toBe(true);
    for (const origin of [
      "http://127.0.0.1:8081", // another port is another origin
      "https://127.0.0.1:8080", // another scheme too
      "http://evil.example",
      "http://127.0.0.1:8080.evil.example",
      "null",
    ]) {
      expect(checkUpgrade(headWith({ origin }))).toMatchObject({ ok: false, status: 403 });
    }
  });

  test("Origin: one in allowedOrigins is allowed, compared as an origin", () => {
    const options = { allowedOrigins: ["http://LOCALHOST:5173"] };
    expect(checkUpgrade(headWith({ origin: "http://localhost:5173" }), options).ok).toBe(true);
    expect(checkUpgrade(headWith({ origin: "http://localhost:5174" }), options)).toMatchObject({
      status: 403,
    });
  });

  test("a refusal's reason shows control characters instead of obeying them", () => {
    const decision = checkUpgrade(headWith({ origin: "http://\x1b[31mred" }));
    expect(decision).toMatchObject({ ok: false, status: 403 });
    expect(JSON.stringify(decision)).not.toContain("\\u001b");
  });
});

describe("the handshake over a socket", () => {
  const server = useEchoServer({ allowedOrigins: ["http://allowed.example"] });

  /** Sends a handshake with `fields` changed, returns the reply; checks TCP is closed after a refusal. */
  async function handshake(fields: Record<string, string> = {}, request?: string) {
    const client = await RawWebSocketClient.open(server().port);
    client.send(request ?? handshakeRequest(server().port, "/", fields));
    const reply = await client.readHttpReply();
    if (reply.status !== 101) {
      expect(reply.headers.connection).toBe("close");
      await client.waitForEnd(TCP_CLOSE_MS);
    }
    client.close();
    return reply;
  }

  test("a browser's handshake gets the 101 with the right accept, and messages flow", async () => {
    const client = await RawWebSocketClient.open(server().port);
    client.send(handshakeRequest(server().port));
    const reply = await client.readHttpReply();
    expect(reply.status).toBe(101);
    expect(reply.headers["sec-websocket-accept"]).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    expect(reply.headers.upgrade).toBe("websocket");
    client.sendFrame(TEXT, "hello");
    await expectText(client, "hello");
    await closeNormally(client);
  });

  test("permessage-deflate and subprotocols offered: neither is accepted", async () => {
    const reply = await handshake({
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
      "Sec-WebSocket-Protocol": "chat, superchat",
    });
    expect(reply.status).toBe(101);
    expect(reply.headers["sec-websocket-extensions"]).toBeUndefined();
    expect(reply.headers["sec-websocket-protocol"]).toBeUndefined();
  });

  test("Firefox's Connection: keep-alive, Upgrade and Upgrade: WebSocket", async () => {
    expect((await handshake({ Connection: "keep-alive, Upgrade", Upgrade: "WebSocket" })).status).toBe(101);
  });

  test("no Origin (not a browser): allowed; the page's own: allowed; a listed one: allowed", async () => {
    expect((await handshake()).status).toBe(101);
    expect((await handshake({ Origin: `http://127.0.0.1:${server().port}` })).status).toBe(101);
    expect((await handshake({ Origin: "http://allowed.example" })).status).toBe(101);
  });

  test("a cross-site Origin: 403, and the connection closed", async () => {
    const reply = await handshake({ Origin: "http://evil.example" });
    expect(reply.status).toBe(403);
    expect(reply.body).toBe('origin "http://evil.example" is not allowed\n');
  });

  test("a missing or malformed key: 400", async () => {
    expect((await handshake({ "Sec-WebSocket-Key": "" })).status).toBe(400);
    expect((await handshake({ "Sec-WebSocket-Key": "not-base64-of-16-bytes" })).status).toBe(400);
  });

  test("a wrong or missing version: 426 naming 13", async () => {
    for (const version of ["8", "12", "14", ""]) {
      const reply = await handshake({ "Sec-WebSocket-Version": version });
      expect(reply.status).toBe(426);
      expect(reply.headers["sec-websocket-version"]).toBe("13");
    }
  });

  test("POST: 405 with Allow: GET", async () => {
    const request = handshakeRequest(server().port).replace(/^GET/, "POST");
    const reply = await handshake({}, request);
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe("GET");
  });

  test("HTTP/1.0: 400", async () => {
    const request = handshakeRequest(server().port).replace("HTTP/1.1", "HTTP/1.0");
    expect((await handshake({}, request)).status).toBe(400);
  });

  test("no Upgrade: 426 with Upgrade: websocket; Connection without upgrade: 400", async () => {
    const reply = await handshake({ Upgrade: "" });
    expect(reply.status).toBe(426);
    expect(reply.headers.upgrade).toBe("websocket");
    expect((await handshake({ Connection: "keep-alive" })).status).toBe(400);
  });

  test("a head over 8 KiB: 431", async () => {
    expect((await handshake({ "X-Padding": "p".repeat(9000) })).status).toBe(431);
  });

  test("HTTP/2.0 in the request line: 505; garbage: 400", async () => {
    const request = handshakeRequest(server().port).replace("HTTP/1.1", "HTTP/2.0");
    expect((await handshake({}, request)).status).toBe(505);
    expect((await handshake({}, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")).status).toBe(400);
  });

  test("a handshake written one byte at a time", async () => {
    const client = await RawWebSocketClient.open(server().port);
    await client.sendSlowly(handshakeRequest(server().port), 0);
    expect((await client.readHttpReply()).status).toBe(101);
    await closeNormally(client);
  });

  test("a frame sent in the same write as the handshake is read after it, not lost", async () => {
    const client = await RawWebSocketClient.open(server().port);
    client.send(Buffer.concat([Buffer.from(handshakeRequest(server().port)), clientFrame(TEXT, "eager")]));
    expect((await client.readHttpReply()).status).toBe(101);
    await expectText(client, "eager");
    await closeNormally(client);
  });
});
