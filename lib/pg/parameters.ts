/**
 * lib/pg/parameters.ts — JavaScript values → PostgreSQL text, directed by each parameter's declared type.
 *
 * The extended protocol tells us the type the server gave each `$n` (ParameterDescription, the answer to
 * Describe), so a value is encoded for what the column or expression needs, not guessed from its JS shape:
 * a JS array becomes a PostgreSQL array only for an array type, and anything at all becomes JSON for a
 * json/jsonb parameter. What the client reads (lib/pg/types.ts) encodes back to the same stored value.
 *
 *   json, jsonb          JSON.stringify(value), whatever the value (`[]`, `"str"`, `1`, `{…}`)
 *   bool                 boolean → t/f; a string as it is
 *   int2, int4, oid      integer number, bigint, or a string
 *   int8                 bigint, safe-integer number, or a string
 *   float4/8, numeric    number (NaN, ±Infinity, −0 kept), bigint, or a string
 *   bytea                Uint8Array → `\x…` hex; a string as it is
 *   date                 Date → its UTC day; ±Infinity → ±infinity; a string as it is
 *   timestamp            Date → its UTC wall-clock time; ±Infinity → ±infinity; a string as it is
 *   timestamptz          Date → that instant (in UTC, `+00`); ±Infinity → ±infinity; a string as it is
 *   <type>[] (known)     JS array → array literal, each element encoded for <type>; a string as it is
 *   text, varchar, …     string, number, bigint or boolean as text; a Date in ISO 8601
 *   any other type       as the server would infer it: see {@link serializeParameter}
 *
 * `null` and `undefined` are SQL NULL everywhere (so a json parameter cannot be the JSON value `null`:
 * pass the string `'null'` with `$1::text::json` for that). A value that fits none of these is a
 * {@link ParameterTypeError}, thrown before anything is sent.
 */
import { ByteaParameter } from "./protocol.ts";
import { ARRAY_ELEMENTS as ARRAY_ELEMENT_TYPES, byteaText, serializeParameter, TypeOid } from "./types.ts";

/** A parameter value the declared type cannot take; names the parameter (`$2`) and the type. */
export class ParameterTypeError extends TypeError {
  override name = "ParameterTypeError";
  constructor(
    readonly position: number,
    readonly typeName: string,
    reason: string,
  ) {
    super(`parameter $${position} (${typeName}): ${reason}`);
  }
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries([
  ...Object.entries(TypeOid).map(([name, oid]) => [oid, name]),
  ...Object.entries(ARRAY_ELEMENT_TYPES).map(([array, element]) => [
    Number(array),
    `${Object.entries(TypeOid).find(([, oid]) => oid === element)![0]}[]`,
  ]),
]);

/** Text types: anything scalar goes in as its text. */
const TEXT_TYPES = new Set<number>([
  TypeOid.text,
  TypeOid.varchar,
  TypeOid.bpchar,
  TypeOid.name,
  TypeOid.char,
  TypeOid.uuid,
]);

const utf8 = new TextEncoder();

/** JSON.rawJSON (ES2026; in Bun): a bigint goes into JSON as its exact digits. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/**
 * Every parameter encoded for its declared type (`types[i]`), or NULL. A Uint8Array for bytea (or an
 * unknown type) stays a {@link ByteaParameter}: Bind writes its hex straight into the message. Throws
 * {@link ParameterTypeError}.
 */
export function encodeParameters(
  values: readonly unknown[],
  types: readonly number[],
): (Uint8Array | ByteaParameter | null)[] {
  const encoded: (Uint8Array | ByteaParameter | null)[] = new Array(values.length);
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    const type = types[index] ?? 0;
    if (value === null || value === undefined) encoded[index] = null;
    else if (value instanceof Uint8Array && (type === TypeOid.bytea || !(type in TYPE_NAMES)))
      encoded[index] = new ByteaParameter(value);
    else if (!(type in TYPE_NAMES)) encoded[index] = serializeParameter(value);
    else encoded[index] = utf8.encode(parameterText(value, type, index + 1));
  }
  return encoded;
}

