/**
 * lib/websocket/utf8-validator.ts — UTF-8 checked as it arrives, byte by byte, failing at the first bad byte.
 *
 * RFC 6455 §8.1: a text message must be UTF-8, and an endpoint that finds it is not must fail the
 * connection (1007). A message may come in many fragments and a code point may be split between two of
 * them, so the check keeps its state between `push()` calls — and it fails *fast*: the fragment holding
 * the first invalid byte fails the connection, not the end of a message that may never come (§5.6 lets a
 * server fail as soon as it knows; Autobahn's cases 6.x call this "fail fast").
 *
 * What is UTF-8 (RFC 3629 §4, Unicode's Table 3-7 of well-formed byte sequences):
 *
 *   U+0000..U+007F      00..7F
 *   U+0080..U+07FF      C2..DF  80..BF                  (C0, C1: overlong forms of ASCII)
 *   U+0800..U+0FFF      E0      A0..BF  80..BF          (E0 80..9F: overlong)
 *   U+1000..U+CFFF      E1..EC  80..BF  80..BF
 *   U+D000..U+D7FF      ED      80..9F  80..BF          (ED A0..BF: the surrogates U+D800..DFFF)
 *   U+E000..U+FFFF      EE..EF  80..BF  80..BF
 *   U+10000..U+3FFFF    F0      90..BF  80..BF  80..BF  (F0 80..8F: overlong)
 *   U+40000..U+FFFFF    F1..F3  80..BF  80..BF  80..BF
 *   U+100000..U+10FFFF  F4      80..8F  80..BF  80..BF  (F4 90..: past U+10FFFF; F5..FF never)
 *
 * The only state is how many continuation bytes are still due and the range the next one must fall in.
 */

/** The smallest and largest continuation byte in general (10xxxxxx). */
const CONTINUATION_MIN = 0x80;
const CONTINUATION_MAX = 0xbf;

/** An incremental, fail-fast UTF-8 check for one message at a time. */
export class Utf8Validator {
  /** Continuation bytes still due for the current code point. */
  #due = 0;
  /** The range the next continuation byte must be in (narrower than 80..BF right after E0, ED, F0, F4). */
  #low = CONTINUATION_MIN;
  #high = CONTINUATION_MAX;
  #failed = false;

  /**
   * Checks the next bytes of the message. Returns false at the first byte that cannot be part of UTF-8
   * (and on every later call): an overlong form, a surrogate, a code point past U+10FFFF, a continuation
   * byte out of place or missing. A code point split between calls is fine.
   */
  push(bytes: Uint8Array): boolean {
    if (this.#failed) return false;
    let due = this.#due;
    let low = this.#low;
    let high = this.#high;
    const length = bytes.length;
    let index = 0;
    while (index < length) {
      let byte = bytes[index++]!;
      if (due === 0) {
        // ASCII, the common case, is one comparison a byte.
        while (byte < 0x80 && index < length) byte = bytes[index++]!;
        if (byte < 0x80) break;
        if (byte < 0xc2) return this.#fail(); // a stray continuation byte, or C0/C1 (overlong)
        if (byte < 0xe0) {
          due = 1;
        } else if (byte < 0xf0) {
          due = 2;
          if (byte === 0xe0) low = 0xa0;
          else if (byte === 0xed) high = 0x9f;
        } else if (byte < 0xf5) {
          due = 3;
          if (byte === 0xf0) low = 0x90;
          else if (byte === 0xf4) high = 0x8f;
        } else {
          return this.#fail(); // F5..FF: never in UTF-8
        }
      } else {
        if (byte < low || byte > high) return this.#fail();
        due--;
        low = CONTINUATION_MIN;
        high = CONTINUATION_MAX;
      }
    }
    this.#due = due;
    this.#low = low;
    this.#high = high;
    return true;
  }

  /**
   * The message is over: true if everything pushed was UTF-8 and it ended on a code-point boundary (no
   * sequence cut short). Resets the validator for the next message.
   */
  end(): boolean {
    const whole = !this.#failed && this.#due === 0;
    this.reset();
    return whole;
  }

  /** Forgets the current message. */
  reset(): void {
    this.#due = 0;
    this.#low = CONTINUATION_MIN;
    this.#high = CONTINUATION_MAX;
    this.#failed = false;
  }

  #fail(): false {
    this.#failed = true;
    return false;
  }
}

/** Whether `bytes` is, all of it, UTF-8. */
export function isUtf8(bytes: Uint8Array): boolean {
  const validator = new Utf8Validator();
  return validator.push(bytes) && validator.end();
}
