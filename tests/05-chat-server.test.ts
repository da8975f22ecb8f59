import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { runScript } from "./helpers/run.ts";
import { LineClient, type ServerProcess, startServerProcess } from "./helpers/servers.ts";

/** Connects and registers `name`; returns the client after its OK line. */
async function join(server: ServerProcess, name: string): Promise<LineClient> {
  const client = await LineClient.connect(server.port);
  client.send(`CONNECT ${name}\n`);
  expect(await client.line()).toMatch(new RegExp(`^OK welcome ${name}, \\d+ users? online$`));
  return client;
}

describe("lesson 05: the chat protocol", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
  afterAll(() => server.child.kill());

  test("refuses a malformed CONNECT with a reason, and lets the client try again", async () => {
    const client = await LineClient.connect(server.port);
    const replies: string[] = [];
    for (const attempt of [
      "hello",
      "CONNECT",
      "CONNECT   ",
      "CONNECT two words",
      "CONNECT b@d!",
      `CONNECT ${"n".repeat(33)}`,
    ]) {
      client.send(`${attempt}\n`);
      replies.push((await client.line())!);
    }
    expect(replies).toEqual([
      "ERR send CONNECT <name> first",
      "ERR missing name: send CONNECT <name>",
      "ERR missing name: send CONNECT <name>",
      "ERR invalid name: one word, no spaces",
      "ERR invalid name: use 1-32 letters, digits, _ or -",
      "ERR invalid name: use 1-32 letters, digits, _ or -",
    ]);
    client.send("CONNECT retry_ok-1\n");
    expect(await client.line()).toMatch(/^OK welcome retry_ok-1, \d+ users? online$/);
    client.close();
  });

  test("keeps names unique ignoring case", async () => {
    const alice = await join(server, "alice");
    const impostor = await LineClient.connect(server.port);
    impostor.send("CONNECT alice\nCONNECT ALICE\n");
    expect([await impostor.line(), await impostor.line()]).toEqual([
      "ERR name taken: alice",
      "ERR name taken: ALICE",
    ]);
    // The first alice is untouched: her messages still carry her name.
    alice.send("still me\n");
    expect(await alice.line()).toBe("alice: still me");
    alice.close();
    impostor.close();
  });

  test("delivers every message to all users, sender included, and announces joins to the others", async () => {
    const ann = await join(server, "ann");
    const bob = await join(server, "bob");
    expect(await ann.line()).toBe("* bob joined");
    bob.send("hi ann\r\n");
    expect(await bob.line()).toBe("bob: hi ann");
    expect(await ann.line()).toBe("bob: hi ann");
    ann.send("/who\n");
    expect(await ann.lineMatching(/^\* online/)).toMatch(/^\* online \(\d+\): .*\bann\b.*\bbob\b/);
    ann.send("/dance\n");
    expect(await ann.line()).toBe("ERR unknown command /dance (commands: /who, /quit)");
    ann.close();
    bob.close();
  });

  test("removes a user once and tells the others once, whichever way they leave", async () => {
    const watcher = await join(server, "watcher");
    // The earlier tests' users leave as their sockets close, asynchronously: wait until the watcher is
    // alone, so none of their notices can be taken for one of this test's.
    for (;;) {
      watcher.send("/who\n");
      if ((await watcher.lineMatching(/^\* online/)) === "* online (1): watcher") break;
      await Bun.sleep(250); // /who costs a flood token: stay under the default 5 lines a second
    }
    const leavers = {
      quitter: (client: LineClient) => client.send("/quit\n"),
      eof: (client: LineClient) => client.writer.writeEof(),
      resetter: (client: LineClient) => client.abort(),
      partial: (client: LineClient) => {
        client.send("half a line that never ends");
        setTimeout(() => client.abort(), 50);
      },
    };
    for (const [name, leave] of Object.entries(leavers)) {
      const client = await join(server, name);
      expect(await watcher.line()).toBe(`* ${name} joined`);
      leave(client);
      // A reset may be reported as a lost connection; either way, exactly one notice.
      expect(await watcher.line()).toMatch(new RegExp(`^\\* ${name} left( \\(connection lost\\))?$`));
    }
    // Nothing more about them arrives (no second notice, no half line), and every name is free again.
    watcher.send("/who\n");
    expect(await watcher.line()).toBe("* online (1): watcher");
    for (const name of Object.keys(leavers)) (await join(server, name)).close();
    watcher.close();
  });
});

