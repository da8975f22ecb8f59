import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import { WEBSOCKET_FRAMING } from "../scripts/08-web-chat.ts";
import { chromiumAvailability, launchChromium } from "./helpers/chromium.ts";
import { type RedisServer, redisAvailability, startRedisServer } from "./helpers/redis.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";
import { LineClient, residentBytes, type ServerProcess, startServerProcess } from "./helpers/servers.ts";
import { clientFrame, closeBody, handshakeRequest, RawWebSocketClient } from "./helpers/websocket-client.ts";

const SCRIPT = "scripts/08-web-chat.ts";
const ROOT = `${import.meta.dir}/..`;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const utf8 = new TextDecoder();

const browserAvailability = chromiumAvailability();
if ("skipReason" in browserAvailability) {
  console.log(`skipping lesson 08's browser tests: ${browserAvailability.skipReason}`);
}
const hasBrowser = "path" in browserAvailability;
const redis = redisAvailability();
if ("skipReason" in redis) console.log(`skipping lesson 08's cluster test: ${redis.skipReason}`);
const hasRedis = "bin" in redis;

// ── The lesson as a child process ────────────────────────────────────────────────────────────────────

interface WebChatProcess {
  httpPort: number;
  tcpPort: number;
  child: ReturnType<typeof Bun.spawn>;
  /** What it printed after its first line. */
  output(): string;
  /** SIGINT, then the exit code. */
  interrupt(): Promise<number>;
}

/** Every process a test started: whatever a failed test left running is killed after the file. */
const started: ReturnType<typeof Bun.spawn>[] = [];
afterAll(() => {
  for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
});

const FIRST_LINE = /^listening on http:\/\/127\.0\.0\.1:(\d+) \(line protocol on 127\.0\.0\.1:(\d+)\)$/;

/** `bun scripts/08-web-chat.ts --port 0 --tcp-port 0 ARGS…`, once it says where it listens. */
async function startWebChat(args: string[] = [], ports = { http: 0, tcp: 0 }): Promise<WebChatProcess> {
  const child = Bun.spawn(
    ["bun", SCRIPT, "--port", String(ports.http), "--tcp-port", String(ports.tcp), ...args],
    { cwd: ROOT, stdout: "pipe", stderr: "inherit" },
  );
  started.push(child);
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${SCRIPT} exited before listening: ${text}`);
    text += utf8.decode(value);
  }
  const firstLine = text.slice(0, text.indexOf("\n"));
  const match = FIRST_LINE.exec(firstLine);
  if (!match) throw new Error(`unexpected first line: ${firstLine}`);
  let rest = text.slice(text.indexOf("\n") + 1);
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      rest += utf8.decode(value);
    }
  })();
  return {
    httpPort: Number(match[1]),
    tcpPort: Number(match[2]),
    child,
    output: () => rest,
    async interrupt() {
      child.kill("SIGINT");
      return child.exited;
    },
  };
}

// ── A WebSocket user and a TCP user of the room ──────────────────────────────────────────────────────

/** A raw WebSocket into /chat, read one text message (one line) at a time. */
class WebSocketUser {
  private constructor(readonly client: RawWebSocketClient) {}

  static async connect(port: number, headers: Record<string, string> = {}): Promise<WebSocketUser> {
    return new WebSocketUser(await RawWebSocketClient.connect(port, { path: "/chat", headers }));
  }

  /** Connects and registers `name`; returns the user after its OK. */
  static async join(port: number, name: string): Promise<WebSocketUser> {
    const user = await WebSocketUser.connect(port);
    user.send(`CONNECT ${name}`);
    expect(await user.line()).toMatch(new RegExp(`^OK welcome ${name}, \\d+ users? online$`));
    return user;
  }

  send(text: string): void {
    this.client.sendFrame(TEXT, text);
  }

  /** The next text message; fails on any other frame, or after `waitMs`. */
  async line(waitMs = 5000): Promise<string> {
    const frame = await this.client.readFrame(waitMs);
    if (frame.opcode !== TEXT) throw new Error(`expected a text frame, got opcode ${frame.opcode}`);
    expect(frame.fin).toBe(true);
    expect(frame.masked).toBe(false);
    return utf8.decode(frame.payload);
  }

  /** Reads text messages until `last` (included). */
  async linesThrough(last: string, waitMs = 5000): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.line(waitMs);
      lines.push(line);
      if (line === last) return lines;
    }
  }

  /** Sends our Close and closes TCP. */
  leave(): void {
    this.client.sendFrame(CLOSE, closeBody(1000));
    this.client.close();
  }
}

/** `nc` in code: connects to the line protocol and registers `name`. */
async function joinTcp(port: number, name: string): Promise<LineClient> {
  const client = await LineClient.connect(port);
  client.send(`CONNECT ${name}\n`);
  expect(await client.line()).toMatch(new RegExp(`^OK welcome ${name}, \\d+ users? online$`));
  return client;
}

async function tcpLinesThrough(client: LineClient, last: string): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const line = await client.line();
    if (line === null) throw new Error(`EOF before ${last}; got ${JSON.stringify(lines)}`);
    lines.push(line);
    if (line === last) return lines;
  }
}

/** One HTTP request on a fresh raw connection; the reply (and the connection, for a second request). */
async function request(port: number, text: string) {
  const client = await RawWebSocketClient.open(port);
  client.send(text);
  return { reply: await client.readHttpReply(), client };
}

const get = (port: number, path: string, extra = "") =>
  request(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`);

