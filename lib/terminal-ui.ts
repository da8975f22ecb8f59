/**
 * lib/terminal-ui.ts — the terminal pieces lessons 03 and 06 share, switched on together and off together:
 * keys in character-at-a-time mode (lib/cbreak), the deque screen (lib/screen), re-layout when the window is
 * resized (SIGWINCH → the `resize` event), and the one input loop both lessons run — `await readKey()`
 * (the book's read(1)), the key edits the input line (lib/line-editor), the screen shows it, Enter hands
 * the line over, Ctrl+C or Ctrl+D ends it.
 */
import { EXIT_INTERRUPTED, enterCbreak, type Key } from "./cbreak.ts";
import { applyKey, type EditorState } from "./line-editor.ts";
import { Screen } from "./screen.ts";

/** How the input loop ended: Ctrl+C, Ctrl+D on an empty line, or the keys stopped (the UI was closed). */
export type InputEnding = "interrupt" | "end-of-input" | "closed";

/** Where the input loop gets its keys: lib/cbreak's KeyReader (read(1) on the terminal). */
export interface KeySource {
  /** The next key; null when there will be no more. */
  readKey(): Promise<Key | null>;
}

/**
 * The input loop: iterate it for the lines the user submits with Enter, exactly as typed (not trimmed;
 * empty ones too). It is the book's loop — read one key, act on it, read the next — with a line editor
 * where the book appended to a buffer. Every key's effect is shown with `show(state)` before the next key
 * is read. The iteration ends at Ctrl+C, at Ctrl+D on an empty line, or when the keys end; `ending` then
 * says which. A caller that breaks out of the loop itself leaves `ending` null. Iterate it once.
 */
export class SubmittedLines implements AsyncIterable<string> {
  #ending: InputEnding | null = null;

  constructor(
    private readonly keys: KeySource,
    private readonly show: (state: EditorState) => void,
  ) {}

  get ending(): InputEnding | null {
    return this.#ending;
  }

  /**
   * The exit code for a program whose input ended this way: 130 after Ctrl+C (128 + SIGINT's number, what
   * a shell reports for a program SIGINT ended), 0 otherwise.
   */
  get exitCode(): number {
    return this.#ending === "interrupt" ? EXIT_INTERRUPTED : 0;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    let state: EditorState = { text: "", cursor: 0 };
    for (;;) {
      // read(1): one key — a character, an arrow, a whole paste — as soon as it is typed.
      const key = await this.keys.readKey();
      if (key === null) break;
      const result = applyKey(state, key);
      state = result.state;
      this.show(state);
      if (result.interrupted || result.endOfInput) {
        this.#ending = result.interrupted ? "interrupt" : "end-of-input";
        return;
      }
      if (result.submitted !== undefined) yield result.submitted;
    }
    this.#ending = "closed";
  }
}

export interface TerminalUi {
  screen: Screen;
  /** The input loop over this terminal's keys, drawing the input line on `screen`. */
  lines: SubmittedLines;
  /** Stops listening for resizes, resets the screen and gives the terminal back; ends `lines`. Idempotent. */
  close(): void;
}

/**
 * Starts the screen on stdout with keys from stdin (`redrawEveryRow`: see lib/screen). Throws lib/cbreak's
 * `NotATerminalError` when stdin is not a terminal. Colours are on unless NO_COLOR is set or stdout is not a terminal.
 */
export function openTerminalUi(prompt: string, options: { redrawEveryRow?: boolean } = {}): TerminalUi {
  const output = process.stdout;
  const screen = new Screen({
    output,
    columns: output.columns ?? 80,
    rows: output.rows ?? 24,
    prompt,
    color: !process.env.NO_COLOR && output.isTTY === true,
    redrawEveryRow: options.redrawEveryRow,
  });
  const session = enterCbreak({ input: process.stdin, output, beforeRestore: () => screen.stop() });
  const onResize = () => screen.resize(output.columns, output.rows);
  output.on("resize", onResize);
  screen.start();
  return {
    screen,
    lines: new SubmittedLines(session.keys, (state) => screen.setInput(state)),
    close() {
      output.off("resize", onResize);
      session.restore();
    },
  };
}
