/**
 * lib/redis-server.ts — a private `redis-server` for a lesson or a test: a free loopback port, no
 * persistence (`--save ''`, `--appendonly no`), its working folder in a temporary directory.
 *
 * What comes back: a handle whose `stop()` asks Redis to exit (SIGTERM), `kill()` pulls the plug
 * (SIGKILL — the data is gone, as after a power loss), and `restart()` starts a fresh, empty server on the
 * same port. Throws {@link RedisServerError} when the binary is missing or the server does not answer
 * within {@link READY_TIMEOUT_MS}.
 */
import { mkdtempSync, rmSync } from "node:fs";
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
  let child = await spawnReady(bin, port, folder, options.detached ?? false).catch((error) => {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  });
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    folder,
    pid: () => child.pid,
    exited: () => child.exited,
    async stop() {
      child.kill("SIGTERM");
      await child.exited;
      rmSync(folder, { recursive: true, force: true });
    },
    async kill() {
      child.kill("SIGKILL");
      await child.exited;
    },
    async restart() {
      child = await spawnReady(bin, port, folder, options.detached ?? false);
    },
  };
}

async function spawnReady(bin: string, port: number, folder: string, detached: boolean) {
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
  const child = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe", detached });
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) {
      const output = await new Response(child.stderr).text();
      throw new RedisServerError(`redis-server exited with ${child.exitCode} on port ${port}`, output);
    }
    if (await answersPing(port)) return child;
    await Bun.sleep(READY_POLL_MS);
  }
  child.kill("SIGKILL");
  throw new RedisServerError(`redis-server did not answer on port ${port} within ${READY_TIMEOUT_MS} ms`);
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
