import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import {
  type Client,
  ConnectOptionsError,
  connect,
  PgConnectionError,
  PgError,
  PgTlsError,
  resolveOptions,
} from "../lib/pg.ts";
import {
  type PostgresCluster,
  postgresAvailability,
  startPglite,
  startPostgres,
  USERS,
} from "./helpers/postgres.ts";
import { startInPty } from "./helpers/pty.ts";

// What the server itself says about the connection: TLS or not (pg_stat_ssl), and over which socket
// (inet_server_addr() is NULL on a Unix-domain socket).
async function serverView(client: Client) {
  const { rows } = await client.query<{ ssl: boolean; address: string | null }>(
    "SELECT ssl, inet_server_addr()::text AS address FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
  );
  return rows[0]!;
}

async function using<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

const availability = postgresAvailability();
if ("skipReason" in availability)
  console.log(`skipping the TLS and socket tests: ${availability.skipReason}`);

describe.skipIf(!("bin" in availability))("PostgreSQL with ssl=on and a Unix-domain socket", () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    if ("bin" in availability) cluster = await startPostgres(availability.bin);
  }, 60_000);
  afterAll(() => cluster?.stop());

  /** The scram user's URL on `host`, with `query` appended. */
  const scramUrl = (query: string, host = "127.0.0.1") =>
    cluster.url("scram").replace("@127.0.0.1:", `@${host}:`) + (query ? `?${query}` : "");

  describe("sslmode", () => {
    test("disable speaks plain TCP", async () => {
      await using(scramUrl("sslmode=disable"), async (client) => {
        expect(client.tls).toBe(false);
        expect(await serverView(client)).toEqual({ ssl: false, address: "127.0.0.1/32" });
      });
    });

    test("prefer (the default) uses TLS when the server offers it", async () => {
      await using(scramUrl(""), async (client) => {
        expect(client.tls).toBe(true);
        expect((await serverView(client)).ssl).toBe(true);
      });
    });

    test("a user pg_hba.conf lets in only over TLS (a hosted database): disable is refused, prefer and allow connect", async () => {
      const url = (mode: string) => `${cluster.url("tlsOnly")}?sslmode=${mode}`;
      const refused = connect(url("disable"));
      await expect(refused).rejects.toMatchObject({ code: "28000" });
      await expect(refused).rejects.toThrow("no encryption");
      for (const mode of ["prefer", "allow"]) {
        await using(url(mode), async (client) => expect((await serverView(client)).ssl).toBe(true));
      }
    });

    test("require takes the server's certificate unchecked, and queries run over TLS", async () => {
      await using(scramUrl("sslmode=require"), async (client) => {
        expect((await serverView(client)).ssl).toBe(true);
        // Big enough to cross many TLS records both ways, pipelined.
        const big = "é".repeat(300_000);
        const [echo, count] = await Promise.all([
          client.query<{ t: string }>("SELECT $1::text AS t", [big]),
          client.query<{ n: bigint }>("SELECT count(*) AS n FROM generate_series(1, 50000)"),
        ]);
        expect(echo.rows[0]!.t).toBe(big);
        expect(count.rows[0]!.n).toBe(50_000n);
      });
    });

    test("verify-ca accepts a certificate signed by sslrootcert, whatever host name it names", async () => {
      // The certificate names localhost; we connect to 127.0.0.1 — fine for verify-ca.
      await using(scramUrl(`sslmode=verify-ca&sslrootcert=${cluster.tls.caFile}`), async (client) => {
        expect((await serverView(client)).ssl).toBe(true);
      });
    });

    test("verify-ca refuses a certificate from an untrusted CA", async () => {
      const failure = connect(scramUrl(`sslmode=verify-ca&sslrootcert=${cluster.tls.otherCaFile}`));
      await expect(failure).rejects.toBeInstanceOf(PgTlsError);
      await expect(failure).rejects.toThrow(
        "the server's certificate is refused (verify-ca): unable to verify the first certificate",
      );
    });

    test("require with an sslrootcert checks the CA, as libpq does", async () => {
      await expect(
        connect(scramUrl(`sslmode=require&sslrootcert=${cluster.tls.otherCaFile}`)),
      ).rejects.toThrow("the server's certificate is refused (verify-ca)");
    });

    test("verify-full connects when the host name is the certificate's", async () => {
      await using(
        scramUrl(`sslmode=verify-full&sslrootcert=${cluster.tls.caFile}`, "localhost"),
        async (client) => expect((await serverView(client)).ssl).toBe(true),
      );
    });

    test("verify-full refuses the right CA's certificate for another host name", async () => {
      const failure = connect(scramUrl(`sslmode=verify-full&sslrootcert=${cluster.tls.caFile}`));
      await expect(failure).rejects.toBeInstanceOf(PgTlsError);
      await expect(failure).rejects.toThrow(
        "the server's certificate is refused (verify-full): Hostname/IP does not match certificate's altnames",
      );
    });

    test("verify-full refuses an untrusted CA even for the right host name", async () => {
      await expect(
        connect(scramUrl(`sslmode=verify-full&sslrootcert=${cluster.tls.otherCaFile}`, "localhost")),
      ).rejects.toThrow("the server's certificate is refused (verify-full): unable to verify");
    });

    test("cancel() works over TLS", async () => {
      await using(scramUrl("sslmode=require"), async (client) => {
        const sleeping = client.query("SELECT pg_sleep(10)");
        sleeping.catch(() => {}); // it may reject before cancel() returns; checked below
        await Bun.sleep(200);
        await client.cancel();
        await expect(sleeping).rejects.toMatchObject({ code: "57014" });
        expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      });
    });
  });

  describe("SCRAM over TLS", () => {
    test("binds the login to the TLS session: SCRAM-SHA-256-PLUS with tls-server-end-point", async () => {
      await using(scramUrl("sslmode=require&channel_binding=require"), async (client) => {
        expect(client.saslMechanism).toBe("SCRAM-SHA-256-PLUS");
        expect((await serverView(client)).ssl).toBe(true);
      });
    });

    test("channel_binding=disable logs in with plain SCRAM-SHA-256 over TLS", async () => {
      await using(scramUrl("sslmode=require&channel_binding=disable"), async (client) => {
        expect(client.saslMechanism).toBe("SCRAM-SHA-256");
        expect(client.tls).toBe(true);
      });
    });

    test("a wrong password over TLS is still the server's 28P01", async () => {
      const url = cluster.url("scram", "wrong").replace("/postgres", "/postgres?sslmode=require");
      const failure = connect(url);
      await expect(failure).rejects.toBeInstanceOf(PgError);
      await expect(failure).rejects.toMatchObject({ code: "28P01" });
    });

    test("channel_binding=require refuses a connection without TLS, before any password is sent", async () => {
      await expect(connect(scramUrl("sslmode=disable&channel_binding=require"))).rejects.toThrow(
        "channel_binding=require needs TLS (sslmode=require or stronger)",
      );
    });

    test("channel_binding=require refuses a server that asks for a cleartext password", async () => {
      const url = `${cluster.url("password")}?sslmode=require&channel_binding=require`;
      await expect(connect(url)).rejects.toThrow(
        "channel_binding=require, but the server asked for a cleartext password",
      );
    });
  });

  describe("lesson 03's --url", () => {
    test("takes sslmode and sslrootcert: verify-full connects by the certificate's name", async () => {
      const url = scramUrl(`sslmode=verify-full&sslrootcert=${cluster.tls.caFile}`, "localhost");
      const lesson = startInPty(["bun", "scripts/03-sql-client.ts", "--url", url]);
      try {
        await lesson.waitFor((rows) => rows.join("\n").includes("Connected to"), "the connected banner");
        lesson.type("select ssl from pg_stat_ssl where pid = pg_backend_pid()\r");
        await lesson.waitFor((rows) => rows.some((row) => row.trim() === "true"), "ssl = true");
        lesson.type("\\q\r");
        expect(await lesson.exited).toBe(0);
      } finally {
        lesson.kill();
      }
    }, 30_000);

    test("and refuses a certificate for another name with one line", async () => {
      const url = scramUrl(`sslmode=verify-full&sslrootcert=${cluster.tls.caFile}`);
      const lesson = startInPty(["bun", "scripts/03-sql-client.ts", "--url", url]);
      try {
        const rows = await lesson.waitFor(
          (rows) => rows.join("\n").includes("Cannot connect"),
          "the refusal",
        );
        expect(rows.join("\n")).toContain(
          "Cannot connect: the server's certificate is refused (verify-full)",
        );
        expect(await lesson.exited).toBe(1);
      } finally {
        lesson.kill();
      }
    }, 30_000);
  });

  describe("Unix-domain socket", () => {
    test("host=/dir in the URL connects to /dir/.s.PGSQL.<port>, without TLS", async () => {
      const url = `postgres://${USERS.trust.user}@/postgres?host=${cluster.socketDir}&port=${cluster.port}`;
      await using(url, async (client) => {
        expect(client.tls).toBe(false);
        expect(await serverView(client)).toEqual({ ssl: false, address: null });
      });
    });

    test("PGHOST=/dir works too, and so does a percent-encoded host", async () => {
      expect(resolveOptions({}, { PGHOST: cluster.socketDir, PGPORT: String(cluster.port) })).toMatchObject({
        socketPath: `${cluster.socketDir}/.s.PGSQL.${cluster.port}`,
        sslmode: "disable",
      });
      const encoded = `postgres://postgres@${encodeURIComponent(cluster.socketDir)}:${cluster.port}/postgres`;
      await using(encoded, async (client) => expect((await serverView(client)).address).toBeNull());
    });

    test("cancel() works over the socket", async () => {
      const url = `postgres://postgres@/postgres?host=${cluster.socketDir}&port=${cluster.port}`;
      await using(url, async (client) => {
        const sleeping = client.query("SELECT pg_sleep(10)");
        sleeping.catch(() => {}); // it may reject before cancel() returns; checked below
        await Bun.sleep(200);
        await client.cancel();
        await expect(sleeping).rejects.toMatchObject({ code: "57014" });
      });
    });

    test("a directory with no server's socket is one clear line", async () => {
      const failure = connect(`postgres://postgres@/postgres?host=/nonexistent&port=${cluster.port}`);
      await expect(failure).rejects.toBeInstanceOf(PgConnectionError);
      await expect(failure).rejects.toThrow(
        `cannot connect to PostgreSQL at /nonexistent/.s.PGSQL.${cluster.port}: no such socket`,
      );
    });
  });
});

