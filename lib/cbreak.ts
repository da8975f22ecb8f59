/**
 * lib/cbreak.ts — keys from the terminal, one at a time, and a terminal that is always given back.
 *
 * A terminal has three moods (termios modes):
 * - cooked (canonical): the terminal driver collects a whole line, handles Backspace itself, and the
 *   program sees nothing until Enter. `readLine()` lives here — and so the program cannot print while
 *   you are halfway through typing, because it does not even know you are typing.
 * - raw: every byte reaches the program at once; no echo, no line editing, and Ctrl+C is just byte 0x03
 *   (ISIG is off) — no SIGINT.
 * - cbreak: each key reaches the program as it is typed, without echo (ICANON and ECHO off), but the
 *   driver still turns Ctrl+C into SIGINT (ISIG on).
 *
 * Two ways to switch, both here:
 * - {@link setTerminalMode} sets exactly the mode asked for, with `stty` run on our terminal (Bun has no
 *   termios call; `stty` is the one every shell has): cbreak is `stty -icanon -echo`, the real thing.
 *   Lesson 03's `--demo-modes` uses it to show all three.
 * - {@link enterCbreak}, for the consoles of lessons 03 and 06, sets raw mode — Bun's
 *   `process.stdin.setRawMode(true)`: no ICANON, no ECHO, no ISIG, no IXON, no ICRNL (`stty -a` shows it),
 *   restored by Bun at exit too — and then plays the driver's part for the one difference from cbreak that
 *   matters: Ctrl+C arrives as the byte 0x03, is decoded as an `interrupt` key, and the console answers it
 *   as SIGINT would (restore the terminal, exit 130) — after closing its connections, which a signal
 *   handler could not wait for. So the lessons say cbreak, and this is raw mode with Ctrl+C handled.
 *
 * The book's "read(1) one char at a time" is {@link KeyReader.readKey}: await one key. Under it a
 * {@link KeyDecoder} turns bytes into keys, with UTF-8 characters kept whole even when they arrive split
 * across reads, escape sequences (arrows, Home/End) and bracketed paste (the terminal wraps pasted text in
 * ESC[200~ … ESC[201~, so a pasted newline is text, not Enter).
 *
 * The terminal is always restored — on a normal exit, SIGTERM, SIGHUP, SIGINT, an uncaught exception — by
 * {@link enterCbreak}'s restore function, which every exit path calls (and calling it twice is harmless).
 */

export type Key =
  | { kind: "text"; text: string }
  | { kind: "paste"; text: string }
  | { kind: "enter" }
  | { kind: "backspace" }
  | { kind: "delete" }
  | { kind: "left" }
  | { kind: "right" }
  | { kind: "up" }
  | { kind: "down" }
  | { kind: "home" }
  | { kind: "end" }
  | { kind: "clear-line" }
  | { kind: "interrupt" }
  | { kind: "eof" };

const ESC = 0x1b;
/** Control bytes and the keys they are. */
const CONTROL_KEYS: Record<number, Key> = {
  1: { kind: "home" }, // Ctrl+A
  3: { kind: "interrupt" }, // Ctrl+C
  4: { kind: "eof" }, // Ctrl+D
  5: { kind: "end" }, // Ctrl+E
  8: { kind: "backspace" }, // Ctrl+H
  10: { kind: "enter" }, // LF
  13: { kind: "enter" }, // CR: what Enter sends in raw mode
  21: { kind: "clear-line" }, // Ctrl+U
  127: { kind: "backspace" }, // DEL: what Backspace sends
};
/** CSI (ESC [) and SS3 (ESC O) sequences and the keys they are. */
const ESCAPE_KEYS: Record<string, Key> = {
  "[A": { kind: "up" },
  "[B": { kind: "down" },
  "[C": { kind: "right" },
  "[D": { kind: "left" },
  "[H": { kind: "home" },
  "[F": { kind: "end" },
  OH: { kind: "home" },
  OF: { kind: "end" },
  "[1~": { kind: "home" },
  "[7~": { kind: "home" },
  "[4~": { kind: "end" },
  "[8~": { kind: "end" },
  "[3~": { kind: "delete" },
};
const PASTE_START = "\x1b[200~";
const PASTE_END = "\x1b[201~";
/** Longest paste kept: 1 Mi characters of text. The rest is dropped rather than held without bound. */
export const MAX_PASTE_CHARS = 1024 * 1024;

