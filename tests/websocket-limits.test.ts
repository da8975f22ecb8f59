/**
 * Limits (Autobahn group 9, and the denial-of-service shapes real servers have shipped fixes for): big
 * messages whole and in many fragments; announced lengths over the limit refused before a byte of them is
 * held — measured as the resident memory of a server in a child process while peers announce 1 GiB and
 * 2^62-byte frames and then really send megabytes; floods of empty fragments stopped by the fragment cap;
 * and `oversize: "skip"`, which reads an oversized message without holding it and goes on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DEFAULT_MAX_FRAGMENTS } from "../lib/websocket/connection.ts";
import { type ServerProcess, startServerProcess } from "./helpers/servers.ts";
import {
  BINARY,
  CONTINUATION,
  closeNormally,
  connect,
  expectFailed,
  expectFrame,
  expectSilence,
  expectText,
  PING,
  PONG,
  TEXT,
  useEchoServer,
} from "./helpers/websocket-cases.ts";
import { clientFrame, RawWebSocketClient } from "./helpers/websocket-client.ts";
import { ECHO_MAX_MESSAGE_BYTES } from "./helpers/websocket-echo.ts";

const MiB = 1024 * 1024;

/** The child's resident memory after it collected its garbage (SIGUSR1, answered by a `collected` line). */
async function heldBytes(child: ServerProcess): Promise<number> {
  const seen = child.output().split("collected").length;
  child.child.kill("SIGUSR1");
  for (const deadline = performance.now() + 5000; child.output().split("collected").length === seen; ) {
    if (performance.now() > deadline) throw new Error("the child did not collect its garbage");
    await Bun.sleep(5);
  }
  return child.rss();
}
const utf8 = new TextEncoder();

/** A message of `total` bytes as client frames of `size` bytes each (the first TEXT, then continuations). */
function fragmented(total: number, size: number, fill = 0x61): Uint8Array {
  const frames: Uint8Array[] = [];
  const piece = new Uint8Array(size).fill(fill);
  for (let offset = 0; offset < total; offset += size) {
    const last = offset + size >= total;
    frames.push(
      clientFrame(offset === 0 ? TEXT : CONTINUATION, piece.subarray(0, Math.min(size, total - offset)), {
        fin: last,
      }),
    );
  }
  return Buffer.concat(frames);
}

