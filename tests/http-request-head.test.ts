/**
 * lib/http-request-head.ts over a real socket: a server reads heads one after another (keep-alive) and
 * writes each back as a JSON line — or the RequestHeadError's status and reason, then closes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MAX_REQUEST_HEAD_BYTES, RequestHeadError, readRequestHead } from "../lib/http-request-head.ts";
import { type StreamServer, startServer } from "../lib/streams.ts";
import { LineClient } from "./helpers/servers.ts";

let server: StreamServer;
/** The same, with a 300 ms deadline on each head. */
let hurried: StreamServer;

/** A server that reads heads (with `timeoutMs`, if given) and writes each back as a JSON line. */
function startHeadServer(timeoutMs?: number): Promise<StreamServer> {
  return startServer(
    async (reader, writer) => {
      for (;;) {
        try {
          const head = await readRequestHead(reader, MAX_REQUEST_HEAD_BYTES, timeoutMs);
          if (head === null) {
            writer.write("null\n");
            writer.close();
            return;
          }
          const nullPrototype = Object.getPrototypeOf(head.headers) === null;
          writer.write(`${JSON.stringify({ ...head, headers: { ...head.headers }, nullPrototype })}\n`);
        } catch (error) {
          if (!(error instanceof RequestHeadError)) throw error;
          writer.write(`${JSON.stringify({ status: error.status, reason: error.reason })}\n`);
          writer.close();
          return;
        }
      }
    },
    { limit: MAX_REQUEST_HEAD_BYTES },
  );
}

beforeAll(async () => {
  server = await startHeadServer();
  hurried = await startHeadServer(300);
});
afterAll(() => {
  server.close(true);
  hurried.close(true);
});

/** Sends `request`, returns the server's next answer, parsed. */
async function ask(request: string | Uint8Array, client?: LineClient): Promise<Record<string, unknown>> {
  const own = client ?? (await LineClient.connect(server.port));
  own.send(request);
  const line = await own.line(3000);
  if (!client) own.close();
  return JSON.parse(line ?? "null");
}

