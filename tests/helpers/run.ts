/** Runs a lesson script as a child process and collects what it printed. */
export async function runScript(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(["bun", ...args], {
    cwd: `${import.meta.dir}/../..`,
    env: { ...process.env, ...options.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => child.kill(), options.timeoutMs ?? 20_000);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}

/** True if `text` looks like it holds a stack trace (lines starting with `at `). */
export function hasStackTrace(text: string): boolean {
  return /^\s+at\s/m.test(text);
}
