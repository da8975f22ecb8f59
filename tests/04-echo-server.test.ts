import { afterAll, describe, expect, test } from "bun:test";
import { greeting } from "../scripts/04-echo-server.ts";
import { runScript } from "./helpers/run.ts";
import { LineClient, startServerProcess } from "./helpers/servers.ts";

describe("lesson 04: the echo server", async () => {
  const server = await startServerProcess("scripts/04-echo-server.ts", ["--max-line", "1024"]);
  afterAll(() => server.child.kill());

  /** Waits until the server's log says `n connected`, so the next greeting's count is settled. */
  async function connectedCount(n: number) {
    for (let tries = 0; tries < 200 && !server.output().trimEnd().endsWith(`(${n} connected)`); tries++)
      await Bun.sleep(10);
  }

  test("greets each client with how many others are connected, as clients come and go", async () => {
    const first = await LineClient.connect(server.port);
    expect(await first.line()).toBe(greeting(0).trimEnd());
    const second = await LineClient.connect(server.port);
    expect(await second.line()).toBe(greeting(1).trimEnd());
    const third = await LineClient.connect(server.port);
    expect(await third.line()).toBe(greeting(2).trimEnd());
    second.close();
    await connectedCount(2);
    const fourth = await LineClient.connect(server.port);
    expect(await fourth.line()).toBe(
      "welcome! 2 other clients are connected. Type a line and it comes back.",
    );
    for (const client of [first, third, fourth]) client.close();
    await connectedCount(0);
  });

  test("echoes every line unchanged, UTF-8 and \\r\\n included, and a partial last line at EOF", async () => {
    const client = await LineClient.connect(server.port);
    await client.line();
    client.send("héllo 🎉\r\nsecond\n");
    const echoed = [await client.reader.readLine(), await client.reader.readLine()];
    expect(echoed.map((bytes) => new TextDecoder().decode(bytes))).toEqual(["héllo 🎉\r\n", "second\n"]);
    client.send("no newline");
    client.writer.writeEof();
    expect(new TextDecoder().decode(await client.reader.read())).toBe("no newline");
  });

  test("answers a line over the limit with one error line and stays usable", async () => {
    const client = await LineClient.connect(server.port);
    await client.line();
    client.send(`${"x".repeat(1_000_000)}\nstill here\n`);
    expect(await client.line()).toBe(
      "ERR line too long: 1000000 bytes before the newline, the limit is 1024",
    );
    expect(await client.line()).toBe("still here");
    client.close();
  });

  test("counts an over-long line as the limit does, without its newline; one cut by EOF says so", async () => {
    const client = await LineClient.connect(server.port);
    await client.line();
    client.send(`${"x".repeat(1025)}\n${"z".repeat(1024)}\n${"y".repeat(2000)}`);
    expect(await client.line()).toBe("ERR line too long: 1025 bytes before the newline, the limit is 1024");
    expect(await client.line()).toBe("z".repeat(1024)); // exactly the limit: echoed
    client.writer.writeEof();
    expect(await client.rest()).toEqual(["ERR line too long: 2000 bytes and no newline, the limit is 1024"]);
  });

  test("a client that sends without reading is slowed down, not buffered without bound", async () => {
    const client = await LineClient.connect(server.port);
    await client.line();
    const line = `${"y".repeat(1000)}\n`;
    for (let i = 0; i < 20_000; i++) client.send(line); // 20 MB, not reading any of the echo
    await Bun.sleep(500);
    expect(server.rss()).toBeLessThan(200 * 1024 * 1024);
    let echoedBytes = 0;
    while (echoedBytes < 20_000 * line.length) echoedBytes += (await client.reader.read(1 << 20)).length;
    expect(echoedBytes).toBe(20_000 * line.length);
    client.close();
  });
});

/** `12.0 MiB` / `80.0 KiB` → bytes. */
function parseBytes(text: string): number {
  const [number, unit] = text.split(" ");
  return Number(number) * (unit === "MiB" ? 1024 * 1024 : 1024);
}

