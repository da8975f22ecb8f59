import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { openConnection } from "../lib/streams.ts";
import { replyToConnect, styleLine, validateName } from "../scripts/06-chat-client.ts";
import { type PtyProgram, startInPty } from "./helpers/pty.ts";
import { runScript } from "./helpers/run.ts";
import { LineClient, type ServerProcess, startServerProcess } from "./helpers/servers.ts";

describe("lesson 06: how server lines look", () => {
  test("gives own messages, others' messages, notices and errors their own styles", () => {
    expect(styleLine("ann: hi", "ann", "10:00")).toEqual([
      { text: "10:00 ", style: { dim: true } },
      { text: "ann", style: { color: "green", bold: true } },
      { text: ": hi" },
    ]);
    expect(styleLine("bob: hi", "ann", "10:00")[1]).toEqual({ text: "bob", style: { color: "cyan" } });
    expect(styleLine("* bob joined", "ann", "10:00")[1]).toEqual({
      text: "* bob joined",
      style: { color: "yellow", dim: true },
    });
    expect(styleLine("ERR slow down", "ann", "10:00")[1]).toEqual({
      text: "ERR slow down",
      style: { color: "red" },
    });
  });

  test("checks names with the server's rule before sending them", () => {
    expect(validateName("ann_1-x")).toBeUndefined();
    expect(validateName("two words")).toBe("1–32 letters, digits, _ or - (no spaces).");
    expect(validateName("")).toBe("Please type a name.");
  });
});

