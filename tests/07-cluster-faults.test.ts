/**
 * Lesson 07 against broken and hostile peers: error replies, silence, a paused node acting on a lease it
 * lost, a lost reply, huge entries, forged keys, a killed launcher. Each test sets up the peer that
 * behaves as described — a real redis-server (and another client changing its keys), the RESP proxy
 * (tests/helpers/resp-proxy.ts), or a fake server on a raw socket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { RedisClient } from "bun";
import { LOST_PLACE_NOTICE } from "../lib/chat-cluster/cluster-node.ts";
import { type RedisServer, redisAvailability, startRedisServer } from "./helpers/redis.ts";
import { startRespProxy } from "./helpers/resp-proxy.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";
import { LineClient, residentBytes, type ServerProcess, startServerProcess } from "./helpers/servers.ts";

const SCRIPT = "scripts/07-chat-cluster.ts";
const hasRedis = "bin" in redisAvailability();
const SLOW_TEST_MS = 30_000;

let prefixes = 0;
const freshPrefix = () => `f${process.pid}-${++prefixes}:`;

const started: ServerProcess[] = [];
afterAll(() => {
  for (const node of started) if (node.child.exitCode === null) node.child.kill("SIGKILL");
});

async function startNode(redisUrl: string, args: string[]): Promise<ServerProcess> {
  const node = await startServerProcess(SCRIPT, ["--node", "--redis", redisUrl, ...args]);
  started.push(node);
  return node;
}

async function join(node: ServerProcess, name: string): Promise<LineClient> {
  const client = await LineClient.connect(node.port);
  client.send(`CONNECT ${name}\n`);
  expect(await client.line()).toMatch(new RegExp(`^OK welcome ${name}, \\d+ users? online$`));
  return client;
}

/** Joins `name`, trying again while the node answers that it is paused. */
async function joinWhenResumed(node: ServerProcess, name: string, timeoutMs = 10_000): Promise<LineClient> {
  const deadline = performance.now() + timeoutMs;
  const client = await LineClient.connect(node.port);
  while (performance.now() < deadline) {
    client.send(`CONNECT ${name}\n`);
    const reply = await client.line();
    if (reply?.startsWith(`OK welcome ${name}`)) return client;
    if (reply !== "ERR chat paused: reconnecting") throw new Error(`unexpected ${reply}`);
    await Bun.sleep(100);
  }
  throw new Error(`still paused after ${timeoutMs} ms`);
}

/** Reads lines until `last` (included). */
async function linesThrough(client: LineClient, last: string, timeoutMs = 5000): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const line = await client.line(timeoutMs);
    if (line === null) throw new Error(`EOF before ${last}; got ${JSON.stringify(got)}`);
    got.push(line);
    if (line === last) return got;
  }
}

/** What arrives before a fresh marker line of the client's own (other users' markers left out). */
async function drain(client: LineClient, name: string, timeoutMs = 5000): Promise<string[]> {
  const marker = `marker ${Math.random()}`;
  client.send(`${marker}\n`);
  const seen = await linesThrough(client, `${name}: ${marker}`, timeoutMs);
  return seen.slice(0, -1).filter((line) => !/^\w+: marker /.test(line));
}

/** Sends `text` until it is not refused as paused; resolves when its own copy comes back. */
async function sendWhenResumed(client: LineClient, name: string, text: string, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    client.send(`${text}\n`);
    const reply = await client.lineMatching(new RegExp(`^(ERR .*|${name}: ${text})$`), timeoutMs);
    if (reply === `${name}: ${text}`) return;
    if (reply !== "ERR chat paused: reconnecting") throw new Error(`unexpected ${reply}`);
    await Bun.sleep(100);
  }
  throw new Error(`still paused after ${timeoutMs} ms`);
}

const logLines = (node: ServerProcess, pattern: RegExp) =>
  node
    .output()
    .split("\n")
    .filter((line) => pattern.test(line));

