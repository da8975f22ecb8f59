import { afterAll, describe, expect, test } from "bun:test";
import { HttpClient, httpGet, MAX_BODY_BYTES } from "../scripts/02-http-streams.ts";
import {
  AWKWARD_CASES,
  describeHttps,
  startNodeServer,
  startRawServer,
  testAwkwardCases,
} from "./helpers/http-peers.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("lesson 02: httpGet and HttpClient on StreamReader/StreamWriter", () => {
  const raw = startRawServer((path) => {
    if (path === "/silent") return { bytes: "", close: false };
    if (path === "/huge")
      return { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n` };
    if (path.startsWith("/keep")) {
      return { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`, close: false };
    }
    if (path === "/once") return { bytes: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce" };
    return AWKWARD_CASES[Number(path.slice(1))]?.response ?? null;
  });
  afterAll(() => raw.stop());

  testAwkwardCases(
    "httpGet",
    () => raw.url,
    (url) => httpGet(url, { timeoutMs: 5000 }),
  );
  testAwkwardCases(
    "HttpClient.get",
    () => raw.url,
    (url) => new HttpClient().get(url, { timeoutMs: 5000 }),
  );

  test("keeps chunked trailers as headers", async () => {
    const index = AWKWARD_CASES.findIndex(({ name }) => name.includes("trailers"));
    const response = await httpGet(`${raw.url}/${index}`);
    expect(response.headers["x-checksum"]).toBe("abc");
  });

  test("gives up after the timeout when the server never answers", async () => {
    await expect(httpGet(`${raw.url}/silent`, { timeoutMs: 300 })).rejects.toThrow("timed out after 0.3 s");
    await expect(new HttpClient().get(`${raw.url}/silent`, { timeoutMs: 300 })).rejects.toThrow(
      "timed out after 0.3 s",
    );
  });

  test("HttpClient times out on a kept-alive connection whose deadline already went off while idle", async () => {
    const client = new HttpClient();
    expect((await client.get(`${raw.url}/keep-x`, { timeoutMs: 150 })).status).toBe(200);
    await Bun.sleep(300); // the connection's deadline timer fires while idle, and must be ignored
    await expect(client.get(`${raw.url}/silent`, { timeoutMs: 150 })).rejects.toThrow(
      "timed out after 0.15 s",
    );
    client.close();
  });

  test("refuses a body over the size limit before reading it", async () => {
    await expect(httpGet(`${raw.url}/huge`)).rejects.toThrow(
      `body of ${MAX_BODY_BYTES + 1} bytes is over the limit`,
    );
  });

  test("HttpClient reuses one connection per origin for sequential and concurrent GETs", async () => {
    const client = new HttpClient();
    const before = raw.connections;
    expect(text((await client.get(`${raw.url}/keep-1`)).body)).toBe("/keep-1");
    const bodies = await Promise.all(
      ["/keep-2", "/keep-3", "/keep-4"].map((path) => client.get(`${raw.url}${path}`)),
    );
    expect(bodies.map((response) => text(response.body))).toEqual(["/keep-2", "/keep-3", "/keep-4"]);
    expect(raw.connections - before).toBe(1);
    client.close();
  });

  test("HttpClient opens a new connection after the server closed the previous one", async () => {
    const client = new HttpClient();
    const before = raw.connections;
    expect(text((await client.get(`${raw.url}/once`)).body)).toBe("once");
    await Bun.sleep(20); // the server has closed; the client must notice and not reuse it
    expect(text((await client.get(`${raw.url}/once`)).body)).toBe("once");
    expect(raw.connections - before).toBe(2);
    client.close();
  });

  test("HttpClient retries once when a kept-alive connection was closed while idle", async () => {
    // A server that answers with keep-alive, then closes the idle connection after 30 ms.
    let connections = 0;
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: () => void connections++,
        data(socket) {
          socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
          setTimeout(() => socket.end(), 30);
        },
      },
    });
    const client = new HttpClient();
    try {
      expect(text((await client.get(`http://127.0.0.1:${server.port}/`)).body)).toBe("ok");
      await Bun.sleep(100);
      expect(text((await client.get(`http://127.0.0.1:${server.port}/`)).body)).toBe("ok");
      expect(connections).toBe(2);
    } finally {
      client.close();
      server.stop(true);
    }
  });

  test("fetches node:http's chunked responses with keep-alive", async () => {
    const node = await startNodeServer();
    const client = new HttpClient();
    try {
      expect(text((await client.get(`${node.url}/chunked`)).body)).toBe("one two three");
      expect(text((await client.get(`${node.url}/`)).body)).toBe("node says hi");
    } finally {
      client.close();
      node.stop();
    }
  });
});

describe("lesson 02 as a command", () => {
  test("runs with no arguments, fetching several URLs concurrently from its own server", async () => {
    const { exitCode, stdout } = await runScript(["scripts/02-http-streams.ts"]);
    expect(exitCode).toBe(0);
    expect(stdout).toContain("no URL given");
    expect(stdout.match(/^\[\d+\.\d ms\] http:\/\/127\.0\.0\.1:\d+\/\w+ → 200 OK$/gm)?.length).toBe(4);
    expect(stdout).toMatch(/^4 URLs in \d+\.\d ms$/m);
  });

  test("prints one clear line, not a stack trace, for each failure", async () => {
    const raw = startRawServer((path) =>
      path === "/garbage"
        ? { bytes: "garbage\r\n" }
        : { bytes: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc" },
    );
    try {
      const { exitCode, stderr } = await runScript([
        "scripts/02-http-streams.ts",
        "http://127.0.0.1:1/",
        `${raw.url}/garbage`,
        `${raw.url}/short`,
      ]);
      expect(exitCode).toBe(1);
      const lines = stderr
        .trim()
        .split("\n")
        .map((line) => line.replace(/^\[[\d.]+ ms\] /, ""));
      expect(lines.sort()).toEqual(
        [
          "http://127.0.0.1:1/: cannot connect to 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
          `${raw.url}/garbage: malformed status line: "garbage"`,
          `${raw.url}/short: body shorter than announced: got 3 of 9 bytes before the connection closed`,
        ].sort(),
      );
      expect(hasStackTrace(stderr)).toBe(false);
    } finally {
      raw.stop();
    }
  });

  test("a bad option is one line and exit code 2", async () => {
    const { exitCode, stderr } = await runScript(["scripts/02-http-streams.ts", "--timeout", "-1"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe("error: --timeout needs a number of seconds greater than 0");
  });

  describeHttps(
    "scripts/02-http-streams.ts",
    (port) =>
      new RegExp(
        `^\\[[\\d.]+ ms\\] https://localhost:${port}/: TLS handshake with localhost:${port} failed: self signed certificate$`,
      ),
  );
});
