/**
 * lib/pg against hostile and broken servers: a fake PostgreSQL in this process (tests/helpers/fake-postgres.ts)
 * scripted to skip SCRAM's final message, demand 10^8 iterations, announce a 1 GiB message before
 * authentication, or go silent — and the private PostgreSQL cluster where the real server is the case
 * (require_auth against real methods, a cancelled pg_sleep, a 100 MB bytea). Memory bounds are measured
 * as the resident memory of a child process (tests/helpers/pg-memory-probe.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MAX_SCRAM_ITERATIONS, ScramClient, ScramError, ScramIterationsError } from "../lib/pg/auth.ts";
import { MAX_MESSAGE_BYTES, MessageFramer, MessageTooLongError } from "../lib/pg/protocol.ts";
import { parseArray } from "../lib/pg/types.ts";
import {
  type Client,
  ConnectOptionsError,
  connect,
  PgAuthenticationRefusedError,
  PgConnectionError,
  PgQueryTimeoutError,
  parseRequireAuth,
  resolveOptions,
} from "../lib/pg.ts";
import {
  authentication,
  clientNonce,
  commandComplete,
  errorResponse,
  FAKE_PROCESS_ID,
  FAKE_SECRET_KEY,
  type FakeConnection,
  type FakePostgres,
  header,
  readyForQuery,
  startFakePostgres,
} from "./helpers/fake-postgres.ts";
import { type PostgresCluster, postgresAvailability, startPostgres, USERS } from "./helpers/postgres.ts";

const MiB = 1024 * 1024;
const SASL = 10;
const SASL_CONTINUE = 11;
const CLEARTEXT = 3;

let fake: FakePostgres | undefined;
afterAll(() => fake?.stop());

/** A fake server running `script`; the previous one is stopped. */
function fakeServer(script: (connection: FakeConnection) => void | Promise<void>): FakePostgres {
  fake?.stop();
  fake = startFakePostgres(script);
  return fake;
}

/** Runs the memory probe as a child process and returns its JSON line. */
async function probe(args: string[]): Promise<{
  error?: string;
  length?: number;
  peakBytes: number;
  afterCloseBytes: number;
}> {
  const child = Bun.spawn(["bun", `${import.meta.dir}/helpers/pg-memory-probe.ts`, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
  });
  const [stdout, stderr] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  await child.exited;
  if (!stdout.trim()) throw new Error(`the probe printed nothing (exit ${child.exitCode}): ${stderr}`);
  return JSON.parse(stdout);
}

// ── Item 9: authentication the server cannot bypass or stall ─────────────────────────────────────────

/** The fake's SCRAM: lists SCRAM-SHA-256, answers the client-first with `r=…,s=…,i=iterations`. */
async function startScram(connection: FakeConnection, iterations: number): Promise<boolean> {
  await connection.opening;
  connection.send(authentication(SASL, "SCRAM-SHA-256\0\0"));
  const initial = await connection.nextOfType("p");
  if (!initial) return false;
  const salt = Buffer.from("pepper and salt").toString("base64");
  connection.send(
    authentication(SASL_CONTINUE, `r=${clientNonce(initial.body)}fake,s=${salt},i=${iterations}`),
  );
  return true;
}

