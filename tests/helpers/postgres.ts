/**
 * Real databases for the tests:
 * - `startPostgres()`: a private PostgreSQL cluster from the local server binaries — initdb into a temporary
 *   folder, a free port, our own pg_hba.conf with one user per authentication method — removed afterwards.
 *   As root, the server runs as the `postgres` user (it refuses to run as root).
 * - `startPglite()`: PGlite (PostgreSQL compiled to WebAssembly) served on a free port by PGLiteSocketServer.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** The users the cluster has, one per authentication method, with their passwords. */
export const USERS = {
  trust: { user: "trust_user", password: "" },
  password: { user: "password_user", password: "cleartext pass" },
  md5: { user: "md5_user", password: "md5 pass" },
  scram: { user: "scram_user", password: "scram pässword" },
  /** Only over TLS (hostssl), as a hosted database: a plain connection is refused by pg_hba.conf. */
  tlsOnly: { user: "tls_only_user", password: "" },
} as const;

export interface PostgresCluster {
  host: string;
  port: number;
  /** The folder holding the Unix-domain socket `.s.PGSQL.<port>`. */
  socketDir: string;
  /** PEM files made for this cluster: the CA that signed the server's certificate (for `localhost` only), and a CA that signed nothing. */
  tls: { caFile: string; otherCaFile: string };
  url(kind: keyof typeof USERS, password?: string): string;
  /** A superuser URL (trust). */
  superuserUrl: string;
  stop(): Promise<void>;
}

/** Where the server binaries are: Debian's /usr/lib/postgresql/N/bin, newest first, else the PATH. */
export function findPostgresBin(): string | null {
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const bin = join(root, version, "bin");
      if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "postgres"))) return bin;
    }
  }
  const initdb = Bun.which("initdb");
  return initdb ? initdb.slice(0, -"/initdb".length) : null;
}

/**
 * Whether the real-server tests can run. Without PostgreSQL they are skipped with one printed line —
 * except under CI (CI=true), where a missing PostgreSQL is a failure: `.ci/run` installs it.
 */
export function postgresAvailability(): { bin: string } | { skipReason: string } {
  const bin = findPostgresBin();
  // The cluster runs with ssl=on, its certificates made by openssl.
  if (bin && Bun.which("openssl")) return { bin };
  const reason = bin
    ? "openssl not found (the test cluster's TLS certificates are made with it); install Debian's openssl package"
    : "PostgreSQL server binaries (initdb, postgres) not found; install Debian's postgresql package";
  if (process.env.CI) throw new Error(`CI is set and ${reason}`);
  return { skipReason: reason };
}

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

function run(argv: string[], asUser: string | null): void {
  const command = asUser ? ["runuser", "-u", asUser, "--", ...argv] : argv;
  const result = Bun.spawnSync(command, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) {
    throw new Error(
      `${argv[0]} failed (${result.exitCode}): ${result.stderr.toString()}${result.stdout.toString()}`,
    );
  }
}

const HBA = `# TYPE DATABASE USER ADDRESS METHOD — written by tests/helpers/postgres.ts
local all all trust
host all postgres 127.0.0.1/32 trust
host all ${USERS.trust.user} 127.0.0.1/32 trust
host all ${USERS.password.user} 127.0.0.1/32 password
host all ${USERS.md5.user} 127.0.0.1/32 md5
host all ${USERS.scram.user} 127.0.0.1/32 scram-sha-256
hostssl all ${USERS.tlsOnly.user} 127.0.0.1/32 trust
hostnossl all ${USERS.tlsOnly.user} 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
`;

const sqlString = (text: string) => `'${text.replaceAll("'", "''")}'`;

/**
 * A CA, a server certificate for `localhost` (no IP address in it, so `verify-full` to 127.0.0.1 fails),
 * and a second CA that signed nothing — made with `openssl` in `folder`. The key must be owned by the
 * server's user with mode 0600, or PostgreSQL refuses to start.
 */
