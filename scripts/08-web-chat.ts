/**
 * Lesson 08 — The room in a browser: HTTP, an upgrade to WebSocket, and lesson 05's room behind both
 *
 * What it teaches: how a browser joins a server you wrote. A browser cannot open a TCP connection; it
 * speaks HTTP, and one HTTP/1.1 request can *upgrade* its connection into a WebSocket (RFC 6455): a framed,
 * masked, two-way stream of messages. This server reads HTTP request heads itself (lesson 02's
 * `readUntil`, capped at 8 KiB), serves the page, and turns `GET /chat` into a seat in lesson 05's room —
 * the same room `nc` users reach on the line protocol. One process, one room, two doors:
 *
 *   browser ── GET / ──────────────► the page (index.html, chat.css, chat.js, favicon.svg in scripts/08-web-chat/)
 *   browser ── GET /chat, Upgrade ─► 101 Switching Protocols, then one text message = one protocol line
 *   nc ──────── TCP :8000 ─────────► lesson 05's line protocol                       ─┐
 *   browser ─── WebSocket /chat ───► the same room: CONNECT, lines, /who, /quit ─────┴─ one ChatRoom
 *
 * On the wire into the room, one text message is one line (`CONNECT ann`, `hello`, `/who`), and every line
 * the room sends is one text message. A message holding CR or LF gets an `ERR`: to a TCP user it would be
 * two lines. A binary message gets an `ERR` too: the room's lines are text. Every rule and limit of lesson
 * 05 — names, flood control, `--idle`, `--max-line` (over it: the room's `ERR line too long`), `--sendq`
 * (a browser tab that stops reading is cut like any user), `--max-users` — applies to WebSocket users
 * exactly as to TCP users, because they are the room's users like any other: each is a `ChatConnection`
 * whose `framing` is WebSocket text frames and whose last word (`beforeClose`) is a Close frame.
 *
 * Speed: a server's frames are never masked (RFC 6455 §5.1), so one encoded batch of frames is right for
 * every WebSocket user at once. The room encodes each batch once per framing — once as `\n`-terminated
 * lines for the TCP users, once as WebSocket frames (lib/websocket/frames.ts `encodeTextFrames`) for the
 * browsers — and every user's writer queues those same bytes (`writeShared`). Measured (`bun run bench
 * websocket`, 500 users × 5 messages, side by side on two shared cores): 1.45–1.9× the deliveries/s of
 * Bun's own WebSocket server (uWebSockets, C++, `server.publish`) and 46–62× the `ws` package with one
 * `send()` per recipient. One message at a time is closer: /echo makes 0.85–0.92× the round trips/s of
 * Bun's echo (8–9.4 µs of server CPU per round trip against uWebSockets' 6.6–7.1 µs), because a message
 * that arrives whole is read with a single `await` (lib/websocket/connection.ts says how); the rest is the
 * price of parsing frames in JavaScript, behind promises.
 *
 * The page is lesson 06 in a browser: a name prompt, messages rolling above, the input pinned below;
 * a taken name is explained and asked again; a dropped connection is reconnected with a capped backoff,
 * joining again under the same name. Everything the server sends is put in the page as text, never as HTML,
 * and the page is served with a Content-Security-Policy that allows only its own script and style sheet:
 * `<img src=x onerror=alert(1)>` from an `nc` user shows up as exactly that text.
 *
 * Who may connect: a browser sends `Origin` with every WebSocket handshake, and a page on any other site
 * could open one to this server with the user's cookies (cross-site WebSocket hijacking). So a handshake
 * whose `Origin` is not this server's own page (nor one given with `--allow-origin`) gets 403. A client
 * that sends no `Origin` is not a browser, and is let in.
 *
 *   Python (asyncio has no WebSocket: `pip install websockets`)   here
 *   websockets.serve(handler, host, port)                         startServer(serveHttp) + checkUpgrade(head)
 *   async for message in websocket:                               await connection.readMessage() (null at Close)
 *   await websocket.send(text)                                    connection.sendText(text) (queued; drain() brakes)
 *   websockets.broadcast(clients, text)                           the room's batch: encodeTextFrames once, writeShared
 *   await websocket.close(1001)                                   connection.close(CloseCode.GOING_AWAY)
 *   process_request hook (plain HTTP), origins=[…]                 serveHttp's routes, --allow-origin
 *   max_size=2**20                                                --max-line on /chat, 16 MiB on /echo
 *
 * Run it:    bun scripts/08-web-chat.ts [--port 8080] [--tcp-port 8000] [--help for every limit]
 * Poke it:   open http://127.0.0.1:8080 in two browser tabs, pick two names, chat; in a terminal,
 *            `nc 127.0.0.1 8000`, type `CONNECT carl`, and you are in the same room (lesson 06's client
 *            works too: `bun scripts/06-chat-client.ts`). `curl -i http://127.0.0.1:8080/chat` shows the
 *            426 a plain request gets; `curl -i -H 'Origin: http://evil.example' -H 'Upgrade: websocket'
 *            -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key:
 *            dGhlIHNhbXBsZSBub25jZQ==' http://127.0.0.1:8080/chat` the 403 a cross-site page gets.
 * Break it:  stop the server (Ctrl+C) and start it again: every tab says so, and joins again by itself.
 *            From `nc`, send `<img src=x onerror=alert(1)>`: the tabs show it as text. Start with
 *            `--idle 10` and wait: the tab is told, gets a Close frame, and asks for the name again.
 * Cluster:   `--redis redis://HOST:PORT` makes this process a lesson 07 node (names and bus in Redis):
 *            its browsers and the `nc` users of every lesson 07 node are one room.
 *
 * Builds on: lesson 05 (its room, rules and flags, unchanged: `startChatServer`), lesson 07 (`startNode`,
 * with --redis), lesson 02 (an HTTP head read with `readUntil`: lib/http-request-head.ts), lesson 04
 * (lib/streams' `startServer`: one async function per HTTP connection). New: lib/websocket/ (the
 * handshake §4, frames §5, UTF-8 checked as it arrives, the Close codes §7.4, WebSocketConnection).
 */