async function waitFor(what: string, check: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

describe.skipIf(!hasRedis)("lesson 07 against Redis's error replies", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  test(
    "WRONGTYPE on the room's stream (another client made it a string): one log line, no spinning, delivery resumes once the key is sane",
    async () => {
      const prefix = freshPrefix();
      const args = ["--prefix", prefix, "--quiet"];
      const [a, b] = [await startNode(redis.url, args), await startNode(redis.url, args)];
      const ann = await join(a, "ann");
      const bob = await join(b, "bob");
      expect(await ann.line()).toBe("* bob joined");
      const other = new RedisClient(redis.url);
      const room = `${prefix}room`;
      const xreadsBefore = await xreadCalls(other);
      await other.send("RENAME", [room, `${room}-saved`]);
      await other.send("SET", [room, "not a stream"]);
      await Bun.sleep(1500);
      bob.send("said while the key was broken\n"); // its XADD fails too: kept, and retried
      await Bun.sleep(1500);
      // Two nodes, 3 s of WRONGTYPE: with the capped backoff, a handful of XREADs each — not thousands.
      expect((await xreadCalls(other)) - xreadsBefore).toBeLessThan(40);
      await other.send("DEL", [room]);
      await other.send("RENAME", [`${room}-saved`, room]);
      const repairedAt = performance.now();
      expect(await ann.lineMatching(/^bob: /, 8000)).toBe("bob: said while the key was broken");
      expect(performance.now() - repairedAt).toBeLessThan(4000);
      expect(await drain(bob, "bob")).toEqual(["bob: said while the key was broken"]);
      expect(await drain(ann, "ann")).toEqual([]);
      for (const node of [a, b]) {
        expect(logLines(node, /XREAD failed \(WRONGTYPE/).length).toBe(1);
        expect(node.child.exitCode).toBe(null);
      }
      other.close();
      ann.close();
      bob.close();
      await Promise.all([a.interrupt(), b.interrupt()]);
    },
    SLOW_TEST_MS,
  );

  test(
    "one -LOADING or -BUSY reply, and replies of the wrong shape, do not stop delivery or make the reader spin",
    async () => {
      const proxy = await startRespProxy(redis.port);
      const node = await startNode(proxy.url, ["--prefix", freshPrefix(), "--quiet"]);
      const ann = await join(node, "ann");
      let xreads = 0;
      const errors = [
        "-LOADING Redis is loading the dataset in memory\r\n",
        "-BUSY Redis is busy running a script.\r\n",
      ];
      let wrongShape = false;
      proxy.setHook((command) => {
        if (command[0] !== "XREAD") return undefined;
        xreads++;
        const error = errors.shift();
        if (error) return { reply: error };
        if (wrongShape) return { reply: "*0\r\n" }; // not an XREAD reply, and at once
        return undefined;
      });
      await sendWhenResumed(ann, "ann", "after LOADING and BUSY");
      expect(logLines(node, /retrying$/)).toEqual([expect.stringContaining("XREAD failed (LOADING")]);
      wrongShape = true;
      const before = xreads;
      await Bun.sleep(2500);
      // With the capped backoff (50 ms, doubling): a handful in 2.5 s, not a busy loop.
      expect(xreads - before).toBeLessThan(15);
      wrongShape = false;
      await sendWhenResumed(ann, "ann", "after the wrong shapes");
      expect(logLines(node, /XREAD got a reply that is not an XREAD reply/).length).toBe(1);
      expect(logLines(node, /reading the stream again/).length).toBe(2);
      ann.close();
      await node.interrupt();
      proxy.stop();
    },
    SLOW_TEST_MS,
  );
});

/** How many XREADs Redis has run (INFO commandstats). */
async function xreadCalls(client: RedisClient): Promise<number> {
  const info = String(await client.send("INFO", ["commandstats"]));
  return Number(/cmdstat_xread:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe.skipIf(!hasRedis)("lesson 07: a deadline on every reply", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  test(
    "a blackholed XREAD (no reply, no reset) is noticed: one line naming it, then the reconnect; nothing said meanwhile is missed",
    async () => {
      const proxy = await startRespProxy(redis.port);
      const args = ["--prefix", freshPrefix(), "--node-timeout", "2"];
      const deaf = await startNode(proxy.url, args);
      const steady = await startNode(redis.url, args);
      const ann = await join(deaf, "ann");
      const bob = await join(steady, "bob");
      expect(await ann.line()).toBe("* bob joined");
      let swallow = true;
      proxy.setHook((command) => (swallow && command[0] === "XREAD" ? "drop" : undefined));
      bob.send("while ann's node was deaf\n");
      // BLOCK 1 s + half of --node-timeout 2 s: the deadline is 2 s.
      await waitFor("the deadline's log line", () => /no reply to XREAD within 2000 ms/.test(deaf.output()));
      swallow = false;
      expect(await ann.lineMatching(/^bob: /, 8000)).toBe("bob: while ann's node was deaf");
      expect(
        logLines(deaf, /connection lost \(no reply to XREAD within 2000 ms\); reconnecting/).length,
      ).toBe(1);
      ann.close();
      bob.close();
      await Promise.all([deaf.interrupt(), steady.interrupt()]);
      proxy.stop();
    },
    SLOW_TEST_MS,
  );

  test(
    "a REGISTER whose reply is lost after a reconnect costs a deadline, not 25 s of `paused`",
    async () => {
      const proxy = await startRespProxy(redis.port);
      const node = await startNode(proxy.url, ["--prefix", freshPrefix(), "--node-timeout", "2", "--quiet"]);
      const ann = await join(node, "ann");
      let swallowed = 0;
      proxy.setHook((command) => {
        const isRegister = command[0]!.startsWith("EVAL") && command.includes("resume");
        if (isRegister && swallowed++ === 0) return "drop";
        return undefined;
      });
      proxy.cutAll();
      const cutAt = performance.now();
      await Bun.sleep(200);
      await sendWhenResumed(ann, "ann", "back");
      expect(swallowed).toBeGreaterThanOrEqual(2);
      // The lost reply's deadline (1 s), a backoff, a REGISTER that is answered.
      expect(performance.now() - cutAt).toBeLessThan(5000);
      expect(node.output()).toContain("no reply to EVALSHA REGISTER within 1000 ms");
      ann.close();
      await node.interrupt();
      proxy.stop();
    },
    SLOW_TEST_MS,
  );

  for (const [what, answer, expected] of [
    [
      "answers HELLO and then nothing",
      "*2\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
      "no reply to EVALSHA REGISTER within 1000 ms",
    ],
    [
      "answers HELLO with *2000000000 (and nothing more)",
      "*2000000000\r\n",
      "no reply to HELLO within 1000 ms",
    ],
    ["answers with garbage", "HTTP/1.1 400 Bad Request\r\n\r\n", "not a RESP reply"],
  ] as const) {
    test(
      `--node against a server that ${what}: one line, exit 1 — and the launcher with it`,
      async () => {
        const fake = Bun.listen({
          hostname: "127.0.0.1",
          port: 0,
          socket: {
            data(socket, chunk) {
              if (String(chunk).includes("HELLO")) socket.write(answer);
            },
          },
        });
        try {
          const url = `redis://127.0.0.1:${fake.port}`;
          for (const args of [
            ["--node", "--port", "0", "--node-timeout", "2"],
            ["--port", "0", "--node-timeout", "2"],
          ]) {
            const startedAt = performance.now();
            const { exitCode, stderr } = await runScript([SCRIPT, ...args, "--redis", url], {
              timeoutMs: 15_000,
            });
            expect(exitCode).toBe(1);
            expect(performance.now() - startedAt).toBeLessThan(8000);
            expect(stderr.trim().split("\n")).toEqual([expect.stringContaining(expected)]);
            expect(hasStackTrace(stderr)).toBe(false);
          }
        } finally {
          fake.stop(true);
        }
      },
      SLOW_TEST_MS,
    );
  }
});

describe.skipIf(!hasRedis)("lesson 07: fencing", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  test(
    "a node paused past --node-timeout cannot speak for a name it lost: its line is refused, its users told and closed, each departure announced once",
    async () => {
      const args = ["--prefix", freshPrefix(), "--node-timeout", "1"];
      const stale = await startNode(redis.url, args);
      const steady = await startNode(redis.url, args);
      const ann = await join(stale, "ann");
      const bob = await join(steady, "bob");
      expect(await ann.line()).toBe("* bob joined");
      process.kill(stale.child.pid, "SIGSTOP");
      try {
        // Both wait in the kernel until SIGCONT: a last line, then EOF — a user that leaves once its own
        // last line has come back (the wait a declared-dead node must end without a departure).
        ann.send("written while my server was paused\n");
        ann.writer.writeEof();
        expect(await bob.line(5000)).toBe("* ann left (server lost)");
        const newAnn = await join(steady, "ANN");
        expect(await bob.line()).toBe("* ANN joined");
        process.kill(stale.child.pid, "SIGCONT");
        // The stale ann is told, then closed; the stale line reaches nobody.
        const rest = await ann.rest(8000);
        expect(rest.at(-1)).toBe(LOST_PLACE_NOTICE);
        expect(rest.filter((line) => line.startsWith("ann: "))).toEqual([]);
        expect(await drain(bob, "bob")).toEqual([]);
        expect(await drain(newAnn, "ANN")).toEqual([]);
        // It joined again as a new node: it takes users, and the old ann was announced once.
        const cy = await joinWhenResumed(stale, "cy");
        expect(await bob.lineMatching(/^\* cy joined$/)).toBe("* cy joined");
        expect(await drain(cy, "cy")).toEqual([]);
        expect(await drain(bob, "bob")).toEqual([]);
        expect(stale.output()).toContain("it was declared dead");
        for (const user of [bob, newAnn, cy]) user.close();
      } finally {
        process.kill(stale.child.pid, "SIGCONT");
      }
      await Promise.all([stale.interrupt(), steady.interrupt()]);
    },
    SLOW_TEST_MS,
  );

  test(
    "a CLAIM whose reply was lost does not leak the name: after the reconnect the node frees it",
    async () => {
      const proxy = await startRespProxy(redis.port);
      const args = ["--prefix", freshPrefix(), "--node-timeout", "2", "--quiet"];
      const cutOff = await startNode(proxy.url, args);
      const steady = await startNode(redis.url, args);
      const bob = await join(steady, "bob");
      let lose = true;
      proxy.setHook((command) =>
        lose && command[0]!.startsWith("EVAL") && command.includes("dan") ? "cut-after-reply" : undefined,
      );
      const dan = await LineClient.connect(cutOff.port);
      dan.send("CONNECT dan\n");
      expect(await dan.line()).toBe("ERR chat paused: reconnecting");
      lose = false;
      dan.close();
      // Redis ran the claim; once the node is back it frees the name nobody here holds.
      const deadline = performance.now() + 8000;
      let who = "";
      while (performance.now() < deadline) {
        bob.send("/who\n");
        who = await bob.lineMatching(/^\* online/);
        if (who === "* online (1): bob") break;
        await Bun.sleep(200);
      }
      expect(who).toBe("* online (1): bob");
      const newDan = await join(steady, "dan");
      newDan.close();
      bob.close();
      await Promise.all([cutOff.interrupt(), steady.interrupt()]);
      proxy.stop();
    },
    SLOW_TEST_MS,
  );
});

describe.skipIf(!hasRedis)("lesson 07: entries bounded before they are loaded", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  test("three 300 MB XADDs by another client: skipped with one line each, the node's RSS stays bounded, nobody is cut", async () => {
    const prefix = freshPrefix();
    const node = await startNode(redis.url, ["--prefix", prefix, "--quiet"]);
    const ann = await join(node, "ann");
    const before = residentBytes(node.child.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, residentBytes(node.child.pid));
    }, 20);
    const startedAt = performance.now();
    for (let i = 0; i < 3; i++) {
      await xaddHuge(redis.port, `${prefix}room`, 300 * 1024 * 1024);
      await waitFor(
        "the skip line",
        () => logLines(node, /^! skipped stream entry .*line over 65536 bytes/).length > i,
        20_000,
      );
      await deleteStreamHead(redis.url, `${prefix}room`);
    }
    const tookMs = performance.now() - startedAt;
    clearInterval(sampler);
    await sendWhenResumed(ann, "ann", "after the flood");
    console.log(
      `three 300 MB entries: node RSS ${mb(before)} → peak ${mb(peak)}, ${Math.round(tookMs)} ms for all three (XADD + read + skip)`,
    );
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
    ann.close();
    await node.interrupt();
  }, 60_000);

  test(
    "300 valid 60 KiB entries at once (more than one user's --sendq) cut nobody: the queue is judged over time",
    async () => {
      const prefix = freshPrefix();
      const args = ["--prefix", prefix, "--quiet"];
      const [a, b] = [await startNode(redis.url, args), await startNode(redis.url, args)];
      const users = [await join(a, "ann"), await join(b, "bob"), await join(a, "cy")];
      await Bun.sleep(300);
      const other = new RedisClient(redis.url);
      const big = "x".repeat(60 * 1024);
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          other.send("XADD", [`${prefix}room`, "*", "line", `${i} ${big}`, "node", "elsewhere"]),
        ),
      );
      other.close();
      const counts = await Promise.all(
        users.map(async (user) => {
          let got = 0;
          while (got < 300) {
            const line = await user.line(10_000);
            if (line === null) throw new Error("cut");
            if (line.endsWith(big)) got++;
          }
          return got;
        }),
      );
      expect(counts).toEqual([300, 300, 300]);
      for (const [index, name] of ["ann", "bob", "cy"].entries()) {
        expect(await drain(users[index]!, name)).not.toContainEqual(expect.stringContaining("not reading"));
      }
      for (const user of users) user.close();
      await Promise.all([a.interrupt(), b.interrupt()]);
    },
    SLOW_TEST_MS,
  );
});

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/** `XADD key * line <size bytes> node x` over a raw socket, streamed: the test never holds the entry. */
async function xaddHuge(port: number, key: string, size: number): Promise<void> {
  const replied = Promise.withResolvers<string>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_socket, chunk) => replied.resolve(String(chunk)),
      drain: () => pump(),
      close: () => replied.resolve("closed"),
    },
  });
  const head = `*7\r\n$4\r\nXADD\r\n$${key.length}\r\n${key}\r\n$1\r\n*\r\n$4\r\nline\r\n$${size}\r\n`;
  const tail = "\r\n$4\r\nnode\r\n$1\r\nx\r\n";
  const block = new Uint8Array(1024 * 1024).fill(0x79);
  let left = size;
  let pending: Uint8Array | null = new TextEncoder().encode(head);
  const pump = () => {
    for (;;) {
      if (pending === null) {
        if (left > 0) {
          pending = block.subarray(0, Math.min(block.length, left));
          left -= pending.length;
        } else if (left === 0) {
          pending = new TextEncoder().encode(tail);
          left = -1;
        } else return;
      }
      const written = socket.write(pending);
      if (written < pending.length) {
        pending = pending.subarray(Math.max(0, written));
        return;
      }
      pending = null;
    }
  };
  pump();
  const reply = await replied.promise;
  socket.end();
  if (!/^\$\d+\r\n\d+-\d+/.test(reply)) throw new Error(`XADD failed: ${reply}`);
}

