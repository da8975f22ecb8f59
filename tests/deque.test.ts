import { describe, expect, test } from "bun:test";
import { Deque } from "../lib/deque.ts";

describe("Deque", () => {
  test("keeps the newest maxLength items in order, dropping the oldest", () => {
    const deque = new Deque<number>(3);
    const dropped = [1, 2, 3, 4, 5].map((n) => deque.push(n));
    expect([...deque]).toEqual([3, 4, 5]);
    expect(dropped).toEqual([undefined, undefined, undefined, 1, 2]);
    expect(deque.at(0)).toBe(3);
    expect(deque.at(3)).toBeUndefined();
    expect(deque.length).toBe(3);
  });

  test("can be cleared and refilled", () => {
    const deque = new Deque<string>(2);
    deque.push("a");
    deque.clear();
    deque.push("b");
    expect([...deque]).toEqual(["b"]);
  });

  test("refuses a maxLength that is not a positive integer, and has nothing at a negative index", () => {
    expect(() => new Deque(0)).toThrow(RangeError);
    expect(() => new Deque(1.5)).toThrow("maxLength must be a positive integer");
    const deque = new Deque<number>(2);
    deque.push(1);
    expect(deque.at(-1)).toBeUndefined();
  });
});
