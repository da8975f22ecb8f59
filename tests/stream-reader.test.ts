import { describe, expect, test } from "bun:test";
import { IncompleteReadError, LimitOverrunError, StreamReader } from "../lib/stream-reader.ts";
import { ConnectionLostError } from "../lib/stream-writer.ts";

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A reader fed `input` in chunks of `chunkSize` bytes (all at once by default), then EOF. */
function readerWith(input: string | Uint8Array, chunkSize?: number, limit?: number): StreamReader {
  const reader = new StreamReader(limit);
  const bytes = typeof input === "string" ? utf8.encode(input) : input;
  const size = chunkSize ?? Math.max(bytes.length, 1);
  // Feed from timers so that reads really wait for data between chunks.
  (async () => {
    for (let offset = 0; offset < bytes.length; offset += size) {
      reader.feedData(bytes.subarray(offset, offset + size));
      await Bun.sleep(0);
    }
    reader.feedEof();
  })();
  return reader;
}

/** Runs the body with data fed all at once and one byte per chunk. */
function eachChunking(name: string, body: (chunkSize: number | undefined) => Promise<void>) {
  for (const chunkSize of [undefined, 1]) {
    test(`${name} (chunks of ${chunkSize ?? "all"} bytes)`, () => body(chunkSize));
  }
}

describe("StreamReader", () => {
  eachChunking(
    "readLine returns each line with its \\n, the partial last line at EOF, then empty",
    async (size) => {
      const reader = readerWith("alpha\nbeta\r\ngamma", size);
      expect(text(await reader.readLine())).toBe("alpha\n");
      expect(text(await reader.readLine())).toBe("beta\r\n");
      expect(text(await reader.readLine())).toBe("gamma");
      expect((await reader.readLine()).length).toBe(0);
      expect((await reader.readLine()).length).toBe(0);
      expect(reader.atEof()).toBe(true);
    },
  );

  eachChunking("readLine keeps multi-byte UTF-8 characters whole across chunks", async (size) => {
    const reader = readerWith("日本語 🎉\n", size);
    expect(text(await reader.readLine())).toBe("日本語 🎉\n");
  });

  eachChunking("readUntil finds a multi-byte separator split across chunks", async (size) => {
    const reader = readerWith("head\r\n\r\nbody", size);
    expect(text(await reader.readUntil("\r\n\r\n"))).toBe("head\r\n\r\n");
    expect(text(await reader.read())).toBe("body");
  });

  eachChunking("readUntil at EOF throws IncompleteReadError with everything buffered", async (size) => {
    const reader = readerWith("no separator here", size);
    const error = await reader.readUntil("\n\n").catch((e) => e);
    expect(error).toBeInstanceOf(IncompleteReadError);
    expect(text(error.partial)).toBe("no separator here");
    expect(error.expected).toBeNull();
  });

  eachChunking("readExactly returns n bytes and throws IncompleteReadError at an early EOF", async (size) => {
    const reader = readerWith("0123456789", size);
    expect(text(await reader.readExactly(4))).toBe("0123");
    expect((await reader.readExactly(0)).length).toBe(0);
    const error = await reader.readExactly(10).catch((e) => e);
    expect(error).toBeInstanceOf(IncompleteReadError);
    expect(text(error.partial)).toBe("456789");
    expect(error.expected).toBe(10);
  });

  eachChunking("read(-1) returns everything up to EOF", async (size) => {
    const reader = readerWith("x".repeat(1000), size);
    expect((await reader.read()).length).toBe(1000);
    expect((await reader.read()).length).toBe(0);
  });

  eachChunking("read(n) returns what is there, at most n bytes", async (size) => {
    const reader = readerWith("abcdef", size);
    const first = await reader.read(4);
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThanOrEqual(4);
    expect(text(first)).toBe("abcd".slice(0, first.length));
  });

  eachChunking(
    "readLine skips a line over the limit, throws LimitOverrunError, then reads on",
    async (size) => {
      const reader = readerWith(`short\n${"L".repeat(300)}\nafter\n`, size, 100);
      expect(text(await reader.readLine())).toBe("short\n");
      const error = await reader.readLine().catch((e) => e);
      expect(error).toBeInstanceOf(LimitOverrunError);
      expect(error.consumed).toBe(301);
      expect(text(await reader.readLine())).toBe("after\n");
    },
  );

  test("readUntil over the limit throws LimitOverrunError and leaves the data buffered", async () => {
    const reader = readerWith(`${"a".repeat(50)}|rest`, undefined, 10);
    const error = await reader.readUntil("|").catch((e) => e);
    expect(error).toBeInstanceOf(LimitOverrunError);
    expect(error.consumed).toBe(50);
    expect(text(await reader.readExactly(51))).toBe(`${"a".repeat(50)}|`);
  });

  test("a second read while one is waiting is an error", async () => {
    const reader = new StreamReader();
    const first = reader.readLine();
    await expect(reader.readLine()).rejects.toThrow("already waiting");
    await expect(reader.read()).rejects.toThrow("already waiting");
    await expect(reader.readExactly(1)).rejects.toThrow("already waiting");
    await expect(reader.readUntil("x")).rejects.toThrow("already waiting");
    reader.feedData(utf8.encode("done\n"));
    expect(text(await first)).toBe("done\n");
  });

  test("setException fails the waiting read and later ones", async () => {
    const reader = new StreamReader();
    const waiting = reader.readExactly(5);
    reader.setException(new ConnectionLostError("gone"));
    await expect(waiting).rejects.toThrow("gone");
    await expect(reader.readLine()).rejects.toBeInstanceOf(ConnectionLostError);
  });

  test("pauses its transport above 2 × limit and resumes at or below the limit", async () => {
    const calls: string[] = [];
    const reader = new StreamReader(100);
    reader.setTransport({ pause: () => calls.push("pause"), resume: () => calls.push("resume") });
    reader.feedData(new Uint8Array(150));
    reader.feedData(new Uint8Array(60));
    expect(calls).toEqual(["pause"]);
    await reader.readExactly(100);
    expect(calls).toEqual(["pause"]); // 110 bytes left: still above the limit
    await reader.readExactly(10);
    expect(calls).toEqual(["pause", "resume"]);
  });

  test("async iteration yields lines until EOF", async () => {
    const lines: string[] = [];
    for await (const line of readerWith("a\nb\nc")) lines.push(text(line));
    expect(lines).toEqual(["a\n", "b\n", "c"]);
  });
});
