/**
 * lib/line-editor.ts — the input line's state: its text and where the cursor is, changed by keys.
 *
 * The cursor moves over whole characters as a person sees them (grapheme clusters: `é` made of two code
 * points, a flag emoji, a family emoji) — so Backspace removes one character, never half of one.
 */
import type { Key } from "./cbreak.ts";

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Longest input line kept: 64 KiB of text (a paste beyond it is cut). */
export const MAX_INPUT_CHARS = 64 * 1024;

export interface EditorState {
  text: string;
  /** Cursor position, as an index into `text` at a grapheme boundary. */
  cursor: number;
}

export type EditResult = {
  state: EditorState;
  submitted?: string;
  interrupted?: boolean;
  endOfInput?: boolean;
};

/** Applies one key. Enter submits the text (and empties the line); Ctrl+D on an empty line ends input. */
export function applyKey(state: EditorState, key: Key): EditResult {
  const { text, cursor } = state;
  switch (key.kind) {
    case "text":
    case "paste":
      return {
        state: insert(
          state,
          key.kind === "paste" ? key.text.replace(/\n+$/, "").replaceAll("\n", " ") : key.text,
        ),
      };
    case "enter":
      return { state: { text: "", cursor: 0 }, submitted: text };
    case "backspace": {
      const start = previousBoundary(text, cursor);
      return { state: { text: text.slice(0, start) + text.slice(cursor), cursor: start } };
    }
    case "delete": {
      const end = nextBoundary(text, cursor);
      return { state: { text: text.slice(0, cursor) + text.slice(end), cursor } };
    }
    case "left":
      return { state: { text, cursor: previousBoundary(text, cursor) } };
    case "right":
      return { state: { text, cursor: nextBoundary(text, cursor) } };
    case "home":
      return { state: { text, cursor: 0 } };
    case "end":
      return { state: { text, cursor: text.length } };
    case "clear-line":
      return { state: { text: "", cursor: 0 } };
    case "interrupt":
      return { state, interrupted: true };
    case "eof":
      // Ctrl+D ends input on an empty line, and deletes forward otherwise (as in a shell).
      return text === "" ? { state, endOfInput: true } : applyKey(state, { kind: "delete" });
    case "up":
    case "down":
      return { state };
  }
}

function insert({ text, cursor }: EditorState, inserted: string): EditorState {
  const room = MAX_INPUT_CHARS - text.length;
  const piece = inserted.length > room ? inserted.slice(0, Math.max(0, room)) : inserted;
  return { text: text.slice(0, cursor) + piece + text.slice(cursor), cursor: cursor + piece.length };
}

/** The grapheme boundary before `index` (0 at the start). */
export function previousBoundary(text: string, index: number): number {
  let previous = 0;
  for (const { index: start } of graphemes.segment(text.slice(0, index))) previous = start;
  return index === 0 ? 0 : previous;
}

/** The grapheme boundary after `index` (text.length at the end). */
export function nextBoundary(text: string, index: number): number {
  if (index >= text.length) return text.length;
  const first = graphemes.segment(text.slice(index))[Symbol.iterator]().next();
  return first.done ? text.length : index + first.value.segment.length;
}