/**
 * Turns the bytes a terminal sends into keys. `push(bytes)` returns the keys those bytes complete; a
 * character, escape sequence or paste that is not complete yet waits for the next push.
 */
export class KeyDecoder {
  readonly #utf8 = new TextDecoder("utf-8");
  /** Decoded text not yet turned into keys (an unfinished escape sequence). */
  #pending = "";
  /** Inside a bracketed paste: the text so far. */
  #paste: string | null = null;

  push(bytes: Uint8Array): Key[] {
    // `stream: true` keeps the first bytes of a split UTF-8 character until the rest arrives.
    this.#pending += this.#utf8.decode(bytes, { stream: true });
    const keys: Key[] = [];
    let text = "";
    const flushText = () => {
      if (text) keys.push({ kind: "text", text });
      text = "";
    };
    let index = 0;
    const input = this.#pending;
    while (index < input.length) {
      if (this.#paste !== null) {
        const end = input.indexOf(PASTE_END, index);
        // Without the end marker, a possible start of it stays pending for the next push.
        const keep = end === -1 ? Math.min(longestPrefixAtEnd(input, PASTE_END), input.length - index) : 0;
        const until = end === -1 ? input.length - keep : end;
        const room = MAX_PASTE_CHARS - this.#paste.length;
        if (room > 0) this.#paste += input.slice(index, Math.min(until, index + room));
        if (end === -1) {
          index = until;
          break;
        }
        keys.push({ kind: "paste", text: this.#paste.replaceAll("\r\n", "\n").replaceAll("\r", "\n") });
        this.#paste = null;
        index = end + PASTE_END.length;
        continue;
      }
      const code = input.charCodeAt(index);
      if (code === ESC) {
        const sequence = matchEscape(input, index);
        if (sequence === "incomplete") break;
        flushText();
        if (sequence.text === PASTE_START) this.#paste = "";
        else if (sequence.key) keys.push(sequence.key);
        index += sequence.text.length;
        continue;
      }
      const control = CONTROL_KEYS[code];
      if (control) {
        flushText();
        keys.push(control);
      } else if (code >= 0x20) {
        text += input[index];
      } // other control bytes (Ctrl+B, Tab, …) are ignored
      index++;
    }
    flushText();
    this.#pending = input.slice(index);
    return keys;
  }
}

/** How many characters at the end of `text` begin `marker`. */
function longestPrefixAtEnd(text: string, marker: string): number {
  for (let length = Math.min(marker.length - 1, text.length); length > 0; length--) {
    if (marker.startsWith(text.slice(text.length - length))) return length;
  }
  return 0;
}

/** The escape sequence at `input[index]` (an ESC), or "incomplete" if it may continue in the next push. */
function matchEscape(input: string, index: number): { text: string; key: Key | null } | "incomplete" {
  if (index + 1 >= input.length) return "incomplete";
  const introducer = input[index + 1];
  if (introducer === "[") {
    // CSI: parameters 0x30–0x3F, intermediates 0x20–0x2F, then one final byte 0x40–0x7E.
    let end = index + 2;
    while (end < input.length && input.charCodeAt(end) >= 0x20 && input.charCodeAt(end) <= 0x3f) end++;
    if (end >= input.length) return "incomplete";
    const text = input.slice(index, end + 1);
    return { text, key: ESCAPE_KEYS[text.slice(1)] ?? null };
  }
  if (introducer === "O") {
    if (index + 2 >= input.length) return "incomplete";
    const text = input.slice(index, index + 3);
    return { text, key: ESCAPE_KEYS[text.slice(1)] ?? null };
  }
  // Alt+key or a lone ESC: nothing we use; drop the ESC.
  return { text: input.slice(index, index + 1), key: null };
}

// ── The terminal mode ─────────────────────────────────────────────────────────────────────────────────

/** The program needs a terminal and has none (stdin is a pipe or a file); one line for the user. */
export class NotATerminalError extends Error {
  override name = "NotATerminalError";
}

/** Exit codes after a signal, as a shell reports them: 128 + the signal's number. */
export const SIGNAL_EXIT_CODES = { SIGHUP: 128 + 1, SIGINT: 128 + 2, SIGTERM: 128 + 15 } as const;
/** The exit code after SIGINT, or after Ctrl+C answered as SIGINT would be: 130. */
export const EXIT_INTERRUPTED = SIGNAL_EXIT_CODES.SIGINT;

/** Bracketed paste on / off (DEC private mode 2004). */
const BRACKETED_PASTE_ON = "\x1b[?2004h";
const BRACKETED_PASTE_OFF = "\x1b[?2004l";

export interface CbreakSession {
  /** Keys as they are typed, until `restore()`: `await session.keys.readKey()` — read(1). */
  keys: KeyReader;
  /** Gives the terminal back as it was. Idempotent; also run on every way out of the process. */
  restore(): void;
}

export interface CbreakIo {
  input: NodeJS.ReadStream;
  output: { write(text: string): unknown };
  /** Extra clean-up to run with the restore (the screen's reset), first. */
  beforeRestore?: () => void;
}

/**
 * Puts the terminal into raw mode (see the top of this file for why the lessons call it cbreak), turns on
 * bracketed paste, and returns its keys. Throws {@link NotATerminalError} if stdin is not a terminal.
 * Until `restore()`, every way out restores the terminal first: `exit`; SIGTERM, SIGHUP and SIGINT, which
 * then exit 143, 129 and 130; an uncaught exception or unhandled rejection, which is printed, then exit 1.
 */
export function enterCbreak(io: CbreakIo = { input: process.stdin, output: process.stdout }): CbreakSession {
  const { input, output } = io;
  if (!input.isTTY) {
    throw new NotATerminalError(
      "this program reads keys from a terminal, but stdin is not one (is it piped?)",
    );
  }
  input.setRawMode(true);
  output.write(BRACKETED_PASTE_ON);
  const keys = new KeyReader();
  const onData = (chunk: Uint8Array) => keys.push(chunk);
  input.on("data", onData);
  input.resume();
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    io.beforeRestore?.();
    output.write(BRACKETED_PASTE_OFF);
    input.off("data", onData);
    input.setRawMode(false);
    input.pause();
    keys.end();
    for (const [event, handler] of handlers) process.off(event as "exit", handler);
  };
  const exitAfterRestore = (code: number) => () => {
    restore();
    process.exit(code);
  };
  const crashAfterRestore = (error: unknown) => {
    restore();
    console.error(error);
    process.exit(1);
  };
  const handlers: [string, (error: unknown) => void][] = [
    ["exit", restore],
    ["SIGTERM", exitAfterRestore(SIGNAL_EXIT_CODES.SIGTERM)],
    ["SIGHUP", exitAfterRestore(SIGNAL_EXIT_CODES.SIGHUP)],
    ["SIGINT", exitAfterRestore(SIGNAL_EXIT_CODES.SIGINT)],
    ["uncaughtException", crashAfterRestore],
    ["unhandledRejection", crashAfterRestore],
  ];
  for (const [event, handler] of handlers) process.on(event as "exit", handler);
  return { keys, restore };
}

/**
 * Keys as they are typed, read one at a time: `await keys.readKey()` is asyncio's `await reader.read(1)`
 * on stdin wrapped in a StreamReader (`loop.connect_read_pipe`) — except that one key is one *character*
 * (all the bytes of a UTF-8 character), one escape sequence (an arrow), or one whole paste, never a
 * fragment of one. Bytes come in with `push()` (from stdin's `data` events); what they complete waits in a
 * queue until read, so no key is lost or reordered however fast they come.
 */
export class KeyReader {
  readonly #decoder = new KeyDecoder();
  #keys: Key[] = [];
  #head = 0;
  #waiting: ((key: Key | null) => void) | null = null;
  #ended = false;

