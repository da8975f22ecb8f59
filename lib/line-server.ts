/**
 * lib/line-server.ts — a line server on callbacks: `startLineServer(handlers, options)`.
 *
 * `startServer` (lib/streams.ts) gives every connection an async function that awaits `readLine()`: easy
 * to read, and it costs one promise per line. A server whose whole job is to react to lines — a chat room —
 * does not need to wait for anything, so this one calls `onLine(state, line)` synchronously from Bun's
 * `data` handler instead: no promise, no async frame per line. It owns everything a line protocol needs
 * from a socket, so the code on top is the protocol's rules alone:
 * - Bun's socket handlers (`open`, `data`, `drain`, `end`, `close`, `error`);
 * - a {@link LineDecoder} per connection (framing, UTF-8, the line limit);
 * - a {@link StreamWriter} per connection (the send queue; `close()` sends everything first).
 *
 * Half-open aware: when the peer sends EOF (`nc -N` on Ctrl+D), its unterminated last line is delivered, then
 * `onEnd`; the socket stays open for writing, so replies to that last line still reach the peer. (Bun
 * closes a socket right after `end` unless `allowHalfOpen` is set — and with it the replies still queued.)
 *
 * Lines arrive in order. `pauseReading()` stops them: Bun stops reading the socket, and the lines that were
 * already in the chunk being decoded wait in the connection (at most one chunk's worth) until
 * `resumeReading()` delivers them — what a protocol needs while it waits for something asynchronous (a
 * name claimed in a database) before it may handle the next line.
 */
import type { Socket } from "bun";
import { LineDecoder } from "./lines.ts";
import { listen } from "./listen.ts";
import { StreamWriter, socketHooks } from "./stream-writer.ts";

/** What the line server calls. `T` is the per-connection state `onConnect` returns. */
export interface LineServerHandlers<T> {
  /** A new connection. Returns the state the other handlers get for it. */
  onConnect(connection: LineConnection<T>): T;
  /** One complete line, decoded from UTF-8, without its `\n` / `\r\n`. */
  onLine(state: T, line: string): void;
  /** A line over `maxLineBytes` was skipped (its bytes were never held); `byteLength` is how long it was. */
  onLineTooLong?(state: T, byteLength: number): void;
  /**
   * The peer sent EOF, after its last line (terminated or not) was delivered. The connection can still be
   * written to; close it when done (`connection.writer.close()` sends what is queued first). Default: close.
   */
  onEnd?(state: T): void;
  /** The connection is gone (`error` if it failed). Called exactly once, last. */
  onClose(state: T, error?: Error): void;
}

export interface LineServerOptions {
  /** Address to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port to listen on (default 0: a free one, see `server.port`). */
  port?: number;
  /** Longest line in bytes, terminator excluded; longer ones go to `onLineTooLong`. */
  maxLineBytes: number;
  /** Let other processes listen on the same port too; the kernel spreads connections (Linux). */
  reusePort?: boolean;
}

/** A listening line server. */
export interface LineServer {
  readonly hostname: string;
  /** The port really listened on. */
  readonly port: number;
  /** Stops accepting. Open connections stay, unless `closeConnections` is true. */
  close(closeConnections?: boolean): void;
}

/** A line held while reading was paused: its text, or the byte length of a line that was too long. */
type HeldLine = string | number;

/** One connection: its writer, its decoder, its state. It is its own decoder's handler (no closures). */
export class LineConnection<T = unknown> {
  readonly writer: StreamWriter;
  readonly decoder: LineDecoder;
  /** What `onConnect` returned. */
  state!: T;
  readonly maxLineBytes: number;
  readonly #socket: Socket<LineConnection<T>>;
  readonly #handlers: LineServerHandlers<T>;
  #paused = false;
  /** Lines that arrived while paused, in order; null while none wait. */
  #held: HeldLine[] | null = null;
  /** EOF arrived while paused (after the held lines). */
  #endHeld = false;
  #closed = false;

  constructor(socket: Socket<LineConnection<T>>, handlers: LineServerHandlers<T>, maxLineBytes: number) {
    this.#socket = socket;
    this.#handlers = handlers;
    this.maxLineBytes = maxLineBytes;
    this.writer = new StreamWriter(socket as Socket<unknown>);
    this.decoder = new LineDecoder(this);
  }

  /** The peer's address as `host:port`. */
  get peer(): string {
    return this.writer.peer;
  }

  /** Stops delivering lines (and reading the socket) until {@link resumeReading}. */
  pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  /** Delivers the lines held while paused, in order, then reads the socket again. */
  resumeReading(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    const held = this.#held;
    while (held && held.length > 0 && !this.#paused && !this.#closed) this.#deliver(held.shift()!);
    if (this.#paused || this.#closed) return;
    this.#held = null;
    if (this.#endHeld) {
      this.#endHeld = false;
      this.#end();
      return;
    }
    this.#socket.resume();
  }

  /** The decoder's handler: one line. */
  onLine(line: string): void {
    if (this.#paused) this.#hold(line);
    else this.#handlers.onLine(this.state, line);
  }

  /** The decoder's handler: one line over the limit. */
  onLineTooLong(byteLength: number): void {
    if (this.#paused) this.#hold(byteLength);
    else this.#handlers.onLineTooLong?.(this.state, byteLength);
  }

  #hold(line: HeldLine): void {
    this.#held ??= [];
    this.#held.push(line);
  }

  #deliver(line: HeldLine): void {
    if (typeof line === "string") this.#handlers.onLine(this.state, line);
    else this.#handlers.onLineTooLong?.(this.state, line);
  }

  /** Bun's `end`: the unterminated last line first, then `onEnd` (or, while paused, once resumed). */
  peerEnded(): void {
    this.decoder.end();
    if (this.#paused) this.#endHeld = true;
    else this.#end();
  }

  #end(): void {
    if (this.#closed) return;
    if (this.#handlers.onEnd) this.#handlers.onEnd(this.state);
    else this.writer.close();
  }

  /** Bun's `close`: once. */
  closed(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#held = null;
    socketHooks.onClose(this.writer, error);
    this.#handlers.onClose(this.state, error);
  }
}

/**
 * Listens on `host:port` and calls `handlers` for each connection's lines. Throws a `ListenError` (one
 * line: why, and what to do) if it cannot listen; stops accepting while file descriptors run low (see
 * lib/listen.ts). A handler that throws is a bug in the server: it is not caught here.
 */
export function startLineServer<T>(handlers: LineServerHandlers<T>, options: LineServerOptions): LineServer {
  const listener = listen<LineConnection<T>>({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    reusePort: options.reusePort,
    // Keep the socket open after the peer's EOF: the replies to its last lines must still go out.
    allowHalfOpen: true,
    socket: {
      open(socket) {
        const connection = new LineConnection(socket, handlers, options.maxLineBytes);
        socket.data = connection;
        connection.state = handlers.onConnect(connection);
      },
      data(socket, chunk) {
        socket.data.decoder.push(chunk);
      },
      drain(socket) {
        socketHooks.onDrain(socket.data.writer);
      },
      end(socket) {
        socket.data.peerEnded();
      },
      close(socket, error) {
        socket.data.closed(error);
      },
      error(socket, error) {
        socket.data.closed(error);
      },
    },
  });
  return {
    hostname: listener.hostname,
    port: listener.port,
    close: (closeConnections = false) => listener.stop(closeConnections),
  };
}
