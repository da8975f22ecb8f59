/**
 * Run as a child process by tests/pg-hostile.test.ts, so that its memory is the client's alone:
 *
 *   bun tests/helpers/pg-memory-probe.ts connect URL        connects (to a server expected to be refused)
 *   bun tests/helpers/pg-memory-probe.ts bytea URL BYTES    sends one bytea parameter of BYTES bytes, closes
 *   bun tests/helpers/pg-memory-probe.ts simple URL SQL     runs SQL as a simple query, closes
 *
 * Prints one JSON line: `{ error, length, peakBytes, afterCloseBytes, closed }` — peak and current resident memory
 * (VmHWM, VmRSS) read from /proc/self/status.
 */
import { readFileSync } from "node:fs";
import { connect } from "../../lib/pg.ts";

function status(field: "VmHWM" | "VmRSS"): number {
  const text = readFileSync("/proc/self/status", "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)![1]) * 1024;
}

async function main(): Promise<void> {
  const [mode, url, size] = process.argv.slice(2);
  const result: Record<string, unknown> = {};
  // Kept after close(), as an application keeps its client: what it still holds is what close() left.
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect(url);
    if (mode === "bytea") {
      let value: Uint8Array | null = new Uint8Array(Number(size)).fill(0xab);
      const { rows } = await client.query<{ n: number }>("SELECT length($1::bytea) AS n", [value]);
      result.length = rows[0]!.n;
      value = null;
    }
    if (mode === "simple") await client.simpleQuery(size!);
    await client.close();
  } catch (error) {
    result.error = `${(error as Error).name}: ${(error as Error).message}`;
  }
  result.peakBytes = status("VmHWM");
  Bun.gc(true);
  await Bun.sleep(100);
  Bun.gc(true);
  result.afterCloseBytes = status("VmRSS");
  result.closed = client?.closed ?? true;
  console.log(JSON.stringify(result));
}

if (import.meta.main) await main();
