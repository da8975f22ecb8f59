import { describe, expect, test } from "bun:test";
import {
  compareStreamIds,
  decodeXreadReply,
  encodeEntry,
  MAX_ENTRY_LINE_BYTES,
} from "../lib/chat-cluster/room-entry.ts";

const KEY = "chat:room";
/** An XREAD reply as RESP2 gives it (lesson 07's own RESP connection): `[[key, [[id, fields], …]]]`. */
const reply = (...entries: [string, unknown][]) => [[KEY, entries]];

describe("room entries in a Redis stream", () => {
  test("an entry made by encodeEntry reads back as the same line, node and sequence number", () => {
    const batch = decodeXreadReply(reply(["5-1", encodeEntry("ann: hi", "node-a", 7)]), KEY);
    expect(batch).toEqual({
      entries: [{ id: "5-1", line: "ann: hi", node: "node-a", seq: 7 }],
      skipped: [],
      lastId: "5-1",
    });
  });

  test("the notices the Lua scripts add (no seq) read back with seq 0", () => {
    const batch = decodeXreadReply(reply(["6-0", ["line", "* bob left (server lost)", "node", "b"]]), KEY);
    expect(batch.entries).toEqual([{ id: "6-0", line: "* bob left (server lost)", node: "b", seq: 0 }]);
  });

  test("entries that are not the room's are skipped with a reason, and the position still moves past them", () => {
    const batch = decodeXreadReply(
      reply(
        ["1-0", ["text", "hello"]],
        ["2-0", ["line", "odd"]],
        ["3-0", ["line", "x", "node", "n", "colour", "red"]],
        ["4-0", ["line", "beep \u0007", "node", "n"]],
        ["5-0", ["line", "x".repeat(MAX_ENTRY_LINE_BYTES + 1), "node", "n"]],
        ["6-0", ["line", "", "node", "n"]],
        ["7-0", ["line", "bad \uFFFD bytes", "node", "n"]],
        ["8-0", ["line", "x", "node", "n", "seq", "-1"]],
        ["9-0", "not a list"],
        ["10-0", ["line", "fine", "node", "n"]],
      ),
      KEY,
    );
    expect(batch.entries.map((entry) => entry.line)).toEqual(["fine"]);
    expect(batch.skipped.map((skip) => skip.id)).toEqual([
      "1-0",
      "2-0",
      "3-0",
      "4-0",
      "5-0",
      "6-0",
      "7-0",
      "8-0",
      "9-0",
    ]);
    expect(batch.skipped[2]!.reason).toBe('unknown field "colour"');
    expect(batch.lastId).toBe("10-0");
  });

  test("a timed-out XREAD (null) or an entry without a stream ID gives no entries, no position, no complaint", () => {
    for (const nothing of [null, reply(["not-an-id", []])]) {
      expect(decodeXreadReply(nothing, KEY)).toEqual({ entries: [], skipped: [], lastId: null });
    }
  });

  test("another stream's reply or a malformed one gives no entries and no position, and says why", () => {
    for (const wrong of [undefined, {}, [["other", []]], [[KEY, "garbage"]], "garbage", 42]) {
      const batch = decodeXreadReply(wrong, KEY);
      expect(batch.entries).toEqual([]);
      expect(batch.lastId).toBeNull();
      expect(batch.malformed).toStartWith("a reply that is not an XREAD reply for chat:room");
    }
  });

  test("stream IDs order by milliseconds, then by sequence — as numbers, not as text", () => {
    expect(compareStreamIds("10-0", "9-0")).toBeGreaterThan(0);
    expect(compareStreamIds("5-10", "5-9")).toBeGreaterThan(0);
    expect(compareStreamIds("5-1", "5-1")).toBe(0);
    expect(compareStreamIds("1795757633331-0", "1795757633331-1")).toBeLessThan(0);
  });
});
