/**
 * lib/stream-reader.ts — asyncio's StreamReader: bytes from one connection, read with `await`.
 *
 * The socket handlers feed it (`feedData`, `feedEof`, `setException`); one task at a time reads from it
 * (`readLine`, `readUntil`, `readExactly`, `read`). Flow control, as asyncio does it: when more than
 * 2 × `limit` bytes sit unread we `pause()` the socket — the kernel's receive window fills and the peer
 * slows down — and at ≤ `limit` we `resume()` it.
 */

/** Default reader limit: 64 KiB (asyncio's `_DEFAULT_LIMIT`). Longest line `readLine()` accepts. */
export const DEFAULT_LIMIT = 64 * 1024;

const NEWLINE = new Uint8Array([0x0a]);
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** EOF came before the read could complete. `partial` holds what was read; `expected` what was asked. */
export class IncompleteReadError extends Error {
  override name = "IncompleteReadError";
  constructor(
    readonly partial: Uint8Array,
    /** Bytes `readExactly` asked for; `null` for `readUntil`, which has no fixed size. */
    readonly expected: number | null,
  ) {
    super(
      `${partial.length} bytes read on a total of ${expected === null ? "undefined" : expected} expected bytes`,
    );
  }
}

/**
 * The separator was not found within `limit` bytes. `consumed` is how many bytes the caller would have to
 * read to get past the data examined so far (for `readUntil`, they are still buffered; for `readLine`,
 * they were discarded).
 */
export class LimitOverrunError extends Error {
  override name = "LimitOverrunError";
  constructor(
    message: string,
    readonly consumed: number,
  ) {
    super(message);
  }
}

/** What a StreamReader needs from its transport: asyncio's `pause_reading` / `resume_reading`. */
export interface ReadFlowControl {
  pause(): void;
  resume(): void;
}

/**
 * Buffered bytes from one connection, read with `await`. Fed by the socket handlers (`feedData`, `feedEof`,
 * `setException`); read by one task at a time — a second read while one is waiting throws.
 *
 * Every method returns fresh copies: the caller may keep or modify what it gets.
 */