describe("authentication the server cannot bypass or stall", () => {
  test("a server that answers the SCRAM proof with AuthenticationOk and no signature is refused", async () => {
    const server = fakeServer(async (connection) => {
      if (!(await startScram(connection, 4096))) return;
      await connection.nextOfType("p"); // client-final-message, with the proof
      connection.acceptWithoutPassword(); // no SASLFinal: the server never proves it knows the password
    });
    await expect(connect(server.options({ password: "pw" }))).rejects.toThrow(
      "the server ended SCRAM-SHA-256 authentication without proving it knows the password",
    );
  });

  test("a server that sends AuthenticationOk right after the SCRAM mechanisms is refused too", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.send(authentication(SASL, "SCRAM-SHA-256\0\0"));
      await connection.nextOfType("p");
      connection.acceptWithoutPassword();
    });
    await expect(connect(server.options({ password: "pw" }))).rejects.toThrow(
      "without proving it knows the password",
    );
  });

  test("an authentication request after AuthenticationOk is refused: no password goes out", async () => {
    let answer: string | null | undefined;
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.send(authentication(0), authentication(CLEARTEXT));
      answer = (await connection.next())?.type ?? null;
    });
    await expect(connect(server.options({ password: "secret" }))).rejects.toThrow(
      "an authentication request (code 3) after authentication completed",
    );
    await server.connections[0]!.waitClosed();
    expect(answer).toBeNull();
  });

  test("a second server-first-message is refused", async () => {
    const scram = new ScramClient("pw", "abc");
    scram.clientFirstMessage();
    const first = scram.clientFinalMessage("r=abcdef,s=AA==,i=4096");
    const second = scram.clientFinalMessage("r=abcdef,s=AA==,i=4096");
    await expect(second).rejects.toThrow("SCRAM: a second server-first-message");
    await expect(second).rejects.toBeInstanceOf(ScramError);
    await first;
  });

  test("a server that demands 10^8 PBKDF2 iterations is refused at once, naming the count and the cap", async () => {
    let finalSent = false;
    const server = fakeServer(async (connection) => {
      if (!(await startScram(connection, 100_000_000))) return;
      finalSent = (await connection.next()) !== null;
    });
    const started = performance.now();
    const error = await connect(server.options({ password: "pw" })).catch((e) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(PgConnectionError);
    expect(error.cause).toBeInstanceOf(ScramIterationsError);
    expect(error.message).toBe(
      "connection failed: SCRAM: the server asks for 100,000,000 PBKDF2 iterations; this client computes at most 100,000",
    );
    expect(elapsed).toBeLessThan(2_000); // the synchronous PBKDF2 took ~11 s here
    expect(finalSent).toBe(false);
  });

  test("PBKDF2 runs off the event loop: timers keep firing while 60 logins derive their keys", async () => {
    // 60 derivations at the cap are ~0.7 s of hashing here; on the event loop (pbkdf2Sync) the timer below
    // would wait for all of it, so its longest gap would be the whole time.
    const salt = Buffer.from("salt").toString("base64");
    const logins = Array.from({ length: 60 }, (_, i) => new ScramClient("pw", `nonce${i}`));
    for (const scram of logins) scram.clientFirstMessage();
    let last = performance.now();
    let longestGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 2);
    const started = performance.now();
    try {
      await Promise.all(
        logins.map((scram, i) =>
          scram.clientFinalMessage(`r=nonce${i}fake,s=${salt},i=${MAX_SCRAM_ITERATIONS}`),
        ),
      );
    } finally {
      clearInterval(ticker);
    }
    longestGap = Math.max(longestGap, performance.now() - last); // the wait since the last tick counts too
    const elapsed = performance.now() - started;
    expect(longestGap).toBeLessThan(elapsed / 3);
  });
});

describe("requireAuth: libpq's require_auth", () => {
  test("reads libpq's syntax from options, the URL and PGREQUIREAUTH, and refuses bad lists in one line", () => {
    expect([...parseRequireAuth("scram-sha-256")!]).toEqual(["scram-sha-256"]);
    expect([...parseRequireAuth("md5,scram-sha-256")!]).toEqual(["md5", "scram-sha-256"]);
    expect([...parseRequireAuth("!password,!none")!]).toEqual(["md5", "scram-sha-256"]);
    expect(parseRequireAuth("")).toBeNull();
    expect(resolveOptions("postgres://a@h/d?require_auth=!password", {}).allowedAuth).toEqual(
      new Set(["md5", "scram-sha-256", "none"]),
    );
    expect(resolveOptions("postgres://a@h/d", { PGREQUIREAUTH: "md5" }).allowedAuth).toEqual(
      new Set(["md5"]),
    );
    expect(() => parseRequireAuth("md5,!none")).toThrow("negated and plain methods cannot be mixed");
    expect(() => parseRequireAuth("scram")).toThrow('unknown method "scram"');
    expect(() => parseRequireAuth("md5,md5")).toThrow('"md5" is listed twice');
    expect(() => parseRequireAuth("md5,")).toThrow('unknown method ""');
  });

  test("require_auth=scram-sha-256 refuses a cleartext request before any password is sent", async () => {
    let answer: string | null | undefined;
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.send(authentication(CLEARTEXT));
      answer = (await connection.next())?.type ?? null;
    });
    const error = await connect(server.options({ requireAuth: "scram-sha-256", password: "secret" })).catch(
      (e) => e,
    );
    expect(error).toBeInstanceOf(PgAuthenticationRefusedError);
    expect(error.message).toBe(
      "the server asks for password authentication, but require_auth=scram-sha-256 does not allow it; no password was sent",
    );
    await server.connections[0]!.waitClosed();
    expect(answer).toBeNull(); // the client closed without a PasswordMessage
  });

  test("require_auth=scram-sha-256 (or !none) refuses a server that lets anyone in (trust)", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword();
    });
    for (const rule of ["scram-sha-256", "!none"]) {
      await expect(connect(server.url(`require_auth=${rule}`))).rejects.toThrow(
        `the server let us in without authentication, but require_auth=${rule} does not allow that`,
      );
    }
    const client = await connect(server.url("require_auth=none"));
    await client.close();
  });
});

