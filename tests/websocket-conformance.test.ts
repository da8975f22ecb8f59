/**
 * lib/websocket against RFC 6455 on a real socket, after the Autobahn|Testsuite case groups (its runner is
 * Python 2 and cannot run here, so the cases are written from the RFC and the suite's descriptions):
 * 1 framing, 2 pings and pongs, 3 reserved bits, 4 reserved opcodes, 5 fragmentation, 10 misc. UTF-8
 * (6), the closing handshake (7) and limits (9) have their own files. The server is
 * tests/helpers/websocket-echo.ts: every message comes back as it was sent.
 */
import { describe, expect, test } from "bun:test";
import {
  BINARY,
  CLOSE,
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
import { clientFrame } from "./helpers/websocket-client.ts";

const server = useEchoServer();
const utf8 = new TextEncoder();

/** `n` bytes of a repeating pattern (not all zeros: a masking bug must show). */
function pattern(n: number, seed = 7): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let index = 0; index < n; index++) bytes[index] = (index * 31 + seed) & 0xff;
  return bytes;
}

describe("1 framing: a message of each length form comes back whole", () => {
  const sizes = [0, 125, 126, 127, 65_535, 65_536, 16 * 1024 * 1024];
  for (const size of sizes) {
    test(`text of ${size} bytes`, async () => {
      const client = await connect(server());
      const text = "*".repeat(size);
      client.sendFrame(TEXT, text);
      const frame = await client.readFrame(5000);
      expect(frame.opcode).toBe(TEXT);
      expect(frame.fin).toBe(true);
      expect(frame.masked).toBe(false);
      expect(frame.payload.length).toBe(size);
      expect(frame.payload.every((byte) => byte === 0x2a)).toBe(true);
      await closeNormally(client);
    });
    test(`binary of ${size} bytes`, async () => {
      const client = await connect(server());
      const data = pattern(size);
      client.sendFrame(BINARY, data);
      const frame = await client.readFrame(5000);
      expect(frame.opcode).toBe(BINARY);
      expect(Buffer.compare(frame.payload, data)).toBe(0);
      await closeNormally(client);
    });
  }

  test("the server uses the shortest length form: 7 bits to 125, 16 bits to 65,535, then 64", async () => {
    const client = await connect(server());
    for (const [size, header] of [
      [125, 2],
      [126, 4],
      [65_535, 4],
      [65_536, 10],
    ] as const) {
      client.sendFrame(BINARY, pattern(size));
      const frame = await client.readFrame();
      expect(frame.payload.length).toBe(size);
      // readFrame's payload is a view of the frame's own bytes: its offset is the header's length.
      expect(frame.payload.byteOffset).toBe(header);
    }
    await closeNormally(client);
  });

  test("a client may use a longer length form than needed (16 and 64 bits for 5 bytes)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "short", { lengthForm: 16 });
    await expectText(client, "short");
    client.sendFrame(TEXT, "short", { lengthForm: 64 });
    await expectText(client, "short");
    await closeNormally(client);
  });

  test("a frame written one byte at a time is read as one message", async () => {
    const client = await connect(server());
    await client.sendSlowly(clientFrame(TEXT, "x".repeat(130)), 1); // a 16-bit length, split too
    await expectText(client, "x".repeat(130));
    await closeNormally(client);
  });

  test("many messages in one write come back in order", async () => {
    const client = await connect(server());
    const frames = Array.from({ length: 100 }, (_, index) => clientFrame(TEXT, `message ${index}`));
    client.send(Buffer.concat(frames));
    for (let index = 0; index < 100; index++) await expectText(client, `message ${index}`);
    await closeNormally(client);
  });

  test("a message, then the next one cut after each of its bytes: both come back whole", async () => {
    // A message that arrives whole is taken at once; one cut anywhere — in its first two bytes, its
    // extended length, its mask, its payload — is waited for. Every cut point, a 16-bit length included.
    const next = clientFrame(TEXT, "n".repeat(200));
    const client = await connect(server());
    for (let cut = 1; cut < next.length; cut++) {
      client.send(Buffer.concat([clientFrame(TEXT, `whole ${cut}`), next.subarray(0, cut)]));
      await expectText(client, `whole ${cut}`);
      await Bun.sleep(1);
      client.send(next.subarray(cut));
      await expectText(client, "n".repeat(200));
    }
    await closeNormally(client);
  });

  test("EOF after a whole message and one byte of the next frame: the message, then Close 1002", async () => {
    const client = await connect(server());
    client.send(Buffer.concat([clientFrame(TEXT, "last"), clientFrame(TEXT, "next").subarray(0, 1)]));
    await expectText(client, "last");
    client.shutdown();
    await expectFailed(client, 1002);
  });

  test("an unmasked frame from a client fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "hello", { mask: false });
    await expectFailed(client, 1002);
  });

  test("a 64-bit length with its most significant bit set fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(BINARY, new Uint8Array(0), { announcedLength: 2n ** 63n + 5n });
    await expectFailed(client, 1002);
  });

  test("a failed peer that keeps its socket open is cut by the server within a second", async () => {
    const client = await connect(server());
    const before = server().closes.length;
    const started = performance.now();
    client.sendFrame(TEXT, "bad", { rsv: 1 });
    expect((await client.readClose()).code).toBe(1002);
    // We neither answer nor close: the server's own socket must still go, by its close timer.
    while (server().closes.length === before) {
      if (performance.now() - started > 1500) throw new Error("the server kept the socket open");
      await Bun.sleep(10);
    }
    expect(performance.now() - started).toBeLessThan(1500);
    expect(server().closes.slice(before)).toEqual([
      { code: 1002, reason: "RSV bits 1 set with no extension", wasClean: false },
    ]);
    client.close();
  });

  test("EOF inside a frame: Close 1002, then TCP closed", async () => {
    const client = await connect(server());
    client.send(clientFrame(TEXT, "cut short").subarray(0, 8));
    await Bun.sleep(20);
    client.shutdown();
    await expectFailed(client, 1002);
  });
});