describe("lesson 06: two people chatting in real terminals", () => {
  let server: ServerProcess;
  let folder: string;
  beforeAll(async () => {
    server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    folder = mkdtempSync(join(tmpdir(), "lesson06-"));
  });
  afterAll(() => {
    server.child.kill();
    rmSync(folder, { recursive: true, force: true });
  });

  const bottom = (rows: string[]) => rows[rows.length - 1]!;

  /** A client in an 80×24 PTY, between two `stty -g` written to files. */
  function client(label: string): PtyProgram {
    return startInPty([
      "bash",
      "-c",
      `stty -g > ${folder}/${label}.before; bun scripts/06-chat-client.ts --port ${server.port}; code=$?; stty -g > ${folder}/${label}.after; exit $code`,
    ]);
  }

  async function joinAs(program: PtyProgram, name: string) {
    await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
    program.type(`${name}\r`);
    await program.waitFor((rows) => bottom(rows).startsWith(`${name}>`), `${name}'s input line`);
  }

  test("messages appear in both screens above the input line; a taken name asks again; /quit restores the terminal", async () => {
    const ann = client("ann");
    await joinAs(ann, "ann");
    const bob = client("bob");
    await bob.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
    bob.type("Ann\r");
    await bob.waitFor((rows) => rows.some((row) => row.includes("name taken: Ann")), "the refusal");
    await bob.waitFor(
      (rows) => rows.filter((row) => row.includes("Your name?")).length >= 2,
      "a second prompt",
    );
    bob.type("bob\r");
    await bob.waitFor((rows) => bottom(rows).startsWith("bob>"), "bob's input line");

    // ann is halfway through a line when bob's message arrives: it lands above, her line stays.
    ann.type("half a thou");
    await ann.waitFor((rows) => bottom(rows) === "ann> half a thou", "ann's half-typed line");
    bob.type("hello ann 👋 日本\r");
    for (const program of [ann, bob]) {
      const rows = await program.waitFor(
        (rows) => rows.some((row) => row.endsWith("bob: hello ann 👋 日本")),
        "bob's message",
      );
      expect(rows.findIndex((row) => row.endsWith("bob: hello ann 👋 日本"))).toBeLessThan(rows.length - 1);
    }
    expect(bottom(ann.screen.rows())).toBe("ann> half a thou");
    ann.type("ght\r");
    await bob.waitFor(
      (rows) => rows.some((row) => row.endsWith("ann: half a thought")),
      "ann's message at bob",
    );

    // A raw-socket user tries to clear screens and recolour them: it shows as text, nothing happens.
    const mallory = await LineClient.connect(server.port);
    mallory.send("CONNECT mallory\n\x1b[2J\x1b[H\x1b[31mowned\x1b]0;title\x07\n");
    const rows = await ann.waitFor(
      (rows) => rows.some((row) => row.endsWith("mallory: owned")),
      "mallory's message",
    );
    expect(rows.some((row) => row.endsWith("ann: half a thought"))).toBe(true); // nothing was cleared
    expect(ann.screen.colorAt(rows.findIndex((row) => row.endsWith("mallory: owned")) + 1, 20)).toBe(-1);
    mallory.close();

    // Resize bob's terminal: the area is laid out again and the input line moves to the new last row.
    bob.resize(40, 12);
    // The headless terminal shrinks at once (cutting rows); the client redraws when its SIGWINCH arrives,
    // so wait for the re-laid screen rather than look at the first moment after the resize.
    const resized = await bob.waitFor(
      (rows) =>
        rows.length === 12 &&
        bottom(rows).startsWith("bob>") &&
        rows.some((row) => row.endsWith("mallory: owned")) &&
        rows.some((row) => row.includes("ann: half a thought")),
      "the re-layout",
    );
    expect(resized.some((row) => row.includes("ann: half a thought"))).toBe(true);

    ann.type("/quit\r");
    expect(await ann.exited).toBe(0);
    expect(readFileSync(`${folder}/ann.after`, "utf8")).toBe(readFileSync(`${folder}/ann.before`, "utf8"));
    await bob.waitFor((rows) => rows.some((row) => row.endsWith("* ann left")), "ann's departure");
    bob.type("\x03"); // Ctrl+C: as if SIGINT had ended it
    expect(await bob.exited).toBe(130);
    expect(readFileSync(`${folder}/bob.after`, "utf8")).toBe(readFileSync(`${folder}/bob.before`, "utf8"));
  }, 90_000);

  test("when the server disconnects it (idle), the client shows why, restores the terminal and exits non-zero", async () => {
    const strict = await startServerProcess("scripts/05-chat-server.ts", ["--quiet", "--idle", "0.5"]);
    try {
      const program = startInPty([
        "bash",
        "-c",
        `stty -g > ${folder}/idle.before; bun scripts/06-chat-client.ts --port ${strict.port} --name sleepy; code=$?; stty -g > ${folder}/idle.after; exit $code`,
      ]);
      await program.waitFor(
        (rows) =>
          rows.some((row) =>
            row.includes("The server closed the connection: * disconnected: idle for 0.5 s"),
          ),
        "the goodbye",
        15_000,
      );
      expect(await program.exited).toBe(1);
      expect(readFileSync(`${folder}/idle.after`, "utf8")).toBe(
        readFileSync(`${folder}/idle.before`, "utf8"),
      );
    } finally {
      strict.child.kill();
    }
  }, 30_000);
});