/** The once-a-second reports of one half of --demo-drain: queued, rss and client-sent bytes. */
function demoReports(stdout: string, label: string) {
  const pattern = new RegExp(
    `^${label}: queued ([\\d.]+ [KM]iB), rss (\\d+) MiB, client sent ([\\d.]+ [KM]iB)$`,
    "gm",
  );
  return [...stdout.matchAll(pattern)].map(([, queued, rss, sent]) => ({
    queued: parseBytes(queued!),
    rss: Number(rss) * 1024 * 1024,
    sent: parseBytes(sent!),
  }));
}

describe("lesson 04 --demo-drain", () => {
  test("without drain the queue and the RSS grow by what the client sends; with it the queue stays at the high-water mark and the client is held back", async () => {
    const { exitCode, stdout, stderr } = await runScript(["scripts/04-echo-server.ts", "--demo-drain"]);
    expect(stderr).toBe("");
    expect(exitCode).toBe(0);
    const MiB = 1024 * 1024;
    const without = demoReports(stdout, "no drain");
    const withDrain = demoReports(stdout, "drain");
    expect(without).toHaveLength(4);
    expect(withDrain).toHaveLength(4);
    // No drain: every report queues more than the one before; after 4 s at 10 MiB/s, well over 20 MiB.
    for (let i = 1; i < without.length; i++)
      expect(without[i]!.queued).toBeGreaterThan(without[i - 1]!.queued);
    expect(without.at(-1)!.queued).toBeGreaterThan(20 * MiB);
    expect(without.at(-1)!.rss - without[0]!.rss).toBeGreaterThan(15 * MiB);
    // Drain: the queue never passes the high-water mark by more than one 16 KiB line, and the client,
    // waiting in its own drain(), sends nothing more once the kernel's buffers are full.
    for (const report of withDrain) expect(report.queued).toBeLessThanOrEqual((64 + 16) * 1024);
    expect(withDrain[3]!.sent).toBe(withDrain[2]!.sent);
    expect(withDrain[3]!.sent).toBeLessThan(without[3]!.sent / 2);
    expect(Math.max(...withDrain.map((report) => report.rss))).toBeLessThan(without.at(-1)!.rss);
  }, 30_000);
});

describe("lesson 04 as a command", () => {
  test("tells connected clients and exits 0 on SIGINT", async () => {
    const server = await startServerProcess("scripts/04-echo-server.ts");
    const client = await LineClient.connect(server.port);
    await client.line();
    expect(await server.interrupt()).toBe(0);
    expect(await client.rest()).toEqual(["* server shutting down"]);
    expect(server.output()).toContain("SIGINT: shutting down, telling 1 client(s)");
  });

  test("refuses a bad flag with one line and exit code 2", async () => {
    const { exitCode, stderr } = await runScript(["scripts/04-echo-server.ts", "--port", "http"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe('error: --port needs a whole number 0–65535, got "http" (see --help)');
  });

  test("says so in one line when the port is taken", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const { exitCode, stderr } = await runScript([
        "scripts/04-echo-server.ts",
        "--port",
        String(holder.port),
      ]);
      expect(exitCode).toBe(1);
      expect(stderr.trim()).toBe(
        `error: cannot listen on 127.0.0.1:${holder.port}: address already in use — is another server running? (--port 0 picks a free port)`,
      );
    } finally {
      holder.stop(true);
    }
  });

  test("says why in one line when the address is not one of this machine's", async () => {
    const { exitCode, stderr } = await runScript([
      "scripts/04-echo-server.ts",
      "--host",
      "203.0.113.7",
      "--port",
      "0",
    ]);
    expect(exitCode).toBe(1);
    expect(stderr.trim()).toBe(
      "error: cannot listen on 203.0.113.7:0: address not available — not an address of this machine (try 127.0.0.1 or 0.0.0.0)",
    );
  });
});

