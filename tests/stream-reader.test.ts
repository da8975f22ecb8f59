import { describe, expect, test } from "bun:test";
import {
  ConcurrentReadError,
  IncompleteReadError,
  LimitOverrunError,
  RETAINED_BUFFER_BYTES,
  StreamReader,
} from "../lib/stream-reader.ts";
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

  test("a second read while one is waiting is a ConcurrentReadError", async () => {
    const reader = new StreamReader();
    const first = reader.readLine();
    await expect(reader.readLine()).rejects.toThrow(
      "readLine() while another read is waiting on this stream: one reader at a time",
    );
    await expect(reader.read()).rejects.toBeInstanceOf(ConcurrentReadError);
    await expect(reader.readExactly(1)).rejects.toBeInstanceOf(ConcurrentReadError);
    await expect(reader.readUntil("x")).rejects.toBeInstanceOf(ConcurrentReadError);
    reader.feedData(utf8.encode("done\n"));
    expect(text(await first)).toBe("done\n");
  });

  test("one reader at a time holds even for a read the buffer could serve at once", async () => {
    // asyncio only refuses a read that must wait: there, this readLine() would take "ab\n" and the waiting
    // readExactly(10) would end short. Here it is refused, and readExactly gets its 10 bytes.
    const reader = new StreamReader();
    reader.feedData(utf8.encode("ab\n"));
    const waiting = reader.readExactly(10);
    await expect(reader.readLine()).rejects.toBeInstanceOf(ConcurrentReadError);
    await expect(reader.read(2)).rejects.toBeInstanceOf(ConcurrentReadError);
    // Zero-byte reads consume nothing, so they never conflict (as in asyncio).
    expect((await reader.read(0)).length).toBe(0);
    expect((await reader.readExactly(0)).length).toBe(0);
    reader.feedData(utf8.encode("cdefghij"));
    expect(text(await waiting)).toBe("ab\ncdefghi");
  });

  test("gives back a buffer that grew for a big read once it is empty", async () => {
    const reader = new StreamReader();
    const body = reader.readExactly(10 * 1024 * 1024);
    // All but the last chunk: the buffer has grown to hold them (the last one completes the read at once).
    for (let i = 0; i < 159; i++) reader.feedData(new Uint8Array(64 * 1024));
    expect(reader.capacityBytes).toBeGreaterThanOrEqual(159 * 64 * 1024);
    reader.feedData(new Uint8Array(64 * 1024));
    expect((await body).length).toBe(10 * 1024 * 1024);
    expect(reader.capacityBytes).toBeLessThanOrEqual(RETAINED_BUFFER_BYTES);
    // A small buffer is kept: a busy connection does not reallocate for every line.
    reader.feedData(utf8.encode("line\n"));
    await reader.readLine();
    expect(reader.capacityBytes).toBeGreaterThan(0);
    expect(reader.capacityBytes).toBeLessThanOrEqual(RETAINED_BUFFER_BYTES);
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

/**
 * CPython's Lib/test/test_asyncio/test_streams.py, ported case by case: each test is named after the one
 * it comes from, with the same inputs and outcomes — or a difference written down where we differ on purpose.
 * `stream._buffer` is read as the bytes still buffered (`rest`). Not ported: the tests of the event loop,
 * sockets and SSL (covered by tests/streams.test.ts on real sockets), and test_exception_cancel (a
 * JavaScript promise cannot be cancelled).
 */
describe("StreamReader against CPython's test_streams.py", () => {
  const DATA = "line1\nline2\nline3\n";
  const feed = (reader: StreamReader, data: string) => reader.feedData(utf8.encode(data));
  /** What is still buffered, read out (CPython's `stream._buffer`). */
  const rest = async (reader: StreamReader) => text(await reader.readExactly(reader.bufferedBytes));
  /** CPython's `loop.call_soon(cb)`: runs after the read has started waiting. */
  const soon = (callback: () => void) => setTimeout(callback, 0);

  test("test_feed_empty_data", () => {
    const stream = new StreamReader();
    stream.feedData(new Uint8Array(0));
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_feed_nonempty_data", async () => {
    const stream = new StreamReader();
    feed(stream, DATA);
    expect(await rest(stream)).toBe(DATA);
  });

  test("test_read_zero", async () => {
    const stream = new StreamReader();
    feed(stream, DATA);
    expect((await stream.read(0)).length).toBe(0);
    expect(await rest(stream)).toBe(DATA);
  });

  test("test_read", async () => {
    const stream = new StreamReader();
    const read = stream.read(30);
    soon(() => feed(stream, DATA));
    expect(text(await read)).toBe(DATA);
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_read_line_breaks", async () => {
    const stream = new StreamReader();
    feed(stream, "line1");
    feed(stream, "line2");
    expect(text(await stream.read(5))).toBe("line1");
    expect(await rest(stream)).toBe("line2");
  });

  test("test_read_eof", async () => {
    const stream = new StreamReader();
    const read = stream.read(1024);
    soon(() => stream.feedEof());
    expect((await read).length).toBe(0);
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_read_until_eof", async () => {
    const stream = new StreamReader();
    const read = stream.read(-1);
    soon(() => {
      feed(stream, "chunk1\n");
      feed(stream, "chunk2");
      stream.feedEof();
    });
    expect(text(await read)).toBe("chunk1\nchunk2");
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_read_exception", async () => {
    const stream = new StreamReader();
    feed(stream, "line\n");
    expect(text(await stream.read(2))).toBe("li");
    stream.setException(new TypeError("bad"));
    // Bytes are still buffered, and read() throws all the same: one rule for every read.
    await expect(stream.read(2)).rejects.toBeInstanceOf(TypeError);
    // asyncio's read(0) also raises the exception.
    await expect(stream.read(0)).rejects.toBeInstanceOf(TypeError);
  });

  test("test_invalid_limit", () => {
    expect(() => new StreamReader(0)).toThrow("limit");
    expect(() => new StreamReader(-1)).toThrow("limit");
  });

  test("test_read_limit", async () => {
    const stream = new StreamReader(3);
    feed(stream, "chunk");
    expect(text(await stream.read(5))).toBe("chunk");
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readline", async () => {
    const stream = new StreamReader();
    feed(stream, "chunk1 ");
    const line = stream.readLine();
    soon(() => {
      feed(stream, "chunk2 ");
      feed(stream, "chunk3 ");
      feed(stream, "\n chunk4");
    });
    expect(text(await line)).toBe("chunk1 chunk2 chunk3 \n");
    expect(await rest(stream)).toBe(" chunk4");
  });

  test("test_readline_limit_with_existing_data", async () => {
    const first = new StreamReader(3);
    feed(first, "li");
    feed(first, "ne1\nline2\n");
    await expect(first.readLine()).rejects.toBeInstanceOf(LimitOverrunError);
    expect(await rest(first)).toBe("line2\n");

    // Difference: asyncio throws here at once and empties the buffer; we throw when the long line ends
    // (its newline or EOF), having discarded all of it, so the next readLine() starts on a line boundary.
    const second = new StreamReader(3);
    feed(second, "li");
    feed(second, "ne1");
    feed(second, "li");
    const error = second.readLine().catch((e) => e);
    soon(() => second.feedEof());
    expect(await error).toBeInstanceOf(LimitOverrunError);
    expect((await error).consumed).toBe(7);
    expect(second.bufferedBytes).toBe(0);
  });

  test("test_at_eof", async () => {
    const stream = new StreamReader();
    expect(stream.atEof()).toBe(false);
    feed(stream, "some data\n");
    expect(stream.atEof()).toBe(false);
    await stream.readLine();
    expect(stream.atEof()).toBe(false);
    feed(stream, "some data\n");
    stream.feedEof();
    await stream.readLine();
    expect(stream.atEof()).toBe(true);
  });

  test("test_readline_limit", async () => {
    const first = new StreamReader(7);
    soon(() => {
      feed(first, "chunk1");
      feed(first, "chunk2");
      feed(first, "chunk3\n");
      first.feedEof();
    });
    await expect(first.readLine()).rejects.toBeInstanceOf(LimitOverrunError);
    expect(first.bufferedBytes).toBe(0);

    const second = new StreamReader(7);
    soon(() => {
      feed(second, "chunk1");
      feed(second, "chunk2\n");
      feed(second, "chunk3\n");
      second.feedEof();
    });
    await expect(second.readLine()).rejects.toBeInstanceOf(LimitOverrunError);
    expect(await rest(second)).toBe("chunk3\n");

    // The strictness of the limit: 7 bytes before the newline pass, 8 do not.
    const stream = new StreamReader(7);
    feed(stream, "1234567\n");
    expect(text(await stream.readLine())).toBe("1234567\n");
    expect(stream.bufferedBytes).toBe(0);
    feed(stream, "12345678\n");
    await expect(stream.readLine()).rejects.toBeInstanceOf(LimitOverrunError);
    expect(stream.bufferedBytes).toBe(0);
    // Difference (see test_readline_limit_with_existing_data): the error comes once the line has ended.
    feed(stream, "12345678");
    const error = stream.readLine().catch((e) => e);
    soon(() => stream.feedEof());
    expect(await error).toBeInstanceOf(LimitOverrunError);
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readline_nolimit_nowait", async () => {
    const stream = new StreamReader();
    feed(stream, DATA.slice(0, 6));
    feed(stream, DATA.slice(6));
    expect(text(await stream.readLine())).toBe("line1\n");
    expect(await rest(stream)).toBe("line2\nline3\n");
  });

  test("test_readline_eof", async () => {
    const stream = new StreamReader();
    feed(stream, "some data");
    stream.feedEof();
    expect(text(await stream.readLine())).toBe("some data");
  });

  test("test_readline_empty_eof", async () => {
    const stream = new StreamReader();
    stream.feedEof();
    expect((await stream.readLine()).length).toBe(0);
  });

  test("test_readline_read_byte_count", async () => {
    const stream = new StreamReader();
    feed(stream, DATA);
    await stream.readLine();
    expect(text(await stream.read(7))).toBe("line2\nl");
    expect(await rest(stream)).toBe("ine3\n");
  });

  test("test_readline_exception", async () => {
    const stream = new StreamReader();
    feed(stream, "line\n");
    expect(text(await stream.readLine())).toBe("line\n");
    stream.setException(new TypeError("bad"));
    await expect(stream.readLine()).rejects.toBeInstanceOf(TypeError);
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readuntil_separator", async () => {
    const stream = new StreamReader();
    await expect(stream.readUntil("")).rejects.toThrow("a separator must not be empty");
    await expect(stream.readUntil([""])).rejects.toThrow("a separator must not be empty");
    await expect(stream.readUntil([])).rejects.toThrow("readUntil needs at least one separator");
  });

  test("test_readuntil_multi_chunks", async () => {
    const stream = new StreamReader();
    feed(stream, "lineAAA");
    expect(text(await stream.readUntil("AAA"))).toBe("lineAAA");
    expect(stream.bufferedBytes).toBe(0);
    feed(stream, "lineAAA");
    expect(text(await stream.readUntil(utf8.encode("AAA")))).toBe("lineAAA");
    expect(stream.bufferedBytes).toBe(0);
    feed(stream, "lineAAAxxx");
    expect(text(await stream.readUntil("AAA"))).toBe("lineAAA");
    expect(await rest(stream)).toBe("xxx");
  });

  test("test_readuntil_multi_chunks_1", async () => {
    const stream = new StreamReader();
    for (const [chunks, expected] of [
      [["QWEaa", "XYaa", "a"], "QWEaaXYaaa"],
      [["QWEaa", "XYa", "aa"], "QWEaaXYaaa"],
      [["aaa"], "aaa"],
      [["Xaaa"], "Xaaa"],
      [["XXX", "a", "a", "a"], "XXXaaa"],
    ] as const) {
      for (const chunk of chunks) feed(stream, chunk);
      expect(text(await stream.readUntil("aaa"))).toBe(expected);
      expect(stream.bufferedBytes).toBe(0);
    }
  });

  test("test_readuntil_eof", async () => {
    const stream = new StreamReader();
    feed(stream, "some dataAA");
    stream.feedEof();
    const error = await stream.readUntil("AAA").catch((e) => e);
    expect(error).toBeInstanceOf(IncompleteReadError);
    // Our own words for asyncio's "11 bytes read on a total of undefined expected bytes".
    expect(error.message).toBe("stream ended after 11 bytes, before the separator");
    expect(text(error.partial)).toBe("some dataAA");
    expect(error.expected).toBeNull();
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readuntil_limit_found_sep", async () => {
    const stream = new StreamReader(3);
    feed(stream, "some dataAA");
    const notFound = await stream.readUntil("AAA").catch((e) => e);
    expect(notFound).toBeInstanceOf(LimitOverrunError);
    expect(notFound.message).toStartWith("no separator within the limit of 3 bytes");
    expect(stream.bufferedBytes).toBe(11);
    feed(stream, "A");
    const found = await stream.readUntil("AAA").catch((e) => e);
    expect(found).toBeInstanceOf(LimitOverrunError);
    expect(found.message).toBe("separator found 9 bytes in, past the limit of 3 bytes");
    expect(await rest(stream)).toBe("some dataAAA");
  });

  test("test_readuntil_multi_separator", async () => {
    const stream = new StreamReader();
    feed(stream, "line 1\nline 2\r");
    expect(text(await stream.readUntil(["\r", "\n"]))).toBe("line 1\n");
    expect(text(await stream.readUntil(["\r", "\n"]))).toBe("line 2\r");
    expect(stream.bufferedBytes).toBe(0);
    // The match that ends first wins, even if it is the longer one.
    feed(stream, "ABCDEFG");
    expect(text(await stream.readUntil(["DEF", "BCDE"]))).toBe("ABCDE");
    expect(await rest(stream)).toBe("FG");
  });

  test("test_readuntil_multi_separator_limit", async () => {
    const stream = new StreamReader(3);
    feed(stream, "some dataA");
    // Both end at the same place: the shortest separator is the one that matched, and it starts past 3.
    const error = await stream.readUntil(["A", "ome dataA"]).catch((e) => e);
    expect(error).toBeInstanceOf(LimitOverrunError);
    expect(error.message).toBe("separator found 9 bytes in, past the limit of 3 bytes");
    expect(await rest(stream)).toBe("some dataA");
  });

  test("test_readuntil_multi_separator_negative_offset", async () => {
    const stream = new StreamReader();
    feed(stream, "data");
    const read = stream.readUntil(["A", "long sep"]);
    soon(() => feed(stream, "Z"));
    soon(() => feed(stream, "Aaaa"));
    expect(text(await read)).toBe("dataZA");
    expect(await rest(stream)).toBe("aaa");
  });

  test("test_readuntil_bytearray (a string separator, here)", async () => {
    const stream = new StreamReader();
    feed(stream, "some data\r\n");
    expect(text(await stream.readUntil("\r\n"))).toBe("some data\r\n");
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readexactly_zero_or_less", async () => {
    const stream = new StreamReader();
    feed(stream, DATA);
    expect((await stream.readExactly(0)).length).toBe(0);
    expect(stream.bufferedBytes).toBe(DATA.length);
    await expect(stream.readExactly(-1)).rejects.toBeInstanceOf(RangeError);
    expect(await rest(stream)).toBe(DATA);
  });

  test("test_readexactly", async () => {
    const stream = new StreamReader();
    const read = stream.readExactly(2 * DATA.length);
    soon(() => {
      feed(stream, DATA);
      feed(stream, DATA);
      feed(stream, DATA);
    });
    expect(text(await read)).toBe(DATA + DATA);
    expect(await rest(stream)).toBe(DATA);
  });

  test("test_readexactly_limit", async () => {
    const stream = new StreamReader(3);
    feed(stream, "chunk");
    expect(text(await stream.readExactly(5))).toBe("chunk");
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readexactly_eof", async () => {
    const stream = new StreamReader();
    const n = 2 * DATA.length;
    const read = stream.readExactly(n).catch((e) => e);
    soon(() => {
      feed(stream, DATA);
      stream.feedEof();
    });
    const error = await read;
    expect(error).toBeInstanceOf(IncompleteReadError);
    expect(text(error.partial)).toBe(DATA);
    expect(error.expected).toBe(n);
    // Our own words for asyncio's "18 bytes read on a total of 36 expected bytes".
    expect(error.message).toBe("stream ended after 18 of 36 bytes");
    expect(stream.bufferedBytes).toBe(0);
  });

  test("test_readexactly_exception", async () => {
    const stream = new StreamReader();
    feed(stream, "line\n");
    expect(text(await stream.readExactly(2))).toBe("li");
    stream.setException(new TypeError("bad"));
    await expect(stream.readExactly(2)).rejects.toBeInstanceOf(TypeError);
    await expect(stream.readExactly(0)).rejects.toBeInstanceOf(TypeError);
  });

  test("test_exception", () => {
    const stream = new StreamReader();
    expect(stream.exception()).toBeNull();
    const error = new TypeError("bad");
    stream.setException(error);
    expect(stream.exception()).toBe(error);
  });

  test("test_exception_waiter", async () => {
    const stream = new StreamReader();
    const line = stream.readLine();
    soon(() => stream.setException(new TypeError("bad")));
    await expect(line).rejects.toBeInstanceOf(TypeError);
  });

  test("feed_data after feed_eof is refused (asyncio asserts it), and EOF stays EOF", async () => {
    const stream = new StreamReader();
    stream.feedEof();
    expect(() => feed(stream, "late")).toThrow("feedData() after feedEof(): the stream has ended");
    expect(stream.atEof()).toBe(true);
    expect((await stream.read()).length).toBe(0);
  });

  /**
   * tryReadExactly is ours (asyncio has no read that never waits): CPython's readexactly cases, each asked
   * of it with the same inputs — what it returns now, or `null` with nothing consumed, and the awaited
   * readExactly that follows it.
   */
  describe("the readexactly cases, for tryReadExactly", () => {
    test("test_readexactly_zero_or_less", () => {
      const stream = new StreamReader();
      feed(stream, DATA);
      expect(stream.tryReadExactly(0)?.length).toBe(0);
      expect(stream.bufferedBytes).toBe(DATA.length);
      expect(() => stream.tryReadExactly(-1)).toThrow(RangeError);
      expect(() => stream.tryReadExactly(1.5)).toThrow(RangeError);
      expect(stream.bufferedBytes).toBe(DATA.length);
    });

    test("test_readexactly: all of it buffered is taken at once; less is null, nothing consumed", async () => {
      const stream = new StreamReader();
      const n = 2 * DATA.length;
      feed(stream, DATA);
      expect(stream.tryReadExactly(n)).toBeNull();
      expect(stream.bufferedBytes).toBe(DATA.length);
      feed(stream, DATA);
      feed(stream, DATA);
      const bytes = stream.tryReadExactly(n)!;
      expect(text(bytes)).toBe(DATA + DATA);
      // A copy: the caller may change it (a WebSocket payload is unmasked in place).
      bytes.fill(0);
      expect(await rest(stream)).toBe(DATA);
    });

    test("test_readexactly_limit: n over the limit is fine", () => {
      const stream = new StreamReader(3);
      feed(stream, "chunk");
      expect(text(stream.tryReadExactly(5)!)).toBe("chunk");
      expect(stream.bufferedBytes).toBe(0);
    });

    test("test_readexactly_eof: null at EOF, and the readExactly after it gets the partial", async () => {
      const stream = new StreamReader();
      const n = 2 * DATA.length;
      feed(stream, DATA);
      stream.feedEof();
      expect(stream.tryReadExactly(n)).toBeNull();
      const error = await stream.readExactly(n).catch((e) => e);
      expect(error).toBeInstanceOf(IncompleteReadError);
      expect(text(error.partial)).toBe(DATA);
      expect(stream.bufferedBytes).toBe(0);
    });

    test("test_readexactly_exception: thrown at once, bytes buffered or not", () => {
      const stream = new StreamReader();
      feed(stream, "line\n");
      expect(text(stream.tryReadExactly(2)!)).toBe("li");
      stream.setException(new TypeError("bad"));
      expect(() => stream.tryReadExactly(2)).toThrow(TypeError);
      expect(() => stream.tryReadExactly(0)).toThrow(TypeError);
    });

    test("one reader at a time: refused while another read waits, even for bytes it could take", async () => {
      const stream = new StreamReader();
      feed(stream, "ab");
      const waiting = stream.readExactly(3);
      expect(() => stream.tryReadExactly(1)).toThrow(ConcurrentReadError);
      expect(stream.tryReadExactly(0)?.length).toBe(0);
      feed(stream, "cd");
      expect(text(await waiting)).toBe("abc");
      expect(text(stream.tryReadExactly(1)!)).toBe("d");
    });

    test("taking bytes resumes a transport paused by a full buffer", () => {
      const calls: string[] = [];
      const stream = new StreamReader(100);
      stream.setTransport({ pause: () => calls.push("pause"), resume: () => calls.push("resume") });
      stream.feedData(new Uint8Array(250));
      expect(calls).toEqual(["pause"]);
      expect(stream.tryReadExactly(100)?.length).toBe(100);
      expect(calls).toEqual(["pause"]); // 150 left: still above the limit
      expect(stream.tryReadExactly(50)?.length).toBe(50);
      expect(calls).toEqual(["pause", "resume"]);
    });
  });

  test("test_readexactly, one byte a chunk: the waiting read is handed its bytes by the chunk that completes them", async () => {
    const stream = new StreamReader();
    const read = stream.readExactly(3);
    feed(stream, "a");
    feed(stream, "b");
    expect(stream.bufferedBytes).toBe(2);
    feed(stream, "cd");
    // Taken inside feedData, before any await: the byte after them is the next reader's, at once.
    expect(stream.bufferedBytes).toBe(1);
    expect(text(stream.tryReadExactly(1)!)).toBe("d");
    expect(text(await read)).toBe("abc");
  });

  test("readExactly of more than 2 × limit is not left waiting on a transport it paused", async () => {
    const calls: string[] = [];
    const stream = new StreamReader(4);
    stream.setTransport({ pause: () => calls.push("pause"), resume: () => calls.push("resume") });
    const read = stream.readExactly(20);
    for (let i = 0; i < 19; i++) stream.feedData(new Uint8Array(1));
    // 19 bytes buffered, over 2 × limit, but the read needs them all: no pause.
    expect(calls).toEqual([]);
    stream.feedData(new Uint8Array(11));
    expect((await read).length).toBe(20);
    // 10 left over, nobody reading: now the transport is paused.
    expect(calls).toEqual(["pause"]);
  });
});
