import { afterEach, describe, expect, test } from "bun:test";
import { type LineConnection, type LineServer, startLineServer } from "../lib/streams.ts";
import { LineClient } from "./helpers/servers.ts";

let server: LineServer | undefined;
afterEach(() => server?.close(true));

interface Events {
  events: string[];
  connection: LineConnection<string[]> | null;
}

/** A line server that records every callback, and answers each line with `echo: LINE`. */
function recordingServer(options: { onEnd?: boolean; maxLineBytes?: number } = {}): Events {
  const seen: Events = { events: [], connection: null };
  server = startLineServer<string[]>(
    {
      onConnect(connection) {
        seen.connection = connection;
        seen.events.push("connect");
        return seen.events;
      },
      onLine(events, line) {
        events.push(`line ${line}`);
        seen.connection!.writer.write(`echo: ${line}\n`);
      },
      onLineTooLong(events, byteLength) {
        events.push(`too long ${byteLength}`);
      },
      onEnd: options.onEnd
        ? (events) => {
            events.push("end");
            seen.connection!.writer.write("bye\n");
            seen.connection!.writer.close();
          }
        : undefined,
      onClose(events, error) {
        events.push(error ? "close with error" : "close");
      },
    },
    { maxLineBytes: options.maxLineBytes ?? 64 },
  );
  return seen;
}

describe("startLineServer", () => {
  test("calls onConnect, onLine per line (\\n or \\r\\n), onLineTooLong, then onClose once", async () => {
    const seen = recordingServer();
    const client = await LineClient.connect(server!.port);
    client.send(`one\r\ntwo\n${"x".repeat(100)}\nthree\n`);
    expect([await client.line(), await client.line(), await client.line()]).toEqual([
      "echo: one",
      "echo: two",
      "echo: three",
    ]);
    client.abort();
    for (let tries = 0; tries < 100 && seen.events.at(-1)?.startsWith("close") !== true; tries++)
      await Bun.sleep(10);
    expect(seen.events.slice(0, 5)).toEqual([
      "connect",
      "line one",
      "line two",
      "too long 100",
      "line three",
    ]);
    expect(seen.events.filter((event) => event.startsWith("close"))).toHaveLength(1);
  });

  test("is half-open aware: the last line without a newline, then onEnd, and the replies still arrive", async () => {
    const seen = recordingServer({ onEnd: true });
    const client = await LineClient.connect(server!.port);
    client.send("first\nlast without newline");
    client.writer.writeEof();
    expect(await client.rest()).toEqual(["echo: first", "echo: last without newline", "bye"]);
    expect(seen.events.slice(0, 4)).toEqual(["connect", "line first", "line last without newline", "end"]);
  });

  test("without onEnd, EOF closes the connection after what is queued", async () => {
    recordingServer();
    const client = await LineClient.connect(server!.port);
    client.send("a\nb");
    client.writer.writeEof();
    expect(await client.rest()).toEqual(["echo: a", "echo: b"]);
  });

  test("pauseReading holds the next lines, in order, until resumeReading — EOF included", async () => {
    const seen: string[] = [];
    let connection: LineConnection<null> | null = null;
    server = startLineServer<null>(
      {
        onConnect(c) {
          connection = c;
          return null;
        },
        onLine(_, line) {
          seen.push(line);
          if (line === "wait") {
            connection!.pauseReading();
            setTimeout(() => {
              seen.push("(resumed)");
              connection!.resumeReading();
            }, 100);
          }
        },
        onEnd() {
          seen.push("(end)");
          connection!.writer.close();
        },
        onClose() {},
      },
      { maxLineBytes: 64 },
    );
    const client = await LineClient.connect(server.port);
    client.send("1\nwait\n2\n3\nlast");
    client.writer.writeEof();
    await client.rest();
    expect(seen).toEqual(["1", "wait", "(resumed)", "2", "3", "last", "(end)"]);
  });
});
