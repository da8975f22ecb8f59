import { describe, expect, test } from "bun:test";
import { type Key, KeyDecoder } from "../lib/cbreak.ts";

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

  test("ignores unknown escape sequences and other control bytes", () => {
    expect(keysOf("a\x1b[99zb\x02\tc")).toEqual([
      { kind: "text", text: "a" },
      { kind: "text", text: "bc" },
    ]);
  });
});
