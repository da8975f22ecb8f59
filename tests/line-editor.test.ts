import { describe, expect, test } from "bun:test";
import type { Key } from "../lib/cbreak.ts";
import { applyKey, type EditorState, MAX_INPUT_CHARS } from "../lib/line-editor.ts";

function type(keys: Key[], start: EditorState = { text: "", cursor: 0 }) {
  let state = start;
  const submitted: string[] = [];
  for (const key of keys) {
    const result = applyKey(state, key);
    state = result.state;
    if (result.submitted !== undefined) submitted.push(result.submitted);
  }
  return { state, submitted };
}

const text = (value: string): Key => ({ kind: "text", text: value });

describe("the line editor", () => {
  test("inserts at the cursor and submits on Enter, leaving an empty line", () => {
    const { state, submitted } = type([text("helo"), { kind: "left" }, text("l"), { kind: "enter" }]);
    expect(submitted).toEqual(["hello"]);
    expect(state).toEqual({ text: "", cursor: 0 });
  });

  test("Backspace removes one whole character: a multi-byte one, an emoji, a flag", () => {
    expect(type([text("aé"), { kind: "backspace" }]).state).toEqual({ text: "a", cursor: 1 });
    expect(type([text("a🎉"), { kind: "backspace" }]).state).toEqual({ text: "a", cursor: 1 });
    expect(type([text("a🇫🇷"), { kind: "backspace" }]).state).toEqual({ text: "a", cursor: 1 });
    expect(type([text("e\u0301"), { kind: "backspace" }]).state).toEqual({ text: "", cursor: 0 });
  });

  test("Left/Right step over whole characters; Home/End jump", () => {
    const { state } = type([text("🎉x"), { kind: "home" }, { kind: "right" }]);
    expect(state.cursor).toBe(2);
    expect(type([text("ab"), { kind: "home" }, { kind: "end" }]).state.cursor).toBe(2);
  });

  test("a paste becomes one line of text", () => {
    expect(type([{ kind: "paste", text: "select 1\nfrom t\n" }]).state.text).toBe("select 1 from t");
  });

  test("Ctrl+D ends input only on an empty line", () => {
    expect(applyKey({ text: "", cursor: 0 }, { kind: "eof" }).endOfInput).toBe(true);
    expect(applyKey({ text: "ab", cursor: 0 }, { kind: "eof" })).toEqual({ state: { text: "b", cursor: 0 } });
  });

  test("Ctrl+C is reported, not typed", () => {
    expect(applyKey({ text: "x", cursor: 1 }, { kind: "interrupt" }).interrupted).toBe(true);
  });

  test("keeps at most MAX_INPUT_CHARS of text: a longer paste is cut", () => {
    const { state } = type([text("ab"), { kind: "paste", text: "x".repeat(MAX_INPUT_CHARS) }]);
    expect(state.text.length).toBe(MAX_INPUT_CHARS);
    expect(state.text.startsWith("abx")).toBe(true);
    expect(state.cursor).toBe(MAX_INPUT_CHARS);
  });

  test("Up and Down change nothing (there is no history)", () => {
    expect(applyKey({ text: "ab", cursor: 1 }, { kind: "up" })).toEqual({ state: { text: "ab", cursor: 1 } });
    expect(applyKey({ text: "ab", cursor: 1 }, { kind: "down" })).toEqual({
      state: { text: "ab", cursor: 1 },
    });
  });
});
