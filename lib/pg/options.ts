/**
 * lib/pg/options.ts — where to connect and as whom: a `postgres://` URL or an options object, with libpq's
 * environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) filling what is not given.
 */
import { userInfo } from "node:os";

export interface ConnectOptions {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  /** Give up connecting (TCP, startup and authentication) after this many milliseconds (default 10 s). */
  connectTimeoutMs?: number;
  /** Reported to the server as `application_name` (shown in pg_stat_activity). */
  applicationName?: string;
  /** Prepared statements kept per connection (default 100, like asyncpg); 0 turns the cache off. */
  statementCacheSize?: number;
}

export type ResolvedOptions = Required<Omit<ConnectOptions, "password">> & { password: string | undefined };

export const DEFAULT_PORT = 5432;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_STATEMENT_CACHE_SIZE = 100;

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
  const host = given.host ?? env.PGHOST ?? "localhost";
  if (host.startsWith("/")) {
    throw new ConnectOptionsError(
      `unix-domain sockets (${host}) are not supported: give a host name or address`,
    );
  }
  const port = given.port ?? (env.PGPORT ? Number(env.PGPORT) : DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ConnectOptionsError(`invalid port: ${port}`);
  return {
    host,
    port,
    user,
    password: given.password ?? env.PGPASSWORD,
    database: given.database ?? env.PGDATABASE ?? user,
    connectTimeoutMs: given.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    applicationName: given.applicationName ?? "bun-async-lessons",
    statementCacheSize: given.statementCacheSize ?? DEFAULT_STATEMENT_CACHE_SIZE,
  };
}

/** `postgres://user:password@host:port/database?connect_timeout=5&application_name=x` (or `postgresql://`). */
export function parseUrl(url: string): ConnectOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConnectOptionsError(`invalid database URL: ${redact(url)}`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConnectOptionsError(`a database URL starts with postgres://, not ${parsed.protocol}//`);
  }
  const options: ConnectOptions = {};
  if (parsed.hostname) options.host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, "$1");
  if (parsed.port) options.port = Number(parsed.port);
  if (parsed.username) options.user = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.slice(1));
  if (database) options.database = database;
  const timeout = parsed.searchParams.get("connect_timeout");
  if (timeout !== null) options.connectTimeoutMs = Number(timeout) * 1000;
  const application = parsed.searchParams.get("application_name");
  if (application !== null) options.applicationName = application;
  const sslmode = parsed.searchParams.get("sslmode");
  if (sslmode !== null && sslmode !== "disable" && sslmode !== "prefer" && sslmode !== "allow") {
    throw new ConnectOptionsError(
      `sslmode=${sslmode} is not supported by this client (TLS to PostgreSQL is not implemented)`,
    );
  }
  return options;
}

/** The URL with its password replaced by `***`, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@");
}