// ── Item 10: what the server may send, and for how long ──────────────────────────────────────────────

describe("memory the server cannot make us spend", () => {
  test("a 1 GiB ErrorResponse announced before authentication is refused from its header; RSS stays under 150 MiB", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.send(header("E", MAX_MESSAGE_BYTES));
      connection.stream(512 * MiB); // then as much of it as the client will take
    });
    const result = await probe(["connect", server.url("connect_timeout=5")]);
    expect(result.error).toBe(
      'PgConnectionError: connection failed: the server announced a 1,073,741,824-byte message (type "E") before authentication — the limit is 30,000 bytes',
    );
    expect(result.peakBytes).toBeLessThan(150 * MiB);
    expect(server.connections[0]!.sent).toBeLessThan(64 * MiB); // it stopped reading at once
  });

  test("an ErrorResponse of exactly libpq's 30,000 bytes before authentication is still read and reported", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      const fields = "SFATAL\0C28000\0M\0\0"; // the message text is filled to reach the limit
      const text = "x".repeat(30_000 - 4 - Buffer.byteLength(fields));
      connection.send(errorResponse("FATAL", "28000", text));
    });
    const error = await connect(server.options()).catch((e) => e);
    expect(error.code).toBe("28000");
    expect(error.message).toHaveLength(30_000 - 4 - "SFATAL\0C28000\0M\0\0".length);
  });

  test("an authentication request over libpq's 2,000 bytes is refused", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.send(authentication(SASL, `${"X".repeat(2_100)}\0\0`));
    });
    await expect(connect(server.url())).rejects.toThrow(
      'the server announced a 2,110-byte message (type "R") before authentication — the limit is 2,000 bytes',
    );
  });

  test("endless CopyInResponses to a plain query: the first is answered, the second fails the connection; RSS stays under 150 MiB", async () => {
    // A raw peer (it never reads what we send): trust login, then, once the query arrives, CopyInResponse
    // after CopyInResponse as fast as the client takes them, up to 512 MiB — then it hangs up.
    const copyIn = Buffer.from([0x47, 0, 0, 0, 7, 0, 0, 0]); // 'G', length 7, text format, 0 columns
    const block = Buffer.concat(Array.from({ length: 8192 }, () => copyIn)); // 64 KiB of them
    const floodBytes = 512 * MiB;
    let sent = 0;
    type Peer = { stage: "startup" | "login" | "flood" };
    const pump = (socket: Bun.Socket<Peer>) => {
      while (sent < floodBytes) {
        const offset = sent % block.length; // where the kernel stopped taking the last block
        const written = socket.write(block.subarray(offset));
        if (written <= 0) return; // the drain handler goes on
        sent += written;
        if (written < block.length - offset) return;
      }
      socket.end();
    };
    const listener = Bun.listen<Peer>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(socket) {
          socket.data = { stage: "startup" };
        },
        data(socket) {
          if (socket.data.stage === "startup") {
            socket.data.stage = "login";
            socket.write(Buffer.concat([authentication(0), readyForQuery()]));
          } else if (socket.data.stage === "login") {
            socket.data.stage = "flood";
            pump(socket);
          }
        },
        drain(socket) {
          if (socket.data.stage === "flood") pump(socket);
        },
      },
    });
    try {
      const url = `postgres://ann@127.0.0.1:${listener.port}/shop?sslmode=disable&connect_timeout=5`;
      const result = await probe(["simple", url, "SELECT 1"]);
      expect(result.error).toBe(
        "PgConnectionError: connection failed: a second CopyInResponse for the same query (the server is not following the protocol)",
      );
      expect(result.peakBytes).toBeLessThan(150 * MiB);
      expect(sent).toBeLessThan(64 * MiB); // the client stopped reading at once
    } finally {
      listener.stop(true);
    }
  }, 60_000);

  test("after authentication the cap is PostgreSQL's own 1 GiB", () => {
    const framer = new MessageFramer(() => {});
    framer.authenticated = true;
    expect(() => framer.push(header("D", MAX_MESSAGE_BYTES))).not.toThrow();
    const over = new MessageFramer(() => {});
    over.authenticated = true;
    expect(() => over.push(header("D", MAX_MESSAGE_BYTES + 1))).toThrow(MessageTooLongError);
  });
});

