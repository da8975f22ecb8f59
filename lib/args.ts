/**
 * lib/args.ts — command-line flags for the lessons: `--port 8000` or `--port=8000`, checked, with one-line
 * errors (a `UsageError`) and a `--help` text made from the same table.
 */
import { parseArgs } from "node:util";

export type FlagSpec =
  | { kind: "int"; default: number; min?: number; max?: number; help: string }
  | { kind: "number"; default: number; min?: number; help: string }
  | { kind: "string"; default?: string; help: string }
  | { kind: "boolean"; help: string };

type FlagValue<F extends FlagSpec> = F extends { kind: "int" | "number" }
  ? number
  : F extends { kind: "boolean" }
    ? boolean
    : F extends { default: string }
      ? string
      : string | undefined;

export type Flags<S extends Record<string, FlagSpec>> = { [K in keyof S]: FlagValue<S[K]> } & {
  help: boolean;
};

/** A mistake on the command line; its message is one line for the user. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses `argv` against `spec`. Throws {@link UsageError} for an unknown flag or a bad value. */
export function parseFlags<S extends Record<string, FlagSpec>>(argv: string[], spec: S): Flags<S> {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name, flag] of Object.entries(spec))
    options[name] = { type: flag.kind === "boolean" ? "boolean" : "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split("\n")[0]} (see --help)`);
  }
  const flags: Record<string, unknown> = { help: values.help === true };
  for (const [name, flag] of Object.entries(spec)) flags[name] = convert(name, flag, values[name]);
  return flags as Flags<S>;
}

function convert(name: string, flag: FlagSpec, raw: string | boolean | undefined): unknown {
  if (flag.kind === "boolean") return raw === true;
  if (raw === undefined) return flag.default;
  if (flag.kind === "string") return raw;
  const value = Number(raw);
  const min = flag.min ?? Number.NEGATIVE_INFINITY;
  const max = flag.kind === "int" ? (flag.max ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY;
  const wholeEnough = flag.kind === "number" || Number.isInteger(value);
  if (raw === "" || !Number.isFinite(value) || !wholeEnough || value < min || value > max) {
    const range = max === Number.POSITIVE_INFINITY ? `≥ ${min}` : `${min}–${max}`;
    throw new UsageError(
      `--${name} needs ${flag.kind === "int" ? "a whole number" : "a number"} ${range}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** The `--help` text: usage line, then one line per flag with its default. */
export function helpText(usage: string, spec: Record<string, FlagSpec>): string {
  const lines = [`usage: ${usage}`, ""];
  for (const [name, flag] of Object.entries(spec)) {
    const value = flag.kind === "boolean" ? "" : ` ${flag.kind === "string" ? "TEXT" : "N"}`;
    const fallback = "default" in flag && flag.default !== undefined ? ` (default ${flag.default})` : "";
    lines.push(`  --${`${name}${value}`.padEnd(22)} ${flag.help}${fallback}`);
  }
  return lines.join("\n");
}

/**
 * The usual start of a lesson's `main()`: parse the flags; on a mistake print one line and give exit code
 * 2; for `--help` print the help and give 0. Returns the flags, or the exit code to return.
 */
export function parseCommandLine<S extends Record<string, FlagSpec>>(
  argv: string[],
  spec: S,
  usage: string,
): { flags: Flags<S> } | { exitCode: number } {
  let flags: Flags<S>;
  try {
    flags = parseFlags(argv, spec);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}`);
    return { exitCode: 2 };
  }
  if (flags.help) {
    console.log(helpText(usage, spec));
    return { exitCode: 0 };
  }
  return { flags };
}
