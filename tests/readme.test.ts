/**
 * The README's commands, run as a learner would type them.
 *
 * The lessons' section of README.md runs from its "## Quick start" heading to the `<!-- lessons: end -->`
 * comment. Every fenced block in it is tagged: ```sh holds commands, ```text holds what you type into a
 * program (never run). Each line of a ```sh block (a `\` at the end joins the next) is one command, and its
 * trailing comment says how this test treats it:
 *
 *   # runs until Ctrl+C           a server: it must print a first line within STARTUP_MS, then exit 0 within
 *                                 EXIT_MS of a SIGINT (with "exits N" in the comment: exit N — a naive
 *                                 server that does not catch SIGINT dies of it, 130)
 *   # interactive …               run in a real pseudo-terminal; once its screen has settled, Ctrl+C must end
 *                                 it with exit 130 (128 + SIGINT, as every lesson reports it)
 *   # exits N …                   must exit with code N on its own (with "interactive, exits N": in the PTY)
 *   # in a second terminal …      not run: it needs another command of the block running (or plays its peer)
 *   # in a third terminal …       likewise
 *   # while …                     likewise ("# while the server runs", "# while nc -l 9000 runs")
 *   # needs the network           not run: it fetches from the Internet
 *   # needs a PostgreSQL server   not run: it needs a server of yours (any "needs a NAME server")
 *   anything else, or no comment  must exit 0 on its own within RUN_MS
 *
 * `bun install` and `bun test` are the two setup commands: this test runs inside `bun test`, after
 * `bun install`, so they are not run again.
 *
 * A server or interactive lesson started here uses the port the README names (its `--port`, else the
 * default its `--help` prints), so another server on that port would answer instead. Each such command
 * checks first that the port is free: taken, it is skipped with a printed reason — or, under CI, it
 * fails. Likewise for a program the command needs (lesson 07 needs `redis-server`).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startInPty } from "./helpers/pty.ts";

const ROOT = `${import.meta.dir}/..`;
const README = readFileSync(`${ROOT}/README.md`, "utf8");
/** The issue's limit for the README up to the end of the lessons' section. */
const MAX_LESSON_LINES = 250;
/** How long a command that ends on its own may take: 30 s (lesson 03's embedded database starts in ~2 s). */
const RUN_MS = 30_000;
/** How long a server or interactive program may take to show its first output: 30 s. */
const STARTUP_MS = 30_000;
/** How long a program may take to exit after SIGINT or Ctrl+C: 10 s. */
const EXIT_MS = 10_000;
/**
 * How long after its first line a server gets its SIGINT: 0.5 s, as a person would take. Bun installs a
 * `process.on("SIGINT")` handler a moment after the call (measured: a SIGINT 30 ms after the `listening on`
 * line, printed just before the call, ended lessons 04, 05 and 07 with the default action, 130).
 */
const SIGINT_AFTER_MS = 500;
/** A PTY screen unchanged this long has settled (a spinner redraws every 80 ms): 1 s. */
const SETTLED_MS = 1_000;
/** How long a blank screen must stay blank to count as settled: 5 s (Bun starts a lesson well within it). */
const BLANK_MS = 5_000;
const SETUP_COMMANDS = new Set(["bun install", "bun test"]);
/** Programs a lesson needs on the PATH besides Bun. */
const NEEDS: Record<string, string> = { "scripts/07-chat-cluster.ts": "redis-server" };
const IN_CI = Boolean(process.env.CI); // as tests/helpers/postgres.ts, redis.ts and chromium.ts read it

type Kind = "setup" | "not run" | "server" | "interactive" | "command";

export interface ReadmeCommand {
  line: number;
  command: string;
  comment: string;
  kind: Kind;
  exitCode: number;
  lesson: string;
}

/** The lessons' section: its first line (1-based) and the line of the end marker. */
export function lessonsSection(text: string): { start: number; end: number; lines: string[] } {
  const lines = text.split("\n");
  const start = lines.indexOf("## Quick start");
  const end = lines.findIndex((line) => line.trim() === "<!-- lessons: end -->");
  if (start < 0 || end < start)
    throw new Error('README.md: no "## Quick start" … "<!-- lessons: end -->" section');
  return { start: start + 1, end: end + 1, lines };
}

