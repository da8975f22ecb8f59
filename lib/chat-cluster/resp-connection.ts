/**
 * lib/chat-cluster/resp-connection.ts — one connection to Redis: commands out, replies back in order, each
 * reply awaited with a deadline, every reply parsed within bounds (resp-parser.ts).
 *
 * A deadline, because a peer that stops answering — a Redis paused by SIGSTOP, a link whose packets vanish
 * (no reset ever comes), a server that answers `HELLO` and then nothing — looks exactly like a slow one
 * until a clock says otherwise. Each command is sent with the longest its reply may take; when one is late,
 * the connection is failed with one error that names the command ({@link RedisDeadlineError}): with RESP
 * the replies come in the order the commands were sent, so a connection that lost one reply cannot match
 * the next ones either. Every command waiting on it fails with that error, and `onClose` reports it once.
 *
 * One timer serves every waiting command: it is set for the oldest one's deadline (replies come in order,
 * so a later command cannot be answered first), and when it fires it either fails the connection or is set
 * again for the oldest command still waiting — no timer per command.
 *
 * Writes go through lib/stream-writer.ts's queue: the commands of one turn leave in one `write()`
 * (pipelined), and none is lost to a short write.
 */
import type { Socket } from "bun";
import { ConnectionLostError, StreamWriter, socketHooks } from "../stream-writer.ts";
import { connectError } from "../streams.ts";
import {
  RedisReplyError,
  RespParser,
  type RespParserLimits,
  RespProtocolError,
  type RespValue,
} from "./resp-parser.ts";

export {
  OversizedBulk,
  RedisReplyError,
  type RespParserLimits,
  RespProtocolError,
  type RespValue,
} from "./resp-parser.ts";

/** A reply did not come in time; `command` names what was asked (`XREAD`, `EVAL REGISTER`, …). */
export class RedisDeadlineError extends Error {
  override name = "RedisDeadlineError";
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`no reply to ${command} within ${timeoutMs} ms`);
  }
}

/** A reply and the arrays in it that were cut short at the reply budget (see resp-parser.ts). */
export interface RespReply {
  value: RespValue;
  cut: ReadonlySet<RespValue[]>;
}

export interface RespConnectionOptions {
  limits: RespParserLimits;
  /** A TCP connect that has not completed in this long has failed. */
  connectTimeoutMs: number;
  /** The connection ended other than by {@link RespConnection.close}: reset, EOF, garbage or a deadline. */
  onClose?: (error: Error) => void;
}

interface Waiter {
  command: string;
  timeoutMs: number;
  /** `performance.now()` past which the reply is late. */
  due: number;
  resolve: (reply: RespReply) => void;
  reject: (error: Error) => void;
}

export class RespConnection {
  readonly #socket: Socket<RespConnection | null>;
  readonly #writer: StreamWriter;
  readonly #parser: RespParser;
  readonly #waiting: Waiter[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #ended: Error | null = null;
  readonly #onClose: ((error: Error) => void) | undefined;

  private constructor(socket: Socket<RespConnection | null>, options: RespConnectionOptions) {
    this.#socket = socket;
    this.#writer = new StreamWriter(socket);
    this.#parser = new RespParser(options.limits);
    this.#onClose = options.onClose;
  }

