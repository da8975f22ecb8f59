import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { RedisClient } from "bun";
import { startProxy } from "./helpers/proxy.ts";
import { startInPty } from "./helpers/pty.ts";
import { type RedisServer, redisAvailability, startRedisServer } from "./helpers/redis.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";
import { LineClient, type ServerProcess, startServerProcess } from "./helpers/servers.ts";

const SCRIPT = "scripts/07-chat-cluster.ts";
const availability = redisAvailability();
if ("skipReason" in availability) console.log(`skipping lesson 07's Redis tests: ${availability.skipReason}`);
const hasRedis = "bin" in availability;

let prefixes = 0;
/** A key prefix of its own per test: the tests share one Redis without seeing each other's rooms. */
const freshPrefix = () => `t${process.pid}-${++prefixes}:`;

/** Every node a test started: whatever a failed test left running is killed after the file. */
const started: ServerProcess[] = [];
afterAll(() => {
  for (const node of started) if (node.child.exitCode === null) node.child.kill("SIGKILL");
});

/** Starts `count` nodes (`--node --port 0`) on `redisUrl`, in parallel. */
async function startNodes(redisUrl: string, count: number, args: string[] = []): Promise<ServerProcess[]> {
  const nodes = await Promise.all(
    Array.from({ length: count }, () => startServerProcess(SCRIPT, ["--node", "--redis", redisUrl, ...args])),
  );
  started.push(...nodes);
  return nodes;
}

/** Connects to a node (or a port) and registers `name`; returns the client after its OK line. */
async function join(node: ServerProcess | number, name: string): Promise<LineClient> {
  const client = await LineClient.connect(typeof node === "number" ? node : node.port);
  client.send(`CONNECT ${name}\n`);
  expect(await client.line()).toMatch(new RegExp(`^OK welcome ${name}, \\d+ users? online$`));
  return client;
}

/** Reads `count` lines. */
async function lines(client: LineClient, count: number, timeoutMs = 5000): Promise<string[]> {
  const got: string[] = [];
  while (got.length < count) got.push((await client.line(timeoutMs))!);
  return got;
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

/** Sends `text` from `client` until it is not refused as paused; resolves when its own copy comes back. */
async function sendWhenResumed(client: LineClient, name: string, text: string, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    client.send(`${text}\n`);
    const reply = await client.line(timeoutMs);
    if (reply === `${name}: ${text}`) return;
    if (reply !== "ERR chat paused: reconnecting") throw new Error(`unexpected ${reply}`);
    await Bun.sleep(200);
  }
  throw new Error(`still paused after ${timeoutMs} ms`);
}

/**
 * Makes sure a client's earlier lines have all arrived: a marker line sent now is the next line of the
 * client's own after them. Returns what came before it (other tests' markers left out).
 */
async function drain(client: LineClient, name: string): Promise<string[]> {
  const marker = `marker ${Math.random()}`;
  client.send(`${marker}\n`);
  const seen = await linesThrough(client, `${name}: ${marker}`);
  return seen.slice(0, -1).filter((line) => !/^\w+: marker /.test(line));
}

/** The failure tests wait for timeouts and reconnects: 20 s each at most (on a loaded machine). */
const SLOW_TEST_MS = 20_000;

const stop = (nodes: ServerProcess[]) => Promise.all(nodes.map((node) => node.interrupt()));

