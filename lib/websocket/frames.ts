/**
 * lib/websocket/frames.ts — WebSocket frames (RFC 6455 §5.2), their masking (§5.3) and the rules for
 * control frames (§5.5), for a server: it reads masked frames from clients and writes unmasked ones.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-------+-+-------------+-------------------------------+
 *   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *   | |1|2|3|       |K|             |                               |
 *   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *   |     Extended payload length continued, if payload len == 127  |
 *   + - - - - - - - - - - - - - - - +-------------------------------+
 *   |                               |Masking-key, if MASK set to 1  |
 *   +-------------------------------+-------------------------------+
 *   | Masking-key (continued)       |          Payload Data         |
 *   +-------------------------------- - - - - - - - - - - - - - - - +
 *
 * Every frame from a client is masked (§5.1: a server must fail an unmasked one); no frame from a server
 * is (§5.1 again) — which is what lets one encoded broadcast serve every user: the same bytes are correct
 * for each of them.
 */
import { IncompleteReadError, type StreamReader } from "../stream-reader.ts";
import { CloseCode } from "./close.ts";

/** Frame opcodes (§5.2, §11.8). 3–7 and 11–15 are reserved: a frame with one fails the connection. */
export const Opcode = {
  CONTINUATION: 0,
  TEXT: 1,
  BINARY: 2,
  CLOSE: 8,
  PING: 9,
  PONG: 10,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** Largest payload of a control frame (Close, Ping, Pong): 125 bytes (§5.5). */
export const MAX_CONTROL_PAYLOAD_BYTES = 125;
/** Largest payload with a 7-bit length: 125; up to 65,535 bytes take a 16-bit length, beyond a 64-bit one. */
const MAX_7BIT_LENGTH = 125;
const MAX_16BIT_LENGTH = 0xffff;
const LENGTH_16BIT = 126;
const LENGTH_64BIT = 127;
/** Bytes read at a time while a payload is skipped (never held whole): 64 KiB. */
const SKIP_CHUNK_BYTES = 64 * 1024;

const FIN = 0x80;
const RSV_BITS = 0x70;
const OPCODE_BITS = 0x0f;
const MASK = 0x80;
const LENGTH_BITS = 0x7f;

const utf8 = new TextEncoder();

/** One frame, its payload unmasked. */
export interface Frame {
  fin: boolean;
  opcode: Opcode;
  payload: Uint8Array;
}

/** What the first 2–14 bytes of a frame say. */
export interface FrameHeader {
  fin: boolean;
  opcode: Opcode;
  /** Payload length in bytes, as announced (may be beyond 2^53 for a lying peer: then it is `Infinity`). */
  length: number;
  /** The 4-byte masking key. */
  mask: Uint8Array;
}

/**
 * A frame that breaks RFC 6455, or one past a limit: `closeCode` is the status to fail the connection
 * with (1002 protocol error, 1009 too big).
 */
export class FrameError extends Error {
  override name = "FrameError";
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `opcode` is a control frame's (Close, Ping, Pong: the high bit of the 4 set, §5.5). */
export function isControl(opcode: number): boolean {
  return (opcode & 0x08) !== 0;
}

/** Bytes of a server frame's header for a payload of `length` bytes: 2, 4 or 10. */
function headerBytes(length: number): number {
  if (length <= MAX_7BIT_LENGTH) return 2;
  return length <= MAX_16BIT_LENGTH ? 4 : 10;
}

/** Writes a server frame's header (FIN/opcode, unmasked length) at `offset`; returns where the payload goes. */
function writeHeader(
  bytes: Uint8Array,
  offset: number,
  opcode: number,
  length: number,
  fin: boolean,
): number {
  bytes[offset] = (fin ? FIN : 0) | opcode;
  if (length <= MAX_7BIT_LENGTH) {
    bytes[offset + 1] = length;
    return offset + 2;
  }
  if (length <= MAX_16BIT_LENGTH) {
    bytes[offset + 1] = LENGTH_16BIT;
    bytes[offset + 2] = length >>> 8;
    bytes[offset + 3] = length & 0xff;
    return offset + 4;
  }
  bytes[offset + 1] = LENGTH_64BIT;
  // A JavaScript array is under 2^53 bytes: the high word fits a 32-bit write after a division.
  const high = Math.floor(length / 2 ** 32);
  const low = length >>> 0;
  bytes[offset + 2] = high >>> 24;
  bytes[offset + 3] = (high >>> 16) & 0xff;
  bytes[offset + 4] = (high >>> 8) & 0xff;
  bytes[offset + 5] = high & 0xff;
  bytes[offset + 6] = low >>> 24;
  bytes[offset + 7] = (low >>> 16) & 0xff;
  bytes[offset + 8] = (low >>> 8) & 0xff;
  bytes[offset + 9] = low & 0xff;
  return offset + 10;
}

/**
 * One server frame: unmasked, with the shortest length that fits (7, 16 or 64 bits). `fin = false` for
 * all but the last fragment of a message. Throws a `RangeError` for a control frame over 125 bytes or
 * fragmented (§5.5).
 */
export function encodeFrame(opcode: Opcode, payload: Uint8Array, fin = true): Uint8Array {
  if (isControl(opcode) && (payload.length > MAX_CONTROL_PAYLOAD_BYTES || !fin)) {
    throw new RangeError("a control frame carries at most 125 bytes and is never fragmented");
  }
  const frame = new Uint8Array(headerBytes(payload.length) + payload.length);
  frame.set(payload, writeHeader(frame, 0, opcode, payload.length, fin));
  return frame;
}

/**
 * Texts of up to this many UTF-16 units are encoded first and then copied behind their header: 1,024.
 * A trick for speed alone: writing the UTF-8 straight into the frame needs a view of it
 * (`frame.subarray(…)`), and a view of a freshly allocated array makes the engine first move the array's
 * bytes out of the garbage-collected heap into memory of their own. Measured (Bun 1.4, a loaded 2-core
 * machine): a 26-byte text frame in ~36 ns this way against ~140 ns; and lesson 08's /echo spends less time
 * in the garbage collector. Past a few KiB the second copy costs more than the view.
 */
const ENCODE_THEN_COPY_MAX_UNITS = 1024;

/** One text message as one server frame. */
export function encodeTextFrame(text: string): Uint8Array {
  if (text.length <= ENCODE_THEN_COPY_MAX_UNITS) {
    const payload = utf8.encode(text);
    const frame = new Uint8Array(headerBytes(payload.length) + payload.length);
    frame.set(payload, writeHeader(frame, 0, Opcode.TEXT, payload.length, true));
    return frame;
  }
  // A long text: its UTF-8 written straight into the frame.
  const length = Buffer.byteLength(text, "utf8");
  const frame = new Uint8Array(headerBytes(length) + length);
  utf8.encodeInto(text, frame.subarray(writeHeader(frame, 0, Opcode.TEXT, length, true)));
  return frame;
}

/** A batch of text messages encoded once: `bytes` holds one frame per line, `starts[i]` is where line i's begins. */
export interface EncodedBatch {
  bytes: Uint8Array;
  starts: number[];
}

/**
 * Text messages, one frame each, in one buffer allocated once for the whole batch — the broadcast path:
 * server frames are unmasked, so the same bytes go to every user (StreamWriter.writeShared). A user who
 * joined mid-batch is given `bytes.subarray(starts[i])`.
 *
 * How, for speed: the joined text is encoded in one pass into the tail of the buffer, and each line is
 * then moved forward into place behind its header (`copyWithin`, a memmove) — 2.9–4.3× one frame per
 * line joined afterwards, 0.63–0.69× lesson 05's newline framing of the same batch (bench/websocket-frames.ts).
 * An all-ASCII batch (byte length = string length) needs no byte length per line either.
 */
export function encodeTextFrames(lines: readonly string[]): EncodedBatch {
  const joined = lines.join("");
  const textBytes = Buffer.byteLength(joined, "utf8");
  const ascii = textBytes === joined.length;
  const lengths = new Array<number>(lines.length);
  let headers = 0;
  for (let index = 0; index < lines.length; index++) {
    const length = ascii ? lines[index]!.length : Buffer.byteLength(lines[index]!, "utf8");
    lengths[index] = length;
    headers += headerBytes(length);
  }
  const bytes = new Uint8Array(headers + textBytes);
  utf8.encodeInto(joined, bytes.subarray(headers));
  const starts = new Array<number>(lines.length);
  // Each line's text sits at `from`, at or after where it belongs: headers only ever push text forward.
  let offset = 0;
  let from = headers;
  for (let index = 0; index < lines.length; index++) {
    const length = lengths[index]!;
    starts[index] = offset;
    offset = writeHeader(bytes, offset, Opcode.TEXT, length, true);
    if (offset !== from) bytes.copyWithin(offset, from, from + length);
    offset += length;
    from += length;
  }
  return { bytes, starts };
}

/**
 * Where each line's frame starts in `encodeTextFrames(lines).bytes`, without encoding anything (for a
 * room that asks for the starts of a batch it encoded already, e.g. a LineFraming's `lineStarts`).
 */
export function textFrameStarts(lines: readonly string[]): number[] {
  const starts = new Array<number>(lines.length);
  let offset = 0;
  for (let index = 0; index < lines.length; index++) {
    starts[index] = offset;
    const length = Buffer.byteLength(lines[index]!, "utf8");
    offset += headerBytes(length) + length;
  }
  return starts;
}

// ── Reading a client's frame ──────────────────────────────────────────────────────────────────────────

/**
 * Reads a frame's header and checks it against §5.2 and §5.5. Returns `null` at a clean EOF (on a frame
 * boundary). Throws {@link FrameError} 1002 for: RSV bits set (no extension was agreed), a reserved opcode,
 * an unmasked frame, a 64-bit length with its top bit set, a control frame over 125 bytes or without FIN,
 * or EOF inside the header. The length is only announced: nothing is allocated for it here.
 */
export async function readFrameHeader(reader: StreamReader): Promise<FrameHeader | null> {
  let first: Uint8Array;
  try {
    first = await reader.readExactly(2);
  } catch (error) {
    if (error instanceof IncompleteReadError) {
      if (error.partial.length === 0) return null;
      throw truncated();
    }
    throw error;
  }
  return takeFrameHeader(first, reader) ?? (await readFrameHeaderRest(first, reader));
}

/**
 * The header of the frame whose first two bytes are `first` (read already), when the rest of it — the
 * extended length and the mask — is buffered: consumed and checked as {@link readFrameHeader} checks.
 * `null` when some of it is still on its way (nothing more is consumed): await
 * {@link readFrameHeaderRest} then. Never waits; throws {@link FrameError} for first bytes that break the
 * rules before anything else is read.
 *
 * Why a header comes in two calls, for speed alone: the rest almost always arrived in the chunk that
 * brought the first two bytes, and taking it at once saves the promise and the turn of the microtask queue
 * an `await` costs (lib/websocket/connection.ts says what lesson 08's /echo gains).
 */
export function takeFrameHeader(first: Uint8Array, reader: StreamReader): FrameHeader | null {
  const rest = reader.tryReadExactly(checkFrameStart(first));
  return rest === null ? null : parseFrameHeader(first, rest);
}

/** Like {@link takeFrameHeader}, awaiting the rest of the header; EOF inside it is {@link FrameError} 1002. */
export async function readFrameHeaderRest(first: Uint8Array, reader: StreamReader): Promise<FrameHeader> {
  return parseFrameHeader(first, await readRest(reader, checkFrameStart(first)));
}

/**
 * Checks a frame's first two bytes (§5.2, §5.5); returns how many header bytes follow them: the extended
 * length (0, 2 or 8) and the mask (4).
 */
function checkFrameStart(first: Uint8Array): number {
  const byte0 = first[0]!;
  const byte1 = first[1]!;
  const opcode = byte0 & OPCODE_BITS;
  const shortLength = byte1 & LENGTH_BITS;
  if ((byte0 & RSV_BITS) !== 0)
    throw protocolError(`RSV bits ${(byte0 & RSV_BITS) >> 4} set with no extension`);
  if (opcode > Opcode.BINARY && opcode < Opcode.CLOSE) throw protocolError(`reserved opcode ${opcode}`);
  if (opcode > Opcode.PONG) throw protocolError(`reserved opcode ${opcode}`);
  if ((byte1 & MASK) === 0) throw protocolError("unmasked frame from a client");
  if (isControl(opcode)) {
    if ((byte0 & FIN) === 0) throw protocolError("fragmented control frame");
    if (shortLength > MAX_CONTROL_PAYLOAD_BYTES) {
      throw protocolError(`control frame of more than ${MAX_CONTROL_PAYLOAD_BYTES} bytes`);
    }
  }
  return extendedLengthBytes(shortLength) + 4;
}

function extendedLengthBytes(shortLength: number): number {
  return shortLength === LENGTH_16BIT ? 2 : shortLength === LENGTH_64BIT ? 8 : 0;
}

/** The header from its first two bytes (checked already) and the `rest` that followed them. */
function parseFrameHeader(first: Uint8Array, rest: Uint8Array): FrameHeader {
  const byte0 = first[0]!;
  const shortLength = first[1]! & LENGTH_BITS;
  const extended = extendedLengthBytes(shortLength);
  let length = shortLength;
  if (extended === 2) {
    length = (rest[0]! << 8) | rest[1]!;
  } else if (extended === 8) {
    const high = ((rest[0]! << 24) | (rest[1]! << 16) | (rest[2]! << 8) | rest[3]!) >>> 0;
    const low = ((rest[4]! << 24) | (rest[5]! << 16) | (rest[6]! << 8) | rest[7]!) >>> 0;
    if (high >= 0x8000_0000) throw protocolError("64-bit payload length with its most significant bit set");
    // Past 2^53 a Number is no longer exact: such a length is over any limit, so say Infinity.
    length = high >= 2 ** 21 ? Number.POSITIVE_INFINITY : high * 2 ** 32 + low;
  }
  // The mask as an array of its own, not `rest.subarray(extended)`: a view of a fresh array makes the
  // engine move that array's bytes out of the garbage-collected heap first (~0.1 µs a frame, measured).
  const mask = extended === 0 ? rest : rest.slice(extended);
  return { fin: (byte0 & FIN) !== 0, opcode: (byte0 & OPCODE_BITS) as Opcode, length, mask };
}

/** `n` more bytes of a frame that has begun: EOF now is a truncated frame. */
async function readRest(reader: StreamReader, n: number): Promise<Uint8Array> {
  try {
    return await reader.readExactly(n);
  } catch (error) {
    throw error instanceof IncompleteReadError ? truncated() : error;
  }
}

/**
 * Reads the payload `header` announced and unmasks it. Allocates `header.length` bytes: check it against
 * your limit first (see {@link readFrame}). Throws {@link FrameError} 1002 at EOF inside the payload.
 */
export async function readFramePayload(reader: StreamReader, header: FrameHeader): Promise<Uint8Array> {
  const payload = await readRest(reader, header.length);
  unmask(payload, header.mask);
  return payload;
}

/**
 * The payload `header` announced, unmasked, if all of it is buffered now (consumed); else `null`, and
 * nothing is consumed (await {@link readFramePayload} then). Allocates `header.length` bytes: check it
 * against your limit first. Never waits — which is the point: awaiting a payload that is here already
 * costs a promise and a turn of the microtask queue.
 */
export function takeFramePayload(reader: StreamReader, header: FrameHeader): Uint8Array | null {
  const payload = reader.tryReadExactly(header.length);
  if (payload !== null) unmask(payload, header.mask);
  return payload;
}

/**
 * Reads and discards the payload `header` announced, {@link SKIP_CHUNK_BYTES} at a time: memory stays at
 * one chunk however long the frame. Throws {@link FrameError} 1002 at EOF inside it.
 */
export async function skipFramePayload(reader: StreamReader, header: FrameHeader): Promise<void> {
  let left = header.length;
  while (left > 0) {
    const chunk = await reader.read(Math.min(left, SKIP_CHUNK_BYTES));
    if (chunk.length === 0) throw truncated();
    left -= chunk.length;
  }
}

/**
 * Reads one whole frame. Returns `null` at a clean EOF (on a frame boundary). Throws {@link FrameError}:
 * 1009 when the announced length is over `maxPayloadBytes` — checked before a byte is allocated for it —
 * and 1002 for everything {@link readFrameHeader} refuses or EOF inside the frame.
 */
export async function readFrame(reader: StreamReader, maxPayloadBytes: number): Promise<Frame | null> {
  const header = await readFrameHeader(reader);
  if (header === null) return null;
  if (header.length > maxPayloadBytes) throw tooBig(header.length, maxPayloadBytes);
  const payload = await readFramePayload(reader, header);
  return { fin: header.fin, opcode: header.opcode, payload };
}

/** The 1009 error for a frame or message of `length` bytes over `limit`. */
export function tooBig(length: number, limit: number): FrameError {
  const size = Number.isFinite(length) ? `${length} bytes` : "more than 2^53 bytes";
  return new FrameError(CloseCode.MESSAGE_TOO_BIG, `message of ${size} is over the limit of ${limit} bytes`);
}

/**
 * Payloads from this many bytes on are unmasked a word at a time: 1 KiB. Below it, making the 32-bit view
 * costs more than it saves, and the 4-byte unrolled loop serves. Measured (bench/websocket-frames.ts, a
 * loaded 2-core machine), against the byte loop as §5.3 writes it: 64 KiB payloads ~3.4–3.6×, 1 KiB ~1.8×,
 * 256 bytes (unrolled) ~1.5×, 64 bytes ~1×.
 */
const WORD_UNMASK_MIN_BYTES = 1024;
/** Whether this machine stores a 32-bit word's lowest byte first (x86 and ARM do). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * XORs `payload` in place with the 4-byte `mask`, repeated (§5.3) — which masks as well as unmasks.
 * `offset`: where `payload` starts in the frame's payload (for a payload unmasked piece by piece as it
 * arrives). A piece that starts on a 4-byte boundary of its buffer (a fresh copy from the reader does) is
 * done a 32-bit word at a time, the mask made one word in the machine's own byte order so the bytes line
 * up (see WORD_UNMASK_MIN_BYTES for what it buys).
 */
export function unmask(payload: Uint8Array, mask: Uint8Array, offset = 0): void {
  const k0 = mask[offset & 3]!;
  const k1 = mask[(offset + 1) & 3]!;
  const k2 = mask[(offset + 2) & 3]!;
  const k3 = mask[(offset + 3) & 3]!;
  const length = payload.length;
  let index = 0;
  if (length >= WORD_UNMASK_MIN_BYTES && (payload.byteOffset & 3) === 0) {
    const words = length >>> 2;
    const view = new Uint32Array(payload.buffer, payload.byteOffset, words);
    const key = LITTLE_ENDIAN
      ? k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)
      : (k0 << 24) | (k1 << 16) | (k2 << 8) | k3;
    for (let word = 0; word < words; word++) view[word]! ^= key;
    index = words << 2;
  }
  for (; index + 3 < length; index += 4) {
    payload[index]! ^= k0;
    payload[index + 1]! ^= k1;
    payload[index + 2]! ^= k2;
    payload[index + 3]! ^= k3;
  }
  if (index < length) payload[index++]! ^= k0;
  if (index < length) payload[index++]! ^= k1;
  if (index < length) payload[index]! ^= k2;
}

/**
 * Reads the next piece of a payload: whatever has arrived, at most `max` bytes, unmasked as if it
 * started `offset` bytes into the payload. For a caller that checks a payload as it arrives. Throws
 * {@link FrameError} 1002 at EOF.
 */
export async function readPayloadPiece(
  reader: StreamReader,
  header: FrameHeader,
  offset: number,
  max: number,
): Promise<Uint8Array> {
  const piece = await reader.read(max);
  if (piece.length === 0) throw truncated();
  unmask(piece, header.mask, offset);
  return piece;
}

function protocolError(message: string): FrameError {
  return new FrameError(CloseCode.PROTOCOL_ERROR, message);
}

function truncated(): FrameError {
  return protocolError("connection closed inside a frame");
}
