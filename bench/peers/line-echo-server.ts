/**
 * Lesson 04's echo without the await: the same framing and the same StreamWriter, but on lib's callback
 * line server — `onLine` writes the line back, no promise per line. Set beside lesson 04 in `bun run bench
 * echo`, the difference is what one awaited `readLine()` per line costs.
 */
import { type StreamWriter, startLineServer } from "../../lib/streams.ts";

const server = startLineServer<StreamWriter>(
  {
    onConnect: (connection) => connection.writer,
    onLine: (writer, line) => writer.write(`${line}\n`),
    onClose() {},
  },
  { port: Number(process.argv[2] ?? 0), maxLineBytes: 64 * 1024 },
);
console.log(`listening on ${server.hostname}:${server.port}`);
