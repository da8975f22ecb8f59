/**
 * A fake PostgreSQL server for the hostile-peer tests: `Bun.listen` on a free loopback port that speaks just
 * enough of the protocol (manual: "Frontend/Backend Protocol" → "Message Formats") for a test to script a
 * server that misbehaves — skips SCRAM's final message, demands 10^8 iterations, announces a 1 GiB message,
 * goes silent. Each connection is handed to the test's `script` as a {@link FakeConnection}.
 *
 * `socket.write()` does not buffer in Bun (it returns how much the kernel took), so every write goes
 * through a small queue sent from the `drain` handler.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { ConnectOptions } from "../../lib/pg.ts";

const PROTOCOL_VERSION_3 = 196_608;
const CANCEL_REQUEST_CODE = 80_877_102;
const SSL_REQUEST_CODE = 80_877_103;
/** A fixed BackendKeyData for every connection, so a test can check the CancelRequest quotes it. */
export const FAKE_PROCESS_ID = 4242;
export const FAKE_SECRET_KEY = 777_777;

/** What the first message of a connection was. */
export type Opening =
  | { kind: "startup"; parameters: Map<string, string> }
  | { kind: "cancel"; processId: number; secretKey: number };

export interface ClientMessage {
  type: string;
  body: Buffer;
}

interface State {
  buffer: Buffer;
  opening: PromiseWithResolvers<Opening>;
  opened: boolean;
  messages: ClientMessage[];
  waiter: ((message: ClientMessage | null) => void) | null;
  closed: boolean;
  closedWaiters: (() => void)[];
  queue: Uint8Array[];
  /** Bytes the client sent after its first message. */
  received: number;
  /** Bytes the kernel took from us. */
  sent: number;
  stream: { remaining: number; chunk: Uint8Array } | null;
}

/** One client connection, seen from the fake server. */
export class FakeConnection {
  constructor(private readonly socket: Socket<State>) {}

  /** The startup message, or a CancelRequest. */
  get opening(): Promise<Opening> {
    return this.socket.data.opening.promise;
  }

  /** The client's port: the connection's other end. */
  get clientPort(): number {
    return this.socket.remotePort;
  }

  /** Bytes the client sent after its first message. */
  get received(): number {
    return this.socket.data.received;
  }

  /** Bytes the kernel took from us so far. */
  get sent(): number {
    return this.socket.data.sent;
  }

  get closed(): boolean {
    return this.socket.data.closed;
  }

  /** The client's next typed message, or null once it has closed. */
  next(): Promise<ClientMessage | null> {
    const state = this.socket.data;
    const message = state.messages.shift();
    if (message) return Promise.resolve(message);
    if (state.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      state.waiter = resolve;
    });
  }

  /** Waits for a message of `type`, skipping others; null if the client closes first. */
  async nextOfType(type: string): Promise<ClientMessage | null> {
    for (let message = await this.next(); message; message = await this.next()) {
      if (message.type === type) return message;
    }
    return null;
  }

  send(...messages: Uint8Array[]): void {
    if (this.socket.data.closed) return;
    this.socket.data.queue.push(...messages);
    flush(this.socket);
  }

  /** Sends `bytes` zero bytes as fast as the client takes them (stops when it closes). */
  stream(bytes: number): void {
    this.socket.data.stream = { remaining: bytes, chunk: new Uint8Array(64 * 1024) };
    flush(this.socket);
  }

  /** Resolves when the client has closed the connection. */
  waitClosed(): Promise<void> {
    if (this.socket.data.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.data.closedWaiters.push(resolve));
  }

  close(): void {
    this.socket.end();
  }

  /** Trust authentication: AuthenticationOk, BackendKeyData, ReadyForQuery. */
  acceptWithoutPassword(): void {
    this.send(authentication(0), backendKeyData(FAKE_PROCESS_ID, FAKE_SECRET_KEY), readyForQuery());
  }

  /** Answers every Sync with an empty result: NoData, CommandComplete, ReadyForQuery — until it closes. */
  async answerQueries(): Promise<void> {
    for (let message = await this.next(); message; message = await this.next()) {
      if (message.type === "S") this.send(noData(), commandComplete("SELECT 0"), readyForQuery());
    }
  }
}

function flush(socket: Socket<State>): void {
  const state = socket.data;
  for (;;) {
    if (state.closed) return;
    let chunk = state.queue[0];
    if (!chunk && state.stream && state.stream.remaining > 0) {
      chunk = state.stream.chunk.subarray(0, Math.min(state.stream.remaining, state.stream.chunk.length));
      state.stream.remaining -= chunk.length;
      state.queue.push(chunk);
    }
    if (!chunk) return;
    const written = socket.write(chunk);
    if (written < 0) return;
    state.sent += written;
    if (written < chunk.length) {
      state.queue[0] = chunk.subarray(written);
      return; // the drain handler goes on
    }
    state.queue.shift();
  }
}

function deliver(state: State, message: ClientMessage | null): void {
  const waiter = state.waiter;
  if (waiter) {
    state.waiter = null;
    waiter(message);
  } else if (message) state.messages.push(message);
}

