/**
 * bench/lines.ts — lib/lines' LineDecoder against node:readline, framing the same in-memory stream of
 * 64 KiB chunks (about 32 MB of text lines of varied length, some multi-byte UTF-8).
 */

import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { LineDecoder } from "../lib/lines.ts";
import { compare, report } from "./measure.ts";

const CHUNK_BYTES = 64 * 1024;

function makeChunks(totalBytes: number): { chunks: Uint8Array[]; lines: number } {
  const words = ["alpha", "beta", "gamma", "délta", "日本語", "🎉", "the", "quick", "brown", "fox"];
  const parts: string[] = [];
  let size = 0;
  let lines = 0;
  for (let i = 0; size < totalBytes; i++) {
    const line = `${i}: ${Array.from({ length: 3 + (i % 17) }, (_, k) => words[(i + k) % words.length]).join(" ")}\n`;
    parts.push(line);
    size += Buffer.byteLength(line);
    lines++;
  }
  const bytes = new TextEncoder().encode(parts.join(""));
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES)
    chunks.push(bytes.subarray(offset, offset + CHUNK_BYTES));
  return { chunks, lines };
}

export async function benchLines(rounds = 7): Promise<void> {
  const { chunks, lines } = makeChunks(32 * 1024 * 1024);
  const totalBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const check = (seen: number) => {
    if (seen !== lines) throw new Error(`expected ${lines} lines, saw ${seen}`);
    return totalBytes / 1e6;
  };
  const results = await compare(
    [
      {
        name: "LineDecoder (lib/lines)",
        run: async () => {
          let seen = 0;
          const decoder = new LineDecoder({ onLine: () => void seen++ });
          for (const chunk of chunks) decoder.push(chunk);
          decoder.end();
          return check(seen);
        },
      },
      {
        name: "node:readline",
        run: async () => {
          let seen = 0;
          const input = Readable.from(
            chunks.map((chunk) => Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)),
          );
          for await (const _line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) seen++;
          return check(seen);
        },
      },
    ],
    rounds,
  );
  report(
    `line framing, ${(totalBytes / 1e6).toFixed(0)} MB in 64 KiB chunks, ${lines} lines`,
    "MB/s",
    results,
    "LineDecoder (lib/lines)",
    {
      "node:readline": 3,
    },
  );
}

if (import.meta.main) await benchLines();