import { readFileSync } from "node:fs";
import { parseCommandLine } from "../lib/args.ts";
import { Deadline } from "../lib/deadline.ts";
import {
  MAX_REQUEST_HEAD_BYTES,
  type RequestHead,
  RequestHeadError,
  readRequestHead,
} from "../lib/http-request-head.ts";
import { lingeringClose } from "../lib/lingering-close.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import {
  ConnectionLostError,
  closeAll,
  ListenError,
  type StreamReader,
  type StreamServer,
  type StreamWriter,
  startServer,
  WRITE_HIGH_WATER,
} from "../lib/streams.ts";
import { CloseCode } from "../lib/websocket/close.ts";
import { WebSocketConnection } from "../lib/websocket/connection.ts";
import { encodeTextFrame, encodeTextFrames, textFrameStarts } from "../lib/websocket/frames.ts";
import { checkUpgrade, normalizeOrigin, refusalResponse } from "../lib/websocket/handshake.ts";
import {
  type ChatConnection,
  type ChatMember,
  type ChatRoom,
  type Departure,
  type LineFraming,
  ROOM_FLAGS,
  type RoomOptions,
  roomOptionsFromFlags,
  startChatServer,
} from "./05-chat-server.ts";
import { FLAGS as CLUSTER_FLAGS, startNode } from "./07-chat-cluster.ts";

