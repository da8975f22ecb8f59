/**
 * lib/redis-server.ts — a private `redis-server` for a lesson or a test: a free loopback port, no
 * persistence (`--save ''`, `--appendonly no`), its working folder in a temporary directory.
 *
 * What comes back: a handle whose `stop()` asks Redis to exit (SIGTERM), `kill()` pulls the plug
 * (SIGKILL — the data is gone, as after a power loss), and `restart()` starts a fresh, empty server on the
 * same port. Throws {@link RedisServerError} when the binary is missing or the server does not answer
 * within {@link READY_TIMEOUT_MS}.
 *
 * It does not outlive the program that started it, even one killed with SIGKILL (which runs no cleanup
 * code at all). Linux could tie a child's life to its parent's (`prctl(PR_SET_PDEATHSIG)`), but only the
 * child can ask for that, before it runs, and neither Bun's `spawn` nor redis-server offers it. What the
 * kernel does do for a killed process is close its file descriptors. So redis-server runs under a small
 * `sh` guard ({@link GUARD_SCRIPT}) whose standard input is a pipe from us: we never write to it, and when
 * it reaches EOF — we closed it in `stop()`, or we died and the kernel closed it — the guard stops
 * redis-server (SIGTERM), removes its temporary folder, and exits with redis-server's own status. (A
 * watchdog in the chat nodes would die with them; a clean-up at the next start would leave a server running
 * until then.)
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** How long a starting redis-server may take to answer PING: 10 s (it usually takes ~10 ms). */
export const READY_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 20;

export const REDIS_INSTALL_HINT =
  "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server)";

/** A redis-server that could not be started; `output` is what it printed. */
export class RedisServerError extends Error {
  override name = "RedisServerError";
  constructor(
    message: string,
    readonly output = "",
  ) {
    super(message);
  }
}

export interface RedisServer {
  host: string;
  port: number;
  /** `redis://host:port`. */
  url: string;
  /** Its temporary working folder (removed by stop()). */
  folder: string;
  /** The running process's id. */
  pid(): number;
  /** Resolves with the running process's exit code (128 + N for signal N) when it exits, for any reason. */
  exited(): Promise<number>;
  /** SIGTERM, wait for the exit, remove the folder. */
  stop(): Promise<void>;
  /** SIGKILL and wait: what is in memory is lost. The folder stays for restart(). */
  kill(): Promise<void>;
  /** Starts an empty server on the same port (after kill()), and waits until it answers. */
  restart(): Promise<void>;
}

/**
 * The guard: `sh -c GUARD_SCRIPT guard FOLDER redis-server ARGS…`. Prints redis-server's pid, then waits
 * for either redis-server to exit or its own standard input to end (then it stops redis-server); removes
 * FOLDER; exits with redis-server's status (128 + N after signal N). The reader of the pipe runs in the
 * background with the pipe given explicitly (`<&3`): a background command's standard input would
 * otherwise be /dev/null.
 */
const GUARD_SCRIPT = `
folder=$1; shift
exec 3<&0
"$@" </dev/null >/dev/null 3<&- & redis=$!
echo "$redis"
( read -r _ <&3; kill -TERM "$redis" 2>/dev/null ) & watcher=$!
exec 3<&-
wait "$redis"; code=$?
kill "$watcher" 2>/dev/null
rm -rf "$folder"
exit "$code"
`;

/** The path of `redis-server`, or null when it is not on the PATH. */
export function findRedisServer(): string | null {
  return Bun.which("redis-server");
}

export async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

export interface RedisServerOptions {
  /** Default: a free one. */
  port?: number;
  /** Default: `redis-server` from the PATH. */
  bin?: string;
  /**
   * Run it in a process group of its own, so that a Ctrl+C in the terminal does not stop it before the
   * program that started it has finished with it.
   */
  detached?: boolean;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const bin = options.bin ?? findRedisServer();
  if (!bin) throw new RedisServerError(REDIS_INSTALL_HINT);
  const folder = mkdtempSync(join(tmpdir(), "lesson-redis-"));
  const port = options.port || (await freePort());
  const host = "127.0.0.1";
  let server = await spawnReady(bin, port, folder, options.detached ?? false).catch((error) => {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  });
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    folder,
    pid: () => server.pid,
    exited: () => server.guard.exited,
    async stop() {
      // EOF on the guard's pipe: it stops redis-server (SIGTERM) and removes the folder.
      await server.guard.stdin.end();
      await server.guard.exited;
      rmSync(folder, { recursive: true, force: true });
    },
    async kill() {
      process.kill(server.pid, "SIGKILL");
      await server.guard.exited;
    },
    async restart() {
      mkdirSync(folder, { recursive: true });
      server = await spawnReady(bin, port, folder, options.detached ?? false);
    },
  };
}

/** redis-server under its guard: the guard's process (whose stdin is the pipe it watches), redis-server's pid. */
interface GuardedServer {
  guard: Bun.Subprocess<"pipe", "pipe", "pipe">;
  pid: number;
}

async function spawnReady(
  bin: string,
  port: number,
  folder: string,
  detached: boolean,
): Promise<GuardedServer> {
  // prettier-ignore
  const argv = [
    bin,
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    folder,
    "--logfile",
    join(folder, "redis.log"),
  ];
  const guard = Bun.spawn(["sh", "-c", GUARD_SCRIPT, "redis-guard", folder, ...argv], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    detached,
  });
  const pid = await firstLineNumber(guard.stdout);
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (pid !== null && performance.now() < deadline) {
    if (guard.exitCode !== null) break;
    if (await answersPing(port)) return { guard, pid };
    await Bun.sleep(READY_POLL_MS);
  }
  if (guard.exitCode === null) {
    await guard.stdin.end();
    await guard.exited;
  }
  const output = await new Response(guard.stderr).text();
  if (pid === null || guard.exitCode !== 0) {
    throw new RedisServerError(`redis-server exited with ${guard.exitCode} on port ${port}`, output);
  }
  throw new RedisServerError(`redis-server did not answer on port ${port} within ${READY_TIMEOUT_MS} ms`);
}

/** The guard's first line: redis-server's pid (null if the guard ended first). */
async function firstLineNumber(stdout: ReadableStream<Uint8Array>): Promise<number | null> {
  let text = "";
  for await (const chunk of stdout) {
    text += new TextDecoder().decode(chunk);
    if (text.includes("\n")) break;
  }
  const pid = Number(text.split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** One inline `PING` over a fresh connection: true when `+PONG` comes back. */
async function answersPing(port: number): Promise<boolean> {
  const answered = Promise.withResolvers<boolean>();
  try {
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_socket, chunk) => answered.resolve(new TextDecoder().decode(chunk).startsWith("+PONG")),
        close: () => answered.resolve(false),
        error: () => answered.resolve(false),
      },
    });
    socket.write("PING\r\n");
    const timer = setTimeout(() => answered.resolve(false), 1000);
    const ok = await answered.promise;
    clearTimeout(timer);
    socket.end();
    return ok;
  } catch {
    return false;
  }
}
