/**
 * Lesson 07 — The chat server outgrows one process: several nodes, one room, through Redis
 *
 * What it teaches: what changes when a server's state leaves its process. Lesson 05 holds 10,000 users on
 * one core; one process is one core and one failure. Real chat systems grow into several processes — one
 * per core (all accepting on one port), or on several machines behind a TCP load balancer — that behave as
 * one room by sharing state through a proven engine: here Redis, spoken to in its own protocol (RESP) on
 * the project's sockets. Six things must be designed, not hoped for:
 * - Ordering: every line goes through one Redis Stream (`XADD`); every node reads it (`XREAD`) and fans
 *   out to its own users, so every user on every node sees the same lines in the same order — the
 *   sender's own copy included. (Not PUBLISH/SUBSCRIBE: a subscriber that was away has missed what was
 *   said; a stream reader resumes from the last ID it delivered.)
 * - Uniqueness: a name is claimed with `SET name:LOWERCASE NODE NX` — one atomic step in Redis, so two
 *   nodes racing for one name get exactly one `OK`.
 * - Liveness — a lease: each node renews a key with a TTL (`alive:ID`, --node-timeout); a node that stops
 *   (SIGKILL, power loss) lets it expire, and one survivor — whichever runs its Lua cleanup first —
 *   announces `* NAME left (server lost)` for each of its users, once, and frees their names.
 * - Fencing: a lease only helps if a node that lost it cannot go on acting on it. A node paused for 10 s
 *   (SIGSTOP, a swap storm, a VM migrated) wakes up believing it still holds its users' names — its own
 *   clock cannot tell it otherwise — while Redis has declared it dead and given "ann" to someone else.
 *   So the check is made where the truth is, atomically, on every write: the Lua script that appends a
 *   line (APPEND in cluster-scripts.ts: its FENCE) adds it only if `alive:ID` still holds this node's
 *   token — its incarnation's id, and the session token of its current connection — and the name the
 *   line speaks for is still this node's. Refused, the node learns it was declared dead, tells its users
 *   `* disconnected: this server lost its place in the cluster`, closes them, and registers again as a
 *   new incarnation (ClusterNode's `#placeLost`). CLAIM, the heartbeat and the reconnect's REGISTER are
 *   fenced the same way; a departure frees its name and is announced in one fenced step, so each is
 *   announced once, ever — by the node, or by the survivor that reaps it.
 * - Deadlines: a peer that stops answering looks exactly like a slow one until a clock says otherwise. Every
 *   reply is awaited with a deadline (lib/chat-cluster/resp-connection.ts: one timer for the oldest
 *   command waiting): half of --node-timeout, and a blocking `XREAD` its `BLOCK` time on top. Past it, one
 *   log line names what did not answer (`no reply to XREAD within 3500 ms`), and the link takes its normal
 *   failure path: reconnect with a capped backoff (redis-link.ts). At startup (`HELLO`, the first
 *   scripts) the node exits 1 with that line instead of hanging.
 * - Link failure: a node cut off from Redis keeps its users connected and answers their lines with
 *   `ERR chat paused: reconnecting`; it reconnects and then delivers, in order, every line the others sent
 *   meanwhile, and reconciles the names Redis lists for it with its real users (a claim whose reply was
 *   lost is freed). If Redis comes back empty (restarted without persistence), the nodes notice (a new
 *   epoch key), claim their online users' names again, and read the new stream. An error reply
 *   (`-WRONGTYPE` when another client broke a key, `-LOADING`, `-BUSY`) is not a dead link: one log line,
 *   then the same command again after a capped backoff.
 *
 * And what another client may put in Redis is input like any other: a stream entry is bounded before it
 * is loaded (resp-parser.ts never keeps a bulk string over 64 KiB nor an XREAD reply over 4 MiB — a
 * 300 MB entry costs a node nothing but the time to count it off) and must pass the rule users' own lines
 * pass (lib/sanitize.ts `stripControls`), or it is skipped with one log line.
 *
 * The protocol is lesson 05's, unchanged (`CONNECT name`, lines, `/who`, `/quit`); lesson 06's client
 * works against any node. `/who` lists every user of every node: the count, then at most 100 names,
 * sorted ignoring case.
 *
 *   asyncio / redis-py (the book has no Redis)    here
 *   await redis.xadd(stream, fields, maxlen=N)     one Lua script (EVALSHA APPEND): fence, then XADD key MAXLEN ~ N * …
 *   await redis.xread({stream: last_id}, block=…)  link.read(["XREAD", "COUNT", n, "BLOCK", ms, "STREAMS", key, id], ms)
 *   await redis.set(name, node, nx=True)           one Lua script (EVALSHA CLAIM): fence, claim, this node's name set
 *   asyncio.wait_for(redis.execute(…), timeout)    RespConnection.send(args, timeoutMs): every reply has a deadline
 *   asyncio.create_subprocess_exec(...)            Bun.spawn([...]) — the launcher's node processes
 *   loop.add_signal_handler(SIGINT, …)             waitForShutdownSignal() (lib/signals.ts)
 *
 * Run it:    bun scripts/07-chat-cluster.ts               a private redis-server + 2 nodes on port 8000
 *            bun scripts/07-chat-cluster.ts --nodes 4 --port 9000
 *            bun scripts/07-chat-cluster.ts --node --port 0 --redis redis://10.0.0.5:6379   one node
 * Poke it:   `bun scripts/06-chat-client.ts` (or `nc 127.0.0.1 8000`) in two more terminals: the kernel
 *            hands each new connection to one of the nodes (`reusePort`, by a hash of the addresses), so
 *            two clients are on different nodes about half the time — each log line says which node a
 *            user joined (reconnect one until they differ). Then `kill -9` a node's pid (its users are
 *            announced `left (server lost)` within --node-timeout), or `kill -STOP` the redis-server for a
 *            few seconds and type: `ERR chat paused: reconnecting` once a reply is half of --node-timeout
 *            late; after `kill -CONT`, everything said meanwhile arrives.
 * Break it:  `kill -STOP` a node for longer than --node-timeout while one of its users types, and join
 *            that name on the other node: after `kill -CONT`, the stale line reaches nobody (fencing).
 *            `redis-cli -p PORT RENAME chat:room x; redis-cli -p PORT SET chat:room s` makes the stream a
 *            string: one `WRONGTYPE` line per node; `DEL chat:room; RENAME x chat:room`, and chat resumes.
 *
 * Builds on: lesson 05 — the same room (imported from it: the rules, the limits and flags, the per-batch
 * fan-out, one write per user per batch; its two seams, the name registry and the bus, are what this
 * lesson plugs Redis into), on the same line server (lib/line-server.ts). What is new is
 * lib/chat-cluster/: the room's name registry and bus in Redis (cluster-node.ts), the two Redis
 * connections and their reconnect (redis-link.ts), RESP on lib/stream-writer with a deadline per reply
 * (resp-connection.ts) and a bounded incremental parser (resp-parser.ts), the Lua scripts and their fence
 * (cluster-scripts.ts), the stream entry format (room-entry.ts); and lib/redis-server.ts, the private
 * redis-server, which dies with the program that started it.
 */
