/**
 * lib/stream-reader.ts — asyncio's StreamReader: bytes from one connection, read with `await`.
 *
 * The socket handlers feed it (`feedData`, `feedEof`, `setException`); one task at a time reads from it
 * (`readLine`, `readUntil`, `readExactly`, `read`, and `tryReadExactly`, which never waits). Flow control, as asyncio does it: when more than
 * 2 × `limit` bytes sit unread we `pause()` the socket — the kernel's receive window fills and the peer
 * slows down — and at ≤ `limit` we `resume()` it.
 *
 * Held against CPython's own tests (Lib/test/test_asyncio/test_streams.py, ported in
 * tests/stream-reader.test.ts under the same names). Where we differ, on purpose:
 * - One reader at a time is enforced for *every* read that consumes bytes, not only for one that must
 *   wait (asyncio's rule): otherwise a `readLine()` served from the buffer steals bytes from a
 *   `readExactly()` that is waiting for more. Zero-byte reads consume nothing and never conflict.
 * - `readLine()` skips a line over the limit whole (see there); asyncio leaves its tail in the stream.
 * - The memory of a buffer that grew for a big read is given back when it empties
 *   ({@link RETAINED_BUFFER_BYTES}); asyncio's bytearray keeps its peak allocation.
 * - `tryReadExactly` is ours: asyncio has no read that never waits.
 * - A waiting `readExactly` takes its bytes inside `feedData`, the moment the last one arrives (asyncio's
 *   wakes up in a later task step): a reader that wants the rest of a message sees it buffered at once.
 * - Errors speak this project's one-line voice, not asyncio's wording.
 */

/** Default reader limit: 64 KiB (asyncio's `_DEFAULT_LIMIT`). Longest line `readLine()` accepts. */
export const DEFAULT_LIMIT = 64 * 1024;
/**
 * Largest buffer kept once every byte in it has been read: 16 KiB. A bigger one (grown for a 60 MB body,
 * or while a peer flooded a paused reader) is let go, so an idle connection costs ≤ 16 KiB, not its peak.
 */
export const RETAINED_BUFFER_BYTES = 16 * 1024;
/** Smallest buffer allocated: 4 KiB. */
const MIN_BUFFER_BYTES = 4 * 1024;

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
      expected === null
        ? `stream ended after ${partial.length} bytes, before the separator`
        : `stream ended after ${partial.length} of ${expected} bytes`,
    );
  }
}

/** A read was started while another one was waiting on the same reader (one reader at a time). */
export class ConcurrentReadError extends Error {
  override name = "ConcurrentReadError";
  constructor(
    /** The read that was refused, e.g. `readLine`. */
    readonly method: string,
  ) {
    super(`${method}() while another read is waiting on this stream: one reader at a time`);
  }
}

/**
 * The separator was not found within `limit` bytes. `consumed` is how many bytes the caller would have to
 * read to get past the data examined so far (for `readUntil`, they are still buffered; for `readLine`,
 * they were discarded). `endsWithNewline`: for `readLine`, whether the skipped line ended with its `\n`
 * (counted in `consumed`) rather than at EOF; always false for `readUntil`.
 */
export class LimitOverrunError extends Error {
  override name = "LimitOverrunError";
  constructor(
    message: string,
    readonly consumed: number,
    readonly endsWithNewline = false,
  ) {
    super(message);
  }
}

/** What a StreamReader needs from its transport: asyncio's `pause_reading` / `resume_reading`. */
export interface ReadFlowControl {
  pause(): void;
  resume(): void;
}

/** A separator for {@link StreamReader.readUntil}: bytes, or a string sent as UTF-8. */
export type Separator = Uint8Array | string;