describe("lesson 05: hostile and broken clients", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet", "--max-line", "4096"]);
  afterAll(() => server.child.kill());

  test("answers a 1 MB line with ERR line too long, and the connection goes on", async () => {
    const client = await join(server, "longwinded");
    client.send(`${"z".repeat(1024 * 1024)}\nshort one\n`);
    expect(await client.line()).toBe("ERR line too long (max 4096 bytes)");
    expect(await client.line()).toBe("longwinded: short one");
    client.close();
  });

  test("strips escape sequences and control characters before relaying", async () => {
    const victim = await join(server, "victim");
    const attacker = await join(server, "attacker");
    await victim.lineMatching("* attacker joined");
    attacker.send("\x1b[2J\x1b[Hcleared?\x1b]0;pwned\x07 \x1b[31mred\x1b[0m\rover\x08write\u202eesrever\n");
    // (Departures of the users of earlier tests may still be announced: read up to attacker's line.)
    const relayed = await victim.lineMatching(/^attacker: /);
    expect(relayed).toBe("attacker: cleared? redoverwriteesrever");
    expect(relayed).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e]/);
    victim.close();
    attacker.close();
  });

  test("turns invalid UTF-8 and binary garbage into U+FFFD and keeps serving", async () => {
    const client = await join(server, "binary");
    client.send(new Uint8Array([0x68, 0x69, 0xff, 0xc3, 0x28, 0x00, 0x01, 0x0a]));
    // Earlier tests' users may still be announced leaving: skip to binary's own lines.
    expect(await client.lineMatching(/^binary: /)).toBe("binary: hi\uFFFD\uFFFD(");
    client.send(
      crypto.getRandomValues(new Uint8Array(64 * 1024)).map((byte) => (byte === 0x0a ? 0x20 : byte)),
    );
    client.send("\nafter the noise\n");
    expect(await client.lineMatching(/^(ERR line too long|binary: after the noise)/)).toBe(
      "ERR line too long (max 4096 bytes)",
    );
    expect(await client.lineMatching(/^binary: /)).toBe("binary: after the noise");
    client.close();
  });

  test("refuses users past --max-users, and ignores a flood past the burst with ERR slow down", async () => {
    const small = await startServerProcess("scripts/05-chat-server.ts", [
      "--quiet",
      "--max-users",
      "2",
      "--flood-burst",
      "3",
      "--flood-rate",
      "1",
    ]);
    try {
      const first = await join(small, "one");
      await join(small, "two");
      const third = await LineClient.connect(small.port);
      third.send("CONNECT three\n");
      expect(await third.line()).toBe("ERR server full (2 users)");
      // Connections that do not register are capped too: two may wait, the next is turned away.
      const waiting = [third, await LineClient.connect(small.port)];
      const turnedAway = await LineClient.connect(small.port);
      expect(await turnedAway.rest()).toEqual(["ERR server full (2 users)"]);
      for (const client of waiting) client.close();
      // one's CONNECT used a token: two more lines pass, the rest are refused.
      first.send("a\nb\nc\nd\ne\n");
      const replies = [];
      for (let i = 0; i < 5; i++) replies.push(await first.lineMatching(/^(one: |ERR)/));
      // (Replies are written at once; broadcasts at the end of the turn: compare them sorted.)
      expect(replies.sort()).toEqual(["ERR slow down", "ERR slow down", "ERR slow down", "one: a", "one: b"]);
      await Bun.sleep(1100); // one token back
      first.send("f\n");
      expect(await first.lineMatching(/^(one: |ERR)/)).toBe("one: f");
    } finally {
      small.child.kill();
    }
  });
});

