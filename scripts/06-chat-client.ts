/**
 * Lesson 06 — A terminal chat client: a name prompt, messages rolling above, the input line pinned below
 *
 * What it teaches: three pieces from the earlier lessons cooperating in one event loop, none waiting for
 * another:
 *   - one task reads the socket (lib/streams: `await reader.readLine()`) and prints each line it gets;
 *   - one task reads keys (lib/cbreak: `for await (const key of keys)`) and edits the input line;
 *   - the screen (lib/screen) is the only one that writes to the terminal: printing a message and
 *     redrawing the input line are both requests to it, and it sends them together once per turn.
 * So a message that arrives while you type lands above your half-typed line, which stays as it was.
 *
 * Before the screen starts, @clack/prompts asks for your name (checked against the server's rules); if the
 * server answers `ERR name taken` (or invalid, or full), it says why and asks again.
 *
 * The book's client set cbreak mode and never restored it, and redrew all messages on every new one. Here
 * /quit, Ctrl+C, Ctrl+D, the server closing on us, SIGTERM — every way out restores the terminal.
 *
 *   asyncio (book)                                   here
 *   asyncio.open_connection(host, port)           ↔  openConnection(host, port)
 *   create_task(listen_for_messages(reader))      ↔  readMessages(reader, screen) — started, not awaited
 *   await read_and_send(stdin_reader, writer)     ↔  the key loop below
 *   MessageStore(deque) + redraw                  ↔  Screen.print (one write at the bottom of a scroll region)
 *
 * Run it:   bun scripts/05-chat-server.ts          (one terminal)
 *           bun scripts/06-chat-client.ts          (two more terminals; pick two names and chat)
 *           With no server running at 127.0.0.1:8000 and no --port given, the client starts one itself and
 *           says on which port, so that a second client can join: bun scripts/06-chat-client.ts --port N
 * Flags:    --host 127.0.0.1  --port 8000  --name ann
 *
 * Builds on: lesson 05 (the protocol), lesson 03 (lib/cbreak, lib/screen), lesson 02 (lib/streams).
 */
import { cancel, intro, isCancel, log, text } from "@clack/prompts";
import { parseCommandLine } from "../lib/args.ts";
import { type Key, NotATerminalError } from "../lib/cbreak.ts";
import { applyKey, type EditorState } from "../lib/line-editor.ts";
import type { Message, Screen } from "../lib/screen.ts";
import { ConnectionLostError, openConnection, type StreamReader, type StreamWriter } from "../lib/streams.ts";
import { openTerminalUi, type TerminalUi } from "../lib/terminal-ui.ts";
import { NAME_PATTERN, startChatServer } from "./05-chat-server.ts";

const DEFAULT_PORT = 8000;
export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "chat server address" },
  port: { kind: "int", default: DEFAULT_PORT, min: 1, max: 65535, help: "chat server port" },
  name: { kind: "string", help: "your name (asked for when not given)" },
} as const;

/** How long /quit waits for the server to close the connection: 1 s. */
const QUIT_GRACE_MS = 1000;
const utf8 = new TextDecoder();

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

// ── Step 2: joining — connect, ask for a name, CONNECT until the server says OK ───────────────────────

interface Connection {
  reader: StreamReader;
  writer: StreamWriter;
}

/** Reads one line from the server, without its newline; null at EOF. */
async function readServerLine(reader: StreamReader): Promise<string | null> {
  const bytes = await reader.readLine();
  if (bytes.length === 0) return null;
  return utf8.decode(bytes).replace(/\r?\n$/, "");
}

/** The server's name rule, checked before sending (the server checks again). */
export function validateName(name: string | undefined): string | undefined {
  if (!name) return "Please type a name.";
  if (!NAME_PATTERN.test(name)) return "1–32 letters, digits, _ or - (no spaces).";
  return undefined;
}

/**
 * Asks for a name (or takes --name) and registers it. Returns the name and the welcome line, or null if the
 * user cancelled. Reconnects if the server closed the connection while the user was thinking.
 */
async function join(target: Target, first: Connection, givenName: string | undefined) {
  let connection = first;
  let name = givenName;
  for (;;) {
    if (name === undefined || validateName(name)) {
      if (name !== undefined) log.warn(`${JSON.stringify(name)}: ${validateName(name)}`);
      const answer = await text({ message: "Your name?", placeholder: "ann", validate: validateName });
      if (isCancel(answer)) return null;
      name = answer;
    }
    if (connection.writer.isClosing()) {
      const [reader, writer] = await openConnection(target.host, target.port);
      connection = { reader, writer };
    }
    connection.writer.write(`CONNECT ${name}\n`);
    const reply = await readServerLine(connection.reader).catch(() => null);
    if (reply?.startsWith("OK ")) return { name, welcome: reply.slice(3), connection };
    if (reply === null) {
      // The server closed while we were asking (its registration timeout): connect again and retry.
      connection.writer.abort();
      continue;
    }
    log.error(`The server said: ${reply.replace(/^ERR /, "")}`);
    name = undefined;
  }
}

