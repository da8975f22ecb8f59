/**
 * Lesson 03's console without its terminal, run as a child process by tests/03-sql-client-database.test.ts
 * so that its memory is its own: the embedded database (or `--url`'s server) opened as the lesson opens
 * it, a SqlConsole whose screen prints each message as one plain line on stdout, and each line of stdin
 * submitted as if typed. `\rss` prints `rss {"peakBytes":…,"nowBytes":…}` (VmHWM, VmRSS).
 *
 *   bun tests/helpers/sql-console-program.ts STATEMENT_TIMEOUT_SECONDS MEMORY_LIMIT_MIB [URL]
 */
import { readFileSync } from "node:fs";
import type { Message, Screen } from "../../lib/screen.ts";
import { openDatabase, SqlConsole } from "../../scripts/03-sql-client.ts";

function status(field: "VmHWM" | "VmRSS"): number {
  const text = readFileSync("/proc/self/status", "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)![1]) * 1024;
}

const [timeoutSeconds, memoryMiB, url] = process.argv.slice(2);
const { database, pool } = await openDatabase(url, 2, {
  statementTimeoutMs: Number(timeoutSeconds) * 1000,
  memoryLimitBytes: Number(memoryMiB) * 1024 * 1024,
});
const plain = (message: Message) =>
  typeof message === "string" ? message : message.map((span) => span.text).join("");
const screen = { print: (message: Message) => console.log(plain(message)) } as unknown as Screen;
const sqlConsole = new SqlConsole(screen, pool, () => 80, database);
console.log("ready");
for await (const line of console) {
  if (line === "\\rss")
    console.log(`rss ${JSON.stringify({ peakBytes: status("VmHWM"), nowBytes: status("VmRSS") })}`);
  else if (!sqlConsole.submit(line)) break;
}
await pool.close();
await database.stop();