/**
 * Buffered bytes from one connection, read with `await`. Fed by the socket handlers (`feedData`, `feedEof`,
 * `setException`); read by one task at a time.
 *
 * The rules every read follows:
 * - **One reader at a time.** A read that would consume bytes while another read is waiting rejects with
 *   {@link ConcurrentReadError} (even when it could be served from the buffer). `read(0)` and
 *   `readExactly(0)` consume nothing and never conflict.
 * - **A failed stream fails every read.** After `setException(error)`, every read rejects with `error`,
 *   bytes still buffered or not (asyncio's rule); so does the read that was waiting.
 * - **EOF is final.** `feedData` after `feedEof` throws.
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
  /**
   * A readLine() or readUntil(one separator) waiting for its separator: feedData hands over the bytes the
   * moment it arrives, with no task switch in between. `searched`: bytes already known to hold no match;
   * `line`: a readLine(), whose full rules (for anything unusual: over the limit, EOF) differ from readUntil's.
   */
  #separatorWaiter: {
    resolve: (line: Uint8Array) => void;
    reject: (error: Error) => void;
    separator: Uint8Array;
    searched: number;
    line: boolean;
  } | null = null;
  /**
   * A readExactly(n) waiting for its bytes: feedData hands them over the moment the n-th arrives (feedEof
   * fails it), with no task switch in between — a read that waits for a 2-byte frame header wakes once.
   */
  #exactWaiter: {
    resolve: (bytes: Uint8Array) => void;
    reject: (error: Error) => void;
    n: number;
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

  /** Bytes of memory the buffer holds (≥ {@link bufferedBytes}; ≤ {@link RETAINED_BUFFER_BYTES} once empty). */
  get capacityBytes(): number {
    return this.#buffer.length;
  }

  /** Connects the reader to the transport it pauses when its buffer is full. */
  setTransport(transport: ReadFlowControl): void {
    this.#transport = transport;
  }

  /** Appends bytes from the socket (copied). Pauses the transport past 2 × limit. Throws after EOF. */
  feedData(chunk: Uint8Array): void {
    if (this.#eof) throw new Error("feedData() after feedEof(): the stream has ended");
    if (chunk.length === 0) return;
    this.#append(chunk);
    if (this.#separatorWaiter) this.#serveSeparatorWaiter();
    else if (this.#exactWaiter) this.#serveExactWaiter();
    else this.#wakeWaiter();
    // A readExactly() still waiting needs more than is buffered: pausing now would leave it waiting for ever.
    if (!this.#paused && this.#transport && this.bufferedBytes > 2 * this.limit && !this.#exactWaiter) {
      this.#paused = true;
      this.#transport.pause();
    }
  }

  /** Marks the end of the stream: reads return what is buffered, then EOF. */
  feedEof(): void {
    this.#eof = true;
    if (this.#separatorWaiter) this.#serveSeparatorWaiter();
    else if (this.#exactWaiter) this.#serveExactWaiter();
    else this.#wakeWaiter();
  }

  /** Fails the stream: the waiting read and every later read reject with `error`, bytes buffered or not. */
  setException(error: Error): void {
    this.#exception = error;
    const waiter = this.#waiter ?? this.#separatorWaiter ?? this.#exactWaiter;
    this.#waiter = null;
    this.#separatorWaiter = null;
    this.#exactWaiter = null;
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
   *   including its `\n` (or EOF) — and `LimitOverrunError` is thrown with `consumed` = bytes discarded.
   *   The next `readLine()` returns the line after it. (asyncio throws as soon as the limit is passed and
   *   leaves the rest of the long line in the stream, where it is read as if it were the next line; we
   *   keep the stream in step. Memory stays bounded; to fail at the limit instead, use `readUntil`.)
   * - Throws the transport's error (e.g. `ConnectionLostError`) if the connection failed.
   */
  readLine(): Promise<Uint8Array> {
    if (this.#exception !== null) return Promise.reject(this.#exception);
    if (this.#reading()) {
      return Promise.reject(new ConcurrentReadError("readLine"));
    }
    return this.#readSeparatorAtOnce(NEWLINE, true) ?? this.#readLineSlowly();
  }

  /**
   * The common case of readLine() and readUntil(bytes), for a caller that checked nobody else reads: the
   * separator already buffered within the limit (a busy connection) is served at once; one not here yet is
   * waited for, and feedData hands the bytes over the moment it arrives. Null for anything unusual (over
   * the limit, EOF): the caller's full rules decide.
   */
  #readSeparatorAtOnce(separator: Uint8Array, line: boolean): Promise<Uint8Array> | null {
    const found = this.#find(separator, 0);
    if (found !== -1 && found <= this.limit) return Promise.resolve(this.#take(found + separator.length));
    if (found !== -1 || this.bufferedBytes > this.limit || this.#eof) return null;
    const searched = Math.max(0, this.bufferedBytes + 1 - separator.length);
    return new Promise((resolve, reject) => {
      this.#separatorWaiter = { resolve, reject, separator, searched, line };
    });
  }

  /** Gives the waiting read its bytes if the separator has arrived; hands anything unusual to the slow path. */
  #serveSeparatorWaiter(): void {
    const waiter = this.#separatorWaiter!;
    const found = this.#find(waiter.separator, waiter.searched);
    if (found !== -1 && found <= this.limit) {
      this.#separatorWaiter = null;
      waiter.resolve(this.#take(found + waiter.separator.length));
    } else if (found !== -1 || this.bufferedBytes > this.limit || this.#eof) {
      // Over the limit, or EOF: the general rules apply.
      this.#separatorWaiter = null;
      const slowly = waiter.line ? this.#readLineSlowly() : this.#readUntilSlowly(waiter.separator);
      slowly.then(waiter.resolve, waiter.reject);
    } else {
      waiter.searched = Math.max(0, this.bufferedBytes + 1 - waiter.separator.length);
    }
  }

  /** readLine's rules written out in full, for the uncommon cases: a line over the limit, or EOF. */
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
      await this.#waitForData();
    }
  }

  /**
   * Reads up to and including a separator. Given several (an array), the earliest match wins — the one
   * that *ends* first, the shortest on a tie (asyncio 3.13's tuple of separators).
   *
   * - At EOF without a separator: throws `IncompleteReadError` whose `partial` is everything buffered
   *   (which is consumed).
   * - If no separator is found within `limit` bytes, or the one found starts past `limit`: throws
   *   `LimitOverrunError` at once; the data stays buffered and `consumed` says how much can be read past.
   * - An empty separator, or an empty array, is a `RangeError`.
   */
  readUntil(separator: Separator | readonly Separator[] = NEWLINE): Promise<Uint8Array> {
    // The common case: one separator in bytes, nobody else reading, no exception.
    if (separator instanceof Uint8Array && separator.length > 0 && this.#idle()) {
      const served = this.#readSeparatorAtOnce(separator, false);
      if (served !== null) return served;
    }
    return this.#readUntilSlowly(separator);
  }

  async #readUntilSlowly(separator: Separator | readonly Separator[]): Promise<Uint8Array> {
    const separators = separatorList(separator);
    this.#throwIfFailed();
    this.#throwIfReading("readUntil");
    const shortest = separators[0]!.length;
    const longest = separators[separators.length - 1]!.length;
    // Where to resume searching: the bytes before it were already searched.
    let offset = 0;
    let match: { start: number; end: number } | null = null;
    for (;;) {
      const buffered = this.bufferedBytes;
      if (buffered - offset >= shortest) {
        match = this.#findEarliest(separators, offset);
        if (match) break;
        offset = Math.max(0, buffered + 1 - longest);
        if (offset > this.limit) {
          throw new LimitOverrunError(
            `no separator within the limit of ${this.limit} bytes (${offset} bytes searched)`,
            offset,
          );
        }
      }
      if (this.#eof) throw new IncompleteReadError(this.#take(buffered), null);
      await this.#waitForData();
      this.#throwIfFailed();
    }
    if (match.start > this.limit) {
      throw new LimitOverrunError(
        `separator found ${match.start} bytes in, past the limit of ${this.limit} bytes`,
        match.start,
      );
    }
    return this.#take(match.end);
  }

  /**
   * Reads exactly `n` bytes. At EOF first: throws `IncompleteReadError` whose `partial` holds the bytes
   * that did arrive (consumed). `n` may exceed `limit`: reading is resumed while we wait. `n = 0` returns
   * an empty array at once (or throws the stream's exception); a negative `n` is a `RangeError`.
   */
  readExactly(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0) {
      return Promise.reject(new RangeError(`readExactly size must be a non-negative integer, got ${n}`));
    }
    if (this.#exception !== null) return Promise.reject(this.#exception);
    if (n === 0) return Promise.resolve(EMPTY);
    if (this.#reading()) {
      return Promise.reject(new ConcurrentReadError("readExactly"));
    }
    if (this.bufferedBytes >= n) return Promise.resolve(this.#take(n));
    if (this.#eof) return Promise.reject(new IncompleteReadError(this.#take(this.bufferedBytes), n));
    this.#resumeTransport(); // n may be over 2 × limit: the bytes must be let in
    return new Promise((resolve, reject) => {
      this.#exactWaiter = { resolve, reject, n };
    });
  }

  /** Gives the waiting readExactly its bytes once all have arrived; fails it at EOF. */
  #serveExactWaiter(): void {
    const waiter = this.#exactWaiter!;
    if (this.bufferedBytes >= waiter.n) {
      this.#exactWaiter = null;
      waiter.resolve(this.#take(waiter.n));
    } else if (this.#eof) {
      this.#exactWaiter = null;
      waiter.reject(new IncompleteReadError(this.#take(this.bufferedBytes), waiter.n));
    }
  }

  /**
   * Reads exactly `n` bytes if they are all buffered now, without waiting: returns them (consumed, a fresh
   * copy), or `null` when fewer than `n` are buffered — and then consumes nothing, so that an awaited
   * `readExactly(n)` can follow. At EOF with fewer than `n` bytes buffered it returns `null` too (the
   * `readExactly` after it throws `IncompleteReadError`). `n = 0` returns an empty array.
   *
   * Throws — synchronously — the stream's exception once `setException` was called, a
   * {@link ConcurrentReadError} while another read is waiting (for `n > 0`), and a `RangeError` for an `n`
   * that is not a non-negative integer.
   *
   * What it is for: a parser of a binary protocol whose message has several fields, each of whose length
   * depends on the one before (a WebSocket frame's header, extended length, mask, payload). Each field is
   * usually here already, in the chunk that brought the first byte: taking it at once costs no promise and
   * no turn of the microtask queue, and the parser awaits only for a field that really is still on its way.
   * What it buys, with the waiting `readExactly` served from `feedData`: lesson 08's /echo went from ~12 to
   * ~8 µs of server CPU a round trip (lib/websocket/connection.ts, `#read`, has the measurement).
   */
  tryReadExactly(n: number): Uint8Array | null {
    if (!Number.isInteger(n) || n < 0) {
      throw new RangeError(`tryReadExactly size must be a non-negative integer, got ${n}`);
    }
    this.#throwIfFailed();
    if (n === 0) return EMPTY;
    this.#throwIfReading("tryReadExactly");
    return this.bufferedBytes >= n ? this.#take(n) : null;
  }

  /**
   * Reads up to `n` bytes; with `n = -1` (the default), everything until EOF.
   * Returns as soon as any bytes are buffered; returns an empty array at EOF. `read(0)` returns an empty
   * array at once (or throws the stream's exception).
   */
  async read(n = -1): Promise<Uint8Array> {
    this.#throwIfFailed();
    if (n === 0) return EMPTY;
    this.#throwIfReading("read");
    if (n < 0) {
      // Reading to EOF means buffering it all: #waitForData resumes a paused socket.
      while (!this.#eof) {
        await this.#waitForData();
        this.#throwIfFailed();
      }
      return this.#take(this.bufferedBytes);
    }
    while (this.bufferedBytes === 0 && !this.#eof) {
      await this.#waitForData();
      this.#throwIfFailed();
    }
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
    let endsWithNewline = false;
    for (;;) {
      const newline = this.#find(NEWLINE, 0);
      if (newline !== -1) {
        discarded += newline + 1;
        this.#skip(newline + 1);
        endsWithNewline = true;
        break;
      }
      discarded += this.bufferedBytes;
      this.#skip(this.bufferedBytes);
      if (this.#eof) break;
      this.#throwIfFailed();
      await this.#waitForData();
    }
    return new LimitOverrunError(
      `line of ${discarded} bytes is longer than the limit of ${this.limit} bytes`,
      discarded,
      endsWithNewline,
    );
  }

  /** Some read is waiting on this reader: another one must not take bytes. */
  #reading(): boolean {
    return this.#waiter !== null || this.#separatorWaiter !== null || this.#exactWaiter !== null;
  }

  /** No read waiting, no exception: a read may be served from the buffer at once. */
  #idle(): boolean {
    return !this.#reading() && this.#exception === null;
  }

  #throwIfFailed(): void {
    if (this.#exception) throw this.#exception;
  }

  /** Two reads at once on one reader would steal each other's bytes: the second one is an error. */
  #throwIfReading(method: string): void {
    if (this.#reading()) throw new ConcurrentReadError(method);
  }

  /** Waits for the next feedData/feedEof/setException. Callers have checked that nobody else waits. */
  #waitForData(): Promise<void> {
    // Waiting with a paused transport would wait forever (read(-1)).
    this.#resumeTransport();
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  #resumeTransport(): void {
    if (this.#paused) {
      this.#paused = false;
      this.#transport?.resume();
    }
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
        const grown = new Uint8Array(Math.max(2 * (live + chunk.length), MIN_BUFFER_BYTES));
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

  /** The match that ends first among `separators` (sorted shortest first, so a tie goes to the shortest). */
  #findEarliest(separators: Uint8Array[], from: number): { start: number; end: number } | null {
    let best: { start: number; end: number } | null = null;
    for (const separator of separators) {
      const start = this.#find(separator, from);
      if (start !== -1 && (best === null || start + separator.length < best.end)) {
        best = { start, end: start + separator.length };
      }
    }
    return best;
  }

  /** Removes and returns (a copy of) the first `n` unread bytes. */
  #take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    const bytes = this.#buffer.slice(this.#start, this.#start + n);
    this.#skip(n);
    return bytes;
  }

  #skip(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
      // Empty: give a big buffer back rather than keep the peak of one large read for ever.
      if (this.#buffer.length > RETAINED_BUFFER_BYTES) this.#buffer = EMPTY;
    }
    if (this.#paused && this.bufferedBytes <= this.limit) {
      this.#paused = false;
      this.#transport?.resume();
    }
  }
}

/** The separators as bytes, shortest first; a `RangeError` for an empty one or none. */
function separatorList(separator: Separator | readonly Separator[]): Uint8Array[] {
  const list = (Array.isArray(separator) ? separator : [separator]) as Separator[];
  if (list.length === 0) throw new RangeError("readUntil needs at least one separator");
  const bytes = list.map((one) => (typeof one === "string" ? utf8.encode(one) : one));
  if (bytes.some((one) => one.length === 0)) throw new RangeError("a separator must not be empty");
  return bytes.length === 1 ? bytes : bytes.sort((a, b) => a.length - b.length);
}
