import { describe, expect, test } from "bun:test";
import { helpText, parseCommandLine, parseFlags, UsageError } from "../lib/args.ts";
import { runScript } from "./helpers/run.ts";

const spec = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port (0 picks a free one)" },
  rate: { kind: "number", default: 2.5, min: 0.1, help: "lines per second" },
  timeout: { kind: "number", default: 10, above: 0, help: "seconds" },
  quiet: { kind: "boolean", help: "print less" },
} as const;

describe("parseFlags", () => {
  test("gives the defaults when no flag is passed", () => {
    expect(parseFlags([], spec)).toEqual({
      help: false,
      positionals: [],
      host: "127.0.0.1",
      port: 8000,
      rate: 2.5,
      timeout: 10,
      quiet: false,
    });
  });

  test("reads --flag value and --flag=value forms", () => {
    const flags = parseFlags(["--port", "0", "--host=::1", "--rate", "0.5", "--quiet"], spec);
    expect(flags).toEqual({
      help: false,
      positionals: [],
      host: "::1",
      port: 0,
      rate: 0.5,
      timeout: 10,
      quiet: true,
    });
  });

  test("refuses out-of-range and non-numeric values with one line", () => {
    expect(() => parseFlags(["--port", "70000"], spec)).toThrow(
      '--port needs a whole number 0–65535, got "70000"',
    );
    expect(() => parseFlags(["--port", "1.5"], spec)).toThrow(UsageError);
    expect(() => parseFlags(["--rate", "fast"], spec)).toThrow('--rate needs a number ≥ 0.1, got "fast"');
    expect(() => parseFlags(["--timeout", "-1"], spec)).toThrow('--timeout needs a number > 0, got "-1"');
    expect(() => parseFlags(["--timeout", "0"], spec)).toThrow(UsageError);
    expect(parseFlags(["--timeout", "0.5"], spec).timeout).toBe(0.5);
  });

  test("refuses unknown flags, missing values and stray arguments, in one wording", () => {
    expect(() => parseFlags(["--colour"], spec)).toThrow(new UsageError("unknown option --colour"));
    expect(() => parseFlags(["--colour=red"], spec)).toThrow(new UsageError("unknown option --colour"));
    expect(() => parseFlags(["-x"], spec)).toThrow(new UsageError("unknown option -x"));
    expect(() => parseFlags(["--port"], spec)).toThrow(new UsageError("--port needs a value"));
    expect(() => parseFlags(["--quiet=yes"], spec)).toThrow(new UsageError("--quiet takes no value"));
    expect(() => parseFlags(["stray"], spec)).toThrow(new UsageError('unexpected argument "stray"'));
  });

  test("collects positional arguments where the command takes them, and everything after --", () => {
    const urls = { name: "URL…", help: "what to fetch" };
    const flags = parseFlags(["http://a/", "--port", "1", "http://b/", "--", "--not-a-flag"], spec, urls);
    expect(flags.positionals).toEqual(["http://a/", "http://b/", "--not-a-flag"]);
    expect(flags.port).toBe(1);
  });

  test("refuses a positional argument its check refuses, naming it, before anything runs", () => {
    const urls = {
      name: "URL…",
      help: "what to fetch",
      check: (url: string) => (url.startsWith("http://") ? undefined : `not an http URL: ${url}`),
    };
    expect(parseFlags(["http://a/"], spec, urls).positionals).toEqual(["http://a/"]);
    expect(() => parseFlags(["http://a/", "ftp://b/"], spec, urls)).toThrow(
      new UsageError("not an http URL: ftp://b/"),
    );
  });

  test("keeps every value of a repeatable flag, in order, and an empty list when none is given", () => {
    const repeatable = { origin: { kind: "list", value: "URL", help: "an origin" }, ...spec } as const;
    expect(parseFlags([], repeatable).origin).toEqual([]);
    const flags = parseFlags(["--origin", "http://a", "--port", "1", "--origin=http://b"], repeatable);
    expect(flags.origin).toEqual(["http://a", "http://b"]);
    expect(flags.port).toBe(1);
    expect(() => parseFlags(["--origin"], repeatable)).toThrow(new UsageError("--origin needs a value"));
    expect(helpText("bun x.ts", repeatable)).toContain("--origin URL");
    expect(helpText("bun x.ts", repeatable)).toContain("an origin (repeatable)");
  });

  test("takes -h as well as --help", () => {
    expect(parseFlags(["-h"], spec).help).toBe(true);
    expect(parseFlags(["--help"], spec).help).toBe(true);
  });

  test("builds a help text that lists the arguments and every flag with its default", () => {
    const help = helpText("bun scripts/x.ts [URL…] [flags]", spec, { name: "URL…", help: "what to fetch" });
    expect(help).toContain("--port N");
    expect(help).toContain("(default 8000)");
    expect(help).toContain("URL…");
    expect(help).toContain("-h, --help");
    expect(help.split("\n")).toHaveLength(2 + 1 + 5 + 1);
  });

  test("shows a flag's own placeholder for its value where it has one", () => {
    const help = helpText("bun x.ts", { timeout: { ...spec.timeout, value: "SECONDS" }, host: spec.host });
    expect(help).toContain("--timeout SECONDS ");
    expect(help).toContain("--host TEXT ");
  });
});

