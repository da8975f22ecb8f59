/**
 * lib/pg/protocol.ts — the PostgreSQL frontend/backend protocol, version 3.0: how messages are framed, one
 * function per message we send, one parser per message we read. Names follow the PostgreSQL manual,
 * chapter "Frontend/Backend Protocol" → "Message Formats".
 *
 * Framing. Every message after the startup is:
 *
 *   Byte1 type   Int32 length (counts itself and the body, not the type)   body (length − 4 bytes)
 *
 * Integers are big-endian; strings are "C strings" (UTF-8, ending in a zero byte). The startup, SSL and
 * cancel requests have no type byte: they come first, before the server knows anything.
 */
import { type Parser, TypeOid } from "./types.ts";

/** Protocol 3.0, as the startup message's version field: 3 << 16. */
export const PROTOCOL_VERSION_3 = 196_608;
/** The "version" a CancelRequest carries instead: 1234 << 16 | 5678. */
export const CANCEL_REQUEST_CODE = 80_877_102;
/** The "version" an SSLRequest carries: 1234 << 16 | 5679. */
export const SSL_REQUEST_CODE = 80_877_103;
/** The one-byte answers to an SSLRequest: go ahead with the TLS handshake, or TLS is not available. */
export const SSL_ACCEPTED = 0x53; // 'S'
export const SSL_REFUSED = 0x4e; // 'N'
/** Bytes of the type byte plus the length field that start every typed message. */
export const HEADER_BYTES = 5;
/**
 * Largest message we accept from the server once it has authenticated: 1 GiB. PostgreSQL builds each
 * message in one buffer of at most MaxAllocSize (1 GiB − 1 byte), so no real server sends more; a DataRow
 * can legitimately come close (a big bytea or text value).
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;
/**
 * Before authentication completes, a server has proved nothing, so it gets far less — libpq's bounds
 * (src/interfaces/libpq/fe-connect.c, PQconnectPoll): an authentication request of at most 2,000 bytes
 * ("authentication requests can't be very large")…
 */
const MAX_AUTHENTICATION_BYTES = 2_000;
/** …and an ErrorResponse (or any other message) of at most 30,000 bytes (libpq's MAX_ERRLEN). */
const MAX_PREAUTH_MESSAGE_BYTES = 30_000;
/** Bind counts parameters in an Int16 the server reads as unsigned: at most 65,535 per query. */
export const MAX_BIND_PARAMETERS = 65_535;

/** Backend message types, by their type byte. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Frontend message types, by their type byte. */
const Frontend = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Parse: 0x50, // 'P'
  PasswordMessage: 0x70, // 'p' (also SASLInitialResponse and SASLResponse)
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;

/** Authentication request codes (the Int32 after 'R'). */
export const Auth = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** The NULL marker in a parameter or column length. */
const NULL_LENGTH = -1;
/** Format code 0: text. We send and receive every value as text. */
const TEXT_FORMAT = 0;

const utf8 = new TextEncoder();

// ── Writing: a growable buffer and one function per frontend message ──────────────────────────────────

/** Bytes a MessageBuilder keeps between messages; a larger buffer is handed over by `take()`, not kept. */
const BUILDER_KEEP_BYTES = 64 * 1024; // 64 KiB
const BUILDER_INITIAL_BYTES = 1024;
/** Strings up to this many UTF-16 units are copied unit by unit when ASCII (see MessageBuilder.cstring). */
const SHORT_STRING_UNITS = 64;
const LAST_ASCII = 0x7f;
/** Byte b → its two lowercase hex digits, at [2b] and [2b + 1]. */
const HEX_DIGIT_PAIRS = new Uint8Array(512);
for (let byte = 0; byte < 256; byte++) {
  HEX_DIGIT_PAIRS[2 * byte] = "0123456789abcdef".charCodeAt(byte >> 4);
  HEX_DIGIT_PAIRS[2 * byte + 1] = "0123456789abcdef".charCodeAt(byte & 15);
}

