/** Runs a program in a real pseudo-terminal (Bun.spawn's `terminal`) and reads its screen through a headless terminal. */
import { HeadlessTerminal } from "./headless-terminal.ts";

const ROOT = `${import.meta.dir}/../..`;

export interface PtyProgram {
  screen: HeadlessTerminal;
  /** Types into the terminal (as a person at the keyboard would); bytes go as they are. */
  type(text: string | Uint8Array): void;
  /**
   * Waits until the screen's rows satisfy `predicate`, looking every `pollMs` (25 ms); fails with the screen
   * shown after `timeoutMs` (20 s).
   */
  waitFor(
    predicate: (rows: string[]) => boolean,
    description: string,
    timeoutMs?: number,
    pollMs?: number,
  ): Promise<string[]>;
  resize(columns: number, rows: number): void;
  exited: Promise<number>;
  /** The pid of the program started (for a `bash -c …` wrapper, bash's). */
  pid: number;
  kill(): void;
}

export function startInPty(
  argv: string[],
  columns = 80,
  rows = 24,
  env: Record<string, string> = {},
): PtyProgram {
  const screen = new HeadlessTerminal(columns, rows);
  const child = Bun.spawn(argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    terminal: { cols: columns, rows, data: (_terminal, data) => void screen.write(data) },
  });
  const terminal = child.terminal!;
  return {
    screen,
    type: (text) => terminal.write(text),
    async waitFor(predicate, description, timeoutMs = 20_000, pollMs = 25) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        await screen.write(""); // let pending output be parsed
        const current = screen.rows();
        if (predicate(current)) return current;
        await Bun.sleep(pollMs);
      }
      throw new Error(`timed out waiting for ${description}; the screen was:\n${screen.rows().join("\n")}`);
    },
    resize(newColumns, newRows) {
      terminal.resize(newColumns, newRows);
      screen.resize(newColumns, newRows);
    },
    exited: child.exited,
    pid: child.pid,
    kill: () => child.kill(),
  };
}