describe("parseCommandLine", () => {
  /** Runs parseCommandLine with console output captured. */
  function run(argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const { log, error } = console;
    console.log = (line: string) => void out.push(line);
    console.error = (line: string) => void err.push(line);
    try {
      return { result: parseCommandLine(argv, spec, "bun x.ts [flags]"), out, err };
    } finally {
      console.log = log;
      console.error = error;
    }
  }

  test("prints one line and gives exit code 2 for a usage error", () => {
    const { result, err, out } = run(["--bogus"]);
    expect(result).toEqual({ exitCode: 2 });
    expect(err).toEqual(["error: unknown option --bogus (see --help)"]);
    expect(out).toEqual([]);
  });

  test("prints the help and gives exit code 0 for -h or --help, even next to a mistake", () => {
    for (const argv of [["-h"], ["--help"], ["--bogus", "-h"]]) {
      const { result, out, err } = run(argv);
      expect(result).toEqual({ exitCode: 0 });
      expect(out.join("\n")).toStartWith("usage: bun x.ts [flags]");
      expect(err).toEqual([]);
    }
  });
});

describe("every lesson's command line", () => {
  const lessons = [
    ...new Bun.Glob("scripts/[0-9][0-9]-*.ts").scanSync({ cwd: `${import.meta.dir}/..` }),
  ].sort();

  test("finds the lessons", () => {
    expect(lessons.length).toBeGreaterThanOrEqual(6);
  });

  test("the demos are in the help of the lessons that run them", async () => {
    for (const [lesson, flags] of [
      ["scripts/03-sql-client.ts", ["--demo-modes", "--redraw"]],
      ["scripts/04-echo-server.ts", ["--demo-drain"]],
    ] as const) {
      const { stdout } = await runScript([lesson, "-h"]);
      for (const flag of flags) expect(stdout).toMatch(new RegExp(`^  ${flag} +\\S`, "m"));
    }
  });

  for (const lesson of lessons) {
    for (const flag of ["-h", "--help"]) {
      test(`${lesson} ${flag} prints its usage and exits 0`, async () => {
        const { exitCode, stdout, stderr } = await runScript([lesson, flag]);
        expect(stdout).toStartWith(`usage: bun ${lesson}`);
        expect(stdout).toContain("-h, --help");
        expect(stderr).toBe("");
        expect(exitCode).toBe(0);
      });
    }

    // Lessons 04, 05 and 07 list their many limits in --help only; the others spell out every flag.
    if (/scripts\/0[1236]-/.test(lesson))
      test(`${lesson}'s usage line names every flag its help lists, as the help writes it`, async () => {
        const { stdout } = await runScript([lesson, "--help"]);
        const [usage, ...rest] = stdout.split("\n");
        const listed = rest.flatMap((line) => /^ {2}(--[a-z-]+(?: [A-Z]+)?)/.exec(line)?.[1] ?? []);
        expect(listed.length).toBeGreaterThan(0);
        for (const flag of listed) expect(usage).toContain(`[${flag}]`);
      });

    test(`${lesson} --bogus prints one line and exits 2`, async () => {
      const { exitCode, stdout, stderr } = await runScript([lesson, "--bogus"]);
      expect(stderr).toBe("error: unknown option --bogus (see --help)\n");
      expect(stdout).toBe("");
      expect(exitCode).toBe(2);
    });
  }
});
