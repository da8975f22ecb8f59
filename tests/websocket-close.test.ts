/**
 * The closing handshake (RFC 6455 §5.5.1, §7; Autobahn group 7) and lib/websocket/close.ts: Close bodies
 * parsed and encoded, every valid code echoed, invalid codes and bodies failing the connection, data after
 * a Close ignored, TCP closed after — and the server's own close(): it waits for the peer's Close, and
 * not for ever.
 */
import { describe, expect, test } from "bun:test";
import {
  ClosePayloadError,
  encodeClose,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "../lib/websocket/close.ts";
import type { WebSocketConnection } from "../lib/websocket/connection.ts";
import {
  CLOSE,
  CONTINUATION,
  closeNormally,
  connect,
  expectFailed,
  expectText,
  PING,
  TCP_CLOSE_MS,
  TEXT,
  useEchoServer,
} from "./helpers/websocket-cases.ts";
import { closeBody, hex } from "./helpers/websocket-client.ts";

describe("close.ts", () => {
  test("isValidCloseCode: 1000–1003, 1007–1014, 3000–4999 and nothing else", () => {
    const valid: number[] = [];
    for (let code = 0; code < 70_000; code++) if (isValidCloseCode(code)) valid.push(code);
    const expected = [1000, 1001, 1002, 1003];
    for (let code = 1007; code <= 1014; code++) expected.push(code);
    for (let code = 3000; code <= 4999; code++) expected.push(code);
    expect(valid).toEqual(expected);
  });

  test("parseClosePayload: empty is 1005; code and UTF-8 reason", () => {
    expect(parseClosePayload(new Uint8Array(0))).toEqual({ code: 1005, reason: "" });
    expect(parseClosePayload(closeBody(4000, "κόσμε"))).toEqual({ code: 4000, reason: "κόσμε" });
  });

  test("parseClosePayload refuses a 1-byte body and invalid codes with 1002, a bad reason with 1007", () => {
    const codeOf = (payload: Uint8Array) => {
      try {
        parseClosePayload(payload);
        return null;
      } catch (error) {
        expect(error).toBeInstanceOf(ClosePayloadError);
        return (error as ClosePayloadError).closeCode;
      }
    };
    expect(codeOf(Uint8Array.of(3))).toBe(1002);
    expect(codeOf(closeBody(1005))).toBe(1002);
    expect(codeOf(closeBody(999))).toBe(1002);
    expect(codeOf(closeBody(1000, hex("ce ba ed a0 80")))).toBe(1007);
  });

  test("encodeClose: big-endian code, reason cut at a code point to 123 bytes; unsendable codes refused", () => {
    expect([...encodeClose(1000)]).toEqual([0x03, 0xe8]);
    const long = encodeClose(1001, "é".repeat(100)); // 200 bytes of reason
    expect(long.length).toBe(2 + 122); // 61 whole "é", not 61½
    expect(long.length - 2).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(parseClosePayload(long).reason).toBe("é".repeat(61));
    expect(() => encodeClose(1005)).toThrow(RangeError);
    expect(() => encodeClose(5000)).toThrow(RangeError);
  });
});

describe("7 the closing handshake, started by the client", () => {
  const server = useEchoServer();

  test("a message, then Close: the echo, then Close 1000, then TCP closed", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "Hello World!");
    await expectText(client, "Hello World!");
    await closeNormally(client);
  });

  test("an empty Close is answered with an empty Close (1005 is never sent)", async () => {
    const client = await connect(server());
    client.sendFrame(CLOSE);
    const frame = await client.readFrame();
    expect(frame.opcode).toBe(CLOSE);
    expect(frame.payload.length).toBe(0);
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
  });

  const validCodes = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
  ];
  for (const code of validCodes) {
    test(`Close ${code} with a reason is answered with ${code}`, async () => {
      const client = await connect(server());
      client.sendFrame(CLOSE, closeBody(code, "a reason"));
      const close = await client.readClose();
      expect(close.code).toBe(code);
      await client.waitForEnd(TCP_CLOSE_MS);
      client.close();
    });
  }

  const invalidCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535];
  for (const code of invalidCodes) {
    test(`Close with the invalid code ${code} fails the connection (1002)`, async () => {
      const client = await connect(server());
      client.sendFrame(CLOSE, closeBody(code));
      await expectFailed(client, 1002);
    });
  }

  test("a 1-byte Close body fails the connection (1002)", async () => {
    const client = await connect(server());
    client.sendFrame(CLOSE, Uint8Array.of(0x03));
    await expectFailed(client, 1002);
  });

  test("a 123-byte reason is fine; 124 makes the frame 126 bytes: 1002", async () => {
    let client = await connect(server());
    client.sendFrame(CLOSE, closeBody(1000, "*".repeat(123)));
    expect((await client.readClose()).code).toBe(1000);
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
    client = await connect(server());
    client.sendFrame(CLOSE, closeBody(1000, "*".repeat(124)));
    await expectFailed(client, 1002);
  });

  test("a reason that is not UTF-8 fails the connection (1007)", async () => {
    const client = await connect(server());
    client.sendFrame(CLOSE, closeBody(1000, hex("ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64")));
    await expectFailed(client, 1007);
  });

  test("data after the client's Close is ignored: no echo, no pong, a second Close unanswered", async () => {
    const client = await connect(server());
    client.sendFrame(CLOSE, closeBody(1000));
    client.sendFrame(TEXT, "after close");
    client.sendFrame(PING, "after close");
    client.sendFrame(CLOSE, closeBody(1000));
    const close = await client.readClose();
    expect(close.code).toBe(1000);
    expect(close.before).toEqual([]);
    await client.waitForEnd(TCP_CLOSE_MS);
    expect(client.pendingBytes).toBe(0);
    client.close();
  });

  test("a Close in the middle of a fragmented message: answered; the continuation after it ignored", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "fragment1", { fin: false });
    client.sendFrame(CLOSE, closeBody(1000));
    client.sendFrame(CONTINUATION, "fragment2");
    const close = await client.readClose();
    expect(close.code).toBe(1000);
    expect(close.before).toEqual([]);
    await client.waitForEnd(TCP_CLOSE_MS);
    expect(client.pendingBytes).toBe(0);
    client.close();
  });

  test("a big message, then Close: the whole echo first, then the Close", async () => {
    const client = await connect(server());
    const text = "x".repeat(256 * 1024);
    client.sendFrame(TEXT, text);
    client.sendFrame(CLOSE, closeBody(1000));
    await expectText(client, text);
    expect((await client.readClose()).code).toBe(1000);
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
  });

  test("the server reports how it ended: the client's code and reason, clean", async () => {
    const client = await connect(server());
    client.sendFrame(CLOSE, closeBody(4321, "done here"));
    await client.readClose();
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
    await Bun.sleep(20);
    expect(server().closes).toContainEqual({ code: 4321, reason: "done here", wasClean: true });
  });

  test("TCP ended with no Close (FIN at a frame boundary): the server closes too, and says 1006", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "bye");
    await expectText(client, "bye");
    const before = server().closes.length;
    client.shutdown();
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
    await Bun.sleep(20);
    expect(server().closes.slice(before)).toEqual([{ code: 1006, reason: "", wasClean: false }]);
  });
});