export class StreamReader {
  readonly limit: number;
  #buffer: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  #eof = false;
  #exception: Error | null = null;
  #waiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  /** A readLine() waiting for its line; `searched`: bytes already known to hold no newline. */
  #lineWaiter: {
    resolve: (line: Uint8Array) => void;
    reject: (error: Error) => void;
    searched: number;
  } | null = null;
  #transport: ReadFlowControl | null = null;
  #paused = false;

  /** @param limit buffer limit in bytes (default {@link DEFAULT_LIMIT}): longest line; pause threshold ÷ 2. */
  constructor(limit = DEFAULT_LIMIT) {
    if (!Number.isInteger(limit) || limit <= 0) throw new RangeError(`limit must be a positive integer`);
    this.limit = limit;
  }

  /** Bytes buffered and not yet read. */
  get bufferedBytes(): number {
    return this.#end - this.#start;
  }

  /** Connects the reader to the transport it pauses when its buffer is full. */
  setTransport(transport: ReadFlowControl): void {
    this.#transport = transport;
  }

  /** Appends bytes from the socket. Pauses the transport past 2 × limit. */
  feedData(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#append(chunk);
    if (this.#lineWaiter) this.#serveLineWaiter();
    else this.#wakeWaiter();
    if (!this.#paused && this.#transport && this.bufferedBytes > 2 * this.limit) {
      this.#paused = true;
      this.#transport.pause();
    }
  }

  /** Marks the end of the stream: reads return what is buffered, then EOF. */
  feedEof(): void {
    this.#eof = true;
    if (this.#lineWaiter) this.#serveLineWaiter();
    else this.#wakeWaiter();
  }

  /** Fails the stream: a waiting read and every later read throw `error` (buffered bytes stay readable). */
  setException(error: Error): void {
    this.#exception = error;
    const waiter = this.#waiter ?? this.#lineWaiter;
    this.#waiter = null;
    this.#lineWaiter = null;
    waiter?.reject(error);
  }

  /** The exception set by {@link setException}, if any. */
  exception(): Error | null {
    return this.#exception;
  }

  /** True once EOF was fed and every buffered byte has been read. */
  atEof(): boolean {
    return this.#eof && this.bufferedBytes === 0;
  }

  /**
   * Reads one line, `\n` included.
   *
   * - At EOF, returns the partial last line (without `\n`), then an empty array on every later call.
   * - A line longer than `limit` is skipped whole — its bytes are discarded as they arrive, up to and
   *   including its `\n` — and `LimitOverrunError` is thrown with `consumed` = bytes discarded. The next
   *   `readLine()` returns the line after it. (asyncio instead leaves the rest of the long line in the
   *   stream, where it is read as if it were the next line; we keep the stream in step.)
   * - Throws the transport's error (e.g. {@link ConnectionLostError}) if the connection failed.
   */
  readLine(): Promise<Uint8Array> {
    if (this.#exception === null && this.#waiter === null && this.#lineWaiter === null) {
      const buffered = this.bufferedBytes;
      const newline = this.#find(NEWLINE, 0);
      // The whole line is already here: the common case on a busy connection.
      if (newline !== -1 && newline <= this.limit) return Promise.resolve(this.#take(newline + 1));
      // Not yet: wait for the line itself — feedData hands it over the moment its newline arrives.
      if (newline === -1 && buffered <= this.limit && !this.#eof) {
        return new Promise((resolve, reject) => {
          this.#lineWaiter = { resolve, reject, searched: buffered };
        });
      }
    }
    return this.#readLineSlowly();
  }

  /** Gives the waiting readLine() its line if it has arrived; hands anything unusual to the slow path. */
  #serveLineWaiter(): void {
    const waiter = this.#lineWaiter!;
    const newline = this.#find(NEWLINE, waiter.searched);
    if (newline !== -1 && newline <= this.limit) {
      this.#lineWaiter = null;
      waiter.resolve(this.#take(newline + 1));
    } else if (newline !== -1 || this.bufferedBytes > this.limit || this.#eof) {
      // Over the limit, or EOF: the general rules apply.
      this.#lineWaiter = null;
      this.#readLineSlowly().then(waiter.resolve, waiter.reject);
    } else {
      waiter.searched = this.bufferedBytes;
    }
  }

  /** readUntil("\n") with readLine's rules, written out: a server awaits this once per line. */
  async #readLineSlowly(): Promise<Uint8Array> {
    let searched = 0; // bytes already searched for a newline
    for (;;) {
      this.#throwIfFailed();
      const newline = this.#find(NEWLINE, searched);
      if (newline !== -1) {
        if (newline > this.limit) throw await this.#skipLongLine();
        return this.#take(newline + 1);
      }
      searched = this.bufferedBytes;
      if (searched > this.limit) throw await this.#skipLongLine();
      if (this.#eof) return this.#take(searched); // the partial last line; empty after it
      await this.#waitForData("readLine");
    }
  }

  /**
   * Reads up to and including `separator`.
   *
   * - At EOF without the separator: throws `IncompleteReadError` whose `partial` is everything buffered
   *   (which is consumed).
   * - If the separator is not found within `limit` bytes: throws `LimitOverrunError`; the data stays in
   *   the buffer and `consumed` says how much can be read past.
   */
  async readUntil(separator: Uint8Array | string = NEWLINE): Promise<Uint8Array> {
    this.#throwIfReading("readUntil");
    const sep = typeof separator === "string" ? utf8.encode(separator) : separator;
    if (sep.length === 0) throw new RangeError("separator must not be empty");
    // Where to resume searching: the bytes before it were already searched.
    let offset = 0;
    let found = -1;
    for (;;) {
      this.#throwIfFailed();
      const buffered = this.bufferedBytes;
      if (buffered - offset >= sep.length) {
        found = this.#find(sep, offset);
        if (found !== -1) break;
        offset = buffered + 1 - sep.length;
        if (offset > this.limit) {
          throw new LimitOverrunError("separator is not found, and chunk exceeds the limit", offset);
        }
      }
      if (this.#eof) throw new IncompleteReadError(this.#take(buffered), null);
      await this.#waitForData("readUntil");
    }
    if (found > this.limit) {
      throw new LimitOverrunError("separator is found, but chunk is longer than limit", found);
    }
    return this.#take(found + sep.length);
  }

  /**
   * Reads exactly `n` bytes. At EOF first: throws `IncompleteReadError` whose `partial` holds the bytes
   * that did arrive (consumed). `n` may exceed `limit`: reading is resumed while we wait.
   */
  readExactly(n: number): Promise<Uint8Array> {
    const idle = this.#waiter === null && this.#lineWaiter === null;
    if (idle && this.#exception === null && this.bufferedBytes >= n && Number.isInteger(n) && n >= 0) {
      return Promise.resolve(this.#take(n));
    }
    return this.#readExactlySlowly(n);
  }

  async #readExactlySlowly(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`readExactly size must be a non-negative integer`);
    while (this.bufferedBytes < n) {
      this.#throwIfFailed();
      if (this.#eof) throw new IncompleteReadError(this.#take(this.bufferedBytes), n);
      await this.#waitForData("readExactly");
    }
    this.#throwIfFailed();
    return this.#take(n);
  }

  /**
   * Reads up to `n` bytes; with `n = -1` (the default), everything until EOF.
   * Returns as soon as any bytes are buffered; returns an empty array at EOF.
   */
  async read(n = -1): Promise<Uint8Array> {
    this.#throwIfReading("read");
    if (n === 0) return EMPTY;
    if (n < 0) {
      while (!this.#eof) {
        this.#throwIfFailed();
        // Resume the socket: reading to EOF means buffering it all.
        await this.#waitForData("read");
      }
      this.#throwIfFailed();
      return this.#take(this.bufferedBytes);
    }
    while (this.bufferedBytes === 0 && !this.#eof) {
      this.#throwIfFailed();
      await this.#waitForData("read");
    }
    if (this.bufferedBytes === 0) this.#throwIfFailed();
    return this.#take(Math.min(n, this.bufferedBytes));
  }

  /** Async iteration yields lines until EOF, like `async for line in reader`. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const line = await this.readLine();
      if (line.length === 0) return;
      yield line;
    }
  }

  /** Discards the rest of an over-long line, through its `\n`; returns the error to throw. */
  async #skipLongLine(): Promise<LimitOverrunError> {
    let discarded = 0;
    for (;;) {
      const newline = this.#find(NEWLINE, 0);
      if (newline !== -1) {
        discarded += newline + 1;
        this.#skip(newline + 1);
        break;
      }
      discarded += this.bufferedBytes;
      this.#skip(this.bufferedBytes);
      if (this.#eof) break;
      this.#throwIfFailed();
      await this.#waitForData("readLine");
    }
    return new LimitOverrunError(`line is longer than the limit of ${this.limit} bytes`, discarded);
  }

  #throwIfFailed(): void {
    if (this.#exception) throw this.#exception;
  }

  /** Two reads at once on one reader would steal each other's bytes: the second one is an error. */
  #throwIfReading(caller: string): void {
    if (this.#waiter || this.#lineWaiter) {
      throw new Error(`${caller}() called while another coroutine is already waiting for incoming data`);
    }
  }

  #waitForData(caller: string): Promise<void> {
    this.#throwIfReading(caller);
    // Waiting with a paused transport would wait forever (readExactly(n > 2 × limit), read(-1)).
    if (this.#paused) {
      this.#paused = false;
      this.#transport?.resume();
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #wakeWaiter(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.resolve();
  }

  #append(chunk: Uint8Array): void {
    const needed = this.#end + chunk.length;
    if (needed > this.#buffer.length) {
      const live = this.#end - this.#start;
      if (live + chunk.length <= this.#buffer.length / 2) {
        // Plenty of room once the consumed bytes at the front are dropped: slide the live bytes down.
        this.#buffer.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(Math.max(2 * (live + chunk.length), 4096));
        grown.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = grown;
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** Index (relative to the unread bytes) of the first `separator` at or after `from`, or -1. */
  #find(separator: Uint8Array, from: number): number {
    // Search the backing buffer in place: a subarray() view per call costs more than the search itself.
    const buffer = this.#buffer;
    const start = this.#start;
    const lastStart = this.#end - separator.length;
    const first = separator[0]!;
    let index = buffer.indexOf(first, start + from);
    while (index !== -1 && index <= lastStart) {
      let matched = 1;
      while (matched < separator.length && buffer[index + matched] === separator[matched]) matched++;
      if (matched === separator.length) return index - start;
      index = buffer.indexOf(first, index + 1);
    }
    return -1;
  }

  /** Removes and returns (a copy of) the first `n` unread bytes. */
  #take(n: number): Uint8Array {
    const bytes = this.#buffer.slice(this.#start, this.#start + n);
    this.#skip(n);
    return bytes;
  }

  #skip(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    }
    if (this.#paused && this.bufferedBytes <= this.limit) {
      this.#paused = false;
      this.#transport?.resume();
    }
  }
}