describe("lesson 06 under load and at the prompt", () => {
  test("a burst of thousands of messages does not freeze the input line", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", [
      "--quiet",
      "--flood-burst",
      "100000",
      "--flood-rate",
      "100000",
    ]);
    try {
      const program = startInPty([
        "bun",
        "scripts/06-chat-client.ts",
        "--port",
        String(server.port),
        "--name",
        "reader",
      ]);
      await program.waitFor((rows) => rows[23]!.startsWith("reader>"), "the input line");
      const flood = await LineClient.connect(server.port);
      flood.send("CONNECT flood\n");
      flood.send(`${Array.from({ length: 5000 }, (_, i) => `message ${i}`).join("\n")}\n`);
      program.type("still typing");
      const rows = await program.waitFor(
        (rows) =>
          rows.some((row) => row.endsWith("flood: message 4999")) && rows[23] === "reader> still typing",
        "the last message with the input intact",
      );
      expect(rows.filter((row) => row.includes("flood: message")).length).toBe(23); // the whole area
      flood.close();
      program.type("\x15\x04"); // Ctrl+U clears the line; Ctrl+D on an empty line is a normal leave
      expect(await program.exited).toBe(0);
    } finally {
      server.child.kill();
    }
  }, 60_000);

  test("SIGHUP or SIGTERM at the name prompt restores the terminal clack made raw, and exits 129 or 143", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    const folder = mkdtempSync(join(tmpdir(), "lesson06-signal-"));
    try {
      for (const [signal, code] of [
        ["SIGHUP", 129],
        ["SIGTERM", 143],
      ] as const) {
        const program = startInPty([
          "bash",
          "-c",
          `stty -g > ${folder}/before; bun scripts/06-chat-client.ts --port ${server.port}; code=$?; stty -g > ${folder}/after; exit $code`,
        ]);
        await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
        const [pid, ...others] = processesRunning(`bun\0scripts/06-chat-client.ts\0--port\0${server.port}\0`);
        expect(others).toEqual([]);
        process.kill(pid!, signal);
        expect(await program.exited).toBe(code);
        expect(readFileSync(`${folder}/after`, "utf8")).toBe(readFileSync(`${folder}/before`, "utf8"));
      }
    } finally {
      server.child.kill();
      rmSync(folder, { recursive: true, force: true });
    }
  }, 30_000);

  test("Ctrl+D or Esc at the name prompt leaves normally: exit 0 (Ctrl+C is 130)", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    try {
      for (const key of ["\x04", "\x1b"]) {
        const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(server.port)]);
        await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
        program.type(`an${key}`);
        expect(await program.exited).toBe(0);
        await program.waitFor((rows) => rows.some((row) => row.includes("No name, no chat")), "the goodbye");
      }
    } finally {
      server.child.kill();
    }
  }, 30_000);

  test("Ctrl+C at the name prompt cancels cleanly", async () => {
    const server = await startServerProcess("scripts/05-chat-server.ts", ["--quiet"]);
    try {
      const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(server.port)]);
      await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
      program.type("an\x03");
      expect(await program.exited).toBe(130);
      const rows = await program.waitFor(
        (rows) => rows.some((row) => row.includes("No name, no chat")),
        "the goodbye",
      );
      expect(rows.join("\n")).not.toMatch(/^\s+at /m);
    } finally {
      server.child.kill();
    }
  }, 30_000);
});

