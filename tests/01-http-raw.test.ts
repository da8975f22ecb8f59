import { afterAll, describe, expect, test } from "bun:test";
import { fetchRaw, parseArgs, parseResponse, startDemoServer } from "../scripts/01-http-raw.ts";
import {
  AWKWARD_CASES,
  describeHttps,
  startNodeServer,
  startRawServer,
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

  test("parses its arguments and refuses bad ones with one line", () => {
    expect(parseArgs(["http://a/", "--timeout", "2", "--body"])).toEqual({
      urls: ["http://a/"],
      timeoutMs: 2000,
      showBody: true,
    });
    expect(() => parseArgs(["--timeout", "soon"])).toThrow(
      "--timeout needs a number of seconds greater than 0",
    );
    expect(() => parseArgs(["--verbose"])).toThrow("unknown option --verbose");
  });
});

describe("lesson 01 as a command", () => {
  test("runs with no arguments against its own local server", async () => {
    const { exitCode, stdout } = await runScript(["scripts/01-http-raw.ts"]);
    expect(exitCode).toBe(0);
    expect(stdout).toContain("no URL given: fetching from a local demo server");
    expect(stdout).toContain("/hello → 200 OK");
    expect(stdout).toContain("streamed in chunks");
  });

  test("prints one clear line, not a stack trace, for each bad URL", async () => {
    const { exitCode, stderr } = await runScript([
      "scripts/01-http-raw.ts",
      "http://127.0.0.1:1/",
      "ftp://example.com/",
      "http://host.invalid/",
    ]);
    expect(exitCode).toBe(1);
    expect(stderr.trim().split("\n")).toEqual([
      "http://127.0.0.1:1/: cannot connect to 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
      "ftp://example.com/: unsupported URL scheme ftp: (use http: or https:)",
      "http://host.invalid/: cannot connect to host.invalid:80: unknown host (ENOTFOUND)",
    ]);
    expect(hasStackTrace(stderr)).toBe(false);
  });

  describeHttps(
    "scripts/01-http-raw.ts",
    (port) => new RegExp(`^https://localhost:${port}/: TLS handshake failed: self signed certificate$`),
  );
});