describe.skipIf(!hasRedis)("lesson 07: several nodes, one room", () => {
  let redis: RedisServer;
  let nodes: ServerProcess[];
  beforeAll(async () => {
    redis = await startRedisServer();
    nodes = await startNodes(redis.url, 2, ["--prefix", freshPrefix(), "--quiet"]);
  });
  afterAll(async () => {
    await stop(nodes);
    await redis.stop();
  });

  test("rule 1: every line reaches every user on every node once, all in the same order", async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const users = [await join(a, "a1"), await join(b, "b1"), await join(a, "a2"), await join(b, "b2")];
    const names = ["a1", "b1", "a2", "b2"];
    // Each user has seen the joins after its own; a marker from the last one lines everyone up.
    for (const [index, user] of users.entries()) await lines(user, users.length - 1 - index);
    // Everyone sends at once, interleaved: 4 users × 5 lines, half of them from each node.
    for (let round = 0; round < 5; round++) {
      for (const [index, user] of users.entries()) user.send(`m${round} from ${names[index]}\n`);
    }
    const seen = await Promise.all(users.map((user) => lines(user, 20)));
    for (const view of seen) expect(view).toEqual(seen[0]!);
    expect(new Set(seen[0]).size).toBe(20);
    for (const [index, name] of names.entries()) {
      // Each sender's own lines, in the order it sent them.
      const own = seen[0]!.filter((line) => line.startsWith(`${name}: `));
      expect(own).toEqual([0, 1, 2, 3, 4].map((round) => `${name}: m${round} from ${name}`));
      users[index]!.send("/quit\n");
    }
    for (const user of users) user.close();
  });

  // What `nc -N` does on Ctrl+D after a partial line: the bytes, then FIN, and it keeps reading.
  test("a user that half-closes after a last line without a newline still gets its own copy", async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const watcher = await join(b, "watcher");
    const leaver = await LineClient.connect(a.port);
    leaver.send("CONNECT halfsay\nhello, then EOF");
    leaver.writer.writeEof();
    const rest = await leaver.rest();
    expect(rest[0]).toMatch(/^OK welcome halfsay, \d+ users? online$/);
    expect(rest.at(-1)).toBe("halfsay: hello, then EOF");
    // The other node sees the line, then the departure — after it, never before.
    const seen = await linesThrough(watcher, "* halfsay left");
    expect(seen.indexOf("halfsay: hello, then EOF")).toBeGreaterThan(seen.indexOf("* halfsay joined"));
    expect(seen.indexOf("halfsay: hello, then EOF")).toBe(seen.length - 2);
    watcher.send("/quit\n");
    watcher.close();
  });

  test("rule 2: two nodes racing for one name (any case) give exactly one OK", async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const winners: LineClient[] = [];
    for (let round = 0; round < 10; round++) {
      const [x, y] = await Promise.all([LineClient.connect(a.port), LineClient.connect(b.port)]);
      x.send(`CONNECT racer${round}\n`);
      y.send(`CONNECT RACER${round}\n`);
      const replies = await Promise.all([x.line(), y.line()]);
      expect(replies.filter((reply) => reply!.startsWith("OK welcome")).length).toBe(1);
      expect(replies.filter((reply) => reply!.startsWith("ERR name taken: ")).length).toBe(1);
      winners.push(replies[0]!.startsWith("OK") ? x : y);
      (replies[0]!.startsWith("OK") ? y : x).close();
    }
    for (const winner of winners) winner.close();
  });

  test("rule 2: /who lists every user of every node, sorted, at most 100 names and then how many more", async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    // Earlier tests' users are gone once their names are free: wait until the room is empty.
    const probe = await join(a, "probe");
    for (let tries = 0; tries < 50; tries++) {
      probe.send("/who\n");
      if ((await probe.lineMatching(/^\* online/)) === "* online (1): probe") break;
      await Bun.sleep(100);
    }
    probe.close();
    const names = Array.from({ length: 104 }, (_, index) => `w${String(index).padStart(3, "0")}`);
    const users = await Promise.all(names.map((name, index) => join(index % 2 === 0 ? a : b, name)));
    const mixedCase = await join(b, "W004a");
    users[0]!.send("/who\n");
    const who = await users[0]!.lineMatching(/^\* online/);
    const expected = [...names.slice(0, 5), "W004a", ...names.slice(5)].slice(0, 100);
    expect(who).toBe(`* online (105): ${expected.join(", ")}, … and 5 more`);
    for (const user of [...users, mixedCase]) user.close();
  });

  test("rule 3: joins and every kind of departure are announced once, on every node", async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const watcher = await join(b, "watcher");
    const leaves = {
      quitter: (client: LineClient) => client.send("/quit\n"),
      leaver: (client: LineClient) => client.close(), // EOF
      dropper: (client: LineClient) => client.abort(), // connection reset
    };
    // One at a time: a half-closed user leaves once its lines have come back from Redis, so its notice
    // may otherwise land after the next user's join.
    const all: string[] = [];
    for (const [name, leave] of Object.entries(leaves)) {
      leave(await join(a, name));
      for (;;) {
        const line = (await watcher.line())!;
        all.push(line);
        if (line.startsWith(`* ${name} left`)) break;
      }
    }
    // (The departures of the previous test's users may still be arriving: they come first.)
    const seen = all.slice(all.indexOf("* quitter joined"));
    seen.push(...(await drain(watcher, "watcher")));
    expect(seen).toEqual([
      "* quitter joined",
      "* quitter left",
      "* leaver joined",
      "* leaver left",
      "* dropper joined",
      expect.stringMatching(/^\* dropper left( \(connection lost\))?$/),
    ]);
    watcher.close();
  });
});

