/**
 * lib/streams.ts — asyncio's StreamReader / StreamWriter, on Bun's TCP sockets.
 *
 * Lesson 01 shows the low level: a socket calls our handlers (`open`, `data`, `drain`, `end`, `close`) and
 * we keep our own buffers. This module wraps that once, so that code can *await* bytes instead:
 *
 *   const [reader, writer] = await openConnection("example.com", 80);
 *   writer.write("GET / HTTP/1.1\r\n...");
 *   const statusLine = await reader.readLine();
 *
 * asyncio ↔ here:
 *   asyncio.open_connection  ↔ openConnection        StreamReader.readline    ↔ readLine
 *   asyncio.start_server     ↔ startServer           StreamReader.readuntil   ↔ readUntil
 *   StreamReader.readexactly ↔ readExactly           StreamWriter.write_eof   ↔ writeEof
 *   StreamWriter.wait_closed ↔ waitClosed            StreamWriter.is_closing  ↔ isClosing
 *
 * Two facts about Bun's sockets shape everything below (see shared/bun-facts.md):
 * 1. `socket.write()` does not buffer: it returns how many bytes the kernel took. The rest is ours to keep
 *    and to send from the `drain` handler. So StreamWriter keeps a send queue.
 * 2. `socket.end(data)` silently drops whatever the kernel does not take at once. So `close()` sends
 *    everything queued first and calls `end()` only on an empty queue.
 *
 * Flow control, both ways, as asyncio does it:
 * - Reading: when more than 2 × `limit` bytes sit unread in a StreamReader we `pause()` the socket (the
 *   kernel's receive window then fills and the peer slows down); at ≤ `limit` we `resume()` it.
 * - Writing: `write()` never blocks and never loses bytes; `await writer.drain()` is the brake. It returns
 *   at once while at most {@link WRITE_HIGH_WATER} bytes are queued, else waits until the queue falls to
 *   {@link WRITE_LOW_WATER}. A writer that never awaits `drain()` can queue without bound — that is the
 *   "potential memory issue" of the learning plan, and why every loop that writes should await `drain()`.
 */
import type { Socket, TCPSocketListener } from "bun";

/** Default reader limit: 64 KiB (asyncio's `_DEFAULT_LIMIT`). Longest line `readLine()` accepts. */
export const DEFAULT_LIMIT = 64 * 1024;
/** `drain()` waits while more than this many bytes are queued: 64 KiB. */
export const WRITE_HIGH_WATER = 64 * 1024;
/** …and wakes when the queue has fallen to this many bytes: 16 KiB. */
export const WRITE_LOW_WATER = 16 * 1024;
/** Small queued writes are joined into one `socket.write()` of at most this many bytes: 64 KiB. */
const COALESCE_BYTES = 64 * 1024;
/**
 * Where they are joined. One buffer serves every writer: Bun's `write()` copies what the kernel takes
 * before it returns, so the buffer is free again at once, and a busy server makes no garbage per write.
 */
const coalesceScratch = new Uint8Array(COALESCE_BYTES);
/** A queue of at most this many chunks keeps its array when emptied; a longer one gets a new array. */
const SHORT_QUEUE = 16;

const NEWLINE = new Uint8Array([0x0a]);
/** What `drain()` returns when there is nothing to wait for: one shared promise, not one per call. */
const RESOLVED = Promise.resolve();
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

// ── Errors ────────────────────────────────────────────────────────────────────────────────────────────

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

/** The connection is gone: reset by the peer, closed under a pending `drain()`, or never made. */
export class ConnectionLostError extends Error {
  override name = "ConnectionLostError";
}

// ── StreamReader ──────────────────────────────────────────────────────────────────────────────────────

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

// ── One flush per event-loop turn ──────────────────────────────────────────────────────────────────────

/**
 * Writers with queued bytes are flushed together once per turn of the event loop: after Bun has run the
 * handlers of every socket that was ready (a `setImmediate` runs after that I/O phase). A chat server
 * that relays 20 messages arriving in one turn then makes one system call per recipient, not 20.
 */
let pendingFlushes: EndOfTurnTask[] = [];
/** The list being run; the two lists swap roles, so no list is allocated per turn. */
let runningFlushes: EndOfTurnTask[] = [];
let flushing = false;

