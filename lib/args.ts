/**
 * lib/args.ts — the command line of every lesson: `--port 8000` or `--port=8000`, checked; positional
 * arguments where a lesson takes them (lessons 01 and 02: URLs); flags that may be given several times
 * (`kind: "list"`: lesson 08's `--allow-origin`); `-h` / `--help` from the same table.
 *
 * One voice for mistakes: `parseCommandLine` prints `error: <what is wrong> (see --help)` on one line and
 * gives exit code 2 (a usage error, as in most Unix tools); `--help` prints the help and gives 0.
 */

/** `value`: what the help shows for the flag's value (`--timeout SECONDS`); `N` or `TEXT` when left out. */
export type FlagSpec =
  | { kind: "int"; default: number; min?: number; max?: number; value?: string; help: string }
  /** `above`: an exclusive lower bound (a timeout must be > 0), where `min` is inclusive. */
  | {
      kind: "number";
      default: number;
      min?: number;
      above?: number;
      max?: number;
      value?: string;
      help: string;
    }
  | { kind: "string"; default?: string; value?: string; help: string }
  /** Repeatable: every `--name value` is kept, in order (none given: an empty list). */
  | { kind: "list"; value?: string; help: string }
  | { kind: "boolean"; help: string };

type FlagValue<F extends FlagSpec> = F extends { kind: "int" | "number" }
  ? number
  : F extends { kind: "boolean" }
    ? boolean
    : F extends { kind: "list" }
      ? string[]
      : F extends { default: string }
        ? string
        : string | undefined;

export type Flags<S extends Record<string, FlagSpec>> = { [K in keyof S]: FlagValue<S[K]> } & {
  help: boolean;
  /** The arguments that are not flags, in order (only when {@link Positionals} allows them). */
  positionals: string[];
};

/** The positional arguments a command takes, if any: their name in the help (`URL…`) and what they are. */
export interface Positionals {
  name: string;
  help: string;
  /**
   * What is wrong with one argument, in one line that names it, or undefined when it is fine. A wrong one is
   * a usage error like a bad flag value: exit code 2 before anything runs.
   */
  check?: (value: string) => string | undefined;
}

/** A mistake on the command line; its message is one line for the user. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Parses `argv` against `spec`: `--name value`, `--name=value`, boolean `--name`, `-h`/`--help`, `--`
 * (everything after it is positional). Throws {@link UsageError} for an unknown flag, a missing or bad
 * value, a positional argument where none is taken, or one that {@link Positionals.check} refuses.
 */
export function parseFlags<S extends Record<string, FlagSpec>>(
  argv: string[],
  spec: S,
  positionals?: Positionals,
): Flags<S> {
  const raw: Record<string, string | true> = {};
  const lists: Record<string, string[]> = {};
  const rest: string[] = [];
  let help = false;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === "--") {
      rest.push(...argv.slice(index + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      rest.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const name = arg.startsWith("--") ? arg.slice(2, equals === -1 ? undefined : equals) : "";
    const flag = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!flag) throw new UsageError(`unknown option ${equals === -1 ? arg : arg.slice(0, equals)}`);
    if (flag.kind === "boolean") {
      if (equals !== -1) throw new UsageError(`--${name} takes no value`);
      raw[name] = true;
    } else {
      const value = equals !== -1 ? arg.slice(equals + 1) : argv[++index];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      if (flag.kind === "list") lists[name] = [...(lists[name] ?? []), value];
      else raw[name] = value;
    }
  }
  if (rest.length > 0 && !positionals) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  for (const value of rest) {
    const problem = positionals?.check?.(value);
    if (problem) throw new UsageError(problem);
  }
  const flags: Record<string, unknown> = { help, positionals: rest };
  for (const [name, flag] of Object.entries(spec)) {
    flags[name] = flag.kind === "list" ? (lists[name] ?? []) : convert(name, flag, raw[name]);
  }
  return flags as Flags<S>;
}

function convert(
  name: string,
  flag: Exclude<FlagSpec, { kind: "list" }>,
  raw: string | true | undefined,
): unknown {
  if (flag.kind === "boolean") return raw === true;
  if (raw === undefined || raw === true) return flag.default;
  if (flag.kind === "string") return raw;
  const value = Number(raw);
  const min = flag.min ?? Number.NEGATIVE_INFINITY;
  const above = flag.kind === "number" ? (flag.above ?? Number.NEGATIVE_INFINITY) : Number.NEGATIVE_INFINITY;
  const max = flag.max ?? Number.POSITIVE_INFINITY;
  const wholeEnough = flag.kind === "number" || Number.isInteger(value);
  if (raw === "" || !Number.isFinite(value) || !wholeEnough || value < min || value <= above || value > max) {
    const upTo = max === Number.POSITIVE_INFINITY ? "" : ` and ≤ ${max}`;
    const range =
      above > Number.NEGATIVE_INFINITY
        ? `> ${above}${upTo}`
        : max === Number.POSITIVE_INFINITY
          ? `≥ ${min}`
          : `${min}–${max}`;
    throw new UsageError(
      `--${name} needs ${flag.kind === "int" ? "a whole number" : "a number"} ${range}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** The `--help` text: usage line, the positional arguments, then one line per flag with its default. */
export function helpText(usage: string, spec: Record<string, FlagSpec>, positionals?: Positionals): string {
  const lines = [`usage: ${usage}`, ""];
  if (positionals) lines.push(`  ${positionals.name.padEnd(24)} ${positionals.help}`);
  for (const [name, flag] of Object.entries(spec)) {
    const value = flag.kind === "boolean" ? "" : ` ${flag.value ?? (flag.kind === "string" ? "TEXT" : "N")}`;
    const fallback =
      flag.kind === "list"
        ? " (repeatable)"
        : "default" in flag && flag.default !== undefined
          ? ` (default ${flag.default})`
          : "";
    lines.push(`  --${`${name}${value}`.padEnd(22)} ${flag.help}${fallback}`);
  }
  lines.push(`  ${"-h, --help".padEnd(24)} print this help and exit`);
  return lines.join("\n");
}

/**
 * The usual start of a lesson's `main()`: parse the command line; on a mistake print one line
 * (`error: … (see --help)`) and give exit code 2; for `-h`/`--help` print the help and give 0. Returns the
 * flags, or the exit code to return.
 */
export function parseCommandLine<S extends Record<string, FlagSpec>>(
  argv: string[],
  spec: S,
  usage: string,
  positionals?: Positionals,
): { flags: Flags<S> } | { exitCode: number } {
  let flags: Flags<S>;
  try {
    flags = parseFlags(argv, spec, positionals);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // Help asked for anywhere on the line wins over a mistake elsewhere on it.
    if (argv.includes("-h") || argv.includes("--help")) {
      console.log(helpText(usage, spec, positionals));
      return { exitCode: 0 };
    }
    console.error(`error: ${error.message} (see --help)`);
    return { exitCode: 2 };
  }
  if (flags.help) {
    console.log(helpText(usage, spec, positionals));
    return { exitCode: 0 };
  }
  return { flags };
}
