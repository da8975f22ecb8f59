import { afterAll, describe, expect, test } from "bun:test";
import { buildGetRequest, HttpError, MAX_HEAD_LINE_BYTES, parseTarget } from "../lib/http.ts";
import { startDemoServer } from "../lib/http-demo-server.ts";
import { fetchRaw, parseResponse } from "../scripts/01-http-raw.ts";
import {
  AWKWARD_CASES,
  describeHostileCli,
  describeHttps,
  startFloodServer,
  startNodeServer,
  startRawServer,
  startTypistServer,
  testAwkwardCases,
} from "./helpers/http-peers.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("lesson 01: fetchRaw on raw socket callbacks", () => {
  const raw = startRawServer((path) => {
    const index = Number(path.slice(1));
    if (path === "/silent") return { bytes: "", close: false };
    return AWKWARD_CASES[index]?.response ?? null;
  });
  afterAll(() => raw.stop());

  testAwkwardCases(
    "fetchRaw",
    () => raw.url,
    (url) => fetchRaw(url, 5000),
  );

  test("gives up after the timeout when the server never answers", async () => {
    await expect(fetchRaw(`${raw.url}/silent`, 300)).rejects.toThrow("timed out after 0.3 s");
  });

  test("fetches from Bun.serve", async () => {
    const server = startDemoServer();
    try {
      const response = await fetchRaw(new URL("/hi", server.url).href);
      expect(response.status).toBe(200);
      expect(response.headers["content-type"]).toBe("text/plain; charset=utf-8");
      expect(text(response.body)).toBe("hello from /hi — served by Bun.serve on this machine\n");
      const chunked = await fetchRaw(new URL("/chunked", server.url).href);
      expect(chunked.headers["transfer-encoding"]).toBe("chunked");
      expect(text(chunked.body)).toBe("streamed in chunks\n");
    } finally {
      server.stop(true);
    }
  });

  test("decodes node:http's chunked responses", async () => {
    const node = await startNodeServer();
    try {
      const response = await fetchRaw(`${node.url}/chunked`);
      expect(response.headers["transfer-encoding"]).toBe("chunked");
      expect(text(response.body)).toBe("one two three");
    } finally {
      node.stop();
    }
  });

  test("rejects a refused connection with one line", async () => {
    await expect(fetchRaw("http://127.0.0.1:1/")).rejects.toThrow(
      "cannot connect to 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
    );
  });

  test("joins repeated header fields and lower-cases names", () => {
    const bytes = new TextEncoder().encode(
      "HTTP/1.1 200 OK\r\nVary: a\r\nVARY: b\r\nContent-Length: 0\r\n\r\n",
    );
    expect(parseResponse(bytes).headers).toEqual({ vary: "a, b", "content-length": "0" });
  });

  test("refuses conflicting Content-Length values", () => {
    const bytes = new TextEncoder().encode(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    expect(() => parseResponse(bytes)).toThrow('invalid Content-Length: "5, 6"');
  });

  test("fails an endless status line as soon as it passes the head-line limit", async () => {
    const flood = startFloodServer("HTTP/1.1 200 ");
    try {
      const started = performance.now();
      const error = await fetchRaw(flood.url, 10_000).catch((e) => e);
      expect(error).toBeInstanceOf(HttpError);
      expect(error.message).toBe(`status line longer than ${MAX_HEAD_LINE_BYTES} bytes`);
      expect(performance.now() - started).toBeLessThan(3000); // the deadline is 10 s
      expect(flood.sentBytes).toBeLessThan(8 * 1024 * 1024); // not the 64 MiB buffer limit
    } finally {
      flood.stop();
    }
  });

  test("fails an endless header line as soon as it passes the head-line limit", async () => {
    const flood = startFloodServer("HTTP/1.1 200 OK\r\nX-Endless: ");
    try {
      const error = await fetchRaw(flood.url, 10_000).catch((e) => e);
      expect(error.message).toBe(`header line longer than ${MAX_HEAD_LINE_BYTES} bytes`);
      expect(error.code).toBe("too-large");
    } finally {
      flood.stop();
    }
  });

  test("watches the head of the real response after an interim 100 Continue", async () => {
    const flood = startFloodServer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Endless: ");
    try {
      const error = await fetchRaw(flood.url, 10_000).catch((e) => e);
      expect(error.message).toBe(`header line longer than ${MAX_HEAD_LINE_BYTES} bytes`);
    } finally {
      flood.stop();
    }
  });

  test("accepts a head line of exactly the limit, with its \\r\\n", async () => {
    const value = "v".repeat(MAX_HEAD_LINE_BYTES - "X-Long: ".length);
    const server = startRawServer(() => ({
      bytes: `HTTP/1.1 200 OK\r\nX-Long: ${value}\r\nContent-Length: 2\r\n\r\nok`,
    }));
    try {
      expect((await fetchRaw(server.url)).headers["x-long"]).toBe(value);
    } finally {
      server.stop();
    }
  });
});

