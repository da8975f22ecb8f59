/**
 * lib/websocket/connection.ts — one WebSocket connection, server side, after the 101 (RFC 6455 §5.4
 * fragmentation, §5.5.2–3 ping and pong, §5.5.1 and §7 the closing handshake), on a StreamReader and a
 * StreamWriter.
 *
 *   const connection = new WebSocketConnection(reader, writer, { maxMessageBytes: 16 * 1024 * 1024 });
 *   for (let message; (message = await connection.readMessage()) !== null; ) {
 *     if (message.type === "text") connection.sendText(message.text);
 *   }
 *
 * What `readMessage()` does for you, between messages and between the fragments of one:
 * - answers each Ping with a Pong carrying the same bytes, and ignores an unsolicited Pong;
 * - joins a fragmented message, with control frames allowed between its fragments; a continuation with no
 *   message to continue, or a new message before the last one ended, fails the connection (1002);
 * - checks text as UTF-8 fragment by fragment, and fails the connection (1007) at the first fragment that
 *   cannot be UTF-8 — not at the end of a message whose last fragment may never come;
 * - holds at most `maxMessageBytes` of a message (a frame's announced length is checked before a byte is
 *   allocated for it), and at most `maxFragments` frames of one; past the size a message fails the
 *   connection (1009) or, with `oversize: "skip"`, is read and thrown away as it arrives and reported as
 *   `{ type: "too long" }`;
 * - answers the peer's Close with a Close (same code) and closes TCP.
 *
 * **Failing the connection** (§7.1.7) is always a Close frame with the reason's code — 1002 a broken
 * frame, 1007 text that is not UTF-8, 1009 too big — then a FIN right behind it, so the peer sees our
 * Close and then the end of the stream; what it still sends is read and dropped (closing a socket with
 * unread bytes makes the kernel send a reset, which can destroy our Close before the peer reads it:
 * lib/lingering-close.ts), and TCP is closed when the peer closes its half, or `closeTimeoutMs` (1 s) after our Close at the latest.
 * Never a bare TCP close.
 *
 * **Backpressure**: every frame we send goes into the StreamWriter's queue — `writer.bufferedBytes` is all
 * that is queued (lesson 05's `--sendq` reads it); there is no second queue here. A Pong is sent and then
 * `drain()` is awaited before the next frame is read, so a peer that pings without reading slows itself
 * down instead of filling our memory.
 *
 * **No permessage-deflate** (RFC 7692), on purpose: compression is an attack surface a server must pay for.
 * A compression bomb — a frame of a few kilobytes that inflates to gigabytes — makes the limit on what
 * arrives meaningless unless every inflate is itself capped as it runs; and when a secret (a cookie, a
 * token, another user's message) shares a compression context with text an attacker chooses, the size of
 * the compressed frames leaks the secret byte by byte (CRIME, BREACH). Doing it safely would take an
 * inflate limit per message (not per frame), `server_no_context_takeover` and
 * `client_no_context_takeover` (a fresh context per message, so nothing is shared across messages), and a
 * memory budget for zlib's state (by zlib's own formula in zconf.h, ~256 KiB to deflate and ~40 KiB to
 * inflate at the default window: ~300 KiB a connection kept between messages — 3 GB at 10,000 users).
 * The handshake simply does not accept the offer (lib/websocket/handshake.ts).
 */
import { concat } from "../bytes.ts";
import { MAX_TIMER_MS } from "../deadline.ts";
import { lingeringClose } from "../lingering-close.ts";
import {
  ConnectionLostError,
  IncompleteReadError,
  type StreamReader,
  type StreamWriter,
} from "../streams.ts";
import { CloseCode, ClosePayloadError, encodeClose, parseClosePayload } from "./close.ts";
import {
  encodeFrame,
  encodeTextFrame,
  FrameError,
  type FrameHeader,
  isControl,
  Opcode,
  readFrameHeader,
  readFrameHeaderRest,
  readFramePayload,
  readPayloadPiece,
  skipFramePayload,
  takeFrameHeader,
  takeFramePayload,
  tooBig,
} from "./frames.ts";
import { Utf8Validator } from "./utf8-validator.ts";

/** Default wait, from our Close, for the peer's Close and for the end of its half of TCP: 1 s. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 1000;
/**
 * Default cap on the frames of one message: 65,536 frames. Autobahn's largest fragmented cases send 4 MiB
 * in 64-byte fragments — exactly this many; a flood of empty fragments stops here (1009).
 */