// ── The framing the room uses for WebSocket users ────────────────────────────────────────────────────

/** The text of each unmasked text frame in `bytes`, in order. */
function textFrames(bytes: Uint8Array): string[] {
  const texts: string[] = [];
  for (let at = 0; at < bytes.length; ) {
    expect(bytes[at]).toBe(0x81); // FIN, text
    const short = bytes[at + 1]!;
    expect(short & 0x80).toBe(0); // a server frame is never masked
    const [header, length] =
      short === 126
        ? [4, (bytes[at + 2]! << 8) | bytes[at + 3]!]
        : short === 127
          ? [10, Number.NaN]
          : [2, short];
    texts.push(utf8.decode(bytes.subarray(at + header, at + header + length)));
    at += header + length;
  }
  return texts;
}

describe("lesson 08: WEBSOCKET_FRAMING", () => {
  const lines = ["* ann joined", "ann: héllo ✓", "", "x".repeat(300), "* bob joined", "bob: hi"];

  test("a batch is one text frame per line, and a late joiner's tail starts on a frame", () => {
    const batch = WEBSOCKET_FRAMING.encodeBatch(lines);
    expect(textFrames(batch)).toEqual(lines);
    const starts = WEBSOCKET_FRAMING.lineStarts(lines);
    for (let index = 0; index < lines.length; index++) {
      expect(textFrames(batch.subarray(starts[index]))).toEqual(lines.slice(index));
    }
  });

  test("one line is one text frame", () => {
    expect(textFrames(WEBSOCKET_FRAMING.encodeLine("OK welcome ann, 1 user online"))).toEqual([
      "OK welcome ann, 1 user online",
    ]);
  });
});

// ── HTTP ─────────────────────────────────────────────────────────────────────────────────────────────

