/**
 * lib/sanitize.ts — keeping text from the network from driving a terminal.
 *
 * A terminal obeys bytes it is sent: ESC [ 2 J clears the screen, ESC [ 31 m turns text red, ESC ] 0 ; …
 * BEL retitles the window, a carriage return moves the cursor to the start of the line, U+202E reverses
 * what follows. A chat server that relays such bytes lets any user do that to everyone else's terminal.
 * Two ways to defuse them:
 * - {@link stripControls} removes escape sequences and control characters (the chat server, before relaying).
 * - {@link showControls} makes them visible and inert (the screen, for whatever reaches it anyway).
 */

/**
 * An escape sequence (ECMA-48): CSI `ESC [ params final`, OSC `ESC ] … BEL|ST`, DCS/SOS/PM/APC
 * `ESC P|X|^|_ … ST`, or any other `ESC x`. An unterminated one runs to the end of the text.
 */
const ESCAPE_SEQUENCE =
  /\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[\s\S]?)/g;
/** C0 controls but tab, DEL, C1 controls. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
/**
 * Invisible characters that change how text around them shows: the whole Unicode "format" category (Cf:
 * bidi marks, embeddings, overrides and isolates such as U+200E, U+061C, U+202E, U+2066; interlinear
 * annotation U+FFF9–FFFB; soft hyphen; the byte-order mark), the tag block U+E0000–E007F (Cf, plus its
 * unassigned code points), and the line and paragraph separators U+2028/2029. ZWJ/ZWNJ (U+200D/200C) are
 * Cf too, but they join emoji and shape scripts such as Persian: {@link JOINER_AT_EDGE} decides those.
 */
const INVISIBLE = /[\p{Cf}\u2028\u2029\u{E0000}-\u{E007F}]/gu;
const ZERO_WIDTH_JOINER = "\u200d";
const ZERO_WIDTH_NON_JOINER = "\u200c";
/** A run of ZWJ/ZWNJ that is not inside text: at the start or end, or next to a space. */
const JOINER_AT_EDGE = /(?<![^\s\u200c\u200d])[\u200c\u200d]+|[\u200c\u200d]+(?![^\s\u200c\u200d])/gu;
/** Anything the patterns above could match, or a tab (turned into a space). */
const NEEDS_WORK = /[\x00-\x1f\x7f-\x9f\p{Cf}\u2028\u2029\u{E0000}-\u{E007F}]/u;
/** Unicode "control pictures" start here: U+2400 ␀ … U+241F ␟; U+2421 ␡ is DEL. */
const CONTROL_PICTURES = 0x2400;
const DELETE_PICTURE = "\u2421";

/**
 * Removes escape sequences, control characters and invisible format characters (ZWJ/ZWNJ stay where they
 * join two characters); a tab becomes one space. Other text is unchanged.
 */
export function stripControls(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return text
    .replace(ESCAPE_SEQUENCE, "")
    .replaceAll("\t", " ")
    .replace(CONTROL, "")
    .replace(INVISIBLE, keepJoiners)
    .replace(JOINER_AT_EDGE, "");
}

/** ZWJ and ZWNJ survive the first pass (JOINER_AT_EDGE looks at where they are); the rest of Cf does not. */
function keepJoiners(char: string): string {
  return char === ZERO_WIDTH_JOINER || char === ZERO_WIDTH_NON_JOINER ? char : "";
}

/**
 * Replaces each control character with a visible stand-in — C0 with its control picture (ESC → ␛), DEL
 * with ␡, C1 controls and invisible format characters (bidi controls, tags, U+2028/2029; not ZWJ/ZWNJ
 * inside text) with U+FFFD — so the text shows what was sent and cannot act on the terminal. A tab becomes
 * one space.
 */
export function showControls(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return text
    .replaceAll("\t", " ")
    .replace(CONTROL, (char) => {
      const code = char.charCodeAt(0);
      if (code < 0x20) return String.fromCharCode(CONTROL_PICTURES + code);
      if (code === 0x7f) return DELETE_PICTURE;
      return "\uFFFD";
    })
    .replace(INVISIBLE, (char) => (keepJoiners(char) === "" ? "\uFFFD" : char))
    .replace(JOINER_AT_EDGE, (run) => "\uFFFD".repeat(run.length));
}
