/**
 * lib/screen.ts — the deque screen: messages roll upwards in the area above, the input line stays on the
 * terminal's last row.
 *
 *   ┌──────────────────────────┐
 *   │ [#1] 3 rows in 1.2 ms    │ ← the message area: a scroll region (DECSTBM, `ESC [ 1 ; rows-1 r`)
 *   │ …                        │   holding the last lines of a deque of messages
 *   │ delay 2: done            │
 *   │ sql> select 4█           │ ← the input line, redrawn by itself as you type
 *   └──────────────────────────┘
 *
 * Two ways to show a new message, both from the deque:
 * - the book's (`redrawEveryRow: true`): move to the top and redraw every row of the area from the deque,
 *   on every message — simple, and the terminal is always exactly the deque;
 * - the default: write the new message once at the bottom of the scroll region, and let the terminal
 *   move the old lines up. Only a resize (or a burst of more lines than fit) redraws the area.
 * What the region buys, measured (`bun run bench screen`: 80×24, 10,000 messages of ~25 characters,
 * one per turn of the event loop): 70 bytes written per message instead of 805 (the book rewrites all 23
 * rows; both include the input line's redraw), and 3.2× the messages per second rendered and shown by a
 * terminal (xterm.js, headless). The more rows, the more the book's way costs. Output is coalesced either
 * way: everything printed in one turn of the event loop leaves in one write.
 *
 * Text is neutralised first (lib/sanitize's `showControls`): escape sequences from the network show as
 * `␛[2J`, they do not clear anyone's screen. Colour is the screen's to add (`Span.style`), never the text's.
 *
 * The rendering functions are pure — state in, escape sequences out — so tests can feed them to a
 * headless terminal and read the rows back.
 */
import { Deque } from "./deque.ts";
import type { EditorState } from "./line-editor.ts";
import { showControls } from "./sanitize.ts";

const CSI = "\x1b[";
const HIDE_CURSOR = `${CSI}?25l`;
const SHOW_CURSOR = `${CSI}?25h`;
const CLEAR_LINE = `${CSI}2K`;
const RESET_STYLE = `${CSI}0m`;
/** Messages kept for re-layout after a resize: 500 (more than any terminal shows). */
const MESSAGE_HISTORY = 500;

export type Color = "red" | "green" | "yellow" | "blue" | "magenta" | "cyan" | "gray";
export interface Style {
  color?: Color;
  bold?: boolean;
  dim?: boolean;
}
/** A piece of a message with one style. */
export interface Span {
  text: string;
  style?: Style;
}
export type Message = string | Span[];

const COLOR_CODES: Record<Color, number> = {
  red: 31,
  green: 32,
  yellow: 33,
  blue: 34,
  magenta: 35,
  cyan: 36,
  gray: 90,
};

const moveTo = (row: number, column: number) => `${CSI}${row};${column}H`;

/** SGR codes for a style; empty when colour is off. */
function styleCodes(style: Style | undefined, color: boolean): string {
  if (!style || !color) return "";
  const codes: number[] = [];
  if (style.bold) codes.push(1);
  if (style.dim) codes.push(2);
  if (style.color) codes.push(COLOR_CODES[style.color]);
  return codes.length ? `${CSI}${codes.join(";")}m` : "";
}

/**
 * One message as display lines of at most `columns` cells: neutralised, styled, wrapped (wide characters
 * count two cells), each line ending with a style reset. Newlines in the text start new lines.
 */
export function layoutMessage(message: Message, columns: number, color: boolean): string[] {
  const spans = typeof message === "string" ? [{ text: message }] : message;
  const lines: string[] = [];
  // Each text line of the message (split on \n) is styled and wrapped on its own.
  let current: Span[] = [];
  const flush = () => {
    const styled = current.map(({ text, style }) => {
      const codes = styleCodes(style, color);
      return codes ? `${codes}${text}${RESET_STYLE}` : text;
    });
    const wrapped = Bun.wrapAnsi(styled.join(""), columns, { hard: true, trim: false, wordWrap: true });
    for (const line of wrapped.split("\n")) lines.push(color ? line + RESET_STYLE : line);
    current = [];
  };
  for (const span of spans) {
    const parts = span.text.split("\n");
    parts.forEach((part, index) => {
      if (index > 0) flush();
      current.push({ text: showControls(part), style: span.style });
    });
  }
  flush();
  return lines;
}