function makeCertificates(folder: string, owner: { uid: number; gid: number } | null) {
  const openssl = (...args: string[]) => run(["openssl", ...args], null);
  const file = (name: string) => join(folder, name);
  const makeCa = (name: string) =>
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.crt`),
    );
  makeCa("test-ca");
  makeCa("other-ca");
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    file("server.key"),
    "-out",
    file("server.csr"),
  );
  writeFileSync(file("server.ext"), "subjectAltName=DNS:localhost\n");
  openssl(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("test-ca.crt"),
    "-CAkey",
    file("test-ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.crt"),
  );
  for (const name of ["server.key", "server.crt"]) {
    if (owner) chownSync(file(name), owner.uid, owner.gid);
    chmodSync(file(name), 0o600);
  }
  return {
    caFile: file("test-ca.crt"),
    otherCaFile: file("other-ca.crt"),
    certFile: file("server.crt"),
    keyFile: file("server.key"),
  };
}

export async function startPostgres(bin: string): Promise<PostgresCluster> {
  const asRoot = userInfo().uid === 0;
  const runAs = asRoot ? "postgres" : null;
  const folder = mkdtempSync(join(tmpdir(), "lesson-pg-"));
  const data = join(folder, "data");
  const sockets = join(folder, "sockets");
  Bun.spawnSync(["mkdir", "-p", sockets]);
  const owner = asRoot ? postgresIds() : null;
  if (owner) {
    chownSync(folder, owner.uid, owner.gid);
    chownSync(sockets, owner.uid, owner.gid);
  }
  chmodSync(folder, 0o700);
  const certificates = makeCertificates(folder, owner);
  run(
    [
      join(bin, "initdb"),
      "-D",
      data,
      "-U",
      "postgres",
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--no-sync",
      "--locale=C",
    ],
    runAs,
  );
  writeFileSync(join(data, "pg_hba.conf"), HBA);
  const port = await freePort();
  const server = Bun.spawn(
    [
      ...(runAs ? ["runuser", "-u", runAs, "--"] : []),
      join(bin, "postgres"),
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      sockets,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
      "-c",
      "ssl=on",
      "-c",
      `ssl_cert_file=${certificates.certFile}`,
      "-c",
      `ssl_key_file=${certificates.keyFile}`,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  await waitUntilReady(bin, sockets, port, server);
  const psql = (sql: string) =>
    run(
      [
        join(bin, "psql"),
        "-h",
        sockets,
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        sql,
      ],
      runAs,
    );
  psql(`CREATE ROLE ${USERS.trust.user} LOGIN SUPERUSER`);
  psql(`CREATE ROLE ${USERS.tlsOnly.user} LOGIN`);
  psql(`CREATE ROLE ${USERS.password.user} LOGIN PASSWORD ${sqlString(USERS.password.password)}`);
  // An md5 user needs its password stored as an MD5 hash.
  psql(
    `SET password_encryption = 'md5'; CREATE ROLE ${USERS.md5.user} LOGIN PASSWORD ${sqlString(USERS.md5.password)}`,
  );
  psql(
    `SET password_encryption = 'scram-sha-256'; CREATE ROLE ${USERS.scram.user} LOGIN PASSWORD ${sqlString(USERS.scram.password)}`,
  );
  const url = (kind: keyof typeof USERS, password: string = USERS[kind].password) => {
    const auth = password ? `${USERS[kind].user}:${encodeURIComponent(password)}` : USERS[kind].user;
    return `postgres://${auth}@127.0.0.1:${port}/postgres`;
  };
  return {
    host: "127.0.0.1",
    port,
    socketDir: sockets,
    tls: { caFile: certificates.caFile, otherCaFile: certificates.otherCaFile },
    url,
    superuserUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      // SIGINT is PostgreSQL's "fast shutdown"; sent to the postmaster itself (runuser does not pass it on).
      const postmasterPid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      process.kill(postmasterPid, "SIGINT");
      await server.exited;
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

function postgresIds(): { uid: number; gid: number } {
  const result = Bun.spawnSync(["id", "-u", "postgres"]);
  const group = Bun.spawnSync(["id", "-g", "postgres"]);
  if (result.exitCode !== 0)
    throw new Error("running as root, but there is no postgres user to run the server as");
  return { uid: Number(result.stdout.toString()), gid: Number(group.stdout.toString()) };
}

async function waitUntilReady(
  bin: string,
  sockets: string,
  port: number,
  server: ReturnType<typeof Bun.spawn>,
) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const ready = Bun.spawnSync([join(bin, "pg_isready"), "-h", sockets, "-p", String(port), "-q"]);
    if (ready.exitCode === 0) return;
    if (server.exitCode !== null) {
      throw new Error(`postgres exited: ${await new Response(server.stderr as ReadableStream).text()}`);
    }
    await Bun.sleep(50);
  }
  throw new Error("postgres did not become ready within 10 s");
}

/** PGlite behind PGLiteSocketServer on a free loopback port. It does no authentication. */
export async function startPglite(): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const db = await PGlite.create();
  // Several connections, multiplexed onto the one database (queries take turns).
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 });
  await server.start();
  const port = Number(server.getServerConn().split(":").pop());
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