describe("lesson 04: limits", () => {
  test("past --max-clients a newcomer gets ERR server full; a freed place is taken again", async () => {
    const server = await startServerProcess("scripts/04-echo-server.ts", ["--quiet", "--max-clients", "2"]);
    try {
      const first = await LineClient.connect(server.port);
      const second = await LineClient.connect(server.port);
      await first.line();
      await second.line();
      const third = await LineClient.connect(server.port);
      expect(await third.rest()).toEqual(["ERR server full (2 clients)"]);
      first.close();
      expect(await first.rest()).toEqual([]);
      await Bun.sleep(100);
      const fourth = await LineClient.connect(server.port);
      expect(await fourth.line()).toBe(greeting(1).trimEnd());
      second.close();
      fourth.close();
    } finally {
      server.child.kill();
    }
  });

  test("with --max-clients 1 the refusal says 1 client, not 1 clients", async () => {
    const server = await startServerProcess("scripts/04-echo-server.ts", ["--quiet", "--max-clients", "1"]);
    try {
      const first = await LineClient.connect(server.port);
      await first.line();
      const second = await LineClient.connect(server.port);
      expect(await second.rest()).toEqual(["ERR server full (1 client)"]);
      first.close();
    } finally {
      server.child.kill();
    }
  });

  test("a client silent for --idle seconds is told and disconnected; a talking one stays", async () => {
    const server = await startServerProcess("scripts/04-echo-server.ts", ["--quiet", "--idle", "0.6"]);
    try {
      const silent = await LineClient.connect(server.port);
      const talker = await LineClient.connect(server.port);
      await silent.line();
      await talker.line();
      // Bytes without a newline do not count as activity: only complete lines do.
      silent.send("no newline ever");
      const chatter = setInterval(() => talker.send("still here\n"), 150);
      try {
        expect(await silent.rest(3000)).toEqual(["* disconnected: idle for 0.6 s"]);
        talker.send("last\n");
        expect(await talker.lineMatching("last")).toBe("last");
      } finally {
        clearInterval(chatter);
      }
      talker.close();
    } finally {
      server.child.kill();
    }
  });

  test("an idle client that does not read is cut after the grace period", async () => {
    const server = await startServerProcess("scripts/04-echo-server.ts", ["--quiet", "--idle", "0.5"]);
    try {
      const closed = Promise.withResolvers<void>();
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: { data() {}, close: () => closed.resolve() },
      });
      socket.pause();
      // Fill the echo path so the notice cannot be sent: 8 MB of lines, never read.
      const line = Buffer.from(`${"z".repeat(999)}\n`);
      for (let i = 0; i < 8000; i++) socket.write(line);
      const started = performance.now();
      await closed.promise;
      expect(performance.now() - started).toBeLessThan(6000);
    } finally {
      server.child.kill();
    }
  }, 15_000);

  test("2,000 clients that each send 1 MiB without reading, then idle: memory stays bounded", async () => {
    // The default server: 1,000 are served (each line over the 64 KiB limit is skipped as it arrives), the
    // other 1,000 are refused and cut after the grace. Before --max-clients and the reader giving its
    // buffer back, this held 1.2 GiB while idle (2.2 GiB at the peak).
    const server = await startServerProcess("scripts/04-echo-server.ts", ["--quiet"]);
    const payload = new Uint8Array(1024 * 1024).fill(0x78); // no newline: one endless line
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, server.rss());
    }, 100);
    const sockets: { terminate(): void }[] = [];
    try {
      await Promise.all(
        Array.from({ length: 2000 }, async () => {
          let offset = 0;
          const done = Promise.withResolvers<void>();
          const pump = (socket: { write(data: Uint8Array): number }) => {
            while (offset < payload.length) {
              const written = socket.write(payload.subarray(offset));
              if (written <= 0) return;
              offset += written;
            }
            done.resolve();
          };
          const socket = await Bun.connect({
            hostname: "127.0.0.1",
            port: server.port,
            socket: {
              open: (s) => s.pause(),
              data() {},
              drain: pump,
              close: () => done.resolve(),
              error() {},
            },
          });
          sockets.push(socket);
          pump(socket);
          // A refused client that never reads may not notice it was cut: stop waiting after 4 s.
          await Promise.race([done.promise, Bun.sleep(4000)]);
        }),
      );
      await Bun.sleep(1000);
      const idle = server.rss();
      expect(idle).toBeLessThan(150 * 1024 * 1024);
      expect(peak).toBeLessThan(400 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
      for (const socket of sockets) socket.terminate();
      server.child.kill();
    }
  }, 60_000);
});
