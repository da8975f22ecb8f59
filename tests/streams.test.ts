import { afterEach, describe, expect, test } from "bun:test";
import {
  ConnectionLostError,
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  StreamReader,
  type StreamServer,
  type StreamWriter,
  startServer,
  WRITE_HIGH_WATER,
} from "../lib/streams.ts";

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

describe("openConnection and startServer over real sockets", () => {
  let server: StreamServer | undefined;
  afterEach(() => server?.close(true));

  test("a server on port 0 reports the real port and echoes lines", async () => {
    server = await startServer(async (reader, writer) => {
      for await (const line of reader) writer.write(line);
      writer.close();
    });
    expect(server.port).toBeGreaterThan(0);
    const [reader, writer] = await openConnection("127.0.0.1", server.port);
    writer.write("héllo\n");
    writer.write(utf8.encode("second\n"));
    expect(text(await reader.readLine())).toBe("héllo\n");
    expect(text(await reader.readLine())).toBe("second\n");
    writer.writeEof();
    expect((await reader.readLine()).length).toBe(0);
    await writer.waitClosed();
  });

  test("bytes sent one per TCP segment still make whole lines", async () => {
    server = await startServer(async (_reader, writer) => {
      for (const byte of utf8.encode("slow 🐢 line\nnext\n")) {
        writer.write(new Uint8Array([byte]));
        await Bun.sleep(1);
      }
      writer.close();
    });
    const [reader] = await openConnection("127.0.0.1", server.port);
    expect(text(await reader.readLine())).toBe("slow 🐢 line\n");
    expect(text(await reader.readLine())).toBe("next\n");
  });

  test("a 32 MiB write to a slow reader arrives complete and in order, with the queue bounded by drain()", async () => {
    const size = 32 * 1024 * 1024;
    const received = Promise.withResolvers<{ length: number; checksum: number }>();
    server = await startServer(async (reader) => {
      let length = 0;
      let checksum = 0;
      for (let reads = 0; ; reads++) {
        const chunk = await reader.read(64 * 1024);
        if (chunk.length === 0) break;
        for (let i = 0; i < chunk.length; i++)
          checksum = (checksum + chunk[i]! * ((length + i) % 251)) % 1_000_003;
        length += chunk.length;
        if (reads % 8 === 0) await Bun.sleep(1); // a slow consumer
      }
      received.resolve({ length, checksum });
    });
    const [, writer] = await openConnection("127.0.0.1", server.port);
    const block = new Uint8Array(256 * 1024);
    let expectedChecksum = 0;
    let mostQueuedAfterDrain = 0;
    for (let offset = 0; offset < size; offset += block.length) {
      for (let i = 0; i < block.length; i++) {
        block[i] = (offset + i) % 241;
        expectedChecksum = (expectedChecksum + block[i]! * ((offset + i) % 251)) % 1_000_003;
      }
      writer.write(block); // the writer copies: reusing `block` is safe
      await writer.drain();
      mostQueuedAfterDrain = Math.max(mostQueuedAfterDrain, writer.bufferedBytes);
    }
    writer.close();
    expect(await received.promise).toEqual({ length: size, checksum: expectedChecksum });
    expect(mostQueuedAfterDrain).toBeLessThanOrEqual(WRITE_HIGH_WATER + block.length);
  });

  test("close() right after a large write still delivers every byte", async () => {
    const size = 8 * 1024 * 1024;
    const payload = new Uint8Array(size).map((_, i) => i % 253);
    server = await startServer((_reader, writer) => {
      writer.write(payload);
      writer.close();
    });
    const [reader] = await openConnection("127.0.0.1", server.port);
    await Bun.sleep(50); // let the server's queue fill up against a reader that is not reading yet
    const all = await reader.read();
    expect(all.length).toBe(size);
    expect(Bun.deepEquals(all, payload)).toBe(true);
  });

  test("writeEof half-closes: the peer sees EOF and can still answer", async () => {
    server = await startServer(async (reader, writer) => {
      const request = await reader.read();
      writer.write(`got ${request.length} bytes\n`);
      writer.close();
    });
    const [reader, writer] = await openConnection("127.0.0.1", server.port);
    writer.write("x".repeat(5000));
    writer.writeEof();
    expect(text(await reader.readLine())).toBe("got 5000 bytes\n");
    expect(() => writer.write("more")).toThrow("after writeEof()");
  });

  test("drain() rejects with ConnectionLostError after the peer resets", async () => {
    const accepted = Promise.withResolvers<StreamWriter>();
    server = await startServer((_reader, writer) => accepted.resolve(writer));
    const [, writer] = await openConnection("127.0.0.1", server.port);
    const peer = await accepted.promise;
    writer.write(new Uint8Array(16 * 1024 * 1024));
    const draining = writer.drain();
    peer.abort();
    await expect(draining).rejects.toBeInstanceOf(ConnectionLostError);
    await expect(writer.drain()).rejects.toBeInstanceOf(ConnectionLostError);
  });

  test("a refused connection rejects with ConnectionLostError naming the address", async () => {
    const probe = await startServer(() => {});
    const port = probe.port;
    probe.close(true);
    const error = await openConnection("127.0.0.1", port).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain("ECONNREFUSED");
  });

  test("a client handler that throws aborts only its own connection", async () => {
    let calls = 0;
    const originalError = console.error;
    const logged: string[] = [];
    console.error = (message: string) => logged.push(message);
    try {
      server = await startServer(async (reader, writer) => {
        calls++;
        if (calls === 1) throw new Error("boom");
        writer.write(await reader.readLine());
        writer.close();
      });
      const [firstReader] = await openConnection("127.0.0.1", server.port);
      expect((await firstReader.read()).length).toBe(0);
      const [reader, writer] = await openConnection("127.0.0.1", server.port);
      writer.write("still serving\n");
      expect(text(await reader.readLine())).toBe("still serving\n");
      expect(logged).toEqual(["client handler failed: boom"]);
    } finally {
      console.error = originalError;
    }
  });

  test("a reader that stops reading pauses the socket: the server buffers at most about 2 × limit", async () => {
    const limit = 16 * 1024;
    const serverReader = Promise.withResolvers<StreamReader>();
    server = await startServer((reader) => serverReader.resolve(reader), { limit });
    const [, writer] = await openConnection("127.0.0.1", server.port);
    writer.write(new Uint8Array(8 * 1024 * 1024));
    const reader = await serverReader.promise;
    await Bun.sleep(200);
    // The chunk that crosses the threshold is kept whole: one socket read is up to Bun's read buffer.
    expect(reader.bufferedBytes).toBeLessThanOrEqual(2 * limit + 256 * 1024);
    expect(writer.bufferedBytes).toBeGreaterThan(0);
    // Reading resumes the socket, and every byte arrives.
    expect((await reader.readExactly(8 * 1024 * 1024)).length).toBe(8 * 1024 * 1024);
  });
});
