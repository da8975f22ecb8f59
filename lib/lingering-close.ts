/**
 * lib/lingering-close.ts — closing a connection after a last word, without the kernel destroying it.
 *
 * A server that answers and then closes at once (an HTTP 431, a WebSocket Close) while the peer is still
 * sending has unread bytes in its socket; closing such a socket makes the kernel send a reset (RFC 1122
 * §4.2.2.13), and a reset that arrives before the peer has read our answer throws the answer away. So we
 * close as HTTP servers have long done ("lingering close", RFC 9112 §9.6): send FIN behind the answer —
 * the peer reads it, then the end of the stream — read and drop whatever the peer still sends until it
 * closes its half, and only then close. A peer that never closes its half is cut after a deadline.
 */
import type { StreamReader, StreamWriter } from "./streams.ts";

/** Bytes read at a time while dropping what the peer still sends: 64 KiB. */
const DISCARD_CHUNK_BYTES = 64 * 1024;

/**
 * Half-closes `writer` after what is queued, drops what `reader` still receives until the peer's EOF,
 * then closes; aborts the connection if it is still open `timeoutMs` from now. Resolves once it is closed.
 * Memory stays at one read of {@link DISCARD_CHUNK_BYTES} however much the peer sends.
 */
export async function lingeringClose(
  reader: StreamReader,
  writer: StreamWriter,
  timeoutMs: number,
): Promise<void> {
  const timer = setTimeout(() => writer.abort(), timeoutMs);
  timer.unref();
  writer.writeEof();
  try {
    while ((await reader.read(DISCARD_CHUNK_BYTES)).length > 0) {}
  } catch {
    // Reset by the peer, or aborted at the deadline: the connection is gone either way.
  }
  writer.close();
  await writer.waitClosed();
  clearTimeout(timer);
}
