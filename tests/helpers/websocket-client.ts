/**
 * A raw-socket WebSocket client for the conformance tests (RFC 6455 §5, client side): it masks its frames
 * as a client must — or not, or with RSV bits, a reserved opcode, a lying length, when a test says so —
 * writes any bytes, at once or one byte at a time, and reads the server's bytes back with a deadline on
 * every wait. It is written on `Bun.connect` directly, not on lib/streams, so that a bug there cannot
 * hide the same bug in the server under test.
 *
 * `socket.write()` does not buffer in Bun (it returns how many bytes the kernel took), so writes go
 * through a small queue sent from the `drain` handler.
 */
import type { Socket } from "bun";

/** Default deadline for any wait on the server: 2 s. */
export const DEFAULT_WAIT_MS = 2000;
/** The RFC's example key (§1.3), whose accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`. */
export const EXAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** One frame as the server sent it. */
export interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** An HTTP response head (and a body, if it had a Content-Length). */
export interface HttpReply {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: string;
}

/** How a test frame is to be built; the defaults make a correct client frame. */
export interface FrameShape {
  fin?: boolean;
  /** RSV1–3 as a 3-bit number (RSV1 = 4). */
  rsv?: number;
  /** False sends the frame unmasked (a client must not). */
  mask?: boolean;
  /** The 4-byte masking key; random by default. */
  maskKey?: Uint8Array;
  /** Announce this length instead of the payload's (a lie), as a 64-bit length. */
  announcedLength?: bigint;
  /** Force the 16- or 64-bit length form even for short payloads. */
  lengthForm?: 7 | 16 | 64;
}

/** Builds one client frame (masked unless `shape.mask === false`). */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  shape: FrameShape = {},
): Uint8Array {
  const data = typeof payload === "string" ? utf8.encode(payload) : payload;
  const masked = shape.mask !== false;
  const announced = shape.announcedLength ?? BigInt(data.length);
  const form =
    shape.announcedLength !== undefined
      ? 64
      : (shape.lengthForm ?? (data.length <= 125 ? 7 : data.length <= 0xffff ? 16 : 64));
  const lengthBytes = form === 7 ? 0 : form === 16 ? 2 : 8;
  const header = new Uint8Array(2 + lengthBytes + (masked ? 4 : 0));
  header[0] = (shape.fin === false ? 0 : 0x80) | ((shape.rsv ?? 0) << 4) | opcode;
  const view = new DataView(header.buffer);
  if (form === 7) header[1] = data.length;
  else if (form === 16) {
    header[1] = 126;
    view.setUint16(2, Number(announced));
  } else {
    header[1] = 127;
    view.setBigUint64(2, announced);
  }
  if (masked) header[1] |= 0x80;
  const frame = new Uint8Array(header.length + data.length);
  frame.set(header);
  frame.set(data, header.length);
  if (masked) {
    const key = shape.maskKey ?? crypto.getRandomValues(new Uint8Array(4));
    frame.set(key, 2 + lengthBytes);
    const start = header.length;
    for (let index = 0; index < data.length; index++) frame[start + index]! ^= key[index & 3]!;
  }
  return frame;
}

/** A Close frame body: the code as 2 bytes, then the reason (bytes as given, valid UTF-8 or not). */
export function closeBody(code: number, reason: Uint8Array | string = ""): Uint8Array {
  const reasonBytes = typeof reason === "string" ? utf8.encode(reason) : reason;
  const body = new Uint8Array(2 + reasonBytes.length);
  body[0] = code >> 8;
  body[1] = code & 0xff;
  body.set(reasonBytes, 2);
  return body;
}

