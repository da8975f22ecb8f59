import { describe, expect, test } from "bun:test";
import { DESCRIPTOR_RESERVE, ListenError, listen, openDescriptors, openFilesLimit } from "../lib/listen.ts";
import { startLineServer, startServer } from "../lib/streams.ts";

const handlers = { data() {} };

/** The ListenError `listen()` throws for `host:port`. */
function failure(host: string, port: number): ListenError {
  try {
    listen({ hostname: host, port, socket: handlers }).stop();
  } catch (error) {
    return error as ListenError;
  }
  throw new Error(`listening on ${host}:${port} worked`);
}

describe("listen() says why it cannot listen, in one line", () => {
  test("a busy port: address already in use, and how to pick a free one", () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: handlers });
    try {
      const error = failure("127.0.0.1", holder.port);
      expect(error).toBeInstanceOf(ListenError);
      expect(error.code).toBe("EADDRINUSE");
      expect(error.message).toBe(
        `cannot listen on 127.0.0.1:${holder.port}: address already in use — is another server running? (--port 0 picks a free port)`,
      );
    } finally {
      holder.stop(true);
    }
  });

  test("an address that is not this machine's, an unknown host name, and a malformed address", () => {
    expect(failure("203.0.113.7", 0).message).toBe(
      "cannot listen on 203.0.113.7:0: address not available — not an address of this machine (try 127.0.0.1 or 0.0.0.0)",
    );
    expect(failure("not a host", 0).message).toBe(
      "cannot listen on not a host:0: unknown host name (try 127.0.0.1 or 0.0.0.0)",
    );
    for (const host of ["256.1.1.1", "no-such-host.invalid"]) {
      expect(failure(host, 0).message).toBe(
        `cannot listen on ${host}:0: not an address this machine can listen on (try 127.0.0.1 or 0.0.0.0)`,
      );
    }
  });

  test("a privileged port without privileges: permission denied", async () => {
    if (process.getuid?.() !== 0) {
      expect(failure("127.0.0.1", 80).message).toStartWith(
        "cannot listen on 127.0.0.1:80: permission denied",
      );
      return;
    }
    // As root every port is allowed: try it as `nobody`.
    const child = Bun.spawnSync([
      "setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      process.execPath,
      `${import.meta.dir}/../scripts/04-echo-server.ts`,
      "--port",
      "80",
    ]);
    if (child.exitCode !== 1 && child.stderr.length === 0) {
      console.log("skipped: setpriv could not run the server as nobody here");
      return;
    }
    expect(child.stderr.toString().trim()).toBe(
      "error: cannot listen on 127.0.0.1:80: permission denied — ports below 1024 need privileges (pick one above 1023, or --port 0)",
    );
  });

  test("startServer and startLineServer throw the same ListenError", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: handlers });
    try {
      expect(startServer(() => {}, { port: holder.port })).rejects.toBeInstanceOf(ListenError);
      expect(() =>
        startLineServer(
          { onConnect() {}, onLine() {}, onClose() {} },
          {
            port: holder.port,
            maxLineBytes: 100,
          },
        ),
      ).toThrow(ListenError);
    } finally {
      holder.stop(true);
    }
  });
});

describe("the descriptor reserve", () => {
  test("reads this process's open-files limit and open descriptors from /proc", () => {
    const limit = openFilesLimit();
    const open = openDescriptors();
    expect(limit).toBeGreaterThan(0);
    expect(open).toBeGreaterThan(2);
    expect(open!).toBeLessThan(limit!);
    expect(DESCRIPTOR_RESERVE).toBe(32);
  });
});
