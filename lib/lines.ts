/**
 * lib/lines.ts — line framing for byte streams.
 *
 * TCP delivers bytes, not messages: one `data` event can hold half a line, three lines, or the last byte of
 * a UTF-8 character whose first bytes came in the event before. `LineDecoder` turns that stream of chunks
 * back into text lines.
 *
 * Why this is correct for UTF-8: the newline byte 0x0A never occurs inside a multi-byte UTF-8 sequence
 * (continuation bytes are 0x80–0xBF), so we cut the *bytes* at each newline and decode each complete line
 * on its own. A character split across two chunks is simply joined back before it is decoded. Invalid
 * UTF-8 becomes U+FFFD (the replacement character), as `TextDecoder` does by default.
 *
 * Contract:
 * - Lines end in `\n`; a `\r` just before it is dropped too (`\r\n`). The terminator is not part of the line.
 * - A line longer than `maxLineBytes` (terminator excluded) is never buffered whole: its bytes are dropped as
 *   they arrive, and when its end is reached `onLineTooLong(byteLength)` is called once instead of `onLine`.
 *   Memory stays bounded by `maxLineBytes` whatever the peer sends.
 * - `end()` delivers the unterminated last line, if any (as `onLine`, or `onLineTooLong`).
 *
 * Speed: the lines wholly inside a chunk are decoded with one `TextDecoder.decode` for the lot and cut
 * with string `indexOf` — no copies, no per-line decoder call. Only a line split across chunks is copied.
 */

import { concat } from "./bytes.ts";

/** Byte value of `\n`, the line terminator. */
const NEWLINE = 0x0a;
/** Byte value of `\r`, dropped when it stands just before `\n`. */
const CARRIAGE_RETURN = 0x0d;

/** Decoding without `stream: true` keeps no state, so every LineDecoder can share one (10,000 clients…). */
const utf8 = new TextDecoder("utf-8");

/** The shared "no pending pieces" list; never pushed to. */
const NO_PIECES: Uint8Array[] = [];

/** Default longest line, in bytes, terminator excluded: 64 KiB (asyncio's stream limit). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

/** What a LineDecoder reports to; an object literal, or an instance of a class with these methods. */
export interface LineDecoderOptions {
  /** Longest line accepted, in bytes, terminator excluded. Default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
  /** Called with each complete line, decoded from UTF-8, without its terminator. */
  onLine: (line: string) => void;
  /**
   * Called once for each line that was longer than `maxLineBytes`, once its end has arrived, with the number
   * of bytes that came before its `\n` (a `\r` included). Its bytes were discarded. Default: ignore.
   */
  onLineTooLong?: (byteLength: number) => void;
}

/** Splits a byte stream into UTF-8 text lines. Feed it with {@link push}, finish it with {@link end}. */
export class LineDecoder {
  readonly maxLineBytes: number;
  /** The options object: its `onLine` / `onLineTooLong` are called as its methods (a class may implement them). */
  readonly #handler: LineDecoderOptions;
  /** Pieces of the current, unterminated line (each already copied: callers may reuse their chunks). */
  #pending: Uint8Array[] = NO_PIECES;
  #pendingBytes = 0;
  /** Bytes of the current line dropped because it is over the limit; 0 while the line fits. */
  #discardedBytes = 0;