export function classify(comment: string): { kind: Kind; exitCode: number } {
  const exits = /\bexits (\d+)\b/i.exec(comment);
  const exitCode = exits ? Number(exits[1]) : 0;
  if (/^(in a (second|third) terminal|while\b|needs (the network|a \w+ server))/i.test(comment))
    return { kind: "not run", exitCode };
  if (/^runs until Ctrl\+C/i.test(comment)) return { kind: "server", exitCode };
  if (/^interactive\b/i.test(comment)) return { kind: "interactive", exitCode: exits ? exitCode : 130 };
  return { kind: "command", exitCode };
}

/** Every fenced block of the section, with its tag, and every command of its ```sh blocks. */
export function readmeCommands(text: string): { untagged: number[]; commands: ReadmeCommand[] } {
  const { start, end, lines } = lessonsSection(text);
  const untagged: number[] = [];
  const commands: ReadmeCommand[] = [];
  let lesson = "Quick start";
  let block: string | null = null;
  let pending = "";
  let pendingLine = 0;
  for (let index = start - 1; index < end; index++) {
    const line = lines[index]!;
    const fence = /^```(\S*)/.exec(line);
    if (fence) {
      if (block === null) {
        block = fence[1]!;
        if (block === "") untagged.push(index + 1);
      } else block = null;
      continue;
    }
    if (block === null) {
      const heading = /^### (\d+)/.exec(line);
      if (heading) lesson = `lesson ${heading[1]}`;
      continue;
    }
    if (block !== "sh") continue;
    if (pending === "") {
      if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
      pendingLine = index + 1;
    }
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = "";
    const split = /^(.*?)\s+#\s*(.*)$/.exec(full);
    const command = (split ? split[1]! : full).trim();
    const comment = split ? split[2]!.trim() : "";
    const { kind, exitCode } = SETUP_COMMANDS.has(command)
      ? { kind: "setup" as const, exitCode: 0 }
      : classify(comment);
    commands.push({ line: pendingLine, command, comment, kind, exitCode, lesson });
  }
  return { untagged, commands };
}

/** The lesson script a command runs (`scripts/NN-….ts`), if it runs one. */
function scriptOf(command: string): string | null {
  return /^bun (scripts\/[\w-]+\.ts)\b/.exec(command)?.[1] ?? null;
}

/** The TCP port the command will listen on or connect to: its --port, else the default its --help names. */
function portOf(command: string): number | null {
  const given = /--port[ =](\d+)/.exec(command);
  if (given) return Number(given[1]);
  const script = scriptOf(command);
  if (!script) return null;
  const help = Bun.spawnSync(["bun", script, "--help"], { cwd: ROOT }).stdout.toString();
  const line = help.split("\n").find((text) => /^\s*--port\b/.test(text));
  const match = line && /\(default (\d+)\)/.exec(line);
  return match ? Number(match[1]) : null;
}

async function portIsFree(port: number): Promise<boolean> {
  try {
    const probe = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    probe.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** Why the command cannot run on this machine now, or null if it can. */
async function missingFor(command: string): Promise<string | null> {
  const script = scriptOf(command);
  const program = script ? NEEDS[script] : undefined;
  if (program && !Bun.which(program)) return `${program} is not installed`;
  const port = portOf(command);
  if (port && !(await portIsFree(port))) return `port ${port} is taken by another program`;
  return null;
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function runToEnd(entry: ReadmeCommand): Promise<void> {
  const child = Bun.spawn(["bash", "-c", entry.command], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  try {
    const [stdout, stderr, exitCode] = await withDeadline(
      Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]),
      RUN_MS,
      "did not exit",
    );
    if (exitCode !== entry.exitCode) console.log(`stdout:\n${stdout}\nstderr:\n${stderr}`);
    expect(exitCode).toBe(entry.exitCode);
  } finally {
    child.kill("SIGKILL");
  }
}

/** Reads the child's stdout up to its first newline. */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    const newline = text.indexOf("\n");
    if (newline >= 0) return text.slice(0, newline);
  }
  return text;
}

/**
 * The command for `bash -c`: a simple command is exec'd, so that a signal goes to the program itself, not
 * to a shell around it; a pipeline or a list (`stty …; cat`) runs in the shell, as typed.
 */
function shellCommand(command: string): string {
  return /[;|&]/.test(command) ? command : `exec ${command}`;
}

async function runServer(entry: ReadmeCommand): Promise<void> {
  const child = Bun.spawn(["bash", "-c", shellCommand(entry.command)], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  try {
    const line = await withDeadline(firstLine(child.stdout), STARTUP_MS, "printed no first line");
    expect(line).toMatch(/\S/);
    await Bun.sleep(SIGINT_AFTER_MS);
    child.kill("SIGINT");
    expect(await withDeadline(child.exited, EXIT_MS, "did not exit after SIGINT")).toBe(entry.exitCode);
  } finally {
    child.kill("SIGKILL");
  }
}

async function runInteractive(entry: ReadmeCommand): Promise<void> {
  const program = startInPty(["bash", "-c", shellCommand(entry.command)]);
  try {
    if (entry.exitCode !== 130) {
      expect(await withDeadline(program.exited, RUN_MS, "did not exit")).toBe(entry.exitCode);
      return;
    }
    let exited = false;
    void program.exited.then(() => {
      exited = true;
    });
    let last = "";
    let since = performance.now();
    const started = performance.now();
    while (true) {
      if (exited) throw new Error(`exited before it was interrupted:\n${program.screen.rows().join("\n")}`);
      await program.screen.write("");
      const screen = program.screen.rows().join("\n");
      if (screen !== last) [last, since] = [screen, performance.now()];
      // Settled: unchanged for SETTLED_MS, and showing something — unless it is a program that shows
      // nothing until you type (`cat`), still blank after BLANK_MS.
      else if (
        performance.now() - since >= SETTLED_MS &&
        (screen.trim() !== "" || performance.now() - started >= BLANK_MS)
      )
        break;
      if (performance.now() - started > STARTUP_MS)
        throw new Error(`its screen did not settle within ${STARTUP_MS / 1000} s:\n${screen}`);
      await Bun.sleep(50);
    }
    program.type("\x03"); // Ctrl+C, as typed
    expect(await withDeadline(program.exited, EXIT_MS, "did not exit after Ctrl+C")).toBe(130);
  } finally {
    program.kill();
  }
}

const { untagged, commands } = readmeCommands(README);

describe("README: the lessons' section", () => {
  test(`is at most ${MAX_LESSON_LINES} lines up to its end`, () => {
    expect(lessonsSection(README).end).toBeLessThanOrEqual(MAX_LESSON_LINES);
  });

  test("tags every code block (sh for commands, text for what you type)", () => {
    expect(untagged.map((line) => `README.md:${line}`)).toEqual([]);
  });

  test("every lesson has a command this test runs", () => {
    const headings = [...README.matchAll(/^### (\d+) /gm)].map((match) => `lesson ${match[1]}`);
    const runs = new Set(commands.filter((entry) => entry.kind !== "not run").map((entry) => entry.lesson));
    expect(headings.filter((lesson) => !runs.has(lesson))).toEqual([]);
  });

  test("reads the markers as documented", () => {
    expect(classify("runs until Ctrl+C")).toEqual({ kind: "server", exitCode: 0 });
    expect(classify("runs until Ctrl+C kills it (exits 130)")).toEqual({ kind: "server", exitCode: 130 });
    expect(classify("interactive: \\q leaves")).toEqual({ kind: "interactive", exitCode: 130 });
    expect(classify("interactive, exits 1: cannot connect")).toEqual({ kind: "interactive", exitCode: 1 });
    expect(classify("exits 2: a usage error")).toEqual({ kind: "command", exitCode: 2 });
    expect(classify("in a second terminal: you are the server").kind).toBe("not run");
    expect(classify("while the server runs").kind).toBe("not run");
    expect(classify("needs the network").kind).toBe("not run");
    expect(classify("needs a PostgreSQL server").kind).toBe("not run");
    expect(classify("the bodies too")).toEqual({ kind: "command", exitCode: 0 });
  });
});

describe("README: every command of the lessons' section runs", () => {
  for (const entry of commands) {
    if (entry.kind === "setup" || entry.kind === "not run") continue;
    const title = `README.md:${entry.line} (${entry.lesson}): ${entry.command}`;
    test(
      title,
      async () => {
        if (entry.kind !== "command") {
          const missing = await missingFor(entry.command);
          if (missing) {
            if (IN_CI) throw new Error(`cannot run under CI: ${missing}`);
            console.log(`skipped ${title}: ${missing}`);
            return;
          }
        }
        if (entry.kind === "server") await runServer(entry);
        else if (entry.kind === "interactive") await runInteractive(entry);
        else await runToEnd(entry);
      },
      RUN_MS + STARTUP_MS + EXIT_MS,
    );
  }
});