/** Deletes the stream's oldest entry (the huge one), so Redis does not hold 900 MB at once. */
async function deleteStreamHead(url: string, key: string): Promise<void> {
  const client = new RedisClient(url);
  await client.send("XTRIM", [key, "MAXLEN", "0"]);
  client.close();
}

describe.skipIf(!hasRedis)("lesson 07: entries sanitised like lines, and forged keys", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.stop());

  test(
    "an entry holding what stripControls removes from users' lines (bidi, zero-width, BOM, U+2028, tags, soft hyphen, U+061C) is skipped with one line",
    async () => {
      const prefix = freshPrefix();
      const node = await startNode(redis.url, ["--prefix", prefix, "--quiet"]);
      const ivy = await join(node, "ivy");
      const other = new RedisClient(redis.url);
      const hostile = ["\u202e", "\u2066", "\u200b", "\ufeff", "\u2028", "\u{e0041}", "\u00ad", "\u061c"];
      for (const char of hostile) {
        await other.send("XADD", [`${prefix}room`, "*", "line", `mallory: evil${char}text`, "node", "x"]);
      }
      await other.send("XADD", [`${prefix}room`, "*", "line", "mallory: plain", "node", "x"]);
      expect(await ivy.line()).toBe("mallory: plain");
      expect(logLines(node, /line holds control or format characters/).length).toBe(hostile.length);
      // A user's own line with the same characters is stripped before it is published, and arrives.
      ivy.send(`own\u202e line\u200b\n`);
      expect(await ivy.line()).toBe("ivy: own line");
      other.close();
      ivy.close();
      await node.interrupt();
    },
    SLOW_TEST_MS,
  );

  test(
    "a forged seq key (999999999999) cannot silence a node's lines: one log line, the key reset, lines go on",
    async () => {
      const prefix = freshPrefix();
      const node = await startNode(redis.url, ["--prefix", prefix, "--quiet"]);
      const ann = await join(node, "ann");
      const other = new RedisClient(redis.url);
      const [id] = (await other.send("SMEMBERS", [`${prefix}nodes`])) as string[];
      await other.send("SET", [`${prefix}seq:${id}`, "999999999999"]);
      ann.send("after the forgery\n");
      expect(await ann.line()).toBe("ann: after the forgery");
      expect(await drain(ann, "ann")).toEqual([]);
      expect(logLines(node, /^! seq:.* was not this node's .*reset$/).length).toBe(1);
      other.close();
      ann.close();
      await node.interrupt();
    },
    SLOW_TEST_MS,
  );

  test("the log counts the users of this node, and says so", async () => {
    const node = await startNode(redis.url, ["--prefix", freshPrefix()]);
    const ann = await join(node, "ann");
    await waitFor("the join's log line", () =>
      /\+ ann joined from \S+ \(1 on this node\)$/m.test(node.output()),
    );
    ann.close();
    await node.interrupt();
  });
});