// ── Step 3: the chat — the socket task, the key loop, one screen ─────────────────────────────────────

/** The socket task: every line from the server goes to the screen. Resolves with the last line at EOF. */
async function readMessages(reader: StreamReader, screen: Screen, ownName: string): Promise<string | null> {
  let last: string | null = null;
  try {
    for (let line = await readServerLine(reader); line !== null; line = await readServerLine(reader)) {
      screen.print(styleLine(line, ownName));
      last = line;
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
    screen.print([{ text: `connection lost: ${error.message}`, style: { color: "red" } }]);
  }
  return last;
}

type Ending = { by: "user"; exitCode: number } | { by: "server"; lastLine: string | null };

/** The key loop: edit the input line; Enter sends it. Resolves when the user leaves. */
async function readKeys(keys: AsyncIterable<Key>, screen: Screen, writer: StreamWriter) {
  let input: EditorState = { text: "", cursor: 0 };
  for await (const key of keys) {
    const result = applyKey(input, key);
    input = result.state;
    screen.setInput(input);
    if (result.interrupted || result.endOfInput) return { by: "user", exitCode: 0 } as const;
    const line = result.submitted?.trim();
    if (!line) continue;
    if (line === "/quit") return { by: "user", exitCode: 0 } as const;
    writer.write(`${line}\n`);
  }
  return { by: "user", exitCode: 0 } as const;
}

async function chat(connection: Connection, name: string, welcome: string): Promise<number> {
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

  const fromServer = readMessages(connection.reader, screen, name).then(
    (lastLine): Ending => ({ by: "server", lastLine }),
  );
  const fromUser = readKeys(ui.keys, screen, connection.writer);
  const ending: Ending = await Promise.race([fromServer, fromUser]);
  if (ending.by === "user") {
    // Tell the server, and give it a moment to see us off (it answers "* bye" and closes).
    connection.writer.write("/quit\n");
    await Promise.race([fromServer, Bun.sleep(QUIT_GRACE_MS)]);
  }
  ui.close();
  connection.writer.close();
  if (ending.by === "server") {
    console.log(`The server closed the connection${ending.lastLine ? `: ${ending.lastLine}` : "."}`);
    return 1;
  }
  return ending.exitCode;
}

// ── Step 4: the command line ──────────────────────────────────────────────────────────────────────────

interface Target {
  host: string;
  port: number;
}

/** Connects; with no --host/--port given and nothing listening, starts lesson 05's server in this process. */
async function connectOrStartServer(
  host: string,
  port: number,
  explicit: boolean,
): Promise<Connection & Target> {
  try {
    const [reader, writer] = await openConnection(host, port);
    return { reader, writer, host, port };
  } catch (error) {
    if (explicit || !(error instanceof ConnectionLostError) || !error.message.includes("ECONNREFUSED"))
      throw error;
  }
  const server = startChatServer({
    host: "127.0.0.1",
    port: 0,
    idleSeconds: 600,
    maxLineBytes: 4096,
    sendQueueBytes: 256 * 1024,
    floodBurst: 10,
    floodRate: 5,
    maxUsers: 100,
    log: () => {},
  });
  log.info(
    `No chat server at ${host}:${port}, so one is running inside this client on 127.0.0.1:${server.port}.\n` +
      `Others can join with: bun scripts/06-chat-client.ts --port ${server.port}`,
  );
  const [reader, writer] = await openConnection("127.0.0.1", server.port);
  return { reader, writer, host: "127.0.0.1", port: server.port };
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/06-chat-client.ts [flags]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  if (!process.stdin.isTTY) {
    console.error("error: this chat client reads keys from a terminal, but stdin is not one (is it piped?)");
    return 2;
  }
  const explicit = argv.some((arg) => arg.startsWith("--host") || arg.startsWith("--port"));
  intro("Chat — lesson 06");
  let first: Connection & Target;
  try {
    first = await connectOrStartServer(flags.host, flags.port, explicit);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  let joined: Awaited<ReturnType<typeof join>>;
  try {
    joined = await join(first, first, flags.name);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  if (!joined) {
    cancel("No name, no chat. Bye!");
    first.writer.close();
    return 130;
  }
  const exitCode = await chat(joined.connection, joined.name, joined.welcome);
  return exitCode;
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
*/
