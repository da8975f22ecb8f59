/**
 * lib/chat-cluster/room-entry.ts — one line of the room as a Redis Stream entry, and the checks an entry
 * read back must pass before anyone sees it.
 *
 * An entry is `{ line: TEXT, node: NODE-ID[, seq: N] }` under the ID Redis gave it (`MS-SEQ`, ever increasing:
 * Redis's manual, "Redis Streams", entry IDs). The stream is shared, so anything can be in it — another
 * program's entries, a hand-typed `XADD` with other fields, bytes that are not text. `decodeXreadReply()`
 * never throws: what is not a well-formed room entry comes back in `skipped` with the reason, and the
 * reading position still moves past it.
 */
import { stripControls } from "../sanitize.ts";
import { OversizedBulk } from "./resp-parser.ts";

export interface RoomEntry {
  id: string;
  /** The line as users see it, without the newline. */
  line: string;
  /** The id of the node that added it. */
  node: string;
  /** That node's own count of the lines it published (0 for the notices its scripts add). */
  seq: number;
}

export interface DecodedBatch {
  entries: RoomEntry[];
  skipped: { id: string; reason: string }[];
  /**
   * Where the next read starts: the ID of the last entry taken (valid or skipped) — short of the reply's
   * last when the reply was cut at its budget (the rest is read again) — or null when there was none.
   */
  lastId: string | null;
  /** Set when the reply is not an XREAD reply for this key at all (an error of shape, not of an entry). */
  malformed?: string;
}

/**
 * The longest line an entry may carry: 64 KiB. Ours are at most `--max-line` bytes plus a name; the bound
 * is for what a stranger may have put in the stream. The reader's RESP parser never keeps a bulk string
 * longer than {@link MAX_ENTRY_FIELD_BYTES}: it arrives here as an `OversizedBulk`, its length only.
 */
export const MAX_ENTRY_LINE_BYTES = 64 * 1024;
/** What the reader keeps of one field value: the line limit, and room for its UTF-8 to be checked. */
export const MAX_ENTRY_FIELD_BYTES = MAX_ENTRY_LINE_BYTES;
const STREAM_ID = /^\d+-\d+$/;

/** The fields of an entry for `XADD key * …`. */
export function encodeEntry(line: string, node: string, seq: number): string[] {
  return ["line", line, "node", node, "seq", String(seq)];
}

/**
 * Reads `XREAD … STREAMS key id` as RESP2 returns it — `[[key, [[id, [field, value, …]], …]]]`, or null
 * when the block timed out — into room entries. `cut`: the arrays the parser cut short at its reply budget
 * (resp-parser.ts); an entry touched by the cut is not taken, and the next read starts at it — unless it
 * is the first, which alone is over the budget: then it is skipped. Never throws.
 */
export function decodeXreadReply(
  reply: unknown,
  key: string,
  cut: ReadonlySet<unknown[]> = new Set(),
): DecodedBatch {
  const batch: DecodedBatch = { entries: [], skipped: [], lastId: null };
  if (reply === null) return batch;
  const raw = Array.isArray(reply) ? streamFromArray(reply, key) : undefined;
  if (!Array.isArray(raw)) {
    batch.malformed = `a reply that is not an XREAD reply for ${key}: ${describe(reply)}`;
    return batch;
  }
  for (const [index, item] of raw.entries()) {
    if (!Array.isArray(item) || typeof item[0] !== "string" || !STREAM_ID.test(item[0])) continue;
    const id = item[0];
    const whole = !cut.has(item) && !(Array.isArray(item[1]) && cut.has(item[1])) && item.length === 2;
    if (!whole && cut.size > 0) {
      if (index > 0) break; // read again from here, with a fresh budget
      batch.lastId = id;
      batch.skipped.push({ id, reason: "entry over the reply budget" });
      break;
    }
    batch.lastId = id;
    const entry = decodeEntry(id, item[1]);
    if (typeof entry === "string") batch.skipped.push({ id, reason: entry });
    else batch.entries.push(entry);
  }
  return batch;
}

/** RESP2 shape: [[key, entries]]. */
function streamFromArray(reply: unknown[], key: string): unknown {
  for (const stream of reply) if (Array.isArray(stream) && stream[0] === key) return stream[1];
  return null;
}

function describe(reply: unknown): string {
  const text = JSON.stringify(reply) ?? String(reply);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * The entry, or why it is not one of ours. Its line must pass the rule users' own lines pass
 * (lib/sanitize.ts `stripControls`, which the room applies before publishing): a line that rule would
 * change — escape sequences, control characters, bidi overrides, zero-width and other format characters,
 * U+2028 — was not written by a node of this room, and is skipped rather than relayed.
 */
function decodeEntry(id: string, fields: unknown): RoomEntry | string {
  if (!Array.isArray(fields) || fields.length % 2 !== 0) return "fields are not name/value pairs";
  let line: unknown;
  let node: unknown;
  let seq: unknown = "0";
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === "line") line = fields[i + 1];
    else if (fields[i] === "node") node = fields[i + 1];
    else if (fields[i] === "seq") seq = fields[i + 1];
    else return `unknown field ${JSON.stringify(String(fields[i]).slice(0, 40))}`;
  }
  if (line instanceof OversizedBulk) return `line over ${MAX_ENTRY_LINE_BYTES} bytes (${line.bytes})`;
  if (typeof line !== "string" || typeof node !== "string") return "no line or node field";
  if (typeof seq !== "string" || !/^\d{1,15}$/.test(seq)) return "seq is not a number";
  if (line === "") return "empty line";
  if (Buffer.byteLength(line, "utf8") > MAX_ENTRY_LINE_BYTES)
    return `line over ${MAX_ENTRY_LINE_BYTES} bytes`;
  if (line.includes("\uFFFD")) return "line is not valid UTF-8";
  if (stripControls(line) !== line) return "line holds control or format characters";
  return { id, line, node, seq: Number(seq) };
}

/** Orders two stream IDs (`MS-SEQ`): negative if a < b, 0 if equal, positive if a > b. */
export function compareStreamIds(a: string, b: string): number {
  const dashA = a.indexOf("-");
  const dashB = b.indexOf("-");
  const msA = Number(a.slice(0, dashA));
  const msB = Number(b.slice(0, dashB));
  if (msA !== msB) return msA - msB;
  return Number(a.slice(dashA + 1)) - Number(b.slice(dashB + 1));
}