/** Bytes from hex, e.g. `hex("ce ba e1")`. */
export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  return Uint8Array.from(digits.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

interface State {
  /** Received bytes not yet read: `buffer[start..end)`, a buffer that doubles (a 16 MiB frame comes in 64 KiB reads). */
  buffer: Uint8Array;
  start: number;
  end: number;
  ended: boolean;
  endedAt: number;
  waiter: (() => void) | null;
  queue: Uint8Array[];
}

/** One raw TCP connection to a WebSocket server. */
export class RawWebSocketClient {
  readonly #socket: Socket<State>;
  readonly #state: State;

  private constructor(socket: Socket<State>) {
    this.#socket = socket;
    this.#state = socket.data;
  }

  /** Opens a TCP connection, nothing sent yet. */
  static async open(port: number, host = "127.0.0.1"): Promise<RawWebSocketClient> {
    const state: State = {
      buffer: new Uint8Array(64 * 1024),
      start: 0,
      end: 0,
      ended: false,
      endedAt: 0,
      waiter: null,
      queue: [],
    };
    const wake = (s: State) => {
      const waiter = s.waiter;
      s.waiter = null;
      waiter?.();
    };
    const end = (s: State) => {
      if (!s.ended) s.endedAt = performance.now();
      s.ended = true;
      wake(s);
    };
    const socket = await Bun.connect<State>({
      hostname: host,
      port,
      allowHalfOpen: true,
      data: state,
      socket: {
        data(socket, chunk) {
          const s = socket.data;
          if (s.end + chunk.length > s.buffer.length) {
            const live = s.buffer.subarray(s.start, s.end);
            const grown = new Uint8Array(Math.max(s.buffer.length, 2 * (live.length + chunk.length)));
            grown.set(live);
            s.buffer = grown;
            s.end = live.length;
            s.start = 0;
          }
          s.buffer.set(chunk, s.end);
          s.end += chunk.length;
          wake(s);
        },
        drain(socket) {
          flushQueue(socket);
        },
        end(socket) {
          end(socket.data);
        },
        close(socket) {
          end(socket.data);
        },
        error(socket) {
          end(socket.data);
        },
      },
    });
    return new RawWebSocketClient(socket);
  }

  /** Opens a connection and completes the opening handshake; throws unless the server answers 101. */
  static async connect(
    port: number,
    options: { path?: string; headers?: Record<string, string> } = {},
  ): Promise<RawWebSocketClient> {
    const client = await RawWebSocketClient.open(port);
    client.send(handshakeRequest(port, options.path, options.headers));
    const reply = await client.readHttpReply();
    if (reply.status !== 101) throw new Error(`handshake refused: ${reply.head.split("\r\n")[0]}`);
    return client;
  }

  /** Bytes received and not yet read. */
  get pendingBytes(): number {
    return this.#state.end - this.#state.start;
  }

  /** True once the server closed its side (FIN, or the connection is gone). */
  get ended(): boolean {
    return this.#state.ended;
  }

  /** Writes bytes (queued if the kernel does not take them all at once). */
  send(bytes: Uint8Array | string): void {
    const data = typeof bytes === "string" ? utf8.encode(bytes) : bytes;
    this.#state.queue.push(data);
    flushQueue(this.#socket);
  }

  /** Writes one frame; see {@link clientFrame}. */
  sendFrame(opcode: number, payload: Uint8Array | string = new Uint8Array(0), shape: FrameShape = {}): void {
    this.send(clientFrame(opcode, payload, shape));
  }

  /** Writes `bytes` one byte at a time, `pauseMs` apart, so each one arrives on its own. */
  async sendSlowly(bytes: Uint8Array | string, pauseMs = 1): Promise<void> {
    const data = typeof bytes === "string" ? utf8.encode(bytes) : bytes;
    for (const byte of data) {
      this.send(new Uint8Array([byte]));
      await Bun.sleep(pauseMs);
    }
  }

  /** Reads the server's HTTP response head (and its Content-Length body). */
  async readHttpReply(waitMs = DEFAULT_WAIT_MS): Promise<HttpReply> {
    const end = await this.#waitFor(
      (received) => {
        for (let index = 3; index < received.length; index++) {
          if (
            received[index - 3] === 13 &&
            received[index - 2] === 10 &&
            received[index - 1] === 13 &&
            received[index] === 10
          ) {
            return index + 1;
          }
        }
        return -1;
      },
      waitMs,
      "an HTTP response head",
    );
    const head = latin1.decode(this.#take(end));
    const [statusLine, ...lines] = head.trimEnd().split("\r\n");
    const headers: Record<string, string> = Object.create(null);
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    const bodyBytes =
      length > 0
        ? this.#take(await this.#waitFor((r) => (r.length >= length ? length : -1), waitMs, "the body"))
        : new Uint8Array(0);
    return {
      status: Number(statusLine!.split(" ")[1]),
      head,
      headers,
      body: new TextDecoder().decode(bodyBytes),
    };
  }

  /** Reads one server frame; rejects after `waitMs`, or if the connection ends first. */
  async readFrame(waitMs = DEFAULT_WAIT_MS): Promise<ServerFrame> {
    const end = await this.#waitFor(frameEnd, waitMs, "a frame");
    const bytes = this.#take(end);
    const masked = (bytes[1]! & 0x80) !== 0;
    const start = end - frameLength(bytes);
    return {
      fin: (bytes[0]! & 0x80) !== 0,
      rsv: (bytes[0]! >> 4) & 7,
      opcode: bytes[0]! & 0x0f,
      masked,
      payload: bytes.subarray(start),
    };
  }

  /** Reads frames until a Close; returns its code (1005 if it had none) and reason. Others go in `before`. */
  async readClose(
    waitMs = DEFAULT_WAIT_MS,
  ): Promise<{ code: number; reason: string; before: ServerFrame[] }> {
    const before: ServerFrame[] = [];
    for (;;) {
      const frame = await this.readFrame(waitMs);
      if (frame.opcode !== 8) {
        before.push(frame);
        continue;
      }
      const code = frame.payload.length >= 2 ? (frame.payload[0]! << 8) | frame.payload[1]! : 1005;
      return { code, reason: new TextDecoder().decode(frame.payload.subarray(2)), before };
    }
  }

  /**
   * Waits until the server has closed its side of TCP (FIN or reset), at most `waitMs`; rejects after it.
   * Returns how long it waited, in ms.
   */
  async waitForEnd(waitMs = 1000): Promise<number> {
    const started = performance.now();
    if (!this.#state.ended)
      await this.#waitFor(() => (this.#state.ended ? 0 : -1), waitMs, "the end of TCP", true);
    return Math.max(0, this.#state.endedAt - started);
  }

  /** Bytes we sent that the kernel has not taken yet (the server stopped reading, say). */
  get unsentBytes(): number {
    return this.#state.queue.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Stops reading from the socket: the server's frames pile up in the kernel, then the server must wait. */
  pauseReading(): void {
    this.#socket.pause();
  }

  /** Waits until every byte we sent was taken by the kernel, at most `waitMs`; rejects after it. */
  async sentAll(waitMs = DEFAULT_WAIT_MS): Promise<void> {
    const deadline = performance.now() + waitMs;
    while (this.#state.queue.length > 0) {
      if (performance.now() > deadline) throw new Error(`could not send everything within ${waitMs} ms`);
      await Bun.sleep(1);
    }
  }

  /** Closes our side for good. */
  close(): void {
    this.#socket.end();
  }

  /** Half-closes: FIN after what is queued. */
  shutdown(): void {
    this.#socket.shutdown();
  }

  #take(n: number): Uint8Array {
    const state = this.#state;
    const bytes = state.buffer.slice(state.start, state.start + n);
    state.start += n;
    return bytes;
  }

  #received(): Uint8Array {
    return this.#state.buffer.subarray(this.#state.start, this.#state.end);
  }

  /** Waits until `find(received)` is ≥ 0 (and returns it); rejects at the deadline or at EOF. */
  async #waitFor(
    find: (received: Uint8Array) => number,
    waitMs: number,
    what: string,
    eofIsFine = false,
  ): Promise<number> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const found = find(this.#received());
      if (found >= 0) return found;
      if (this.#state.ended && !eofIsFine) {
        throw new Error(`connection ended while waiting for ${what} (${this.pendingBytes} bytes pending)`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${what} within ${waitMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#state.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** The opening handshake, as a browser sends it; `headers` override or add fields (an empty value removes one). */
export function handshakeRequest(port: number, path = "/", headers: Record<string, string> = {}): string {
  const fields: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": EXAMPLE_KEY,
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  let request = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(fields)) if (value !== "") request += `${name}: ${value}\r\n`;
  return `${request}\r\n`;
}

/** Where the first whole frame in `bytes` ends, or -1. */
function frameEnd(bytes: Uint8Array): number {
  if (bytes.length < 2) return -1;
  const short = bytes[1]! & 0x7f;
  const mask = bytes[1]! & 0x80 ? 4 : 0;
  let header = 2;
  let length = short;
  if (short === 126) {
    if (bytes.length < 4) return -1;
    header = 4;
    length = (bytes[2]! << 8) | bytes[3]!;
  } else if (short === 127) {
    if (bytes.length < 10) return -1;
    header = 10;
    length = Number(new DataView(bytes.buffer, bytes.byteOffset + 2, 8).getBigUint64(0));
  }
  const end = header + mask + length;
  return bytes.length >= end ? end : -1;
}

/** The payload length of the (whole) frame at the start of `bytes`. */
function frameLength(bytes: Uint8Array): number {
  const short = bytes[1]! & 0x7f;
  if (short === 126) return (bytes[2]! << 8) | bytes[3]!;
  if (short === 127) return Number(new DataView(bytes.buffer, bytes.byteOffset + 2, 8).getBigUint64(0));
  return short;
}

function flushQueue(socket: Socket<State>): void {
  const queue = socket.data.queue;
  while (queue.length > 0) {
    const chunk = queue[0]!;
    const written = socket.write(chunk);
    if (written < 0) {
      queue.length = 0;
      return;
    }
    if (written < chunk.length) {
      queue[0] = chunk.subarray(written);
      return;
    }
    queue.shift();
  }
}
