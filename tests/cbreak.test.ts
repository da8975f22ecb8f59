import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Key, KeyDecoder, KeyReader, MAX_PASTE_CHARS } from "../lib/cbreak.ts";
import { type PtyProgram, startInPty } from "./helpers/pty.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Decodes `input` fed in chunks of `size` bytes. */
function keysOf(input: string | Uint8Array, size = Number.POSITIVE_INFINITY): Key[] {
  const data = typeof input === "string" ? bytes(input) : input;
  const decoder = new KeyDecoder();
  const keys: Key[] = [];
  const step = Math.min(size, data.length) || 1;
  for (let offset = 0; offset < data.length; offset += step)
    keys.push(...decoder.push(data.subarray(offset, offset + step)));
  return keys;
}

describe("KeyDecoder", () => {
  for (const size of [Number.POSITIVE_INFINITY, 1]) {
    const label = size === 1 ? "one byte at a time" : "all at once";

    test(`keeps a UTF-8 character whole when it arrives split across reads (${label})`, () => {
      const text = keysOf("héllo 日本 🎉", size)
        .map((key) => (key.kind === "text" ? key.text : ""))
        .join("");
      expect(text).toBe("héllo 日本 🎉");
    });

    test(`decodes arrows, Home/End and Delete escape sequences (${label})`, () => {
      expect(
        keysOf("\x1b[D\x1b[C\x1b[A\x1b[B\x1b[H\x1b[F\x1bOH\x1b[4~\x1b[3~", size).map((key) => key.kind),
      ).toEqual(["left", "right", "up", "down", "home", "end", "home", "end", "delete"]);
    });

    test(`decodes Enter, Backspace, Ctrl+C, Ctrl+D and Ctrl+U (${label})`, () => {
      expect(keysOf("a\r\x7f\x08\x03\x04\x15", size).map((key) => key.kind)).toEqual([
        "text",
        "enter",
        "backspace",
        "backspace",
        "interrupt",
        "eof",
        "clear-line",
      ]);
    });

    test(`takes a bracketed paste as one piece of text, newlines and all (${label})`, () => {
      expect(keysOf("x\x1b[200~line one\r\nline two\x1b[201~y", size)).toEqual([
        { kind: "text", text: "x" },
        { kind: "paste", text: "line one\nline two" },
        { kind: "text", text: "y" },
      ]);
    });
  }

  test("keeps the first MAX_PASTE_CHARS of a longer paste, whatever the chunks, and reads on after it", () => {
    const input = `\x1b[200~${"p".repeat(3 * MAX_PASTE_CHARS)}\x1b[201~z`;
    for (const size of [Number.POSITIVE_INFINITY, 64 * 1024 + 3, MAX_PASTE_CHARS - 1]) {
      const keys = keysOf(input, size);
      expect(keys).toHaveLength(2);
      expect(keys[0]!.kind).toBe("paste");
      expect((keys[0] as { text: string }).text).toBe("p".repeat(MAX_PASTE_CHARS));
      expect(keys[1]).toEqual({ kind: "text", text: "z" });
    }
  });

  test("a paste end marker split across reads still ends the paste", () => {
    const decoder = new KeyDecoder();
    expect(decoder.push(bytes("\x1b[200~ab\x1b[2"))).toEqual([]);
    expect(decoder.push(bytes("01~c"))).toEqual([
      { kind: "paste", text: "ab" },
      { kind: "text", text: "c" },
    ]);
  });

  test("ignores unknown escape sequences and other control bytes", () => {
    expect(keysOf("a\x1b[99zb\x02\tc")).toEqual([
      { kind: "text", text: "a" },
      { kind: "text", text: "bc" },
    ]);
  });
});

describe("KeyReader.readKey — read(1)", () => {
  test("gives one character per key, in order, and waits for a key not typed yet", async () => {
    const reader = new KeyReader();
    reader.push(bytes("aé\x1b[A"));
    expect(await reader.readKey()).toEqual({ kind: "text", text: "a" });
    expect(await reader.readKey()).toEqual({ kind: "text", text: "é" });
    expect(await reader.readKey()).toEqual({ kind: "up" });
    const next = reader.readKey();
    let settled = false;
    void next.then(() => (settled = true));
    await Bun.sleep(20);
    expect(settled).toBe(false);
    reader.push(bytes("🎉"));
    expect(await next).toEqual({ kind: "text", text: "🎉" });
  });

  test("returns the keys still queued after end(), then null; a second waiting reader is refused", async () => {
    const reader = new KeyReader();
    reader.push(bytes("x\r"));
    reader.end();
    expect(await reader.readKey()).toEqual({ kind: "text", text: "x" });
    expect(await reader.readKey()).toEqual({ kind: "enter" });
    expect(await reader.readKey()).toBeNull();
    const waiting = new KeyReader();
    const first = waiting.readKey();
    expect(() => waiting.readKey()).toThrow("one reader at a time");
    waiting.end();
    expect(await first).toBeNull();
  });
});