/** What the input line shows: the prompt, and as much of the text as fits, scrolled to keep the cursor visible. */
export function renderInputLine(prompt: string, input: EditorState, columns: number, row: number): string {
  const safePrompt = showControls(prompt);
  const text = showControls(input.text);
  const promptWidth = Bun.stringWidth(safePrompt);
  const room = Math.max(1, columns - promptWidth - 1); // keep the last column for the cursor
  const beforeCursor = showControls(input.text.slice(0, input.cursor));
  let visible = text;
  let cursorColumn = promptWidth + Bun.stringWidth(beforeCursor) + 1;
  if (Bun.stringWidth(text) > room) {
    // Show the cells that end at the cursor (or the end of the text, if the cursor is far left).
    const start = visibleStart(beforeCursor, room);
    visible = sliceToWidth(text.slice(start), room);
    cursorColumn = promptWidth + Bun.stringWidth(beforeCursor.slice(start)) + 1;
  }
  return `${moveTo(row, 1)}${CLEAR_LINE}${safePrompt}${visible}${moveTo(row, cursorColumn)}`;
}

/** Index in `text` from which the rest up to its end fits in `room` cells. */
function visibleStart(text: string, room: number): number {
  let width = 0;
  let index = text.length;
  while (index > 0) {
    const code = text.codePointAt(index - 1)!;
    const isLowSurrogate = code >= 0xdc00 && code <= 0xdfff;
    const step = isLowSurrogate && index >= 2 ? 2 : 1;
    const cell = Bun.stringWidth(text.slice(index - step, index));
    if (width + cell > room) break;
    width += cell;
    index -= step;
  }
  return index;
}

/** The longest prefix of `text` that fits in `room` cells. */
function sliceToWidth(text: string, room: number): string {
  let width = 0;
  let end = 0;
  for (const character of text) {
    const cell = Bun.stringWidth(character);
    if (width + cell > room) break;
    width += cell;
    end += character.length;
  }
  return text.slice(0, end);
}

export interface ScreenOptions {
  output: { write(text: string): unknown };
  columns: number;
  rows: number;
  prompt: string;
  /** Colours on (default: unless NO_COLOR is set). */
  color?: boolean;
  /** Redraw every row of the area from the deque on each message, the book's way (default: scroll). */
  redrawEveryRow?: boolean;
}

/** The deque screen. Call `start()`, then `print()` messages and `setInput()` as the user types. */
export class Screen {
  readonly #output: { write(text: string): unknown };
  readonly #color: boolean;
  readonly #redrawEveryRow: boolean;
  #columns: number;
  #rows: number;
  #prompt: string;
  #input: EditorState = { text: "", cursor: 0 };
  /** Raw messages, for re-layout after a resize. */
  readonly #messages = new Deque<Message>(MESSAGE_HISTORY);
  /** The display lines in the message area, top to bottom: at most as many as fit. */
  #lines: Deque<string>;
  /** Messages printed this turn, not yet on the terminal. */
  #unwritten: Message[] = [];
  #redrawAll = false;
  #inputChanged = false;
  #flushScheduled = false;
  #started = false;

  constructor(options: ScreenOptions) {
    this.#output = options.output;
    this.#columns = Math.max(options.columns, 10);
    this.#rows = Math.max(options.rows, 3);
    this.#prompt = options.prompt;
    this.#color = options.color ?? !process.env.NO_COLOR;
    this.#redrawEveryRow = options.redrawEveryRow ?? false;
    this.#lines = new Deque(this.#areaHeight);
  }