describe("lesson 08: HTTP routes", async () => {
  const server = await startWebChat(["--quiet", "--allow-origin", "http://localhost:5173"]);
  afterAll(() => server.child.kill());
  const port = server.httpPort;

  test("GET / serves the page with a Content-Security-Policy that allows only its own script and style", async () => {
    const { reply, client } = await get(port, "/");
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("text/html; charset=utf-8");
    const csp = reply.headers["content-security-policy"]!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(reply.headers["x-content-type-options"]).toBe("nosniff");
    expect(reply.body).toContain('<script src="/chat.js" defer></script>');
    expect(reply.body).not.toContain("style=");
    client.close();
  });

  test("serves the page's script, style sheet and icon with their types", async () => {
    for (const [path, type] of [
      ["/chat.js", "text/javascript; charset=utf-8"],
      ["/chat.css", "text/css; charset=utf-8"],
      ["/favicon.svg", "image/svg+xml"],
    ]) {
      const { reply, client } = await get(port, path!);
      expect(reply.status).toBe(200);
      expect(reply.headers["content-type"]).toBe(type!);
      expect(Number(reply.headers["content-length"])).toBeGreaterThan(100);
      client.close();
    }
  });

  test("keeps a connection alive for the next request, and closes it on Connection: close", async () => {
    const { reply, client } = await get(port, "/chat.css");
    expect(reply.headers.connection).toBe("keep-alive");
    client.send(`GET /chat.js HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    const second = await client.readHttpReply();
    expect(second.status).toBe(200);
    expect(second.headers.connection).toBe("close");
    await client.waitForEnd(2000);
  });

  test("answers HEAD with the headers and no body", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(Number(response.headers.get("content-length"))).toBeGreaterThan(500);
    expect(await response.text()).toBe("");
  });

  test("404 for another path, 405 for another method, 426 for /chat without an upgrade", async () => {
    expect((await get(port, "/secret")).reply.status).toBe(404);
    const post = await request(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    expect(post.reply.status).toBe(405);
    expect(post.reply.headers.allow).toBe("GET, HEAD");
    const plain = await get(port, "/chat");
    expect(plain.reply.status).toBe(426);
    expect(plain.reply.headers.upgrade).toBe("websocket");
    const postChat = await request(port, handshakeRequest(port, "/chat").replace(/^GET/, "POST"));
    expect(postChat.reply.status).toBe(405);
  });

  test("431 for a request head over 8 KiB, then the connection is closed", async () => {
    const { reply, client } = await get(port, "/", `X-Filler: ${"f".repeat(9000)}\r\n`);
    expect(reply.status).toBe(431);
    await client.waitForEnd(2000);
    // 8 KiB in all is still fine.
    const fits = await get(port, "/", `X-Filler: ${"f".repeat(7000)}\r\n`);
    expect(fits.reply.status).toBe(200);
    fits.client.close();
  });

  test("a cross-site Origin gets 403; the page's own origin, an --allow-origin one and none are let in", async () => {
    const refused = await request(port, handshakeRequest(port, "/chat", { Origin: "http://evil.example" }));
    expect(refused.reply.status).toBe(403);
    for (const origin of [`http://127.0.0.1:${port}`, "http://localhost:5173", ""]) {
      const user = await WebSocketUser.connect(port, origin ? { Origin: origin } : {});
      user.send("CONNECT origin_ok");
      expect(await user.line()).toMatch(/^OK welcome origin_ok/);
      user.leave();
      await user.client.waitForEnd(2000);
    }
  });

  test("a client that sends no head is cut within the head timeout, and the server goes on", async () => {
    const silent = await RawWebSocketClient.open(port);
    silent.send("GET / HTTP/1.1\r\n");
    const waited = await silent.waitForEnd(12_000);
    expect(waited).toBeGreaterThan(9000);
    expect((await get(port, "/")).reply.status).toBe(200);
  }, 20_000);
});

// ── The room over WebSocket and TCP ──────────────────────────────────────────────────────────────────

