/** A terminal emulator without a window (@xterm/headless): write escape sequences in, read the rows out. */
import { Terminal } from "@xterm/headless";

export class HeadlessTerminal {
  readonly xterm: Terminal;
  /** Every window title the program set (OSC 0/2), in order: a program that neutralises escapes sets none. */
  readonly titles: string[] = [];

  constructor(columns: number, rows: number) {
    this.xterm = new Terminal({ cols: columns, rows, allowProposedApi: true, scrollback: 0 });
    this.xterm.onTitleChange((title) => this.titles.push(title));
  }

  write(text: string | Uint8Array): Promise<void> {
    return new Promise((resolve) => this.xterm.write(text, resolve));
  }

  /** The visible rows, trailing spaces trimmed. */
  rows(): string[] {
    const buffer = this.xterm.buffer.active;
    return Array.from(
      { length: this.xterm.rows },
      (_, row) => buffer.getLine(buffer.viewportY + row)?.translateToString(true) ?? "",
    );
  }

  cursor(): { row: number; column: number } {
    const buffer = this.xterm.buffer.active;
    return { row: buffer.cursorY + 1, column: buffer.cursorX + 1 };
  }

  /** Foreground colour of the cell at (row, column), 1-based; -1 for the default. */
  colorAt(row: number, column: number): number {
    const buffer = this.xterm.buffer.active;
    const cell = buffer.getLine(buffer.viewportY + row - 1)?.getCell(column - 1);
    return cell?.isFgDefault() ? -1 : (cell?.getFgColor() ?? -1);
  }

  resize(columns: number, rows: number): void {
    this.xterm.resize(columns, rows);
  }
}