describe.skipIf(!hasRedis)("lesson 07's launcher, killed", () => {
  test(
    "SIGKILL of the launcher leaves nothing behind: not its redis-server, not its folder, not its nodes",
    async () => {
      const child = Bun.spawn(["bun", SCRIPT, "--port", "0", "--quiet"], {
        stdout: "pipe",
        stderr: "inherit",
      });
      let output = "";
      void (async () => {
        for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
      })();
      await waitFor("the node pids", () => /^node pids: /m.test(output), 15_000);
      const redisPort = Number(/redis at 127\.0\.0\.1:(\d+)/.exec(output)![1]);
      const nodePids = /^node pids: ([\d, ]+)/m.exec(output)![1]!.split(", ").map(Number);
      const redisPid = redisServerOn(redisPort);
      // A precondition, not the point: the launcher's redis-server must be found alive before the kill,
      // or "it is gone afterwards" below would pass without proving anything.
      expect(redisPid).toBeDefined();
      const folder = readlinkSync(`/proc/${redisPid}/cwd`);
      expect(folder).toContain("lesson-redis-");
      child.kill("SIGKILL");
      await child.exited;
      const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/State:\s+Z/.test(readStatus(pid));
      await waitFor(
        "the redis-server and the nodes to exit",
        () => !alive(redisPid!) && !nodePids.some(alive),
        10_000,
      );
      await waitFor("the folder to go", () => !existsSync(folder), 5000);
      expect(redisServerOn(redisPort)).toBeUndefined();
    },
    SLOW_TEST_MS,
  );
});

function readStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return "";
  }
}

/** The pid of the redis-server listening on `port` (it retitles itself `redis-server HOST:PORT`). */
function redisServerOn(port: number): number | undefined {
  for (const line of Bun.spawnSync(["ps", "-eo", "pid=,args="]).stdout.toString().split("\n")) {
    const [, pid, args] = /^\s*(\d+) (.*)$/.exec(line) ?? [];
    if (args && /^\S*redis-server \S+:\d+$/.test(args) && args.endsWith(`:${port}`)) return Number(pid);
  }
  return undefined;
}
