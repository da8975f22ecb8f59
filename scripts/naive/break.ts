/**
 * Break it — hostile clients that show what the naive servers get wrong, against any server on a port
 *
 * Each attack connects to HOST:PORT like any client, does one bad thing, watches what happens, and prints
 * one verdict line: `BROKEN: …` (the server fails the way the book's chapter-8 code does) or `HOLDS: …`.
 * Run it against a naive server (scripts/naive/) and then, with another port, against the lesson:
 *
 *   no-read         (echo)  send 64 MiB of lines and read nothing back: does the server stop taking them?
 *   slow-client     (chat)  sam joins and stops reading while fay floods the room (until the room is
 *                           stuck, or the server cuts sam); does bob's next line still reach ann in 2 s?
 *   split-crash     (chat)  `CONNECT` alone and `CONNECT  ann  x`: an answer, or a dead connection?
 *   duplicate-name  (chat)  a second `CONNECT ann`: refused, or does it take over the first ann's place?
 *   eof-ghost       (chat)  ann sends EOF; does /who still list her?
 *   idle-trickle    (chat)  `CONNECT annnn…` a byte every 0.5 s, never a newline: cut at --idle, or kept?
 *   idle-silent     (chat)  ann joins and says nothing: when she is cut, are she and the others told?
 *
 *   bun scripts/naive/break.ts ATTACK [--host 127.0.0.1] [--port 8000] [--idle 60]
 *
 * Exit code: 0 when the attack ran (whatever the verdict: the verdict is the output), 1 when it could not
 * (nothing listens there, or the server answered something the attack did not expect), 2 for a usage
 * mistake. Every wait has a deadline; the idle attacks wait at most twice --idle, plus a second.
 *
 * --idle is the server's: pass the one it was started with. The idle attacks are quickest against a short
 * one (3 s); slow-client wants one of 10 s or more, as its users sit silent for ~3 s (it refuses less).
 *
 * What the attacker can see is only what any client sees — except `no-read`'s memory figure, which is
 * the server's resident size from /proc/PID/status, PID being the process that listens on the port
 * (found through /proc/net/tcp; Linux only, left out elsewhere).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { parseCommandLine } from "../../lib/args.ts";
import {
  ConnectionLostError,
  openConnection,
  type StreamReader,
  type StreamWriter,
} from "../../lib/streams.ts";

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "server address" },
  port: { kind: "int", default: 8000, min: 1, max: 65535, help: "server port" },
  idle: {
    kind: "number",
    default: 60,
    above: 0,
    max: 3600,
    value: "SECONDS",
    help: "the server's --idle (the idle attacks wait twice this long; slow-client needs 10 or more)",
  },
  "flood-mib": {
    kind: "number",
    default: 64,
    above: 0,
    max: 256,
    value: "MIB",
    help: "slow-client: the most fay floods the room with (she stops once the room is stuck)",
  },
  "send-mib": {
    kind: "number",
    default: 64,
    above: 0,
    max: 256,
    value: "MIB",
    help: "no-read: how much to send without reading",
  },
} as const;

/** How long a line that should arrive at once may take before we call it lost: 2 s. */
const PROMPT_MS = 2000;
/** How long a write may make no progress before we call the server stalled: 1 s. */
const STALL_MS = 1000;
/** The trickle's pace: one byte every 0.5 s. */
const TRICKLE_MS = 500;
/** Flood lines: 4,000 bytes each, under lesson 05's 4 KiB line limit. */
const FLOOD_LINE_BYTES = 4000;
/** Flood lines in flight at once: 10 (lesson 05's default burst). */
const FLOOD_WINDOW = 10;
/** no-read's lines: 16 KiB each, under lesson 04's 64 KiB line limit. */
const ECHO_LINE_BYTES = 16 * 1024;
const MIB = 1024 * 1024;
/**
 * The shortest server --idle slow-client can run against: 10 s. The attack lasts the flood, then
 * {@link STALL_MS} to see the room stuck, then {@link PROMPT_MS} for bob's line (~3 s in all, measured on
 * 2 loaded cores); ann and sam say nothing meanwhile, so a shorter --idle cuts them first — and cutting
 * sam unfreezes the naive room — before there is a verdict.
 */