describe("a server that goes silent", () => {
  test("queryTimeoutMs cancels, and closes the connection when the cancel goes unanswered", async () => {
    const cancels: { processId: number; secretKey: number }[] = [];
    const server = fakeServer(async (connection) => {
      const opening = await connection.opening;
      if (opening.kind === "cancel") {
        cancels.push({ processId: opening.processId, secretKey: opening.secretKey });
        return; // and never acts on it
      }
      connection.acceptWithoutPassword(); // then silence
    });
    const client = await connect(server.options({ queryTimeoutMs: 300 }));
    const started = performance.now();
    const first = client.query("SELECT 1").catch((e) => e);
    const second = client.query("SELECT 2").catch((e) => e);
    const error = await first;
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(PgQueryTimeoutError);
    expect(error.message).toBe(
      "the query ran longer than 300 ms and was cancelled; the server did not answer the cancel, so the connection was closed",
    );
    expect(error.connectionClosed).toBe(true);
    expect(cancels).toEqual([{ processId: FAKE_PROCESS_ID, secretKey: FAKE_SECRET_KEY }]);
    expect(elapsed).toBeGreaterThan(300 + 1_500); // the 2 s grace for the cancel…
    expect(elapsed).toBeLessThan(300 + 2_000 + 3_000); // …and no more (generous margin for CI)
    expect(await second).toBeInstanceOf(PgConnectionError);
    expect(client.closed).toBe(true);
  });

  test("a server that answers the cancel keeps the connection: the query fails, the next one works", async () => {
    const server = fakeServer(async (connection) => {
      const opening = await connection.opening;
      if (opening.kind === "cancel") {
        // What PostgreSQL does: the cancelled query ends with 57014 on the main connection.
        const main = server.connections[0]!;
        main.send(
          errorResponse("ERROR", "57014", "canceling statement due to user request"),
          readyForQuery(),
        );
        return connection.close();
      }
      connection.acceptWithoutPassword();
      await connection.nextOfType("S"); // the first query: no answer until cancelled
      for (let message = await connection.next(); message; message = await connection.next()) {
        if (message.type === "S") connection.send(commandComplete("SELECT 0"), readyForQuery());
      }
    });
    const client = await connect(server.options({ queryTimeoutMs: 200 }));
    const error = await client.query("SELECT pg_sleep(60)").catch((e) => e);
    expect(error).toBeInstanceOf(PgQueryTimeoutError);
    expect(error.message).toBe("the query ran longer than 200 ms and was cancelled");
    expect(error.cause.code).toBe("57014");
    expect(client.closed).toBe(false);
    expect((await client.query("SELECT 1")).command).toBe("SELECT");
    await client.close();
  });

  test("TCP keepalive is on by default (libpq's keepalives=1) and off with keepalives=0", async () => {
    if (!Bun.which("ss")) return void console.log("skipped: the `ss` tool (iproute2) is not installed");
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword();
    });
    /** The keepalive timer `ss` shows for the client's end of its connection to the fake. */
    const timerOf = (connection: FakeConnection) => {
      const out = Bun.spawnSync([
        "ss",
        "-tnoH",
        "state",
        "established",
        `( sport = :${connection.clientPort} )`,
      ]);
      return /timer:\((keepalive)/.exec(out.stdout.toString())?.[1] ?? "none";
    };
    const withKeepalive = await connect(server.url());
    const without = await connect(server.url("keepalives=0"));
    try {
      expect(timerOf(server.connections[0]!)).toBe("keepalive");
      expect(timerOf(server.connections[1]!)).toBe("none");
    } finally {
      await withKeepalive.close();
      await without.close();
    }
  });
});