  constructor(options: LineDecoderOptions) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(this.maxLineBytes) || this.maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${this.maxLineBytes}`);
    }
    this.#handler = options;
  }

  /** Bytes held for the current unterminated line (never more than `maxLineBytes`). */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /** Feeds one chunk. Calls `onLine` / `onLineTooLong` synchronously for every line the chunk completes. */
  push(chunk: Uint8Array): void {
    const firstNewline = chunk.indexOf(NEWLINE);
    if (firstNewline === -1) return this.#keepPartial(chunk);
    let start = 0;
    if (this.#pendingBytes > 0 || this.#discardedBytes > 0) {
      // The first line continues one that began in an earlier chunk.
      this.#finishLine(chunk, 0, firstNewline);
      start = firstNewline + 1;
    }
    const lastNewline = chunk.lastIndexOf(NEWLINE);
    if (lastNewline >= start) this.#emitWholeLines(chunk, start, lastNewline + 1);
    if (lastNewline + 1 < chunk.length) this.#keepPartial(chunk.subarray(lastNewline + 1));
  }

  /**
   * Emits the lines of `chunk[start, end)`, which begins a line and ends with `\n`. One `decode` for them
   * all is several times faster than one per line. Each `\n` byte is one `\n` character, so walking the
   * bytes and the text in step gives every line's exact byte length for the limit check.
   */
  #emitWholeLines(chunk: Uint8Array, start: number, end: number): void {
    const text = utf8.decode(chunk.subarray(start, end));
    let byteStart = start;
    let textStart = 0;
    while (byteStart < end) {
      const byteNewline = chunk.indexOf(NEWLINE, byteStart);
      const textNewline = text.indexOf("\n", textStart);
      const carriageReturn =
        textNewline > textStart && text.charCodeAt(textNewline - 1) === CARRIAGE_RETURN ? 1 : 0;
      if (byteNewline - byteStart - carriageReturn > this.maxLineBytes) {
        this.#handler.onLineTooLong?.(byteNewline - byteStart);
      } else {
        this.#handler.onLine(text.slice(textStart, textNewline - carriageReturn));
      }
      byteStart = byteNewline + 1;
      textStart = textNewline + 1;
    }
  }

  /** Ends the stream: delivers the unterminated last line, if there is one, and resets the decoder. */
  end(): void {
    if (this.#discardedBytes > 0) return this.#reportTooLong(0);
    if (this.#pendingBytes === 0) return;
    const line = this.#takePending();
    this.#clearPending();
    if (line.length > this.maxLineBytes && line[line.length - 1] !== CARRIAGE_RETURN) {
      this.#discardedBytes = line.length;
      return this.#reportTooLong(0);
    }
    this.#handler.onLine(this.#decode(line, 0, line.length));
  }

  /** Completes the line that ends at `chunk[newline]`, whose bytes in this chunk start at `start`. */
  #finishLine(chunk: Uint8Array, start: number, newline: number): void {
    const tailBytes = newline - start;
    if (this.#discardedBytes > 0) return this.#reportTooLong(tailBytes);
    const rawBytes = this.#pendingBytes + tailBytes;
    const contentBytes = this.#endsWithCarriageReturn(chunk, start, newline) ? rawBytes - 1 : rawBytes;
    if (contentBytes > this.maxLineBytes) {
      this.#discardedBytes = this.#pendingBytes;
      this.#clearPending();
      return this.#reportTooLong(tailBytes);
    }
    if (this.#pendingBytes === 0) return this.#handler.onLine(this.#decode(chunk, start, newline));
    this.#pieces().push(chunk.subarray(start, newline));
    this.#pendingBytes = rawBytes;
    const line = this.#takePending();
    this.#clearPending();
    this.#handler.onLine(this.#decode(line, 0, line.length));
  }

  /** Whether the line ending at `chunk[newline]` has a `\r` just before the `\n`. */
  #endsWithCarriageReturn(chunk: Uint8Array, start: number, newline: number): boolean {
    if (newline > start) return chunk[newline - 1] === CARRIAGE_RETURN;
    const last = this.#pending[this.#pending.length - 1];
    return last !== undefined && last[last.length - 1] === CARRIAGE_RETURN;
  }

  /** Holds the unterminated tail of a chunk, or drops it once the line is over the limit. */
  #keepPartial(tail: Uint8Array): void {
    if (this.#discardedBytes > 0) {
      this.#discardedBytes += tail.length;
      return;
    }
    // One byte of grace for a `\r` that may turn out to be the `\r` of a `\r\n`.
    if (this.#pendingBytes + tail.length > this.maxLineBytes + 1) {
      this.#discardedBytes = this.#pendingBytes + tail.length;
      this.#clearPending();
      return;
    }
    this.#pieces().push(tail.slice());
    this.#pendingBytes += tail.length;
  }

  #reportTooLong(tailBytes: number): void {
    const byteLength = this.#discardedBytes + tailBytes;
    this.#discardedBytes = 0;
    this.#handler.onLineTooLong?.(byteLength);
  }

  #clearPending(): void {
    this.#pending = NO_PIECES;
    this.#pendingBytes = 0;
  }

  /** The list of pending pieces, allocated when a line first spans chunks (most connections never do). */
  #pieces(): Uint8Array[] {
    if (this.#pending === NO_PIECES) this.#pending = [];
    return this.#pending;
  }

  /** Joins the pending pieces into one buffer. */
  #takePending(): Uint8Array {
    return concat(this.#pending, this.#pendingBytes);
  }

  /** Decodes `bytes[start, end)` as UTF-8, without a trailing `\r`. */
  #decode(bytes: Uint8Array, start: number, end: number): string {
    if (end > start && bytes[end - 1] === CARRIAGE_RETURN) end -= 1;
    return utf8.decode(bytes.subarray(start, end));
  }
}
