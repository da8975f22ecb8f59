/**
 * Real HTTP peers for the lesson 01/02 tests: a raw TCP server that sends deliberately awkward responses,
 * node:http, and a TLS server with a certificate made by openssl for the test.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import type { HttpResponse } from "../../lib/http.ts";
import { runScript } from "./run.ts";

const utf8 = new TextEncoder();

/** A scripted response and how to send it. */
export interface AwkwardResponse {
  /** Bytes to send once the request head has arrived. */
  bytes: string | Uint8Array;
  /** Send one byte per write, with a pause between, so each arrives in its own TCP segment. */
  oneBytePerSegment?: boolean;
  /** Close after sending (default true); false keeps the connection open and silent. */
  close?: boolean;
  /** Wait this long before answering (a slow path). */
  delayMs?: number;
  /** Bytes nobody asked for, sent this long after the response while the connection sits idle. */
  unsolicited?: { afterMs: number; bytes: string };
}

/** A raw TCP server: each connection gets `respond(path)`'s bytes after its request head. */
export function startRawServer(respond: (path: string) => AwkwardResponse | null) {
  let connections = 0;
  const listener: TCPSocketListener<{ head: string }> = Bun.listen<{ head: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        connections++;
        socket.data = { head: "" };
        socket.setNoDelay(true);
      },
      data(socket, chunk) {
        socket.data.head += new TextDecoder().decode(chunk);
        // Serve every complete request head (a keep-alive client sends several).
        for (
          let end = socket.data.head.indexOf("\r\n\r\n");
          end !== -1;
          end = socket.data.head.indexOf("\r\n\r\n")
        ) {
          const head = socket.data.head.slice(0, end);
          socket.data.head = socket.data.head.slice(end + 4);
          const path = head.split(" ")[1] ?? "/";
          const response = respond(path);
          if (response) void send(socket, response);
        }
      },
    },
  });
  return {
    url: `http://127.0.0.1:${listener.port}`,
    get connections() {
      return connections;
    },
    stop: () => listener.stop(true),
  };
}

async function send(socket: Bun.Socket<{ head: string }>, response: AwkwardResponse) {
  if (response.delayMs) await Bun.sleep(response.delayMs);
  const bytes = typeof response.bytes === "string" ? utf8.encode(response.bytes) : response.bytes;
  if (response.oneBytePerSegment) {
    for (let i = 0; i < bytes.length; i++) {
      socket.write(bytes.subarray(i, i + 1));
      await Bun.sleep(1);
    }
  } else {
    // Test peer with its own send queue: Bun's write() takes only what the kernel has room for.
    let rest = bytes;
    while (rest.length > 0) {
      const written = socket.write(rest);
      if (written < 0) return;
      rest = rest.subarray(written);
      if (rest.length > 0) await Bun.sleep(1);
    }
  }
  if (response.close !== false) socket.end();
  const unsolicited = response.unsolicited;
  if (unsolicited) setTimeout(() => socket.write(unsolicited.bytes), unsolicited.afterMs);
}

/**
 * A server that, after the request, sends `prefix` and then an endless line of `x` — as fast as the client
 * takes it, up to `capBytes` (so a client that never stops reading still ends). Counts what it sent.
 */
/**
 * A server that answers like a person typing into `nc -l`: after the request arrives, each of `pieces` is
 * its own write, 50 ms apart; then FIN if `end` (Ctrl+C in nc), else the connection stays open.
 */
export function startTypistServer(pieces: readonly string[], end: boolean) {
  return Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async data(socket) {
        for (const piece of pieces) {
          await Bun.sleep(50);
          socket.write(piece);
        }
        if (end) socket.end();
      },
    },
  });
}

export function startFloodServer(prefix: string, capBytes = 256 * 1024 * 1024) {
  const block = new Uint8Array(64 * 1024).fill(0x78);
  let sent = 0;
  const pump = (socket: Bun.Socket<{ sent: number }>) => {
    while (socket.data.sent < capBytes) {
      const written = socket.write(block);
      if (written <= 0) return; // the kernel is full: `drain` calls again
      socket.data.sent += written;
      sent += written;
      if (written < block.length) return;
    }
    socket.end();
  };
  const listener = Bun.listen<{ sent: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { sent: 0 };
      },
      data(socket) {
        if (socket.data.sent > 0) return;
        socket.write(prefix);
        socket.data.sent = 1;
        pump(socket);
      },
      drain: pump,
    },
  });
  return {
    url: `http://127.0.0.1:${listener.port}`,
    get sentBytes() {
      return sent;
    },
    stop: () => listener.stop(true),
  };
}