describe("lesson 01 as a command", () => {
  test("runs with no arguments against its own local server, printing bodies only with --body", async () => {
    const { exitCode, stdout } = await runScript(["scripts/01-http-raw.ts"]);
    expect(exitCode).toBe(0);
    expect(stdout).toContain("no URL given: fetching from a local demo server");
    expect(stdout).toContain("(add --body to see the bodies)");
    expect(stdout).toContain("/hello → 200 OK");
    expect(stdout).toContain("(19 bytes of body)");
    expect(stdout).not.toContain("streamed in chunks");
    const withBody = await runScript(["scripts/01-http-raw.ts", "--body"]);
    expect(withBody.exitCode).toBe(0);
    expect(withBody.stdout).toContain("streamed in chunks");
  });

  test("takes a response typed into nc by hand: bare \\n line endings, body until EOF", async () => {
    // What `nc -l 9000` sends when you type `HTTP/1.1 200 OK`, Enter, Enter, `hi there`, Enter, Ctrl+C.
    const nc = startRawServer(() => ({ bytes: "HTTP/1.1 200 OK\n\nhi there\n" }));
    try {
      const { exitCode, stdout, stderr } = await runScript([
        "scripts/01-http-raw.ts",
        `${nc.url}/`,
        "--body",
      ]);
      expect(stderr).toBe("");
      expect(exitCode).toBe(0);
      expect(stdout).toContain(`${nc.url}/ → 200 OK`);
      expect(stdout).toContain("hi there");
    } finally {
      nc.stop();
    }
  });

  test("--trace prints each callback as it fires: one data_received per piece, then eof_received at FIN", async () => {
    // Like nc with someone typing: three lines, each its own write, 50 ms apart, then FIN.
    const pieces = ["HTTP/1.1 200 OK\n", "\n", "some text\n"];
    const typist = startTypistServer(pieces, true);
    const url = `http://127.0.0.1:${typist.port}/`;
    try {
      const { exitCode, stdout, stderr } = await runScript(["scripts/01-http-raw.ts", url, "--trace"]);
      expect(stderr).toBe("");
      expect(exitCode).toBe(0);
      const request = buildGetRequest(parseTarget(url), false).length;
      expect(stdout.trim().split("\n")).toEqual([
        `GET ${url}`,
        `  · connection_made: sent the request, ${request} of ${request} bytes`,
        "  · data_received: 16 bytes, 16 in the buffer",
        "  · data_received: 1 byte, 17 in the buffer",
        "  · data_received: 10 bytes, 27 in the buffer",
        "  · eof_received: the server is done; parsing the 27 bytes buffered",
        "  · connection_lost",
        `${url} → 200 OK`,
        "  (10 bytes of body)",
      ]);
      const quiet = await runScript(["scripts/01-http-raw.ts", url]);
      expect(quiet.stdout).not.toContain("·");
    } finally {
      typist.stop(true);
    }
  });

  test("prints one clear line, not a stack trace, for each URL it cannot fetch, and exits 1", async () => {
    const { exitCode, stderr } = await runScript([
      "scripts/01-http-raw.ts",
      "http://127.0.0.1:1/",
      "http://host.invalid/",
    ]);
    expect(exitCode).toBe(1);
    expect(stderr.trim().split("\n")).toEqual([
      "http://127.0.0.1:1/: cannot connect to 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
      "http://host.invalid/: cannot connect to host.invalid:80: unknown host (ENOTFOUND)",
    ]);
    expect(hasStackTrace(stderr)).toBe(false);
  });

  test("an argument that is not an http(s) URL is a usage error: one line, exit 2, nothing fetched", async () => {
    for (const [bad, message] of [
      ["ftp://example.com/", "unsupported URL scheme ftp: in ftp://example.com/ (use http: or https:)"],
      ["example.com", "invalid URL: example.com"],
    ]) {
      const { exitCode, stdout, stderr } = await runScript([
        "scripts/01-http-raw.ts",
        "http://127.0.0.1:1/",
        bad!,
      ]);
      expect(exitCode).toBe(2);
      expect(stderr.trim()).toBe(`error: ${message} (see --help)`);
      expect(stdout).toBe("");
    }
  });

  describeHostileCli("scripts/01-http-raw.ts");

  describeHttps(
    "scripts/01-http-raw.ts",
    (port) => new RegExp(`^https://localhost:${port}/: TLS handshake failed: self signed certificate$`),
  );
});
