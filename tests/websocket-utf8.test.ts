/**
 * UTF-8 in text messages (RFC 6455 §8.1; Autobahn group 6): lib/websocket/utf8-validator.ts on its own —
 * every boundary of RFC 3629's table, every class of invalid sequence, and the same answers as the
 * platform's strict decoder on random bytes split at random places — then over a real socket: valid text
 * split at every byte, invalid text failing with 1007, and failing *fast* — at the first bad fragment, and
 * at the first bad bytes of a frame, while the rest of the message has not been sent.
 */
import { describe, expect, test } from "bun:test";
import { isUtf8, Utf8Validator } from "../lib/websocket/utf8-validator.ts";
import {
  CONTINUATION,
  closeNormally,
  connect,
  expectFailed,
  expectText,
  TCP_CLOSE_MS,
  TEXT,
  useEchoServer,
} from "./helpers/websocket-cases.ts";
import { clientFrame, hex } from "./helpers/websocket-client.ts";

const utf8 = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Well-formed sequences at the edges of each row of RFC 3629's table. */
const VALID = [
  "00",
  "7f",
  "c2 80", // U+0080
  "df bf", // U+07FF
  "e0 a0 80", // U+0800
  "ed 9f bf", // U+D7FF, last before the surrogates
  "ee 80 80", // U+E000, first after them
  "ef bf bf", // U+FFFF
  "ef bb bf", // U+FEFF, the byte-order mark: a character like any other
  "f0 90 80 80", // U+10000
  "f4 8f bf bf", // U+10FFFF, the last code point
  "ce ba e1 bd b9 cf 83 ce bc ce b5", // κόσμε, Markus Kuhn's test word
];

/** Ill-formed sequences, one of each kind (Autobahn 6.3–6.21 draw theirs from Markus Kuhn's stress test). */
const INVALID: [string, string][] = [
  ["a stray continuation byte", "80"],
  ["a stray last continuation byte", "bf"],
  ["C0: an overlong form of ASCII", "c0 80"],
  ["C1: an overlong form of ASCII", "c1 bf"],
  ["an overlong 3-byte form (E0 80..9F)", "e0 80 80"],
  ["an overlong 3-byte U+07FF", "e0 9f bf"],
  ["an overlong 4-byte form (F0 80..8F)", "f0 80 80 80"],
  ["an overlong 4-byte U+FFFF", "f0 8f bf bf"],
  ["a high surrogate U+D800", "ed a0 80"],
  ["a low surrogate U+DFFF", "ed bf bf"],
  ["a surrogate pair encoded as two 3-byte sequences", "ed a0 80 ed b0 80"],
  ["past U+10FFFF: F4 90", "f4 90 80 80"],
  ["F5: never in UTF-8", "f5 80 80 80"],
  ["FE", "fe"],
  ["FF", "ff"],
  ["a 2-byte lead followed by ASCII", "c2 41"],
  ["a 3-byte sequence cut by ASCII", "e1 80 41"],
  ["a 4-byte sequence cut by a lead byte", "f1 80 80 c2 80"],
  ["a 5-byte form (old UTF-8)", "f8 88 80 80 80"],
  [
    "the Autobahn 6.3.1 sequence (a surrogate inside κόσμε)",
    "ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64",
  ],
];

/** Ill-formed only because they end too soon: every byte is fine until the message ends. */
const TRUNCATED: [string, string][] = [
  ["a 2-byte sequence missing its last byte", "c2"],
  ["a 3-byte sequence missing one", "e1 80"],
  ["a 4-byte sequence missing one", "f0 90 80"],
];

describe("Utf8Validator", () => {
  test("accepts every boundary of the table, whole and split at every byte", () => {
    for (const sequence of VALID) {
      const bytes = hex(sequence);
      expect(isUtf8(bytes)).toBe(true);
      const validator = new Utf8Validator();
      for (const byte of bytes) expect(validator.push(Uint8Array.of(byte))).toBe(true);
      expect(validator.end()).toBe(true);
    }
  });

  for (const [what, sequence] of INVALID) {
    test(`refuses ${what}, at the first byte that cannot be right`, () => {
      const bytes = hex(sequence);
      expect(isUtf8(bytes)).toBe(false);
      // Byte by byte: push() is true up to the bad byte, false from it, and false ever after.
      const validator = new Utf8Validator();
      let failedAt = -1;
      for (let index = 0; index < bytes.length; index++) {
        if (!validator.push(bytes.subarray(index, index + 1))) {
          failedAt = index;
          break;
        }
      }
      expect(failedAt).toBeGreaterThanOrEqual(0);
      expect(validator.push(utf8.encode("fine"))).toBe(false);
      expect(validator.end()).toBe(false);
      // The strict decoder agrees that the prefix before the bad byte could still be UTF-8.
      const prefix = bytes.subarray(0, failedAt);
      expect(() => new TextDecoder("utf-8", { fatal: true }).decode(prefix, { stream: true })).not.toThrow();
    });
  }

  for (const [what, sequence] of TRUNCATED) {
    test(`push() takes ${what}, end() refuses it`, () => {
      const validator = new Utf8Validator();
      expect(validator.push(hex(sequence))).toBe(true);
      expect(validator.end()).toBe(false);
    });
  }

  test("end() resets: the next message starts fresh", () => {
    const validator = new Utf8Validator();
    expect(validator.push(hex("ff"))).toBe(false);
    expect(validator.end()).toBe(false);
    expect(validator.push(utf8.encode("ok"))).toBe(true);
    expect(validator.end()).toBe(true);
  });

  test("agrees with the platform's strict decoder on 20,000 random byte strings split at random places", () => {
    let seed = 12345;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    // Bytes drawn mostly from the interesting ranges, so that valid multi-byte text is common too.
    const pick = [
      0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5,
      0xff,
    ];
    let valid = 0;
    for (let round = 0; round < 20_000; round++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(random() * 8) }, () =>
        random() < 0.5 ? pick[Math.floor(random() * pick.length)]! : Math.floor(random() * 256),
      );
      let expected = true;
      try {
        strict.decode(bytes);
      } catch {
        expected = false;
      }
      if (expected) valid++;
      const cut = Math.floor(random() * (bytes.length + 1));
      const validator = new Utf8Validator();
      const got =
        validator.push(bytes.subarray(0, cut)) && validator.push(bytes.subarray(cut)) && validator.end();
      if (got !== expected)
        throw new Error(`disagree on ${Buffer.from(bytes).toString("hex")} cut at ${cut}`);
    }
    expect(valid).toBeGreaterThan(1000); // the draw really exercised valid text, not only garbage
  });
});