  /** Connects; rejects with a one-line reason (`cannot connect to …: connection refused …`, or timed out). */
  static async open(host: string, port: number, options: RespConnectionOptions): Promise<RespConnection> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    const connecting = Bun.connect<RespConnection | null>({
      hostname: host,
      port,
      data: null,
      socket: {
        data: (socket, chunk) => {
          if (socket.data) socket.data.#received(chunk);
        },
        drain: (socket) => {
          if (socket.data) socketHooks.onDrain(socket.data.#writer);
        },
        close: (socket, error) => {
          if (socket.data) socket.data.#closed(error);
        },
        error: (socket, error) => {
          if (socket.data) socket.data.#closed(error);
        },
        connectError() {},
      },
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(
          new ConnectionLostError(
            `cannot connect to ${host}:${port}: timed out after ${options.connectTimeoutMs} ms`,
          ),
        );
      }, options.connectTimeoutMs);
    });
    try {
      const socket = await Promise.race([connecting, late]);
      const connection = new RespConnection(socket, options);
      socket.data = connection;
      return connection;
    } catch (error) {
      if (timedOut)
        void connecting.then(
          (socket) => socket.terminate(),
          () => {},
        );
      if (error instanceof ConnectionLostError) throw error;
      throw connectError(error, host, port);
    } finally {
      clearTimeout(timer);
    }
  }

  /** True until the connection ends (by close(), or a failure). */
  get open(): boolean {
    return this.#ended === null;
  }

  /** Sends a command; resolves with its reply, rejects with its error reply (the connection goes on). */
  async send(args: readonly string[], timeoutMs: number, command = args[0]!): Promise<RespValue> {
    const { value, cut } = await this.request(args, timeoutMs, command);
    if (cut.size > 0)
      throw new RespProtocolError(`reply to ${command} over ${this.#parser.limits.maxReplyBytes} bytes`);
    return value;
  }

  /**
   * Sends a command; resolves with its reply and the arrays cut short at the reply budget. Rejects with a
   * {@link RedisReplyError} for an error reply (the connection goes on), or with the error that ended the
   * connection: {@link RedisDeadlineError} when no reply came within `timeoutMs`, a lost connection,
   * {@link RespProtocolError}.
   */
  request(args: readonly string[], timeoutMs: number, command = args[0]!): Promise<RespReply> {
    if (this.#ended) return Promise.reject(this.#ended);
    const { promise, resolve, reject } = Promise.withResolvers<RespReply>();
    this.#waiting.push({ command, timeoutMs, due: performance.now() + timeoutMs, resolve, reject });
    if (this.#timer === null) this.#armTimer();
    this.#writer.write(encodeCommand(args));
    return promise;
  }

  /** Closes the connection; every command still waiting fails (`onClose` is not called). */
  close(): void {
    this.#end(new ConnectionLostError("connection closed"), false);
  }

  #received(chunk: Uint8Array): void {
    if (this.#ended) return;
    try {
      this.#parser.feed(chunk, (value, cut) => this.#replied(value, cut));
    } catch (error) {
      this.#end(error as Error, true);
    }
  }

  #replied(value: RespValue, cut: ReadonlySet<RespValue[]>): void {
    const waiter = this.#waiting[this.#head];
    if (!waiter) throw new RespProtocolError("a reply to no command (not a Redis server?)");
    this.#waiting[this.#head++] = undefined as unknown as Waiter;
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
    if (value instanceof RedisReplyError) waiter.reject(value);
    else waiter.resolve({ value, cut });
  }

  #armTimer(): void {
    const oldest = this.#waiting[this.#head];
    if (!oldest) {
      this.#timer = null;
      return;
    }
    this.#timer = setTimeout(() => this.#checkDeadline(), Math.max(0, oldest.due - performance.now()));
  }

  #checkDeadline(): void {
    this.#timer = null;
    const oldest = this.#waiting[this.#head];
    if (oldest && performance.now() >= oldest.due) {
      this.#end(new RedisDeadlineError(oldest.command, oldest.timeoutMs), true);
      return;
    }
    this.#armTimer();
  }

  #closed(error?: Error): void {
    this.#end(
      error
        ? new ConnectionLostError(`connection lost: ${error.message}`)
        : new ConnectionLostError("connection closed by redis"),
      true,
    );
  }

  #end(error: Error, report: boolean): void {
    if (this.#ended) return;
    this.#ended = error;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    socketHooks.onClose(this.#writer, error);
    this.#socket.terminate();
    const waiting = this.#waiting.slice(this.#head);
    this.#waiting.length = 0;
    this.#head = 0;
    for (const waiter of waiting) waiter.reject(error);
    if (report) this.#onClose?.(error);
  }
}

/** A command as a RESP array of bulk strings; lengths are in bytes, not characters. */
export function encodeCommand(args: readonly string[]): string {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${Buffer.byteLength(arg, "utf8")}\r\n${arg}\r\n`;
  return text;
}