describe("a server without TLS (PGlite answers N)", () => {
  let pglite: Awaited<ReturnType<typeof startPglite>>;
  beforeAll(async () => {
    pglite = await startPglite();
  }, 60_000);
  afterAll(() => pglite?.stop());

  test("prefer goes on in plain text", async () => {
    await using(pglite.url, async (client) => {
      expect(client.tls).toBe(false);
      expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    });
  });

  test("require is one clear error", async () => {
    const failure = connect(`${pglite.url}?sslmode=require`);
    await expect(failure).rejects.toBeInstanceOf(PgTlsError);
    await expect(failure).rejects.toThrow(
      `the server at 127.0.0.1:${pglite.port} does not offer TLS, and sslmode=require requires it`,
    );
  });
});

describe("TLS settings", () => {
  test("sslmode, sslrootcert and channel_binding come from the URL or from PGSSLMODE / PGSSLROOTCERT", () => {
    const ca = import.meta.path; // any file that exists
    expect(
      resolveOptions(`postgres://h/db?sslmode=verify-full&sslrootcert=${ca}&channel_binding=require`, {}),
    ).toMatchObject({ sslmode: "verify-full", sslrootcert: ca, channelBinding: "require" });
    expect(resolveOptions("postgres://h/db", { PGSSLMODE: "verify-ca", PGSSLROOTCERT: ca })).toMatchObject({
      sslmode: "verify-ca",
      sslrootcert: ca,
    });
    expect(resolveOptions("postgres://h/db", {})).toMatchObject({
      sslmode: "prefer",
      channelBinding: "prefer",
    });
  });

  test("with no host at all, libpq's default socket directory is used when a socket is there, else localhost", () => {
    const port = 40_000 + Math.floor(Math.random() * 20_000);
    const socket = `/tmp/.s.PGSQL.${port}`;
    expect(resolveOptions({ port }, {})).toMatchObject({ host: "localhost", socketPath: null });
    writeFileSync(socket, ""); // existence is what is checked; connecting would then say what is wrong
    try {
      expect(resolveOptions({ port }, {})).toMatchObject({ host: "/tmp", socketPath: socket });
      expect(resolveOptions({ port, host: "db.example" }, {})).toMatchObject({ socketPath: null });
    } finally {
      rmSync(socket, { force: true });
    }
  });

  test("mistakes are one line each", () => {
    expect(() => resolveOptions("postgres://h/db?sslmode=verify-full", {})).toThrow(ConnectOptionsError);
    expect(() => resolveOptions("postgres://h/db?sslmode=verify-full", {})).toThrow(
      "sslmode=verify-full needs the CA to trust: give sslrootcert=/path/to/ca.pem, or sslrootcert=system",
    );
    expect(() => resolveOptions("postgres://h/db?sslrootcert=/no/such.pem", {})).toThrow(
      "sslrootcert: no such file: /no/such.pem",
    );
    expect(() => resolveOptions("postgres://h/db?channel_binding=maybe", {})).toThrow(
      'invalid channel_binding "maybe"',
    );
  });

  test("a server that sends bytes after its S (before the TLS handshake) is refused", async () => {
    // CVE-2021-23222: bytes injected there would be read as if they had come through TLS.
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("SZ\0\0\0\x05I");
        },
      },
    });
    try {
      await expect(connect(`postgres://u@127.0.0.1:${server.port}/db?sslmode=require`)).rejects.toThrow(
        "the server answered SSLRequest with 7 bytes instead of one",
      );
    } finally {
      server.stop(true);
    }
  });

  test("a server that says S and then never starts the handshake is the connect timeout, not a hang", async () => {
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("S");
        },
      },
    });
    try {
      const started = performance.now();
      await expect(
        connect({ host: "127.0.0.1", port: server.port, sslmode: "require", connectTimeoutMs: 300 }),
      ).rejects.toThrow(`timed out after 0.3 s connecting to 127.0.0.1:${server.port}`);
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      server.stop(true);
    }
  });

  test("a server that says S and then answers the handshake with garbage is one clear error", async () => {
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, chunk) {
          // The SSLRequest is 8 bytes; what follows is the ClientHello, answered with plain text.
          socket.write(chunk.length === 8 ? "S" : "HTTP/1.1 400 Bad Request\r\n\r\n");
        },
      },
    });
    try {
      const failure = connect({
        host: "127.0.0.1",
        port: server.port,
        sslmode: "require",
        connectTimeoutMs: 5000,
      });
      await expect(failure).rejects.toBeInstanceOf(PgConnectionError);
      await expect(failure).rejects.toThrow("the TLS handshake failed: ");
    } finally {
      server.stop(true);
    }
  });

  test("with prefer, a failed handshake is tried again without TLS, on a new connection (as libpq)", async () => {
    let connections = 0;
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          connections++;
        },
        data(socket, chunk) {
          if (connections === 1) socket.write(chunk.length === 8 ? "S" : "not TLS at all");
          else socket.end(); // the plain attempt: this is no PostgreSQL either, so it hangs up
        },
      },
    });
    try {
      const failure = connect({ host: "127.0.0.1", port: server.port, connectTimeoutMs: 5000 });
      await expect(failure).rejects.toThrow("the server closed the connection");
      expect(connections).toBe(2);
    } finally {
      server.stop(true);
    }
  });

  test("a server that answers SSLRequest with neither S nor N is refused by name", async () => {
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          socket.write("H");
        },
      },
    });
    try {
      await expect(connect(`postgres://u@127.0.0.1:${server.port}/db`)).rejects.toThrow(
        "answered SSLRequest with byte 0x48, not S or N: is it PostgreSQL?",
      );
    } finally {
      server.stop(true);
    }
  });
});