const SLOW_CLIENT_MIN_IDLE_SECONDS = 10;

/** The server did something the attack cannot make sense of: the attack cannot go on. */
class AttackError extends Error {
  override name = "AttackError";
}

interface Target {
  host: string;
  port: number;
}

// ── A client that reads in the background, so every wait can have a deadline ─────────────────────────

const TIMEOUT = Symbol("timeout");
const EOF = Symbol("EOF");
type Next = string | typeof TIMEOUT | typeof EOF;

/**
 * One connection. A background task reads its lines into a queue (until {@link stopReading}); `next()`
 * and `waitFor()` take from it with a deadline.
 */
class Peer {
  readonly lines: string[] = [];
  /** Every notice (`* …`) and reply (`OK …`, `ERR …`) received, for a look back at the end. */
  readonly notices: string[] = [];
  #ended = false;
  #reading = true;
  #wake: (() => void) | null = null;

  private constructor(
    readonly name: string,
    readonly reader: StreamReader,
    readonly writer: StreamWriter,
  ) {
    this.#pump();
  }

  static async connect(target: Target, name: string): Promise<Peer> {
    const [reader, writer] = await openConnection(target.host, target.port);
    return new Peer(name, reader, writer);
  }

  async #pump() {
    try {
      while (this.#reading) {
        const bytes = await this.reader.readLine();
        if (bytes.length === 0) break;
        const line = new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
        this.lines.push(line);
        if (/^(\* |OK |ERR )/.test(line)) this.notices.push(line);
        this.#wake?.();
      }
      if (this.#reading) this.#ended = true;
    } catch {
      this.#ended = true; // reset, or over 64 KiB: as good as the end for an attack
    }
    this.#wake?.();
  }

  /** From the next line on, read nothing: the socket's buffers fill, as with a client that hung. */
  stopReading(): void {
    this.#reading = false;
  }

  send(text: string): void {
    this.writer.write(text);
  }