describe("lesson 08: one room, two doors", async () => {
  const server = await startWebChat(["--quiet", "--max-line", "64"]);
  afterAll(() => server.child.kill());

  test("a WebSocket user and a TCP user see each other's lines, in the same order", async () => {
    const web = await WebSocketUser.join(server.httpPort, "web");
    const tcp = await joinTcp(server.tcpPort, "tcp");
    expect(await web.line()).toBe("* tcp joined");
    web.send("hello from the browser");
    tcp.send("hello from nc\n");
    web.send("second from the browser");
    // Two doors at once: the order is the room's, and both users see that one order.
    const webLines: (string | null)[] = [await web.line(), await web.line(), await web.line()];
    const tcpLines: (string | null)[] = [await tcp.line(), await tcp.line(), await tcp.line()];
    expect(webLines).toEqual(tcpLines);
    expect(webLines.indexOf("web: hello from the browser")).toBeLessThan(
      webLines.indexOf("web: second from the browser"),
    );
    expect(new Set(webLines)).toEqual(
      new Set(["web: hello from the browser", "tcp: hello from nc", "web: second from the browser"]),
    );
    web.send("/who");
    expect(await web.line()).toBe("* online (2): tcp, web");
    web.send("/quit");
    expect(await web.line()).toBe("* bye");
    expect((await web.client.readClose()).code).toBe(1000);
    expect(await tcp.line()).toBe("* web left");
    tcp.close();
  });

  test("a message with CR or LF, or a binary one, gets an ERR and is not sent to anyone", async () => {
    const web = await WebSocketUser.join(server.httpPort, "breaker");
    web.send("two\nlines");
    expect(await web.line()).toBe("ERR one message is one line: no CR or LF in it");
    web.send("carriage\rreturn");
    expect(await web.line()).toBe("ERR one message is one line: no CR or LF in it");
    web.client.sendFrame(BINARY, new Uint8Array([1, 2, 3]));
    expect(await web.line()).toBe("ERR binary message: the room's lines are text");
    web.send("one line");
    expect(await web.line()).toBe("breaker: one line");
    web.leave();
  });

  test("--max-line applies to WebSocket messages: over it, the room's ERR, and the user stays", async () => {
    const web = await WebSocketUser.join(server.httpPort, "longwinded");
    web.send("x".repeat(65));
    expect(await web.line()).toBe("ERR line too long (max 64 bytes)");
    web.send("x".repeat(64));
    expect(await web.line()).toBe(`longwinded: ${"x".repeat(64)}`);
    web.leave();
  });

  test("CONNECT over WebSocket follows the room's rules: a name taken by a TCP user is refused", async () => {
    const tcp = await joinTcp(server.tcpPort, "Taken");
    const web = await WebSocketUser.connect(server.httpPort);
    web.send("CONNECT taken");
    expect(await web.line()).toBe("ERR name taken: taken");
    web.send("CONNECT free");
    expect(await web.line()).toMatch(/^OK welcome free/);
    web.leave();
    tcp.close();
  });
});