describe("lesson 05: timeouts", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet", "--idle", "0.6"]);
  afterAll(() => server.child.kill());

  test("disconnects an idle user with a notice, and tells the others", async () => {
    const sleeper = await join(server, "sleeper");
    const talker = await join(server, "talker");
    // The talker keeps talking, so only the sleeper goes idle.
    const chatter = setInterval(() => talker.send("still here\n"), 150);
    try {
      expect(await sleeper.lineMatching(/^\* disconnected/, 3000)).toBe("* disconnected: idle for 0.6 s");
      expect(await sleeper.line()).toBeNull();
      expect(await talker.lineMatching(/^\* sleeper was/, 3000)).toBe("* sleeper was disconnected (idle)");
    } finally {
      clearInterval(chatter);
      talker.close();
    }
  });

  test("closes a connection that never completes CONNECT", async () => {
    const lurker = await LineClient.connect(server.port);
    lurker.send("CONNECT\n"); // an ERR does not reset the clock for good: it is still not registered
    expect(await lurker.line()).toBe("ERR missing name: send CONNECT <name>");
    expect(await lurker.line(3000)).toBe("ERR registration timeout for 0.6 s");
    expect(await lurker.line()).toBeNull();
  });
});

describe("lesson 05: load", () => {
  test("1,000 users connecting at once all get every broadcast", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    try {
      const users = await Promise.all(Array.from({ length: 1000 }, (_, i) => join(server, `user${i}`)));
      users[0]!.send("hello, thousand\n");
      const received = await Promise.all(
        users.map((user) => user.lineMatching("user0: hello, thousand", 20_000)),
      );
      expect(received).toHaveLength(1000);
      for (const user of users) user.close();
    } finally {
      server.child.kill();
    }
  }, 60_000);

  test("cuts a user that stops reading; the others get every message and memory stays bounded", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", [
      "--quiet",
      "--sendq",
      "65536",
      "--flood-burst",
      "100000",
      "--flood-rate",
      "100000",
    ]);
    try {
      // The stalled user: a raw socket that registers, then stops reading (the kernel buffers fill up).
      const registered = Promise.withResolvers<void>();
      const stalled = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: { data: (_socket, chunk) => void (String(chunk).startsWith("OK") && registered.resolve()) },
      });
      stalled.write("CONNECT stalled\n");
      await registered.promise;
      stalled.pause();
      const talkers = [await join(server, "talk1"), await join(server, "talk2")];
      await talkers[0]!.lineMatching("* talk2 joined");
      const payload = "m".repeat(1000);
      const total = 20_000; // 20 MB for each reader: far more than the kernel buffers and the send queue
      const sender = (async () => {
        for (let sent = 0; sent < total; sent += 100) {
          talkers[0]!.send(`${Array.from({ length: 100 }, (_, i) => `${sent + i} ${payload}`).join("\n")}\n`);
          await talkers[0]!.writer.drain();
          await Bun.sleep(1);
        }
      })();
      const received = talkers.map(async (talker) => {
        let messages = 0;
        let cutNotices = 0;
        while (messages < total) {
          const line = (await talker.line(20_000))!;
          if (line === "* stalled was disconnected (not reading)") cutNotices++;
          else if (line.endsWith(payload)) messages++;
        }
        return { messages, cutNotices };
      });
      await sender;
      expect(await Promise.all(received)).toEqual([
        { messages: total, cutNotices: 1 },
        { messages: total, cutNotices: 1 },
      ]);
      expect(server.rss()).toBeLessThan(150 * 1024 * 1024);
      stalled.terminate();
    } finally {
      server.child.kill();
    }
  }, 60_000);
});

describe("lesson 05 as a command", () => {
  test("tells everyone and exits 0 on SIGINT", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    const ann = await join(server, "ann");
    const pending = await LineClient.connect(server.port);
    pending.send("hello?\n"); // be sure the server has accepted it before the signal
    expect(await pending.line()).toBe("ERR send CONNECT <name> first");
    expect(await server.interrupt()).toBe(0);
    expect(await ann.rest()).toEqual(["* server shutting down"]);
    expect(await pending.rest()).toEqual(["* server shutting down"]);
  });

  test("lists every limit with its default in --help", async () => {
    const { exitCode, stdout } = await runScript(["scripts/05-chat-server.ts", "--help"]);
    expect(exitCode).toBe(0);
    for (const flag of ["--idle", "--max-line", "--sendq", "--flood-burst", "--flood-rate", "--max-users"]) {
      expect(stdout).toContain(flag);
    }
  });
});

