import { describe, expect, test } from "bun:test";
import { attack, type Server, startServer } from "./helpers/break-it.ts";
import { hasStackTrace, runScript } from "./helpers/run.ts";

/**
 * A fresh naive chat server and a fresh lesson 05 for each attack (nothing one attack leaves behind — a
 * ghost, a user still leaving — can decide another's verdict), both killed after it.
 */
async function pair(
  args: { naive?: string[]; lesson?: string[] },
  work: (naive: Server, lesson: Server) => Promise<void>,
) {
  const [naive, lesson] = await Promise.all([
    startServer("scripts/naive/chat-server.ts", args.naive),
    startServer("scripts/05-chat-server.ts", ["--quiet", ...(args.lesson ?? [])]),
  ]);
  try {
    await work(naive, lesson);
  } finally {
    naive.kill();
    lesson.kill();
  }
}

describe("break it, lesson 05: the book's chat-server mistakes against the lesson", () => {
  test("split-crash: `CONNECT` alone and `CONNECT  ann  x` kill the naive handler; the lesson answers ERR", () =>
    pair({}, async (naive, lesson) => {
      expect(await attack("split-crash", naive.port)).toBe(
        'split-crash: BROKEN: "CONNECT" → no answer, connection closed (the handler crashed); ' +
          '"CONNECT  ann  x" → no answer, connection closed (the handler crashed)',
      );
      // A real crash: an exception out of the client's coroutine, logged by the server.
      expect(naive.stderr()).toContain(
        "client handler failed: not enough values to unpack (expected 2, got 1)",
      );
      expect(naive.stderr()).toContain("client handler failed: too many values to unpack (expected 2)");
      expect(await attack("split-crash", lesson.port)).toBe(
        'split-crash: HOLDS: "CONNECT" → "ERR missing name: send CONNECT <name>"; ' +
          '"CONNECT  ann  x" → "ERR invalid name: one word, no spaces"',
      );
    }));

  test("duplicate-name: a second ann replaces the first in the naive room; the lesson refuses the name", () =>
    pair({}, async (naive, lesson) => {
      expect(await attack("duplicate-name", naive.port)).toBe(
        'duplicate-name: BROKEN: a second "CONNECT ann" got "OK welcome ann, 2 users online"; the first ann ' +
          "no longer hears the room (bob's line did not reach her in 2 s)",
      );
      expect(await attack("duplicate-name", lesson.port)).toMatch(
        /^duplicate-name: HOLDS: a second "CONNECT ann" got "ERR name taken: ann"; the first ann still hears the room \(bob's line reached her in \d+ ms\)$/,
      );
    }));

  test("eof-ghost: after EOF the naive room announces ann left but /who still lists her; the lesson does not", () =>
    pair({}, async (naive, lesson) => {
      expect(await attack("eof-ghost", naive.port)).toBe(
        'eof-ghost: BROKEN: ann sent EOF; bob saw "* ann left", yet /who says "* online (2): ann, bob" — ann is a ghost',
      );
      expect(await attack("eof-ghost", lesson.port)).toBe(
        'eof-ghost: HOLDS: ann sent EOF; bob saw "* ann left", and /who says "* online (1): bob"',
      );
    }));

  test("idle-trickle: a CONNECT line trickled a byte at a time is kept for ever by the naive server, cut at --idle by the lesson", () =>
    pair({ naive: ["--idle", "1"], lesson: ["--idle", "1"] }, async (naive, lesson) => {
      const [naiveVerdict, lessonVerdict] = await Promise.all([
        attack("idle-trickle", naive.port, ["--idle", "1"]),
        attack("idle-trickle", lesson.port, ["--idle", "1"]),
      ]);
      expect(naiveVerdict).toMatch(
        /^idle-trickle: BROKEN: trickled "CONNECT annn…" \(\d+ bytes, one per 0\.5 s, no newline\) for 3\.\d s — twice --idle 1 — and the server still holds the connection$/,
      );
      expect(lessonVerdict).toMatch(
        /^idle-trickle: HOLDS: the server cut the trickle after [12]\.\d s \(--idle 1\): "ERR registration timeout for 1 s"$/,
      );
    }));

  test("idle-silent: the naive server cuts an idle user without a word to anyone; the lesson tells both", () =>
    pair({ naive: ["--idle", "1"], lesson: ["--idle", "1"] }, async (naive, lesson) => {
      const [naiveVerdict, lessonVerdict] = await Promise.all([
        attack("idle-silent", naive.port, ["--idle", "1"]),
        attack("idle-silent", lesson.port, ["--idle", "1"]),
      ]);
      expect(naiveVerdict).toMatch(
        /^idle-silent: BROKEN: ann, silent, was cut after [12]\.\d s: she got no notice, and bob was not told$/,
      );
      expect(lessonVerdict).toMatch(
        /^idle-silent: HOLDS: ann, silent, was cut after [12]\.\d s: she got "\* disconnected: idle for 1 s", and bob "\* ann was disconnected \(idle\)"$/,
      );
    }));

  test("slow-client: one user who stops reading freezes the naive room; the lesson cuts him and the room goes on", () =>
    // Flood control off in the lesson, so that fay's flood reaches sam: what holds is the broadcast itself.
    pair({ lesson: ["--flood-burst", "100000"] }, async (naive, lesson) => {
      expect(await attack("slow-client", naive.port)).toMatch(
        /^slow-client: BROKEN: room frozen: bob's line did not reach ann in 2 s — sam, who stopped reading, holds up every broadcast; after fay's \d+ lines \([\d.]+ MiB\)$/,
      );
      expect(await attack("slow-client", lesson.port)).toMatch(
        /^slow-client: HOLDS: room fine: bob's line reached ann in \d+ ms; the room was told "\* sam was disconnected \(not reading\)"; after fay's \d+ lines \([\d.]+ MiB\)$/,
      );
    }));

  test("slow-client against the lesson's defaults: its flood control refuses the flood before sam fills up", () =>
    pair({}, async (_naive, lesson) => {
      expect(await attack("slow-client", lesson.port, ["--flood-mib", "1"])).toMatch(
        /^slow-client: HOLDS: room fine: bob's line reached ann in \d+ ms; sam is still connected; after fay's 263 lines \(1\.0 MiB\) \(the server refused \d+ of them with ERR slow down, its flood control: start it with --flood-burst 100000 to let the flood through\)$/,
      );
    }));
});

describe("break.ts as a command", () => {
  test("an unknown attack is a usage error: one line, exit 2", async () => {
    const { exitCode, stderr } = await runScript(["scripts/naive/break.ts", "boom"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe(
      'error: unknown attack "boom" (one of no-read, slow-client, split-crash, duplicate-name, eof-ghost, idle-trickle, idle-silent) (see --help)',
    );
  });

  test("slow-client with an --idle too short for it is refused up front: one line, exit 2", async () => {
    const { exitCode, stderr } = await runScript(["scripts/naive/break.ts", "slow-client", "--idle", "3"]);
    expect(exitCode).toBe(2);
    expect(stderr.trim()).toBe(
      "error: slow-client lasts ~3 s in which ann and sam say nothing: a server with --idle 3 cuts them" +
        " before the verdict. Start the server with --idle 10 or more (its default is 60), and pass the" +
        " same --idle here",
    );
  });

  test("slow-client against a server whose --idle cuts ann mid-attack: says so and how to fix it, exit 1", async () => {
    // The attacker is not told the server's --idle (it assumes 60): the naive room's idle timer cuts ann
    // (and sam) after 1 s, before there is a verdict.
    const naive = await startServer("scripts/naive/chat-server.ts", ["--idle", "1"]);
    try {
      const { exitCode, stderr } = await runScript([
        "scripts/naive/break.ts",
        "slow-client",
        "--port",
        String(naive.port),
      ]);
      expect(exitCode).toBe(1);
      expect(stderr.trim()).toMatch(
        /^error: slow-client: the server disconnected ann \d\.\d s after she joined, before there was a verdict \((the last notice she got: "[^"]+"|she got no notice)\); if it was its idle timer, restart the server with --idle 10 or more$/,
      );
    } finally {
      naive.kill();
    }
  });

  test("nothing listening, or a server that is not the right kind: one line, exit 1", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const refused = await runScript(["scripts/naive/break.ts", "eof-ghost", "--port", String(port)]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.trim()).toBe(
      `error: eof-ghost: cannot connect to 127.0.0.1:${port}: connection refused (is a server listening there?) (ECONNREFUSED)`,
    );
    const echo = await startServer("scripts/04-echo-server.ts", ["--quiet"]);
    try {
      const wrong = await runScript(["scripts/naive/break.ts", "eof-ghost", "--port", String(echo.port)]);
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stderr.trim()).toBe(
        `error: eof-ghost: ann could not join: no answer (is this a chat server?)`,
      );
      expect(hasStackTrace(wrong.stderr)).toBe(false);
    } finally {
      echo.kill();
    }
  });
});
