/**
 * bench/websocket-frames.ts — the two loops every byte of a client's WebSocket message goes through, with
 * and without their speed tricks: unmasking (lib/websocket/frames.ts: a 32-bit word at a time, against a
 * byte loop), and the UTF-8 check (lib/websocket/utf8-validator.ts: an ASCII run skipped one comparison
 * a byte, against the platform's native strict TextDecoder, which also builds the string) — and the
 * broadcast batch encoder against lesson 05's newline framing.
 */
import { encodeTextFrame, encodeTextFrames, unmask } from "../lib/websocket/frames.ts";
import { Utf8Validator } from "../lib/websocket/utf8-validator.ts";
import { compare, report } from "./measure.ts";

const MASK = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
/** Bytes processed per round: 32 MiB. */
const ROUND_BYTES = 32 * 1024 * 1024;

/** The plain loop: one XOR per byte, as §5.3 writes it. */
function unmaskBytewise(payload: Uint8Array, mask: Uint8Array): void {
  for (let index = 0; index < payload.length; index++) payload[index]! ^= mask[index & 3]!;
}

async function benchUnmask(payloadBytes: number, rounds: number): Promise<void> {
  const payloads = Array.from({ length: Math.max(1, ROUND_BYTES / payloadBytes) }, () =>
    new Uint8Array(payloadBytes).fill(0x61),
  );
  const megabytes = (payloads.length * payloadBytes) / 1e6;
  const results = await compare(
    [
      {
        name: "unmask (word at a time)",
        run: async () => {
          for (const payload of payloads) unmask(payload, MASK);
          return megabytes;
        },
      },
      {
        name: "byte loop (as §5.3 writes it)",
        run: async () => {
          for (const payload of payloads) unmaskBytewise(payload, MASK);
          return megabytes;
        },
      },
    ],
    rounds,
  );
  report(
    `unmasking ${payloads.length} payloads of ${payloadBytes} bytes`,
    "MB/s",
    results,
    "unmask (word at a time)",
  );
}

async function benchUtf8(name: string, text: string, rounds: number): Promise<void> {
  const bytes = new TextEncoder().encode(text.repeat(Math.ceil(ROUND_BYTES / Buffer.byteLength(text))));
  const megabytes = bytes.length / 1e6;
  const strict = new TextDecoder("utf-8", { fatal: true });
  const results = await compare(
    [
      {
        name: "Utf8Validator (64 KiB pieces)",
        run: async () => {
          const validator = new Utf8Validator();
          for (let offset = 0; offset < bytes.length; offset += 65_536) {
            if (!validator.push(bytes.subarray(offset, offset + 65_536))) throw new Error("invalid?");
          }
          if (!validator.end()) throw new Error("invalid?");
          return megabytes;
        },
      },
      {
        name: "TextDecoder fatal (whole)",
        run: async () => {
          strict.decode(bytes);
          return megabytes;
        },
      },
    ],
    rounds,
  );
  report(
    `UTF-8 check of ${megabytes.toFixed(0)} MB of ${name}`,
    "MB/s",
    results,
    "Utf8Validator (64 KiB pieces)",
  );
}

/**
 * A broadcast batch as WebSocket frames, against the same batch as lesson 05's newline-framed bytes (one
 * TextEncoder pass over the joined lines) and against one frame per line joined afterwards.
 */
async function benchBatch(kind: string, word: string, rounds: number): Promise<void> {
  const batches = Array.from({ length: 2000 }, (_, batch) =>
    Array.from(
      { length: 50 },
      (_, line) => `user${line}: message ${batch}, ${word} ${"x".repeat(line % 40)}`,
    ),
  );
  const utf8 = new TextEncoder();
  const lines = batches.length * 50;
  const results = await compare(
    [
      {
        name: "encodeTextFrames (one buffer)",
        run: async () => {
          for (const batch of batches) encodeTextFrames(batch);
          return lines;
        },
      },
      {
        name: "newline-framed (lesson 05)",
        run: async () => {
          for (const batch of batches) utf8.encode(`${batch.join("\n")}\n`);
          return lines;
        },
      },
      {
        name: "a frame per line, then joined",
        run: async () => {
          for (const batch of batches) Buffer.concat(batch.map(encodeTextFrame));
          return lines;
        },
      },
    ],
    rounds,
  );
  report(
    `encoding broadcast batches of 50 chat lines, ${kind}`,
    "lines/s",
    results,
    "encodeTextFrames (one buffer)",
  );
}

export async function benchWebSocketFrames(rounds = 5): Promise<void> {
  await benchBatch("ASCII", "kosme", rounds);
  await benchBatch("some UTF-8", "κόσμε", rounds);
  await benchUnmask(64 * 1024, rounds);
  await benchUnmask(1024, rounds);
  await benchUnmask(256, rounds);
  await benchUnmask(64, rounds);
  await benchUtf8("ASCII chat lines", "alice: see you at the station at 10?\n", rounds);
  await benchUtf8("mixed text (κόσμε, 日本語, 🎉)", "κόσμε 日本語 🎉 and some ascii words too\n", rounds);
}

if (import.meta.main) await benchWebSocketFrames();
