/**
 * lib/pg.ts — a PostgreSQL client written from scratch on lib/streams: the wire protocol itself in plain
 * sight.
 *
 * 1. Framing. After the startup, every message is a type byte, an Int32 length, and a body
 *    (lib/pg/protocol.ts). The client reads whatever bytes have arrived and cuts them into messages.
 * 2. Startup. We send StartupMessage (protocol 3.0, user, database); the server answers ParameterStatus
 *    messages (server_version, TimeZone, …), BackendKeyData (for cancelling), and ReadyForQuery — unless it
 *    first asks us to authenticate.
 * 3. Authentication ('R' messages, lib/pg/login.ts; the exchanges in lib/pg/auth.ts): nothing (trust),
 *    the password (cleartext), an MD5 hash salted by the server, or SCRAM-SHA-256, where both sides prove
 *    they know the password without sending it — and we check the server's proof too.
 * 4. Simple query: Query('Q', SQL text, possibly several statements) → for each statement RowDescription,
 *    DataRows, CommandComplete → finally ReadyForQuery. What a console sends for what the user types.
 * 5. Extended query: Parse (SQL with $1, $2 …) → Bind (values) → Execute → Sync. Parsing and planning
 *    happen once per statement: a repeated query only Binds and Executes the prepared statement
 *    (`client.query`; a cache of 100 per connection, like asyncpg). Values travel separately from the SQL,
 *    so no quoting, no injection.
 * 6. Pipelining. Nothing forces us to wait for one answer before sending the next question: queries issued
 *    together go out in one write, and the server answers them in order. Each ends with its own Sync, so
 *    each gets its own ReadyForQuery — that is how answers are matched to questions, and why an error in
 *    one query fails only that one. 50 queries cost about one round trip instead of 50.
 * 7. Where the bytes travel (lib/pg/transport.ts): TCP or a Unix-domain socket; TLS is asked for with an
 *    SSLRequest on the same connection and, after the server's `S`, a handshake on that socket — then
 *    everything above runs unchanged inside it. Over TLS, SCRAM binds the login to the server's
 *    certificate (SCRAM-SHA-256-PLUS).
 * 8. COPY: after `COPY … FROM STDIN` the server is in copy-in mode and takes CopyData messages until
 *    CopyDone (or CopyFail); `COPY … TO STDOUT` sends CopyData until CopyDone. Both are streams, so both
 *    ends need backpressure (`copyFrom`, `copyTo`).
 *
 *   const db = await connect("postgres://user:password@localhost:5432/shop");
 *   const { rows } = await db.query("SELECT name FROM products WHERE price < $1", [10]);
 *   await db.close();
 */
// ScramClient stays inside lib/pg/auth.ts: the client runs the exchange; a caller catches its errors.
export { MAX_SCRAM_ITERATIONS, md5PasswordResponse, ScramError, ScramIterationsError } from "./pg/auth.ts";
export {
  Client,
  type CopySource,
  type Field,
  type Notification,
  PgAuthenticationRefusedError,
  PgConnectionError,
  PgError,
  type PgNotice,
  PgQueryTimeoutError,
  PgResultValueError,
  type QueryResult,
  quoteIdentifier,
  type SimpleQueryOptions,
} from "./pg/client.ts";
export { PgPoolTimeoutError } from "./pg/errors.ts";
export {
  type AuthMethod,
  type ChannelBinding,
  type ConnectOptions,
  ConnectOptionsError,
  parseRequireAuth,
  parseUrl,
  redact,
  resolveOptions,
  type SslMode,
} from "./pg/options.ts";
export { ParameterTypeError } from "./pg/parameters.ts";
export { DEFAULT_ACQUIRE_TIMEOUT_MS, Pool, type PoolOptions } from "./pg/pool.ts";
export { PgTlsError } from "./pg/transport.ts";
export { PgValueTextError, TypeOid } from "./pg/types.ts";

import { Client } from "./pg/client.ts";
import type { ConnectOptions } from "./pg/options.ts";

/** Connects and authenticates: `Client.connect`. */
export function connect(urlOrOptions?: string | ConnectOptions): Promise<Client> {
  return Client.connect(urlOrOptions);
}