import { type Flags, parseCommandLine } from "../lib/args.ts";
import { ClusterNode, LOST_PLACE_NOTICE } from "../lib/chat-cluster/cluster-node.ts";
import {
  findRedisServer,
  freePort,
  REDIS_INSTALL_HINT,
  type RedisServer,
  startRedisServer,
} from "../lib/redis-server.ts";
import { waitForShutdownSignal } from "../lib/signals.ts";
import { type LineServer, startLineServer } from "../lib/streams.ts";
import { ChatRoom, ROOM_FLAGS, type RoomOptions, roomOptionsFromFlags } from "./05-chat-server.ts";

// ── Step 1: the flags — lesson 05's, and where the cluster's shared state lives ───────────────────────

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: {
    kind: "int",
    default: 8000,
    min: 0,
    max: 65535,
    help: "port every node listens on; 0 picks a free one",
  },
  nodes: { kind: "int", default: 2, min: 1, max: 64, help: "node processes to start (without --node)" },
  node: { kind: "boolean", help: "run exactly one node in this process (needs --redis)" },
  redis: {
    kind: "string",
    value: "URL",
    help: "redis://HOST:PORT of a Redis to use (default: start a private one)",
  },
  prefix: {
    kind: "string",
    default: "chat:",
    help: "prefix of every Redis key, so clusters can share one Redis",
  },
  // 5 s: long enough that a busy node is not taken for dead, short enough that users are not left hanging.
  // At most a day: the heartbeat's reply timer is half of it, and a timer past 2^31 − 1 ms (~24.8 days)
  // fires at once — a huge value made every node spin on its heartbeat.
  "node-timeout": {
    kind: "number",
    default: 5,
    min: 0.5,
    max: 86_400,
    value: "SECONDS",
    help: "seconds without renewing its liveness before a node counts as dead",
  },
  // 10,000 entries of at most ~4 KiB: a node cut off for a while can catch up on this much.
  history: {
    kind: "int",
    default: 10_000,
    min: 100,
    value: "ENTRIES",
    help: "stream entries Redis keeps (XADD MAXLEN ~)",
  },
  ...ROOM_FLAGS,
  quiet: { kind: "boolean", help: "do not log joins and departures" },
} as const;

