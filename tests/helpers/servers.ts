/** Starts a lesson's server as a child process on a free port and talks to it over real sockets. */
import { readFileSync } from "node:fs";
import { openConnection, type StreamReader, type StreamWriter } from "../../lib/streams.ts";

/** Resident memory of process `pid`, in bytes (VmRSS from /proc). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

export interface ServerProcess {
  port: number;
  child: ReturnType<typeof Bun.spawn>;
  /** Everything the server printed on stdout so far (after the first line). */
  output(): string;
  /** Sends SIGINT and resolves with the exit code. */
  interrupt(): Promise<number>;
  rss(): number;
}

const ROOT = `${import.meta.dir}/../..`;

/**
 * Starts `bun SCRIPT --port 0 ARGS…` — or, when `command` is given, exactly that command (e.g. through
 * `sh -c 'ulimit -n 128; exec bun …'`) — and waits for its `listening on` line.
 */
export async function startServerProcess(
  script: string,
  args: string[] = [],
  command?: string[],
): Promise<ServerProcess> {
  const child = Bun.spawn(command ?? ["bun", script, "--port", "0", ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before listening`);
    text += new TextDecoder().decode(value);
  }
  const firstLine = text.slice(0, text.indexOf("\n"));
  const match = /^listening on 127\.0\.0\.1:(\d+)$/.exec(firstLine);
  if (!match) throw new Error(`unexpected first line: ${firstLine}`);
  let rest = text.slice(text.indexOf("\n") + 1);
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      rest += new TextDecoder().decode(value);
    }
  })();
  return {
    port: Number(match[1]),
    child,
    output: () => rest,
    async interrupt() {
      child.kill("SIGINT");
      return child.exited;
    },
    rss: () => residentBytes(child.pid),
  };
}

/** A line-oriented test client: `nc` in code. */
export class LineClient {
  private constructor(
    readonly reader: StreamReader,
    readonly writer: StreamWriter,
  ) {}

  static async connect(port: number): Promise<LineClient> {
    const [reader, writer] = await openConnection("127.0.0.1", port);
    return new LineClient(reader, writer);
  }

  send(text: string | Uint8Array): void {
    this.writer.write(text);
  }

  /** The next line without its `\n`; null at EOF. Fails after `timeoutMs`. */
  async line(timeoutMs = 5000): Promise<string | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const bytes = await Promise.race([this.reader.readLine(), timeout]);
      if (bytes.length === 0) return null;
      return new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads lines until one matches; returns it. */
  async lineMatching(pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
    for (;;) {
      const line = await this.line(timeoutMs);
      if (line === null) throw new Error(`EOF while waiting for ${pattern}`);
      if (typeof pattern === "string" ? line === pattern : pattern.test(line)) return line;
    }
  }

  /** Reads every line until EOF. */
  async rest(timeoutMs = 5000): Promise<string[]> {
    const lines: string[] = [];
    for (let line = await this.line(timeoutMs); line !== null; line = await this.line(timeoutMs))
      lines.push(line);
    return lines;
  }

  close(): void {
    if (!this.writer.isClosing()) this.writer.close();
  }

  abort(): void {
    this.writer.abort();
  }
}