describe.skipIf(!hasRedis)("lesson 07 with lesson 06's client", () => {
  test(
    "two terminal clients on two different nodes chat, the client unchanged",
    async () => {
      const redis = await startRedisServer();
      const nodes = await startNodes(redis.url, 2, ["--prefix", freshPrefix(), "--quiet"]);
      const client = (node: ServerProcess, name: string) =>
        startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(node.port), "--name", name]);
      const clients = [client(nodes[0]!, "ann")];
      try {
        const ann = clients[0]!;
        await ann.waitFor((rows) => rows.at(-1)!.startsWith("ann>"), "ann's input line", 8000);
        const bob = client(nodes[1]!, "bob");
        clients.push(bob);
        await bob.waitFor((rows) => rows.at(-1)!.startsWith("bob>"), "bob's input line", 8000);
        await ann.waitFor((rows) => rows.some((row) => row.includes("* bob joined")), "bob's join", 8000);
        bob.type("hello from the other node\r");
        await ann.waitFor(
          (rows) => rows.some((row) => row.includes("bob: hello from the other node")),
          "bob's line",
          8000,
        );
        ann.type("/quit\r");
        expect(await Promise.race([ann.exited, Bun.sleep(8000).then(() => "still running")])).toBe(0);
        await bob.waitFor((rows) => rows.some((row) => row.includes("* ann left")), "ann's departure", 8000);
      } finally {
        for (const client of clients) client.kill();
        await stop(nodes);
        await redis.stop();
      }
    },
    SLOW_TEST_MS,
  );
});