describe("lesson 06 as a command", () => {
  test("asks the name first and connects only after it is typed, then sends CONNECT at once", async () => {
    const received: string[] = [];
    let connections = 0;
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          connections++;
        },
        data(socket, chunk) {
          received.push(new TextDecoder().decode(chunk));
          socket.write("OK welcome ann, 1 user online\n");
        },
      },
    });
    try {
      const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(server.port)]);
      await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
      await Bun.sleep(300); // a client that connected before asking would have done so by now
      expect(connections).toBe(0);
      program.type("ann\r");
      await program.waitFor((rows) => rows[rows.length - 1]!.startsWith("ann>"), "ann's input line");
      expect(connections).toBe(1);
      expect(received.join("")).toBe("CONNECT ann\n");
      program.type("\x04");
      expect(await program.exited).toBe(0);
    } finally {
      server.stop(true);
    }
  }, 30_000);

  test("a refused connection is one clear line, after the name prompt", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(port)]);
    await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
    program.type("ann\r");
    expect(await program.exited).toBe(1);
    // The terminal is 80 columns wide: the one line wraps onto the next row.
    const rows = await program.waitFor((rows) => rows.some((row) => row.startsWith("error:")), "the error");
    const start = rows.findIndex((row) => row.startsWith("error:"));
    expect(rows.slice(start, start + 2).join("")).toBe(
      `error: cannot connect to 127.0.0.1:${port}: connection refused (is a server listening there?) (ECONNREFUSED)`,
    );
    expect(rows.join("\n")).not.toMatch(/^\s+at /m);
  });

  test("--port 0 without --serve is a usage error, not an attempt to connect to port 0", async () => {
    const { exitCode, stderr } = await runScript(["scripts/06-chat-client.ts", "--port", "0"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe(
      "error: --port 0 picks a free port to serve on: it needs --serve (see --help)",
    );
  });

  test("says it needs a terminal when stdin is piped", async () => {
    const { exitCode, stderr } = await runScript(["scripts/06-chat-client.ts"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe(
      "error: this chat client reads keys from a terminal, but stdin is not one (is it piped?)",
    );
  });
});

describe("lesson 06 hosting the server itself", () => {
  test("with --serve it runs lesson 05's server; when it quits, the others are told why before the server stops", async () => {
    const ann = startInPty(["bun", "scripts/06-chat-client.ts", "--serve", "--port", "0", "--name", "ann"]);
    const rows = await ann.waitFor(
      (rows) => rows[23]!.startsWith("ann>") && /--port\s+\d+/.test(rows.join(" ")),
      "ann's input line and how to join",
    );
    const port = Number(rows.join(" ").match(/--port\s+(\d+)/)?.[1]);
    expect(port).toBeGreaterThan(0);
    const bob = await LineClient.connect(port);
    bob.send("CONNECT bob\n");
    await bob.lineMatching(/^OK welcome bob/);
    ann.type("/quit\r");
    expect(await ann.exited).toBe(0);
    const rest = await bob.rest();
    expect(rest).toContain("* server stopping: ann's client (which was hosting it) quit");
    expect(rest).not.toContain("* ann left");
    expect(rest.indexOf("* server stopping: ann's client (which was hosting it) quit")).toBeLessThan(
      rest.indexOf("* server shutting down"),
    );
  }, 30_000);
});

/**
 * A hostile chat server in the test: answers the first CONNECT with `firstReply` (then OK to the next), and
 * after OK runs `afterJoin(socket)`.
 */
/** PIDs whose command line starts with `prefix` (arguments separated by NUL), read from /proc. */
function processesRunning(prefix: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "latin1").startsWith(prefix)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

function hostileServer(firstReply: string | null, afterJoin: (socket: Socket<{ tries: number }>) => void) {
  return Bun.listen<{ tries: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { tries: 0 };
      },
      data(socket, chunk) {
        if (!new TextDecoder().decode(chunk).startsWith("CONNECT ")) return;
        socket.data.tries++;
        if (firstReply !== null && socket.data.tries === 1) socket.write(firstReply);
        else {
          socket.write("OK welcome\n");
          afterJoin(socket);
        }
      },
    },
  });
}

/** Writes all of `bytes`, from the drain handler when the kernel does not take them at once. */
function writeAll(socket: Socket<{ tries: number }>, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    let offset = 0;
    const pump = () => {
      while (offset < bytes.length) {
        const written = socket.write(bytes.subarray(offset));
        if (written <= 0) return void setTimeout(pump, 5);
        offset += written;
      }
      resolve();
    };
    pump();
  });
}