/** Builds frontend messages into one buffer; `take()` hands the bytes over and starts afresh. */
export class MessageBuilder {
  #bytes = new Uint8Array(BUILDER_INITIAL_BYTES);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;
  /** Where the length field of the message being built is. */
  #messageStart = 0;

  /** Bytes built and not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** Starts a message: its type byte (none for startup-phase messages) and a length to patch in `end()`. */
  begin(type: number | null): this {
    if (type !== null) this.byte(type);
    this.#messageStart = this.#length;
    return this.int32(0);
  }

  /** Finishes the message begun last: writes its length. */
  end(): this {
    this.#view.setInt32(this.#messageStart, this.#length - this.#messageStart);
    return this;
  }

  byte(value: number): this {
    this.#reserve(1);
    this.#bytes[this.#length++] = value;
    return this;
  }

  int16(value: number): this {
    this.#reserve(2);
    this.#view.setInt16(this.#length, value);
    this.#length += 2;
    return this;
  }

  int32(value: number): this {
    this.#reserve(4);
    this.#view.setInt32(this.#length, value);
    this.#length += 4;
    return this;
  }

  bytes(value: Uint8Array): this {
    this.#reserve(value.length);
    this.#bytes.set(value, this.#length);
    this.#length += value.length;
    return this;
  }