describe.skipIf(!hasRedis)("lesson 07: when things fail", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  }, SLOW_TEST_MS);
  afterAll(() => redis.stop());

  test(
    "rule 4: a SIGKILLed node's users are announced `left (server lost)` once, in time, and freed",
    async () => {
      const nodes = await startNodes(redis.url, 3, [
        "--prefix",
        freshPrefix(),
        "--node-timeout",
        "1",
        "--quiet",
      ]);
      const [a, b, doomed] = nodes as [ServerProcess, ServerProcess, ServerProcess];
      const onA = await join(a, "onA");
      const onB = await join(b, "onB");
      await join(doomed, "lost1");
      await join(doomed, "Lost2");
      await lines(onA, 3);
      await lines(onB, 2);
      const killedAt = performance.now();
      doomed.child.kill("SIGKILL");
      const notices = ["* lost1 left (server lost)", "* Lost2 left (server lost)"];
      for (const user of [onA, onB]) expect(await lines(user, 2, 4000)).toEqual(notices);
      // --node-timeout 1 + 1 s, with 1 s more of margin for a loaded machine.
      expect(performance.now() - killedAt).toBeLessThan(3000);
      // Two survivors raced to clean up; one did. Nothing more comes before a fresh marker.
      await Bun.sleep(600);
      expect(await drain(onA, "onA")).toEqual([]);
      expect(await drain(onB, "onB")).toEqual([]);
      const again = await join(a, "LOST1"); // the name is free again
      again.close();
      for (const user of [onA, onB]) user.close();
      await stop([a, b]);
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 5: a node cut off from Redis keeps its users, refuses lines meanwhile, then delivers all it missed in order",
    async () => {
      const proxy = await startProxy(redis.port);
      const prefix = freshPrefix();
      const args = ["--prefix", prefix, "--node-timeout", "3", "--quiet"];
      const [[cutOff], [steady]] = await Promise.all([
        startNodes(`redis://127.0.0.1:${proxy.port}`, 1, args),
        startNodes(redis.url, 1, args),
      ]);
      const pat = await join(cutOff!, "pat");
      const pal = await join(cutOff!, "pal");
      const sam = await join(steady!, "sam");
      expect(await lines(pat, 2)).toEqual(["* pal joined", "* sam joined"]);
      proxy.cut();
      await Bun.sleep(200);
      pat.send("anyone there?\n");
      expect(await pat.line()).toBe("ERR chat paused: reconnecting");
      const newcomer = await LineClient.connect(cutOff!.port);
      newcomer.send("CONNECT newcomer\n");
      expect(await newcomer.line()).toBe("ERR chat paused: reconnecting");
      const said = ["one", "two", "three", "four", "five"];
      for (const text of said) sam.send(`${text}\n`);
      expect(await lines(sam, 5)).toEqual(said.map((text) => `sam: ${text}`));
      // A user who leaves meanwhile: its departure (and the freeing of its name) waits for Redis.
      pal.send("/quit\n");
      expect(await pal.rest()).toEqual(["* sam joined", "* bye"]);
      await Bun.sleep(800);
      proxy.restore();
      // Everything sam said, in order, once — then pal's departure, then pat's own line once pat may talk.
      expect(await lines(pat, 6, 8000)).toEqual([...said.map((text) => `sam: ${text}`), "* pal left"]);
      await sendWhenResumed(pat, "pat", "back");
      expect(await linesThrough(sam, "pat: back")).toEqual(["* pal left", "pat: back"]);
      expect(await drain(pat, "pat")).toEqual([]);
      const newPal = await join(steady!, "pal"); // the name was freed
      newPal.close();
      for (const user of [pat, sam, newcomer]) user.close();
      await stop([cutOff!, steady!]);
      proxy.stop();
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 4+5: a node cut off for longer than --node-timeout was declared dead: back, it tells its users and closes them, and joins again as a new node",
    async () => {
      const proxy = await startProxy(redis.port);
      const args = ["--prefix", freshPrefix(), "--node-timeout", "1", "--quiet"];
      const [[cutOff], [steady]] = await Promise.all([
        startNodes(`redis://127.0.0.1:${proxy.port}`, 1, args),
        startNodes(redis.url, 1, args),
      ]);
      const pat = await join(cutOff!, "pat");
      const pia = await join(cutOff!, "pia");
      const sam = await join(steady!, "sam");
      expect(await pat.line()).toBe("* pia joined");
      expect(await pia.line()).toBe("* sam joined");
      proxy.cut();
      // Taken for dead: the steady node cleans the cut-off node up, and the name pat is free for a newcomer.
      expect(await lines(sam, 2, 5000)).toEqual(["* pat left (server lost)", "* pia left (server lost)"]);
      const newPat = await join(steady!, "PAT");
      expect(await sam.line()).toBe("* PAT joined");
      pia.send("said while cut off\n");
      expect(await pia.line()).toBe("ERR chat paused: reconnecting");
      proxy.restore();
      // Its lease is gone: it may not speak for pat or pia again. Both are told, then closed.
      for (const user of [pat, pia]) {
        expect((await user.rest(8000)).at(-1)).toBe(
          "* disconnected: this server lost its place in the cluster",
        );
      }
      // It joined again as a new node: pia may come back (announced once more, as a join), and talk.
      const newPia = await LineClient.connect(cutOff!.port);
      for (let tries = 0; tries < 50; tries++) {
        newPia.send("CONNECT pia\n");
        if ((await newPia.line())!.startsWith("OK welcome pia")) break;
        await Bun.sleep(100);
      }
      expect(await sam.line(8000)).toBe("* pia joined");
      await sendWhenResumed(newPia, "pia", "hello again");
      expect(await linesThrough(sam, "pia: hello again")).toEqual(["pia: hello again"]);
      expect(await drain(sam, "sam")).toEqual([]);
      for (const user of [newPia, sam, newPat]) user.close();
      await stop([cutOff!, steady!]);
      proxy.stop();
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 5: a Redis that goes silent (SIGSTOP, no reset) is noticed; a line in flight then arrives once",
    async () => {
      const own = await startRedisServer();
      try {
        const [node] = await startNodes(own.url, 1, [
          "--prefix",
          freshPrefix(),
          "--node-timeout",
          "2",
          "--quiet",
        ]);
        const ann = await join(node!, "ann");
        process.kill(own.pid(), "SIGSTOP");
        ann.send("in flight\n"); // its XADD goes out and gets no answer
        // The heartbeat waits half of --node-timeout for a reply, then the node drops the link: paused.
        await Bun.sleep(1600);
        ann.send("while silent\n");
        expect(await ann.line()).toBe("ERR chat paused: reconnecting");
        process.kill(own.pid(), "SIGCONT");
        // Back: the line that was in flight arrives — once, though it was sent on two connections.
        expect(await ann.line(8000)).toBe("ann: in flight");
        await sendWhenResumed(ann, "ann", "after");
        expect(await drain(ann, "ann")).toEqual([]);
        await stop([node!]);
      } finally {
        try {
          process.kill(own.pid(), "SIGCONT");
        } catch {}
        await own.stop();
      }
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 6: after Redis restarts empty, nodes claim their users' names again and chat resumes",
    async () => {
      const own = await startRedisServer();
      try {
        const nodes = await startNodes(own.url, 2, [
          "--prefix",
          freshPrefix(),
          "--node-timeout",
          "2",
          "--quiet",
        ]);
        const [a, b] = nodes as [ServerProcess, ServerProcess];
        const ann = await join(a, "ann");
        const bob = await join(b, "bob");
        expect(await ann.line()).toBe("* bob joined");
        await own.kill();
        await own.restart();
        const resumedAt = performance.now();
        await sendWhenResumed(ann, "ann", "still here");
        expect(performance.now() - resumedAt).toBeLessThan(8000);
        expect(await bob.lineMatching(/^ann: /, 8000)).toBe("ann: still here");
        // bob's node has claimed "bob" again too: nobody can take a name that is online.
        await sendWhenResumed(bob, "bob", "me too");
        for (const [node, name] of [
          [a, "BOB"],
          [b, "Ann"],
        ] as const) {
          const impostor = await LineClient.connect(node.port);
          impostor.send(`CONNECT ${name}\n`);
          expect(await impostor.line()).toBe(`ERR name taken: ${name}`);
          impostor.close();
        }
        ann.close();
        bob.close();
        await stop(nodes);
      } finally {
        await own.stop();
      }
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 7: SIGTERM stops one node gracefully: its users told, the others see them leave, names freed",
    async () => {
      const nodes = await startNodes(redis.url, 2, ["--prefix", freshPrefix()]);
      const [leaving, staying] = nodes as [ServerProcess, ServerProcess];
      const gus = await join(leaving, "gus");
      const hal = await join(staying, "hal");
      expect(await gus.line()).toBe("* hal joined");
      leaving.child.kill("SIGTERM");
      expect(await gus.rest()).toEqual(["* server shutting down"]);
      expect(await leaving.child.exited).toBe(0);
      expect(await hal.line()).toBe("* gus left (server shutting down)");
      const newGus = await join(staying, "GUS");
      expect(await hal.line()).toBe("* GUS joined");
      newGus.close();
      hal.close();
      await stop([staying]);
    },
    SLOW_TEST_MS,
  );

  test(
    "rule 8: stream entries that are not the room's are skipped with one log line each",
    async () => {
      const prefix = freshPrefix();
      const [node] = await startNodes(redis.url, 1, ["--prefix", prefix, "--quiet"]);
      const ivy = await join(node!, "ivy");
      // ivy's feed starts at its own join notice: make sure it is in the stream before what follows.
      expect(await drain(ivy, "ivy")).toEqual([]);
      const redisClient = new RedisClient(redis.url);
      const room = `${prefix}room`;
      const garbage = [
        ["text", "no line field"],
        ["line", "* fake notice", "node", "x", "extra", "field"],
        ["line", "bell \u0007 and escape \u001b[2J", "node", "x"],
        ["line", "x".repeat(70_000), "node", "x"],
        ["line", "ok line", "node", "x", "seq", "not a number"],
      ];
      for (const fields of garbage) await redisClient.send("XADD", [room, "*", ...fields]);
      await redisClient.send("XADD", [room, "*", "line", "from outside, well formed", "node", "elsewhere"]);
      redisClient.close();
      expect(await ivy.line()).toBe("from outside, well formed");
      expect(await drain(ivy, "ivy")).toEqual([]);
      const skipped = node!
        .output()
        .split("\n")
        .filter((line) => line.startsWith("! skipped stream entry"));
      expect(skipped.length).toBe(garbage.length);
      expect(node!.child.exitCode).toBe(null);
      ivy.close();
      expect(await node!.interrupt()).toBe(0);
    },
    SLOW_TEST_MS,
  );
});

/** The redis-server process listening on `port` (redis-server retitles itself `redis-server HOST:PORT`). */
function ourRedisServer(port: number): { pid: number; args: string } | undefined {
  const ps = Bun.spawnSync(["ps", "-eo", "pid=,args="]).stdout.toString().split("\n");
  for (const line of ps) {
    const [, pid, args] = /^\s*(\d+) (.*)$/.exec(line) ?? [];
    if (args && /^\S*redis-server \S+:\d+/.test(args) && args.endsWith(`:${port}`))
      return { pid: Number(pid), args };
  }
  return undefined;
}

describe.skipIf(!hasRedis)("lesson 07: the launcher", () => {
  const redisFolders = () => readdirSync(tmpdir()).filter((name) => name.startsWith("lesson-redis-"));

  test(
    "starts a private Redis and two nodes on one port, outlives a killed node, and Ctrl+C stops the rest and cleans up",
    async () => {
      const foldersBefore = new Set(redisFolders());
      // --port 0 (a free port for both nodes) rather than 8000, which another program may hold.
      const child = Bun.spawn(["bun", SCRIPT, "--port", "0"], { stdout: "pipe", stderr: "inherit" });
      let output = "";
      void (async () => {
        for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
      })();
      const printed = async (pattern: RegExp) => {
        for (let tries = 0; tries < 200 && !pattern.test(output); tries++) await Bun.sleep(50);
        return pattern.exec(output);
      };
      const first = await printed(/^(.*)\n/);
      const match = /^listening on 127\.0\.0\.1:(\d+) \(2 nodes, redis at 127\.0\.0\.1:(\d+)\)$/.exec(
        first![1]!,
      );
      expect(match).not.toBe(null);
      const [port, redisPort] = [Number(match![1]), Number(match![2])];
      // Two users on the one port — through whichever nodes the kernel picked — chat.
      const [ann, bob] = [await join(port, "ann"), await join(port, "bob")];
      expect(await ann.line()).toBe("* bob joined");
      bob.send("hi ann\n");
      expect(await ann.line()).toBe("bob: hi ann");
      ann.close();
      bob.close();
      // A node killed outright: the launcher says so and carries on; the port still leads to the other.
      const pids = (await printed(/^node pids: (\d+), (\d+)/m))!;
      process.kill(Number(pids[1]), "SIGKILL");
      expect(await printed(new RegExp(`^node 1 \\(pid ${pids[1]}\\) exited`, "m"))).not.toBe(null);
      const cy = await join(port, "cy");
      child.kill("SIGINT");
      expect(await cy.lineMatching("* server shutting down")).toBe("* server shutting down");
      expect(await child.exited).toBe(0);
      // Every node and the redis-server are gone, and so is Redis's temporary folder.
      const leftovers = Bun.spawnSync(["ps", "-eo", "args"]).stdout.toString().split("\n");
      expect(leftovers.filter((args) => args.includes(`redis://127.0.0.1:${redisPort}`))).toEqual([]);
      expect(
        leftovers.filter((args) => args.includes(`redis-server`) && args.includes(`:${redisPort}`)),
      ).toEqual([]);
      expect(redisFolders().filter((name) => !foldersBefore.has(name))).toEqual([]);
    },
    SLOW_TEST_MS,
  );

  test(
    "stops its nodes and exits 1, with one line, when its private redis-server dies",
    async () => {
      const child = Bun.spawn(["bun", SCRIPT, "--port", "0", "--quiet"], { stdout: "pipe", stderr: "pipe" });
      let output = "";
      const stdoutDone = (async () => {
        for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
      })();
      const stderr = new Response(child.stderr).text();
      // Once both nodes listen: the launcher then waits only for a signal, its nodes, or Redis.
      for (let tries = 0; tries < 200 && !/^node pids: /m.test(output); tries++) await Bun.sleep(50);
      // The launcher's own redis-server (under its guard, lib/redis-server.ts): the one on its port.
      const redisPort = /redis at 127\.0\.0\.1:(\d+)/.exec(output)![1];
      const redisLine = ourRedisServer(Number(redisPort));
      expect(redisLine).toBeDefined();
      process.kill(redisLine!.pid, "SIGKILL");
      // The nodes stop gracefully (their Redis is gone: the 2 s close grace at most), then the launcher.
      expect(await child.exited).toBe(1);
      await stdoutDone;
      expect(output).toMatch(/^redis-server \(pid \d+\) exited \(137\): stopping the nodes$/m);
      expect(hasStackTrace(await stderr)).toBe(false);
    },
    SLOW_TEST_MS,
  );

  test(
    "a port already taken is one line, from the node that could not listen, and exit 1",
    async () => {
      const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        const { exitCode, stderr } = await runScript([SCRIPT, "--port", String(holder.port), "--quiet"]);
        expect(exitCode).toBe(1);
        expect(stderr.trim().split("\n")).toEqual([
          expect.stringMatching(/^error: node 1: cannot start a node .*address already in use/),
        ]);
      } finally {
        holder.stop(true);
      }
    },
    SLOW_TEST_MS,
  );

  test(
    "without redis-server on the PATH, says how to install it in one line and exits 1",
    async () => {
      // A PATH with bun alone on it.
      const bin = mkdtempSync(joinPath(tmpdir(), "lesson07-path-"));
      symlinkSync(process.execPath, joinPath(bin, "bun"));
      try {
        const { exitCode, stderr } = await runScript([SCRIPT, "--port", "0"], { env: { PATH: bin } });
        expect(exitCode).toBe(1);
        expect(stderr.trim().split("\n")).toEqual([expect.stringContaining("apt-get install redis-server")]);
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    },
    SLOW_TEST_MS,
  );

  test(
    "bad flags get one line and exit 2; an unreachable Redis one line and exit 1",
    async () => {
      for (const [args, code, message] of [
        [["--node"], 2, "--node needs --redis"],
        [["--redis", "http://x"], 2, "--redis needs a URL like redis://"],
        // Past a timer's 2^31 − 1 ms the heartbeat fired at once, in a loop: refused before anything starts.
        [["--node-timeout", "99999999999"], 2, "--node-timeout needs a number 0.5–86400"],
        [
          ["--node", "--port", "0", "--redis", "redis://127.0.0.1:1"],
          1,
          "cannot start a node (redis redis://127.0.0.1:1, port 0): cannot connect to 127.0.0.1:1: connection refused",
        ],
      ] as const) {
        const { exitCode, stderr } = await runScript([SCRIPT, ...args]);
        expect(exitCode).toBe(code);
        expect(stderr).toContain(message);
        expect(stderr.trim().split("\n").length).toBe(1);
        expect(hasStackTrace(stderr)).toBe(false);
      }
    },
    SLOW_TEST_MS,
  );
});
