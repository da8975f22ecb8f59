/**
 * Lesson 06 — A terminal chat client: a name prompt, messages rolling above, the input line pinned below
 *
 * What it teaches: three pieces from the earlier lessons cooperating in one event loop, none waiting for
 * another:
 *   - one task reads the socket (lib/streams: `await reader.readUntil(NEWLINE)`) and prints each line it gets;
 *   - one task reads what you type (lib/terminal-ui: `for await (const line of ui.lines)`, the input loop
 *     lesson 03 uses too) and sends each line;
 *   - the screen (lib/screen) is the only one that writes to the terminal: printing a message and
 *     redrawing the input line are both requests to it, and it sends them together once per turn.
 * So a message that arrives while you type lands above your half-typed line, which stays as it was.
 *
 * Before the screen starts, @clack/prompts asks for your name (checked against lesson 05's NAME_PATTERN),
 * and only then does the client connect and send `CONNECT name`; if the server answers `ERR name taken`
 * (or invalid, or full), it says why and asks again. Name first, then connect: the prompt needs no
 * server, and a connection opened when there is a CONNECT to send does not sit on lesson 05's
 * registration timer (`--idle`) while you think. What it costs: given --host/--port with no server there,
 * you learn so after typing the name — without them the client starts a server of its own, so the name
 * is never typed in vain.
 *
 * The book's client set cbreak mode and never restored it, and redrew all messages on every new one. Here
 * /quit, Ctrl+C, Ctrl+D, the server closing on us, SIGTERM — every way out restores the terminal. /quit and
 * Ctrl+D exit 0 (Esc too, at the name prompt); Ctrl+C exits 130, at the name prompt as in the chat (as a
 * shell reports a program that SIGINT ended); the server closing the connection exits 1.
 *
 * The server is a peer we do not control, so nothing it sends may break us: a line longer than 64 KiB (a
 * /who in a room of thousands) is shown cut, with a note, and the stream stays in step; its text reaches
 * the terminal neutralised (lib/sanitize) — in the chat, in an ERR at the prompt, and in its last words.
 * A peer that answers CONNECT with neither OK nor ERR (lesson 04's echo server on the same port) is not a
 * chat server: one line, exit 1 — and so is one that does not answer within 10 s.
 *
 *   asyncio (book)                                   here
 *   asyncio.open_connection(host, port)           ↔  openConnection(host, port)
 *   create_task(listen_for_messages(reader))      ↔  readMessages(reader, screen) — started, not awaited
 *   await read_and_send(stdin_reader, writer)     ↔  sendLines(ui.lines, writer)
 *   MessageStore(deque) + redraw                  ↔  Screen.print (one write at the bottom of a scroll region)
 *
 * Run it:   bun scripts/05-chat-server.ts          (one terminal)
 *           bun scripts/06-chat-client.ts          (two more terminals; pick two names and chat)
 *           With no server at 127.0.0.1:8000 and no --host/--port given — or with --serve — the client runs
 *           lesson 05's server inside itself and shows the command for others to join
 *           (bun scripts/06-chat-client.ts --host 127.0.0.1 --port N). When that client leaves, its server
 *           stops, and the others are told why: `* server stopping: ann's client (which was hosting it) quit`.
 * Flags:    --host 127.0.0.1  --port 8000  --name ann  --serve   (defaults are lesson 05's)
 *
 * Builds on: lesson 05 (the protocol, its defaults and NAME_PATTERN), lesson 03 (lib/terminal-ui,
 * lib/screen), lesson 02 (lib/streams).
 */
import { cancel, intro, isCancel, log, text } from "@clack/prompts";
import { parseCommandLine, parseFlags } from "../lib/args.ts";
import { EXIT_INTERRUPTED, NotATerminalError, SIGNAL_EXIT_CODES } from "../lib/cbreak.ts";
import { showControls } from "../lib/sanitize.ts";
import type { Message, Screen } from "../lib/screen.ts";
import {
  ConnectionLostError,
  DEFAULT_LIMIT,
  IncompleteReadError,
  LimitOverrunError,
  openConnection,
  type StreamReader,
  type StreamWriter,
} from "../lib/streams.ts";
import { openTerminalUi, type SubmittedLines, type TerminalUi } from "../lib/terminal-ui.ts";
import {
  type ChatServer,
  NAME_PATTERN,
  ROOM_FLAGS,
  roomOptionsFromFlags,
  FLAGS as SERVER_FLAGS,
  startChatServer,
} from "./05-chat-server.ts";