describe("what a client must never send", () => {
  test("a NUL byte in any startup string is refused before connecting (%00 injected parameters)", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword();
    });
    const base = `127.0.0.1:${server.port}`;
    const cases: [string | Parameters<typeof connect>[0], string][] = [
      [`postgres://ann%00search_path%00pwned@${base}/shop`, "the user contains a NUL byte (%00 in a URL)"],
      [`postgres://ann@${base}/shop%00search_path%00pwned`, "the database contains a NUL byte"],
      [`postgres://ann@${base}/shop?application_name=a%00b`, "the application name contains a NUL byte"],
      [
        { host: "127.0.0.1", port: server.port, user: "ann", password: "p\0w" },
        "the password contains a NUL byte",
      ],
    ];
    for (const [settings, message] of cases) {
      const error = await connect(settings).catch((e) => e);
      expect(error).toBeInstanceOf(ConnectOptionsError);
      expect(error.message).toStartWith(message);
    }
    expect(server.connections).toHaveLength(0);
  });

  test("more than 65,535 parameters is a clear error before anything is sent", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword();
      await connection.answerQueries();
    });
    const client = await connect(server.url());
    const error = await client.query("SELECT 1", new Array(65_536).fill(1)).catch((e) => e);
    expect(error).toBeInstanceOf(RangeError);
    expect(error.message).toBe("a query takes at most 65,535 parameters; this one has 65,536");
    expect(server.connections[0]!.received).toBe(0);
    expect((await client.query("SELECT 1")).command).toBe("SELECT"); // and the connection goes on
    await client.close();
  });

  test("a NUL byte in SQL text is refused before anything is sent, by every way of sending SQL", async () => {
    const server = fakeServer(async (connection) => {
      await connection.opening;
      connection.acceptWithoutPassword();
      await connection.answerQueries();
    });
    const client = await connect(server.url());
    const nul = "SELECT 1\0; SELECT 2";
    const attempts = [
      client.query(nul),
      client.simpleQuery(nul),
      client.copyFrom(`COPY t FROM STDIN\0`, []),
      (async () => {
        for await (const _ of client.copyTo(`COPY t TO STDOUT\0`));
      })(),
    ];
    for (const attempt of attempts) {
      const error = await attempt.catch((e) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).toBe(
        "the SQL text contains a NUL byte (\\0), which PostgreSQL's protocol cannot carry",
      );
    }
    expect(server.connections[0]!.received).toBe(0);
    expect((await client.query("SELECT 1")).command).toBe("SELECT"); // and the connection goes on
    await client.close();
  });
});

describe("array literals", () => {
  test("an unterminated array literal is an error, not an endless loop", async () => {
    // In a child process with a deadline: the old parser never returned.
    const literals = ['{"abc', '{"ab\\', "{1,2", "{{1,2}", "{1}}", "[1:2]{1,2}", "{"];
    const script = `
      import { parseArray } from "${import.meta.dir}/../lib/pg/types.ts";
      for (const literal of ${JSON.stringify(literals)}) {
        try { parseArray(literal, (text) => text); console.log("parsed"); }
        catch (error) { console.log(error.message); }
      }`;
    const child = Bun.spawn(["bun", "-e", script], { stdout: "pipe", timeout: 10_000 });
    const output = await new Response(child.stdout).text();
    expect(await child.exited).toBe(0);
    expect(output.trim().split("\n")).toEqual(
      literals.map((literal) => `malformed array literal: ${literal}`),
    );
    expect(parseArray('{"a\\"b",NULL,"NULL"}', (text) => text)).toEqual(['a"b', null, "NULL"]);
  });
});

// ── The real server where it is the case ─────────────────────────────────────────────────────────────

const availability = postgresAvailability();

