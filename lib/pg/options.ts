/**
 * lib/pg/options.ts — where to connect and as whom: a `postgres://` URL or an options object, with libpq's
 * environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT,
 * PGCHANNELBINDING, PGREQUIREAUTH) filling what is not given.
 */
import { existsSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { MAX_TIMER_MS } from "../deadline.ts";

/**
 * libpq's `sslmode` (manual: "SSL Support" → "Protection Provided in Different Modes"):
 * - `disable`: plain TCP.
 * - `allow`: plain TCP; if the server refuses that (pg_hba.conf, 28000), again with TLS.
 * - `prefer` (the default): TLS if the server offers it, else plain; the certificate is not checked. A
 *   handshake that fails is tried again without TLS.
 * - `require`: TLS or nothing; the certificate is not checked (unless `sslrootcert` is given: then as
 *   `verify-ca`, like libpq).
 * - `verify-ca`: TLS, and the certificate must be signed by a CA in `sslrootcert`.
 * - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.
 */
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
const SSL_MODES: readonly SslMode[] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/** libpq's `channel_binding`: SCRAM-SHA-256-PLUS binds the login to the TLS session (RFC 5929). */
export type ChannelBinding = "disable" | "prefer" | "require";
const CHANNEL_BINDINGS: readonly ChannelBinding[] = ["disable", "prefer", "require"];

/** Where libpq looks for Unix-domain sockets when no host is given (Debian's, then libpq's built-in). */
const DEFAULT_SOCKET_DIRECTORIES = ["/var/run/postgresql", "/tmp"];

export interface ConnectOptions {
  /** A host name or address, or a directory holding the server's Unix-domain socket (starts with `/`). */
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  /**
   * Give up connecting (TCP, startup and authentication) after this many milliseconds (default 10 s; 0 waits
   * as long as it takes, as libpq's `connect_timeout=0`).
   */
  connectTimeoutMs?: number;
  /** Reported to the server as `application_name` (shown in pg_stat_activity). */
  applicationName?: string;
  /** Prepared statements kept per connection (default 100, like asyncpg); 0 turns the cache off. */
  statementCacheSize?: number;
  /** TLS or not, and how much of the server's certificate to check (default `prefer`, as libpq). */
  sslmode?: SslMode;
  /** PEM file of the CAs to trust for `verify-ca` / `verify-full`, or `system` for the built-in roots. */
  sslrootcert?: string;
  /** SCRAM channel binding over TLS (default `prefer`). */
  channelBinding?: ChannelBinding;
  /**
   * The authentication methods the server may use, in libpq's `require_auth` syntax: a comma list of
   * `password`, `md5`, `scram-sha-256`, `none` (no authentication at all), or the same names each with `!`
   * to forbid them. `scram-sha-256` refuses a trust or cleartext server before a password is sent.
   * Default: any method.
   */
  requireAuth?: string;
  /**
   * Fail a query that has run this long (milliseconds; default 0 = never): a CancelRequest is sent, and the
   * query rejects with PgQueryTimeoutError. If the server does not answer the cancel within
   * CANCEL_GRACE_MS, the connection is closed. Timed from when the query is sent. A timeout only ever
   * cancels its own query: a CancelRequest names the backend, not the query (manual: "Canceling Requests
   * in Progress"), so with a timeout set the connection has one query at a time in the server's hands — no
   * pipelining: each waits for the answer before it, and for a cancel on its way to be settled. Queries
   * that must pipeline, leave this at 0 (or use the server's own `statement_timeout`).
   */
  queryTimeoutMs?: number;
  /** TCP keepalive probes on the connection (default true, like libpq's `keepalives=1`). */
  keepAlive?: boolean;
  /** Idle time before the first keepalive probe (default 60 s; libpq's `keepalives_idle`, in seconds there). */
  keepAliveIdleMs?: number;
}

/** An authentication method `requireAuth` can name (libpq's names). */
export type AuthMethod = "password" | "md5" | "scram-sha-256" | "none";
const AUTH_METHODS: readonly AuthMethod[] = ["password", "md5", "scram-sha-256", "none"];

export type ResolvedOptions = Required<Omit<ConnectOptions, "password" | "sslrootcert">> & {
  password: string | undefined;
  /** The Unix-domain socket to connect to (`<dir>/.s.PGSQL.<port>`), or null for TCP to `host`. */
  socketPath: string | null;
  sslrootcert: string | undefined;
  /** The methods `requireAuth` allows; null when it allows any. */
  allowedAuth: ReadonlySet<AuthMethod> | null;
};

export const DEFAULT_PORT = 5432;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_STATEMENT_CACHE_SIZE = 100;
const DEFAULT_KEEPALIVE_IDLE_MS = 60_000;

/** A mistake in the connection settings; its message is one line for the user. */
export class ConnectOptionsError extends Error {
  override name = "ConnectOptionsError";
}

/** Turns a URL or options object into complete settings. Throws {@link ConnectOptionsError}. */
export function resolveOptions(
  urlOrOptions: string | ConnectOptions = {},
  env: Record<string, string | undefined> = process.env,
): ResolvedOptions {
  const given = typeof urlOrOptions === "string" ? parseUrl(urlOrOptions) : urlOrOptions;
  const user = given.user ?? env.PGUSER ?? userInfo().username;
  const port = given.port ?? (env.PGPORT ? wholeNumber("PGPORT", env.PGPORT) : DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ConnectOptionsError(`invalid port: ${port}`);
  const givenHost = given.host || env.PGHOST || null;
  // No host at all: libpq's default, the local server's socket — if there is one — else localhost.
  const host =
    givenHost ??
    DEFAULT_SOCKET_DIRECTORIES.find((dir) => existsSync(socketPathFor(dir, port))) ??
    "localhost";
  const socketPath = host.startsWith("/") ? socketPathFor(host, port) : null;
  const sslmode = oneOf("sslmode", given.sslmode ?? env.PGSSLMODE ?? "prefer", SSL_MODES);
  const channelBinding = oneOf(
    "channel_binding",
    given.channelBinding ?? env.PGCHANNELBINDING ?? "prefer",
    CHANNEL_BINDINGS,
  );
  const requireAuth = given.requireAuth ?? env.PGREQUIREAUTH ?? "";
  const resolved: ResolvedOptions = {
    host,
    port,
    socketPath,
    // libpq never uses TLS over a Unix-domain socket: the kernel already keeps it private.
    sslmode: socketPath ? "disable" : sslmode,
    sslrootcert: rootCertificate(sslmode, given.sslrootcert ?? env.PGSSLROOTCERT),
    channelBinding,
    user,
    password: given.password ?? env.PGPASSWORD,
    database: given.database ?? env.PGDATABASE ?? user,
    connectTimeoutMs: given.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    applicationName: given.applicationName ?? "bun-async-lessons",
    statementCacheSize: given.statementCacheSize ?? DEFAULT_STATEMENT_CACHE_SIZE,
    requireAuth,
    allowedAuth: parseRequireAuth(requireAuth),
    queryTimeoutMs: given.queryTimeoutMs ?? 0,
    keepAlive: given.keepAlive ?? true,
    keepAliveIdleMs: given.keepAliveIdleMs ?? DEFAULT_KEEPALIVE_IDLE_MS,
  };
  for (const name of ["connectTimeoutMs", "queryTimeoutMs", "keepAliveIdleMs"] as const) {
    const value = resolved[name];
    if (!Number.isFinite(value) || value < 0) throw new ConnectOptionsError(`invalid ${name}: ${value}`);
  }
  // A timer holds at most 2^31 − 1 ms (24.8 days); a longer one would fire at once.
  for (const [name, what] of [
    ["connectTimeoutMs", "connect timeout"],
    ["queryTimeoutMs", "query timeout"],
  ] as const) {
    if (resolved[name] > MAX_TIMER_MS)
      throw new ConnectOptionsError(
        `a ${what} of ${resolved[name] / 1000} s is over a timer's limit (24.8 days)`,
      );
  }
  refuseNulBytes(resolved);
  return resolved;
}

/** `<dir>/.s.PGSQL.<port>`: the name PostgreSQL gives its Unix-domain socket. */
function socketPathFor(directory: string, port: number): string {
  return join(directory, `.s.PGSQL.${port}`);
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConnectOptionsError(`invalid ${name} "${value}": use one of ${allowed.join(", ")}`);
}

/**
 * The CA file to check the server's certificate against: the one given, else libpq's
 * `~/.postgresql/root.crt` when it exists. `verify-ca` / `verify-full` without any is a mistake.
 */
function rootCertificate(sslmode: SslMode, given: string | undefined): string | undefined {
  if (given) {
    if (given !== "system" && !existsSync(given))
      throw new ConnectOptionsError(`sslrootcert: no such file: ${given}`);
    return given;
  }
  const libpqDefault = join(homedir(), ".postgresql", "root.crt");
  if (existsSync(libpqDefault)) return libpqDefault;
  if (sslmode === "verify-ca" || sslmode === "verify-full") {
    throw new ConnectOptionsError(
      `sslmode=${sslmode} needs the CA to trust: give sslrootcert=/path/to/ca.pem, or sslrootcert=system`,
    );
  }
  return undefined;
}

/**
 * The startup message is a list of C strings: a NUL byte inside a user or database name would end it early,
 * and what follows would be read as further parameters (`?user=ann%00search_path%00evil`). So is a password
 * in a PasswordMessage. Such a value is refused, not truncated.
 */
function refuseNulBytes(options: ResolvedOptions): void {
  const strings = {
    user: options.user,
    database: options.database,
    "application name": options.applicationName,
    password: options.password ?? "",
  };
  for (const [name, value] of Object.entries(strings)) {
    if (value.includes("\0")) {
      throw new ConnectOptionsError(
        `the ${name} contains a NUL byte (%00 in a URL); PostgreSQL's startup strings cannot hold one`,
      );
    }
  }
}

/**
 * libpq's `require_auth` value: `scram-sha-256`, `md5,scram-sha-256` (any of these), `!password,!none` (any
 * but these). An empty value allows any method. Throws {@link ConnectOptionsError} for unknown names, a
 * name given twice, or negated and plain names mixed (libpq refuses the same).
 */
export function parseRequireAuth(value: string): ReadonlySet<AuthMethod> | null {
  if (value === "") return null;
  const names = value.split(",");
  const negated = names[0]!.startsWith("!");
  const listed = new Set<AuthMethod>();
  for (const item of names) {
    if (item.startsWith("!") !== negated) {
      throw new ConnectOptionsError(
        `require_auth=${value}: negated and plain methods cannot be mixed (write "scram-sha-256" or "!password,!none")`,
      );
    }
    const name = negated ? item.slice(1) : item;
    if (!AUTH_METHODS.includes(name as AuthMethod)) {
      throw new ConnectOptionsError(
        `require_auth=${value}: unknown method "${name}" (this client knows ${AUTH_METHODS.join(", ")})`,
      );
    }
    if (listed.has(name as AuthMethod)) {
      throw new ConnectOptionsError(`require_auth=${value}: "${name}" is listed twice`);
    }
    listed.add(name as AuthMethod);
  }
  return negated ? new Set(AUTH_METHODS.filter((method) => !listed.has(method))) : listed;
}

/**
 * `postgres://user:password@host:port/database?sslmode=require&connect_timeout=5&application_name=x` (or
 * `postgresql://`); also `sslrootcert`, `channel_binding`, `require_auth`, `keepalives` (0 or 1) and
 * `keepalives_idle` (seconds), as in libpq. A Unix-domain socket:
 * `postgres://user@/database?host=/var/run/postgresql`.
 */
export function parseUrl(url: string): ConnectOptions {
  let parsed: URL;
  // `postgres://user@/db` (no host: the local socket) is valid for libpq but not for WHATWG URLs.
  const hostless = /^postgres(?:ql)?:\/\/[^/?#@]*@[:/]/.test(url);
  try {
    parsed = new URL(hostless ? url.replace(/@(?=[:/])/, "@hostless") : url);
  } catch {
    throw new ConnectOptionsError(`invalid database URL: ${redact(url)}`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConnectOptionsError(`a database URL starts with postgres://, not ${parsed.protocol}//`);
  }
  const options: ConnectOptions = {};
  if (parsed.hostname && !hostless)
    options.host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, "$1");
  const host = parsed.searchParams.get("host");
  if (host !== null) options.host = host;
  if (parsed.port) options.port = Number(parsed.port);
  if (parsed.username) options.user = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.slice(1));
  if (database) options.database = database;
  const port = parsed.searchParams.get("port");
  if (port !== null) options.port = wholeNumber("port", port);
  const timeout = parsed.searchParams.get("connect_timeout");
  // libpq: seconds, and 0 waits as long as it takes.
  if (timeout !== null) options.connectTimeoutMs = wholeNumber("connect_timeout", timeout) * 1000;
  const application = parsed.searchParams.get("application_name");
  if (application !== null) options.applicationName = application;
  const requireAuth = parsed.searchParams.get("require_auth");
  if (requireAuth !== null) options.requireAuth = requireAuth;
  const keepalives = parsed.searchParams.get("keepalives");
  if (keepalives !== null) {
    if (keepalives !== "0" && keepalives !== "1") {
      throw new ConnectOptionsError(`keepalives=${keepalives}: use 1 (on) or 0 (off)`);
    }
    options.keepAlive = keepalives === "1";
  }
  const keepalivesIdle = parsed.searchParams.get("keepalives_idle");
  if (keepalivesIdle !== null)
    options.keepAliveIdleMs = wholeNumber("keepalives_idle", keepalivesIdle) * 1000;
  const sslmode = parsed.searchParams.get("sslmode");
  if (sslmode !== null) options.sslmode = oneOf("sslmode", sslmode, SSL_MODES);
  const sslrootcert = parsed.searchParams.get("sslrootcert");
  if (sslrootcert !== null) options.sslrootcert = sslrootcert;
  const channelBinding = parsed.searchParams.get("channel_binding");
  if (channelBinding !== null)
    options.channelBinding = oneOf("channel_binding", channelBinding, CHANNEL_BINDINGS);
  return options;
}

/**
 * A URL parameter or variable that must be a whole number (`port=5433`, `connect_timeout=5`), or a one-line
 * {@link ConnectOptionsError} that names it and quotes what was given.
 */
function wholeNumber(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConnectOptionsError(`invalid ${name} "${value}": use a whole number`);
  return Number(value);
}

/** The URL with its password replaced by `***`, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@");
}