describe("lesson 06 against a hostile server", () => {
  const WINDOW_TITLE = "\x1b]0;pwned\x07";
  const shown = "␛]0;pwned␇␛[2J";

  test("an ERR at join full of escape sequences is shown inert, and the name is asked again", async () => {
    const server = hostileServer(`ERR ${WINDOW_TITLE}\x1b[2Jnope\n`, () => {});
    try {
      const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(server.port)]);
      await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
      program.type("ann\r");
      const rows = await program.waitFor(
        (rows) => rows.some((row) => row.includes(`The server said: ${shown}nope`)),
        "the refusal, neutralised",
      );
      expect(rows.join("\n")).toContain("Your name?");
      expect(program.screen.titles).toEqual([]);
      program.type("\x03");
      expect(await program.exited).toBe(130);
    } finally {
      server.stop(true);
    }
  }, 30_000);

  test("a server that closes on every CONNECT gets one clear line, not an endless reconnect loop", async () => {
    let connections = 0;
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          connections++;
        },
        data(socket) {
          socket.end();
        },
      },
    });
    try {
      const program = startInPty([
        "bun",
        "scripts/06-chat-client.ts",
        "--port",
        String(server.port),
        "--name",
        "ann",
      ]);
      expect(await program.exited).toBe(1);
      const rows = await program.waitFor((rows) => rows.some((row) => row.startsWith("error:")), "the error");
      expect(rows.join("")).toContain(
        `error: 127.0.0.1:${server.port} closed the connection without answering CONNECT`,
      );
      expect(connections).toBe(1);
    } finally {
      server.stop(true);
    }
  }, 30_000);

  test("a server that is not a chat server (lesson 04's echo server) gets one clear line and exit 1, not a new name prompt", async () => {
    const echo = await startServerProcess("scripts/04-echo-server.ts", ["--quiet"]);
    try {
      const program = startInPty(["bun", "scripts/06-chat-client.ts", "--port", String(echo.port)]);
      await program.waitFor((rows) => rows.some((row) => row.includes("Your name?")), "the name prompt");
      program.type("ann\r");
      expect(await program.exited).toBe(1);
      const rows = await program.waitFor((rows) => rows.some((row) => row.startsWith("error:")), "the error");
      const text = rows.join("");
      expect(text).toContain(
        `error: 127.0.0.1:${echo.port} is not a chat server (lesson 05): it answered CONNECT with "welcome! 0`,
      );
      expect(text).not.toContain("The server said");
    } finally {
      echo.child.kill();
    }
  }, 30_000);

  test("a server that never answers CONNECT is an error after the timeout, not a hang", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const [reader, writer] = await openConnection("127.0.0.1", silent.port);
      writer.write("CONNECT ann\n");
      const started = performance.now();
      const target = { host: "127.0.0.1", port: silent.port };
      await expect(replyToConnect({ reader, writer }, target, 300)).rejects.toThrow(
        `127.0.0.1:${silent.port} did not answer CONNECT within 0.3 s`,
      );
      expect(performance.now() - started).toBeGreaterThanOrEqual(250);
      writer.abort();
    } finally {
      silent.stop(true);
    }
  });

  test("a 200 KB line is shown cut with a note, the next line still arrives, and the last line is shown inert", async () => {
    let sendLast: () => void = () => {};
    const server = hostileServer(null, (socket) => {
      const names = Array.from({ length: 6000 }, (_, i) => `user${String(i).padStart(28, "0")}`);
      const huge = `* online (6000): ${names.join(", ")}\n`; // ~200 KB: what /who says in a big room
      void writeAll(socket, new TextEncoder().encode(`${huge}after the long line\n`));
      sendLast = () => {
        socket.write(`${WINDOW_TITLE}\x1b[2Jbye\n`);
        socket.end();
      };
    });
    try {
      const program = startInPty([
        "bun",
        "scripts/06-chat-client.ts",
        "--port",
        String(server.port),
        "--name",
        "ann",
      ]);
      const rows = await program.waitFor(
        (rows) => rows.some((row) => row.endsWith("after the long line")),
        "the line after the long one",
      );
      const text = rows.join("");
      expect(text).toContain("* online (6000): user0000");
      expect(text).toMatch(/… \[line cut: 2\d\d,\d{3} bytes, over this client's 64 KiB limit\]/);
      program.type("still here");
      await program.waitFor((rows) => rows[23] === "ann> still here", "the input line, alive");
      sendLast();
      expect(await program.exited).toBe(1);
      const after = await program.waitFor(
        (rows) => rows.some((row) => row.includes("The server closed the connection")),
        "the goodbye",
      );
      expect(after.join("")).toContain(`The server closed the connection: ${shown}bye`);
      expect(after.join("\n")).not.toMatch(/^\s+at /m);
      expect(program.screen.titles).toEqual([]);
    } finally {
      server.stop(true);
    }
  }, 30_000);
});
