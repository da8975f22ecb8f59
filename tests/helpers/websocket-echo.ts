/**
 * A WebSocket echo server for the conformance tests, made of lib/websocket's parts on lib/streams: each
 * connection's request head is read (readRequestHead), checked (checkUpgrade), answered with the 101, and
 * every message is sent back — text as text, binary as binary — the endpoint conformance tools expect.
 * Messages up to 16 MiB (Autobahn's largest case).
 *
 * Run it alone (`bun tests/helpers/websocket-echo.ts --port 0`): it prints `listening on 127.0.0.1:PORT`,
 * and its memory can be measured from outside (the limits tests do).
 */

import { parseArgs } from "node:util";
import { MAX_REQUEST_HEAD_BYTES, RequestHeadError, readRequestHead } from "../../lib/http-request-head.ts";
import { lingeringClose } from "../../lib/lingering-close.ts";
import { type StreamReader, type StreamServer, type StreamWriter, startServer } from "../../lib/streams.ts";
import {
  type CloseInfo,
  WebSocketConnection,
  type WebSocketOptions,
} from "../../lib/websocket/connection.ts";
import { checkUpgrade, refusalResponse } from "../../lib/websocket/handshake.ts";

/** How long a client has to send its whole handshake: 10 s. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a refused client may go on sending before its connection is cut: 1 s. */
const REFUSAL_LINGER_MS = 1000;
/** Largest echoed message: 16 MiB. */
export const ECHO_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface EchoServer extends StreamServer {
  /** How each connection ended, in the order they did. */
  readonly closes: CloseInfo[];
  stop(): void;
}

export interface EchoServerOptions extends Partial<WebSocketOptions> {
  port?: number;
  allowedOrigins?: readonly string[];
  /** What to do with each connection instead of echoing (a test's own server behaviour). */
  handler?: (connection: WebSocketConnection) => Promise<void>;
}

/** Starts the echo server on a free loopback port (or `port`). */
export async function startEchoServer(options: EchoServerOptions = {}): Promise<EchoServer> {
  const closes: CloseInfo[] = [];
  const server = await startServer(
    async (reader, writer) => {
      const connection = await upgrade(reader, writer, options);
      if (connection === null) return;
      connection.closed.then((info) => closes.push(info));
      await (options.handler ?? echo)(connection);
    },
    // A reader limit of the head's cap: a head line that never ends is refused at 8 KiB.
    { port: options.port ?? 0, limit: MAX_REQUEST_HEAD_BYTES },
  );
  return {
    get hostname() {
      return server.hostname;
    },
    get port() {
      return server.port;
    },
    get connections() {
      return server.connections;
    },
    close: (closeConnections) => server.close(closeConnections),
    stop: () => server.close(true),
    closes,
  };
}

/** Reads the handshake; writes the 101 and returns the connection, or writes the refusal and returns null. */
async function upgrade(
  reader: StreamReader,
  writer: StreamWriter,
  options: EchoServerOptions,
): Promise<WebSocketConnection | null> {
  let head: Awaited<ReturnType<typeof readRequestHead>>;
  try {
    head = await readRequestHead(reader, MAX_REQUEST_HEAD_BYTES, HANDSHAKE_TIMEOUT_MS);
  } catch (error) {
    if (!(error instanceof RequestHeadError)) throw error;
    writer.write(refusalResponse({ ok: false, status: error.status, reason: error.reason, headers: {} }));
    await lingeringClose(reader, writer, REFUSAL_LINGER_MS);
    return null;
  }
  if (head === null) {
    writer.close();
    return null;
  }
  const decision = checkUpgrade(head, { allowedOrigins: options.allowedOrigins });
  if (!decision.ok) {
    writer.write(refusalResponse(decision));
    await lingeringClose(reader, writer, REFUSAL_LINGER_MS);
    return null;
  }
  writer.write(decision.response);
  return new WebSocketConnection(reader, writer, {
    maxMessageBytes: options.maxMessageBytes ?? ECHO_MAX_MESSAGE_BYTES,
    oversize: options.oversize,
    maxFragments: options.maxFragments,
    closeTimeoutMs: options.closeTimeoutMs,
  });
}

/** Sends every message back as it came, waiting for the peer to take each one (backpressure). */
export async function echo(connection: WebSocketConnection): Promise<void> {
  for (;;) {
    const message = await connection.readMessage();
    if (message === null) return;
    if (message.type === "text") connection.sendText(message.text);
    else if (message.type === "binary") connection.sendBinary(message.data);
    else connection.sendText(`too long: ${message.byteLength} bytes`);
    try {
      await connection.writer.drain();
    } catch {
      return; // the connection is gone; readMessage() will say so too
    }
  }
}

if (import.meta.main) {
  // `--port N`, `--max-message BYTES`, `--oversize fail|skip`: what the memory tests start it with.
  const { values } = parseArgs({
    options: { port: { type: "string" }, "max-message": { type: "string" }, oversize: { type: "string" } },
  });
  const server = await startEchoServer({
    port: Number(values.port ?? 0),
    maxMessageBytes: values["max-message"] ? Number(values["max-message"]) : undefined,
    oversize: values.oversize === "skip" ? "skip" : "fail",
  });
  console.log(`listening on 127.0.0.1:${server.port}`);
  // SIGUSR1: collect garbage and say so — a memory test then measures what is held, not what is litter.
  process.on("SIGUSR1", () => {
    Bun.gc(true);
    console.log("collected");
  });
}