// ── Step 1: the flags — two doors, lesson 05's limits, and lesson 07's for --redis ───────────────────

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on (both doors)" },
  port: {
    kind: "int",
    default: 8080,
    min: 0,
    max: 65535,
    help: "HTTP port: the page, /chat, /echo; 0 picks a free one",
  },
  "tcp-port": {
    kind: "int",
    default: 8000,
    min: 0,
    max: 65535,
    help: "port of lesson 05's line protocol into the same room; 0 picks a free one",
  },
  "allow-origin": {
    kind: "list",
    value: "URL",
    help: "another origin whose pages may open /chat and /echo, e.g. http://localhost:5173",
  },
  redis: {
    kind: "string",
    value: "URL",
    help: "redis://HOST:PORT: be a lesson 07 cluster node on it (names and bus in Redis)",
  },
  prefix: { ...CLUSTER_FLAGS.prefix, help: `with --redis: ${CLUSTER_FLAGS.prefix.help}` },
  "node-timeout": {
    ...CLUSTER_FLAGS["node-timeout"],
    help: `with --redis: ${CLUSTER_FLAGS["node-timeout"].help}`,
  },
  history: { ...CLUSTER_FLAGS.history, help: `with --redis: ${CLUSTER_FLAGS.history.help}` },
  ...ROOM_FLAGS,
  quiet: { kind: "boolean", help: "do not log joins and departures" },
} as const;

const USAGE =
  "bun scripts/08-web-chat.ts [--port 8080] [--tcp-port 8000] [--redis redis://HOST:PORT] [flags]";

/** A request head may be at most 8 KiB (request line and fields); past it, 431. */
export const MAX_HEAD_BYTES = MAX_REQUEST_HEAD_BYTES;
/**
 * How long a request head may take to arrive, and how long a kept-alive connection may sit between two
 * requests: 10 s. Without it, a client that opens connections and sends nothing (or one byte a minute)
 * holds them for ever.
 */
export const HEAD_TIMEOUT_MS = 10_000;
/** Largest message on /echo: 16 MiB (the largest the Autobahn test suite sends). */
export const ECHO_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How long a connection we close may take to read what is queued (and close its half): 2 s, as the room. */
const CLOSE_GRACE_MS = 2000;
/**
 * After a response that ends the connection (a 404, a 431, a refused handshake), how long the client may
 * go on sending while we drop its bytes before we cut it: 1 s. Closing at once with its bytes unread would
 * make the kernel reset the connection, and the reset can destroy our answer before it is read.
 */
const LINGER_MS = 1000;

// ── Step 2: the page — three plain files, read once at start ──────────────────────────────────────────

const PAGE_DIR = `${import.meta.dir}/08-web-chat`;

/**
 * The page may run only its own script and style sheet, and talk only to its own server: no inline
 * script or `style=`, nothing from another origin, no `<base>`, not framed by another site. Even if some
 * text did end up parsed as HTML, it could run nothing.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  type: string;
  body: Uint8Array;
}

/** The page's files by path. Read at start: a learner can open and change them, then restart. */
function loadPage(): Map<string, Asset> {
  const file = (name: string, type: string): Asset => ({ type, body: readFileSync(`${PAGE_DIR}/${name}`) });
  return new Map([
    ["/", file("index.html", "text/html; charset=utf-8")],
    ["/chat.css", file("chat.css", "text/css; charset=utf-8")],
    ["/chat.js", file("chat.js", "text/javascript; charset=utf-8")],
    ["/favicon.svg", file("favicon.svg", "image/svg+xml")],
  ]);
}

// ── Step 3: HTTP/1.1 — read a head, answer it, keep the connection for the next ──────────────────────

type Log = (line: string) => void;

/** What every HTTP connection shares. */
interface Site {
  page: Map<string, Asset>;
  room: ChatRoom;
  allowedOrigins: string[];
  /** Open connections still speaking HTTP (closed at shutdown); upgraded ones leave it. */
  httpWriters: Set<StreamWriter>;
  /** /echo connections (told 1001 at shutdown). */
  echoes: Set<WebSocketConnection>;
  log: Log;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  505: "HTTP Version Not Supported",
};