function parse(state: State): void {
  for (;;) {
    if (!state.opened) {
      // The first message has no type byte: Int32 length, Int32 code.
      if (state.buffer.length < 8) return;
      const length = state.buffer.readInt32BE(0);
      if (state.buffer.length < length) return;
      const code = state.buffer.readInt32BE(4);
      const body = state.buffer.subarray(8, length);
      state.buffer = state.buffer.subarray(length);
      if (code === SSL_REQUEST_CODE) continue; // answered 'N' in the data handler
      state.opened = true;
      if (code === CANCEL_REQUEST_CODE) {
        state.opening.resolve({
          kind: "cancel",
          processId: body.readInt32BE(0),
          secretKey: body.readInt32BE(4),
        });
      } else if (code === PROTOCOL_VERSION_3) {
        const strings = body.toString("utf8").split("\0");
        const parameters = new Map<string, string>();
        for (let i = 0; i + 1 < strings.length && strings[i] !== ""; i += 2)
          parameters.set(strings[i]!, strings[i + 1]!);
        state.opening.resolve({ kind: "startup", parameters });
      }
      continue;
    }
    if (state.buffer.length < 5) return;
    const length = state.buffer.readInt32BE(1);
    if (state.buffer.length < 1 + length) return;
    const type = String.fromCharCode(state.buffer[0]!);
    const body = Buffer.from(state.buffer.subarray(5, 1 + length));
    state.buffer = state.buffer.subarray(1 + length);
    deliver(state, { type, body });
  }
}

export interface FakePostgres {
  port: number;
  /** Every connection so far, cancel requests included. */
  connections: FakeConnection[];
  /** `postgres://ann@127.0.0.1:PORT/shop`, plus `?query` if given. */
  url(query?: string): string;
  /** Connect options for the fake (user ann, database shop) with `extra` on top. */
  options(extra?: ConnectOptions): ConnectOptions;
  stop(): void;
}

/** Starts the fake on a free port; `script` runs once per connection (cancel requests included). */
export function startFakePostgres(
  script: (connection: FakeConnection) => void | Promise<void>,
): FakePostgres {
  const connections: FakeConnection[] = [];
  const listener: TCPSocketListener<State> = Bun.listen<State>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = {
          buffer: Buffer.alloc(0),
          opening: Promise.withResolvers<Opening>(),
          opened: false,
          messages: [],
          waiter: null,
          closed: false,
          closedWaiters: [],
          queue: [],
          received: 0,
          sent: 0,
          stream: null,
        };
        const connection = new FakeConnection(socket);
        connections.push(connection);
        void Promise.resolve(script(connection)).catch((error: Error) => {
          console.error(`fake PostgreSQL script failed: ${error.message}`);
          socket.terminate();
        });
      },
      data(socket, chunk) {
        const state = socket.data;
        if (state.opened) state.received += chunk.length;
        state.buffer = state.buffer.length ? Buffer.concat([state.buffer, chunk]) : Buffer.from(chunk);
        if (!state.opened && state.buffer.length >= 8 && state.buffer.readInt32BE(4) === SSL_REQUEST_CODE) {
          socket.write("N");
        }
        parse(state);
      },
      drain(socket) {
        flush(socket);
      },
      close(socket) {
        const state = socket.data;
        state.closed = true;
        deliver(state, null);
        for (const resolve of state.closedWaiters.splice(0)) resolve();
        state.opening.reject(new Error("closed before its first message"));
        state.opening.promise.catch(() => {});
      },
    },
  });
  return {
    port: listener.port,
    connections,
    url: (query) => `postgres://ann@127.0.0.1:${listener.port}/shop${query ? `?${query}` : ""}`,
    options: (extra = {}) => ({
      host: "127.0.0.1",
      port: listener.port,
      user: "ann",
      database: "shop",
      ...extra,
    }),
    stop: () => listener.stop(true),
  };
}

// ── Backend messages ──────────────────────────────────────────────────────────────────────────────────

/** A typed message: type byte, Int32 length (itself plus the body), body. */
export function message(type: string, body: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** Authentication ('R'): a request code and its data (0 Ok, 3 cleartext, 5 md5, 10 SASL, 11, 12). */
export function authentication(code: number, data: Uint8Array | string = new Uint8Array(0)): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const body = Buffer.alloc(4 + bytes.length);
  body.writeInt32BE(code, 0);
  body.set(bytes, 4);
  return message("R", body);
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return message("K", body);
}

export function readyForQuery(): Buffer {
  return message("Z", Buffer.from("I"));
}

export function noData(): Buffer {
  return message("n");
}

export function commandComplete(tag: string): Buffer {
  return message("C", Buffer.from(`${tag}\0`));
}

/** ErrorResponse ('E'): severity, SQLSTATE, message. */
export function errorResponse(severity: string, code: string, text: string): Buffer {
  return message("E", Buffer.from(`S${severity}\0C${code}\0M${text}\0\0`));
}

/** Just the 5-byte header of a message that announces `length` (its Int32 length field). */
export function header(type: string, length: number): Buffer {
  const bytes = Buffer.alloc(5);
  bytes.write(type, 0, "latin1");
  bytes.writeInt32BE(length, 1);
  return bytes;
}

/** The client nonce from a SASLInitialResponse ('p': mechanism, Int32 length, `n,,n=,r=NONCE`). */
export function clientNonce(initialResponse: Buffer): string {
  const match = /r=([^,\0]+)/.exec(initialResponse.toString("latin1"));
  if (!match) throw new Error("no nonce in the SASLInitialResponse");
  return match[1]!;
}