describe("7 the closing handshake, started by the server", () => {
  /** Connections the handler saw, for the tests to close. */
  const accepted: WebSocketConnection[] = [];
  /** What readMessage() threw, if it ever did (it must not). */
  const thrown: unknown[] = [];
  const server = useEchoServer({
    closeTimeoutMs: 300,
    async handler(connection) {
      accepted.push(connection);
      for (;;) {
        let message: Awaited<ReturnType<WebSocketConnection["readMessage"]>>;
        try {
          message = await connection.readMessage();
        } catch (error) {
          thrown.push(error);
          return;
        }
        if (message === null) return;
        if (message.type === "text" && message.text === "writer close") {
          connection.writer.close(); // what a chat room does when it drops a user
        } else if (message.type === "text" && message.text.startsWith("close ")) {
          const [, code, reason] = message.text.split(" ");
          void connection.close(Number(code), reason);
        } else if (message.type === "text") {
          connection.sendText(message.text);
        }
      }
    },
  });

  test("close(4001, 'bye'): Close 4001, then the peer's Close; TCP closed; reported clean", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "close 4001 bye");
    const close = await client.readClose();
    expect(close).toEqual({ code: 4001, reason: "bye", before: [] });
    client.sendFrame(CLOSE, closeBody(4001));
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
    const info = await accepted.at(-1)!.closed;
    expect(info).toEqual({ code: 4001, reason: "bye", wasClean: true });
  });

  test("after its Close the server sends nothing more: messages before the peer's Close are dropped", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "close 1000 x");
    await client.readClose();
    client.sendFrame(TEXT, "too late");
    client.sendFrame(PING, "too late");
    client.sendFrame(CLOSE, closeBody(1000));
    await client.waitForEnd(TCP_CLOSE_MS);
    expect(client.pendingBytes).toBe(0);
    client.close();
  });

  test("a peer that never answers the Close is cut at closeTimeoutMs (300 ms here), not later", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "close 1001 going");
    expect((await client.readClose()).code).toBe(1001);
    const started = performance.now();
    // The server's FIN comes right behind its Close; the socket itself goes when the timer cuts it.
    expect(await client.waitForEnd(TCP_CLOSE_MS)).toBeLessThan(150);
    const connection = accepted.at(-1)!;
    const info = await connection.closed;
    const waited = performance.now() - started;
    // It did wait for the peer's Close (a while), and then no longer than its timeout allows.
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(TCP_CLOSE_MS);
    expect(info).toEqual({ code: 1001, reason: "going", wasClean: false });
    client.close();
  });

  test("a broken frame instead of the Close answer: no second Close, TCP closed, reported as ours", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "close 4005 then-garbage");
    expect((await client.readClose()).code).toBe(4005);
    client.sendFrame(5, "reserved opcode"); // a protocol error while the server waits for our Close
    await client.waitForEnd(TCP_CLOSE_MS);
    const info = await accepted.at(-1)!.closed;
    expect(info).toEqual({ code: 4005, reason: "then-garbage", wasClean: false });
    expect(client.pendingBytes).toBe(0); // no second Close
    client.close();
  });

  test("the writer closed by its other owner (a room), then a ping: no Pong, no throw, the end", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "writer close");
    client.sendFrame(PING, "anyone?");
    await client.waitForEnd(TCP_CLOSE_MS);
    await accepted.at(-1)!.closed;
    expect(client.pendingBytes).toBe(0);
    expect(thrown).toEqual([]);
    client.close();
  });

  test("close() is idempotent, later sends throw, and a second readMessage() gets null", async () => {
    const client = await connect(server());
    client.sendFrame(TEXT, "hello");
    await expectText(client, "hello");
    const connection = accepted.at(-1)!;
    const first = connection.close(4002, "once");
    const second = connection.close(4003, "twice");
    expect(connection.isClosing()).toBe(true);
    expect(() => connection.sendText("after")).toThrow("after its Close");
    expect(await connection.readMessage()).toBeNull();
    const close = await client.readClose();
    expect(close.code).toBe(4002);
    client.sendFrame(CLOSE, closeBody(4002));
    await client.waitForEnd(TCP_CLOSE_MS);
    client.close();
    expect(await first).toEqual(await second);
    // Only one Close was sent.
    expect(client.pendingBytes).toBe(0);
  });

  test("close() with a code one may not send is a RangeError", () => {
    const connection = accepted.at(-1)!;
    expect(() => connection.close(1006)).toThrow(RangeError);
  });
});
