import { describe, expect, test } from "bun:test";
import { layoutMessage, Screen } from "../lib/screen.ts";
import { HeadlessTerminal } from "./helpers/headless-terminal.ts";

/** A Screen drawing into a headless terminal of the given size. */
function setup(columns = 40, rows = 6, color = false, redrawEveryRow = false) {
  const terminal = new HeadlessTerminal(columns, rows);
  let written = "";
  const screen = new Screen({
    output: { write: (text: string) => (written += text) },
    columns,
    rows,
    prompt: "> ",
    color,
    redrawEveryRow,
  });
  const show = async () => {
    screen.flush();
    await terminal.write(written);
    written = "";
    return terminal.rows();
  };
  return { screen, terminal, show, writes: () => written };
}

describe("the deque screen, the book's way: every row redrawn from the deque on each message", () => {
  test("shows what the scroll region shows, message after message, and rewrites every row of the area each time", async () => {
    const book = setup(40, 6, false, true);
    const region = setup(40, 6, false, false);
    book.screen.start();
    region.screen.start();
    await book.show();
    await region.show();
    for (let i = 1; i <= 8; i++) {
      book.screen.print(`message ${i}${i === 7 ? " that is long enough to wrap at forty cells" : ""}`);
      region.screen.print(`message ${i}${i === 7 ? " that is long enough to wrap at forty cells" : ""}`);
      book.screen.flush();
      region.screen.flush();
      const [bookWrite, regionWrite] = [book.writes(), region.writes()];
      // Every row of the 5-row area is drawn again (row;1H), from the top; the region writes the new lines only.
      for (let row = 1; row <= 5; row++) expect(bookWrite).toContain(`\x1b[${row};1H\x1b[2K`);
      expect(bookWrite.indexOf("\x1b[1;1H")).toBeLessThan(bookWrite.indexOf("\x1b[5;1H"));
      expect(regionWrite.length).toBeLessThan(bookWrite.length);
      expect(await book.show()).toEqual(await region.show());
    }
    expect(book.terminal.rows().slice(0, 5)).toEqual([
      "message 5",
      "message 6",
      "message 7 that is long enough to wrap at",
      " forty cells", // wrapped where the space was (wrapAnsi keeps it)
      "message 8",
    ]);
  });
});