describe("2 pings and pongs", () => {
  test("a ping with no payload gets a pong with none", async () => {
    const client = await connect(server());
    client.sendFrame(PING);
    await expectFrame(client, PONG, new Uint8Array(0));
    await closeNormally(client);
  });

  test("a ping's payload comes back in the pong: text, every byte value, 125 bytes", async () => {
    const client = await connect(server());
    for (const payload of [
      utf8.encode("Hello, world!"),
      Uint8Array.from({ length: 125 }, (_, i) => 255 - i),
    ]) {
      client.sendFrame(PING, payload);
      await expectFrame(client, PONG, payload);
    }
    await closeNormally(client);
  });

  test("a 125-byte ping written one byte at a time gets its pong", async () => {
    const client = await connect(server());
    const payload = pattern(125);
    await client.sendSlowly(clientFrame(PING, payload), 1);
    await expectFrame(client, PONG, payload);
    await closeNormally(client);
  });

  test("a ping of 126 bytes fails the connection (1002), with no pong", async () => {
    const client = await connect(server());
    client.sendFrame(PING, pattern(126));
    await expectFailed(client, 1002);
  });

  test("an unsolicited pong is ignored: nothing comes back, and the connection goes on", async () => {
    const client = await connect(server());
    client.sendFrame(PONG, "unsolicited");
    await expectSilence(client);
    client.sendFrame(PONG, "again");
    client.sendFrame(PING, "ping");
    await expectFrame(client, PONG, utf8.encode("ping"));
    await closeNormally(client);
  });

  test("ten pings in a row get ten pongs, in order", async () => {
    const client = await connect(server());
    for (let index = 0; index < 10; index++) client.sendFrame(PING, `ping ${index}`);
    for (let index = 0; index < 10; index++) await expectFrame(client, PONG, utf8.encode(`ping ${index}`));
    await closeNormally(client);
  });
});

describe("3 reserved bits: set with no extension agreed, they fail the connection (1002)", () => {
  for (let rsv = 1; rsv <= 7; rsv++) {
    test(`RSV = ${rsv} on a text frame`, async () => {
      const client = await connect(server());
      client.sendFrame(TEXT, "hello", { rsv });
      await expectFailed(client, 1002);
    });
  }

  test("a message before the bad frame is echoed; a ping after it gets no pong", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "first");
    client.sendFrame(TEXT, "second", { rsv: 2 });
    client.sendFrame(PING, "after");
    const before = await expectFailed(client, 1002, 1);
    expect(before.length).toBe(1);
    expect(new TextDecoder().decode(before[0]!.payload)).toBe("first");
  });

  test("RSV on a binary frame, a ping and a close", async () => {
    for (const opcode of [BINARY, PING, CLOSE]) {
      const client = await connect(server());
      client.sendFrame(opcode, opcode === CLOSE ? Uint8Array.of(3, 0xe8) : "x", { rsv: 4 });
      await expectFailed(client, 1002);
    }
  });
});

describe("4 reserved opcodes fail the connection (1002)", () => {
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    test(`opcode ${opcode}`, async () => {
      const client = await connect(server());
      client.sendFrame(opcode, opcode < 8 ? "payload" : "");
      await expectFailed(client, 1002);
    });
  }

  test("a message before is echoed, a ping after gets no pong", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "first");
    client.sendFrame(5, "reserved");
    client.sendFrame(PING);
    const before = await expectFailed(client, 1002, 1);
    expect(before.map((frame) => frame.opcode)).toEqual([TEXT]);
  });
});