describe("9 big messages", () => {
  const server = useEchoServer();

  test("4 MiB of text in 64-byte fragments: 65,536 frames, the cap exactly, comes back whole", async () => {
    expect((4 * MiB) / 64).toBe(DEFAULT_MAX_FRAGMENTS);
    const client = await connect(server());
    client.send(fragmented(4 * MiB, 64));
    const frame = await client.readFrame(10_000);
    expect(frame.opcode).toBe(TEXT);
    expect(frame.payload.length).toBe(4 * MiB);
    expect(frame.payload.every((byte) => byte === 0x61)).toBe(true);
    await closeNormally(client);
  });

  test("4 MiB of binary in 4 KiB fragments, and in 1 MiB fragments", async () => {
    const client = await connect(server());
    for (const size of [4096, MiB]) {
      const data = Uint8Array.from({ length: 4 * MiB }, (_, index) => index % 251);
      const frames: Uint8Array[] = [];
      for (let offset = 0; offset < data.length; offset += size) {
        frames.push(
          clientFrame(offset === 0 ? BINARY : CONTINUATION, data.subarray(offset, offset + size), {
            fin: offset + size >= data.length,
          }),
        );
      }
      client.send(Buffer.concat(frames));
      await expectFrame(client, BINARY, data);
    }
    await closeNormally(client);
  });

  test("a 1 MiB message written in 64-byte TCP pieces", async () => {
    const client = await connect(server());
    const frame = clientFrame(TEXT, "z".repeat(MiB));
    for (let offset = 0; offset < frame.length; offset += 64 * 1024) {
      // 64-byte writes, 1,024 to a batch, a pause between batches so they arrive in many reads.
      for (let piece = offset; piece < Math.min(frame.length, offset + 64 * 1024); piece += 64) {
        client.send(frame.subarray(piece, piece + 64));
      }
      await Bun.sleep(1);
    }
    await expectText(client, "z".repeat(MiB));
    await closeNormally(client);
  });

  test("one frame more than the fragment cap fails the connection (1009)", async () => {
    const client = await connect(server());
    const empty = clientFrame(CONTINUATION, new Uint8Array(0), { fin: false });
    const flood = new Uint8Array(empty.length * (DEFAULT_MAX_FRAGMENTS - 1));
    for (let index = 0; index < DEFAULT_MAX_FRAGMENTS - 1; index++) flood.set(empty, index * empty.length);
    client.sendFrame(TEXT, "", { fin: false });
    client.send(flood); // 65,536 frames of one message so far: still fine
    await expectSilence(client, 200);
    client.send(empty); // frame 65,537
    await expectFailed(client, 1009);
  });

  test("an announced length one over the limit fails at once (1009), with no payload sent", async () => {
    const client = await connect(server());
    // Only the header goes out: the server must refuse on the length alone.
    client.send(
      clientFrame(BINARY, new Uint8Array(0), { announcedLength: BigInt(ECHO_MAX_MESSAGE_BYTES + 1) }),
    );
    await expectFailed(client, 1009);
  });

  test("fragments whose sum passes the limit fail at the fragment's header (1009)", async () => {
    const client = await connect(server());
    client.sendFrame(BINARY, new Uint8Array(10 * MiB), { fin: false });
    client.send(clientFrame(CONTINUATION, new Uint8Array(0), { announcedLength: BigInt(7 * MiB) }));
    await expectFailed(client, 1009);
  });
});

describe("9 lying lengths, measured in a child process's memory", () => {
  let child: ServerProcess;
  beforeAll(async () => {
    child = await startServerProcess("tests/helpers/websocket-echo.ts");
  });
  afterAll(async () => {
    await child.interrupt();
  });

  // 128 MiB arrive in all: a server that held them would grow by that much at least. Measured after the
  // child collected its garbage (the dropped bytes pass through fresh 64 KiB arrays): ~7–12 MiB here.
  test("16 peers announce 1 GiB or 2^62-byte frames and send 8 MiB each: 1009, and RSS grows < 24 MiB", async () => {
    // Warm up: a real 1 MiB echo, so the code paths and buffers exist before the first measurement.
    const warm = await RawWebSocketClient.connect(child.port);
    warm.sendFrame(BINARY, new Uint8Array(MiB));
    await warm.readFrame(5000);
    await closeNormally(warm);
    const before = await heldBytes(child);
    const junk = new Uint8Array(8 * MiB).fill(0x55);
    await Promise.all(
      Array.from({ length: 16 }, async (_, index) => {
        const client = await RawWebSocketClient.connect(child.port);
        const announced = index % 2 === 0 ? 2n ** 30n : 2n ** 62n;
        client.send(clientFrame(BINARY, new Uint8Array(0), { announcedLength: announced }));
        client.send(junk); // what a server that believed the length would buffer
        await client.sentAll(5000);
        await expectFailed(client, 1009);
      }),
    );
    const grown = (await heldBytes(child)) - before;
    console.log(`RSS grew by ${(grown / MiB).toFixed(1)} MiB while 16 peers lied about 1 GiB / 2^62 bytes`);
    expect(grown).toBeLessThan(24 * MiB);
  }, 20_000);

  // A Pong is queued for every Ping; a peer that pings and never reads would fill the server's send queue
  // for ever unless the server stops reading until the queue drains (it awaits drain() after each Pong).
  test("a peer that floods pings and never reads: the server stops reading, RSS grows < 24 MiB", async () => {
    const before = await heldBytes(child);
    const client = await RawWebSocketClient.connect(child.port);
    client.pauseReading();
    const ping = clientFrame(PING, new Uint8Array(125).fill(1));
    // 1 Mi pings (131 MB): far more than the kernel's socket buffers on both sides can hold (Linux lets a
    // loopback receive buffer grow to tcp_rmem's maximum, 32 MiB here), so "most of it still unsent" can
    // only be the server's brake, not the kernel taking it.
    const flood = new Uint8Array(ping.length * 1024 * 1024);
    for (let offset = 0; offset < flood.length; offset += ping.length) flood.set(ping, offset);
    client.send(flood);
    await Bun.sleep(1000);
    // The brake reached the peer: most of its flood is still on its side, unsent.
    expect(client.unsentBytes).toBeGreaterThan(flood.length / 2);
    const grown = (await heldBytes(child)) - before;
    console.log(
      `RSS grew by ${(grown / MiB).toFixed(1)} MiB under a ping flood from a peer that never reads`,
    );
    expect(grown).toBeLessThan(24 * MiB);
    client.close();
  }, 20_000);
});