describe("lesson 08: limits and endings", () => {
  test("a WebSocket user that stops reading is cut by --sendq; the others get everything", async () => {
    const server = await startWebChat([
      "--quiet",
      "--sendq",
      "65536",
      "--flood-burst",
      "100000",
      "--flood-rate",
      "100000",
    ]);
    try {
      // The stalled user: a raw socket that upgrades, registers, then stops reading.
      const registered = Promise.withResolvers<void>();
      const stalled = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.httpPort,
        socket: {
          data: (_socket, chunk) => void (String(chunk).includes("OK welcome") && registered.resolve()),
        },
      });
      stalled.write(handshakeRequest(server.httpPort, "/chat"));
      stalled.write(clientFrame(TEXT, "CONNECT stalled"));
      await registered.promise;
      stalled.pause();
      const watcher = await WebSocketUser.join(server.httpPort, "watcher");
      const talker = await joinTcp(server.tcpPort, "talker");
      const payload = "m".repeat(1000);
      const total = 10_000; // 10 MB for each reader: more than the kernel buffers and the send queue
      const sender = (async () => {
        for (let sent = 0; sent < total; sent += 100) {
          talker.send(`${Array.from({ length: 100 }, (_, i) => `${sent + i} ${payload}`).join("\n")}\n`);
          await talker.writer.drain();
          await Bun.sleep(1);
        }
      })();
      const countAt = async (next: () => Promise<string | null>) => {
        let messages = 0;
        let cutNotices = 0;
        while (messages < total) {
          const line = (await next())!;
          if (line === "* stalled was disconnected (not reading)") cutNotices++;
          else if (line.endsWith(payload)) messages++;
        }
        return { messages, cutNotices };
      };
      const counts = await Promise.all([
        countAt(() => talker.line(20_000)),
        countAt(() => watcher.line(20_000)),
        sender,
      ]);
      expect(counts.slice(0, 2)).toEqual([
        { messages: total, cutNotices: 1 },
        { messages: total, cutNotices: 1 },
      ]);
      expect(residentBytes(server.child.pid)).toBeLessThan(150 * 1024 * 1024);
      stalled.terminate();
      talker.close();
      watcher.leave();
    } finally {
      server.child.kill();
    }
  }, 60_000);

  test("an idle WebSocket user gets the room's notice, then a Close, then TCP is closed", async () => {
    const server = await startWebChat(["--quiet", "--idle", "1"]);
    try {
      const web = await WebSocketUser.join(server.httpPort, "sleepy");
      const tcp = await joinTcp(server.tcpPort, "watcher");
      expect(await web.line()).toBe("* watcher joined");
      // The watcher keeps talking, so that only the WebSocket user is idle.
      const talking = setInterval(() => tcp.send("still here\n"), 200);
      try {
        const started = performance.now();
        const before = await web.linesThrough("* disconnected: idle for 1 s", 3000);
        expect(before.every((line) => line === "watcher: still here" || line.startsWith("* disc"))).toBe(
          true,
        );
        expect(performance.now() - started).toBeGreaterThan(500);
        const close = await web.client.readClose(1000);
        expect(close.code).toBe(1008);
        expect(close.before).toEqual([]);
        await web.client.waitForEnd(2000);
        expect(await tcp.lineMatching("* sleepy was disconnected (idle)", 3000)).toBeTruthy();
      } finally {
        clearInterval(talking);
      }
      tcp.close();
    } finally {
      server.child.kill();
    }
  }, 15_000);

  test("Ctrl+C: room users get the notice, then Close 1001; /echo users Close 1001; exit 0", async () => {
    const server = await startWebChat(["--quiet"]);
    const web = await WebSocketUser.join(server.httpPort, "stayer");
    const pending = await WebSocketUser.connect(server.httpPort);
    pending.send("hello?");
    expect(await pending.line()).toBe("ERR send CONNECT <name> first");
    const echo = await RawWebSocketClient.connect(server.httpPort, { path: "/echo" });
    echo.sendFrame(TEXT, "ping");
    expect(utf8.decode((await echo.readFrame()).payload)).toBe("ping");
    const tcp = await joinTcp(server.tcpPort, "tcpstayer");
    expect(await web.line()).toBe("* tcpstayer joined");
    expect(await server.interrupt()).toBe(0);
    for (const user of [web, pending]) {
      expect(await user.line()).toBe("* server shutting down");
      const close = await user.client.readClose();
      expect(close.code).toBe(1001);
      await user.client.waitForEnd(3000);
    }
    expect((await echo.readClose()).code).toBe(1001);
    expect(await tcp.rest()).toEqual(["* server shutting down"]);
    expect(server.output()).toContain("SIGINT: shutting down");
  }, 15_000);
});

// ── /echo ────────────────────────────────────────────────────────────────────────────────────────────

describe("lesson 08: /echo", async () => {
  const server = await startWebChat(["--quiet"]);
  afterAll(() => server.child.kill());

  test("echoes text as text and binary as binary, fragmented ones whole, up to 16 MiB", async () => {
    const client = await RawWebSocketClient.connect(server.httpPort, { path: "/echo" });
    client.sendFrame(TEXT, "héllo, wörld ✓");
    let frame = await client.readFrame();
    expect([frame.opcode, utf8.decode(frame.payload)]).toEqual([TEXT, "héllo, wörld ✓"]);
    const binary = new Uint8Array([0, 255, 1, 254, 0x0a, 0x0d]);
    client.sendFrame(BINARY, binary);
    frame = await client.readFrame();
    expect([frame.opcode, [...frame.payload]]).toEqual([BINARY, [...binary]]);
    client.sendFrame(TEXT, "frag", { fin: false });
    client.sendFrame(0x0, "mented");
    frame = await client.readFrame();
    expect([frame.opcode, utf8.decode(frame.payload)]).toEqual([TEXT, "fragmented"]);
    const big = new Uint8Array(16 * 1024 * 1024).map((_, index) => index & 0xff);
    client.sendFrame(BINARY, big);
    frame = await client.readFrame(20_000);
    expect(frame.payload.length).toBe(big.length);
    expect(Buffer.from(frame.payload).equals(Buffer.from(big))).toBe(true);
    client.sendFrame(CLOSE, closeBody(1000));
    expect((await client.readClose()).code).toBe(1000);
    await client.waitForEnd(2000);
  }, 30_000);

  test("a message over 16 MiB is refused with Close 1009 before it is read", async () => {
    const client = await RawWebSocketClient.connect(server.httpPort, { path: "/echo" });
    client.sendFrame(BINARY, new Uint8Array(0), { announcedLength: BigInt(16 * 1024 * 1024 + 1) });
    expect((await client.readClose()).code).toBe(1009);
    await client.waitForEnd(2000);
  });
});