/** A function, or an object whose `runAtEndOfTurn` is called (a writer: no closure per writer). */
export type EndOfTurnTask = (() => void) | { runAtEndOfTurn(): void };

/**
 * Runs `task` once at the end of this turn of the event loop, in the pass that flushes every
 * StreamWriter, in the order of scheduling. Whatever it writes is flushed in the same pass. (Lesson 05
 * batches a turn's broadcasts this way.)
 */
export function atEndOfTurn(task: EndOfTurnTask): void {
  if (pendingFlushes.length === 0 && !flushing) setImmediate(flushAll);
  pendingFlushes.push(task);
}

function flushAll(): void {
  flushing = true;
  try {
    while (pendingFlushes.length > 0) {
      [runningFlushes, pendingFlushes] = [pendingFlushes, runningFlushes];
      for (const task of runningFlushes) {
        if (typeof task === "function") task();
        else task.runAtEndOfTurn();
      }
      runningFlushes.length = 0;
    }
  } finally {
    flushing = false;
  }
}

// ── StreamWriter ──────────────────────────────────────────────────────────────────────────────────────

/** What a StreamWriter needs from a Bun socket. */
type WritableSocket = Pick<
  Socket<unknown>,
  "write" | "end" | "shutdown" | "terminate" | "remoteAddress" | "remotePort"
>;

/**
 * The sending half of a connection. `write()` queues and never blocks; `drain()` is where a writer waits
 * for the peer to catch up.
 *
 * Writes made in one turn of the event loop are sent together, in one `socket.write()` (up to 64 KiB), from
 * a microtask: a server that writes many small messages makes one system call, not one per message.
 */
export class StreamWriter {
  readonly #socket: WritableSocket;
  /** Chunks not yet taken by the kernel; `#queue[#head]` is the next to send. */
  #queue: Uint8Array[] = [];
  #head = 0;
  #queuedBytes = 0;
  #flushScheduled = false;
  /** The kernel took less than we offered: wait for Bun's `drain` handler before writing again. */
  #blocked = false;
  #eofRequested = false;
  #closeRequested = false;
  /** `shutdown()` (FIN) / `end()` (close) has been called on the socket. */
  #finSent = false;
  #endSent = false;
  #lost: Error | null = null;
  #closed = false;
  /** Allocated on first use: a server holds thousands of writers that never wait. */
  #drainWaiters: { resolve: () => void; reject: (error: Error) => void }[] | null = null;
  #closedWaiters: (() => void)[] | null = null;
  readonly #peer: string;

  constructor(socket: WritableSocket) {
    this.#socket = socket;
    // Read now: Bun forgets the address once the socket is closed.
    const address = socket.remoteAddress ?? "unknown";
    this.#peer = `${address.includes(":") ? `[${address}]` : address}:${socket.remotePort}`;
  }

  /** The peer's address as `host:port` (asyncio's `get_extra_info("peername")`), e.g. `127.0.0.1:53422`. */
  get peer(): string {
    return this.#peer;
  }

  /** Bytes queued and not yet taken by the kernel (asyncio's `transport.get_write_buffer_size()`). */
  get bufferedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queues `data` (a string is sent as UTF-8) and returns at once. Every byte is sent, in order, unless the
   * connection is lost — then `drain()` rejects and says so. The caller may reuse a buffer it passed.
   * Throws if called after `writeEof()` or `close()`.
   */
  write(data: string | Uint8Array): void {
    this.#enqueue(typeof data === "string" ? utf8.encode(data) : data.slice());
  }

  /**
   * Like `write()`, but queues `bytes` itself instead of a copy: for one encoded buffer sent to many
   * writers (a chat broadcast). The caller must never modify `bytes` afterwards.
   */
  writeShared(bytes: Uint8Array): void {
    this.#enqueue(bytes);
  }

  #enqueue(bytes: Uint8Array): void {
    if (this.#eofRequested || this.#closeRequested) {
      throw new Error(`write() called after ${this.#closeRequested ? "close()" : "writeEof()"}`);
    }
    if (this.#lost || this.#closed || bytes.length === 0) return;
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.length;
    this.#scheduleFlush();
  }

