/**
 * lib/pg/types.ts — PostgreSQL values ⇄ JavaScript values, in PostgreSQL's text format.
 *
 * The server tells us each column's type by OID (a number from the `pg_type` catalogue); we parse the text
 * of each value accordingly. Parameters go the other way as text too, and the server infers their types
 * from where they are used (`WHERE id = $1` makes `$1` an integer).
 *
 *   int2, int4, oid, float4, float8 → number      int8 → bigint (exact beyond 2^53)
 *   numeric → string (exact; JavaScript has no decimal type)
 *   bool → boolean     json, jsonb → parsed      bytea → Uint8Array
 *   date → Date (UTC midnight)   timestamp → Date (read as UTC)   timestamptz → Date (the offset is in the text)
 *   text, varchar, char, name, uuid, and every type not listed → string
 *   one-dimensional arrays of the above → arrays
 */

/**
 * A value's text is not in a form this client reads: bytea in escape format, an unexpected date/time, a
 * malformed array literal. (A query meeting one rejects with PgResultValueError, this as its `cause`.)
 */
export class PgValueTextError extends Error {
  override name = "PgValueTextError";
}

/** Type OIDs (`SELECT oid, typname FROM pg_type`), stable across PostgreSQL versions. */
export const TypeOid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** Array type OID → element type OID. */
export const ARRAY_ELEMENTS: Record<number, number> = {
  1000: TypeOid.bool,
  1001: TypeOid.bytea,
  1002: TypeOid.char,
  1003: TypeOid.name,
  1005: TypeOid.int2,
  1007: TypeOid.int4,
  1009: TypeOid.text,
  1014: TypeOid.bpchar,
  1015: TypeOid.varchar,
  1016: TypeOid.int8,
  1021: TypeOid.float4,
  1022: TypeOid.float8,
  1028: TypeOid.oid,
  1115: TypeOid.timestamp,
  1182: TypeOid.date,
  1185: TypeOid.timestamptz,
  1231: TypeOid.numeric,
  199: TypeOid.json,
  2951: TypeOid.uuid,
  3807: TypeOid.jsonb,
};

export type Parser = (text: string) => unknown;

const identity: Parser = (text) => text;
const parseNumber: Parser = (text) => Number(text); // also "NaN", "Infinity", "-Infinity"
const parseBigint: Parser = (text) => BigInt(text);
const parseBool: Parser = (text) => text === "t";
const parseJson: Parser = (text) => JSON.parse(text);

/** bytea's hex format: `\x` then two hex digits per byte (the default since PostgreSQL 9.0). */
export function parseBytea(text: string): Uint8Array {
  if (!text.startsWith("\\x"))
    throw new PgValueTextError("bytea in escape format is not supported; set bytea_output = 'hex'");
  return Uint8Array.from(Buffer.from(text.slice(2), "hex"));
}

/**
 * What a date or timestamp column reads as: a Date — or, where a Date cannot say it, something that still
 * round-trips as a parameter: `infinity` / `-infinity` → the numbers `Infinity` / `-Infinity`; a year
 * beyond a Date's ±275,760 → the text as PostgreSQL sent it.
 */
export type DateValue = Date | number | string;

/** `2024-01-02` → that day at 00:00 UTC; `0044-03-15 BC` → astronomical year −43 (1 BC is year 0). */
export function parseDate(text: string): DateValue {
  return parseDateTime(text);
}

/** `2024-01-02 03:04:05.678` (timestamp) → read as UTC; `…+05:30` (timestamptz) → that instant. */
export function parseTimestamp(text: string): DateValue {
  return parseDateTime(text);
}

/** Value of the decimal digits text[start, end). */
function digits(text: string, start: number, end: number): number {
  let value = 0;
  for (let index = start; index < end; index++) value = value * 10 + text.charCodeAt(index) - 48;
  return value;
}

const ZERO = 48;
const NINE = 57;
const isDigitAt = (text: string, index: number) => {
  const code = text.charCodeAt(index);
  return code >= ZERO && code <= NINE;
};

/** Date.UTC reads years 0–99 as 1900–1999; these are the first it takes as they are. */
const FIRST_LITERAL_YEAR = 100;