describe("6 UTF-8 handling over a socket", () => {
  const server = useEchoServer();

  test("empty text messages, whole and in empty fragments", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "");
    await expectText(client, "");
    client.sendFrame(TEXT, "", { fin: false });
    client.sendFrame(CONTINUATION, "", { fin: false });
    client.sendFrame(CONTINUATION, "");
    await expectText(client, "");
    await closeNormally(client);
  });

  test("valid text split into two fragments at every byte boundary comes back whole", async () => {
    const client = await connect(server());
    const text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 ✓";
    const bytes = utf8.encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      client.sendFrame(TEXT, bytes.subarray(0, cut), { fin: false });
      client.sendFrame(CONTINUATION, bytes.subarray(cut));
      await expectText(client, text);
    }
    await closeNormally(client);
  });

  test("valid text in one-byte fragments, and one frame written a byte at a time", async () => {
    const client = await connect(server());
    const text = "κόσμε 𝄞 \u{10FFFF}";
    const bytes = utf8.encode(text);
    for (let index = 0; index < bytes.length; index++) {
      client.sendFrame(index === 0 ? TEXT : CONTINUATION, bytes.subarray(index, index + 1), {
        fin: index === bytes.length - 1,
      });
    }
    await expectText(client, text);
    await client.sendSlowly(clientFrame(TEXT, text), 1);
    await expectText(client, text);
    await closeNormally(client);
  });

  test("every boundary code point comes back, and a leading byte-order mark is kept", async () => {
    const client = await connect(server());
    for (const sequence of VALID) {
      const bytes = hex(sequence);
      client.sendFrame(TEXT, bytes);
      await expectText(client, strict.decode(bytes));
    }
    client.sendFrame(TEXT, "\uFEFFbom");
    const frame = await client.readFrame();
    expect(Buffer.from(frame.payload).toString("hex")).toBe("efbbbf626f6d");
    await closeNormally(client);
  });

  for (const [what, sequence] of [...INVALID, ...TRUNCATED]) {
    test(`${what}: in one frame, 1007`, async () => {
      const client = await connect(server());
      client.sendFrame(TEXT, Buffer.concat([utf8.encode("ok "), hex(sequence), utf8.encode(" end")]));
      await expectFailed(client, 1007);
    });
  }

  test("invalid text split across fragments inside the bad sequence: 1007", async () => {
    for (const [, sequence] of INVALID.filter(([, s]) => s.length > 2)) {
      const client = await connect(server());
      const bytes = hex(sequence);
      client.sendFrame(TEXT, bytes.subarray(0, 1), { fin: false });
      client.sendFrame(CONTINUATION, bytes.subarray(1));
      await expectFailed(client, 1007);
    }
  });

  test("a message that ends inside a code point fails with 1007 at its last fragment", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, hex("ce ba e1"), { fin: false });
    client.sendFrame(CONTINUATION, hex("bd"));
    await expectFailed(client, 1007);
  });

  test("fail fast (6.4.1): the fragment with the bad bytes fails it, before the last fragment is sent", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, hex("ce ba e1 bd b9 cf 83 ce bc ce b5"), { fin: false });
    await Bun.sleep(50);
    expect(client.pendingBytes).toBe(0); // valid so far: nothing from the server
    client.sendFrame(CONTINUATION, hex("f4 90 80 80"), { fin: false });
    // The final fragment is never sent: the Close must come anyway.
    await expectFailed(client, 1007);
  });

  test("fail fast (6.4.2): the bad byte completes a split code point in the second fragment", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, hex("ce ba e1 bd b9 cf 83 ce bc ce b5 f4"), { fin: false });
    await Bun.sleep(50);
    expect(client.pendingBytes).toBe(0);
    client.sendFrame(CONTINUATION, hex("90"), { fin: false });
    await expectFailed(client, 1007);
  });

  test("fail fast (6.4.3): inside one frame, at the bad bytes, before the frame's end is sent", async () => {
    const client = await connect(server());
    const good = hex("ce ba e1 bd b9 cf 83 ce bc ce b5");
    const bad = hex("f4 90 80 80");
    const rest = utf8.encode("edited and much more text that never arrives");
    const frame = clientFrame(TEXT, Buffer.concat([good, bad, rest]));
    const header = frame.length - good.length - bad.length - rest.length;
    client.send(frame.subarray(0, header + good.length));
    await Bun.sleep(50);
    expect(client.pendingBytes).toBe(0);
    client.send(frame.subarray(header + good.length, header + good.length + bad.length));
    const started = performance.now();
    await expectFailed(client, 1007);
    expect(performance.now() - started).toBeLessThan(TCP_CLOSE_MS);
  });
});