describe("9 oversize: skip (lesson 08's /chat answers `ERR line too long` and goes on)", () => {
  const server = useEchoServer({ maxMessageBytes: 1000, oversize: "skip" });

  test("a message of exactly the limit is delivered; one byte more is reported, not delivered", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "a".repeat(1000));
    await expectText(client, "a".repeat(1000));
    client.sendFrame(TEXT, "a".repeat(1001));
    await expectText(client, "too long: 1001 bytes");
    client.sendFrame(TEXT, "still here");
    await expectText(client, "still here");
    await closeNormally(client);
  });

  test("a fragmented message that passes the limit midway, with a ping inside: pong, then 'too long'", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "b".repeat(600), { fin: false });
    client.sendFrame(CONTINUATION, "b".repeat(600), { fin: false });
    client.sendFrame(PING, "inside");
    await expectFrame(client, PONG, utf8.encode("inside"));
    client.sendFrame(CONTINUATION, "b".repeat(600));
    await expectText(client, "too long: 1800 bytes");
    client.sendFrame(BINARY, Uint8Array.of(1, 2, 3));
    await expectFrame(client, BINARY, Uint8Array.of(1, 2, 3));
    await closeNormally(client);
  });

  test("a skipped message is not checked as UTF-8 (its bytes are never used); the next one is", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, new Uint8Array(2000).fill(0xff));
    await expectText(client, "too long: 2000 bytes");
    client.sendFrame(TEXT, Uint8Array.of(0xff));
    await expectFailed(client, 1007);
  });
});

describe("9 oversize: skip holds nothing, measured in a child process's memory", () => {
  let child: ServerProcess;
  beforeAll(async () => {
    child = await startServerProcess("tests/helpers/websocket-echo.ts", [
      "--max-message",
      "1024",
      "--oversize",
      "skip",
    ]);
  });
  afterAll(async () => {
    await child.interrupt();
  });

  // As above: 128 MiB arrive; holding even one of the messages would cost 32 MiB.
  test("4 peers send 32 MiB messages: each is reported 'too long', and RSS grows < 24 MiB", async () => {
    const warm = await RawWebSocketClient.connect(child.port);
    warm.sendFrame(TEXT, "x".repeat(2000));
    await expectText(warm, "too long: 2000 bytes");
    await closeNormally(warm);
    const before = await heldBytes(child);
    const big = clientFrame(BINARY, new Uint8Array(32 * MiB).fill(7));
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const client = await RawWebSocketClient.connect(child.port);
        client.send(big);
        await expectText(client, `too long: ${32 * MiB} bytes`);
        await closeNormally(client);
      }),
    );
    const grown = (await heldBytes(child)) - before;
    console.log(`RSS grew by ${(grown / MiB).toFixed(1)} MiB while 4 peers sent 32 MiB messages to skip`);
    expect(grown).toBeLessThan(24 * MiB);
  }, 20_000);
});