/** One value as the text `type` takes. */
function parameterText(value: unknown, type: number, position: number): string {
  const fail = (reason: string): never => {
    throw new ParameterTypeError(position, TYPE_NAMES[type] ?? `type ${type}`, reason);
  };
  const element = ARRAY_ELEMENT_TYPES[type];
  if (element !== undefined) {
    if (typeof value === "string") return value;
    if (!Array.isArray(value)) return fail(`expects an array, got ${describe(value)}`);
    return arrayLiteral(value, element, position, fail);
  }
  if (type === TypeOid.json || type === TypeOid.jsonb) {
    const json = JSON.stringify(value, (_, item) =>
      typeof item === "bigint" ? rawJson(String(item)) : item,
    );
    return json === undefined ? fail(`${describe(value)} has no JSON form`) : json;
  }
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return fail("a JS array needs an array type (or json/jsonb)");
  switch (type) {
    case TypeOid.bool:
      return typeof value === "boolean"
        ? value
          ? "t"
          : "f"
        : fail(`expects a boolean, got ${describe(value)}`);
    case TypeOid.int2:
    case TypeOid.int4:
    case TypeOid.oid:
    case TypeOid.int8:
      if (typeof value === "bigint") return value.toString();
      if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
      return fail(`expects an integer, got ${describe(value)}`);
    case TypeOid.float4:
    case TypeOid.float8:
    case TypeOid.numeric:
      if (typeof value === "bigint") return value.toString();
      if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
      return fail(`expects a number, got ${describe(value)}`);
    case TypeOid.bytea:
      return fail(`expects a Uint8Array, got ${describe(value)}`);
    case TypeOid.date:
    case TypeOid.timestamp:
    case TypeOid.timestamptz:
      return dateTimeText(value, type, fail);
  }
  if (TEXT_TYPES.has(type)) {
    if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
      return String(value);
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
    return fail(`expects a string, got ${describe(value)}`);
  }
  return fail(`cannot encode ${describe(value)}`);
}

function dateTimeText(value: unknown, type: number, fail: (reason: string) => never): string {
  if (value === Number.POSITIVE_INFINITY) return "infinity";
  if (value === Number.NEGATIVE_INFINITY) return "-infinity";
  if (!(value instanceof Date)) return fail(`expects a Date, got ${describe(value)}`);
  if (Number.isNaN(value.getTime())) return fail("an Invalid Date");
  if (type === TypeOid.date) return formatDate(value);
  return formatTimestamp(value, type === TypeOid.timestamptz);
}

/** `YYYY-MM-DD` of the Date's UTC day; years before 1 as `… BC` (year 0 is 1 BC), 4 digits at least. */
function formatDate(date: Date): string {
  const { era, text } = datePart(date);
  return `${text}${era}`;
}

/**
 * `YYYY-MM-DD HH:MM:SS.mmm` in UTC, with `+00` for timestamptz, and ` BC` last. Every year a Date holds is
 * written as PostgreSQL reads it — 44 BC as `0044-… BC`, the year 5 as `0005-…` — so nothing shifts.
 */
export function formatTimestamp(date: Date, withZone: boolean): string {
  const { era, text } = datePart(date);
  const time = `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}.${pad(date.getUTCMilliseconds(), 3)}`;
  return `${text} ${time}${withZone ? "+00" : ""}${era}`;
}

function datePart(date: Date): { text: string; era: string } {
  const year = date.getUTCFullYear();
  const bc = year <= 0;
  const text = `${pad(bc ? 1 - year : year, 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}`;
  return { text, era: bc ? " BC" : "" };
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/**
 * A PostgreSQL array literal: every element quoted and escaped (`"a \"b\" \\ c"`), NULL bare; nested JS
 * arrays are the inner dimensions.
 */
function arrayLiteral(
  values: unknown[],
  element: number,
  position: number,
  fail: (reason: string) => never,
): string {
  const items = values.map((item): string => {
    if (item === null || item === undefined) return "NULL";
    if (Array.isArray(item) && element !== TypeOid.json && element !== TypeOid.jsonb)
      return arrayLiteral(item, element, position, fail);
    const text =
      element === TypeOid.bytea && item instanceof Uint8Array
        ? byteaText(item)
        : parameterText(item, element, position);
    return `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  });
  return `{${items.join(",")}}`;
}

function describe(value: unknown): string {
  if (value instanceof Date) return "a Date";
  if (value instanceof Uint8Array) return "a Uint8Array";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return "a string";
  if (typeof value === "number" || typeof value === "bigint") return `the number ${String(value)}`;
  return `a ${typeof value}`;
}