  /** Feeds bytes read from the terminal. */
  push(bytes: Uint8Array): void {
    for (const key of this.#decoder.push(bytes)) {
      // The decoder joins text typed together ("ab" in one read); read(1) gives one character at a time.
      if (key.kind === "text") for (const character of key.text) this.#add({ kind: "text", text: character });
      else this.#add(key);
    }
  }

  /** Adds a key made elsewhere (a signal handler's `interrupt`). */
  pushKey(key: Key): void {
    this.#add(key);
  }

  /** No more keys: a pending and every later `readKey()` returns null (once the queued keys are read). */
  end(): void {
    this.#ended = true;
    if (this.#head === this.#keys.length) this.#wake(null);
  }

  /** The next key: at once if one is queued, else when one is typed; null once {@link end} was called. */
  readKey(): Promise<Key | null> {
    if (this.#waiting) throw new Error("readKey() while another readKey() is waiting: one reader at a time");
    if (this.#head < this.#keys.length) {
      const key = this.#keys[this.#head++]!;
      if (this.#head === this.#keys.length) {
        this.#keys = [];
        this.#head = 0;
      }
      return Promise.resolve(key);
    }
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  #add(key: Key): void {
    if (this.#waiting) this.#wake(key);
    else this.#keys.push(key);
  }

  #wake(key: Key | null): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.(key);
  }
}

// ── The mode switch, exactly: stty ────────────────────────────────────────────────────────────────────

export type TerminalMode = "cooked" | "cbreak" | "raw";

/** What `stty` is given for each mode, on top of the settings the terminal had before. */
const STTY_MODES: Record<Exclude<TerminalMode, "cooked">, string[]> = {
  cbreak: ["-icanon", "-echo"], // keys at once, not shown; ISIG stays: Ctrl+C is SIGINT
  raw: ["raw", "-echo"], // what Bun's setRawMode(true) sets: Ctrl+C is the byte 0x03, Enter is 0x0d
};

/** `stty` failed (no terminal on stdin, or no stty): one line for the user. */
export class TerminalModeError extends Error {
  override name = "TerminalModeError";
}

/** Runs `stty` on our stdin's terminal; returns what it printed. Throws {@link TerminalModeError}. */
function stty(args: string[]): string {
  const result = Bun.spawnSync(["stty", ...args], { stdin: "inherit", stdout: "pipe", stderr: "pipe" });
  if (!result.success) {
    const why =
      new TextDecoder().decode(result.stderr).trim() ||
      (result.signalCode ? `ended by ${result.signalCode}` : `exit code ${result.exitCode}`);
    throw new TerminalModeError(`stty ${args.join(" ")}: ${why}`);
  }
  return new TextDecoder().decode(result.stdout).trim();
}

/** The terminal's settings now, as `stty -g` prints them: give them to {@link restoreTerminalMode}. */
export function saveTerminalMode(): string {
  return stty(["-g"]);
}

/**
 * Puts the terminal in `mode`, starting from `saved` (from {@link saveTerminalMode}, taken in cooked
 * mode): cooked is `saved` itself. Synchronous, so it also works in an `exit` handler.
 */
export function setTerminalMode(mode: TerminalMode, saved: string): void {
  stty([saved]);
  if (mode !== "cooked") stty(STTY_MODES[mode]);
}

/** Gives the terminal back its `saved` settings. */
export function restoreTerminalMode(saved: string): void {
  stty([saved]);
}
