/**
 * lib/pg/copy-in.ts — the data of a `COPY … FROM STDIN` on its way up (manual: "COPY Operations"): once the
 * server answers CopyInResponse it is in copy-in mode and reads CopyData messages until CopyDone, or
 * CopyFail to cancel. The source is read only as fast as the socket takes its bytes, so a source of any
 * size holds a bounded amount of memory.
 */
import { type StreamWriter, WRITE_HIGH_WATER } from "../streams.ts";
import {
  type MessageBuilder,
  writeCopyData,
  writeCopyDataHeader,
  writeCopyDone,
  writeCopyFail,
} from "./protocol.ts";

/** What `copyFrom()` reads: bytes or strings (UTF-8), from an async iterable or a ReadableStream. */
export type CopySource =
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>
  | ReadableStream<Uint8Array | string>;

/** Bytes of COPY data gathered into one CopyData message. */
const COPY_MESSAGE_BYTES = 64 * 1024; // 64 KiB

const utf8 = new TextEncoder();

/** The connection a COPY FROM writes through. */
export interface CopyInConnection {
  /** The connection's message buffer: messages are built here, then handed over with `flush()`. */
  readonly out: MessageBuilder;
  readonly writer: StreamWriter;
  /** Hands what `out` holds to the writer. */
  flush(): void;
  /** The connection is over: nothing more is written. */
  readonly closed: boolean;
}

/**
 * Sends a COPY FROM's data: the source's chunks gathered into CopyData messages of ~64 KiB, waiting for
 * the socket to drain whenever more than the writer's high-water mark is queued. Then CopyDone — or
 * CopyFail (`the COPY source failed: …`) if the source throws or yields something that is neither bytes
 * nor a string. Stops at once if the server reported an error (`copy.error`: it ignores the rest; what was
 * gathered is dropped) or the connection is over (nothing more is written). Never rejects.
 */
export async function sendCopyData(
  source: CopySource,
  copy: { readonly error: Error | null },
  connection: CopyInConnection,
): Promise<void> {
  const { out, writer } = connection;
  let failure: string | null = null;
  try {
    const iterable: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> =
      source instanceof ReadableStream ? (source as AsyncIterable<Uint8Array | string>) : source;
    let gathered = 0;
    for await (const chunk of iterable) {
      if (copy.error || connection.closed) break;
      if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
        throw new TypeError(`it yielded ${chunk === null ? "null" : typeof chunk}, not bytes or a string`);
      }
      if (chunk.length >= COPY_MESSAGE_BYTES / 4) {
        // A big chunk travels as it is, behind a header: no copy into the message buffer.
        const bytes = typeof chunk === "string" ? utf8.encode(chunk) : chunk.slice(); // theirs to reuse
        writeCopyDataHeader(out, bytes.length);
        connection.flush();
        writer.writeShared(bytes);
        gathered = COPY_MESSAGE_BYTES;
      } else gathered += writeCopyData(out, chunk);
      if (gathered >= COPY_MESSAGE_BYTES) {
        gathered = 0;
        connection.flush();
        if (writer.bufferedBytes > WRITE_HIGH_WATER) {
          // Send now rather than at the end of the turn; wait only if the kernel cannot take it.
          writer.flushNow();
          await writer.drain();
        }
      }
    }
  } catch (error) {
    failure = `the COPY source failed: ${(error as Error).message ?? String(error)}`;
  }
  if (!connection.closed) {
    if (copy.error)
      out.take(); // the server is no longer in copy-in mode: drop what was gathered
    else if (failure !== null) {
      out.take();
      writeCopyFail(out, failure);
    } else writeCopyDone(out);
    connection.flush();
    writer.flushNow();
  }
}
