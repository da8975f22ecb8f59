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
  /** The ID of the last entry in the reply (valid or not), or null when there was none. */
  lastId: string | null;
}

/**
 * The longest line an entry may carry: 64 KiB. Ours are at most `--max-line` bytes plus a name; the bound
 * is for what a stranger may have put in the stream.
 */
export const MAX_ENTRY_LINE_BYTES = 64 * 1024;
const STREAM_ID = /^\d+-\d+$/;
/** Control characters (C0, DEL, C1): a line users see never carries them (lesson 05 strips them). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The fields of an entry for `XADD key * …`. */
export function encodeEntry(line: string, node: string, seq: number): string[] {
  return ["line", line, "node", node, "seq", String(seq)];
}

/**
 * Reads `XREAD … STREAMS key id` as Bun's client returns it over RESP3 — `{ key: [[id, [field, value, …]],
 * …] }`, or null when the block timed out — into room entries.
 */
export function decodeXreadReply(reply: unknown, key: string): DecodedBatch {
  const batch: DecodedBatch = { entries: [], skipped: [], lastId: null };
  if (reply === null || reply === undefined) return batch;
  const raw = Array.isArray(reply) ? streamFromArray(reply, key) : (reply as Record<string, unknown>)[key];
  if (!Array.isArray(raw)) return batch;
  for (const item of raw) {
    if (!Array.isArray(item) || typeof item[0] !== "string" || !STREAM_ID.test(item[0])) continue;
    const id = item[0];
    batch.lastId = id;
    const entry = decodeEntry(id, item[1]);
    if (typeof entry === "string") batch.skipped.push({ id, reason: entry });
    else batch.entries.push(entry);
  }
  return batch;
}

/** RESP2 shape, in case a client speaks it: [[key, entries]]. */
function streamFromArray(reply: unknown[], key: string): unknown {
  for (const stream of reply) if (Array.isArray(stream) && stream[0] === key) return stream[1];
  return null;
}

/** The entry, or why it is not one of ours. */
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
  if (typeof line !== "string" || typeof node !== "string") return "no line or node field";
  if (typeof seq !== "string" || !/^\d{1,15}$/.test(seq)) return "seq is not a number";
  if (line === "") return "empty line";
  if (Buffer.byteLength(line, "utf8") > MAX_ENTRY_LINE_BYTES)
    return `line over ${MAX_ENTRY_LINE_BYTES} bytes`;
  if (CONTROL.test(line)) return "line holds control characters";
  if (line.includes("\uFFFD")) return "line is not valid UTF-8";
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
