/**
 * lib/websocket/frames.ts: the server's encoders byte for byte (§5.2), the batch encoder's one buffer and
 * its line starts, unmasking (word-at-a-time and byte-at-a-time must agree at every length and offset),
 * a frame taken from what is buffered (takeFrameHeader, takeFramePayload) or waited for where it is cut,
 * and readFrame on a real socket — one frame, its limit, and what it refuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { StreamReader, type StreamServer, startServer } from "../lib/streams.ts";
import {
  encodeFrame,
  encodeTextFrame,
  encodeTextFrames,
  FrameError,
  MAX_CONTROL_PAYLOAD_BYTES,
  Opcode,
  readFrame,
  readFrameHeaderRest,
  takeFrameHeader,
  takeFramePayload,
  textFrameStarts,
  unmask,
} from "../lib/websocket/frames.ts";
import { LineClient } from "./helpers/servers.ts";
import { clientFrame } from "./helpers/websocket-client.ts";

const utf8 = new TextEncoder();

describe("encoding server frames", () => {
  test("7-, 16- and 64-bit lengths, FIN and opcode, never a mask", () => {
    expect([...encodeFrame(Opcode.TEXT, utf8.encode("Hello"))]).toEqual([
      0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
    ]);
    expect([...encodeFrame(Opcode.BINARY, new Uint8Array(0), false)]).toEqual([0x02, 0x00]);
    expect([...encodeFrame(Opcode.BINARY, new Uint8Array(126)).subarray(0, 4)]).toEqual([
      0x82, 126, 0x00, 126,
    ]);
    expect([...encodeFrame(Opcode.BINARY, new Uint8Array(65_535)).subarray(0, 4)]).toEqual([
      0x82, 126, 0xff, 0xff,
    ]);
    const big = encodeFrame(Opcode.BINARY, new Uint8Array(65_536));
    expect([...big.subarray(0, 10)]).toEqual([0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(big.length).toBe(10 + 65_536);
  });

  test("a control frame over 125 bytes or fragmented is refused", () => {
    expect(encodeFrame(Opcode.PING, new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES)).length).toBe(127);
    expect(() => encodeFrame(Opcode.PING, new Uint8Array(126))).toThrow(RangeError);
    expect(() => encodeFrame(Opcode.CLOSE, new Uint8Array(0), false)).toThrow(RangeError);
  });

  test("encodeTextFrame equals encodeFrame of the UTF-8, for every length form", () => {
    // Either side of where a short text is encoded first and copied (1,024 UTF-16 units), in 1 to 4 bytes a character.
    const edges = ["a", "é", "€", "😀"].flatMap((c) => [
      c.repeat(1024 / c.length),
      c.repeat(1024 / c.length + 1),
    ]);
    for (const text of ["", "κόσμε", "x".repeat(125), "é".repeat(63), "y".repeat(70_000), ...edges]) {
      expect(Buffer.compare(encodeTextFrame(text), encodeFrame(Opcode.TEXT, utf8.encode(text)))).toBe(0);
    }
  });

  test("encodeTextFrames: all-ASCII batches and ones with UTF-8, every length form, empty lines", () => {
    for (const lines of [
      ["a", "", "b".repeat(126), "c".repeat(70_000), "", "d"],
      ["κόσμε", "", "e".repeat(126), "é".repeat(40_000), "𝄞"],
      [],
    ]) {
      const { bytes, starts } = encodeTextFrames(lines);
      expect(textFrameStarts(lines)).toEqual(starts);
      const frames = lines.map(encodeTextFrame);
      expect(Buffer.compare(bytes, Buffer.concat(frames))).toBe(0);
      expect(starts.map((start, index) => bytes.subarray(start, start + frames[index]!.length))).toEqual(
        frames,
      );
    }
  });

  test("encodeTextFrames: one buffer, the frames back to back, starts where each begins", () => {
    const lines = ["alice: hi", "", "bob: κόσμε 𝄞", "z".repeat(300)];
    const { bytes, starts } = encodeTextFrames(lines);
    const expected = lines.map((line) => encodeFrame(Opcode.TEXT, utf8.encode(line)));
    expect(Buffer.compare(bytes, Buffer.concat(expected))).toBe(0);
    let offset = 0;
    expect(starts).toEqual(
      expected.map((frame) => {
        const start = offset;
        offset += frame.length;
        return start;
      }),
    );
    // A late joiner's tail is whole frames too.
    expect(Buffer.compare(bytes.subarray(starts[2]), Buffer.concat(expected.slice(2)))).toBe(0);
  });
});

describe("unmask", () => {
  test("the word and unrolled paths agree with a byte loop at every length around both, every offset, aligned or not", () => {
    const mask = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
    const lengths = [
      ...Array.from({ length: 41 }, (_, n) => n),
      ...Array.from({ length: 21 }, (_, n) => 1014 + n),
      4099,
    ];
    for (const length of lengths) {
      for (const offset of [0, 1, 2, 3, 5]) {
        for (const shift of [0, 1]) {
          const data = Uint8Array.from({ length }, (_, index) => (index * 13 + length) & 0xff);
          // `shift` 1 puts the payload off a 4-byte boundary of its buffer: the byte path then.
          const backing = new Uint8Array(length + 4);
          const payload = backing.subarray(shift, shift + length);
          payload.set(data);
          unmask(payload, mask, offset);
          const expected = data.map((byte, index) => byte ^ mask[(index + offset) & 3]!);
          if (Buffer.compare(payload, expected) !== 0) throw new Error(`length ${length}, offset ${offset}`);
        }
      }
    }
  });

  test("unmasking twice gives the bytes back (masking is the same XOR)", () => {
    const data = Uint8Array.from({ length: 1000 }, (_, index) => index & 0xff);
    const copy = data.slice();
    const mask = Uint8Array.of(1, 2, 3, 4);
    unmask(copy, mask);
    expect(Buffer.compare(copy, data)).not.toBe(0);
    unmask(copy, mask);
    expect(Buffer.compare(copy, data)).toBe(0);
  });
});

describe("a frame taken from the buffer, or waited for where it is cut", () => {
  /** A reader holding `bytes`, with the frame's first two bytes read already (as WebSocketConnection does). */
  function afterFirstTwo(bytes: Uint8Array): { reader: StreamReader; first: Uint8Array } {
    const reader = new StreamReader();
    reader.feedData(bytes);
    return { reader, first: reader.tryReadExactly(2)! };
  }

  test("a frame here whole is taken at once, for each length form", () => {
    for (const size of [5, 126, 70_000]) {
      const payload = new Uint8Array(size).map((_, index) => index * 7);
      const { reader, first } = afterFirstTwo(clientFrame(Opcode.BINARY, payload));
      const header = takeFrameHeader(first, reader)!;
      expect({ fin: header.fin, opcode: header.opcode, length: header.length }).toEqual({
        fin: true,
        opcode: Opcode.BINARY,
        length: size,
      });
      expect(Buffer.compare(takeFramePayload(reader, header)!, payload)).toBe(0);
      expect(reader.bufferedBytes).toBe(0);
    }
  });

  test("cut in the header: null, nothing more consumed, and readFrameHeaderRest waits for the rest", async () => {
    const frame = clientFrame(Opcode.TEXT, "x".repeat(300)); // 2 + 2 (16-bit length) + 4 (mask) + 300
    const { reader, first } = afterFirstTwo(frame.subarray(0, 5));
    expect(takeFrameHeader(first, reader)).toBeNull();
    expect(reader.bufferedBytes).toBe(3);
    const header = readFrameHeaderRest(first, reader);
    reader.feedData(frame.subarray(5, 100));
    expect((await header).length).toBe(300);
    // Cut in the payload: null, and the payload's bytes stay buffered for the awaited read.
    expect(takeFramePayload(reader, await header)).toBeNull();
    expect(reader.bufferedBytes).toBe(92);
  });

  test("first bytes that break the rules are refused before the rest of the header arrives", () => {
    for (const [frame, message] of [
      [clientFrame(Opcode.TEXT, "x", { mask: false }), "unmasked frame from a client"],
      [clientFrame(Opcode.PING, "x", { fin: false }), "fragmented control frame"],
    ] as const) {
      const { reader, first } = afterFirstTwo(frame.subarray(0, 2));
      expect(() => takeFrameHeader(first, reader)).toThrow(message);
    }
  });

  test("EOF inside the rest of the header is a truncated frame (1002)", async () => {
    const { reader, first } = afterFirstTwo(clientFrame(Opcode.TEXT, "cut").subarray(0, 4));
    expect(takeFrameHeader(first, reader)).toBeNull();
    reader.feedEof();
    const error = await readFrameHeaderRest(first, reader).catch((e) => e);
    expect(error).toBeInstanceOf(FrameError);
    expect(error.closeCode).toBe(1002);
    expect(error.message).toBe("connection closed inside a frame");
  });
});

