import { afterEach, describe, expect, test } from "bun:test";
import {
  ConnectionLostError,
  openConnection,
  type StreamServer,
  type StreamWriter,
  startServer,
  WRITE_HIGH_WATER,
} from "../lib/streams.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("StreamWriter over real sockets", () => {
  let server: StreamServer | undefined;
  afterEach(() => server?.close(true));

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

  test("writeNow() hands a lone message to the kernel before returning; write() waits for the end of the turn", async () => {
    const received = Promise.withResolvers<string>();
    server = await startServer(async (reader) => received.resolve(text(await reader.read(100))));
    const [, writer] = await openConnection("127.0.0.1", server.port);
    writer.writeNow(new TextEncoder().encode("now"));
    expect(writer.bufferedBytes).toBe(0);
    expect(await received.promise).toBe("now");
    writer.write("later");
    expect(writer.bufferedBytes).toBe(5);
    writer.close();
  });

  test("writeNow() into a full socket copies what the kernel did not take: the caller's reused buffer arrives intact, in order", async () => {
    const blocks = 32;
    const block = new Uint8Array(1024 * 1024);
    const received = Promise.withResolvers<Uint8Array>();
    server = await startServer(async (reader) => {
      await Bun.sleep(100); // not reading yet: the kernel's buffers fill and writeNow() must queue
      received.resolve(await reader.read());
    });
    const [, writer] = await openConnection("127.0.0.1", server.port);
    let mostQueued = 0;
    for (let index = 0; index < blocks; index++) {
      block.fill(index); // the same buffer, overwritten after each call
      writer.writeNow(block);
      mostQueued = Math.max(mostQueued, writer.bufferedBytes);
    }
    expect(mostQueued).toBeGreaterThan(0); // the kernel stopped taking: the rest was queued
    writer.close();
    const all = await received.promise;
    expect(all.length).toBe(blocks * block.length);
    for (let index = 0; index < blocks; index++) {
      const part = all.subarray(index * block.length, (index + 1) * block.length);
      expect(part.every((byte) => byte === index)).toBe(true);
    }
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

  test("close(graceMs) aborts a peer that reads nothing, but never one that keeps reading", async () => {
    const writers: StreamWriter[] = [];
    server = await startServer((_reader, writer) => {
      writers.push(writer);
      writer.write(new Uint8Array(16 * 1024 * 1024)); // far more than the kernel buffers hold
      writer.close(300);
    });
    // The stalled peer never reads: cut after the grace, most of the 16 MiB never sent.
    await openConnection("127.0.0.1", server.port);
    await Bun.sleep(100);
    const started = performance.now();
    await writers[0]!.waitClosed();
    expect(performance.now() - started).toBeLessThan(2000);
    // A peer that keeps reading, however long the whole takes, gets every byte, then EOF.
    const [slowReader] = await openConnection("127.0.0.1", server.port);
    let received = 0;
    for (;;) {
      const chunk = await slowReader.read(256 * 1024);
      if (chunk.length === 0) break;
      received += chunk.length;
      await Bun.sleep(10); // 64 reads: well over the 300 ms grace in all
    }
    expect(received).toBe(16 * 1024 * 1024);
  }, 30_000);
});
