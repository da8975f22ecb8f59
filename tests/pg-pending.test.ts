import { describe, expect, test } from "bun:test";
import { type Pending, PendingQueue } from "../lib/pg/pending.ts";

function closeQuery(): Pending {
  return { kind: "close", error: null, resolve: () => {}, reject: () => {} };
}

describe("PendingQueue: the queries in flight, answered in the order written", () => {
  test("the head is the oldest; push says how many are in flight; shift takes them in order", () => {
    const queue = new PendingQueue();
    const [a, b, c] = [closeQuery(), closeQuery(), closeQuery()];
    expect(queue.head).toBeUndefined();
    expect(queue.push(a)).toBe(1);
    expect(queue.push(b)).toBe(2);
    expect(queue.head).toBe(a);
    expect(queue.shift()).toBe(a);
    expect(queue.push(c)).toBe(2);
    expect(queue.head).toBe(b);
    expect(queue.shift()).toBe(b);
    expect(queue.shift()).toBe(c);
    expect(queue.shift()).toBeUndefined(); // empty: the startup's ReadyForQuery finds nothing
    expect(queue.push(a)).toBe(1); // emptied and reused
  });

  test("drain empties the queue and returns what was in flight, oldest first", () => {
    const queue = new PendingQueue();
    const [a, b, c] = [closeQuery(), closeQuery(), closeQuery()];
    queue.push(a);
    queue.push(b);
    queue.push(c);
    queue.shift();
    expect(queue.drain()).toEqual([b, c]);
    expect(queue.head).toBeUndefined();
    expect(queue.drain()).toEqual([]);
  });
});
