/**
 * bench/http.ts — lesson 02's keep-alive HttpClient against Bun's fetch and node:http with a keep-alive
 * agent: sequential GETs of a small body from a local Bun.serve in another process.
 */
import http from "node:http";
import { openConnection, type StreamWriter } from "../lib/streams.ts";
import { HttpClient } from "../scripts/02-http-streams.ts";
import { CANNED_RESPONSE } from "./http-server.ts";
import { compare, report, startChild } from "./measure.ts";

const REQUESTS_PER_ROUND = 3000;

/**
 * The floor: a canned request written with one `socket.write()`, and a wait for the canned response's
 * known length — no parsing, no framing. No client on this loopback can beat it.
 */
async function bareRoundTrip(port: number) {
  const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const responseBytes = CANNED_RESPONSE.length;
  let received = 0;
  let done: () => void = () => {};
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_socket, chunk) {
        received += chunk.length;
        if (received >= responseBytes) {
          received -= responseBytes;
          done();
        }
      },
    },
  });
  return {
    roundTrip: () =>
      new Promise<void>((resolve) => {
        done = resolve;
        socket.write(request);
      }),
    close: () => socket.end(),
  };
}

/**
 * One request/response connection of lib/streams, sending each request the way `send` does: what
 * StreamWriter's `writeNow()` buys over the pattern every lesson teaches, `write()` + `await drain()`
 * (whose bytes leave at the end of the event loop's turn, in the pass that flushes every writer).
 */
async function streamRoundTrip(port: number, send: (writer: StreamWriter, request: Uint8Array) => unknown) {
  const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const [reader, writer] = await openConnection("127.0.0.1", port);
  return {
    roundTrip: async () => {
      await send(writer, request);
      await reader.readExactly(CANNED_RESPONSE.length);
    },
    close: () => writer.close(),
  };
}

export async function benchHttp(rounds = 7): Promise<void> {
  const { port, child } = await startChild(["bun", `${import.meta.dir}/http-server.ts`]);
  const url = `http://127.0.0.1:${port}/`;
  const client = new HttpClient();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const nodeGet = () =>
    new Promise<void>((resolve, reject) => {
      http
        .get(url, { agent }, (response) => {
          response.on("data", () => {});
          response.on("end", resolve);
        })
        .on("error", reject);
    });
  const sequential = (get: () => Promise<unknown>) => async () => {
    for (let i = 0; i < REQUESTS_PER_ROUND; i++) await get();
    return REQUESTS_PER_ROUND;
  };
  const floor = await bareRoundTrip(port);
  const drained = await streamRoundTrip(port, (writer, request) => {
    writer.write(request);
    return writer.drain();
  });
  const flushed = await streamRoundTrip(port, (writer, request) => {
    writer.write(request);
    writer.flushNow();
  });
  const direct = await streamRoundTrip(port, (writer, request) => writer.writeNow(request));
  try {
    const results = await compare(
      [
        { name: "bare Bun.connect ping-pong (floor)", run: sequential(floor.roundTrip) },
        { name: "HttpClient.get (lesson 02)", run: sequential(() => client.get(url)) },
        { name: "fetch (Bun)", run: sequential(async () => (await fetch(url)).arrayBuffer()) },
        { name: "node:http (keep-alive agent)", run: sequential(nodeGet) },
      ],
      rounds,
    );
    report(
      `HTTP GET, sequential, keep-alive, ${REQUESTS_PER_ROUND} per round`,
      "requests/s",
      results,
      "HttpClient.get (lesson 02)",
      {
        "fetch (Bun)": 2,
        "node:http (keep-alive agent)": 1.2,
      },
    );
    const writes = await compare(
      [
        { name: "write() + await drain()", run: sequential(drained.roundTrip) },
        { name: "write() + flushNow()", run: sequential(flushed.roundTrip) },
        { name: "writeNow()", run: sequential(direct.roundTrip) },
      ],
      rounds,
    );
    report(
      `StreamWriter request/response, sequential, ${REQUESTS_PER_ROUND} per round: how the request is sent`,
      "requests/s",
      writes,
      "writeNow()",
    );
  } finally {
    client.close();
    floor.close();
    for (const connection of [drained, flushed, direct]) connection.close();
    agent.destroy();
    child.kill();
  }
}

if (import.meta.main) await benchHttp();