describe("enterCbreak in a real terminal", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "cbreak-"));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** tests/helpers/cbreak-program.ts between two `stty -g`, in an 80×24 PTY. */
  async function start(label: string): Promise<{ program: PtyProgram; settings: string; pid: number }> {
    const program = startInPty([
      "bash",
      "-c",
      `stty -g > ${folder}/${label}.before; bun tests/helpers/cbreak-program.ts; code=$?; stty -g > ${folder}/${label}.after; exit $code`,
    ]);
    const rows = await program.waitFor((rows) => rows.some((row) => row === "ready"), "ready");
    const pid = Number(rows.join("\n").match(/^pid (\d+)$/m)?.[1]);
    return { program, settings: rows.join(""), pid };
  }

  function expectRestored(label: string) {
    expect(readFileSync(`${folder}/${label}.after`, "utf8")).toBe(
      readFileSync(`${folder}/${label}.before`, "utf8"),
    );
  }

  test("sets raw mode — no line editing, echo, signals, flow control or CR→NL — and bracketed paste; Ctrl+C arrives as a key", async () => {
    const { program, settings } = await start("raw");
    for (const flag of ["-icanon", "-echo", "-isig", "-ixon", "-icrnl"]) expect(settings).toContain(flag);
    expect(program.screen.xterm.modes.bracketedPasteMode).toBe(true);
    program.type("\x03");
    await program.waitFor((rows) => rows.includes('{"kind":"interrupt"}'), "the interrupt key");
    program.type("q");
    expect(await program.exited).toBe(0);
    await program.screen.write("");
    expect(program.screen.xterm.modes.bracketedPasteMode).toBe(false);
    expectRestored("raw");
  }, 30_000);

  test("readKey() keeps a UTF-8 character and an escape sequence whole when the terminal sends them in two reads; text typed at once comes one character at a time; a paste is one key", async () => {
    const { program } = await start("keys");
    const shown = (json: string) => (rows: string[]) => rows.includes(json);
    program.type(new Uint8Array([0xc3]));
    await Bun.sleep(150); // the program has read the first byte alone
    program.type(new Uint8Array([0xa9]));
    await program.waitFor(shown('{"kind":"text","text":"é"}'), "é, whole");
    program.type("\x1b[");
    await Bun.sleep(150);
    program.type("A");
    await program.waitFor(shown('{"kind":"up"}'), "the up arrow, whole");
    program.type("ab");
    await program.waitFor(shown('{"kind":"text","text":"b"}'), "b");
    program.type("\x1b[200~one\rtwo\x1b[201~");
    const rows = await program.waitFor(shown('{"kind":"paste","text":"one\\ntwo"}'), "the paste");
    const keys = rows.slice(rows.indexOf("ready") + 1).filter((row) => row.startsWith("{"));
    expect(keys).toEqual([
      '{"kind":"text","text":"é"}',
      '{"kind":"up"}',
      '{"kind":"text","text":"a"}',
      '{"kind":"text","text":"b"}',
      '{"kind":"paste","text":"one\\ntwo"}',
    ]);
    program.type("q");
    expect(await program.exited).toBe(0);
    expectRestored("keys");
  }, 30_000);

  for (const [signal, code] of [
    ["SIGTERM", 143],
    ["SIGHUP", 129],
    ["SIGINT", 130],
  ] as const) {
    test(`${signal} restores the terminal, then exits ${code}`, async () => {
      const { program, pid } = await start(signal);
      process.kill(pid, signal);
      expect(await program.exited).toBe(code);
      expectRestored(signal);
    }, 30_000);
  }

  for (const [key, what, label] of [
    ["!", "an uncaught exception", "exception"],
    ["?", "an unhandled rejection", "rejection"],
  ] as const) {
    test(`${what} restores the terminal, is printed, then exits 1`, async () => {
      const { program } = await start(label);
      program.type(key);
      expect(await program.exited).toBe(1);
      const rows = await program.waitFor((rows) => rows.some((row) => row.includes("boom")), "the error");
      expect(rows.join("\n")).toContain(key === "!" ? "error: boom" : "error: unhandled boom");
      expectRestored(label);
    }, 30_000);
  }
});