  /** A UTF-8 string and its terminating zero byte. */
  cstring(value: string): this {
    // Encode in place when it surely fits (3 bytes per UTF-16 unit at most).
    this.#reserve(value.length * 3 + 1);
    if (value.length <= SHORT_STRING_UNITS && this.#ascii(value)) return this.byte(0);
    const { written } = utf8.encodeInto(value, this.#bytes.subarray(this.#length));
    this.#length += written;
    return this.byte(0);
  }

  /**
   * Copies a short string straight in when it is all ASCII (a portal or statement name, one or more per
   * query): cheaper than `encodeInto`, which makes a view and a result object each call. False, and
   * nothing written, at the first non-ASCII unit. The caller has reserved the room.
   */
  #ascii(value: string): boolean {
    const bytes = this.#bytes;
    const start = this.#length;
    for (let index = 0; index < value.length; index++) {
      const unit = value.charCodeAt(index);
      if (unit > LAST_ASCII) return false;
      bytes[start + index] = unit;
    }
    this.#length = start + value.length;
    return true;
  }

  /** A UTF-8 string without a terminator; returns the bytes written. */
  utf8(value: string): number {
    this.#reserve(value.length * 3);
    const { written } = utf8.encodeInto(value, this.#bytes.subarray(this.#length));
    this.#length += written;
    return written;
  }

  /**
   * A bytea value in PostgreSQL's hex text format (`\x` then two hex digits per byte), written straight
   * into the message from a lookup table: no hex string of the value, no second copy, no garbage (a
   * chunked `toString("hex")` left 200 MB of dead strings behind for a 100 MB value).
   */
  byteaHex(value: Uint8Array): this {
    this.#reserve(2 + 2 * value.length);
    const bytes = this.#bytes;
    let at = this.#length;
    bytes[at++] = 0x5c; // '\'
    bytes[at++] = 0x78; // 'x'
    for (let index = 0; index < value.length; index++) {
      const pair = value[index]! << 1;
      bytes[at++] = HEX_DIGIT_PAIRS[pair]!;
      bytes[at++] = HEX_DIGIT_PAIRS[pair + 1]!;
    }
    this.#length = at;
    return this;
  }

  /**
   * The bytes built so far, which the caller now owns; the builder is empty again. Small messages are
   * copied out and the buffer reused; a buffer grown past {@link BUILDER_KEEP_BYTES} (a big parameter) is
   * handed over as it is and replaced, so the builder never keeps a big message's memory.
   */
  take(): Uint8Array {
    const length = this.#length;
    this.#length = 0;
    if (this.#bytes.length <= BUILDER_KEEP_BYTES) return this.#bytes.slice(0, length);
    const bytes = this.#bytes.subarray(0, length);
    this.#bytes = new Uint8Array(BUILDER_INITIAL_BYTES);
    this.#view = new DataView(this.#bytes.buffer);
    return bytes;
  }

  /**
   * Like `take()`, but small messages come back as a view of the builder's own buffer, valid only until
   * the next message is built: for a caller that copies whatever it keeps (StreamWriter's `writeNow`).
   */
  takeView(): Uint8Array {
    if (this.#bytes.length > BUILDER_KEEP_BYTES) return this.take();
    const length = this.#length;
    this.#length = 0;
    return this.#bytes.subarray(0, length);
  }

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    // Doubling keeps many small writes cheap; one big write (a bytea) gets what it needs plus room for the
    // rest of its message — doubling a 200 MB buffer for the last few bytes would cost 400 MB.
    const doubled = this.#bytes.length * 2;
    const needed = this.#length + extra;
    const grown = new Uint8Array(needed > doubled ? needed + BUILDER_KEEP_BYTES : doubled);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** StartupMessage: protocol version, then name/value pairs (user, database, …), then a zero byte. */
export function writeStartupMessage(out: MessageBuilder, parameters: Record<string, string>): void {
  for (const [name, value] of Object.entries(parameters)) {
    // A NUL would end the C string early and turn the rest into parameters of its own.
    if (value.includes("\0")) throw new ProtocolError(`the startup parameter ${name} contains a NUL byte`);
  }
  out.begin(null).int32(PROTOCOL_VERSION_3);
  for (const [name, value] of Object.entries(parameters)) out.cstring(name).cstring(value);
  out.byte(0).end();
}

/** CancelRequest: sent on a new connection to stop what the backend `processId` is doing. */
export function writeCancelRequest(out: MessageBuilder, processId: number, secretKey: number): void {
  out.begin(null).int32(CANCEL_REQUEST_CODE).int32(processId).int32(secretKey).end();
}

/** SSLRequest: asks the server to switch this connection to TLS before the startup; it answers one byte. */
export function writeSSLRequest(out: MessageBuilder): void {
  out.begin(null).int32(SSL_REQUEST_CODE).end();
}

/** PasswordMessage: a cleartext or MD5-hashed password. */
export function writePasswordMessage(out: MessageBuilder, password: string): void {
  out.begin(Frontend.PasswordMessage).cstring(password).end();
}

/** SASLInitialResponse: the chosen mechanism and the client-first-message. */
export function writeSASLInitialResponse(out: MessageBuilder, mechanism: string, data: string): void {
  const bytes = utf8.encode(data);
  out.begin(Frontend.PasswordMessage).cstring(mechanism).int32(bytes.length).bytes(bytes).end();
}

/** SASLResponse: the client-final-message. */
export function writeSASLResponse(out: MessageBuilder, data: string): void {
  out.begin(Frontend.PasswordMessage).bytes(utf8.encode(data)).end();
}

/** Query: the simple query protocol — SQL text, possibly several statements. */
export function writeQuery(out: MessageBuilder, sql: string): void {
  out.begin(Frontend.Query).cstring(sql).end();
}

/** Parse: prepare `sql` as the named statement (types left for the server to infer). */
export function writeParse(out: MessageBuilder, statement: string, sql: string): void {
  out.begin(Frontend.Parse).cstring(statement).cstring(sql).int16(0).end();
}

/** Describe: ask for a statement's ('S') parameter and row description, or a portal's ('P'). */
export function writeDescribe(out: MessageBuilder, kind: "S" | "P", name: string): void {
  out.begin(Frontend.Describe).byte(kind.charCodeAt(0)).cstring(name).end();
}

/** A bytea parameter, to be written as hex text straight into the Bind message. */
export class ByteaParameter {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Bind: a portal from a statement and parameter values — all in text format; null is SQL NULL.
 * At most {@link MAX_BIND_PARAMETERS} values (the caller checks, before writing anything).
 */
export function writeBind(
  out: MessageBuilder,
  portal: string,
  statement: string,
  values: (Uint8Array | ByteaParameter | null)[],
): void {
  out.begin(Frontend.Bind).cstring(portal).cstring(statement);
  out.int16(1).int16(TEXT_FORMAT); // one format code, applied to every parameter
  out.int16(values.length);
  for (const value of values) {
    if (value === null) out.int32(NULL_LENGTH);
    else if (value instanceof ByteaParameter) out.int32(2 + 2 * value.bytes.length).byteaHex(value.bytes);
    else out.int32(value.length).bytes(value);
  }
  out.int16(1).int16(TEXT_FORMAT).end(); // every result column in text too
}

/** Execute: run the portal, all rows (0 = no limit). */
export function writeExecute(out: MessageBuilder, portal: string): void {
  out.begin(Frontend.Execute).cstring(portal).int32(0).end();
}

/** Close: deallocate a statement ('S') or portal ('P'). */
export function writeClose(out: MessageBuilder, kind: "S" | "P", name: string): void {
  out.begin(Frontend.Close).byte(kind.charCodeAt(0)).cstring(name).end();
}

/** Sync: end of one extended-protocol exchange; the server answers ReadyForQuery. */
export function writeSync(out: MessageBuilder): void {
  out.begin(Frontend.Sync).end();
}

/** CopyData: a piece of COPY data — any split will do, rows may span messages. Returns its length. */
export function writeCopyData(out: MessageBuilder, data: Uint8Array | string): number {
  out.begin(Frontend.CopyData);
  const length = typeof data === "string" ? out.utf8(data) : out.bytes(data) && data.length;
  out.end();
  return length;
}

/** The header of a CopyData of `length` bytes whose data the caller sends itself (no copy into here). */
export function writeCopyDataHeader(out: MessageBuilder, length: number): void {
  out.byte(Frontend.CopyData).int32(length + 4);
}

/** CopyDone: the end of a COPY … FROM STDIN's data. */
export function writeCopyDone(out: MessageBuilder): void {
  out.begin(Frontend.CopyDone).end();
}

/** CopyFail: refuse a COPY … FROM STDIN the server asked data for. */
export function writeCopyFail(out: MessageBuilder, reason: string): void {
  out.begin(Frontend.CopyFail).cstring(reason).end();
}

/** Terminate: a polite goodbye before closing the socket. */
export function writeTerminate(out: MessageBuilder): void {
  out.begin(Frontend.Terminate).end();
}

// ── Reading: framing, then one parser per backend message ─────────────────────────────────────────────

/** A protocol violation by the server (or by whatever is listening on that port). */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** A message header announced more bytes than we accept at this point; refused before any are buffered. */
export class MessageTooLongError extends ProtocolError {
  override name = "MessageTooLongError";
  constructor(
    readonly type: number,
    /** The length field: the body plus the field's own 4 bytes. */
    readonly length: number,
    readonly limit: number,
    readonly authenticated: boolean,
  ) {
    super(
      `the server announced a ${length.toLocaleString("en-US")}-byte message (type ${JSON.stringify(String.fromCharCode(type))}) ${authenticated ? "" : "before authentication "}— the limit is ${limit.toLocaleString("en-US")} bytes`,
    );
  }
}

/** The largest length field accepted for a message of `type`, before or after authentication completes. */
function maxMessageLength(type: number, authenticated: boolean): number {
  if (authenticated) return MAX_MESSAGE_BYTES;
  return type === Backend.Authentication ? MAX_AUTHENTICATION_BYTES : MAX_PREAUTH_MESSAGE_BYTES;
}

/**
 * Cuts the byte stream from the server into messages. `push(chunk)` calls `onMessage(type, body)` for each
 * complete message, synchronously; `body` is a view valid only during the call. A header whose length is
 * over `maxMessageLength(type, authenticated)` throws {@link MessageTooLongError} as soon as its 5 bytes are
 * in: nothing of the body is kept. `authenticated` starts false; the client sets it at AuthenticationOk.
 */
export class MessageFramer {
  #buffer: Buffer = Buffer.alloc(0);
  #start = 0;
  #end = 0;
  authenticated = false;

  constructor(private readonly onMessage: (type: number, body: Buffer) => void) {}

  push(chunk: Uint8Array): void {
    this.#append(chunk);
    const buffer = this.#buffer;
    while (this.#end - this.#start >= HEADER_BYTES) {
      const type = buffer[this.#start]!;
      const length = buffer.readInt32BE(this.#start + 1);
      if (length < 4) {
        throw new ProtocolError(
          `invalid message length ${length} for message type ${String.fromCharCode(type)}`,
        );
      }
      const limit = maxMessageLength(type, this.authenticated);
      if (length > limit) throw new MessageTooLongError(type, length, limit, this.authenticated);
      const end = this.#start + 1 + length;
      if (end > this.#end) break;
      const bodyStart = this.#start + HEADER_BYTES;
      this.#start = end;
      this.onMessage(type, buffer.subarray(bodyStart, end));
    }
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    }
  }

  #append(chunk: Uint8Array): void {
    const live = this.#end - this.#start;
    if (live === 0) {
      // Nothing pending: parse the chunk where it lies (the reader hands us fresh copies we may keep).
      this.#buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      this.#start = 0;
      this.#end = chunk.length;
      return;
    }
    if (this.#end + chunk.length > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * (live + chunk.length), 64 * 1024));
      this.#buffer.copy(grown, 0, this.#start, this.#end);
      this.#buffer = grown;
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }
}

/** Reads C strings and integers from a message body, left to right. */
export class BodyReader {
  offset = 0;
  constructor(readonly body: Buffer) {}

  int16(): number {
    const value = this.body.readInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  int32(): number {
    const value = this.body.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  cstring(): string {
    const end = this.body.indexOf(0, this.offset);
    if (end === -1) throw new ProtocolError("unterminated string in a server message");
    const value = this.body.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return value;
  }

  rest(): Buffer {
    return this.body.subarray(this.offset);
  }
}

/** One column of a RowDescription. */
export interface FieldDescription {
  name: string;
  tableOid: number;
  columnNumber: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}

/** RowDescription ('T'): Int16 count, then per field: name, table OID, column, type OID, size, modifier, format. */
export function parseRowDescription(body: Buffer): FieldDescription[] {
  const reader = new BodyReader(body);
  const count = reader.int16();
  const fields: FieldDescription[] = [];
  for (let i = 0; i < count; i++) {
    fields.push({
      name: reader.cstring(),
      tableOid: reader.int32(),
      columnNumber: reader.int16(),
      typeOid: reader.int32(),
      typeSize: reader.int16(),
      typeModifier: reader.int32(),
      format: reader.int16(),
    });
  }
  return fields;
}

/**
 * DataRow ('D'): Int16 column count, then per column an Int32 length (−1 for NULL) and that many bytes of
 * text. Integers are read straight from the bytes; everything else is decoded as UTF-8 and parsed.
 */
export function parseDataRow(
  body: Buffer,
  fields: FieldDescription[],
  parsers: Parser[],
): Record<string, unknown> {
  const count = body.readInt16BE(0);
  const row: Record<string, unknown> = {};
  let offset = 2;
  for (let column = 0; column < count; column++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    const field = fields[column]!;
    if (length === -1) {
      row[field.name] = null;
      continue;
    }
    const end = offset + length;
    const typeOid = field.typeOid;
    row[field.name] =
      typeOid === TypeOid.int4 || typeOid === TypeOid.int2 || typeOid === TypeOid.oid
        ? parseAsciiInteger(body, offset, end)
        : parsers[column]!(body.toString("utf8", offset, end));
    offset = end;
  }
  return row;
}

/** A decimal integer of at most 10 digits, without making a string first. */
function parseAsciiInteger(bytes: Buffer, start: number, end: number): number {
  const negative = bytes[start] === 0x2d; // '-'
  let value = 0;
  for (let index = negative ? start + 1 : start; index < end; index++)
    value = value * 10 + (bytes[index]! - 0x30);
  return negative ? -value : value;
}

const SPACE = 0x20;
const isDigitByte = (byte: number | undefined) => byte !== undefined && byte >= 0x30 && byte <= 0x39;

/**
 * CommandComplete ('C'): the command tag, e.g. `SELECT 3`, `INSERT 0 1`, `CREATE TABLE`. The verb is
 * everything before the first number (INSERT has two: the OID, always 0, then the count); the count is the
 * last number. Read from the bytes (tags are ASCII): one per query, so no split, no regular expression.
 */
export function parseCommandComplete(body: Buffer): { command: string; rowCount: number | null } {
  const end = body.length - 1; // the terminating zero
  let verbEnd = -1;
  for (let index = 0; index < end; index++) {
    if (body[index] === SPACE && isDigitByte(body[index + 1])) {
      verbEnd = index;
      break;
    }
  }
  if (verbEnd === -1) return { command: body.toString("latin1", 0, end), rowCount: null };
  let countStart = end;
  while (countStart > verbEnd + 1 && isDigitByte(body[countStart - 1])) countStart--;
  let rowCount = 0;
  for (let index = countStart; index < end; index++) rowCount = rowCount * 10 + body[index]! - 0x30;
  return { command: body.toString("latin1", 0, verbEnd), rowCount };
}

/** ErrorResponse / NoticeResponse ('E' / 'N'): fields as (code byte, string) pairs until a zero byte. */
export function parseErrorFields(body: Buffer): Map<string, string> {
  const reader = new BodyReader(body);
  const fields = new Map<string, string>();
  while (reader.offset < body.length && body[reader.offset] !== 0) {
    const code = String.fromCharCode(body[reader.offset++]!);
    fields.set(code, reader.cstring());
  }
  return fields;
}

/** ParameterStatus ('S'): a run-time parameter the server reports (TimeZone, server_version, …). */
export function parseParameterStatus(body: Buffer): [name: string, value: string] {
  const reader = new BodyReader(body);
  return [reader.cstring(), reader.cstring()];
}

/** ParameterDescription ('t'): Int16 count, then the type OID the server gave each parameter. */
export function parseParameterDescription(body: Buffer): number[] {
  const reader = new BodyReader(body);
  const count = reader.int16();
  const types: number[] = new Array(count);
  for (let i = 0; i < count; i++) types[i] = reader.int32() >>> 0; // OIDs are unsigned
  return types;
}

/** Transaction status in ReadyForQuery ('Z'): idle, in a transaction block, or in a failed one. */
export const TransactionStatus = {
  Idle: 0x49, // 'I'
  InTransaction: 0x54, // 'T'
  Failed: 0x45, // 'E'
} as const;

/** BackendKeyData ('K'): what a CancelRequest must quote. */
export function parseBackendKeyData(body: Buffer): { processId: number; secretKey: number } {
  const reader = new BodyReader(body);
  return { processId: reader.int32(), secretKey: reader.int32() };
}

/** NotificationResponse ('A'): a NOTIFY on a channel we LISTEN to. */
export function parseNotificationResponse(body: Buffer): {
  processId: number;
  channel: string;
  payload: string;
} {
  const reader = new BodyReader(body);
  return { processId: reader.int32(), channel: reader.cstring(), payload: reader.cstring() };
}

/** Authentication ('R'): the request code, and what follows it (salt, mechanisms, SASL data). */
export function parseAuthentication(body: Buffer): { code: number; data: Buffer } {
  const reader = new BodyReader(body);
  return { code: reader.int32(), data: reader.rest() };
}

/** The SASL mechanisms an AuthenticationSASL lists: C strings ending with an empty one. */
export function parseSASLMechanisms(data: Buffer): string[] {
  const reader = new BodyReader(data);
  const mechanisms: string[] = [];
  for (let name = reader.cstring(); name !== ""; name = reader.cstring()) mechanisms.push(name);
  return mechanisms;
}