export const DEFAULT_MAX_FRAGMENTS = 65_536;

/** First buffer for a text frame that arrives in pieces: 4 KiB (it doubles from there). */
const MIN_TEXT_BUFFER_BYTES = 4 * 1024;

const EMPTY = new Uint8Array(0);
/**
 * A message of one frame is checked and decoded in one native pass; `fatal` throws at bad UTF-8.
 * `ignoreBOM`: a text that starts with U+FEFF keeps it (by default a decoder would eat it).
 */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** A message of many frames was checked fragment by fragment already: decoded without a second check. */
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export interface WebSocketOptions {
  /** Largest message, all its fragments together, in bytes. */
  maxMessageBytes: number;
  /**
   * A message over `maxMessageBytes`: `"fail"` (default) fails the connection with 1009; `"skip"` reads it
   * and throws it away as it arrives — never holding it — and `readMessage()` returns `{ type: "too long" }`.
   */
  oversize?: "fail" | "skip";
  /** Most frames (fragments) in one message; one more fails the connection (1009). Default {@link DEFAULT_MAX_FRAGMENTS}. */
  maxFragments?: number;
  /** Milliseconds from our Close to TCP closed at the latest (default {@link DEFAULT_CLOSE_TIMEOUT_MS}). */
  closeTimeoutMs?: number;
}

/** One message from the peer. */
export type WebSocketMessage =
  | { type: "text"; text: string }
  | { type: "binary"; data: Uint8Array }
  /** Over `maxMessageBytes`, with `oversize: "skip"`: its bytes were read and dropped. */
  | { type: "too long"; byteLength: number };

/** How a connection ended. */
export interface CloseInfo {
  /**
   * The status code of the Close that began the closing handshake — the peer's, or ours (including the
   * code we failed the connection with); 1005 for a Close with no code; 1006 if TCP ended with no Close.
   */
  code: number;
  reason: string;
  /** Both Close frames were exchanged (false: we failed the connection, the peer vanished, or it never answered). */
  wasClean: boolean;
}

/**
 * A server-side WebSocket connection over a StreamReader/StreamWriter pair whose 101 has been written.
 * One reader at a time calls {@link readMessage}; anyone may send. Pings, Pongs and the peer's Close are
 * handled inside `readMessage()`, so a connection is served only while someone reads it (a loop that
 * stops reading must `close()`). Once our Close is sent the writer
 * takes no more writes (StreamWriter throws after `writeEof()`, `close()` or `abort()`): code that writes
 * to `writer` directly (a chat room's broadcast) must stop when {@link isClosing} says so — at the latest
 * when `readMessage()` has returned `null`, which happens in the same turn as our Close.
 */
export class WebSocketConnection {
  readonly reader: StreamReader;
  readonly writer: StreamWriter;
  /** Resolves once TCP is closed, with how the connection ended. Never rejects. */
  readonly closed: Promise<CloseInfo>;
  readonly #maxMessageBytes: number;
  readonly #skipOversize: boolean;
  readonly #maxFragments: number;
  readonly #closeTimeoutMs: number;
  readonly #validator = new Utf8Validator();
  /** A readMessage() (or our own wait for the peer's Close) is running. */
  #reading = false;
  /** Our Close frame is queued: no more frames go out. */
  #closeSent = false;
  /** The connection is over for reading: readMessage() returns null. */
  #over = false;
  #closeInfo: CloseInfo | null = null;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(reader: StreamReader, writer: StreamWriter, options: WebSocketOptions) {
    if (!Number.isInteger(options.maxMessageBytes) || options.maxMessageBytes < 0) {
      throw new RangeError("maxMessageBytes must be a non-negative integer");
    }
    if (
      options.maxFragments !== undefined &&
      !(Number.isInteger(options.maxFragments) && options.maxFragments > 0)
    ) {
      throw new RangeError("maxFragments must be a positive integer");
    }
    const closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    if (!(closeTimeoutMs > 0 && closeTimeoutMs <= MAX_TIMER_MS)) {
      throw new RangeError(`closeTimeoutMs must be > 0 and at most ${MAX_TIMER_MS}`);
    }
    this.reader = reader;
    this.writer = writer;
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#skipOversize = options.oversize === "skip";
    this.#maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS;
    this.#closeTimeoutMs = closeTimeoutMs;
    this.closed = writer.waitClosed().then(() => {
      clearTimeout(this.#closeTimer);
      this.#over = true;
      return this.#closeInfo ?? { code: CloseCode.ABNORMAL, reason: "", wasClean: false };
    });
  }