const USAGE = "bun scripts/07-chat-cluster.ts [--nodes N | --node --redis redis://HOST:PORT] [flags]";

export interface NodeOptions extends RoomOptions {
  host: string;
  port: number;
  redisUrl: string;
  prefix: string;
  nodeTimeoutSeconds: number;
  history: number;
  /** For what goes wrong with Redis (link lost, entries skipped): printed even with --quiet. */
  warn: (line: string) => void;
}

// ── Step 2: one node — lesson 05's room, with its names and its bus in Redis ──────────────────────────

export interface ChatNode {
  room: ChatRoom;
  hostname: string;
  port: number;
  /** Stops accepting, tells this node's users and (through Redis) everyone else, leaves the cluster. */
  close(): Promise<void>;
}

/**
 * Connects to Redis, registers, then listens (several processes may share the port). Throws if Redis
 * cannot be reached or the port cannot be listened on.
 */
export async function startNode(options: NodeOptions): Promise<ChatNode> {
  // The room and the cluster node know each other: the room claims names and publishes lines through the
  // node; the node hands the room each batch it reads from the stream, and pauses and resumes it.
  const cluster: ClusterNode = new ClusterNode(
    {
      url: options.redisUrl,
      prefix: options.prefix,
      nodeTimeoutSeconds: options.nodeTimeoutSeconds,
      history: options.history,
      log: options.warn,
    },
    {
      deliver: (lines) => room.deliver(lines),
      paused: () => room.pause(),
      resumed: () => room.resume(),
      onlineNames: () => [...room.users.values()].map((member) => member.name!),
      // Two users cannot both be NAME: ours goes, told why — and nobody is told "NAME left", because the
      // NAME online now is the other one.
      namesLost: (names) => {
        for (const name of names)
          room.evict(name, `* disconnected: the name ${name} was taken while this server was cut off`);
      },
      streamLost: () => {
        for (const member of room.users.values()) member.awaitingJoinNotice = false;
      },
      // Declared dead, this node's users were announced as gone by whoever reaped it: they go, told why.
      placeLost: () => {
        for (const member of [...room.users.values()]) room.evict(member.name!, LOST_PLACE_NOTICE);
      },
    },
  );
  const room: ChatRoom = new ChatRoom(options, { names: cluster, bus: cluster, countLabel: "on this node" });
  await cluster.start();
  let server: LineServer;
  try {
    server = startLineServer(room.lineHandlers(), {
      host: options.host,
      port: options.port,
      maxLineBytes: options.maxLineBytes,
      reusePort: true,
    });
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  const stopSweep = room.startIdleSweep();
  return {
    room,
    hostname: server.hostname,
    port: server.port,
    async close() {
      stopSweep();
      server.close();
      // `true`: each user's departure is published, so the users on the other nodes see them leave.
      await room.shutdown(true);
      await cluster.stop();
    },
  };
}

// ── Step 3: the launcher — a private Redis and N node processes on one port ───────────────────────────

/** The launcher's node processes: this same script with `--node`. */
interface NodeProcess {
  child: ReturnType<typeof Bun.spawn>;
  /** Resolves when its stdout has ended (everything it printed has been passed on). */
  output: Promise<void>;
}

/**
 * Starts one node process and waits for its `listening on` line; passes on the rest of its output,
 * prefixed with its number. Each node is in a process group of its own (`detached`), so a Ctrl+C in the
 * terminal reaches only the launcher, which then stops the nodes one by one, gracefully, before Redis.
 */
async function spawnNode(number: number, argv: string[]): Promise<NodeProcess> {
  const child = Bun.spawn(["bun", import.meta.path, ...argv], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    detached: true,
    env: { ...process.env, CHAT_CLUSTER_LAUNCHER_PID: String(process.pid) },
  });
  // Its errors: held until it listens — a node that cannot start has said why in one line, which becomes
  // the launcher's own one line — then passed on as they come.
  let listening = false;
  let startupErrors = "";
  const errorsDone = (async () => {
    const errorDecoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      if (listening) process.stderr.write(chunk);
      else startupErrors += errorDecoder.decode(chunk, { stream: true });
    }
  })();
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  let first: string | null = null;
  while (first === null) {
    const { value, done } = await reader.read();
    if (done) {
      const code = await child.exited;
      await errorsDone;
      const why = startupErrors
        .trim()
        .split("\n")
        .at(-1)
        ?.replace(/^error: /, "");
      throw new Error(`node ${number}: ${why || `exited (${code}) before listening`}`);
    }
    pending += decoder.decode(value, { stream: true });
    const newline = pending.indexOf("\n");
    if (newline !== -1) {
      first = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (!first.startsWith("listening on ")) throw new Error(`node ${number}: ${first}`);
  listening = true;
  if (startupErrors) process.stderr.write(startupErrors);
  const output = (async () => {
    for (;;) {
      let newline = pending.indexOf("\n");
      for (; newline !== -1; newline = pending.indexOf("\n")) {
        console.log(`node ${number}: ${pending.slice(0, newline)}`);
        pending = pending.slice(newline + 1);
      }
      const { value, done } = await reader.read();
      if (done) return;
      pending += decoder.decode(value, { stream: true });
    }
  })();
  return { child, output };
}

/** The command line each node gets: the launcher's own flags, with `--node`, the port and the Redis URL. */
function nodeArgv(flags: Record<string, unknown>, port: number, redisUrl: string): string[] {
  const argv = ["--node", "--host", String(flags.host), "--port", String(port), "--redis", redisUrl];
  for (const name of ["prefix", "node-timeout", "history", ...Object.keys(ROOM_FLAGS)]) {
    argv.push(`--${name}`, String(flags[name]));
  }
  if (flags.quiet) argv.push("--quiet");
  return argv;
}

async function runLauncher(flags: ParsedFlags): Promise<number> {
  let redis: RedisServer | null = null;
  let redisUrl = flags.redis;
  if (redisUrl === undefined) {
    if (!findRedisServer()) {
      console.error(`error: ${REDIS_INSTALL_HINT}, or pass --redis redis://HOST:PORT`);
      return 1;
    }
    // Under a guard that stops it (and removes its folder) when this process ends in any way — SIGKILL
    // included: lib/redis-server.ts. Its own process group: a Ctrl+C reaches only us, and we stop it last.
    redis = await startRedisServer({ detached: true });
    redisUrl = redis.url;
  }
  // Every node must listen on the same port: with --port 0, pick it once, here.
  const port = flags.port === 0 ? await freePort() : flags.port;
  const nodes: NodeProcess[] = [];
  let exitCode = 0;
  try {
    for (let number = 1; number <= flags.nodes; number++) {
      nodes.push(await spawnNode(number, nodeArgv(flags, port, redisUrl)));
    }
    const where = redis ? `redis at ${redis.host}:${redis.port}` : `redis at ${new URL(redisUrl).host}`;
    // Handle Ctrl+C before saying we listen: whoever starts us may stop us the moment it reads that line.
    const shutdown = waitForShutdownSignal();
    console.log(
      `listening on ${flags.host}:${port} (${flags.nodes} node${flags.nodes === 1 ? "" : "s"}, ${where})`,
    );
    console.log(
      `node pids: ${nodes.map(({ child }) => child.pid).join(", ")} (kill -9 one: the others clean up after it)`,
    );
    // A node that dies is the others' to clean up after (that is the point); the launcher says so and
    // carries on, until Ctrl+C — or until no node is left.
    for (const [index, { child }] of nodes.entries()) {
      void child.exited.then((code) => console.log(`node ${index + 1} (pid ${child.pid}) exited (${code})`));
    }
    const allGone = Promise.all(nodes.map(({ child }) => child.exited)).then(() => "every node exited");
    // The private Redis is the room: if it dies, nobody will bring it back, and the nodes would answer
    // `ERR chat paused: reconnecting` for ever. Say so and stop, rather than hang.
    const redisGone = redis
      ? redis.exited().then((code) => `redis-server (pid ${redis.pid()}) exited (${code})`)
      : new Promise<string>(() => {});
    const reason = await Promise.race([shutdown, allGone, redisGone]);
    const signalled = reason.startsWith("SIG");
    console.log(`${reason}: stopping the nodes${signalled ? ", then redis" : ""}`);
    if (!signalled) exitCode = 1;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    exitCode = 1;
  } finally {
    // One node at a time: each announces its users' departures while the others are still there to hear.
    for (const { child, output } of nodes) {
      if (child.exitCode === null) child.kill("SIGTERM");
      await child.exited;
      await output;
    }
    await redis?.stop();
  }
  return exitCode;
}

// ── Step 4: the command line ──────────────────────────────────────────────────────────────────────────

type ParsedFlags = Flags<typeof FLAGS>;

/** Checks `--redis`: a `redis://HOST:PORT` URL, or a one-line reason. */
function checkRedisUrl(url: string | undefined): string | null {
  if (url === undefined) return null;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "redis:" && parsed.hostname !== "") return null;
  } catch {}
  return `--redis needs a URL like redis://127.0.0.1:6379, got ${JSON.stringify(url)}`;
}