// Lesson 05 is the server this client talks to: its defaults are ours.
export const FLAGS = {
  host: { kind: "string", default: SERVER_FLAGS.host.default, value: "HOST", help: "chat server address" },
  port: {
    kind: "int",
    default: SERVER_FLAGS.port.default,
    min: 0,
    max: 65535,
    value: "PORT",
    help: "chat server port; with --serve, 0 picks a free one",
  },
  name: { kind: "string", value: "NAME", help: "your name (asked for when not given)" },
  serve: {
    kind: "boolean",
    help: "run lesson 05's server inside this client on --host/--port, and join it",
  },
} as const;

/** How long /quit waits for the server to close the connection: 1 s. */
const QUIT_GRACE_MS = 1000;
/** How long the server may take to answer CONNECT: 10 s (lesson 05 answers at once). */
export const JOIN_REPLY_TIMEOUT_MS = 10_000;
/** What is quoted of a reply that is neither `OK` nor `ERR`: its first 60 characters. */
const QUOTED_REPLY_CHARS = 60;
/**
 * Longest server line shown whole: 64 KiB (the reader's limit). A longer one (a `/who` of thousands of
 * users) is shown cut to its first {@link CUT_LINE_SHOWN_BYTES}, with a note saying how long it was.
 */
export const MAX_SERVER_LINE_BYTES = DEFAULT_LIMIT;
/** What is shown of a line over the limit: its first 1 KiB (a dozen rows on an 80-column screen). */
export const CUT_LINE_SHOWN_BYTES = 1024;
const utf8 = new TextDecoder();
/** What a server line ends with, as bytes: `readUntil` serves a byte separator straight from its buffer. */
const NEWLINE = new Uint8Array([0x0a]);

// ── Step 1: what a line from the server looks like on screen ──────────────────────────────────────────

/** `14:05` — short, local time. */
export function timestamp(date = new Date()): string {
  return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
}

/**
 * A server line as a styled message: notices (`* …`) dim yellow, errors red, your own messages with your
 * name in bold green, others' names in cyan. The screen neutralises any control characters in the text.
 */
export function styleLine(line: string, ownName: string, time = timestamp()): Message {
  const stamp = { text: `${time} `, style: { dim: true } };
  if (line.startsWith("* ")) return [stamp, { text: line, style: { color: "yellow" as const, dim: true } }];
  if (line.startsWith("ERR ")) return [stamp, { text: line, style: { color: "red" as const } }];
  const colon = line.indexOf(": ");
  if (colon > 0 && NAME_PATTERN.test(line.slice(0, colon))) {
    const name = line.slice(0, colon);
    const mine = name.toLowerCase() === ownName.toLowerCase();
    return [
      stamp,
      { text: name, style: mine ? { color: "green" as const, bold: true } : { color: "cyan" as const } },
      { text: line.slice(colon) },
    ];
  }
  return [stamp, { text: line }];
}

// ── Step 2: joining — ask for a name, connect, CONNECT until the server says OK ───────────────────────

export interface Connection {
  reader: StreamReader;
  writer: StreamWriter;
}

/**
 * Reads one line from the server, without its newline; null at EOF. A line longer than
 * {@link MAX_SERVER_LINE_BYTES} comes back cut, with a note; the rest of it is read and dropped as it
 * arrives, so memory stays bounded and the next read starts at the next line.
 */
export async function readServerLine(reader: StreamReader): Promise<string | null> {
  let bytes: Uint8Array;
  try {
    bytes = await reader.readUntil(NEWLINE);
  } catch (error) {
    if (error instanceof IncompleteReadError)
      bytes = error.partial; // EOF: a last line with no newline
    else if (error instanceof LimitOverrunError) return readCutLine(reader);
    else throw error;
  }
  if (bytes.length === 0) return null;
  return utf8.decode(bytes).replace(/\r?\n$/, "");
}

/** The start of an over-long line (still buffered) plus a note; the rest of the line is skipped. */
async function readCutLine(reader: StreamReader): Promise<string> {
  const start = await reader.read(CUT_LINE_SHOWN_BYTES);
  let skipped: number;
  try {
    skipped = (await reader.readLine()).length; // readLine skips a line over the limit by itself
  } catch (error) {
    if (!(error instanceof LimitOverrunError)) throw error;
    skipped = error.consumed;
  }
  const total = start.length + skipped;
  // `stream: true` leaves out a character cut in half at the end.
  const shown = new TextDecoder().decode(start, { stream: true });
  return `${shown}… [line cut: ${total.toLocaleString("en")} bytes, over this client's ${MAX_SERVER_LINE_BYTES / 1024} KiB limit]`;
}