/**
 * The common shapes — `YYYY-MM-DD`, then ` HH:MM:SS`, `.ffffff`, and a zone `±HH[:MM[:SS]]` — read by
 * character codes: a 1,000-row result with a timestamp column parses 1,000 of these. Null for anything
 * else (BC, years before 100 or after 9999, infinity), which the general parser below handles.
 */
function parseDateTimeFast(text: string): Date | null {
  if (text.length < 10 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || !isDigitAt(text, 0))
    return null;
  const year = digits(text, 0, 4);
  if (year < FIRST_LITERAL_YEAR) return null;
  const month = digits(text, 5, 7) - 1;
  const day = digits(text, 8, 10);
  if (text.length === 10) return new Date(Date.UTC(year, month, day));
  if (text.length < 19 || text.charCodeAt(10) !== 32) return null;
  const hour = digits(text, 11, 13);
  const minute = digits(text, 14, 16);
  const second = digits(text, 17, 19);
  let index = 19;
  let milliseconds = 0;
  if (text.charCodeAt(index) === 46) {
    // '.': up to 6 fraction digits; keep milliseconds.
    let scale = 100;
    for (index++; isDigitAt(text, index); index++, scale /= 10)
      milliseconds += (text.charCodeAt(index) - ZERO) * scale;
    milliseconds = Math.floor(milliseconds);
  }
  let offsetSeconds = 0;
  const sign = text.charCodeAt(index);
  if (sign === 43 || sign === 45) {
    // '+' or '-': ±HH, then :MM, then :SS (historical zones: Europe/Amsterdam was +00:19:32 until 1937)
    offsetSeconds = digits(text, index + 1, index + 3) * 3600;
    index += 3;
    if (text.charCodeAt(index) === 58) {
      offsetSeconds += digits(text, index + 1, index + 3) * 60;
      index += 3;
    }
    if (text.charCodeAt(index) === 58) {
      offsetSeconds += digits(text, index + 1, index + 3);
      index += 3;
    }
    if (sign === 45) offsetSeconds = -offsetSeconds;
  }
  if (index !== text.length) return null; // " BC", or something unexpected: the general parser decides
  return new Date(Date.UTC(year, month, day, hour, minute, second, milliseconds) - offsetSeconds * 1000);
}

/** Text without a zone is read as UTC. */
function parseDateTime(text: string): DateValue {
  const fast = parseDateTimeFast(text);
  if (fast) return fast;
  if (text === "infinity") return Number.POSITIVE_INFINITY;
  if (text === "-infinity") return Number.NEGATIVE_INFINITY;
  const bc = text.endsWith(" BC");
  const match =
    /^(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(\.\d+)?)?([+-]\d\d(?::?\d\d)?(?::?\d\d)?)?(?: BC)?$/.exec(
      text,
    );
  if (!match) throw new PgValueTextError(`unexpected date/time text: ${text.slice(0, 40)}`);
  const [, year, month, day, hour = "00", minute = "00", second = "00", fraction = "", zone] = match;
  let fullYear = Number(year);
  if (bc) fullYear = 1 - fullYear;
  const milliseconds = fraction ? Math.floor(Number(fraction) * 1000) : 0;
  const date = new Date(Date.UTC(2000, 0, 1, Number(hour), Number(minute), Number(second), milliseconds));
  // setUTCFullYear takes any year as it is (Date.UTC would map 0–99 to 1900–1999).
  date.setUTCFullYear(fullYear, Number(month) - 1, Number(day));
  const instant = new Date(date.getTime() - zoneOffsetMs(zone ?? "Z"));
  return Number.isNaN(instant.getTime()) ? text : instant; // beyond a Date's range: keep the text
}

/** `+05`, `+05:30`, `-03:00:00`, `Z` → milliseconds east of UTC. */
function zoneOffsetMs(zone: string): number {
  if (zone === "Z") return 0;
  const sign = zone[0] === "-" ? -1 : 1;
  const digits = zone.slice(1).replaceAll(":", "");
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2, 4) || "0");
  const seconds = Number(digits.slice(4, 6) || "0");
  return sign * ((hours * 60 + minutes) * 60 + seconds) * 1000;
}