/** node:http on a free port: `/chunked` streams three writes (Transfer-Encoding: chunked). */
export async function startNodeServer(): Promise<{ url: string; stop: () => void }> {
  const server: Server = createServer((request, response) => {
    if (request.url === "/chunked") {
      response.writeHead(200, { "content-type": "text/plain" });
      response.write("one ");
      setTimeout(() => {
        response.write("two ");
        response.end("three");
      }, 5);
      return;
    }
    response.end("node says hi");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, stop: () => server.close() };
}

/** Makes a self-signed certificate for `localhost` with openssl, or returns null if openssl is missing. */
export function makeCertificate(): {
  cert: string;
  key: string;
  certPath: string;
  cleanup: () => void;
} | null {
  if (!Bun.which("openssl")) return null;
  const folder = mkdtempSync(join(tmpdir(), "lesson-tls-"));
  const certPath = join(folder, "cert.pem");
  const keyPath = join(folder, "key.pem");
  const made = Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ],
    { stderr: "pipe" },
  );
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  return {
    cert: readFileSync(certPath, "utf8"),
    key: readFileSync(keyPath, "utf8"),
    certPath,
    cleanup: () => rmSync(folder, { recursive: true, force: true }),
  };
}

const FIVE_MB = 5 * 1024 * 1024;
/** A 5 MB body with a recognisable pattern. */
export const bigBody = new Uint8Array(FIVE_MB).map((_, i) => 97 + (i % 26));

/** The awkward responses both HTTP lessons must handle, and what each should give. */
export const AWKWARD_CASES: {
  name: string;
  response: AwkwardResponse;
  expected:
    | { status: number; body: string | Uint8Array; headers?: Record<string, string> }
    | { error: string };
}[] = [
  {
    name: "a response sent one byte per TCP segment",
    response: {
      bytes: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Héader: ok\r\n\r\nhello world",
      oneBytePerSegment: true,
    },
    expected: { status: 200, body: "hello world" },
  },
  {
    name: "a chunked body with chunk extensions and trailers",
    response: {
      bytes:
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5;name=value\r\nhello\r\n6\r\n world\r\nA ; ext\r\n, chunked!\r\n0\r\nX-Checksum: abc\r\n\r\n",
    },
    expected: { status: 200, body: "hello world, chunked!" },
  },
  {
    name: "a chunked body sent one byte per TCP segment",
    response: {
      bytes: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      oneBytePerSegment: true,
    },
    expected: { status: 200, body: "abc" },
  },
  {
    name: "no Content-Length: the body ends when the server closes",
    response: { bytes: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end" },
    expected: { status: 200, body: "until the end" },
  },
  {
    name: "204 No Content has no body",
    response: { bytes: "HTTP/1.1 204 No Content\r\nX-Note: empty\r\n\r\n" },
    expected: { status: 204, body: "" },
  },
  {
    name: "an interim 100 Continue before the real response",
    response: { bytes: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
    expected: { status: 200, body: "ok" },
  },
  {
    name: "a 5 MB body",
    response: {
      bytes: Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${FIVE_MB}\r\n\r\n`), bigBody]),
    },
    expected: { status: 200, body: bigBody },
  },
  {
    name: "bare \\n line endings, as a response typed into nc (RFC 9112 §2.2)",
    response: { bytes: "HTTP/1.1 200 OK\nContent-Type: text/plain\n\nhello from nc\n" },
    expected: { status: 200, body: "hello from nc\n", headers: { "content-type": "text/plain" } },
  },
  {
    name: "header fields named like Object's own properties",
    response: {
      bytes:
        "HTTP/1.1 200 OK\r\nConstructor: c\r\n__proto__: p\r\nhasOwnProperty: h\r\nContent-Length: 2\r\n\r\nok",
    },
    expected: {
      status: 200,
      body: "ok",
      headers: { constructor: "c", ["__proto__"]: "p", hasownproperty: "h", "content-length": "2" },
    },
  },
  {
    name: "a body shorter than its Content-Length",
    response: { bytes: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this" },
    expected: { error: "body shorter than announced: got 9 of 100 bytes" },
  },
  {
    name: "a truncated chunked body",
    response: { bytes: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort" },
    expected: { error: "body shorter than announced" },
  },
  {
    name: "a garbage status line",
    response: { bytes: "SSH-2.0-OpenSSH_9.2\r\n\r\n" },
    expected: { error: 'malformed status line: "SSH-2.0-OpenSSH_9.2"' },
  },
  {
    name: "a bad chunk size",
    response: { bytes: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" },
    expected: { error: 'bad chunk size: "zz"' },
  },
  {
    name: "a server that closes without answering",
    response: { bytes: "" },
    expected: { error: "the server closed the connection without a response" },
  },
  {
    name: "a response cut off inside its headers (the error says what came)",
    response: { bytes: "HTTP/1.1 200 OK\r\nX-Cut: of" },
    expected: { error: 'response ended inside the header line, after 9 bytes: "X-Cut: of"' },
  },
];

/**
 * The HTTPS cases both HTTP lessons share: a local TLS server with a certificate made for the test, the
 * lesson run once trusting it (NODE_EXTRA_CA_CERTS) and once not. Skipped, with a printed reason, only
 * where openssl is missing.
 */
export function describeHttps(script: string, untrustedLine: (port: number) => RegExp): void {
  describe("over HTTPS", () => {
    const certificate = makeCertificate();
    let server: ReturnType<typeof Bun.serve> | undefined;
    beforeAll(() => {
      if (!certificate) {
        console.log(
          `skipping the HTTPS tests of ${script}: openssl is not installed, so no certificate can be made`,
        );
        return;
      }
      server = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: certificate.cert, key: certificate.key },
        fetch: () => new Response("over TLS"),
      });
    });
    afterAll(() => {
      server?.stop(true);
      certificate?.cleanup();
    });

    test.skipIf(!certificate)(
      "fetches from a local TLS server that trusts the test's certificate",
      async () => {
        const { exitCode, stdout } = await runScript(
          [script, `https://localhost:${server!.port}/`, "--body"],
          {
            env: { NODE_EXTRA_CA_CERTS: certificate!.certPath },
          },
        );
        expect(exitCode).toBe(0);
        expect(stdout).toContain("200 OK");
        expect(stdout).toContain("over TLS");
      },
    );

    test.skipIf(!certificate)("refuses an untrusted certificate with one line", async () => {
      const { exitCode, stderr } = await runScript([script, `https://localhost:${server!.port}/`]);
      expect(exitCode).toBe(1);
      expect(stderr.trim()).toMatch(untrustedLine(server!.port as number));
    });
  });
}