// ── The command line ─────────────────────────────────────────────────────────────────────────────────

describe("lesson 08 as a command", () => {
  test("refuses a bad --allow-origin with one line and exit code 2", async () => {
    const { exitCode, stderr } = await runScript([SCRIPT, "--allow-origin", "evil.example"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim().split("\n")).toEqual([
      'error: --allow-origin needs an origin like http://localhost:5173, got "evil.example" (see --help)',
    ]);
  });

  test("an unreachable or malformed --redis is one line, exit code 1 or 2", async () => {
    const unreachable = await runScript([
      SCRIPT,
      "--port",
      "0",
      "--tcp-port",
      "0",
      "--redis",
      "redis://127.0.0.1:1",
    ]);
    expect(unreachable.exitCode).toBe(1);
    expect(unreachable.stderr.trim().split("\n")).toEqual([
      "error: cannot start a node (redis redis://127.0.0.1:1): cannot connect to 127.0.0.1:1: connection refused (is a server listening there?) (ECONNREFUSED)",
    ]);
    const malformed = await runScript([SCRIPT, "--redis", "localhost:6379"]);
    expect(malformed.exitCode).toBe(2);
    expect(malformed.stderr).toBe(
      'error: --redis needs a URL like redis://127.0.0.1:6379, got "localhost:6379"\n',
    );
  });

  test("a busy port is one line and exit code 1, for either door", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      for (const flag of ["--port", "--tcp-port"]) {
        const { exitCode, stderr } = await runScript([
          SCRIPT,
          "--port",
          "0",
          "--tcp-port",
          "0",
          flag,
          String(holder.port),
        ]);
        expect(exitCode).toBe(1);
        expect(stderr).toContain(`error: cannot listen on 127.0.0.1:${holder.port}: address already in use`);
        expect(hasStackTrace(stderr)).toBe(false);
      }
    } finally {
      holder.stop(true);
    }
  });

  test("lists both ports, --allow-origin and every room limit in --help", async () => {
    const { exitCode, stdout } = await runScript([SCRIPT, "--help"]);
    expect(exitCode).toBe(0);
    for (const flag of [
      "--port",
      "--tcp-port",
      "--allow-origin URL",
      "--redis",
      "--idle",
      "--max-line",
      "--sendq",
    ]) {
      expect(stdout).toContain(flag);
    }
  });
});

// ── In a real browser ────────────────────────────────────────────────────────────────────────────────

/** Opens the page and joins as `name`; resolves once the room said OK. */
async function openPage(browser: Browser, port: number, name: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.fill("#name", name);
  await page.click("#name-form button");
  await page.waitForSelector(`#messages li.ok >> text=OK welcome ${name}`);
  return page;
}

const texts = (page: Page) => page.locator("#messages li").allTextContents();
/** A line's text without its `HH:MM` time stamp. */
const withoutTime = (line: string) => line.replace(/^\d\d:\d\d/, "");