describe("the deque screen", () => {
  test("fills the area from the top, keeps the input line on the last row", async () => {
    const { screen, show } = setup();
    screen.start();
    screen.print("first");
    screen.print("second");
    screen.setInput({ text: "select 1", cursor: 8 });
    expect(await show()).toEqual(["first", "second", "", "", "", "> select 1"]);
  });

  test("scrolls old lines up once the area is full, and the input row stays", async () => {
    const { screen, terminal, show } = setup();
    screen.start();
    for (let i = 1; i <= 8; i++) {
      screen.print(`message ${i}`);
      await show(); // one turn each: the incremental path
    }
    screen.setInput({ text: "typing", cursor: 6 });
    expect(await show()).toEqual([
      "message 4",
      "message 5",
      "message 6",
      "message 7",
      "message 8",
      "> typing",
    ]);
    expect(terminal.cursor()).toEqual({ row: 6, column: 9 });
  });

  test("wraps long messages at the width; wide characters and emoji take two cells", async () => {
    const { screen, show } = setup(10, 6);
    screen.start();
    screen.print("abcdefghijklmn");
    screen.print("日本語日本語");
    expect((await show()).slice(0, 4)).toEqual(["abcdefghij", "klmn", "日本語日本", "語"]);
  });

  test("shows injected escape sequences harmlessly instead of obeying them", async () => {
    const { screen, show, terminal } = setup(40, 4);
    screen.start();
    screen.print("safe line");
    screen.print("evil \x1b[2J\x1b[1;1Hgotcha \x1b[31mred");
    const rows = await show();
    expect(rows[0]).toBe("safe line");
    expect(rows[1]).toBe("evil ␛[2J␛[1;1Hgotcha ␛[31mred");
    expect(terminal.colorAt(2, 30)).toBe(-1);
  });

  test("re-lays the area out from the deque after a resize", async () => {
    const { screen, terminal, show } = setup(20, 5);
    screen.start();
    for (const line of ["one", "a rather long message that wraps", "three"]) screen.print(line);
    await show();
    terminal.resize(40, 6);
    screen.resize(40, 6);
    expect(await show()).toEqual(["one", "a rather long message that wraps", "three", "", "", "> "]);
  });

  test("draws a burst of 10,000 messages in one write showing the newest", async () => {
    const { screen, show, writes } = setup(30, 6);
    screen.start();
    await show();
    for (let i = 1; i <= 10_000; i++) screen.print(`burst ${i}`);
    screen.flush();
    const output = writes();
    expect(output.length).toBeLessThan(2000); // one redraw of 5 rows, not 10,000 scrolls
    const { terminal } = { terminal: new HeadlessTerminal(30, 6) };
    await terminal.write(output);
    expect(terminal.rows().slice(0, 5)).toEqual([
      "burst 9996",
      "burst 9997",
      "burst 9998",
      "burst 9999",
      "burst 10000",
    ]);
  });

  test("keeps the cursor visible in a long input line", async () => {
    const { screen, show, terminal } = setup(20, 3);
    screen.start();
    const text = "0123456789abcdefghijklmnopqrstuvwxyz";
    screen.setInput({ text, cursor: text.length });
    const rows = await show();
    // 20 columns: 2 for the prompt, 17 for text, the last one for the cursor.
    expect(rows[2]).toBe("> jklmnopqrstuvwxyz");
    expect(terminal.cursor()).toEqual({ row: 3, column: 20 });
  });

  test("colours spans when colour is on, and never when it is off", () => {
    const coloured = layoutMessage([{ text: "bob", style: { color: "cyan" } }, { text: ": hi" }], 40, true);
    expect(coloured[0]).toContain("\x1b[36mbob");
    expect(layoutMessage([{ text: "bob", style: { color: "cyan" } }], 40, false)).toEqual(["bob"]);
  });

  test("stop() resets the scroll region and leaves the cursor on a clean last line", async () => {
    const { screen, terminal, show, writes } = setup(30, 5);
    screen.start();
    screen.print("kept on screen");
    screen.setInput({ text: "half typed", cursor: 10 });
    await show();
    screen.stop();
    const output = writes();
    expect(output).toContain("\x1b[r");
    await terminal.write(output);
    expect(terminal.rows()).toEqual(["kept on screen", "", "", "", ""]);
    expect(terminal.cursor()).toEqual({ row: 5, column: 1 });
  });

  test("everything printed in one turn leaves in one write, at the end of the turn", async () => {
    const writes: string[] = [];
    const screen = new Screen({
      output: { write: (text: string) => writes.push(text) },
      columns: 30,
      rows: 5,
      prompt: "> ",
      color: false,
    });
    screen.start();
    writes.length = 0;
    screen.print("one");
    screen.print("two");
    screen.setInput({ text: "x", cursor: 1 });
    expect(writes).toEqual([]); // not yet: the turn is not over
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes.length).toBe(1);
    expect(writes[0]).toContain("one");
    expect(writes[0]).toContain("two");
  });

  test("setPrompt redraws the input line with the new prompt, keeping the text", async () => {
    const { screen, show } = setup(30, 4);
    screen.start();
    screen.setInput({ text: "hello", cursor: 5 });
    await show();
    screen.setPrompt("ann> ");
    expect((await show())[3]).toBe("ann> hello");
  });

  test("a newline in a message starts a new line, and the message's text is neutralised", () => {
    expect(layoutMessage("first\nsecond\x07", 40, false)).toEqual(["first", "second␇"]);
  });

  test("keeps the last 500 messages for a resize, not more", async () => {
    const { screen, terminal, show } = setup(20, 4);
    screen.start();
    for (let i = 1; i <= 600; i++) screen.print(`m${i}`);
    await show();
    terminal.resize(20, 700);
    screen.resize(20, 700);
    const rows = await show();
    expect(rows[0]).toBe("m101");
    expect(rows[499]).toBe("m600");
    expect(rows[500]).toBe("");
  });
});