/** The server's name rule, checked before sending (the server checks again). */
export function validateName(name: string | undefined): string | undefined {
  if (!name) return "Please type a name.";
  if (!NAME_PATTERN.test(name)) return "1–32 letters, digits, _ or - (no spaces).";
  return undefined;
}

/**
 * Runs `work` (the name prompt) so that a signal cannot leave the terminal raw: @clack/prompts switches it
 * to raw mode while it asks and installs no signal handlers, so SIGTERM or SIGHUP (a closed terminal
 * window) would end the process with the terminal still raw and the cursor hidden. Here they put both back
 * and exit 143 or 129 (and a `kill -INT`, 130). Ctrl+C typed at the prompt is a key, which clack reports
 * as a cancel.
 */
async function exitCleanlyOnSignals<T>(work: () => Promise<T>): Promise<T> {
  const handlers = Object.entries(SIGNAL_EXIT_CODES).map(([signal, code]) => {
    const handler = () => {
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdout.write("\x1b[?25h\n"); // the cursor back, and a fresh line after the prompt
      process.exit(code);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  try {
    return await work();
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

/**
 * The server's answer to CONNECT, or null if it closed the connection first. Throws if it stays silent for
 * {@link JOIN_REPLY_TIMEOUT_MS}: a peer that accepts connections but never speaks must not hang us.
 */
export async function replyToConnect(
  connection: Connection,
  target: Target,
  timeoutMs = JOIN_REPLY_TIMEOUT_MS,
): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silence = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const seconds = timeoutMs / 1000;
      reject(new Error(`${target.host}:${target.port} did not answer CONNECT within ${seconds} s`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([readServerLine(connection.reader).catch(() => null), silence]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The name prompt (@clack/prompts' `text`), or the exit code when the user leaves instead: 130 for Ctrl+C
 * (as if SIGINT had ended us), 0 for Esc or Ctrl+D — leaving normally, as Ctrl+D does in the chat. Clack
 * reports Ctrl+C and Esc alike as a cancel and ignores Ctrl+D, so the keys are watched beside it (clack
 * has the terminal emit `keypress` events on stdin).
 */
async function askName(): Promise<string | number> {
  let leaving = EXIT_INTERRUPTED;
  const abort = new AbortController();
  const onKeypress = (_: string, key: { name?: string; ctrl?: boolean } | undefined) => {
    if (key?.name === "escape") leaving = 0;
    if (key?.ctrl && key.name === "d") {
      leaving = 0;
      abort.abort();
    }
  };
  process.stdin.on("keypress", onKeypress);
  try {
    const answer = await text({
      message: "Your name?",
      placeholder: "ann",
      validate: validateName,
      signal: abort.signal,
    });
    return isCancel(answer) ? leaving : answer;
  } finally {
    process.stdin.off("keypress", onKeypress);
  }
}

/**
 * The name to join as: --name if the server's rule allows it, else the prompt's answer — or the exit code
 * if the user left at the prompt.
 */
async function nameToJoinAs(givenName: string | undefined): Promise<string | number> {
  if (givenName !== undefined && !validateName(givenName)) return givenName;
  if (givenName !== undefined) log.warn(`${JSON.stringify(givenName)}: ${validateName(givenName)}`);
  return askName();
}

/**
 * Registers `name` on the connection. Returns the name and the welcome line, or the exit code if the
 * user left at the prompt (asked again after an `ERR`). Reconnects once if the server closed the
 * connection while the user was thinking of another name; a server that closes a fresh connection
 * without answering is an error, and so is one that answers with anything but `OK …` or `ERR …` (lesson
 * 04's echo server on the same port, a web server): it is not a chat server, and asking for another name
 * would not help. What the server says is shown neutralised (lib/sanitize): an `ERR` full of escape
 * sequences cannot retitle or clear the terminal.
 */
async function join(
  target: Target,
  first: Connection,
  firstName: string,
): Promise<{ name: string; welcome: string; connection: Connection } | { exitCode: number }> {
  let connection = first;
  let name = firstName;
  let fresh = true; // nobody waited on this connection yet: a close now is the server's doing
  for (;;) {
    if (connection.writer.isClosing()) {
      const [reader, writer] = await openConnection(target.host, target.port);
      connection = { reader, writer };
      fresh = true;
    }
    connection.writer.write(`CONNECT ${name}\n`);
    let reply: string | null;
    try {
      reply = await replyToConnect(connection, target);
    } catch (error) {
      connection.writer.abort();
      throw error;
    }
    if (reply?.startsWith("OK ")) return { name, welcome: reply.slice(3), connection };
    if (reply === null) {
      connection.writer.abort();
      if (fresh)
        throw new Error(`${target.host}:${target.port} closed the connection without answering CONNECT`);
      // The server closed while we were asking (its registration timeout): connect again and retry.
      fresh = true;
      continue;
    }
    if (!reply.startsWith("ERR ")) {
      connection.writer.abort();
      const quoted = reply.length > QUOTED_REPLY_CHARS ? `${reply.slice(0, QUOTED_REPLY_CHARS)}…` : reply;
      throw new Error(
        `${target.host}:${target.port} is not a chat server (lesson 05): it answered CONNECT with "${quoted}"`,
      );
    }
    log.error(`The server said: ${showControls(reply.slice("ERR ".length))}`);
    const answer = await askName();
    if (typeof answer === "number") return { exitCode: answer };
    name = answer;
    fresh = false;
  }
}

// ── Step 3: the chat — the socket task, the key loop, one screen ─────────────────────────────────────

/**
 * The socket task: every line from the server goes to the screen. Resolves with the last line at EOF.
 * Nothing the server sends can make it throw: a lost connection or any other failure is shown as a line.
 */
async function readMessages(reader: StreamReader, screen: Screen, ownName: string): Promise<string | null> {
  let last: string | null = null;
  try {
    for (let line = await readServerLine(reader); line !== null; line = await readServerLine(reader)) {
      screen.print(styleLine(line, ownName));
      last = line;
    }
  } catch (error) {
    const what = error instanceof ConnectionLostError ? "connection lost" : "cannot read from the server";
    screen.print([{ text: `${what}: ${(error as Error).message}`, style: { color: "red" } }]);
  }
  return last;
}

type Ending = { by: "user"; exitCode: number } | { by: "server"; lastLine: string | null };

/** The key loop: Enter sends the line. Resolves when the user leaves: /quit, Ctrl+D (0) or Ctrl+C (130). */
async function sendLines(lines: SubmittedLines, writer: StreamWriter): Promise<Ending> {
  for await (const submitted of lines) {
    const line = submitted.trim();
    if (!line) continue;
    if (line === "/quit") break;
    writer.write(`${line}\n`);
  }
  return { by: "user", exitCode: lines.exitCode };
}

/** What the others are told when this client, which runs the server, leaves. */
export function hostLeavingNotice(name: string, why: "quit" | "was disconnected"): string {
  return `* server stopping: ${name}'s client (which was hosting it) ${why}`;
}

/** Stops the server running in this client, telling everyone on it why first. */
async function stopHostedServer(server: ChatServer, notice: string): Promise<void> {
  server.room.publish(notice);
  await new Promise((resolve) => setImmediate(resolve)); // broadcasts leave at the end of the turn
  await server.close();
}

async function chat(connection: Connection, name: string, welcome: string, hosted?: ChatServer) {
  let ui: TerminalUi;
  try {
    ui = openTerminalUi(`${name}> `);
  } catch (error) {
    if (!(error instanceof NotATerminalError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }
  const { screen } = ui;
  screen.print([
    { text: `${timestamp()} `, style: { dim: true } },
    { text: welcome, style: { bold: true } },
  ]);
  screen.print([
    {
      text: "Type and press Enter to send. /who lists users; /quit, Ctrl+C or Ctrl+D leaves.",
      style: { dim: true },
    },
  ]);
  if (hosted) {
    // Said before the screen started too, but the screen starts on a clean page: say it again here.
    screen.print([
      { text: `${joinCommand(hosted)} (the server stops when you leave)`, style: { dim: true } },
    ]);
  }

  const fromServer = readMessages(connection.reader, screen, name).then(
    (lastLine): Ending => ({ by: "server", lastLine }),
  );
  const ending: Ending = await Promise.race([fromServer, sendLines(ui.lines, connection.writer)]);
  if (hosted) {
    // The server lives in this process and ends with it — also when it disconnected us (idle, say):
    // tell the others why before it stops.
    await stopHostedServer(
      hosted,
      hostLeavingNotice(name, ending.by === "user" ? "quit" : "was disconnected"),
    );
  } else if (ending.by === "user") {
    // Tell the server, and give it a moment to see us off (it answers "* bye" and closes).
    connection.writer.write("/quit\n");
    await Promise.race([fromServer, Bun.sleep(QUIT_GRACE_MS)]);
  }
  ui.close();
  connection.writer.close();
  if (ending.by === "server") {
    // The server's last words reach the terminal after the screen has gone: neutralise them here too.
    const last = ending.lastLine === null ? "." : `: ${showControls(ending.lastLine)}`;
    console.log(`The server closed the connection${last}`);
    return 1;
  }
  return ending.exitCode;
}

// ── Step 4: the command line ──────────────────────────────────────────────────────────────────────────

export interface Target {
  host: string;
  port: number;
}

/**
 * Lesson 05's server with lesson 05's defaults, in this process, quiet. Throws lib/listen's ListenError
 * (one line that says why) when it cannot listen.
 */
function startServerHere(host: string, port: number): ChatServer {
  const defaults = roomOptionsFromFlags(parseFlags([], ROOM_FLAGS), () => {});
  return startChatServer({ host, port, ...defaults });
}

/** How others join a server running in this client. */
function joinCommand(server: ChatServer): string {
  return `Others can join with: bun scripts/06-chat-client.ts --host ${server.hostname} --port ${server.port}`;
}

/**
 * Connects to the server — first starting one in this process with --serve, or when no --host/--port was
 * given and nothing listens at the default address.
 */
async function connectOrStartServer(
  host: string,
  port: number,
  mode: "serve" | "connect" | "connect-or-serve",
): Promise<Connection & Target & { hosted?: ChatServer }> {
  if (mode !== "serve") {
    try {
      const [reader, writer] = await openConnection(host, port);
      return { reader, writer, host, port };
    } catch (error) {
      const refused = error instanceof ConnectionLostError && error.message.includes("ECONNREFUSED");
      if (mode === "connect" || !refused) throw error;
    }
  }
  const hosted = mode === "serve" ? startServerHere(host, port) : startServerHere("127.0.0.1", 0);
  const why = mode === "serve" ? "As asked (--serve)" : `No chat server at ${host}:${port}, so`;
  log.info(
    `${why} a chat server is running inside this client on ${hosted.hostname}:${hosted.port}.\n${joinCommand(hosted)}`,
  );
  const [reader, writer] = await openConnection(hosted.hostname, hosted.port);
  return { reader, writer, host: hosted.hostname, port: hosted.port, hosted };
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(
    argv,
    FLAGS,
    "bun scripts/06-chat-client.ts [--host HOST] [--port PORT] [--name NAME] [--serve]",
  );
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  if (flags.port === 0 && !flags.serve) {
    console.error("error: --port 0 picks a free port to serve on: it needs --serve (see --help)");
    return 2;
  }
  if (!process.stdin.isTTY) {
    console.error("error: this chat client reads keys from a terminal, but stdin is not one (is it piped?)");
    return 2;
  }
  const explicit = argv.some((arg) => arg.startsWith("--host") || arg.startsWith("--port"));
  intro("Chat — lesson 06");
  // The name first: the prompt needs no server (see the header).
  const name = await exitCleanlyOnSignals(() => nameToJoinAs(flags.name));
  if (typeof name === "number") {
    cancel("No name, no chat. Bye!");
    return name; // 130 after Ctrl+C at the prompt; 0 after Esc or Ctrl+D
  }
  let first: Awaited<ReturnType<typeof connectOrStartServer>>;
  try {
    first = await connectOrStartServer(
      flags.host,
      flags.port,
      flags.serve ? "serve" : explicit ? "connect" : "connect-or-serve",
    );
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  let joined: Awaited<ReturnType<typeof join>>;
  try {
    joined = await exitCleanlyOnSignals(() => join(first, first, name));
  } catch (error) {
    console.error(`error: ${showControls((error as Error).message)}`);
    await first.hosted?.close();
    return 1;
  }
  if ("exitCode" in joined) {
    cancel("No name, no chat. Bye!");
    first.writer.close();
    await first.hosted?.close();
    return joined.exitCode;
  }
  return chat(joined.connection, joined.name, joined.welcome, first.hosted);
}

if (import.meta.main) process.exit(await main());

/* A real session in a 72×12 terminal. First the name prompt:

┌  Chat — lesson 06
│
◆  Your name?
│  ann
└

then ann's screen after bob joined, both talked, ann asked /who, bob left, and ann is halfway through a line:

18:15 welcome ann, 1 user online
Type and press Enter to send. /who lists users; /quit, Ctrl+C or Ctrl+D
leaves.
18:15 * bob joined
18:15 bob: hi ann! 日本から 👋
18:15 ann: hello bob, a long line to show how the screen wraps text that
 does not fit in one row
18:15 * online (2): ann, bob
18:15 * bob left

ann> half-typed█

And when the client that hosts the server leaves (ann ran `--serve`; bob joined and sees this as he is
dropped, exit code 1):

05:20 * server stopping: ann's client (which was hosting it) quit
05:20 * server shutting down

The server closed the connection: * server shutting down
*/