async function runNode(flags: ParsedFlags): Promise<number> {
  const log = flags.quiet ? () => {} : (line: string) => console.log(line);
  const redisUrl = flags.redis!;
  let node: ChatNode;
  try {
    node = await startNode({
      host: flags.host,
      port: flags.port,
      redisUrl,
      prefix: flags.prefix,
      nodeTimeoutSeconds: flags["node-timeout"],
      history: flags.history,
      warn: (line) => console.log(line),
      ...roomOptionsFromFlags(flags, log),
    });
  } catch (error) {
    console.error(
      `error: cannot start a node (redis ${redisUrl}, port ${flags.port}): ${(error as Error).message}`,
    );
    return 1;
  }
  const shutdown = waitForShutdownSignal(); // before the line that tells whoever started us to go on
  console.log(`listening on ${node.hostname}:${node.port}`);
  const signal = await Promise.race([shutdown, launcherGone()]);
  console.log(`${signal}: shutting down, telling ${node.room.clients.size} connection(s)`);
  await node.close();
  return 0;
}

/**
 * A node started by the launcher runs in its own process group; if the launcher itself is killed (and so
 * cannot stop it), the node notices its parent changed and shuts down gracefully rather than linger.
 */
function launcherGone(): Promise<string> {
  const launcher = Number(process.env.CHAT_CLUSTER_LAUNCHER_PID);
  if (!launcher) return new Promise(() => {});
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (process.ppid === launcher) return;
      clearInterval(timer);
      resolve("launcher gone");
    }, 1000);
  });
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, USAGE);
  if ("exitCode" in parsed) return parsed.exitCode;
  const { flags } = parsed;
  const badUrl = checkRedisUrl(flags.redis);
  if (badUrl) {
    console.error(`error: ${badUrl}`);
    return 2;
  }
  if (!flags.node) return runLauncher(flags);
  if (flags.redis === undefined) {
    console.error("error: --node needs --redis redis://HOST:PORT (the Redis the other nodes use)");
    return 2;
  }
  return runNode(flags);
}