describe("5 fragmentation", () => {
  test("a fragmented ping fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(PING, "frag", { fin: false });
    client.sendFrame(CONTINUATION, "ment");
    await expectFailed(client, 1002);
  });

  test("a fragmented pong fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(PONG, "frag", { fin: false });
    await expectFailed(client, 1002);
  });

  test("a text message in two fragments comes back as one", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "fragment1", { fin: false });
    client.sendFrame(CONTINUATION, "fragment2");
    await expectText(client, "fragment1fragment2");
    await closeNormally(client);
  });

  test("a binary message in 5 fragments, some empty, comes back as one", async () => {
    const client = await connect(server());
    const data = pattern(1000);
    client.sendFrame(BINARY, data.subarray(0, 10), { fin: false });
    client.sendFrame(CONTINUATION, new Uint8Array(0), { fin: false });
    client.sendFrame(CONTINUATION, data.subarray(10, 500), { fin: false });
    client.sendFrame(CONTINUATION, data.subarray(500), { fin: false });
    client.sendFrame(CONTINUATION, new Uint8Array(0));
    await expectFrame(client, BINARY, data);
    await closeNormally(client);
  });

  test("pings between fragments are answered at once, before the message ends", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "one ", { fin: false });
    client.sendFrame(PING, "between");
    // The pong comes while the message is still open: the server does not wait for its end.
    await expectFrame(client, PONG, utf8.encode("between"));
    client.sendFrame(CONTINUATION, "two ", { fin: false });
    client.sendFrame(PONG, "unsolicited, between");
    client.sendFrame(PING, "again");
    await expectFrame(client, PONG, utf8.encode("again"));
    client.sendFrame(CONTINUATION, "three");
    await expectText(client, "one two three");
    await closeNormally(client);
  });

  test("fragments and pings written one byte at a time", async () => {
    const client = await connect(server());
    const bytes = Buffer.concat([
      clientFrame(TEXT, "slow ", { fin: false }),
      clientFrame(PING, "p"),
      clientFrame(CONTINUATION, "and steady"),
    ]);
    await client.sendSlowly(bytes, 1);
    await expectFrame(client, PONG, utf8.encode("p"));
    await expectText(client, "slow and steady");
    await closeNormally(client);
  });

  test("a continuation with no message to continue fails the connection (1002): FIN set", async () => {
    const client = await connect(server());
    client.sendFrame(CONTINUATION, "orphan");
    await expectFailed(client, 1002);
  });

  test("a continuation with no message to continue fails the connection (1002): FIN clear", async () => {
    const client = await connect(server());
    client.sendFrame(CONTINUATION, "orphan", { fin: false });
    await expectFailed(client, 1002);
  });

  test("a continuation after a whole message has ended fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "whole");
    client.sendFrame(CONTINUATION, "more");
    const before = await expectFailed(client, 1002, 1);
    expect(before.length).toBe(1);
  });

  test("a new text frame inside a fragmented text message fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "outer ", { fin: false });
    client.sendFrame(TEXT, "inner");
    client.sendFrame(CONTINUATION, "rest");
    await expectFailed(client, 1002);
  });

  test("a binary frame inside a fragmented text message fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "outer ", { fin: false });
    client.sendFrame(BINARY, "inner", { fin: false });
    await expectFailed(client, 1002);
  });

  test("a Close between fragments ends the connection cleanly (the open message is dropped)", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "never ", { fin: false });
    await closeNormally(client);
  });
});

describe("10 misc", () => {
  test("a 64 KiB text message in 1,300-byte fragments comes back whole", async () => {
    const client = await connect(server());
    const text = "abcdefghij".repeat(6554).slice(0, 65_536);
    const bytes = utf8.encode(text);
    for (let offset = 0; offset < bytes.length; offset += 1300) {
      const last = offset + 1300 >= bytes.length;
      client.sendFrame(offset === 0 ? TEXT : CONTINUATION, bytes.subarray(offset, offset + 1300), {
        fin: last,
      });
    }
    await expectText(client, text);
    await closeNormally(client);
  });

  test("a message sent with a fixed mask key of zeros (a no-op mask) still works", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "zeros", { maskKey: new Uint8Array(4) });
    await expectText(client, "zeros");
    await closeNormally(client);
  });

  test("the server's frames are never masked and never carry RSV bits", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "look");
    const frame = await client.readFrame();
    expect(frame.masked).toBe(false);
    expect(frame.rsv).toBe(0);
    await closeNormally(client);
  });
});
