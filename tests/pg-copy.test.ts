import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, connect, PgError } from "../lib/pg.ts";
import { type PostgresCluster, postgresAvailability, startPostgres } from "./helpers/postgres.ts";

/** Rows of COPY text: `n<TAB>60 letters<NEWLINE>`, ~70 bytes each, in strings of 1,000 rows. */
async function* generatedRows(totalBytes: number, failAfterBytes = Number.POSITIVE_INFINITY) {
  const filler = "abcdefghij".repeat(6);
  let sent = 0;
  for (let n = 0; sent < totalBytes; ) {
    if (sent >= failAfterBytes) throw new Error("the generator broke down");
    let chunk = "";
    for (let i = 0; i < 1000; i++, n++) chunk += `${n}\t${filler}\n`;
    sent += chunk.length;
    yield chunk;
  }
}

/**
 * The child process for the memory bound: COPY FROM a generated stream of `MEGABYTES` MB, then COPY TO
 * all of it back, and report the rows, the bytes, and its own
 * resident memory from /proc/self/status — before (VmRSS) and at the peak (VmHWM).
 */
const CHILD = `
import { connect } from ${JSON.stringify(join(import.meta.dir, "../lib/pg.ts"))};
const status = async () => Object.fromEntries(
  (await Bun.file("/proc/self/status").text()).split("\\n").filter((l) => l.startsWith("Vm"))
    .map((l) => [l.split(":")[0], Number(l.split(/\\s+/)[1]) * 1024]));
const [url, megabytes] = process.argv.slice(2);
const db = await connect(url);
await db.simpleQuery("CREATE UNLOGGED TABLE IF NOT EXISTS big (n bigint, filler text)");
Bun.gc(true);
const before = (await status()).VmRSS;
const filler = "abcdefghij".repeat(6);
async function* rows() {
  let sent = 0;
  for (let n = 0; sent < Number(megabytes) * 1e6; ) {
    let chunk = "";
    for (let i = 0; i < 1000; i++, n++) chunk += n + "\\t" + filler + "\\n";
    sent += chunk.length;
    yield chunk;
  }
}
const copied = await db.copyFrom("COPY big FROM STDIN", rows());
const peakUp = (await status()).VmHWM;
let bytes = 0, chunks = 0;
for await (const chunk of db.copyTo("COPY big TO STDOUT")) {
  bytes += chunk.length;
  chunks++;
}
const peak = (await status()).VmHWM;
await db.close();
console.log(JSON.stringify({ copied, bytes, before, peakUp, peak }));
`;

/**
 * The error `promise` rejects with. (Not `expect(promise).rejects`: bun test waits for that promise in a
 * nested event loop, where the COPY's own writes would not make progress.)
 */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

const availability = postgresAvailability();
if ("skipReason" in availability) console.log(`skipping the COPY tests: ${availability.skipReason}`);