  /** True once our Close is sent (or the connection is gone): nothing more may be sent. */
  isClosing(): boolean {
    return this.#closeSent || this.#over;
  }

  /**
   * The next message, or `null` when the connection is over: the peer's Close was answered, we failed the
   * connection (a Close with the reason's code was sent), TCP ended, or {@link close} was called. Never
   * rejects for anything the peer does; throws if called while another `readMessage()` waits.
   */
  readMessage(): Promise<WebSocketMessage | null> {
    if (this.#reading) {
      if (this.#closeSent) return this.closed.then(() => null);
      return Promise.reject(
        new Error("readMessage() while another readMessage() is waiting: one reader at a time"),
      );
    }
    if (this.#over) return Promise.resolve(null);
    return this.#read();
  }

  /**
   * readMessage()'s work. Its hot path — a message of one frame, arriving whole — awaits once, on the
   * reader itself, for the frame's first two bytes; the rest of the header and the payload came in the same
   * chunk (almost always) and are taken at once (`takeFrameHeader`, {@link #wholeMessageNow}). A trick for
   * speed alone: every `await` — and every async function between the reader's promise and the caller —
   * costs a promise and a turn of the microtask queue. Measured (lesson 08's /echo, `bun run bench
   * websocket`, old and new side by side on 2 loaded cores), with StreamReader's `tryReadExactly` and
   * `readExactly` handing over its bytes from `feedData`: server CPU per round trip from 11.3–13.1 µs (an
   * await each for header, mask and payload, under three async layers) to 8.0–9.4 µs, and round trips/s
   * from 0.66–0.72× of Bun's native echo to 0.85–0.89× (0.91–0.92× in two runs of the benchmark since).
   */
  async #read(): Promise<WebSocketMessage | null> {
    const reader = this.reader;
    this.#reading = true;
    try {
      for (;;) {
        // EOF while waiting for a frame's first bytes: see #readFailed.
        const first = reader.tryReadExactly(2) ?? (await reader.readExactly(2));
        const header = takeFrameHeader(first, reader) ?? (await readFrameHeaderRest(first, reader));
        const message = this.#wholeMessageNow(header) ?? (await this.#nextMessage(header));
        if (message === null) return null; // the connection is over
        // After our Close the peer's data is read and dropped, until its own Close.
        if (!this.#closeSent) return message;
      }
    } catch (error) {
      this.#readFailed(error);
      return null;
    } finally {
      this.#reading = false;
    }
  }

  /**
   * The hot path: `header` begins a message of one frame, within the limit, whose payload is buffered
   * whole — the message, taken and checked at once. `null` for anything else (a control frame, a fragment,
   * a payload still on its way, a message over the limit), with nothing more consumed: then
   * {@link #nextMessage} takes over.
   */
  #wholeMessageNow(header: FrameHeader): WebSocketMessage | null {
    const { opcode, length } = header;
    if (opcode !== Opcode.TEXT && opcode !== Opcode.BINARY) return null;
    if (!header.fin || length > this.#maxMessageBytes || this.reader.bufferedBytes < length) return null;
    const payload = takeFramePayload(this.reader, header)!;
    // Text in one piece is checked as it is decoded, in one native pass.
    return opcode === Opcode.TEXT
      ? { type: "text", text: decodeStrict(payload) }
      : { type: "binary", data: payload };
  }

  /** Sends one text message (one frame). Throws after our Close was sent. */
  sendText(text: string): void {
    this.#send(encodeTextFrame(text));
  }

  /** Sends one binary message (one frame). Throws after our Close was sent. */
  sendBinary(data: Uint8Array): void {
    this.#send(encodeFrame(Opcode.BINARY, data));
  }

  /**
   * Sends frames encoded already (by `encodeFrame` or `encodeTextFrames`), queued as they are — not copied:
   * one broadcast buffer serves every user. `bytes` must never be modified afterwards, and must be whole
   * frames. Throws after our Close was sent.
   */
  sendEncoded(bytes: Uint8Array): void {
    this.#send(bytes);
  }

  /**
   * Starts the closing handshake: sends Close(`code`, `reason`), reads and drops the peer's data until its
   * Close (if no `readMessage()` is running to do it), then closes TCP — within `closeTimeoutMs` at the
   * latest. Idempotent: a second call, or one after the connection ended, changes nothing. Resolves like
   * {@link closed}. Throws a `RangeError` for a code one may not send (see `isValidCloseCode`).
   */
  close(code: number = CloseCode.NORMAL, reason = ""): Promise<CloseInfo> {
    const payload = encodeClose(code, reason); // a code one may not send throws, closed or not
    if (!this.#closeSent && !this.#over) {
      this.#sendClose(payload, { code, reason, wasClean: false });
      if (!this.#reading) void this.readMessage();
    }
    return this.closed;
  }

  #send(frames: Uint8Array): void {
    if (this.#closeSent) throw new Error("cannot send on a WebSocket after its Close frame");
    this.writer.writeShared(frames);
  }

  /** Queues our Close, then a FIN right behind it; from now TCP is closed within closeTimeoutMs. */
  #sendClose(payload: Uint8Array, info: CloseInfo): void {
    if (this.#closeSent) return; // one Close only (a peer may break the rules after ours, too)
    this.#closeSent = true;
    this.#closeInfo ??= info;
    if (this.writer.isClosing()) return;
    this.writer.writeShared(encodeFrame(Opcode.CLOSE, payload));
    this.writer.writeEof();
    this.#closeTimer = setTimeout(() => this.writer.abort(), this.#closeTimeoutMs);
    this.#closeTimer.unref();
  }

  /**
   * Reads frames, from the one `first` heads (its header read already), until one whole data message;
   * handles control frames on the way. `null` when the connection is over. Throws FrameError /
   * ClosePayloadError for what the peer did wrong.
   */
  async #nextMessage(first: FrameHeader): Promise<WebSocketMessage | null> {
    const reader = this.reader;
    let opcode: typeof Opcode.TEXT | typeof Opcode.BINARY | null = null;
    let fragments: Uint8Array[] = [];
    let frames = 0;
    let byteLength = 0;
    let skipping = false;
    for (let header: FrameHeader | null = first; ; header = await readFrameHeader(reader)) {
      if (header === null) {
        this.#peerEnded();
        return null;
      }
      if (isControl(header.opcode)) {
        if (await this.#controlFrame(header)) return null;
        continue;
      }
      if (header.opcode === Opcode.CONTINUATION) {
        if (opcode === null)
          throw new FrameError(CloseCode.PROTOCOL_ERROR, "continuation frame with no message to continue");
      } else if (opcode !== null) {
        throw new FrameError(CloseCode.PROTOCOL_ERROR, "new message before the fragmented one ended");
      } else {
        opcode = header.opcode as typeof Opcode.TEXT | typeof Opcode.BINARY;
      }
      if (++frames > this.#maxFragments) {
        throw new FrameError(CloseCode.MESSAGE_TOO_BIG, `message of more than ${this.#maxFragments} frames`);
      }
      byteLength += header.length;
      if (!skipping && byteLength > this.#maxMessageBytes) {
        if (!this.#skipOversize) throw tooBig(byteLength, this.#maxMessageBytes);
        skipping = true;
        fragments = [];
        this.#validator.reset();
      }
      // A text message of one frame that is here whole is checked as it is decoded, in one native pass;
      // any other text is checked as it arrives, piece by piece.
      const oneShot = header.fin && frames === 1 && reader.bufferedBytes >= header.length;
      if (skipping) {
        await skipFramePayload(reader, header);
      } else if (opcode === Opcode.TEXT && !oneShot) {
        await this.#readTextPayload(header, fragments);
      } else {
        const payload = takeFramePayload(reader, header) ?? (await readFramePayload(reader, header));
        if (payload.length > 0) fragments.push(payload);
      }
      if (!header.fin) continue;
      if (skipping) return { type: "too long", byteLength };
      const data = concat(fragments, byteLength);
      if (opcode === Opcode.BINARY) return { type: "binary", data };
      return { type: "text", text: oneShot ? decodeStrict(data) : this.#decodeChecked(data) };
    }
  }

  /**
   * Reads a text frame's payload into `fragments` as it arrives, checking each piece as UTF-8 the moment
   * it is here: invalid text fails the connection (1007) before the rest of the frame — or of the
   * message — has been sent.
   */
  async #readTextPayload(header: FrameHeader, fragments: Uint8Array[]): Promise<void> {
    // Pieces are gathered in one buffer that doubles as they come (never more than announced): a peer
    // that sends a frame a byte at a time must not cost an array object per byte.
    let payload: Uint8Array = EMPTY;
    let filled = 0;
    while (filled < header.length) {
      const piece = await readPayloadPiece(this.reader, header, filled, header.length - filled);
      if (!this.#validator.push(piece)) {
        throw new FrameError(CloseCode.INVALID_PAYLOAD, "text message is not UTF-8");
      }
      if (filled === 0 && piece.length === header.length) {
        payload = piece;
      } else {
        if (filled + piece.length > payload.length) {
          const capacity = Math.max(MIN_TEXT_BUFFER_BYTES, 2 * payload.length, filled + piece.length);
          const grown = new Uint8Array(Math.min(header.length, capacity));
          grown.set(payload.subarray(0, filled));
          payload = grown;
        }
        payload.set(piece, filled);
      }
      filled += piece.length;
    }
    if (filled > 0) fragments.push(payload);
  }

  /** The text of a message whose every piece was checked as it came. */
  #decodeChecked(data: Uint8Array): string {
    if (!this.#validator.end()) {
      throw new FrameError(CloseCode.INVALID_PAYLOAD, "text message ends inside a UTF-8 sequence");
    }
    return utf8Decoder.decode(data);
  }

  /** Ping → Pong, Pong → nothing, Close → the closing handshake. True when the connection is over. */
  async #controlFrame(header: FrameHeader): Promise<boolean> {
    const payload = await readFramePayload(this.reader, header);
    if (header.opcode === Opcode.PING) {
      // No Pong after our Close — nor once the writer was closed by its other owner (a chat room).
      if (this.#closeSent || this.writer.isClosing()) return false;
      this.writer.writeShared(encodeFrame(Opcode.PONG, payload));
      await this.writer.drain();
      return false;
    }
    if (header.opcode === Opcode.PONG) return false;
    const { code, reason } = parseClosePayload(payload);
    if (this.#closeSent) {
      // The answer to our Close: the handshake is complete.
      if (this.#closeInfo) this.#closeInfo.wasClean = true;
    } else {
      // The peer's Close: answered with the same code (none if it gave none, since 1005 is never sent).
      const answer = code === CloseCode.NO_STATUS ? EMPTY : encodeClose(code);
      this.#sendClose(answer, { code, reason, wasClean: true });
    }
    this.#finishClosing();
    return true;
  }

  /** TCP ended on a frame boundary without a Close. */
  #peerEnded(): void {
    this.#closeInfo ??= { code: CloseCode.ABNORMAL, reason: "", wasClean: false };
    this.#over = true;
    this.writer.close();
  }

  /** What the peer did wrong, or the connection's loss, turned into the end of the connection. */
  #readFailed(error: unknown): void {
    if (error instanceof IncompleteReadError) {
      // Only #read's wait for a frame's first two bytes lets EOF through as it is (every read after it
      // turns EOF into a FrameError): with none of them, TCP ended on a frame boundary.
      if (error.partial.length === 0) this.#peerEnded();
      else this.#fail(CloseCode.PROTOCOL_ERROR, "connection closed inside a frame");
      return;
    }
    if (error instanceof FrameError || error instanceof ClosePayloadError) {
      this.#fail(error.closeCode, error.message);
      return;
    }
    if (error instanceof ConnectionLostError) {
      this.#closeInfo ??= { code: CloseCode.ABNORMAL, reason: "", wasClean: false };
      this.#over = true;
      this.writer.abort();
      return;
    }
    // A bug of ours: the peer is told (1011), and the error goes on to whoever reads.
    this.#fail(CloseCode.INTERNAL_ERROR, "internal error");
    throw error;
  }

  /** Fails the connection (§7.1.7): our Close with `code`, FIN, the rest of the peer's bytes dropped. */
  #fail(code: number, reason: string): void {
    this.#sendClose(encodeClose(code, reason), { code, reason, wasClean: false });
    this.#finishClosing();
  }

  /**
   * Both Close frames are out (or we failed the connection): from now on, in the background, what the
   * peer still sends is dropped until it closes its half; then TCP is closed (lib/lingering-close.ts). The
   * close timer armed with our Close still bounds it all.
   */
  #finishClosing(): void {
    this.#over = true;
    void lingeringClose(this.reader, this.writer, this.#closeTimeoutMs);
  }
}

function decodeStrict(data: Uint8Array): string {
  try {
    return strictUtf8.decode(data);
  } catch {
    throw new FrameError(CloseCode.INVALID_PAYLOAD, "text message is not UTF-8");
  }
}
