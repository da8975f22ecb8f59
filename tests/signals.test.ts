import { expect, test } from "bun:test";

const ROOT = `${import.meta.dir}/..`;

// Whoever starts a server may stop it the moment it reads the first line: Ctrl+C must already be a
// graceful shutdown (exit 0), not the default SIGINT death (exit 130).
for (const [script, args] of [
  ["scripts/04-echo-server.ts", ["--port", "0"]],
  ["scripts/05-chat-server.ts", ["--port", "0"]],
  ["scripts/08-web-chat.ts", ["--port", "0", "--tcp-port", "0"]],
  ["scripts/07-chat-cluster.ts", ["--port", "0"]],
] as const) {
  // Lesson 07 starts a private redis-server: without one, skip (under CI a missing one fails, as elsewhere).
  const needsRedis =
    script.includes("07-") && Bun.which("redis-server") === null && process.env.CI !== "true";
  if (needsRedis) console.log(`skipping ${script}: redis-server is not installed`);
  test.skipIf(needsRedis)(
    `${script} shuts down gracefully on a SIGINT sent as soon as it says it is listening`,
    async () => {
      const child = Bun.spawn(["bun", script, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      const reader = child.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toStartWith("listening on ");
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      expect(await child.exited).toBe(0);
      clearTimeout(timer);
    },
  );
}
