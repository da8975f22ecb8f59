import { describe, expect, test } from "bun:test";
import { LineDecoder } from "../lib/lines.ts";

const utf8 = new TextEncoder();

type Event = string | { tooLong: number };

/** Runs `input` through a LineDecoder in the given chunk sizes and returns what it reported. */
function decode(input: string | Uint8Array, options: { chunkSize?: number; maxLineBytes?: number } = {}) {
  const bytes = typeof input === "string" ? utf8.encode(input) : input;
  const events: Event[] = [];
  const decoder = new LineDecoder({
    maxLineBytes: options.maxLineBytes,
    onLine: (line) => events.push(line),
    onLineTooLong: (byteLength) => events.push({ tooLong: byteLength }),
  });
  const size = options.chunkSize ?? bytes.length;
  for (let offset = 0; offset < bytes.length; offset += size)
    decoder.push(bytes.subarray(offset, offset + size));
  decoder.end();
  return events;
}

/** Every case is also fed one byte per chunk, and in chunks of 3 bytes. */
function eachChunking(name: string, run: (chunkSize: number | undefined) => void) {
  for (const chunkSize of [undefined, 1, 3])
    test(`${name} (chunks of ${chunkSize ?? "all"} bytes)`, () => run(chunkSize));
}

describe("LineDecoder", () => {
  eachChunking("splits lines on \\n and drops the terminator", (chunkSize) => {
    expect(decode("one\ntwo\nthree\n", { chunkSize })).toEqual(["one", "two", "three"]);
  });

  eachChunking("accepts \\r\\n and keeps a lone \\r inside a line", (chunkSize) => {
    expect(decode("a\r\nb\rc\n\r\n", { chunkSize })).toEqual(["a", "b\rc", ""]);
  });

  eachChunking("keeps empty lines", (chunkSize) => {
    expect(decode("\n\nx\n", { chunkSize })).toEqual(["", "", "x"]);
  });

  eachChunking("delivers the unterminated last line at end()", (chunkSize) => {
    expect(decode("first\nlast", { chunkSize })).toEqual(["first", "last"]);
  });

  eachChunking("decodes multi-byte UTF-8 characters split across chunks", (chunkSize) => {
    expect(decode("héllo wörld\n日本語\n🎉🎉\n", { chunkSize })).toEqual(["héllo wörld", "日本語", "🎉🎉"]);
  });

  eachChunking("turns invalid UTF-8 into U+FFFD and goes on", (chunkSize) => {
    const bytes = new Uint8Array([0x61, 0xff, 0xfe, 0x62, 0x0a, 0x63, 0x0a]);
    expect(decode(bytes, { chunkSize })).toEqual(["a\uFFFD\uFFFDb", "c"]);
  });

  eachChunking(
    "reports a line over the limit once, with its length, and keeps the next line",
    (chunkSize) => {
      const long = "x".repeat(100);
      expect(decode(`ok\n${long}\nnext\n`, { chunkSize, maxLineBytes: 10 })).toEqual([
        "ok",
        { tooLong: 100 },
        "next",
      ]);
    },
  );

  eachChunking("accepts a line exactly at the limit, with or without \\r", (chunkSize) => {
    const exact = "y".repeat(10);
    expect(decode(`${exact}\n${exact}\r\n`, { chunkSize, maxLineBytes: 10 })).toEqual([exact, exact]);
  });

  eachChunking("rejects a line one byte over the limit, counting the bytes before \\n", (chunkSize) => {
    expect(decode(`${"z".repeat(11)}\r\n`, { chunkSize, maxLineBytes: 10 })).toEqual([{ tooLong: 12 }]);
  });

  eachChunking("counts the limit in bytes, not characters", (chunkSize) => {
    // Four emoji are 8 UTF-16 units but 16 UTF-8 bytes.
    expect(decode("🎉🎉🎉🎉\n🎉🎉🎉🎉x\nend\n", { chunkSize, maxLineBytes: 16 })).toEqual([
      "🎉🎉🎉🎉",
      { tooLong: 17 },
      "end",
    ]);
  });

  eachChunking("reports an over-long unterminated last line at end()", (chunkSize) => {
    expect(decode(`a\n${"b".repeat(50)}`, { chunkSize, maxLineBytes: 10 })).toEqual(["a", { tooLong: 50 }]);
  });

  test("holds at most maxLineBytes + 1 bytes however long a line grows", () => {
    const decoder = new LineDecoder({ maxLineBytes: 1024, onLine: () => {} });
    const chunk = new Uint8Array(4096).fill(0x41);
    let mostBuffered = 0;
    for (let i = 0; i < 1000; i++) {
      decoder.push(chunk);
      mostBuffered = Math.max(mostBuffered, decoder.bufferedBytes);
    }
    expect(mostBuffered).toBeLessThanOrEqual(1025);
  });

  test("does not keep a reference to the caller's chunk", () => {
    const lines: string[] = [];
    const decoder = new LineDecoder({ onLine: (line) => lines.push(line) });
    const chunk = utf8.encode("abc");
    decoder.push(chunk);
    chunk.fill(0x7a);
    decoder.push(utf8.encode("\n"));
    expect(lines).toEqual(["abc"]);
  });

  test("refuses a limit that is not a positive integer", () => {
    expect(() => new LineDecoder({ maxLineBytes: 0, onLine: () => {} })).toThrow(RangeError);
  });
});