describe("readRequestHead", () => {
  test("method, target, version; names lower-cased; a repeated field joined with ', '", async () => {
    const head = await ask(
      "GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: a\r\nX-Thing:  spaced  \r\naccept: b\r\n\r\n",
    );
    expect(head).toEqual({
      method: "GET",
      target: "/chat?room=1",
      version: "HTTP/1.1",
      headers: { host: "127.0.0.1", accept: "a, b", "x-thing": "spaced" },
      nullPrototype: true,
    });
  });

  test("a field named __proto__ or constructor is a field like any other", async () => {
    const head = await ask("GET / HTTP/1.1\r\nHost: h\r\n__proto__: p\r\nConstructor: c\r\n\r\n");
    expect(head.headers).toEqual({ host: "h", ["__proto__"]: "p", constructor: "c" });
  });

  test("keep-alive: two pipelined heads in one write are read one after the other, then EOF gives null", async () => {
    const client = await LineClient.connect(server.port);
    client.send("GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(JSON.parse((await client.line())!).target).toBe("/one");
    expect(JSON.parse((await client.line())!).target).toBe("/two");
    client.writer.writeEof();
    expect(await client.line()).toBe("null");
    client.close();
  });

  test("a clean EOF before any byte is null; empty lines before a request are skipped", async () => {
    const client = await LineClient.connect(server.port);
    client.writer.writeEof();
    expect(await client.line()).toBe("null");
    client.close();
    expect((await ask("\r\n\r\nGET /after-blank HTTP/1.1\r\nHost: h\r\n\r\n")).target).toBe("/after-blank");
  });

  test("bare LF line ends are accepted (RFC 9112 §2.2)", async () => {
    expect((await ask("GET /lf HTTP/1.1\nHost: h\n\n")).target).toBe("/lf");
  });

  test("a head written one byte at a time", async () => {
    const client = await LineClient.connect(server.port);
    for (const char of "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n") {
      client.send(char);
      await Bun.sleep(1);
    }
    expect(JSON.parse((await client.line())!).target).toBe("/slow");
    client.close();
  });

  test("HTTP/1.0 needs no Host", async () => {
    expect(await ask("GET / HTTP/1.0\r\n\r\n")).toMatchObject({ version: "HTTP/1.0", headers: {} });
  });

  const refused: [string, string, number, RegExp][] = [
    ["a request line of two parts", "GET /\r\nHost: h\r\n\r\n", 400, /malformed request line/],
    ["a request line with two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, /malformed request line/],
    ["a lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400, /malformed request line/],
    ["HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, /HTTP version "HTTP\/1.2" not supported/],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, /not supported/],
    ["no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400, /no Host header/],
    ["two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, /more than one Host/],
    ["a field without a colon", "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 400, /malformed header line/],
    ["a space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, /malformed header line/],
    [
      "a name that is not a token",
      "GET / HTTP/1.1\r\nHost: h\r\nBad(name): x\r\n\r\n",
      400,
      /malformed header line/,
    ],
    [
      "a control character in a value",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
      400,
      /malformed header line/,
    ],
    ["a bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, /bare CR/],
    [
      "an obs-fold continuation line",
      "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n",
      400,
      /folded header line/,
    ],
    ["too many empty lines first", "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, /empty lines/],
  ];
  for (const [what, request, status, reason] of refused) {
    test(`refuses ${what}: ${status}`, async () => {
      const answer = await ask(request);
      expect(answer.status).toBe(status);
      expect(answer.reason).toMatch(reason);
    });
  }

  test("EOF inside the head: 400, with how far it got", async () => {
    const client = await LineClient.connect(server.port);
    client.send("GET / HTTP/1.1\r\nHost: h\r\n");
    client.writer.writeEof();
    const answer = JSON.parse((await client.line())!);
    expect(answer).toEqual({
      status: 400,
      reason: "connection closed inside the request head, after 25 bytes",
    });
    client.close();
  });

  test("a head of exactly 8 KiB is read; one byte more is 431", async () => {
    const start = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    const pad = (n: number) => `${start}${"a".repeat(n - start.length - 4)}\r\n\r\n`;
    expect(pad(MAX_REQUEST_HEAD_BYTES).length).toBe(MAX_REQUEST_HEAD_BYTES);
    expect((await ask(pad(MAX_REQUEST_HEAD_BYTES))).target).toBe("/");
    const over = await ask(pad(MAX_REQUEST_HEAD_BYTES + 1));
    expect(over.status).toBe(431);
    expect(over.reason).toMatch(/request head larger than 8192 bytes/);
  });

  test("many short fields over 8 KiB in all: 431", async () => {
    const fields = Array.from({ length: 90 }, (_, index) => `X-${index}: ${"v".repeat(90)}\r\n`).join("");
    expect((await ask(`GET / HTTP/1.1\r\nHost: h\r\n${fields}\r\n`)).status).toBe(431);
  });

  test("more than 100 fields: 431", async () => {
    const fields = Array.from({ length: 101 }, (_, index) => `X-${index}: v\r\n`).join("");
    const answer = await ask(`GET / HTTP/1.1\r\nHost: h\r\n${fields}\r\n`);
    expect(answer).toEqual({ status: 431, reason: "more than 100 header fields" });
  });

  test("a line that never ends is refused once 8 KiB are buffered, without waiting for its end", async () => {
    const client = await LineClient.connect(server.port);
    client.send(`GET /${"a".repeat(MAX_REQUEST_HEAD_BYTES + 100)}`); // no newline, connection kept open
    const answer = JSON.parse((await client.line(2000))!);
    expect(answer.status).toBe(431);
    client.close();
  });

  test("a head still incomplete at the deadline: 408 when it passes, not later", async () => {
    const client = await LineClient.connect(hurried.port);
    const started = performance.now();
    client.send("GET / HTTP/1.1\r\nHost: h\r\nX-Slow: a"); // and then nothing (slowloris)
    expect(JSON.parse((await client.line(2000))!)).toEqual({
      status: 408,
      reason: "no complete request head within 300 ms",
    });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1000);
    client.close();
  });

  test("an idle keep-alive connection at the deadline: null (nothing to answer)", async () => {
    const client = await LineClient.connect(hurried.port);
    client.send("GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(JSON.parse((await client.line())!).target).toBe("/first");
    expect(await client.line(2000)).toBe("null"); // the next head never came
    client.close();
  });

  test("a head that completes in time is not cut by the deadline", async () => {
    const client = await LineClient.connect(hurried.port);
    client.send("GET / HTTP/1.1\r\n");
    await Bun.sleep(100);
    client.send("Host: h\r\n\r\n");
    expect(JSON.parse((await client.line())!).target).toBe("/");
    client.close();
  });

  test("escape sequences in what an error quotes are shown, not obeyed", async () => {
    const answer = await ask("GET /\x1b[2J\x1b]0;pwned\x07 HTTP/1.1\r\nHost: h\r\n\r\n");
    expect(answer.status).toBe(400);
    const reason = answer.reason as string;
    expect(reason).not.toMatch(/[\x00-\x1f\x7f]/);
    expect(reason).toContain("␛[2J");
  });
});