  get #areaHeight(): number {
    return this.#rows - 1;
  }

  /** Clears the screen, sets the scroll region, draws the input line. */
  start(): void {
    this.#started = true;
    this.#write(`${CSI}2J${CSI}1;${this.#areaHeight}r${this.#renderArea()}${this.#renderInput()}`);
  }

  /** Adds a message at the bottom of the area (drawn at the end of this turn). */
  print(message: Message): void {
    this.#messages.push(message);
    this.#unwritten.push(message);
    this.#scheduleFlush();
  }

  /** Shows new input text and cursor on the input line. */
  setInput(input: EditorState): void {
    this.#input = input;
    this.#inputChanged = true;
    this.#scheduleFlush();
  }

  setPrompt(prompt: string): void {
    this.#prompt = prompt;
    this.#inputChanged = true;
    this.#scheduleFlush();
  }

  /** The terminal changed size: lay the area out again from the deque of messages. */
  resize(columns: number, rows: number): void {
    this.#columns = Math.max(columns, 10);
    this.#rows = Math.max(rows, 3);
    this.#lines = new Deque(this.#areaHeight);
    for (const message of this.#messages) this.#addLines(message);
    this.#unwritten = [];
    this.#redrawAll = true;
    this.#scheduleFlush();
  }

  /** Writes what is pending now (normally done at the end of the turn). */
  flush(): void {
    this.#flushScheduled = false;
    if (!this.#started) return;
    let out = "";
    if (this.#unwritten.length > 0)
      out += this.#redrawEveryRow ? this.#redrawForEachMessage() : this.#renderNewMessages();
    if (this.#redrawAll) out += `${CSI}1;${this.#areaHeight}r${this.#renderArea()}`;
    this.#redrawAll = false;
    if (out || this.#inputChanged) out += this.#renderInput();
    this.#inputChanged = false;
    if (out) this.#write(`${HIDE_CURSOR}${out}${SHOW_CURSOR}`);
  }

  /** Resets the scroll region and leaves the cursor at the start of a clean last line. */
  stop(): void {
    if (!this.#started) return;
    this.flush();
    this.#started = false;
    this.#write(`${RESET_STYLE}${CSI}r${moveTo(this.#rows, 1)}${CLEAR_LINE}${SHOW_CURSOR}`);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.flush());
  }

  #addLines(message: Message): number {
    const lines = layoutMessage(message, this.#columns, this.#color);
    for (const line of lines) this.#lines.push(line);
    return lines.length;
  }

  /**
   * New messages: while the area is not full, each line is written on the next free row; once it is, at
   * the bottom of the scroll region after a line feed, which makes the terminal move everything up one row.
   * More new lines than the area holds: redraw the area instead (only the last ones would show anyway).
   */
  #renderNewMessages(): string {
    const messages = this.#unwritten;
    this.#unwritten = [];
    const height = this.#areaHeight;
    const before = this.#lines.length;
    // A burst: lay out only the messages that can still be seen.
    const visible = messages.length > height ? messages.slice(-height) : messages;
    if (messages.length > height) this.#lines.clear();
    let added = 0;
    for (const message of visible) added += this.#addLines(message);
    if (messages.length > height || added >= height) {
      this.#redrawAll = true;
      return "";
    }
    let out = "";
    const newLines = [...this.#lines].slice(-added);
    let row = Math.min(before, height);
    for (const line of newLines) {
      if (row < height) {
        row++;
        out += `${moveTo(row, 1)}${CLEAR_LINE}${line}`;
      } else {
        out += `${moveTo(height, 1)}\n${CLEAR_LINE}${line}`;
      }
    }
    return out;
  }

  /** The book's way: for each new message, add it to the deque, then redraw every row from the top. */
  #redrawForEachMessage(): string {
    const messages = this.#unwritten;
    this.#unwritten = [];
    let out = "";
    for (const message of messages) {
      this.#addLines(message);
      out += this.#renderArea();
    }
    return out;
  }

  #renderArea(): string {
    let out = "";
    for (let row = 1; row <= this.#areaHeight; row++)
      out += `${moveTo(row, 1)}${CLEAR_LINE}${this.#lines.at(row - 1) ?? ""}`;
    return out;
  }

  #renderInput(): string {
    return renderInputLine(this.#prompt, this.#input, this.#columns, this.#rows);
  }

  #write(text: string): void {
    this.#output.write(text);
  }
}