  /**
   * Waits until the peer has taken enough: returns at once while at most {@link WRITE_HIGH_WATER} bytes are
   * queued, else when the queue falls to {@link WRITE_LOW_WATER}. Rejects with {@link ConnectionLostError}
   * once the connection is lost (right away if it already is).
   */
  drain(): Promise<void> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (this.#closed) return Promise.reject(new ConnectionLostError("connection closed"));
    if (this.#queuedBytes <= WRITE_HIGH_WATER) return RESOLVED;
    this.#drainWaiters ??= [];
    const waiters = this.#drainWaiters;
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /** Sends FIN once the queue is empty (half-close): the peer sees EOF; we can still read. */
  writeEof(): void {
    if (this.#eofRequested || this.#closeRequested) return;
    this.#eofRequested = true;
    this.#scheduleFlush();
  }

  /** Whether `writeEof()` works here. Always true for TCP. */
  canWriteEof(): boolean {
    return true;
  }

  /**
   * Closes the connection after every queued byte has been sent (Bun's own `end(data)` would drop them).
   * Returns at once; `await waitClosed()` to know it is done.
   */
  close(): void {
    if (this.#closeRequested) return;
    this.#closeRequested = true;
    this.#scheduleFlush();
  }

  /** Closes at once, discarding the queue (asyncio's `transport.abort()`); for peers that stopped reading. */
  abort(): void {
    this.#closeRequested = true;
    this.#clearQueue();
    this.#socket.terminate();
  }

  /** True once `close()`/`abort()` was called or the connection is gone. */
  isClosing(): boolean {
    return this.#closeRequested || this.#closed;
  }

  /** Resolves when the connection is closed (by either side). */
  waitClosed(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closedWaiters ??= [];
    const waiters = this.#closedWaiters;
    return new Promise((resolve) => waiters.push(resolve));
  }

  /**
   * Sends what is queued now instead of at the end of this turn. For a request/response client with a
   * single request in flight, where nothing else will join the write and the wait is pure latency.
   */
  flushNow(): void {
    this.#flush();
  }

  /** Bun's `drain` handler: the kernel has room again. */
  onDrain(): void {
    this.#blocked = false;
    this.#flush();
  }

  /** Bun's `close` handler: the connection is gone; `error` if it failed. */
  onClose(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#queuedBytes > 0 || error) {
      const unsent = this.#queuedBytes;
      this.#lost = new ConnectionLostError(
        error ? `connection lost: ${error.message}` : `connection closed with ${unsent} bytes unsent`,
        error ? { cause: error } : undefined,
      );
    }
    this.#clearQueue();
    const lost = this.#lost ?? new ConnectionLostError("connection closed");
    for (const waiter of this.#drainWaiters?.splice(0) ?? []) waiter.reject(lost);
    for (const resolve of this.#closedWaiters?.splice(0) ?? []) resolve();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    atEndOfTurn(this);
  }

  /** Called at the end of the turn (see {@link atEndOfTurn}) when this writer has something to send. */
  runAtEndOfTurn(): void {
    this.#flushScheduled = false;
    this.#flush();
  }

  /** Sends queued chunks until the kernel takes less than offered; then finishes a requested EOF/close. */
  #flush(): void {
    if (this.#blocked || this.#closed) return;
    const queue = this.#queue;
    while (this.#head < queue.length) {
      // Small chunks go together through the scratch buffer: one system call for all of them.
      const end = this.#coalesceEnd();
      const coalesced = end - this.#head > 1;
      const chunk = coalesced ? coalesceScratch : queue[this.#head]!;
      const length = coalesced ? this.#gather(end) : chunk.length;
      const written = this.#socket.write(chunk, 0, length);
      if (written < 0) return; // closed under us: the close handler reports it
      this.#queuedBytes -= written;
      if (written < length) {
        this.#dropSent(written);
        this.#blocked = true;
        break;
      }
      while (this.#head < end) queue[this.#head++] = EMPTY;
    }
    if (this.#head === queue.length) {
      // Reuse a short queue's storage; let a long one's go, so an idle writer holds little memory.
      if (queue.length <= SHORT_QUEUE) queue.length = 0;
      else this.#queue = [];
      this.#head = 0;
    }
    if (this.#queuedBytes <= WRITE_LOW_WATER && this.#drainWaiters?.length) {
      for (const waiter of this.#drainWaiters.splice(0)) waiter.resolve();
    }
    if (this.#queuedBytes === 0) this.#finishEofOrClose();
  }

  /**
   * Removes the first `sent` bytes from the queue. A chunk sent in part stays as a view of its unsent
   * tail — never a copy, so a broadcast buffer shared by many writers stays shared however far behind
   * each of them is.
   */
  #dropSent(sent: number): void {
    const queue = this.#queue;
    while (sent > 0 && sent >= queue[this.#head]!.length) {
      sent -= queue[this.#head]!.length;
      queue[this.#head++] = EMPTY;
    }
    if (sent > 0) queue[this.#head] = queue[this.#head]!.subarray(sent);
  }

  /** End (exclusive) of the run of queued chunks, from the head, that fit in one coalesced write. */
  #coalesceEnd(): number {
    const queue = this.#queue;
    let end = this.#head + 1;
    let total = queue[this.#head]!.length;
    while (end < queue.length && total + queue[end]!.length <= COALESCE_BYTES) total += queue[end++]!.length;
    return end;
  }

  /** Copies the chunks from the head to `end` into the scratch buffer; returns their total length. */
  #gather(end: number): number {
    let offset = 0;
    for (let index = this.#head; index < end; index++) {
      coalesceScratch.set(this.#queue[index]!, offset);
      offset += this.#queue[index]!.length;
    }
    return offset;
  }

  #finishEofOrClose(): void {
    if (this.#closeRequested) {
      if (this.#endSent) return;
      this.#endSent = true;
      this.#socket.end();
    } else if (this.#eofRequested && !this.#finSent) {
      this.#finSent = true;
      this.#socket.shutdown();
    }
  }

  #clearQueue(): void {
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
  }
}

// ── Connecting the two to Bun's socket handlers ───────────────────────────────────────────────────────

export interface StreamOptions {
  /** StreamReader limit in bytes (default {@link DEFAULT_LIMIT}). */
  limit?: number;
}

/** Per-connection state, kept in `socket.data` (Bun shares one handler object among all sockets). */
interface Connection {
  reader: StreamReader;
  writer: StreamWriter | null;
  /** TLS only: settles when the handshake is done. Bun's `write()` returns 0 before then, and no `drain` follows. */
  handshake?: PromiseWithResolvers<void>;
}

/** connection_lost: EOF (or the error) for the reader; the writer settles its waiters. */
function connectionLost(socket: Socket<Connection>, error?: Error): void {
  const { reader, writer } = socket.data;
  if (error)
    reader.setException(new ConnectionLostError(`connection lost: ${error.message}`, { cause: error }));
  else reader.feedEof();
  writer?.onClose(error);
}

/**
 * The socket handlers, shared by every connection: asyncio's `StreamReaderProtocol`.
 * open ↔ connection_made, data ↔ data_received, end ↔ eof_received, close ↔ connection_lost.
 */
function streamHandlers(onOpen: (socket: Socket<Connection>) => void) {
  return {
    open: onOpen,
    data(socket: Socket<Connection>, chunk: Uint8Array) {
      socket.data.reader.feedData(chunk);
    },
    drain(socket: Socket<Connection>) {
      socket.data.writer?.onDrain();
    },
    handshake(socket: Socket<Connection>, success: boolean, authorizationError: Error | null) {
      if (success) {
        socket.data.handshake?.resolve();
        socket.data.writer?.onDrain();
      } else {
        socket.data.handshake?.reject(authorizationError ?? new Error("TLS handshake failed"));
        socket.terminate();
      }
    },
    end(socket: Socket<Connection>) {
      socket.data.reader.feedEof();
    },
    close: connectionLost,
    error(socket: Socket<Connection>, error: Error) {
      socket.data.reader.setException(
        new ConnectionLostError(`connection error: ${error.message}`, { cause: error }),
      );
    },
  };
}

function attach(socket: Socket<Connection>): StreamWriter {
  const writer = new StreamWriter(socket);
  socket.data.writer = writer;
  socket.data.reader.setTransport(socket);
  return writer;
}

export interface OpenConnectionOptions extends StreamOptions {
  /** Speak TLS (`true`, or Bun's TLS options). The host name is sent for SNI and checked. */
  tls?: boolean | Record<string, unknown>;
}

/**
 * Connects to `host:port` and returns the pair (asyncio's `open_connection`).
 * Rejects with {@link ConnectionLostError} (`cause` = Bun's error, whose `code` is e.g. `ECONNREFUSED`)
 * when the connection cannot be made.
 */
export async function openConnection(
  host: string,
  port: number,
  options: OpenConnectionOptions = {},
): Promise<[StreamReader, StreamWriter]> {
  const reader = new StreamReader(options.limit);
  const handshake = options.tls ? Promise.withResolvers<void>() : undefined;
  let socket: Socket<Connection>;
  try {
    socket = await Bun.connect<Connection>({
      hostname: host,
      port,
      tls: options.tls as boolean | undefined,
      allowHalfOpen: true,
      data: { reader, writer: null, handshake },
      socket: {
        ...streamHandlers(attach),
        connectError() {},
        close(socket, error) {
          handshake?.reject(error ?? new Error("connection closed during the TLS handshake"));
          connectionLost(socket, error);
        },
      },
    });
  } catch (error) {
    throw connectError(error, host, port);
  }
  if (handshake) {
    try {
      await handshake.promise;
    } catch (error) {
      throw new ConnectionLostError(
        `TLS handshake with ${host}:${port} failed: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
  return [reader, socket.data.writer ?? attach(socket)];
}

/** Why a connect fails, in words, by the system's error code. */
const CONNECT_FAILURES: Record<string, string> = {
  ECONNREFUSED: "connection refused (is a server listening there?)",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "could not resolve the host name (no network?)",
  ETIMEDOUT: "timed out",
  ENETUNREACH: "network unreachable",
  EHOSTUNREACH: "host unreachable",
};

/**
 * One line for a failed connect — `cannot connect to HOST:PORT: connection refused (ECONNREFUSED)` — as a
 * {@link ConnectionLostError} whose `cause` is Bun's error.
 */
export function connectError(error: unknown, host: string, port: number): ConnectionLostError {
  const cause = error as Error & { code?: string };
  const known = cause.code ? CONNECT_FAILURES[cause.code] : undefined;
  const reason = known ? `${known} (${cause.code})` : (cause.message ?? String(error));
  return new ConnectionLostError(`cannot connect to ${host}:${port}: ${reason}`, { cause });
}

export type ClientConnected = (reader: StreamReader, writer: StreamWriter) => void | Promise<void>;

export interface StartServerOptions extends StreamOptions {
  /** Address to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port to listen on (default 0: the system picks a free one, see `server.port`). */
  port?: number;
}

/** A listening server (asyncio's `Server`). */
export interface StreamServer {
  readonly hostname: string;
  /** The port really listened on (the free one picked when 0 was asked). */
  readonly port: number;
  /** Connections open right now. */
  readonly connections: number;
  /** Stops accepting new connections. Open ones stay, unless `closeConnections` is true. */
  close(closeConnections?: boolean): void;
}

/**
 * Listens on `host:port` and calls `onClient(reader, writer)` for each connection (asyncio's
 * `start_server`). If `onClient` throws or rejects, the error is printed on one line and that connection
 * is closed (what was queued is still sent); the server goes on.
 */
export async function startServer(
  onClient: ClientConnected,
  options: StartServerOptions = {},
): Promise<StreamServer> {
  let connections = 0;
  const handlers = streamHandlers((socket) => {
    connections++;
    const writer = attach(socket);
    writer.waitClosed().then(() => connections--);
    try {
      const running = onClient(socket.data.reader, writer);
      if (running instanceof Promise) running.catch((error) => failClient(writer, error));
    } catch (error) {
      failClient(writer, error);
    }
  });
  const listener: TCPSocketListener<Connection> = Bun.listen<Connection>({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    allowHalfOpen: true,
    socket: {
      ...handlers,
      open(socket) {
        socket.data = { reader: new StreamReader(options.limit), writer: null };
        handlers.open(socket);
      },
    },
  });
  return {
    hostname: listener.hostname,
    port: listener.port,
    get connections() {
      return connections;
    },
    close: (closeConnections = false) => listener.stop(closeConnections),
  };
}

function failClient(writer: StreamWriter, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`client handler failed: ${message}`);
  writer.close();
}
