/** Break-it pairs: a naive server and the lesson, each a child process, and scripts/naive/break.ts against them. */
import { runScript } from "./run.ts";
import { residentBytes } from "./servers.ts";

const ROOT = `${import.meta.dir}/../..`;

export interface Server {
  port: number;
  pid: number;
  /** What it printed on stderr so far. */
  stderr(): string;
  kill(): void;
}

/** Starts `bun SCRIPT --port 0 ARGS…` and waits for its `listening on 127.0.0.1:PORT` line (10 s at most). */
export async function startServer(script: string, args: string[] = []): Promise<Server> {
  const child = Bun.spawn(["bun", script, "--port", "0", ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  let stderr = "";
  (async () => {
    for await (const chunk of child.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const reader = child.stdout.getReader();
  const timer = setTimeout(() => child.kill(), 10_000);
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before listening: ${stderr}`);
    text += new TextDecoder().decode(value);
  }
  clearTimeout(timer);
  // Keep reading stdout, so a server that logs never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done);
  })();
  const match = /^listening on 127\.0\.0\.1:(\d+)\n/.exec(text);
  if (!match) throw new Error(`unexpected first line from ${script}: ${text}`);
  return { port: Number(match[1]), pid: child.pid, stderr: () => stderr, kill: () => child.kill() };
}

/** Runs `bun scripts/naive/break.ts ATTACK --port PORT ARGS…`; its verdict line (it must exit 0). */
export async function attack(name: string, port: number, args: string[] = []): Promise<string> {
  const { exitCode, stdout, stderr } = await runScript(
    ["scripts/naive/break.ts", name, "--port", String(port), ...args],
    { timeoutMs: 25_000 },
  );
  if (exitCode !== 0) throw new Error(`break.ts ${name} exited ${exitCode}: ${stderr}`);
  return stdout.trim();
}

/** Runs `work` while sampling `pid`'s resident memory every 20 ms; the work's result and the peak. */
export async function peakResidentBytes<T>(pid: number, work: () => Promise<T>): Promise<[T, number]> {
  let peak = residentBytes(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, residentBytes(pid));
  }, 20);
  try {
    const result = await work();
    return [result, Math.max(peak, residentBytes(pid))];
  } finally {
    clearInterval(sampler);
  }
}
