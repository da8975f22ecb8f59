import { afterEach, describe, expect, test } from "bun:test";
import {
  ConnectionLostError,
  openConnection,
  type StreamReader,
  type StreamServer,
  startServer,
} from "../lib/streams.ts";

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("openConnection and startServer over real sockets", () => {
  let server: StreamServer | undefined;
  afterEach(() => server?.close(true));

  test("a server on port 0 reports the real port and echoes lines", async () => {
    server = await startServer(async (reader, writer) => {
      for await (const line of reader) writer.write(line);
      writer.close();
    });
    expect(server.port).toBeGreaterThan(0);
    const [reader, writer] = await openConnection("127.0.0.1", server.port);
    writer.write("héllo\n");
    writer.write(utf8.encode("second\n"));
    expect(text(await reader.readLine())).toBe("héllo\n");
    expect(text(await reader.readLine())).toBe("second\n");
    writer.writeEof();
    expect((await reader.readLine()).length).toBe(0);
    await writer.waitClosed();
  });

  test("bytes sent one per TCP segment still make whole lines", async () => {
    server = await startServer(async (_reader, writer) => {
      for (const byte of utf8.encode("slow 🐢 line\nnext\n")) {
        writer.write(new Uint8Array([byte]));
        await Bun.sleep(1);
      }
      writer.close();
    });
    const [reader] = await openConnection("127.0.0.1", server.port);
    expect(text(await reader.readLine())).toBe("slow 🐢 line\n");
    expect(text(await reader.readLine())).toBe("next\n");
  });

  test("a refused connection rejects with ConnectionLostError naming the address", async () => {
    const probe = await startServer(() => {});
    const port = probe.port;
    probe.close(true);
    const error = await openConnection("127.0.0.1", port).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain("ECONNREFUSED");
  });

  test("a refused IPv6 address is named in brackets, [::1]:port, as in a URL", async () => {
    const error = await openConnection("::1", 1).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error.message).toStartWith("cannot connect to [::1]:1: ");
  });

  test("a client handler that throws aborts only its own connection", async () => {
    let calls = 0;
    const originalError = console.error;
    const logged: string[] = [];
    console.error = (message: string) => logged.push(message);
    try {
      server = await startServer(async (reader, writer) => {
        calls++;
        if (calls === 1) throw new Error("boom");
        writer.write(await reader.readLine());
        writer.close();
      });
      const [firstReader] = await openConnection("127.0.0.1", server.port);
      expect((await firstReader.read()).length).toBe(0);
      const [reader, writer] = await openConnection("127.0.0.1", server.port);
      writer.write("still serving\n");
      expect(text(await reader.readLine())).toBe("still serving\n");
      expect(logged).toEqual(["client handler failed: boom"]);
    } finally {
      console.error = originalError;
    }
  });

  test("a reader that stops reading pauses the socket: the server buffers at most about 2 × limit", async () => {
    const limit = 16 * 1024;
    const serverReader = Promise.withResolvers<StreamReader>();
    server = await startServer((reader) => serverReader.resolve(reader), { limit });
    const [, writer] = await openConnection("127.0.0.1", server.port);
    writer.write(new Uint8Array(8 * 1024 * 1024));
    const reader = await serverReader.promise;
    await Bun.sleep(200);
    // The chunk that crosses the threshold is kept whole: one socket read is up to Bun's read buffer.
    expect(reader.bufferedBytes).toBeLessThanOrEqual(2 * limit + 256 * 1024);
    expect(writer.bufferedBytes).toBeGreaterThan(0);
    // Reading resumes the socket, and every byte arrives.
    expect((await reader.readExactly(8 * 1024 * 1024)).length).toBe(8 * 1024 * 1024);
  });
});
