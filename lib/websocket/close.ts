/**
 * lib/websocket/close.ts — the Close frame's body (RFC 6455 §5.5.1) and its status codes (§7.4).
 *
 * A Close frame's payload is empty, or a 2-byte big-endian status code followed by a UTF-8 reason; it is a
 * control frame, so at most 125 bytes in all (§5.5): the reason gets at most 123.
 */
import { Utf8Validator } from "./utf8-validator.ts";

/** The status codes this server sends or names (§7.4.1). */
export const CloseCode = {
  /** The purpose of the connection is fulfilled. */
  NORMAL: 1000,
  /** The server is going down, or a browser left the page. */
  GOING_AWAY: 1001,
  /** The peer broke the protocol (a bad frame, an unmasked frame, a continuation with nothing to continue). */
  PROTOCOL_ERROR: 1002,
  /** A data type the endpoint cannot take. */
  UNSUPPORTED_DATA: 1003,
  /** Reserved: never on the wire; reported when a Close frame had no status code. */
  NO_STATUS: 1005,
  /** Reserved: never on the wire; reported when the TCP connection ended without a Close frame. */
  ABNORMAL: 1006,
  /** A text message (or a Close reason) that is not UTF-8. */
  INVALID_PAYLOAD: 1007,
  /** A message that breaks the endpoint's policy (lesson 08: a cross-site or flooding user). */
  POLICY_VIOLATION: 1008,
  /** A message larger than the endpoint takes. */
  MESSAGE_TOO_BIG: 1009,
  /** The server hit a condition it did not expect. */
  INTERNAL_ERROR: 1011,
} as const;

/** Longest Close reason: 123 bytes of UTF-8 (a control frame's 125 less the 2-byte code). */
export const MAX_CLOSE_REASON_BYTES = 123;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Whether `code` may appear in a Close frame (§7.4.1, §7.4.2 and IANA's registry): 1000–1003, 1007–1014
 * (1015 is reserved, like 1004–1006), and 3000–4999 (registered libraries and applications, private use).
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/** A Close frame body, parsed. `code` is {@link CloseCode.NO_STATUS} (1005) for an empty body. */
export interface ClosePayload {
  code: number;
  reason: string;
}

/** A Close body we refuse; `closeCode` is what we fail the connection with (1002 or 1007). */
export class ClosePayloadError extends Error {
  override name = "ClosePayloadError";
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parses a Close frame's (unmasked) payload. Empty → code 1005, reason "". Throws
 * {@link ClosePayloadError}: a 1-byte body or a code outside {@link isValidCloseCode} → 1002; a reason that
 * is not UTF-8 → 1007.
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload {
  if (payload.length === 0) return { code: CloseCode.NO_STATUS, reason: "" };
  if (payload.length === 1) {
    throw new ClosePayloadError(CloseCode.PROTOCOL_ERROR, "Close frame with a 1-byte body");
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidCloseCode(code)) {
    throw new ClosePayloadError(CloseCode.PROTOCOL_ERROR, `Close frame with invalid status code ${code}`);
  }
  const reasonBytes = payload.subarray(2);
  const validator = new Utf8Validator();
  if (!validator.push(reasonBytes) || !validator.end()) {
    throw new ClosePayloadError(CloseCode.INVALID_PAYLOAD, "Close reason is not UTF-8");
  }
  return { code, reason: utf8Decoder.decode(reasonBytes) };
}

/**
 * A Close frame's payload: `code` as 2 bytes, then `reason` in UTF-8, cut at a code-point boundary to
 * {@link MAX_CLOSE_REASON_BYTES}. Throws a `RangeError` for a code outside {@link isValidCloseCode}.
 */
export function encodeClose(code: number, reason = ""): Uint8Array {
  if (!isValidCloseCode(code)) throw new RangeError(`${code} is not a Close status code one may send`);
  const reasonBytes = truncateUtf8(utf8.encode(reason), MAX_CLOSE_REASON_BYTES);
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/** `bytes` (valid UTF-8) cut to at most `max` bytes without splitting a code point. */
function truncateUtf8(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes;
  let end = max;
  // Step back over continuation bytes (10xxxxxx) to the start of the code point that does not fit.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