describe("lesson 05: a client that half-closes after a last line without a newline", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
  afterAll(() => server.child.kill());

  // What `nc -N` does on Ctrl+D after a partial line: the bytes, then FIN, and it keeps reading.
  test("still gets the reply to CONNECT, /who and /quit, and its own last line, then EOF", async () => {
    const cases = [
      ["CONNECT halfway", /^OK welcome halfway, \d+ users? online$/],
      ["CONNECT halfwho\n/who", /^\* online \(\d+\): .*\bhalfwho\b/],
      ["CONNECT halfquit\n/quit", /^\* bye$/],
      // Its own copy of its last line comes back through the room, like everyone else's.
      ["CONNECT halfsay\nhello, then EOF", /^halfsay: hello, then EOF$/],
      ["CONNECT halfnl\nwith a newline\n", /^halfnl: with a newline$/],
    ] as const;
    for (const [input, last] of cases) {
      const client = await LineClient.connect(server.port);
      client.send(input);
      client.writer.writeEof();
      const lines = await client.rest();
      expect(lines.at(-1)).toMatch(last);
    }
  });

  test("a /quit in the same write as a line still gets that line back first, then * bye", async () => {
    // What `printf 'CONNECT bob\nhi\n/who\n/quit\n' | nc -N` sends: all of it in one segment.
    const client = await LineClient.connect(server.port);
    client.send("CONNECT quitter\nhi there\n/quit\nignored after quit\n");
    client.writer.writeEof();
    const lines = (await client.rest()).filter((line) => !/^\* \S+ (left|joined)/.test(line));
    expect(lines).toEqual([expect.stringMatching(/^OK welcome quitter/), "quitter: hi there", "* bye"]);
  });

  test("gets every reply queued before it left, even many in one turn", async () => {
    const client = await LineClient.connect(server.port);
    client.send(`CONNECT burst\n${"/who\n".repeat(5)}/who`);
    client.writer.writeEof();
    const lines = await client.rest();
    expect(lines[0]).toMatch(/^OK welcome burst/);
    // Six /who: the burst allows ten lines, each /who here is cheap (a short list).
    expect(lines.filter((line) => line.startsWith("* online"))).toHaveLength(6);
  });
});

describe("lesson 05: registration is timed from connecting", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet", "--idle", "0.6"]);
  afterAll(() => server.child.kill());

  test("a connection sending an empty line every 300 ms without CONNECT is still cut", async () => {
    const lurker = await LineClient.connect(server.port);
    const keepAlive = setInterval(() => lurker.send("\n"), 300);
    try {
      const started = performance.now();
      expect(await lurker.lineMatching(/^ERR registration/, 4000)).toBe("ERR registration timeout for 0.6 s");
      expect(performance.now() - started).toBeLessThan(2500);
    } finally {
      clearInterval(keepAlive);
    }
  });
});

describe("lesson 05: /who in a big room", () => {
  test("answers with the count and the first 100 names, sorted, and costs tokens by size", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    try {
      const names = Array.from({ length: 150 }, (_, i) => `${"w".repeat(28)}${String(i).padStart(4, "0")}`);
      const users = await Promise.all(names.map((name) => join(server, name)));
      const asker = users[0]!;
      // ~3.4 KB per reply: one token for the line, three for the reply; the burst of 10 pays for three.
      asker.send("/who\n/who\n/who\n/who\n/who\n");
      const replies: string[] = [];
      for (let i = 0; i < 5; i++) replies.push(await asker.lineMatching(/^(\* online|ERR)/));
      const lists = replies.filter((line) => line.startsWith("* online"));
      expect(lists).toHaveLength(3);
      expect(replies.filter((line) => line === "ERR slow down")).toHaveLength(2);
      expect(lists[0]).toBe(`* online (150): ${names.slice(0, 100).join(", ")}, … and 50 more`);
      expect(Buffer.byteLength(lists[0]!)).toBeLessThan(4096);
      for (const user of users) user.close();
    } finally {
      server.child.kill();
    }
  }, 30_000);
});

