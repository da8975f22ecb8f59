import { describe, expect, test } from "bun:test";
import { concat } from "../lib/bytes.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

describe("concat", () => {
  test("joins chunks in order, counting them itself or trusting the given total", () => {
    const chunks = [bytes(1, 2), bytes(), bytes(3), bytes(4, 5, 6)];
    expect(concat(chunks)).toEqual(bytes(1, 2, 3, 4, 5, 6));
    expect(concat(chunks, 6)).toEqual(bytes(1, 2, 3, 4, 5, 6));
  });

  test("returns a single chunk as it is, and an empty buffer for none", () => {
    const only = bytes(7, 8);
    expect(concat([only])).toBe(only);
    expect(concat([])).toEqual(bytes());
  });

  test("leaves the chunks untouched", () => {
    const first = bytes(1);
    const joined = concat([first, bytes(2)]);
    joined[0] = 9;
    expect(first).toEqual(bytes(1));
  });
});