const PARSERS: Record<number, Parser> = {
  [TypeOid.bool]: parseBool,
  [TypeOid.bytea]: parseBytea,
  [TypeOid.int8]: parseBigint,
  [TypeOid.int2]: parseNumber,
  [TypeOid.int4]: parseNumber,
  [TypeOid.oid]: parseNumber,
  [TypeOid.float4]: parseNumber,
  [TypeOid.float8]: parseNumber,
  [TypeOid.json]: parseJson,
  [TypeOid.jsonb]: parseJson,
  [TypeOid.date]: parseDate,
  [TypeOid.timestamp]: parseTimestamp,
  [TypeOid.timestamptz]: parseTimestamp,
};

/** The parser for a column of type `oid`: unknown types stay strings. */
export function parserFor(oid: number): Parser {
  const parser = PARSERS[oid];
  if (parser) return parser;
  const element = ARRAY_ELEMENTS[oid];
  if (element !== undefined) {
    const parseElement = PARSERS[element] ?? identity;
    return (text) => parseArray(text, parseElement);
  }
  return identity;
}

/**
 * A one-dimensional array literal: `{1,2,NULL}`, `{"a b","quote \" and \\ backslash"}`. Unquoted NULL is
 * null; quoted "NULL" is the string. (Multi-dimensional literals come back as nested arrays.) Throws
 * PgValueTextError "malformed array literal" for anything else — an unterminated quote or brace included: every step
 * moves forward or stops at the end of the text.
 */
export function parseArray(text: string, parseElement: Parser): unknown[] {
  let position = 0;
  const malformed = () => new PgValueTextError(`malformed array literal: ${text.slice(0, 40)}`);
  const parseLevel = (): unknown[] => {
    if (text[position] !== "{") throw malformed();
    position++;
    const items: unknown[] = [];
    if (text[position] === "}") {
      position++;
      return items;
    }
    for (;;) {
      if (text[position] === "{") items.push(parseLevel());
      else if (text[position] === '"') {
        let value = "";
        position++;
        while (text[position] !== '"') {
          if (text[position] === "\\") position++;
          if (position >= text.length) throw malformed(); // the quote (or an escape) never ends
          value += text[position++];
        }
        position++;
        items.push(parseElement(value));
      } else {
        const end = text.slice(position).search(/[,}]/);
        if (end === -1) throw malformed(); // the element never ends
        const raw = text.slice(position, position + end);
        position += end;
        items.push(raw === "NULL" ? null : parseElement(raw));
      }
      if (text[position] === ",") position++;
      else if (text[position] === "}") {
        position++;
        return items;
      } else throw malformed();
    }
  };
  // Arrays with explicit bounds start `[1:3]={…}`: skip the bounds.
  if (text[0] === "[") position = text.indexOf("=") + 1;
  const items = parseLevel();
  if (position !== text.length) throw malformed();
  return items;
}

// ── Parameters: JavaScript → text ────────────────────────────────────────────────────────────────────

const utf8 = new TextEncoder();

/**
 * One parameter as the bytes of its text form, or null for SQL NULL:
 * null/undefined → NULL, Date → ISO 8601, bigint → decimal, Uint8Array → bytea hex, array → array literal,
 * plain object → JSON, anything else → String(x).
 */
export function serializeParameter(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  return utf8.encode(parameterText(value));
}

function parameterText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return byteaText(value);
  if (Array.isArray(value)) return arrayLiteral(value);
  if (typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return JSON.stringify(value);
  }
  return String(value);
}

/** bytea's text input in hex format: `\x`, then two hex digits a byte. */
export function byteaText(bytes: Uint8Array): string {
  return `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")}`;
}

/** `[1, null, "a b"]` → `{"1",NULL,"a b"}`: every element quoted, so commas and braces are safe. */
function arrayLiteral(values: unknown[]): string {
  const items = values.map((item) => {
    if (item === null || item === undefined) return "NULL";
    if (Array.isArray(item)) return arrayLiteral(item);
    return `"${parameterText(item).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  });
  return `{${items.join(",")}}`;
}
