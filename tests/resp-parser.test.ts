import { describe, expect, test } from "bun:test";
import {
  OversizedBulk,
  RedisReplyError,
  RespParser,
  RespProtocolError,
  type RespValue,
} from "../lib/chat-cluster/resp-parser.ts";

const encode = (value: unknown): string =>
  typeof value === "string"
    ? `$${Buffer.byteLength(value)}\r\n${value}\r\n`
    : `*${(value as unknown[]).length}\r\n${(value as unknown[]).map(encode).join("")}`;

/** Feeds `text` in chunks of `size` bytes; returns every reply with the number of arrays cut. */
function parse(text: string, size: number, limits = { maxBulkBytes: 1 << 20, maxReplyBytes: 1 << 24 }) {
  const parser = new RespParser(limits);
  const bytes = new TextEncoder().encode(text);
  const replies: [RespValue, number][] = [];
  for (let i = 0; i < bytes.length; i += size) {
    parser.feed(bytes.subarray(i, i + size), (value, cut) => replies.push([value, cut.size]));
  }
  return replies;
}

describe("RESP2 replies, read incrementally and within bounds", () => {
  test("every type, split at every possible point, gives the same replies", () => {
    const text = `+OK\r\n-WRONGTYPE Operation against a key\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n${encode(["a", ["é", "ü"], ""])}`;
    for (const size of [1, 2, 3, 7, text.length]) {
      const replies = parse(text, size).map(([value]) => value);
      expect(replies.slice(2)).toEqual([42, null, null, [], ["a", ["é", "ü"], ""]]);
      expect(replies[0]).toBe("OK");
      expect(replies[1]).toBeInstanceOf(RedisReplyError);
      expect((replies[1] as RedisReplyError).code).toBe("WRONGTYPE");
    }
  });

  test("a bulk string over the limit is counted off, never stored: its length only", () => {
    const big = "x".repeat(5000);
    for (const size of [1000, 4096, 100_000]) {
      const [[value]] = parse(encode(["1-0", ["line", big]]), size, {
        maxBulkBytes: 100,
        maxReplyBytes: 1 << 20,
      }) as [[RespValue[], number]];
      const fields = (value as RespValue[])[1] as RespValue[];
      expect(fields[0]).toBe("line");
      expect(fields[1]).toBeInstanceOf(OversizedBulk);
      expect((fields[1] as OversizedBulk).bytes).toBe(5000);
    }
  });

  test("past the reply budget, the rest is discarded and the arrays left incomplete are listed", () => {
    const entries = Array.from({ length: 10 }, (_, i) => [`1-${i}`, ["line", "y".repeat(1000)]]);
    const text = encode([["key", entries]]) + encode(["after"]);
    for (const size of [7, 500, text.length]) {
      const replies = parse(text, size, { maxBulkBytes: 2000, maxReplyBytes: 3500 });
      const [value, cutArrays] = replies[0]!;
      const kept = ((value as RespValue[])[0] as RespValue[])[1] as RespValue[];
      expect(kept.length).toBeGreaterThanOrEqual(3);
      expect(kept.length).toBeLessThan(10);
      expect(cutArrays).toBeGreaterThan(0);
      expect(replies[1]).toEqual([["after"], 0]); // the next reply starts fresh
    }
  });

  test("`*2000000000` allocates nothing up front; garbage and over-long lines are protocol errors", () => {
    const parser = new RespParser({ maxBulkBytes: 100, maxReplyBytes: 1000 });
    const before = process.memoryUsage().rss;
    parser.feed(new TextEncoder().encode("*2000000000\r\n"), () => {});
    expect(process.memoryUsage().rss - before).toBeLessThan(50 * 1024 * 1024);
    expect(() => parse("HTTP/1.1 400 Bad Request\r\n", 100)).toThrow(RespProtocolError);
    expect(() => parse(`+${"z".repeat(70 * 1024)}`, 1024)).toThrow(/RESP line over/);
  });
});
