/**
 * bench/screen.ts — lib/screen's two ways to show a message, at 80×24: the book's (redraw every row of the
 * area from the deque on each message) and the scroll region's (write the new line once; the terminal
 * moves the rest up). 10,000 one-line messages, each in its own turn of the event loop (as when they
 * arrive one by one from the network): bytes written per message, and the time to render them and have a
 * terminal (xterm.js, headless) show them.
 */
import { Terminal } from "@xterm/headless";
import { Screen } from "../lib/screen.ts";
import { compare, formatRate, report } from "./measure.ts";

const MESSAGES = 10_000;
const COLUMNS = 80;
const ROWS = 24;

/** Renders MESSAGES messages one flush each; returns what was written. */
function render(redrawEveryRow: boolean): string[] {
  const chunks: string[] = [];
  const screen = new Screen({
    output: { write: (text: string) => chunks.push(text) },
    columns: COLUMNS,
    rows: ROWS,
    prompt: "sql> ",
    color: false,
    redrawEveryRow,
  });
  screen.start();
  chunks.length = 0; // count the messages, not the first clear
  for (let number = 1; number <= MESSAGES; number++) {
    screen.print(`[#${number}] 1 row in 2.5 ms`);
    screen.flush();
  }
  return chunks;
}

/** Feeds `chunks` to a headless terminal and waits until it has parsed them all. */
function show(chunks: string[]): Promise<void> {
  const terminal = new Terminal({ cols: COLUMNS, rows: ROWS, allowProposedApi: true, scrollback: 0 });
  for (const chunk of chunks) terminal.write(chunk);
  return new Promise((resolve) =>
    terminal.write("", () => {
      terminal.dispose();
      resolve();
    }),
  );
}

export async function benchScreen(rounds = 5): Promise<void> {
  const bytes = (chunks: string[]) => chunks.reduce((sum, chunk) => sum + Buffer.byteLength(chunk), 0);
  const [book, region] = [render(true), render(false)];
  console.log(`\nDeque screen, ${COLUMNS}×${ROWS}: bytes written per one-line message`);
  console.log(
    `  redraw every row (the book)          ${formatRate(bytes(book) / MESSAGES).padStart(10)} bytes`,
  );
  console.log(
    `  scroll region (lib/screen)           ${formatRate(bytes(region) / MESSAGES).padStart(10)} bytes`,
  );
  const contestant = (name: string, redrawEveryRow: boolean) => ({
    name,
    run: async () => {
      await show(render(redrawEveryRow));
      return MESSAGES;
    },
  });
  const results = await compare(
    [contestant("redraw every row (the book)", true), contestant("scroll region (lib/screen)", false)],
    rounds,
  );
  report(
    `Deque screen: ${MESSAGES.toLocaleString("en")} messages rendered and shown by a headless terminal`,
    "messages/s",
    results,
    "scroll region (lib/screen)",
  );
}

if (import.meta.main) await benchScreen();
