import { describe, expect, test } from "bun:test";
import { type Key, KeyReader } from "../lib/cbreak.ts";
import type { EditorState } from "../lib/line-editor.ts";
import { SubmittedLines } from "../lib/terminal-ui.ts";
import { startInPty } from "./helpers/pty.ts";

const text = (value: string): Key => ({ kind: "text", text: value });
const enter: Key = { kind: "enter" };

/** A KeyReader holding `keys`, then ended. */
function keysOf(keys: Key[]): KeyReader {
  const reader = new KeyReader();
  for (const key of keys) reader.pushKey(key);
  reader.end();
  return reader;
}

/** Runs the loop over `keys`; returns the lines, every state shown, and the loop itself. */
async function run(keys: Key[], stopAt?: string) {
  const shown: EditorState[] = [];
  const lines = new SubmittedLines(keysOf(keys), (state) => shown.push(state));
  const submitted: string[] = [];
  for await (const line of lines) {
    submitted.push(line);
    if (line === stopAt) break;
  }
  return { submitted, shown, lines };
}

describe("SubmittedLines, the input loop of lessons 03 and 06", () => {
  test("yields each line on Enter, exactly as typed, empty ones too", async () => {
    const { submitted } = await run([text("  select 1 "), enter, enter, text("x"), enter]);
    expect(submitted).toEqual(["  select 1 ", "", "x"]);
  });

  test("shows the input line after every key, before the next one is read", async () => {
    const { shown } = await run([text("ab"), { kind: "backspace" }, enter]);
    expect(shown).toEqual([
      { text: "ab", cursor: 2 },
      { text: "a", cursor: 1 },
      { text: "", cursor: 0 },
    ]);
  });

  test("ends at Ctrl+C with the ending 'interrupt' and exit code 130; what was typed is not submitted", async () => {
    const { submitted, lines } = await run([
      text("one"),
      enter,
      text("half"),
      { kind: "interrupt" },
      text("x"),
    ]);
    expect(submitted).toEqual(["one"]);
    expect(lines.ending).toBe("interrupt");
    expect(lines.exitCode).toBe(130);
  });

  test("ends at Ctrl+D on an empty line with exit code 0; on a non-empty line Ctrl+D deletes forward", async () => {
    const { submitted, lines } = await run([
      text("ab"),
      { kind: "home" },
      { kind: "eof" },
      enter,
      { kind: "eof" },
      text("never"),
    ]);
    expect(submitted).toEqual(["b"]);
    expect(lines.ending).toBe("end-of-input");
    expect(lines.exitCode).toBe(0);
  });

  test("ends with 'closed' when the keys end, and leaves the ending null when the caller breaks out", async () => {
    expect((await run([text("a"), enter])).lines.ending).toBe("closed");
    const stopped = await run([text("quit"), enter, text("more"), enter], "quit");
    expect(stopped.submitted).toEqual(["quit"]);
    expect(stopped.lines.ending).toBeNull();
    expect(stopped.lines.exitCode).toBe(0);
  });
});

describe("openTerminalUi in a real terminal", () => {
  const start = (env: Record<string, string> = {}) =>
    startInPty(["bun", "tests/helpers/terminal-ui-program.ts"], 40, 8, env);

  test("draws messages above and the input line on the last row, in colour; Ctrl+C ends the loop with 130", async () => {
    const program = start();
    await program.waitFor((rows) => rows[0] === "ready" && rows[7]!.startsWith(">"), "the screen");
    expect(program.screen.colorAt(1, 1)).toBe(1); // red
    program.type("hi\r");
    await program.waitFor((rows) => rows[1] === "got: hi", "the line");
    program.type("x\x03");
    expect(await program.exited).toBe(130);
    await program.waitFor((rows) => rows.some((row) => row === "ending: interrupt"), "the ending");
  }, 30_000);

  test("no colour with NO_COLOR; Ctrl+D on an empty line ends the loop with 0", async () => {
    const program = start({ NO_COLOR: "1" });
    await program.waitFor((rows) => rows[0] === "ready" && rows[7]!.startsWith(">"), "the screen");
    expect(program.screen.colorAt(1, 1)).toBe(-1);
    program.type("\x04");
    expect(await program.exited).toBe(0);
  }, 30_000);

  test("close() gives the terminal back and ends the loop as 'closed'", async () => {
    const program = start();
    await program.waitFor((rows) => rows[7]!.startsWith(">"), "the input line");
    program.type("close\r");
    expect(await program.exited).toBe(0);
    await program.waitFor((rows) => rows.some((row) => row === "ending: closed"), "the ending");
  }, 30_000);

  test("with redrawEveryRow the area is redrawn from the deque, and rolls as the scroll region does", async () => {
    const program = startInPty(["bun", "tests/helpers/terminal-ui-program.ts", "--redraw"], 40, 8);
    await program.waitFor((rows) => rows[0] === "ready" && rows[7]!.startsWith(">"), "the screen");
    for (let i = 1; i <= 9; i++) program.type(`line ${i}\r`);
    const rows = await program.waitFor((rows) => rows[6] === "got: line 9", "the ninth line");
    expect(rows.slice(0, 7)).toEqual([3, 4, 5, 6, 7, 8, 9].map((i) => `got: line ${i}`));
    expect(rows[7]!.trim()).toBe(">");
    program.type("\x04");
    expect(await program.exited).toBe(0);
  }, 30_000);

  test("throws NotATerminalError when stdin is not a terminal", async () => {
    const child = Bun.spawn(["bun", "tests/helpers/terminal-ui-program.ts"], {
      cwd: `${import.meta.dir}/..`,
      stdin: "pipe",
      stdout: "pipe",
    });
    child.stdin.end();
    expect(await child.exited).toBe(2);
    expect((await new Response(child.stdout).text()).trim()).toBe("NotATerminalError");
  });
});