/** One test per awkward case: `get(url)` must give the expected status and body, or reject with the error. */
export function testAwkwardCases(
  label: string,
  baseUrl: () => string,
  get: (url: string) => Promise<HttpResponse>,
) {
  AWKWARD_CASES.forEach(({ name, expected }, index) => {
    test(`${label} handles ${name}`, async () => {
      const result = get(`${baseUrl()}/${index}`);
      if ("error" in expected) {
        await expect(result).rejects.toThrow(expected.error);
        return;
      }
      const response = await result;
      expect(response.status).toBe(expected.status);
      // Every field as sent, and nothing inherited: a null-prototype object.
      expect(Object.getPrototypeOf(response.headers)).toBeNull();
      for (const [name, value] of Object.entries(expected.headers ?? {})) {
        expect(Object.hasOwn(response.headers, name)).toBe(true);
        expect(response.headers[name]).toBe(value);
      }
      if (typeof expected.body === "string")
        expect(new TextDecoder().decode(response.body)).toBe(expected.body);
      else expect(Bun.deepEquals(response.body, expected.body)).toBe(true);
    });
  });
}

/**
 * A server whose status reason, header field and body carry terminal escapes (retitle the window, clear
 * the screen, turn text red, ring the bell): the lesson must print them neutralised, as ␛ and ␇.
 */
export function describeHostileCli(script: string): void {
  test(`${script} shows a server's escape sequences instead of sending them to the terminal`, async () => {
    const hostile = startRawServer(() => ({
      bytes:
        "HTTP/1.1 200 OK\x1b]0;pwned\x07\r\nX-Evil: \x1b[2J\x1b[H\r\nContent-Length: 17\r\n\r\n\x1b[31mred\x07\r\nline2\n",
    }));
    try {
      const { exitCode, stdout } = await runScript([script, `${hostile.url}/`, "--body"]);
      expect(exitCode).toBe(0);
      expect(stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/); // no control character but \n and \t
      expect(stdout).toContain("200 OK␛]0;pwned␇");
      expect(stdout).toContain("x-evil: ␛[2J␛[H");
      expect(stdout).toContain("␛[31mred␇\nline2");
    } finally {
      hostile.stop();
    }
  });
}
