/**
 * Naive counterpart of lesson 04 — an echo server that forgets `await writer.drain()`
 *
 * The mistake, on purpose: each line read is written back with `writer.write(line)` and nothing else.
 * `write()` never waits — it only queues. A client that sends and never reads makes the server read on
 * and queue every echo in its own memory: nothing tells the loop to stop reading. (asyncio's
 * `StreamWriter.write()` is the same: "not a coroutine", it fills a buffer, and `await writer.drain()` is
 * the only brake.)
 *
 * Lesson 04 (scripts/04-echo-server.ts) fixes it with one line: `await writer.drain()` after the write.
 * While the client is not reading, that await does not return, the loop stops calling `readLine()`, the
 * reader stops taking bytes from the socket, and the client's own sends stall — once the kernel's socket
 * buffers are full (~10 MiB between two processes on Linux loopback, measured), not at whatever the
 * client chose to send.
 *
 * Break it:  bun scripts/naive/echo-no-drain.ts --port 8001      (one terminal)
 *            bun scripts/naive/break.ts no-read --port 8001       (another: it sends 64 MiB, reads nothing)
 *            The same attack against lesson 04: `bun scripts/04-echo-server.ts` (port 8000), then
 *            `bun scripts/naive/break.ts no-read --port 8000`.
 *
 * Nothing else of lesson 04's care is here either — no --max-clients, no --idle, and a line over 64 KiB
 * ends that client's coroutine with an error — so that the one line that matters stands out.
 *
 * It still listens on 127.0.0.1 by default: a broken server should not be reachable from the network.
 */
import { parseCommandLine } from "../../lib/args.ts";
import { ListenError, type StreamReader, type StreamWriter, startServer } from "../../lib/streams.ts";

export const FLAGS = {
  host: { kind: "string", default: "127.0.0.1", help: "address to listen on" },
  port: { kind: "int", default: 8000, min: 0, max: 65535, help: "port to listen on; 0 picks a free one" },
} as const;

const clients = new Set<StreamWriter>();

async function echo(reader: StreamReader, writer: StreamWriter) {
  const others = clients.size;
  clients.add(writer);
  writer.write(`welcome! ${others} other client${others === 1 ? " is" : "s are"} connected.\n`);
  try {
    for (;;) {
      const line = await reader.readLine();
      if (line.length === 0) break; // EOF
      writer.write(line); // ← the mistake: no `await writer.drain()` after it
    }
  } finally {
    clients.delete(writer);
    writer.close();
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const parsed = parseCommandLine(argv, FLAGS, "bun scripts/naive/echo-no-drain.ts [--host H] [--port P]");
  if ("exitCode" in parsed) return parsed.exitCode;
  const { host, port } = parsed.flags;
  try {
    const server = await startServer(echo, { host, port });
    console.log(`listening on ${server.hostname}:${server.port}`);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
  await new Promise(() => {}); // serve until killed (Ctrl+C)
  return 0;
}

if (import.meta.main) process.exit(await main());

/* A real run, while `bun scripts/naive/break.ts no-read --port 18500` sent it 64 MiB and read nothing (the
   attacker reported: rss 31.8 MiB → 128.9 MiB; lesson 04 under the same attack: 32.1 MiB → 44.9 MiB):

$ bun scripts/naive/echo-no-drain.ts --port 18500
listening on 127.0.0.1:18500
client handler failed: connection lost: ECONNRESET: connection reset by peer, read
*/