if ("skipReason" in availability) {
  test.skip(`against real PostgreSQL (skipped: ${availability.skipReason})`, () => {});
  console.log(`pg-hostile: real-PostgreSQL cases skipped: ${availability.skipReason}`);
} else {
  describe("against real PostgreSQL", () => {
    let cluster: PostgresCluster;
    beforeAll(async () => {
      cluster = await startPostgres(availability.bin);
    }, 60_000);
    afterAll(() => cluster?.stop());

    test("require_auth: trust and md5 refused where scram-sha-256 is required; scram-sha-256 accepted", async () => {
      await expect(connect(`${cluster.url("trust")}?require_auth=scram-sha-256`)).rejects.toThrow(
        "the server let us in without authentication, but require_auth=scram-sha-256 does not allow that",
      );
      await expect(connect(`${cluster.url("md5")}?require_auth=!md5,!password`)).rejects.toThrow(
        "the server asks for md5 authentication, but require_auth=!md5,!password does not allow it",
      );
      const client = await connect(`${cluster.url("scram")}?require_auth=scram-sha-256`);
      expect((await client.query("SELECT current_user AS me")).rows).toEqual([{ me: USERS.scram.user }]);
      await client.close();
    });

    test("queryTimeoutMs cancels pg_sleep(60) with 57014 and the connection goes on", async () => {
      const client: Client = await connect({
        host: cluster.host,
        port: cluster.port,
        user: USERS.trust.user,
        database: "postgres",
        queryTimeoutMs: 300,
      });
      try {
        const started = performance.now();
        const error = await client.query("SELECT pg_sleep(60)").catch((e) => e);
        expect(error).toBeInstanceOf(PgQueryTimeoutError);
        expect(error.connectionClosed).toBe(false);
        expect(error.cause.code).toBe("57014");
        expect(performance.now() - started).toBeLessThan(300 + 2_000);
        expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      } finally {
        await client.close();
      }
    });

    /** What each of `outcomes` was: answered, its own timeout, or cancelled though its own timer never fired. */
    function tally(outcomes: unknown[]) {
      const count = { answered: 0, timedOut: 0, cancelledByAnother: 0, other: [] as unknown[] };
      for (const outcome of outcomes) {
        if (outcome instanceof PgQueryTimeoutError) count.timedOut++;
        else if (outcome instanceof Error && (outcome as { code?: string }).code === "57014")
          count.cancelledByAnother++;
        else if (outcome instanceof Error) count.other.push(outcome);
        else count.answered++;
      }
      return count;
    }

    // Queries sleep 15, 20, 25, 30 or 35 ms against a 20 ms timeout: the longer ones are cancelled, and the
    // others end just as their timer fires, so the CancelRequest sent then reaches the server after its
    // query is over. It must never cancel another.
    const RACE_QUERIES = 200;
    const raceQuery = (client: Client, i: number) =>
      client.query("SELECT pg_sleep($1)", [0.015 + (i % 5) * 0.005]).catch((error) => error);
    const raceOptions = () => ({
      host: cluster.host,
      port: cluster.port,
      user: USERS.trust.user,
      database: "postgres",
      queryTimeoutMs: 20,
    });

    test("queryTimeoutMs: of 200 queries issued at once, a late cancel never cancels the next one", async () => {
      const client = await connect(raceOptions());
      try {
        const outcomes = await Promise.all(
          Array.from({ length: RACE_QUERIES }, (_, i) => raceQuery(client, i)),
        );
        const count = tally(outcomes);
        expect(count.other).toEqual([]);
        expect(count.cancelledByAnother).toBe(0);
        expect(count.timedOut).toBeGreaterThan(0); // the race was run
        expect(count.answered + count.timedOut).toBe(RACE_QUERIES);
        expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      } finally {
        await client.close();
      }
    }, 60_000);

    test("queryTimeoutMs: of 200 queries each sent once the one before has settled, none is cancelled by another's timeout", async () => {
      const client = await connect(raceOptions());
      try {
        const outcomes: unknown[] = [];
        for (let i = 0; i < RACE_QUERIES; i++) outcomes.push(await raceQuery(client, i));
        const count = tally(outcomes);
        expect(count.other).toEqual([]);
        expect(count.cancelledByAnother).toBe(0);
        expect(count.timedOut).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    }, 60_000);

    // The value (100 MB) plus its hex text in the Bind message (200 MB) plus Bun itself (~40 MiB) is ~330 MiB:
    // nothing else may be copied. After close() the client keeps nothing of it.
    test("a 100 MB bytea parameter peaks under 400 MiB and leaves under 100 MiB after close()", async () => {
      const result = await probe(["bytea", cluster.url("trust"), String(100_000_000)]);
      expect(result.error).toBeUndefined();
      expect(result.length).toBe(100_000_000);
      console.log(
        `100 MB bytea: peak ${(result.peakBytes / MiB).toFixed(0)} MiB, after close ${(result.afterCloseBytes / MiB).toFixed(0)} MiB`,
      );
      expect(result.peakBytes).toBeLessThan(400 * MiB);
      expect(result.afterCloseBytes).toBeLessThan(100 * MiB);
    }, 60_000);
  });
}