describe.skipIf(!hasBrowser)("lesson 08 in a real browser (headless Chromium)", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });

  test("two pages and an nc user chat; markup from nc shows as text; CSP holds", async () => {
    const server = await startWebChat(["--quiet"]);
    try {
      const ann = await openPage(browser, server.httpPort, "ann");
      const violations: string[] = [];
      ann.on("console", (message) => {
        if (message.type() === "error") violations.push(message.text());
      });
      const bob = await openPage(browser, server.httpPort, "bob");
      const carl = await joinTcp(server.tcpPort, "carl");
      await ann.fill("#input", "hi bob");
      await ann.press("#input", "Enter");
      await bob.waitForSelector("#messages li.message >> text=hi bob");
      await bob.fill("#input", "hi ann & carl");
      await bob.click("#chat-form button");
      const hostile = "<img src=x onerror=alert(1)> <b>bold</b>";
      carl.send(`${hostile}\n`);
      for (const page of [ann, bob]) {
        await page.waitForSelector(`#messages li.message:has-text("carl: <img")`);
        expect(await page.locator("#messages img, #messages b").count()).toBe(0);
      }
      expect(await tcpLinesThrough(carl, `carl: ${hostile}`)).toEqual([
        "ann: hi bob",
        "bob: hi ann & carl",
        `carl: ${hostile}`,
      ]);
      const seenByAnn = (await texts(ann)).map(withoutTime);
      expect(seenByAnn.slice(-5)).toEqual([
        "* bob joined",
        "* carl joined",
        "ann: hi bob",
        "bob: hi ann & carl",
        `carl: ${hostile}`,
      ]);
      // Own messages are marked; the sender's name is its own element, the text plain text.
      expect(await ann.locator("#messages li.own .sender").first().textContent()).toBe("ann");
      expect(await ann.textContent("#status")).toBe("online as ann");
      expect(violations).toEqual([]);
      carl.close();
    } finally {
      server.child.kill();
    }
  }, 30_000);

  test("a taken name is explained and asked again", async () => {
    const server = await startWebChat(["--quiet"]);
    try {
      const holder = await joinTcp(server.tcpPort, "Dana");
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.httpPort}/`);
      await page.fill("#name", "dana");
      await page.click("#name-form button");
      await page.waitForSelector("#name-error:has-text('taken')");
      expect(await page.textContent("#name-error")).toContain("The name dana is taken");
      expect(await page.isVisible("#name-form")).toBe(true);
      expect(await page.isVisible("#chat-form")).toBe(false);
      await page.fill("#name", "not a name!");
      await page.click("#name-form button");
      expect(await page.textContent("#name-error")).toBe("1–32 letters, digits, _ or - (no spaces).");
      await page.fill("#name", "dana2");
      await page.click("#name-form button");
      await page.waitForSelector("#messages li.ok >> text=OK welcome dana2");
      expect(await page.isVisible("#chat-form")).toBe(true);
      expect(await holder.line()).toBe("* dana2 joined");
      holder.close();
    } finally {
      server.child.kill();
    }
  }, 30_000);

  test("idle, the page is told and asks for the name again instead of reconnecting", async () => {
    const server = await startWebChat(["--quiet", "--idle", "1"]);
    try {
      const page = await openPage(browser, server.httpPort, "dozy");
      await page.waitForSelector("#messages li.notice >> text=* disconnected: idle for 1 s", {
        timeout: 5000,
      });
      await page.waitForSelector("#messages li.local >> text=The room disconnected you");
      expect(await page.isVisible("#name-form")).toBe(true);
      expect(await page.inputValue("#name")).toBe("dozy");
      await Bun.sleep(1500); // no reconnect meanwhile: the name is free, nobody joined under it
      const watcher = await joinTcp(server.tcpPort, "dozy");
      expect(await page.textContent("#status")).toBe("offline");
      watcher.close();
    } finally {
      server.child.kill();
    }
  }, 30_000);

  test("the input stays at the bottom and the newest message in view after many messages", async () => {
    const server = await startWebChat(["--quiet", "--flood-burst", "1000"]);
    try {
      const page = await openPage(browser, server.httpPort, "reader");
      const carl = await joinTcp(server.tcpPort, "chatty");
      const count = 200;
      carl.send(Array.from({ length: count }, (_, i) => `message ${i}\n`).join(""));
      await page.waitForSelector(`#messages li >> text=chatty: message ${count - 1}`);
      const viewport = page.viewportSize()!;
      const input = (await page.locator("#input").boundingBox())!;
      expect(input.y + input.height).toBeGreaterThan(viewport.height - 60);
      expect(input.y + input.height).toBeLessThanOrEqual(viewport.height);
      const last = (await page.locator("#messages li").last().boundingBox())!;
      expect(last.y).toBeGreaterThan(0);
      expect(last.y + last.height).toBeLessThanOrEqual(input.y);
      // The messages scroll inside their list: the page itself does not grow.
      expect(await page.evaluate("document.documentElement.scrollHeight")).toBe(viewport.height);
      carl.close();
    } finally {
      server.child.kill();
    }
  }, 30_000);

  test("the page survives a server restart: it says so, reconnects and joins again", async () => {
    const first = await startWebChat(["--quiet"]);
    const ports = { http: first.httpPort, tcp: first.tcpPort };
    const page = await openPage(browser, ports.http, "phoenix");
    expect(await first.interrupt()).toBe(0);
    await page.waitForSelector("#messages li >> text=* server shutting down");
    await page.waitForSelector("#messages li.local >> text=Connection lost");
    expect(await page.textContent("#status")).toMatch(/^(offline — reconnecting in|connecting)/);
    // Down for a while: a failed reconnect or two, the backoff growing.
    await Bun.sleep(1500);
    const second = await startWebChat(["--quiet"], ports);
    try {
      const watcher = await joinTcp(second.tcpPort, "watcher");
      expect(await watcher.lineMatching("* phoenix joined", 15_000)).toBeTruthy();
      await page.waitForSelector("#status:text-is('online as phoenix')");
      await page.fill("#input", "back again");
      await page.press("#input", "Enter");
      expect(await watcher.line()).toBe("phoenix: back again");
      watcher.close();
    } finally {
      second.child.kill();
    }
  }, 40_000);
});

