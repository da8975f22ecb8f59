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
/** C0 controls but tab, DEL, C1 controls, and the bidirectional embeddings, overrides and isolates. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** Anything either pattern could match, or a tab (turned into a space). */
const NEEDS_WORK = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
/** Unicode "control pictures" start here: U+2400 ␀ … U+241F ␟; U+2421 ␡ is DEL. */
const CONTROL_PICTURES = 0x2400;
const DELETE_PICTURE = "\u2421";

/** Removes escape sequences and control characters; a tab becomes one space. Other text is unchanged. */
export function stripControls(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return text.replace(ESCAPE_SEQUENCE, "").replaceAll("\t", " ").replace(CONTROL, "");
}

/**
 * Replaces each control character with a visible stand-in — C0 with its control picture (ESC → ␛), DEL
 * with ␡, C1 and bidi controls with U+FFFD — so the text shows what was sent and cannot act on the
 * terminal. A tab becomes one space.
 */
export function showControls(text: string): string {
  if (!NEEDS_WORK.test(text)) return text;
  return text.replaceAll("\t", " ").replace(CONTROL, (char) => {
    const code = char.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(CONTROL_PICTURES + code);
    if (code === 0x7f) return DELETE_PICTURE;
    return "\uFFFD";
  });
}