if (import.meta.main) process.exit(await main());

/* A real session — the launcher, then ann and bob (as `nc 127.0.0.1 8000` would show it) on different
   nodes, then `kill -9` of bob's node, then Ctrl+C:

$ bun scripts/07-chat-cluster.ts
listening on 127.0.0.1:8000 (2 nodes, redis at 127.0.0.1:33493)
node pids: 528, 534 (kill -9 one: the others clean up after it)
node 2: + ann joined from 127.0.0.1:60696 (1 on this node)
node 1: + bob joined from 127.0.0.1:60712 (1 on this node)
node 1 (pid 528) exited (137)
node 2: cleaned up 1 user(s) of dead node(s)
SIGINT: stopping the nodes, then redis
node 2: SIGTERM: shutting down, telling 1 connection(s)
node 2: - ann shutdown (0 on this node)
node 2 (pid 534) exited (0)

ann > CONNECT ann                        bob > CONNECT bob
ann < OK welcome ann, 1 user online      bob < OK welcome bob, 2 users online
ann < * bob joined                       bob > hi ann, I am on the other node
ann < bob: hi ann, I am on the other node
ann > /who                               bob < bob: hi ann, I am on the other node
ann < * online (2): ann, bob
      (kill -9 528 — bob's node; 4.8 s later, within --node-timeout 5 s:)
ann < * bob left (server lost)
ann < * server shutting down
*/
