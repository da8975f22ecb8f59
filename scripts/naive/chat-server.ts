/**
 * Naive counterpart of lesson 05 — a chat server with the book's five mistakes, on purpose
 *
 * It speaks lesson 05's protocol (`CONNECT ann` → `OK welcome ann, 1 user online`, `ann: hi`, `* ann
 * joined`, `* ann left`, `/who`, `/quit`), so the same client or attack works against both, and it is
 * written the way chapter 8 of *Python Concurrency with asyncio* writes its chat server: one coroutine per
 * client, a dict of name → writer, a broadcast loop. Five things go wrong, each marked `MISTAKE` below; lesson
 * 05 (scripts/05-chat-server.ts) fixes every one:
 *
 * 1. `command, name = line.split(" ")` — Python's unpacking wants exactly two parts. `CONNECT` alone, or
 *    `CONNECT  ann  x`, throws in the client's coroutine: the handler dies (lib/streams' startServer logs
 *    `client handler failed: …` and drops that connection, as asyncio logs an unhandled exception in
 *    `client_connected_cb`). The client gets no answer at all.
 * 2. `users[name] = writer` — a second `CONNECT ann` silently replaces the first ann, who stays connected
 *    but never hears the room again.
 * 3. At EOF the client's loop announces `* ann left` and ends — without removing ann. `/who` lists a ghost.
 * 4. `wait_for(readline(), idle)` — the idle timer runs only after CONNECT and only waits for one complete
 *    line. Before CONNECT there is no timer at all: a connection that trickles `CONNECT an…` a byte at a
 *    time, or says nothing, is kept for ever. After CONNECT, an idle user is removed without a word — not
 *    to the user, not to the others.
 * 5. The broadcast writes to each user and awaits that user's `drain()` before the next one. One user who
 *    stops reading fills its buffers, its `drain()` never returns, and the whole room stops: every sender's
 *    loop is stuck in the same broadcast.
 *
 * Break it: `bun scripts/naive/chat-server.ts --port 8001 --idle 3`, then in another terminal
 * `bun scripts/naive/break.ts ATTACK --port 8001 --idle 3` with ATTACK one of split-crash, duplicate-name,
 * eof-ghost, idle-trickle, idle-silent — and the same against lesson 05, started as
 * `bun scripts/05-chat-server.ts --idle 3 --flood-burst 100000` (port 8000; its flood control raised so
 * that slow-client's flood gets through to the user who stopped reading). slow-client keeps its users
 * silent for ~3 s, which an --idle of 3 cuts short (break.ts refuses it): start both servers with
 * `--idle 10` for that one, and run `bun scripts/naive/break.ts slow-client --port 8001 --idle 10`.
 *
 * It listens on 127.0.0.1 by default: a broken server should not be reachable from the network.
 */
import { parseCommandLine } from "../../lib/args.ts";
import {
  ConnectionLostError,
  ListenError,
  type StreamReader,
  type StreamWriter,
  startServer,
} from "../../lib/streams.ts";

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
  idle: {
    kind: "number",
    default: 60,
    above: 0,
    max: 86_400,
    value: "SECONDS",
    help: "seconds to wait for a user's next line (after CONNECT only)",
  },
} as const;

const utf8 = new TextDecoder();
/** Name → writer: the whole room. */
const users = new Map<string, StreamWriter>();
let idleSeconds: number = FLAGS.idle.default;

/** Python's `a, b = parts`: exactly two values, or it throws what Python raises (a ValueError). */
function unpackTwo(parts: string[]): [string, string] {
  if (parts.length > 2) throw new Error("too many values to unpack (expected 2)");
  if (parts.length < 2) throw new Error(`not enough values to unpack (expected 2, got ${parts.length})`);
  return [parts[0]!, parts[1]!];
}

/** `asyncio.wait_for(reader.readline(), seconds)`: one complete line within the time, or it throws. */
function readLineWithin(reader: StreamReader, seconds: number): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no line for ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([reader.readLine(), timeout]).finally(() => clearTimeout(timer));
}

async function clientConnected(reader: StreamReader, writer: StreamWriter) {
  const line = utf8.decode(await reader.readLine()); // MISTAKE 4: no timer before CONNECT
  const [command, name] = unpackTwo(line.split(" ")); // MISTAKE 1: throws on `CONNECT` or extra spaces
  if (command !== "CONNECT") {
    writer.write("ERR send CONNECT <name> first\n");
    writer.close();
    return;
  }
  const username = name.replace("\n", "");
  users.set(username, writer); // MISTAKE 2: a second `CONNECT ann` replaces the first ann
  writer.write(`OK welcome ${username}, ${users.size} user${users.size === 1 ? "" : "s"} online\n`);
  await writer.drain();
  await notifyAll(`* ${username} joined`);
  await listenForMessages(username, reader);
}

async function listenForMessages(username: string, reader: StreamReader) {
  try {
    for (;;) {
      const data = await readLineWithin(reader, idleSeconds); // MISTAKE 4: only complete lines count
      if (data.length === 0) break;
      const text = utf8.decode(data).replace("\n", "");
      if (text === "/who") await who(username);
      else if (text === "/quit") return await quit(username);
      else await notifyAll(`${username}: ${text}`);
    }
    await notifyAll(`* ${username} left`); // MISTAKE 3: announced, but `username` stays in `users`
  } catch (error) {
    // The idle timeout lands here too. MISTAKE 4: removed without telling anyone.
    console.error(`error reading from ${username}: ${(error as Error).message}`);
    removeUser(username);
  }
}

async function who(username: string) {
  const writer = users.get(username);
  if (!writer) return;
  const names = [...users.keys()].sort();
  writer.write(`* online (${names.length}): ${names.join(", ")}\n`);
  await writer.drain();
}

async function quit(username: string) {
  users.get(username)?.write("* bye\n");
  removeUser(username);
  await notifyAll(`* ${username} left`);
}

function removeUser(username: string) {
  const writer = users.get(username);
  users.delete(username);
  writer?.close();
}

/** Sends `message` to every user, one after the other. */
async function notifyAll(message: string) {
  const inactive: string[] = [];
  for (const [username, writer] of users) {
    try {
      writer.write(`${message}\n`);
      await writer.drain(); // MISTAKE 5: one user who stops reading stops this loop, and the room
    } catch (error) {
      if (!(error instanceof ConnectionLostError)) throw error;
      inactive.push(username);
    }
  }
  for (const username of inactive) removeUser(username);
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/naive/chat-server.ts [--port P] [--idle S]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { host, port, idle } = parsed.flags;
  idleSeconds = idle;
  try {
    const server = await startServer(clientConnected, { host, port });
    console.log(`listening on ${server.hostname}:${server.port}`);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
  await new Promise(() => {}); // serve until killed (Ctrl+C)
  return 0;
}

if (import.meta.main) process.exit(await main());

/* A real run, while scripts/naive/break.ts ran its split-crash and idle-silent attacks on it — the two
   crashes are the exceptions that killed those clients' coroutines; the idle user went without a word:

$ bun scripts/naive/chat-server.ts --port 18512 --idle 3
listening on 127.0.0.1:18512
client handler failed: not enough values to unpack (expected 2, got 1)
client handler failed: too many values to unpack (expected 2)
error reading from ann: no line for 3 s
error reading from bob: connection lost: ECONNRESET: connection reset by peer, read
*/