describe("readFrame on a socket", () => {
  let server: StreamServer;
  beforeAll(async () => {
    // Reads frames (limit 1,000 bytes) and writes each back as a JSON line, or the FrameError and closes.
    server = await startServer(async (reader, writer) => {
      for (;;) {
        try {
          const frame = await readFrame(reader, 1000);
          if (frame === null) {
            writer.write("eof\n");
            writer.close();
            return;
          }
          writer.write(`${JSON.stringify({ ...frame, payload: new TextDecoder().decode(frame.payload) })}\n`);
        } catch (error) {
          if (!(error instanceof FrameError)) throw error;
          writer.write(`${JSON.stringify({ closeCode: error.closeCode, message: error.message })}\n`);
          writer.close();
          return;
        }
      }
    });
  });
  afterAll(() => server.close(true));

  async function read(...frames: Uint8Array[]): Promise<unknown[]> {
    const client = await LineClient.connect(server.port);
    for (const frame of frames) client.send(frame);
    client.writer.writeEof();
    const lines = await client.rest(3000);
    client.close();
    return lines.map((line) => (line === "eof" ? "eof" : JSON.parse(line)));
  }

  test("frames, unmasked, then null at a clean EOF", async () => {
    expect(
      await read(clientFrame(1, "héllo"), clientFrame(0, "", { fin: false }), clientFrame(9, "p")),
    ).toEqual([
      { fin: true, opcode: 1, payload: "héllo" },
      { fin: false, opcode: 0, payload: "" },
      { fin: true, opcode: 9, payload: "p" },
      "eof",
    ]);
  });

  test("the limit: 1,000 bytes read, 1,001 refused (1009) from the header alone", async () => {
    expect(await read(clientFrame(2, "a".repeat(1000)))).toMatchObject([
      { payload: "a".repeat(1000) },
      "eof",
    ]);
    expect(await read(clientFrame(2, new Uint8Array(0), { announcedLength: 1001n }))).toEqual([
      { closeCode: 1009, message: "message of 1001 bytes is over the limit of 1000 bytes" },
    ]);
    expect(await read(clientFrame(2, new Uint8Array(0), { announcedLength: 2n ** 62n }))).toEqual([
      { closeCode: 1009, message: "message of more than 2^53 bytes is over the limit of 1000 bytes" },
    ]);
  });

  test("what it refuses with 1002, and why", async () => {
    const cases: [Uint8Array, string][] = [
      [clientFrame(1, "x", { mask: false }), "unmasked frame from a client"],
      [clientFrame(1, "x", { rsv: 4 }), "RSV bits 4 set with no extension"],
      [clientFrame(3, "x"), "reserved opcode 3"],
      [clientFrame(11, "x"), "reserved opcode 11"],
      [clientFrame(9, "x", { fin: false }), "fragmented control frame"],
      [clientFrame(9, new Uint8Array(126)), "control frame of more than 125 bytes"],
      [
        clientFrame(2, new Uint8Array(0), { announcedLength: 2n ** 63n }),
        "64-bit payload length with its most significant bit set",
      ],
      [clientFrame(1, "cut").subarray(0, 5), "connection closed inside a frame"],
      [clientFrame(1, "x").subarray(0, 1), "connection closed inside a frame"],
    ];
    for (const [frame, message] of cases) expect(await read(frame)).toEqual([{ closeCode: 1002, message }]);
  });
});