/** Writes one response; `body` is left out for HEAD. */
function respond(
  writer: StreamWriter,
  status: number,
  headers: Record<string, string>,
  body: Uint8Array | string,
  options: { keepAlive: boolean; head?: boolean },
): void {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n`;
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`;
  text += `Content-Length: ${bytes.length}\r\nConnection: ${options.keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
  writer.write(text);
  if (!options.head) writer.write(bytes);
}

/** A one-line plain-text error response. */
function respondError(
  writer: StreamWriter,
  status: number,
  reason: string,
  extra: Record<string, string> = {},
) {
  respond(writer, status, { "Content-Type": "text/plain; charset=utf-8", ...extra }, `${reason}\n`, {
    keepAlive: false,
  });
}

/**
 * Whether the connection may carry another request after this one (RFC 9112 §9.3): HTTP/1.1 unless it
 * says `Connection: close`, HTTP/1.0 only if it says `keep-alive`. A request with a body is answered and
 * the connection closed: no route here takes a body, and skipping one would be a parser of its own.
 */
function keepsAlive(head: RequestHead): boolean {
  const connection = (head.headers.connection ?? "").toLowerCase();
  if (head.headers["content-length"] !== undefined && head.headers["content-length"] !== "0") return false;
  if (head.headers["transfer-encoding"] !== undefined) return false;
  if (head.version === "HTTP/1.0") return /\bkeep-alive\b/.test(connection);
  return !/\bclose\b/.test(connection);
}

/**
 * One HTTP connection (startServer's `onClient`): request after request, until the client closes, a
 * request says `Connection: close`, something is refused, or one becomes a WebSocket.
 */
async function serveHttp(reader: StreamReader, writer: StreamWriter, site: Site): Promise<void> {
  site.httpWriters.add(writer);
  const deadline = new Deadline(() => writer.abort());
  try {
    for (;;) {
      deadline.arm(HEAD_TIMEOUT_MS);
      let head: RequestHead | null;
      try {
        head = await readRequestHead(reader, MAX_HEAD_BYTES);
      } catch (error) {
        if (!(error instanceof RequestHeadError)) throw error;
        if (!deadline.expired) respondError(writer, error.status, error.reason);
        break;
      } finally {
        deadline.disarm();
      }
      if (head === null) break;
      const path = head.target.split("?", 1)[0]!;
      if (path === "/chat" || path === "/echo") {
        site.httpWriters.delete(writer);
        return await upgrade(reader, writer, head, path, site);
      }
      if (!serveAsset(writer, head, path, site)) break;
      await writer.drain();
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
  } finally {
    deadline.clear();
    site.httpWriters.delete(writer);
  }
  if (!writer.isClosing()) await lingeringClose(reader, writer, LINGER_MS);
}

/** GET (or HEAD) of one of the page's files; 404 for any other path, 405 for another method. */
function serveAsset(writer: StreamWriter, head: RequestHead, path: string, site: Site): boolean {
  const asset = site.page.get(path);
  if (!asset) {
    respondError(writer, 404, `no such page: ${path.slice(0, 80)} (try / )`);
    return false;
  }
  if (head.method !== "GET" && head.method !== "HEAD") {
    respondError(writer, 405, `${head.method} is not allowed here: GET or HEAD`, { Allow: "GET, HEAD" });
    return false;
  }
  const keepAlive = keepsAlive(head);
  const headers = {
    "Content-Type": asset.type,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
  };
  respond(writer, 200, headers, asset.body, { keepAlive, head: head.method === "HEAD" });
  return keepAlive;
}

// ── Step 4: the upgrade — the handshake, then WebSocket frames on the same connection ────────────────

/**
 * /chat and /echo: `checkUpgrade` decides (a plain GET gets 426, another method 405, a cross-site Origin
 * 403 …); on yes, the 101 head goes out and the connection speaks WebSocket from the next byte on.
 */
async function upgrade(
  reader: StreamReader,
  writer: StreamWriter,
  head: RequestHead,
  path: "/chat" | "/echo",
  site: Site,
): Promise<void> {
  const decision = checkUpgrade(head, { allowedOrigins: site.allowedOrigins });
  if (!decision.ok) {
    writer.write(refusalResponse(decision));
    return lingeringClose(reader, writer, LINGER_MS);
  }
  writer.write(decision.response);
  if (path === "/echo") return serveEcho(reader, writer, site);
  return serveChatUser(reader, writer, site.room);
}

/** /echo: every message straight back, text as text and binary as binary — what conformance tools expect. */
async function serveEcho(reader: StreamReader, writer: StreamWriter, site: Site): Promise<void> {
  const connection = new WebSocketConnection(reader, writer, {
    maxMessageBytes: ECHO_MAX_MESSAGE_BYTES,
    oversize: "fail",
  });
  site.echoes.add(connection);
  try {
    for (let message = await connection.readMessage(); message; message = await connection.readMessage()) {
      if (message.type === "text") connection.sendText(message.text);
      // Never a "too long" here: oversize "fail" closes with 1009 instead.
      else if (message.type === "binary") connection.sendBinary(message.data);
      // The brake: a client that sends faster than it reads waits here, not in our memory.
      if (writer.bufferedBytes > WRITE_HIGH_WATER) await writer.drain();
    }
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
  } finally {
    site.echoes.delete(connection);
  }
}

// ── Step 5: a WebSocket user in the room — one message is one line ───────────────────────────────────

/**
 * How the room's lines go to a WebSocket user: one text frame each. A batch is encoded once, and the same
 * bytes are queued for every WebSocket user of the batch (server frames are unmasked, so they are right
 * for all of them).
 */
export const WEBSOCKET_FRAMING: LineFraming = {
  encodeLine: (text) => encodeTextFrame(text),
  encodeBatch: (lines) => encodeTextFrames(lines).bytes,
  lineStarts: (lines) => textFrameStarts(lines),
};

/** The Close code for each way out of the room (RFC 6455 §7.4.1). */
const CLOSE_FOR: Record<Departure, { code: number; reason: string }> = {
  quit: { code: CloseCode.NORMAL, reason: "bye" },
  left: { code: CloseCode.NORMAL, reason: "" },
  lost: { code: CloseCode.NORMAL, reason: "" },
  idle: { code: CloseCode.POLICY_VIOLATION, reason: "idle" },
  "not reading": { code: CloseCode.POLICY_VIOLATION, reason: "not reading" },
  shutdown: { code: CloseCode.GOING_AWAY, reason: "server shutting down" },
};

/** A message with a line break in it would be two lines to a TCP user. */
const LINE_BREAK = /[\r\n]/;
const NOT_ONE_LINE = "ERR one message is one line: no CR or LF in it";
const NOT_TEXT = "ERR binary message: the room's lines are text";

/** A WebSocket as the room sees it: a writer, a framing, a pause switch, and a Close frame to end with. */
class WebSocketUser implements ChatConnection {
  readonly framing = WEBSOCKET_FRAMING;
  #resumed: PromiseWithResolvers<void> | null = null;

  constructor(readonly socket: WebSocketConnection) {}

  get writer(): StreamWriter {
    return this.socket.writer;
  }

  get peer(): string {
    return this.socket.writer.peer;
  }

  /** The read loop stops before its next message; what the client sends meanwhile waits in the reader. */
  pauseReading(): void {
    this.#resumed ??= Promise.withResolvers();
  }

  resumeReading(): void {
    this.#resumed?.resolve();
    this.#resumed = null;
  }

  /** Resolves when reading may go on: at once unless paused. */
  whenReading(): Promise<void> | undefined {
    return this.#resumed?.promise;
  }

  /** The room closes this user: a Close frame with the code for why, queued before the room's FIN. */
  beforeClose(why: Departure): void {
    const { code, reason } = CLOSE_FOR[why];
    void this.socket.close(code, reason);
    this.resumeReading();
  }
}

/**
 * /chat: the messages of one WebSocket, into the room, in order — each checked first: a text message
 * without CR or LF is a line (the room's rules take it from there), anything else gets an ERR.
 *
 * When `readMessage()` returns null the WebSocket is over for reading — the peer's Close was answered,
 * or the peer broke the protocol and was sent a Close — and its writer takes no more frames, so the user
 * leaves at once, before the room's next batch could be queued for it. (A TCP user that half-closes
 * still gets its own copy of its last line; a WebSocket Close has no half.)
 */
async function serveChatUser(reader: StreamReader, writer: StreamWriter, room: ChatRoom): Promise<void> {
  const socket = new WebSocketConnection(reader, writer, {
    maxMessageBytes: room.options.maxLineBytes,
    oversize: "skip",
  });
  const user = new WebSocketUser(socket);
  const member = room.accept(user);
  try {
    while (!member.gone) {
      await user.whenReading();
      if (member.gone) break;
      const message = await socket.readMessage();
      if (message === null) break;
      handleMessage(room, member, message);
      // A client that sends faster than it reads its replies waits here, not in our memory.
      if (writer.bufferedBytes > WRITE_HIGH_WATER) await writer.drain();
    }
    room.depart(member, "left");
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
    room.depart(member, "lost");
  }
}

type Message = NonNullable<Awaited<ReturnType<WebSocketConnection["readMessage"]>>>;

function handleMessage(room: ChatRoom, member: ChatMember, message: Message): void {
  if (message.type === "too long") return room.lineTooLong(member);
  if (message.type === "binary") return reply(member, NOT_TEXT);
  if (LINE_BREAK.test(message.text)) return reply(member, NOT_ONE_LINE);
  room.handleLine(member, message.text);
}

function reply(member: ChatMember, text: string): void {
  if (!member.gone && !member.writer.isClosing()) member.writer.write(WEBSOCKET_FRAMING.encodeLine(text));
}

// ── Step 6: one process, two doors, one room ──────────────────────────────────────────────────────────

export interface WebChatOptions extends RoomOptions {
  host: string;
  port: number;
  tcpPort: number;
  allowedOrigins: string[];
  /** Be a lesson 07 node on this Redis instead of a room of one's own. */
  redis?: { url: string; prefix: string; nodeTimeoutSeconds: number; history: number; warn: Log };
}

export interface WebChat {
  room: ChatRoom;
  hostname: string;
  /** The HTTP port (the page, /chat, /echo). */
  port: number;
  /** The line protocol's port. */
  tcpPort: number;
  /** Stops both doors; room users get the notice and a Close 1001; plain HTTP connections are closed. */
  close(): Promise<void>;
}

/** A room of lesson 05 (or a node of lesson 07) with its TCP door, then the HTTP door into it. */
export async function startWebChat(options: WebChatOptions): Promise<WebChat> {
  const roomDoor = options.redis
    ? await startNode({
        ...options,
        port: options.tcpPort,
        redisUrl: options.redis.url,
        prefix: options.redis.prefix,
        nodeTimeoutSeconds: options.redis.nodeTimeoutSeconds,
        history: options.redis.history,
        warn: options.redis.warn,
      })
    : startChatServer({ ...options, port: options.tcpPort });
  const site: Site = {
    page: loadPage(),
    room: roomDoor.room,
    allowedOrigins: options.allowedOrigins,
    httpWriters: new Set(),
    echoes: new Set(),
    log: options.log,
  };
  let http: StreamServer;
  try {
    http = await startServer((reader, writer) => serveHttp(reader, writer, site), {
      host: options.host,
      port: options.port,
      // readRequestHead's cap holds within the cap only if no line may be longer than it.
      limit: MAX_HEAD_BYTES,
    });
  } catch (error) {
    await roomDoor.close();
    throw error;
  }
  return {
    room: roomDoor.room,
    hostname: http.hostname,
    port: http.port,
    tcpPort: roomDoor.port,
    async close() {
      http.close();
      // An echo's close() resolves once TCP is closed: after the peer's Close, or 1 s at the latest.
      const echoes = [...site.echoes].map((echo) => echo.close(CloseCode.GOING_AWAY, "server shutting down"));
      await Promise.all([roomDoor.close(), closeAll(site.httpWriters, CLOSE_GRACE_MS), ...echoes]);
    },
  };
}

// ── Step 7: the command line ──────────────────────────────────────────────────────────────────────────

/** `127.0.0.1:8080`, or `[::1]:8080` (RFC 3986 §3.2.2). */
const hostPort = (host: string, port: number) => `${host.includes(":") ? `[${host}]` : host}:${port}`;

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, USAGE);
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  const allowedOrigins: string[] = [];
  for (const value of flags["allow-origin"]) {
    const origin = normalizeOrigin(value);
    if (origin === null) {
      console.error(
        `error: --allow-origin needs an origin like http://localhost:5173, got ${JSON.stringify(value)} (see --help)`,
      );
      return 2;
    }
    allowedOrigins.push(origin);
  }
  if (flags.redis !== undefined && !/^redis:\/\/[^/\s]+/.test(flags.redis)) {
    console.error(
      `error: --redis needs a URL like redis://127.0.0.1:6379, got ${JSON.stringify(flags.redis)}`,
    );
    return 2;
  }
  const log = flags.quiet ? () => {} : (line: string) => console.log(line);
  let chat: WebChat;
  try {
    chat = await startWebChat({
      host: flags.host,
      port: flags.port,
      tcpPort: flags["tcp-port"],
      allowedOrigins,
      redis:
        flags.redis === undefined
          ? undefined
          : {
              url: flags.redis,
              prefix: flags.prefix,
              nodeTimeoutSeconds: flags["node-timeout"],
              history: flags.history,
              warn: (line) => console.log(line),
            },
      ...roomOptionsFromFlags(flags, log),
    });
  } catch (error) {
    if (error instanceof ListenError) console.error(`error: ${error.message}`);
    else if (flags.redis !== undefined) {
      console.error(`error: cannot start a node (redis ${flags.redis}): ${(error as Error).message}`);
    } else throw error;
    return 1;
  }
  // Handle Ctrl+C before saying we listen: whoever starts us may stop us the moment it reads that line.
  const shutdown = waitForShutdownSignal();
  console.log(
    `listening on http://${hostPort(chat.hostname, chat.port)} (line protocol on ${hostPort(chat.hostname, chat.tcpPort)})`,
  );
  const signal = await shutdown;
  console.log(`${signal}: shutting down, telling ${chat.room.clients.size} connection(s)`);
  await chat.close();
  return 0;
}

