/**
 * lib/spinner.ts — one animated line for a wait that the user may cut short with Ctrl+C.
 *
 * Why not @clack/prompts' spinner: while it spins it puts the terminal in raw mode and, on Ctrl+C, calls
 * `process.exit(0)` (its `block()` helper) — the program can neither clean up nor report 130, the code a
 * shell gives a program that Ctrl+C ended. This one leaves the terminal in its normal mode, so Ctrl+C is
 * the signal SIGINT, and hands the interruption to the caller: `interrupted` resolves with 130 (SIGINT),
 * 143 (SIGTERM) or 129 (SIGHUP), and the caller decides how to leave. Keys typed meanwhile stay in the terminal's buffer
 * for whoever reads the keys next.
 */
import { SIGNAL_EXIT_CODES } from "./cbreak.ts";
import { showControls } from "./sanitize.ts";

/** The frames, one every {@link FRAME_MS}: the same quarter-circles as @clack/prompts. */
export const SPINNER_FRAMES = ["◒", "◐", "◓", "◑"] as const;
/** Time between frames: 80 ms (12 a second: smooth, and cheap). */
export const FRAME_MS = 80;

/** Width assumed when the output does not say (not a terminal): 80 columns. */
const DEFAULT_COLUMNS = 80;

const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const CLEAR_LINE = "\r\x1b[2K";

export interface Spinner {
  /**
   * Resolves with 130 on SIGINT (Ctrl+C), 143 on SIGTERM or 129 on SIGHUP received while spinning; never
   * otherwise.
   */
  readonly interrupted: Promise<number>;
  /** Replaces the spinning line with `◇  message` (done) or `▲  message` (failed), once. */
  stop(message: string, outcome?: "done" | "failed"): void;
}

/** Starts spinning `message` on `output` (a terminal) until `stop()`. */
export function startSpinner(message: string, output: NodeJS.WriteStream = process.stdout): Spinner {
  const shown = showControls(message);
  let frame = 0;
  let stopped = false;
  // One row, however narrow the terminal (read again each frame: it may be resized): a line that wrapped
  // would leave a copy of its first row behind on every frame, as `\r` only goes back to the last row.
  const draw = () => {
    const line = `${SPINNER_FRAMES[frame++ % SPINNER_FRAMES.length]}  ${shown}`;
    output.write(`${CLEAR_LINE}${fitRow(line, output.columns || DEFAULT_COLUMNS)}`);
  };
  let interrupt: (code: number) => void = () => {};
  const interrupted = new Promise<number>((resolve) => {
    interrupt = resolve;
  });
  const onSignal = Object.entries(SIGNAL_EXIT_CODES).map(
    ([signal, code]) => [signal, () => interrupt(code)] as const,
  );
  // Whatever ends the process, the cursor comes back.
  const showCursor = () => output.write(SHOW_CURSOR);
  output.write(HIDE_CURSOR);
  draw();
  const timer = setInterval(draw, FRAME_MS);
  for (const [signal, handler] of onSignal) process.on(signal, handler);
  process.on("exit", showCursor);
  return {
    interrupted,
    stop(text, outcome = "done") {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      for (const [signal, handler] of onSignal) process.off(signal, handler);
      process.off("exit", showCursor);
      const symbol = outcome === "done" ? "◇" : "▲";
      output.write(`${CLEAR_LINE}${symbol}  ${showControls(text)}\n${SHOW_CURSOR}`);
    },
  };
}

/** `text` cut to fit in a row of `columns` cells, the last one left free, ending in "…" when cut. */
export function fitRow(text: string, columns: number): string {
  const room = Math.max(1, columns - 1);
  if (Bun.stringWidth(text) <= room) return text;
  let cut = "";
  for (const character of text) {
    if (Bun.stringWidth(cut + character) > room - 1) break;
    cut += character;
  }
  return `${cut}…`;
}
