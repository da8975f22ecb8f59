/**
 * lib/terminal-ui.ts — the three terminal pieces lessons 03 and 06 share, switched on together and off
 * together: cbreak keys (lib/cbreak), the deque screen (lib/screen), and re-layout when the window is
 * resized (SIGWINCH → the `resize` event).
 */
import { enterCbreak, type Key } from "./cbreak.ts";
import { Screen } from "./screen.ts";

export interface TerminalUi {
  screen: Screen;
  keys: AsyncIterable<Key>;
  /** Stops listening for resizes, resets the screen and gives the terminal back. Idempotent. */
  close(): void;
}

/**
 * Starts the screen on stdout with keys from stdin. Throws lib/cbreak's `NotATerminalError` when stdin is
 * not a terminal. Colours are on unless NO_COLOR is set or stdout is not a terminal.
 */
export function openTerminalUi(prompt: string): TerminalUi {
  const output = process.stdout;
  const screen = new Screen({
    output,
    columns: output.columns ?? 80,
    rows: output.rows ?? 24,
    prompt,
    color: !process.env.NO_COLOR && output.isTTY === true,
  });
  const session = enterCbreak({ input: process.stdin, output, beforeRestore: () => screen.stop() });
  const onResize = () => screen.resize(output.columns, output.rows);
  output.on("resize", onResize);
  screen.start();
  return {
    screen,
    keys: session.keys,
    close() {
      output.off("resize", onResize);
      session.restore();
    },
  };
}
