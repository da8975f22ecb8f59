import { describe, expect, test } from "bun:test";
import { helpText, parseFlags, UsageError } from "../lib/args.ts";

const spec = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port (0 picks a free one)" },
  rate: { kind: "number", default: 2.5, min: 0.1, help: "lines per second" },
  quiet: { kind: "boolean", help: "print less" },
} as const;

describe("parseFlags", () => {
  test("gives the defaults when no flag is passed", () => {
    expect(parseFlags([], spec)).toEqual({
      help: false,
      host: "127.0.0.1",
      port: 8000,
      rate: 2.5,
      quiet: false,
    });
  });

  test("reads --flag value and --flag=value forms", () => {
    const flags = parseFlags(["--port", "0", "--host=::1", "--rate", "0.5", "--quiet"], spec);
    expect(flags).toEqual({ help: false, host: "::1", port: 0, rate: 0.5, quiet: true });
  });

  test("refuses out-of-range and non-numeric values with one line", () => {
    expect(() => parseFlags(["--port", "70000"], spec)).toThrow(
      '--port needs a whole number 0–65535, got "70000"',
    );
    expect(() => parseFlags(["--port", "1.5"], spec)).toThrow(UsageError);
    expect(() => parseFlags(["--rate", "fast"], spec)).toThrow('--rate needs a number ≥ 0.1, got "fast"');
  });

  test("refuses unknown flags and stray arguments", () => {
    expect(() => parseFlags(["--colour"], spec)).toThrow(/Unknown option '--colour'.*\(see --help\)$/);
    expect(() => parseFlags(["stray"], spec)).toThrow(UsageError);
  });

  test("builds a help text that lists every flag with its default", () => {
    const help = helpText("bun scripts/x.ts [flags]", spec);
    expect(help).toContain("--port N");
    expect(help).toContain("(default 8000)");
    expect(help.split("\n")).toHaveLength(6);
  });
});