if (import.meta.main) process.exit(await main());

/* A real session — the server, ann in a browser tab at http://127.0.0.1:8080, carl on `nc 127.0.0.1 8000`,
   then Ctrl+C (the tab's lines are what its page shows, without their time stamps):

$ bun scripts/08-web-chat.ts
listening on http://127.0.0.1:8080 (line protocol on 127.0.0.1:8000)
+ ann joined from 127.0.0.1:40500 (1 online)
+ carl joined from 127.0.0.1:33370 (2 online)
SIGINT: shutting down, telling 2 connection(s)
- ann shutdown (1 online)
- carl shutdown (0 online)

ann (browser)                                    carl (nc)
  [name prompt: ann, Join]                       > CONNECT carl
OK welcome ann, 1 user online                    < OK welcome carl, 2 users online
* carl joined
  [types: hi carl, I'm in a browser]
ann: hi carl, I'm in a browser                   < ann: hi carl, I'm in a browser
                                                 > hi ann, I'm on nc <b>not bold</b>
carl: hi ann, I'm on nc <b>not bold</b>          < carl: hi ann, I'm on nc <b>not bold</b>
  [types: /who]
* online (2): ann, carl
* server shutting down                           < * server shutting down
Connection lost (close code 1001). Reconnecting in 0.5 s…
*/