  /** The next line; EOF when the server closed; TIMEOUT after `ms`. */
  async next(ms: number): Promise<Next> {
    const deadline = performance.now() + ms;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.#ended) return EOF;
      const left = deadline - performance.now();
      if (left <= 0) return TIMEOUT;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** Skips lines until one passes `test`: that line, or EOF / TIMEOUT (`ms` for the whole wait). */
  async waitFor(test: (line: string) => boolean, ms: number): Promise<Next> {
    const deadline = performance.now() + ms;
    for (;;) {
      const got = await this.next(deadline - performance.now());
      if (typeof got !== "string" || test(got)) return got;
    }
  }

  /** `CONNECT name`: the server's answer (`OK …`, `ERR …`), or EOF / TIMEOUT. */
  async join(): Promise<Next> {
    this.send(`CONNECT ${this.name}\n`);
    return this.waitFor((line) => line.startsWith("OK ") || line.startsWith("ERR "), PROMPT_MS);
  }

  /** Like {@link join}, but anything but `OK` ends the attack: it needs this user in the room. */
  async mustJoin(): Promise<void> {
    const answer = await this.join();
    if (typeof answer === "string" && answer.startsWith("OK ")) return;
    throw new AttackError(`${this.name} could not join: ${describe(answer)} (is this a chat server?)`);
  }

  close(): void {
    this.writer.abort();
  }
}

function describe(got: Next): string {
  if (got === TIMEOUT) return "no answer";
  if (got === EOF) return "the connection was closed";
  return `"${got}"`;
}

/** Runs `attack` with the peers it opens, and closes them all whatever happens. */
async function withPeers(
  target: Target,
  attack: (connect: (name: string) => Promise<Peer>) => Promise<string>,
) {
  const peers: Peer[] = [];
  try {
    return await attack(async (name) => {
      const peer = await Peer.connect(target, name);
      peers.push(peer);
      return peer;
    });
  } finally {
    for (const peer of peers) peer.close();
  }
}

const milliseconds = (since: number) => `${Math.round(performance.now() - since)} ms`;
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const mebibytes = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

// ── The chat attacks ──────────────────────────────────────────────────────────────────────────────────

/** A room where sam stopped reading and fay floods: can bob still reach ann? */
function slowClient(target: Target, floodBytes: number): Promise<string> {
  return withPeers(target, async (connect) => {
    const [sam, ann, bob, fay] = await Promise.all(["sam", "ann", "bob", "fay"].map(connect));
    // sam joins first: a broadcast that visits users in the order they joined visits him first.
    for (const peer of [sam!, ann!, bob!, fay!]) await peer.mustJoin();
    const joined = performance.now();
    sam!.stopReading();
    const lines = Math.ceil(floodBytes / FLOOD_LINE_BYTES);
    const sent = await flood(fay!, lines, [ann!, bob!], () => samNotice(ann!) !== undefined);
    const token = `probe ${Math.random().toString(36).slice(2, 8)}`;
    const since = performance.now();
    bob!.send(`${token}\n`);
    const got = await ann!.waitFor((line) => line === `bob: ${token}`, PROMPT_MS);
    if (got === EOF) {
      const last = ann!.notices.at(-1);
      throw new AttackError(
        `the server disconnected ann ${seconds(joined)} after she joined, before there was a verdict` +
          ` (${last ? `the last notice she got: "${last}"` : "she got no notice"}); if it was its idle` +
          ` timer, restart the server with --idle ${SLOW_CLIENT_MIN_IDLE_SECONDS} or more`,
      );
    }
    const slowDowns = fay!.notices.filter((line) => line === "ERR slow down").length;
    const refused =
      slowDowns > 0
        ? ` (the server refused ${slowDowns} of them with ERR slow down, its flood control: start it` +
          " with --flood-burst 100000 to let the flood through)"
        : "";
    const flooded = `fay's ${sent} lines (${mebibytes(sent * FLOOD_LINE_BYTES)})${refused}`;
    if (typeof got !== "string") {
      return (
        `BROKEN: room frozen: bob's line did not reach ann in ${PROMPT_MS / 1000} s — sam, who stopped` +
        ` reading, holds up every broadcast; after ${flooded}`
      );
    }
    const notice = samNotice(ann!);
    const samFate = notice ? `the room was told "${notice}"` : "sam is still connected";
    return `HOLDS: room fine: bob's line reached ann in ${milliseconds(since)}; ${samFate}; after ${flooded}`;
  });
}

/** What the room was told about sam leaving, if anything. */
function samNotice(peer: Peer): string | undefined {
  return peer.notices.find((line) => line.startsWith("* sam ") && !line.endsWith(" joined"));
}

/**
 * Sends up to `lines` flood lines from `fay`, {@link FLOOD_WINDOW} at a time: she waits to get each window
 * back (her own lines, or `ERR slow down`) before sending the next — a busy client, not a reckless one,
 * whose lines never pile up in one turn of the server's loop. Meanwhile `readers` read and forget the
 * room. Stops early when a window does not come back within {@link STALL_MS} (the room is stuck) or
 * when `enough()` says so. Returns how many lines were sent.
 */
async function flood(fay: Peer, lines: number, readers: Peer[], enough: () => boolean): Promise<number> {
  const line = `${"x".repeat(FLOOD_LINE_BYTES - 1)}\n`;
  const isBack = (got: string) => got.startsWith("fay: ") || got === "ERR slow down";
  let sent = 0;
  while (sent < lines && !enough()) {
    const window = Math.min(FLOOD_WINDOW, lines - sent);
    for (let i = 0; i < window; i++) fay.send(line);
    sent += window;
    for (let i = 0; i < window; i++) {
      if (typeof (await fay.waitFor(isBack, STALL_MS)) !== "string") return sent;
    }
    for (const peer of readers) peer.lines.length = 0;
  }
  return sent;
}

/** Awaits `writer.drain()` for at most `ms`: true if the peer caught up meanwhile. */
async function drainedWithin(writer: StreamWriter, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([writer.drain().then(() => true), stalled]);
  } catch {
    return false; // the connection is gone
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until everything queued on `writer` is sent, or `ms` pass in which nothing more is. */
async function sentWithin(writer: StreamWriter, ms: number): Promise<void> {
  let last = writer.bufferedBytes;
  let lastProgress = performance.now();
  while (writer.bufferedBytes > 0 && performance.now() - lastProgress < ms) {
    await Bun.sleep(20);
    if (writer.bufferedBytes < last) lastProgress = performance.now();
    last = writer.bufferedBytes;
  }
}

/** `CONNECT` with no name, and with extra spaces: each should get an answer. */
function splitCrash(target: Target): Promise<string> {
  return withPeers(target, async (connect) => {
    const outcomes: string[] = [];
    let crashed = false;
    for (const line of ["CONNECT", "CONNECT  ann  x"]) {
      const peer = await connect("ann");
      peer.send(`${line}\n`);
      const got = await peer.next(PROMPT_MS);
      if (got === EOF) crashed = true;
      const what = got === EOF ? "no answer, connection closed (the handler crashed)" : describe(got);
      outcomes.push(`"${line}" → ${what}`);
    }
    return `${crashed ? "BROKEN" : "HOLDS"}: ${outcomes.join("; ")}`;
  });
}

/** A second `CONNECT ann` while ann is in the room. */
function duplicateName(target: Target): Promise<string> {
  return withPeers(target, async (connect) => {
    const [first, bob, second] = await Promise.all(["ann", "bob", "ann"].map(connect));
    await first!.mustJoin();
    await bob!.mustJoin();
    const answer = await second!.join();
    const token = `hi ${Math.random().toString(36).slice(2, 8)}`;
    const since = performance.now();
    bob!.send(`${token}\n`);
    const got = await first!.waitFor((line) => line === `bob: ${token}`, PROMPT_MS);
    const replaced = typeof answer === "string" && answer.startsWith("OK ");
    const hears =
      typeof got === "string"
        ? `the first ann still hears the room (bob's line reached her in ${milliseconds(since)})`
        : `the first ann no longer hears the room (bob's line did not reach her in ${PROMPT_MS / 1000} s)`;
    const broken = replaced || typeof got !== "string";
    return `${broken ? "BROKEN" : "HOLDS"}: a second "CONNECT ann" got ${describe(answer)}; ${hears}`;
  });
}

/** ann half-closes (EOF, still reading); then bob asks /who. */
function eofGhost(target: Target): Promise<string> {
  return withPeers(target, async (connect) => {
    const [ann, bob] = await Promise.all(["ann", "bob"].map(connect));
    await ann!.mustJoin();
    await bob!.mustJoin();
    ann!.writer.writeEof();
    const left = await bob!.waitFor((line) => line.startsWith("* ann "), PROMPT_MS);
    bob!.send("/who\n");
    const who = await bob!.waitFor((line) => line.startsWith("* online"), PROMPT_MS);
    if (typeof who !== "string") throw new AttackError(`/who got ${describe(who)}`);
    const listed = /: (.*)$/.exec(who)?.[1]?.split(", ") ?? [];
    const ghost = listed.includes("ann");
    const notice = typeof left === "string" ? `bob saw "${left}"` : "bob was told nothing";
    return ghost
      ? `BROKEN: ann sent EOF; ${notice}, yet /who says "${who}" — ann is a ghost`
      : `HOLDS: ann sent EOF; ${notice}, and /who says "${who}"`;
  });
}

/** `CONNECT annnn…` one byte at a time, never a newline: how long does the server keep it? */
function idleTrickle(target: Target, idleSeconds: number): Promise<string> {
  return withPeers(target, async (connect) => {
    const peer = await connect("ann");
    const text = "CONNECT ann";
    const since = performance.now();
    const deadline = since + (2 * idleSeconds + 1) * 1000;
    let sent = 0;
    let last: string | undefined;
    while (performance.now() < deadline) {
      peer.send(text[sent] ?? "n");
      sent++;
      const got = await peer.next(Math.min(TRICKLE_MS, deadline - performance.now()));
      if (typeof got === "string") last = got;
      if (got !== EOF) continue;
      const said = last === undefined ? "" : `: "${last}"`;
      return `HOLDS: the server cut the trickle after ${seconds(since)} (--idle ${idleSeconds})${said}`;
    }
    return (
      `BROKEN: trickled "CONNECT annn…" (${sent} bytes, one per ${TRICKLE_MS / 1000} s, no newline) for` +
      ` ${seconds(since)} — twice --idle ${idleSeconds} — and the server still holds the connection`
    );
  });
}

/** ann joins and says nothing while bob keeps talking: who is told when ann is cut? */
function idleSilent(target: Target, idleSeconds: number): Promise<string> {
  return withPeers(target, async (connect) => {
    const [ann, bob] = await Promise.all(["ann", "bob"].map(connect));
    await ann!.mustJoin();
    await bob!.mustJoin();
    const since = performance.now();
    // bob stays active: a line every third of --idle (well within lesson 05's flood control).
    const talk = setInterval(() => bob!.send("still here\n"), (idleSeconds * 1000) / 3);
    let cutAfter: string | null = null;
    try {
      const ended = await ann!.waitFor(() => false, (2 * idleSeconds + 1) * 1000);
      if (ended === EOF) cutAfter = seconds(since);
      await Bun.sleep(200); // a notice to the others leaves with the cut, or not at all
    } finally {
      clearInterval(talk);
    }
    if (cutAfter === null)
      return `BROKEN: ann, silent, was never cut in ${seconds(since)} (--idle ${idleSeconds})`;
    const toAnn = ann!.notices.filter((line) => line.startsWith("* ") && !line.includes(" joined")).at(-1);
    const toBob = bob!.notices.find((line) => line.startsWith("* ann ") && !line.endsWith(" joined"));
    const told = `${toAnn ? `she got "${toAnn}"` : "she got no notice"}, and ${toBob ? `bob "${toBob}"` : "bob was not told"}`;
    return `${toAnn && toBob ? "HOLDS" : "BROKEN"}: ann, silent, was cut after ${cutAfter}: ${told}`;
  });
}

// ── The echo attack ───────────────────────────────────────────────────────────────────────────────────

/** Sends `total` bytes of lines and reads nothing back: how much does the server take? */
function noRead(target: Target, total: number): Promise<string> {
  return withPeers(target, async (connect) => {
    const pid = listeningPid(target.port);
    const rssBefore = pid === null ? null : residentBytes(pid);
    const client = await connect("echo");
    const greeting = await client.next(PROMPT_MS);
    if (typeof greeting !== "string") {
      throw new AttackError(`${describe(greeting)} instead of a greeting (is this lesson 04's echo server?)`);
    }
    client.stopReading();
    const line = `${"y".repeat(ECHO_LINE_BYTES - 1)}\n`;
    let written = 0;
    while (written < total) {
      client.send(line);
      written += line.length;
      if (client.writer.bufferedBytes > MIB && !(await drainedWithin(client.writer, STALL_MS))) break;
    }
    await sentWithin(client.writer, STALL_MS);
    const taken = written - client.writer.bufferedBytes;
    const rssAfter = pid === null ? null : residentBytes(pid);
    const rss =
      rssBefore === null || rssAfter === null
        ? ""
        : ` (server pid ${pid}: rss ${mebibytes(rssBefore)} → ${mebibytes(rssAfter)})`;
    if (taken >= total) {
      return `BROKEN: the server took all ${mebibytes(total)} while I read nothing back — it holds the echoes in its memory${rss}`;
    }
    return (
      `HOLDS: the server stopped taking after ${mebibytes(taken)} of ${mebibytes(total)} (kernel buffers` +
      ` included) — it waits in drain() until I read${rss}`
    );
  });
}

/**
 * The process that listens on TCP `port`, from /proc/net/tcp{,6} (the socket's inode) and /proc/PID/fd
 * (who holds it). Null when it cannot be found (not Linux, or another user's process).
 */
function listeningPid(port: number): number | null {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const row of text.split("\n").slice(1)) {
      const fields = row.trim().split(/\s+/);
      const localPort = Number.parseInt(fields[1]?.split(":").at(-1) ?? "", 16);
      if (localPort === port && fields[3] === "0A") inodes.add(fields[9]!); // 0A: LISTEN
    }
  }
  if (inodes.size === 0) return null;
  for (const entry of safeReaddir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    for (const fd of safeReaddir(`/proc/${entry}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode && inodes.has(inode)) return Number(entry);
    }
  }
  return null;
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Resident memory of process `pid`, in bytes (VmRSS from /proc/PID/status); 0 if it is gone. */
function residentBytes(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

// ── The command line ──────────────────────────────────────────────────────────────────────────────────

const ATTACKS = [
  "no-read",
  "slow-client",
  "split-crash",
  "duplicate-name",
  "eof-ghost",
  "idle-trickle",
  "idle-silent",
] as const;
type Attack = (typeof ATTACKS)[number];

function run(attack: Attack, target: Target, flags: { idle: number; floodMib: number; sendMib: number }) {
  switch (attack) {
    case "no-read":
      return noRead(target, Math.round(flags.sendMib * MIB));
    case "slow-client":
      return slowClient(target, Math.round(flags.floodMib * MIB));
    case "split-crash":
      return splitCrash(target);
    case "duplicate-name":
      return duplicateName(target);
    case "eof-ghost":
      return eofGhost(target);
    case "idle-trickle":
      return idleTrickle(target, flags.idle);
    case "idle-silent":
      return idleSilent(target, flags.idle);
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/naive/break.ts ATTACK [flags]", {
    name: "ATTACK",
    help: ATTACKS.join(", "),
    check: (value) =>
      (ATTACKS as readonly string[]).includes(value)
        ? undefined
        : `unknown attack ${JSON.stringify(value)} (one of ${ATTACKS.join(", ")})`,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  if (flags.positionals.length !== 1) {
    console.error(`error: name one attack: ${ATTACKS.join(", ")} (see --help)`);
    return 2;
  }
  const attack = flags.positionals[0] as Attack;
  if (attack === "slow-client" && flags.idle < SLOW_CLIENT_MIN_IDLE_SECONDS) {
    console.error(
      `error: slow-client lasts ~3 s in which ann and sam say nothing: a server with --idle ${flags.idle}` +
        ` cuts them before the verdict. Start the server with --idle ${SLOW_CLIENT_MIN_IDLE_SECONDS} or` +
        " more (its default is 60), and pass the same --idle here",
    );
    return 2;
  }
  const target = { host: flags.host, port: flags.port };
  try {
    const verdict = await run(attack, target, {
      idle: flags.idle,
      floodMib: flags["flood-mib"],
      sendMib: flags["send-mib"],
    });
    console.log(`${attack}: ${verdict}`);
    return 0;
  } catch (error) {
    // Nothing listening there (openConnection's one line), or a server that is not what the attack needs.
    if (!(error instanceof AttackError || error instanceof ConnectionLostError)) throw error;
    console.error(`error: ${attack}: ${error.message}`);
    return 1;
  }
}

if (import.meta.main) process.exit(await main());

/* A real run — each naive server and its lesson in terminals of their own (the lesson's flood control
   raised, so that fay's flood reaches sam: what is tested is the broadcast, not the flood control):

$ bun scripts/naive/echo-no-drain.ts --port 18500        $ bun scripts/04-echo-server.ts --port 18501
$ bun scripts/naive/break.ts no-read --port 18500
no-read: BROKEN: the server took all 64.0 MiB while I read nothing back — it holds the echoes in its memory (server pid 27472: rss 31.8 MiB → 128.9 MiB)
$ bun scripts/naive/break.ts no-read --port 18501
no-read: HOLDS: the server stopped taking after 11.8 MiB of 64.0 MiB (kernel buffers included) — it waits in drain() until I read (server pid 27474: rss 32.1 MiB → 44.9 MiB)

$ bun scripts/naive/chat-server.ts --port 18720 --idle 10
$ bun scripts/05-chat-server.ts --port 18721 --idle 10 --flood-burst 100000
$ bun scripts/naive/break.ts slow-client --port 18720 --idle 10
slow-client: BROKEN: room frozen: bob's line did not reach ann in 2 s — sam, who stopped reading, holds up every broadcast; after fay's 1060 lines (4.0 MiB)
$ bun scripts/naive/break.ts slow-client --port 18721 --idle 10
slow-client: HOLDS: room fine: bob's line reached ann in 0 ms; the room was told "* sam was disconnected (not reading)"; after fay's 1150 lines (4.4 MiB)
$ bun scripts/naive/break.ts slow-client --port 18721 --idle 3
error: slow-client lasts ~3 s in which ann and sam say nothing: a server with --idle 3 cuts them before the verdict. Start the server with --idle 10 or more (its default is 60), and pass the same --idle here

$ bun scripts/naive/chat-server.ts --port 18510 --idle 3
$ bun scripts/05-chat-server.ts --port 18511 --idle 3 --flood-burst 100000
$ bun scripts/naive/break.ts split-crash --port 18510 --idle 3
split-crash: BROKEN: "CONNECT" → no answer, connection closed (the handler crashed); "CONNECT  ann  x" → no answer, connection closed (the handler crashed)
$ bun scripts/naive/break.ts split-crash --port 18511 --idle 3
split-crash: HOLDS: "CONNECT" → "ERR missing name: send CONNECT <name>"; "CONNECT  ann  x" → "ERR invalid name: one word, no spaces"
$ bun scripts/naive/break.ts duplicate-name --port 18510 --idle 3
duplicate-name: BROKEN: a second "CONNECT ann" got "OK welcome ann, 2 users online"; the first ann no longer hears the room (bob's line did not reach her in 2 s)
$ bun scripts/naive/break.ts duplicate-name --port 18511 --idle 3
duplicate-name: HOLDS: a second "CONNECT ann" got "ERR name taken: ann"; the first ann still hears the room (bob's line reached her in 0 ms)
$ bun scripts/naive/break.ts eof-ghost --port 18510 --idle 3
eof-ghost: BROKEN: ann sent EOF; bob saw "* ann left", yet /who says "* online (2): ann, bob" — ann is a ghost
$ bun scripts/naive/break.ts eof-ghost --port 18511 --idle 3
eof-ghost: HOLDS: ann sent EOF; bob saw "* ann left", and /who says "* online (1): bob"
$ bun scripts/naive/break.ts idle-trickle --port 18510 --idle 3
idle-trickle: BROKEN: trickled "CONNECT annn…" (14 bytes, one per 0.5 s, no newline) for 7.0 s — twice --idle 3 — and the server still holds the connection
$ bun scripts/naive/break.ts idle-trickle --port 18511 --idle 3
idle-trickle: HOLDS: the server cut the trickle after 3.3 s (--idle 3): "ERR registration timeout for 3 s"
$ bun scripts/naive/break.ts idle-silent --port 18510 --idle 3
idle-silent: BROKEN: ann, silent, was cut after 3.0 s: she got no notice, and bob was not told
$ bun scripts/naive/break.ts idle-silent --port 18511 --idle 3
idle-silent: HOLDS: ann, silent, was cut after 3.5 s: she got "* disconnected: idle for 3 s", and bob "* ann was disconnected (idle)"
*/