describe("lesson 05: names are checked as typed", async () => {
  const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
  afterAll(() => server.child.kill());

  test("CONNECT bad<BEL>name gets ERR invalid name, never the name with the BEL removed", async () => {
    const client = await LineClient.connect(server.port);
    client.send("CONNECT bad\x07name\nCONNECT \x1b[31mred\n");
    expect(await client.line()).toBe("ERR invalid name: use 1-32 letters, digits, _ or -");
    expect(await client.line()).toBe("ERR invalid name: use 1-32 letters, digits, _ or -");
    client.send("/who\n");
    expect(await client.line()).toBe("ERR send CONNECT <name> first");
    client.close();
  });

  test("invisible format characters never reach the others", async () => {
    const reader = await join(server, "reader");
    const writer = await join(server, "writer");
    await reader.lineMatching("* writer joined");
    writer.send("a\u200eb\u202ec\u2028d\ufff9e\u{E0041}f\n");
    expect(await reader.line()).toBe("writer: abcdef");
    reader.close();
    writer.close();
  });
});

/** CPU time a process has used so far, in clock ticks (utime + stime from /proc/PID/stat). */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

describe("lesson 05: running out of file descriptors", () => {
  test("stops accepting instead of spinning; users already in keep chatting; resumes when they free", async () => {
    const server = await startServerProcess(
      "scripts/05-chat-server.ts",
      [],
      ["sh", "-c", "ulimit -n 128; exec bun scripts/05-chat-server.ts --port 0 --quiet"],
    );
    const clockTicks = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString()) || 100;
    const flood: { terminate(): void }[] = [];
    try {
      const ann = await join(server, "ann");
      const bob = await join(server, "bob");
      await ann.lineMatching("* bob joined");
      // Far more connections than descriptors: the rest are refused (or reset) once the reserve is reached.
      for (let i = 0; i < 300; i++) {
        const socket = await Bun.connect({
          hostname: "127.0.0.1",
          port: server.port,
          socket: { data() {}, error() {}, close() {} },
        }).catch(() => null);
        if (socket) flood.push(socket);
      }
      const before = cpuTicks(server.child.pid);
      await Bun.sleep(2000);
      const used = (cpuTicks(server.child.pid) - before) / clockTicks;
      expect(used).toBeLessThan(0.5); // of 2 s: a spinning accept loop uses all of it
      bob.send("still here\n");
      expect(await ann.lineMatching("bob: still here")).toBe("bob: still here");
      for (const socket of flood) socket.terminate();
      await Bun.sleep(1500);
      const late = await join(server, "late");
      late.close();
      ann.close();
      bob.close();
    } finally {
      for (const socket of flood) socket.terminate();
      server.child.kill();
    }
  }, 30_000);
});

describe("lesson 05: a user cut while it reads nothing", () => {
  test("is closed after the grace even with lines still queued for it, not kept for ever", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", [
      "--quiet",
      "--idle",
      "1",
      "--sendq",
      String(64 * 1024 * 1024),
      "--flood-burst",
      "100000",
      "--flood-rate",
      "100000",
    ]);
    try {
      let received = 0;
      const registered = Promise.withResolvers<void>();
      const closed = Promise.withResolvers<void>();
      const victim = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: {
          data(_socket, chunk) {
            received += chunk.length;
            if (String(chunk).startsWith("OK")) registered.resolve();
          },
          close: () => closed.resolve(),
          error() {},
        },
      });
      victim.write("CONNECT victim\n");
      await registered.promise;
      victim.pause();
      const talker = await join(server, "talker");
      const total = 30_000; // 30 MB for the victim: far more than the kernel's buffers hold
      const payload = "q".repeat(1000);
      for (let sent = 0; sent < total; sent += 500) {
        talker.send(`${Array.from({ length: 500 }, () => payload).join("\n")}\n`);
        await talker.writer.drain();
        await Bun.sleep(1);
      }
      const chatter = setInterval(() => talker.send("keeping busy\n"), 300);
      try {
        await talker.lineMatching("* victim was disconnected (idle)", 15_000);
        await Bun.sleep(3000); // the 2 s grace, and a margin
        victim.resume();
        await Promise.race([closed.promise, Bun.sleep(5000)]);
        // Cut: it got what the kernel buffers held, not the 30 MB still queued for it.
        expect(received).toBeLessThan(total * 1000 * 0.7);
      } finally {
        clearInterval(chatter);
      }
      victim.terminate();
      talker.close();
    } finally {
      server.child.kill();
    }
  }, 60_000);
});
