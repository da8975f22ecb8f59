/**
 * Shared steps of the WebSocket conformance tests: an echo server per test file, a connected raw client
 * per case, and the check every failing case makes — a Close with the right code, then TCP closed
 * within a second.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import {
  type RawWebSocketClient as Client,
  RawWebSocketClient,
  type ServerFrame,
} from "./websocket-client.ts";
import { type EchoServer, type EchoServerOptions, startEchoServer } from "./websocket-echo.ts";

/** Opcodes, spelled out for the client side (the server's own constants are what is under test). */
export const TEXT = 1;
export const BINARY = 2;
export const CONTINUATION = 0;
export const CLOSE = 8;
export const PING = 9;
export const PONG = 10;

/** How long TCP may stay open after the server's Close when it fails a connection: 1 s. */
export const TCP_CLOSE_MS = 1000;

// ignoreBOM: a message that starts with U+FEFF must be compared with it, not without.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** Starts an echo server for the file's tests (stopped after them); `get()` returns it. */
export function useEchoServer(options: EchoServerOptions = {}): () => EchoServer {
  let server: EchoServer | undefined;
  beforeAll(async () => {
    server = await startEchoServer(options);
  });
  afterAll(() => server?.stop());
  return () => server!;
}

/** A client that has completed the handshake with `server`. */
export function connect(server: EchoServer): Promise<Client> {
  return RawWebSocketClient.connect(server.port);
}

/**
 * The server failed the connection as it must: the next frames (besides those `allowBefore` lets through,
 * e.g. the echo of an earlier message) end in a Close with `code`, and TCP is closed within
 * {@link TCP_CLOSE_MS} of it. Returns the frames that came before the Close.
 */
export async function expectFailed(client: Client, code: number, allowBefore = 0): Promise<ServerFrame[]> {
  const close = await client.readClose();
  expect(close.code).toBe(code);
  expect(close.before.length).toBeLessThanOrEqual(allowBefore);
  await client.waitForEnd(TCP_CLOSE_MS);
  client.close();
  return close.before;
}

/** The next frame is a text message equal to `text`, unmasked and whole. */
export async function expectText(client: Client, text: string): Promise<void> {
  const frame = await client.readFrame();
  expect(frame.opcode).toBe(TEXT);
  expect(frame.fin).toBe(true);
  expect(frame.masked).toBe(false);
  expect(utf8.decode(frame.payload)).toBe(text);
}

/** The next frame is `opcode` with exactly `payload`. */
export async function expectFrame(client: Client, opcode: number, payload: Uint8Array): Promise<void> {
  const frame = await client.readFrame();
  expect(frame.opcode).toBe(opcode);
  expect(frame.fin).toBe(true);
  expect(frame.masked).toBe(false);
  expect(frame.payload.length).toBe(payload.length);
  expect(Buffer.compare(frame.payload, payload)).toBe(0);
}

/** The clean end: we send Close(1000), the server answers Close(1000) and closes TCP within a second. */
export async function closeNormally(client: Client): Promise<void> {
  client.sendFrame(CLOSE, Uint8Array.of(0x03, 0xe8));
  const close = await client.readClose();
  expect(close.code).toBe(1000);
  expect(close.before).toEqual([]);
  await client.waitForEnd(TCP_CLOSE_MS);
  client.close();
}

/** Nothing arrives for `ms` (the server sent no frame it should not have). */
export async function expectSilence(client: Client, ms = 100): Promise<void> {
  await Bun.sleep(ms);
  expect(client.pendingBytes).toBe(0);
}