describe.skipIf(!("bin" in availability))("COPY, both ways", () => {
  let cluster: PostgresCluster;
  let client: Client;
  let folder: string;
  beforeAll(async () => {
    if (!("bin" in availability)) return;
    cluster = await startPostgres(availability.bin);
    client = await connect(cluster.url("trust"));
    folder = mkdtempSync(join(tmpdir(), "pg-copy-"));
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await cluster?.stop();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  const count = async (table: string) =>
    Number((await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);

  test("100 MB goes up and comes back down in bounded memory (a child process's RSS)", async () => {
    const script = join(folder, "copy-load.ts");
    writeFileSync(script, CHILD);
    const child = Bun.spawn(["bun", script, cluster.url("trust"), "100"], { stdout: "pipe", stderr: "pipe" });
    const [output, errors, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect(errors).toBe("");
    expect(code).toBe(0);
    const { copied, bytes, before, peakUp, peak } = JSON.parse(output);
    const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
    console.log(
      `COPY 100 MB up then down: ${copied} rows; RSS ${mib(before)} MiB before, peak ${mib(peakUp)} MiB after FROM, ${mib(peak)} MiB after TO`,
    );
    expect(copied).toBeGreaterThan(1_400_000);
    expect(bytes).toBeGreaterThanOrEqual(100e6);
    // Holding the data would add 100 MB (as bytes; twice that as strings). The up direction stays within
    // 48 MiB; the down direction's garbage (a chunk per read) lets the peak rise further before the
    // collector catches up, but not with the data's size: a 1 GB run peaks at about the same.
    expect(peakUp - before).toBeLessThan(48 * 2 ** 20);
    expect(peak - before).toBeLessThan(112 * 2 ** 20);
  }, 120_000);

  test("a copyTo consumer that stops reading makes the server wait (ClientWrite), not our memory grow", async () => {
    const watcher = await connect(cluster.url("trust"));
    try {
      const rows = client.copyTo("COPY (SELECT repeat('z', 200) FROM generate_series(1, 2000000)) TO STDOUT");
      await rows.next(); // one chunk, then the consumer dawdles
      let waitEvent = "";
      for (let attempt = 0; attempt < 50 && waitEvent !== "ClientWrite"; attempt++) {
        await Bun.sleep(20);
        const { rows: activity } = await watcher.query<{ wait_event: string | null }>(
          "SELECT wait_event FROM pg_stat_activity WHERE pid = $1",
          [client.processId],
        );
        waitEvent = activity[0]?.wait_event ?? "";
      }
      expect(waitEvent).toBe("ClientWrite"); // the server is blocked sending: we stopped reading
      let bytes = 0;
      for await (const chunk of rows) bytes += chunk.length;
      expect(bytes).toBeGreaterThan(300e6); // and then all of it arrived
    } finally {
      await watcher.close();
    }
  }, 60_000);

  test("copyFrom takes strings, bytes and a ReadableStream, in text or CSV", async () => {
    await client.simpleQuery("CREATE TABLE small (n int, s text)");
    expect(await client.copyFrom("COPY small FROM STDIN", ["1\tone\n", "2\ttw", "o\n"])).toBe(2);
    const bytes = new TextEncoder().encode("3\tthree\n4\t\\N\n");
    expect(await client.copyFrom("COPY small FROM STDIN", [bytes.subarray(0, 5), bytes.subarray(5)])).toBe(2);
    const csv = new Response('5,"comma, and ""quote"""\n').body!;
    expect(await client.copyFrom("COPY small FROM STDIN (FORMAT csv)", csv)).toBe(1);
    const { rows } = await client.query("SELECT n, s FROM small ORDER BY n");
    expect(rows).toEqual([
      { n: 1, s: "one" },
      { n: 2, s: "two" },
      { n: 3, s: "three" },
      { n: 4, s: null },
      { n: 5, s: 'comma, and "quote"' },
    ]);
  });

  test("a source that fails in the middle cancels the COPY with CopyFail; the connection goes on", async () => {
    await client.simpleQuery("CREATE UNLOGGED TABLE failing (n bigint, filler text)");
    const error = await rejection(client.copyFrom("COPY failing FROM STDIN", generatedRows(100e6, 20e6)));
    expect(error).toBeInstanceOf(PgError);
    expect(error).toMatchObject({ code: "57014" });
    expect(error.message).toContain("the COPY source failed: the generator broke down");
    expect(await count("failing")).toBe(0); // nothing half-copied
    expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  });

  test("a source that yields something other than bytes or strings is cancelled with a clear reason", async () => {
    const source = ["1\tone\n", 42 as unknown as string];
    const error = await rejection(client.copyFrom("COPY small FROM STDIN", source));
    expect(error).toMatchObject({ code: "57014" });
    expect(error.message).toContain("the COPY source failed: it yielded number, not bytes or a string");
    expect((await client.query("SELECT 7 AS seven")).rows).toEqual([{ seven: 7 }]);
  });

  test("a bad row in the middle is the server's error, the rest is not sent, and the connection goes on", async () => {
    await client.simpleQuery("CREATE TABLE typed (n int)");
    async function* rows() {
      for (let i = 0; i < 100_000; i++) yield i === 5000 ? "not a number\n" : `${i}\n`;
    }
    expect(await rejection(client.copyFrom("COPY typed FROM STDIN", rows()))).toMatchObject({
      code: "22P02",
    });
    expect(await count("typed")).toBe(0);
    expect((await client.query("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
  });

  test("a COPY the server refuses at once (no such table) rejects, and later queries run", async () => {
    const failure = rejection(client.copyFrom("COPY no_such_table FROM STDIN", generatedRows(1e6)));
    const after = client.query("SELECT 3 AS three");
    expect(await failure).toMatchObject({ code: "42P01" });
    expect((await after).rows).toEqual([{ three: 3 }]);
  });

  test("queries issued during a copyFrom wait their turn and see its rows", async () => {
    await client.simpleQuery("CREATE TABLE turns (n int)");
    const copying = client.copyFrom(
      "COPY turns FROM STDIN",
      (async function* () {
        for (let i = 0; i < 100; i++) {
          await Bun.sleep(0);
          yield `${i}\n`;
        }
      })(),
    );
    const counted = client.query<{ n: bigint }>("SELECT count(*) AS n FROM turns");
    expect(await copying).toBe(100);
    expect((await counted).rows).toEqual([{ n: 100n }]);
  });

  test("copyTo yields the table's data, byte for byte", async () => {
    await client.simpleQuery(
      "CREATE TABLE out_rows AS SELECT g AS n, 'row ' || g AS s FROM generate_series(1, 20000) g",
    );
    const chunks: Uint8Array[] = [];
    for await (const chunk of client.copyTo("COPY out_rows TO STDOUT (FORMAT csv)")) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString();
    const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1},row ${i + 1}\n`).join("");
    expect(text).toBe(expected);
  });

  test("a failure in the middle of copyTo throws the server's error from the loop; the connection goes on", async () => {
    let received = 0;
    const consume = async () => {
      for await (const chunk of client.copyTo(
        "COPY (SELECT CASE WHEN g < 200000 THEN repeat('x', 100) ELSE (1 / (g - g))::text END FROM generate_series(1, 300000) g) TO STDOUT",
      ))
        received += chunk.length;
    };
    const error = await rejection(consume());
    expect(error).toBeInstanceOf(PgError);
    expect(error).toMatchObject({ code: "22012" });
    expect(received).toBeGreaterThan(1_000_000); // it failed in the middle, not at the start
    expect((await client.query("SELECT 4 AS four")).rows).toEqual([{ four: 4 }]);
  });

  test("leaving a copyTo loop early drops the rest and keeps the connection in step", async () => {
    let chunks = 0;
    for await (const _ of client.copyTo(
      "COPY (SELECT repeat('y', 1000) FROM generate_series(1, 50000)) TO STDOUT",
    )) {
      if (++chunks === 2) break;
    }
    expect(chunks).toBe(2);
    expect((await client.query("SELECT 5 AS five")).rows).toEqual([{ five: 5 }]);
  });

  test("COPY FROM STDIN through query() is refused with a clear error, and the connection goes on", async () => {
    expect((await rejection(client.query("COPY small FROM STDIN"))).message).toContain(
      "COPY FROM STDIN needs copyFrom(sql, source)",
    );
    expect((await client.query("SELECT 6 AS six")).rows).toEqual([{ six: 6 }]);
  });
});