// ── The cluster door ─────────────────────────────────────────────────────────────────────────────────

describe.skipIf(!hasRedis)("lesson 08 with --redis: a lesson 07 node's room", () => {
  let redisServer: RedisServer;
  beforeAll(async () => {
    redisServer = await startRedisServer();
  }, 30_000);
  afterAll(async () => {
    await redisServer?.stop();
  });

  test("a WebSocket user on lesson 08 and a TCP user on a lesson 07 node are one room", async () => {
    const prefix = `t${process.pid}-web:`;
    const web = await startWebChat(["--quiet", "--redis", redisServer.url, "--prefix", prefix]);
    let node: ServerProcess | undefined;
    try {
      node = await startServerProcess("scripts/07-chat-cluster.ts", [
        "--node",
        "--quiet",
        "--redis",
        redisServer.url,
        "--prefix",
        prefix,
      ]);
      started.push(node.child);
      const browserUser = await WebSocketUser.join(web.httpPort, "webby");
      const tcpUser = await joinTcp(node.port, "noddy");
      expect(await browserUser.line()).toBe("* noddy joined");
      // A name is unique across the cluster: the TCP user's name is taken on lesson 08 too.
      const twin = await WebSocketUser.connect(web.httpPort);
      twin.send("CONNECT NODDY");
      expect(await twin.line()).toBe("ERR name taken: NODDY");
      twin.leave();
      browserUser.send("hello from the browser");
      tcpUser.send("hello from lesson 07\n");
      // Sent at once from two nodes: either may come first, but both users see the one order.
      const both = new Set(["webby: hello from the browser", "noddy: hello from lesson 07"]);
      const seenOnWeb = [await browserUser.line(), await browserUser.line()];
      const seenOnNode = [await tcpUser.line(), await tcpUser.line()];
      expect(new Set(seenOnWeb)).toEqual(both);
      expect(seenOnNode).toEqual(seenOnWeb);
      tcpUser.send("/who\n");
      expect(await tcpUser.line()).toBe("* online (2): noddy, webby");
      expect(await web.interrupt()).toBe(0);
      expect(await tcpUser.lineMatching("* webby left (server shutting down)")).toBeTruthy();
      tcpUser.close();
    } finally {
      web.child.kill();
      node?.child.kill();
    }
  }, 30_000);
});
