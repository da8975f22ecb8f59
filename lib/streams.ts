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
 * The pieces live in their own files — lib/stream-reader.ts (StreamReader: buffering, flow control) and
 * lib/stream-writer.ts (StreamWriter: the send queue Bun's sockets lack) — and this one joins them to Bun's
 * socket handlers. Everything is re-exported here, so code imports from lib/streams.ts alone.
 */
import type { Socket } from "bun";
import { listen } from "./listen.ts";
import { DEFAULT_LIMIT, StreamReader } from "./stream-reader.ts";
import { ConnectionLostError, StreamWriter, socketHooks } from "./stream-writer.ts";

export {
  type LineConnection,
  type LineServer,
  type LineServerHandlers,
  type LineServerOptions,
  startLineServer,
} from "./line-server.ts";
export { DESCRIPTOR_RESERVE, ListenError, listen } from "./listen.ts";
export {
  DEFAULT_LIMIT,
  IncompleteReadError,
  LimitOverrunError,
  type ReadFlowControl,
  StreamReader,
} from "./stream-reader.ts";
export {
  atEndOfTurn,
  ConnectionLostError,
  closeAll,
  type EndOfTurnTask,
  StreamWriter,
  WRITE_HIGH_WATER,
  WRITE_LOW_WATER,
} from "./stream-writer.ts";

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
  if (writer) socketHooks.onClose(writer, error);
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
      if (socket.data.writer) socketHooks.onDrain(socket.data.writer);
    },
    handshake(socket: Socket<Connection>, success: boolean, authorizationError: Error | null) {
      if (success) {
        socket.data.handshake?.resolve();
        if (socket.data.writer) socketHooks.onDrain(socket.data.writer);
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
 * Why a connect failed, in words, from the error's `code`: `connection refused (is a server listening
 * there?) (ECONNREFUSED)`; the error's own message when the code is not one of the common ones.
 */
export function connectFailureReason(error: unknown): string {
  const cause = error as Error & { code?: string };
  const known = cause.code ? CONNECT_FAILURES[cause.code] : undefined;
  return known ? `${known} (${cause.code})` : (cause.message ?? String(error));
}

/**
 * One line for a failed connect — `cannot connect to HOST:PORT: connection refused (ECONNREFUSED)` — as a
 * {@link ConnectionLostError} whose `cause` is Bun's error.
 */
export function connectError(error: unknown, host: string, port: number): ConnectionLostError {
  const cause = error as Error;
  const reason = connectFailureReason(error);
  // An IPv6 address in brackets, as in a URL (RFC 3986 §3.2.2): `[::1]:8000`, not `::1:8000`.
  const address = host.includes(":") ? `[${host}]` : host;
  return new ConnectionLostError(`cannot connect to ${address}:${port}: ${reason}`, { cause });
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
 * is closed (what was queued is still sent); the server goes on. Rejects with a `ListenError` (one line:
 * why, and what to do) if it cannot listen; stops accepting while file descriptors run low (lib/listen.ts).
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
  const listener = listen<Connection>({
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
