/**
 * lib/pg/client.ts — one connection to PostgreSQL, on lib/streams.
 *
 * A reading task takes whatever bytes have arrived (`reader.read()`), the MessageFramer cuts them into
 * messages, and each message goes to the query at the head of the pending queue. Writing never waits:
 * `query()` builds its messages and hands them to the StreamWriter at once, so queries issued together are
 * *pipelined* — they travel in one write, the server answers them in order, and each Sync's ReadyForQuery
 * tells us one query is done and the next answer begins.
 *
 * Two things can hold writing back, and then later queries wait in order behind them (`#waiting`): a
 * statement's first run with parameters, whose Bind waits for the server to say the parameters' types
 * (ParameterDescription), and a COPY FROM, during which only its data may be sent.
 *
 * The rest lives beside it, one concept a file: the socket and TLS (transport.ts), the login (login.ts),
 * the prepared statements (statement-cache.ts), the queries in flight and what each collects (pending.ts),
 * COPY's data both ways (copy-in.ts, copy-out-stream.ts), the messages themselves (protocol.ts), the
 * parameters' encoding (parameters.ts) and the results' values (types.ts).
 */
import { atEndOfTurn, type StreamReader, type StreamWriter } from "../streams.ts";
import { type CopyInConnection, type CopySource, sendCopyData } from "./copy-in.ts";
import { CopyOutStream } from "./copy-out-stream.ts";
import {
  connectionFailure,
  errorFields,
  PgConnectionError,
  PgError,
  type PgNotice,
  PgQueryTimeoutError,
  PgResultValueError,
} from "./errors.ts";
import { Login, type LoginConnection } from "./login.ts";
import { type ConnectOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import { encodeParameters } from "./parameters.ts";
import {
  describeFields,
  type ExtendedRequest,
  type Job,
  type Pending,
  type PendingCopyIn,
  type PendingExtended,
  PendingQueue,
  type QueryResult,
} from "./pending.ts";
import {
  Backend,
  type ByteaParameter,
  type FieldDescription,
  MAX_BIND_PARAMETERS,
  MessageBuilder,
  MessageFramer,
  ProtocolError,
  parseBackendKeyData,
  parseCommandComplete,
  parseDataRow,
  parseErrorFields,
  parseNotificationResponse,
  parseParameterDescription,
  parseParameterStatus,
  parseRowDescription,
  TransactionStatus,
  writeBind,
  writeCancelRequest,
  writeCopyFail,
  writeExecute,
  writeQuery,
  writeStartupMessage,
  writeSync,
  writeTerminate,
} from "./protocol.ts";
import { type Statement, StatementCache, writeParseAndDescribe } from "./statement-cache.ts";
import { describeAddress, openTransport, type Transport } from "./transport.ts";
import { TypeOid } from "./types.ts";

/** Bytes taken from the reader at a time: everything buffered, up to 4 MiB. */
const READ_BYTES = 4 * 1024 * 1024;
/**
 * How long a server has to answer a CancelRequest (by ending the cancelled query) before the connection is
 * taken for dead and closed: 2 s. A live server cancels in milliseconds.
 */
export const CANCEL_GRACE_MS = 2_000;

export type { CopySource } from "./copy-in.ts";
export {
  PgAuthenticationRefusedError,
  PgConnectionError,
  PgError,
  type PgErrorFields,
  type PgNotice,
  PgQueryTimeoutError,
  PgResultValueError,
} from "./errors.ts";

export type { Field, QueryResult } from "./pending.ts";

// ── Results ───────────────────────────────────────────────────────────────────────────────────────────

export interface SimpleQueryOptions {
  /** Rows each result keeps, the first ones; the rest are dropped as they arrive (default: all). */
  maxRows?: number;
}

export interface Notification {
  processId: number;
  channel: string;
  payload: string;
}

/**
 * A lone query's messages up to this size go to the kernel straight from the builder's buffer (the writer
 * copies only what the kernel does not take); a bigger one (a large parameter) is handed over whole, so a
 * slow socket never makes a second copy of it: 64 KiB.
 */
const SEND_FROM_BUILDER_BYTES = 64 * 1024;
const NO_FIELDS: FieldDescription[] = [];
const NO_VALUES: (Uint8Array | null)[] = [];

/** `"a""b"` — an identifier quoted for SQL. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

// ── The client ────────────────────────────────────────────────────────────────────────────────────────

export class Client {
  /** Run-time parameters the server reported (server_version, TimeZone, client_encoding, …). */
  readonly parameters = new Map<string, string>();
  /** Called with each NoticeResponse. */
  onNotice: (notice: PgNotice) => void = () => {};

  readonly #options: ResolvedOptions;
  readonly #reader: StreamReader;
  readonly #writer: StreamWriter;
  readonly #out = new MessageBuilder();
  readonly #framer = new MessageFramer((type, body) => this.#dispatch(type, body));
  /** The queries written and not yet answered, oldest (the one being answered) first. */
  readonly #inFlight = new PendingQueue();
  readonly #statements: StatementCache;
  #backendKey: { processId: number; secretKey: number } | null = null;
  readonly #listeners = new Map<string, Set<(notification: Notification) => void>>();
  #lost: PgConnectionError | null = null;
  #closing = false;
  /** Settles when the startup ends: the first ReadyForQuery, or an error. */
  readonly #startup = Promise.withResolvers<void>();
  /** What the login and a COPY FROM write through: the message buffer, the writer, and the way out. */
  readonly #wire: LoginConnection & CopyInConnection;
  /** Answers the server's Authentication requests during the startup. */
  readonly #login: Login;
  #lastQuery: Promise<unknown> = Promise.resolve();
  /** Jobs that cannot be written yet, in call order (see {@link Job}). */
  #waiting: Job[] = [];
  #handoverScheduled = false;
  /** A COPY FROM in progress: nothing else is written until its data is. */
  #gate: PendingCopyIn | null = null;
  /**
   * With `queryTimeoutMs`, one query (one Sync) in the server's hands at a time, and none while a
   * CancelRequest is on its way: see {@link #onQueryTimeout}.
   */
  readonly #oneAtATime: boolean;
  /** A CancelRequest sent by a timeout whose fate (the server closing the cancel connection) is not known yet. */
  #cancelling = false;
  /** COPY TO data of the current read, not yet handed to its stream. */
  #copyParts: Buffer[] = [];
  #copyPartsStream: CopyOutStream | null = null;
  /** The server's certificate (DER) when the connection is TLS. */
  readonly #peerCertificate: Uint8Array | null;

  private constructor(options: ResolvedOptions, transport: Transport) {
    this.#options = options;
    this.#reader = transport.reader;
    this.#writer = transport.writer;
    this.#peerCertificate = transport.peerCertificate;
    this.#statements = new StatementCache(options.statementCacheSize);
    this.#oneAtATime = options.queryTimeoutMs > 0;
    const client = this;
    this.#wire = {
      out: this.#out,
      writer: this.#writer,
      flush: () => this.#flush(),
      fail: (error) => this.#fail(error),
      get closed() {
        return client.closed;
      },
    };
    this.#login = new Login(options, transport.peerCertificate, this.#wire);
  }

  /**
   * Connects and authenticates. Rejects with {@link PgError} for what the server refuses (a wrong password:
   * `28P01`, no such database: `3D000`), {@link PgConnectionError} for a connection that cannot be made or
   * a timeout, and an `Error` for settings it cannot use.
   */
  static async connect(urlOrOptions?: string | ConnectOptions): Promise<Client> {
    const options = resolveOptions(urlOrOptions);
    if (options.sslmode !== "allow") return Client.#connectWith(options);
    // libpq's `allow`: plain first; if the server's pg_hba.conf refuses that (28000), again with TLS.
    try {
      return await Client.#connectWith(options);
    } catch (error) {
      if (!(error instanceof PgError && error.code === "28000")) throw error;
      return Client.#connectWith({ ...options, sslmode: "require" });
    }
  }

  static async #connectWith(options: ResolvedOptions): Promise<Client> {
    const where = describeAddress(options);
    const abort = new AbortController();
    let client: Client | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      if (options.connectTimeoutMs === 0) return; // no limit
      timer = setTimeout(() => {
        const error = new PgConnectionError(
          `timed out after ${options.connectTimeoutMs / 1000} s connecting to ${where}`,
        );
        abort.abort(error);
        if (client) client.#fail(error);
        reject(error);
      }, options.connectTimeoutMs);
    });
    try {
      const opening = openTransport(options, abort.signal);
      opening.catch(() => {}); // when the timeout wins, its rejection is the timeout's
      client = new Client(options, await Promise.race([opening, timeout]));
      client.#start();
      await Promise.race([client.#startup.promise, timeout]);
      return client;
    } catch (error) {
      if (client) client.#writer.abort();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** True when the connection is encrypted with TLS. */
  get tls(): boolean {
    return this.#peerCertificate !== null;
  }

  /** The SASL mechanism the login used (`SCRAM-SHA-256-PLUS` when bound to the TLS session), else null. */
  get saslMechanism(): string | null {
    return this.#login.saslMechanism;
  }

  /** The backend's process ID (what `pg_backend_pid()` returns; what `cancel()` names). */
  get processId(): number | null {
    return this.#backendKey?.processId ?? null;
  }

  /** True once the connection is closed or lost. */
  get closed(): boolean {
    return this.#lost !== null;
  }

  /**
   * Runs one statement with the extended protocol; `$1`, `$2`, … are replaced by `params` (never spliced
   * into the SQL), each encoded for the type the server declared for it (lib/pg/parameters.ts). The
   * statement is prepared once per connection and reused; its first run with parameters waits one round
   * trip for their types. A cached statement the server no longer accepts (its table was altered,
   * `DISCARD ALL`, another `search_path`) is prepared again and run once more — outside a transaction.
   * Rejects with {@link ParameterTypeError} before sending anything, {@link PgError} (the connection stays
   * usable) or {@link PgConnectionError}.
   */
  query<Row = Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
  ): Promise<QueryResult<Row>> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (text.includes("\0")) return Promise.reject(nulInSqlError());
    if (params.length > MAX_BIND_PARAMETERS) {
      // Bind counts them in 16 bits: 65,536 would be sent as 0 and the server would blame the protocol.
      return Promise.reject(
        new RangeError(
          `a query takes at most ${MAX_BIND_PARAMETERS.toLocaleString("en-US")} parameters; this one has ${params.length.toLocaleString("en-US")}`,
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<QueryResult>();
    this.#lastQuery = promise;
    this.#submitExtended({ text, params, statement: null, retried: false, resolve, reject });
    return promise as Promise<QueryResult<Row>>;
  }

  /** Writes `request` now if nothing waits before it (no job, no closure: the common path), else queues it. */
  #submitExtended(request: ExtendedRequest): void {
    if (this.#waiting.length === 0 && this.#mayWrite()) {
      this.#closeAbandoned();
      if (this.#mayWrite() && this.#sendExtended(request)) return;
    }
    this.#waiting.push({ send: () => this.#sendExtended(request), reject: request.reject });
  }

  /**
   * Bind + Execute + Sync for `request` (after Parse + Describe for a statement new and without
   * parameters), or false when the statement's parameter types must be asked for first (Describe sent).
   */
  #sendExtended(request: ExtendedRequest): boolean {
    if (request.statement?.forgotten) request.statement = null;
    request.statement ??= this.#statements.statementFor(request.text, this.#out);
    const statement = request.statement;
    const params = request.params;
    if (params.length > 0 && statement.paramTypes === null) {
      if (!statement.parseSent) this.#describe(statement);
      return false;
    }
    let values: (Uint8Array | ByteaParameter | null)[] = NO_VALUES;
    if (params.length > 0) {
      try {
        values = encodeParameters(params, statement.paramTypes!);
      } catch (error) {
        request.reject(error as Error);
        return true;
      }
    }
    const out = this.#out;
    if (!statement.parseSent) writeParseAndDescribe(this.#out, statement);
    writeBind(out, "", statement.name, values);
    writeExecute(out, "");
    writeSync(out);
    this.#enqueue({
      kind: "extended",
      request,
      statement,
      rows: [],
      tag: null,
      error: null,
      reject: request.reject,
    });
    return true;
  }

  /**
   * Runs `text` with the simple query protocol: one or more statements separated by `;`, no parameters;
   * resolves with one result per statement. What a console sends for what the user types.
   *
   * `maxRows` bounds what a result holds, whatever the server sends: each statement's result keeps its
   * first `maxRows` rows; the rest are read off the socket as they stream in and dropped unparsed.
   * `rowCount` still says how many rows there were (the command tag counts them all), so `rowCount −
   * rows.length` is what was dropped. (The simple protocol has no way to ask for fewer rows — the server
   * sends them all; for that, `LIMIT` or a cursor.) Default: every row.
   */
  simpleQuery(text: string, options: SimpleQueryOptions = {}): Promise<QueryResult[]> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (text.includes("\0")) return Promise.reject(nulInSqlError());
    const maxRows = options.maxRows ?? Number.POSITIVE_INFINITY;
    if (!(maxRows >= 0)) return Promise.reject(new RangeError(`maxRows must be 0 or more, not ${maxRows}`));
    const { promise, resolve, reject } = Promise.withResolvers<QueryResult[]>();
    this.#submit({
      reject,
      send: () => {
        writeQuery(this.#out, text);
        this.#enqueue({ kind: "simple", current: null, results: [], maxRows, error: null, resolve, reject });
        return true;
      },
    });
    this.#lastQuery = promise;
    return promise;
  }

  /**
   * Runs `COPY … FROM STDIN` and sends `source` as its data: bytes or strings in COPY's text (or CSV, or
   * binary) format, exactly as the statement says. Reads the source only as fast as the server takes it
   * (awaits the socket's drain), so a source of any size holds a bounded amount of memory. Resolves with the
   * number of rows copied. If the source throws, the COPY is cancelled with CopyFail and the promise
   * rejects with the server's error (57014, its message naming the source's); a bad row rejects with the
   * server's error (22P02, …). Either way the connection stays usable. Other queries wait their turn.
   */
  copyFrom(sql: string, source: CopySource): Promise<number> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (sql.includes("\0")) return Promise.reject(nulInSqlError());
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    const pending: PendingCopyIn = {
      kind: "copyIn",
      tag: null,
      error: null,
      resolve,
      reject,
      start: () => void this.#pumpCopyData(pending, source),
    };
    this.#submit({
      reject,
      send: () => {
        writeQuery(this.#out, sql);
        this.#enqueue(pending);
        // Nothing else may be written until CopyDone/CopyFail: the server is reading COPY data.
        this.#gate = pending;
        return true;
      },
    });
    this.#lastQuery = promise;
    return promise;
  }

  /**
   * Runs `COPY … TO STDOUT` and yields its data as it arrives: chunks of bytes (one or more rows each, in
   * the statement's format). While the consumer is slow, the socket is not read (at most ~4 MiB wait in
   * between). A failure in the middle (say, an error raised by row 500,000) throws the server's PgError
   * from the loop; stopping the loop early reads and drops the rest. Either way the connection stays usable.
   */
  async *copyTo(sql: string): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#lost) throw this.#lost;
    if (sql.includes("\0")) throw nulInSqlError();
    const stream = new CopyOutStream();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(() => {}); // the stream carries the error to the consumer
    this.#submit({
      reject: (error) => {
        stream.finish(error);
        reject(error);
      },
      send: () => {
        writeQuery(this.#out, sql);
        this.#enqueue({ kind: "copyOut", stream, error: null, resolve, reject });
        return true;
      },
    });
    this.#lastQuery = promise;
    let finished = false;
    try {
      for (let chunk = await stream.next(); chunk; chunk = await stream.next()) yield chunk;
      finished = true;
    } finally {
      if (!finished && !stream.done) {
        // The consumer stopped early. A CancelRequest could hit the next query instead if the server has
        // already finished this one, so the rest is read and dropped: the connection stays in step.
        stream.discard();
        await promise.catch(() => {});
      }
    }
  }

  /**
   * LISTENs on `channel`; `onNotification` gets each NOTIFY. Resolves with a function that stops
   * listening (and UNLISTENs when no listener is left).
   */
  async listen(
    channel: string,
    onNotification: (notification: Notification) => void,
  ): Promise<() => Promise<void>> {
    let listeners = this.#listeners.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(channel, listeners);
      await this.simpleQuery(`LISTEN ${quoteIdentifier(channel)}`);
    }
    listeners.add(onNotification);
    const set = listeners;
    return async () => {
      set.delete(onNotification);
      if (set.size > 0 || this.#listeners.get(channel) !== set) return;
      this.#listeners.delete(channel);
      if (!this.#lost) await this.simpleQuery(`UNLISTEN ${quoteIdentifier(channel)}`);
    };
  }

  /**
   * Asks the server to cancel what this connection is running (a CancelRequest on a second connection).
   * The running query then rejects with SQLSTATE 57014. Cancelling when nothing runs does nothing.
   */
  async cancel(): Promise<void> {
    const key = this.#backendKey;
    if (!key || this.#lost) return;
    const { reader, writer } = await openTransport(this.#options);
    await sendCancelRequest(reader, writer, key);
  }

  /**
   * cancel() for a timeout: true once the cancel's fate is known — the server closed the cancel connection
   * (PostgreSQL does so after signalling the backend), or it could not be opened (nothing was sent); false
   * when the server kept it open past CANCEL_GRACE_MS.
   */
  async #sendCancel(): Promise<boolean> {
    const key = this.#backendKey;
    if (!key || this.#lost) return true;
    let transport: Transport;
    try {
      transport = await openTransport(this.#options);
    } catch {
      return true; // refused: no cancel will ever arrive (the query's grace timer decides)
    }
    return sendCancelRequest(transport.reader, transport.writer, key);
  }

  /** Waits for the queries under way, says Terminate, and closes. Later queries reject. */
  async close(): Promise<void> {
    if (this.#lost || this.#closing) return;
    this.#closing = true;
    await this.#lastQuery.catch(() => {});
    if (this.#lost) return;
    writeTerminate(this.#out);
    this.#writer.writeShared(this.#out.take());
    this.#writer.close();
    await this.#writer.waitClosed();
    this.#fail(new PgConnectionError("the connection is closed"));
  }

  // ── Startup ──

  #start(): void {
    const parameters: Record<string, string> = {
      user: this.#options.user,
      database: this.#options.database,
      application_name: this.#options.applicationName,
      client_encoding: "UTF8",
      // The date format lib/pg/types.ts reads (the server's default, but a role or database may change it).
      DateStyle: "ISO, MDY",
    };
    writeStartupMessage(this.#out, parameters);
    this.#flush();
    void this.#readLoop();
  }

  // ── Writing ──

  /** Parse + Describe + Sync alone: the parameter types come back before any Bind is encoded. */
  #describe(statement: Statement): void {
    writeParseAndDescribe(this.#out, statement);
    writeSync(this.#out);
    this.#enqueue({ kind: "describe", statement, error: null, resolve: () => {}, reject: () => {} });
  }

  /** Writes `job` now, or after the jobs already waiting (order is kept: answers come back in order). */
  #submit(job: Job): void {
    if (this.#waiting.length > 0 || !this.#mayWrite()) {
      this.#waiting.push(job);
      return;
    }
    this.#closeAbandoned();
    if (!this.#mayWrite() || !job.send()) this.#waiting.push(job);
  }

  /**
   * Whether a query may be written now: not during a COPY FROM's data; and with `queryTimeoutMs`, not while
   * another query is in flight or a timeout's CancelRequest is on its way (see {@link #onQueryTimeout}).
   */
  #mayWrite(): boolean {
    return !this.#gate && (!this.#oneAtATime || (!this.#cancelling && this.#inFlight.length === 0));
  }

  /** Writes the waiting jobs in order, up to the first that must wait again. */
  #sendWaiting(): void {
    if (this.#lost || !this.#mayWrite()) return;
    this.#closeAbandoned();
    while (this.#waiting.length > 0 && this.#mayWrite()) {
      if (!this.#waiting[0]!.send()) return;
      this.#waiting.shift();
    }
  }

  /** Close for each statement we let go of, and a Sync of their own: their answers fail nothing else. */
  #closeAbandoned(): void {
    if (!this.#statements.writeCloseAbandoned(this.#out)) return;
    this.#enqueue({ kind: "close", error: null, resolve: () => {}, reject: () => {} });
  }

  #enqueue(pending: Pending): void {
    if (this.#inFlight.push(pending) === 1) {
      // Alone in flight: nothing will join this write, so send it now rather than at the end of the turn.
      // (Queries issued together still leave in one write: only the first goes early.)
      this.#sendNow();
      this.#startTimeout(pending);
    } else if (!this.#handoverScheduled) {
      // The rest of this turn's messages are handed to the writer in one piece, at the end of the turn.
      this.#handoverScheduled = true;
      atEndOfTurn(this.#handover);
    }
  }

  /** Arms `queryTimeoutMs` for the query the server is now working on (the head of the queue). */
  #startTimeout(pending: Pending | undefined): void {
    const timeoutMs = this.#options.queryTimeoutMs;
    if (!pending || timeoutMs === 0) return;
    pending.timer = setTimeout(() => this.#onQueryTimeout(pending), timeoutMs);
  }

  /**
   * The query ran too long: ask the server to cancel it. A live server ends it (SQLSTATE 57014) and the
   * connection goes on; one that stays silent for CANCEL_GRACE_MS more is taken for dead.
   *
   * A CancelRequest names the backend, not the query (manual: "Canceling Requests in Progress"): it
   * cancels whatever that backend runs when the signal lands. Sent as the query ends, it lands later — on
   * the next query, if that one was already in the server's input (measured before this rule, queries of 15–35 ms
   * against a 20 ms timeout: 51 of 200 issued at once, and 21 of 200 sent one after another, cancelled by
   * a timeout not theirs; tests/pg-hostile.test.ts). So a
   * timeout only ever cancels its own query: with `queryTimeoutMs`, the query is the only one written (see
   * {@link #mayWrite}), and nothing more is written until the server has closed the cancel connection — by
   * then PostgreSQL has signalled the backend, which either cancels the query or, if it is already waiting
   * for the next command, drops the cancel (postgres.c, ProcessInterrupts: "If we are reading a command
   * from the client, just ignore the cancel request"). A server that leaves the cancel connection open past
   * CANCEL_GRACE_MS leaves that unknown, so the connection is closed rather than risk the next query.
   */
  #onQueryTimeout(pending: Pending): void {
    if (this.#lost) return;
    pending.timedOut = true;
    pending.timer = setTimeout(
      () =>
        this.#fail(
          new PgConnectionError(
            `the server did not answer a cancel within ${CANCEL_GRACE_MS / 1000} s; connection closed`,
          ),
        ),
      CANCEL_GRACE_MS,
    );
    this.#cancelling = true;
    void this.#sendCancel().then((settled) => {
      this.#cancelling = false;
      if (this.#lost) return;
      if (!settled) {
        return this.#fail(
          new PgConnectionError(
            `the server did not confirm a cancel within ${CANCEL_GRACE_MS / 1000} s; connection closed, as a late cancel could end the next query`,
          ),
        );
      }
      this.#sendWaiting();
    });
  }

  readonly #handover = (): void => {
    this.#handoverScheduled = false;
    if (!this.#lost && !this.#closing) this.#flush();
  };

  /** Sends what was built at once, behind anything the writer still holds. */
  #sendNow(): void {
    if (this.#out.length <= SEND_FROM_BUILDER_BYTES) return this.#writer.writeNow(this.#out.takeView());
    this.#flush();
    this.#writer.flushNow();
  }

  /** Hands what was built to the writer, which sends it at the end of this turn with whatever follows. */
  #flush(): void {
    this.#writer.writeShared(this.#out.take());
  }

  /** Sends a COPY FROM's data (lib/pg/copy-in.ts), then lets the queries waiting behind it go. */
  async #pumpCopyData(pending: PendingCopyIn, source: CopySource): Promise<void> {
    await sendCopyData(source, pending, this.#wire);
    this.#gate = null;
    this.#sendWaiting();
  }

  // ── Reading ──

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const chunk = await this.#reader.read(READ_BYTES);
        if (chunk.length === 0) break;
        this.#framer.push(chunk);
        if (this.#copyParts.length > 0) this.#deliverCopyParts();
        // A COPY TO consumer that is behind: stop reading (the socket pauses once the reader is full).
        const copyOut = this.#inFlight.head;
        const full = copyOut?.kind === "copyOut" ? copyOut.stream.full() : null;
        if (full) await full;
      }
      this.#fail(new PgConnectionError("the server closed the connection"));
    } catch (error) {
      this.#fail(connectionFailure(error));
    }
  }

  /** One backend message, routed by its type byte. */
  #dispatch(type: number, body: Buffer): void {
    const pending = this.#inFlight.head;
    switch (type) {
      case Backend.DataRow: // 'D'
        return this.#onDataRow(pending, body);
      case Backend.CommandComplete: // 'C'
        return this.#onCommandComplete(pending, body);
      case Backend.ReadyForQuery: // 'Z'
        return this.#onReadyForQuery(body[0] ?? TransactionStatus.Idle);
      case Backend.ParseComplete: // '1'
        if (pending && (pending.kind === "extended" || pending.kind === "describe"))
          pending.statement.parsed = true;
        return;
      case Backend.BindComplete: // '2'
      case Backend.CloseComplete: // '3'
      case Backend.CopyDone: // 'c'
      case Backend.PortalSuspended: // 's'
        return;
      case Backend.ParameterDescription: // 't'
        if (pending && (pending.kind === "extended" || pending.kind === "describe"))
          pending.statement.paramTypes = parseParameterDescription(body);
        return;
      case Backend.RowDescription: // 'T'
        return this.#onRowDescription(pending, parseRowDescription(body));
      case Backend.NoData: // 'n'
        return this.#onRowDescription(pending, NO_FIELDS);
      case Backend.EmptyQueryResponse: // 'I'
        return this.#onEmptyQuery(pending);
      case Backend.ErrorResponse: // 'E'
        return this.#onErrorResponse(pending, new PgError(errorFields(parseErrorFields(body))));
      case Backend.NoticeResponse: // 'N'
        return this.onNotice(errorFields(parseErrorFields(body)));
      case Backend.NotificationResponse: // 'A'
        return this.#onNotification(parseNotificationResponse(body));
      case Backend.ParameterStatus: {
        // 'S'
        const [name, value] = parseParameterStatus(body);
        this.parameters.set(name, value);
        return;
      }
      case Backend.BackendKeyData: // 'K'
        this.#backendKey = parseBackendKeyData(body);
        return;
      case Backend.Authentication: // 'R'
        // From AuthenticationOk on, messages up to MAX_MESSAGE_BYTES.
        if (this.#login.onAuthentication(body)) this.#framer.authenticated = true;
        return;
      case Backend.CopyInResponse: // 'G'
        return this.#onCopyInResponse(pending);
      case Backend.CopyOutResponse: // 'H'
        if (pending?.kind === "copyOut") return;
        return this.#onRowDescription(pending, [copyField()]);
      case Backend.CopyData: // 'd'
        return this.#onCopyData(pending, body);
      default:
        throw new ProtocolError(
          `unexpected message type ${JSON.stringify(String.fromCharCode(type))} from the server`,
        );
    }
  }

  /**
   * The server is in copy-in mode. For copyFrom() its data starts to flow. For query()/simpleQuery() there
   * is no data to send: a CopyFail ends it, and the server answers with an ErrorResponse (in copy-in mode
   * it ignored the query's own Sync, so an extended query needs another). Either way one CopyInResponse per
   * query is all the protocol allows ("COPY Operations": the copy ends with CopyDone or CopyFail, then
   * CommandComplete or ErrorResponse): a second is a protocol violation and fails the connection — else
   * a hostile server could have us start a copy twice, or queue a CopyFail per message without end.
   */
  #onCopyInResponse(pending: Pending | undefined): void {
    if (!pending) throw new ProtocolError("a CopyInResponse with no query waiting");
    if (pending.copyInAnswered)
      throw new ProtocolError(
        "a second CopyInResponse for the same query (the server is not following the protocol)",
      );
    pending.copyInAnswered = true;
    if (pending.kind === "copyIn") return pending.start();
    writeCopyFail(this.#out, "COPY FROM STDIN needs copyFrom(sql, source)");
    if (pending.kind === "extended") writeSync(this.#out);
    this.#flush();
  }

  #onCopyData(pending: Pending | undefined, body: Buffer): void {
    if (pending?.kind === "copyOut") {
      // One CopyData per row: gathered, and handed over as one chunk per read (see #deliverCopyParts).
      this.#copyParts.push(body);
      this.#copyPartsStream = pending.stream;
    } else if (pending?.kind === "simple" && pending.current) {
      if (pending.current.rows.length >= pending.maxRows) return;
      pending.current.rows.push({ copy: body.toString("utf8").replace(/\n$/, "") });
    }
  }

  /** The CopyData bodies of one read, copied into one chunk (they are views into the framer's buffer). */
  #deliverCopyParts(): void {
    const chunk = Buffer.concat(this.#copyParts);
    this.#copyParts = [];
    this.#copyPartsStream?.push(chunk);
  }

  #onRowDescription(pending: Pending | undefined, fields: FieldDescription[]): void {
    if (!pending) throw new ProtocolError("a row description with no query waiting");
    const described = describeFields(fields);
    if (pending.kind === "extended" || pending.kind === "describe") {
      Object.assign(pending.statement, { fields }, described);
    } else if (pending.kind === "simple") {
      pending.current = { fields, ...described, rows: [] };
    }
  }

  #onDataRow(pending: Pending | undefined, body: Buffer): void {
    if (pending?.kind !== "extended" && pending?.kind !== "simple")
      throw new ProtocolError("a data row with no query waiting");
    const target = pending.kind === "extended" ? pending.statement : pending.current;
    if (!target?.fields) throw new ProtocolError("a data row before its row description");
    if (pending.error) return; // a value already failed to parse: skip the rest
    if (pending.kind === "simple" && pending.current!.rows.length >= pending.maxRows) return;
    try {
      const row = parseDataRow(body, target.fields, target.parsers);
      if (pending.kind === "extended") pending.rows.push(row);
      else pending.current!.rows.push(row);
    } catch (error) {
      pending.error = new PgResultValueError(error);
    }
  }

  #onCommandComplete(pending: Pending | undefined, body: Buffer): void {
    if (!pending) throw new ProtocolError("a command completion with no query waiting");
    const tag = parseCommandComplete(body);
    if (tag.command === "DISCARD ALL" || tag.command === "DEALLOCATE ALL") this.#statements.forgetPrepared();
    if (pending.kind === "extended" || pending.kind === "copyIn") {
      pending.tag = tag;
      return;
    }
    if (pending.kind !== "simple") return;
    const current = pending.current;
    pending.results.push({
      ...tag,
      fields: current?.publicFields ?? [],
      rows: current?.rows ?? [],
    });
    pending.current = null;
  }

  #onEmptyQuery(pending: Pending | undefined): void {
    if (pending?.kind === "simple")
      pending.results.push({ command: "", rowCount: null, fields: [], rows: [] });
    else if (pending?.kind === "extended") pending.tag = { command: "", rowCount: null };
  }

  #onErrorResponse(pending: Pending | undefined, error: PgError): void {
    if (error.severity === "FATAL" || error.severity === "PANIC" || !pending) throw error;
    if (pending.kind === "copyOut") {
      if (this.#copyParts.length > 0) this.#deliverCopyParts();
      pending.stream.finish(error);
    }
    pending.error ??= error;
  }

  /** The end of one query's answers: settle it, and write what was waiting for it. */
  #onReadyForQuery(status: number): void {
    const pending = this.#inFlight.shift();
    if (!pending) {
      this.#startup.resolve(); // the first one ends the startup
      return;
    }
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    if (this.#options.queryTimeoutMs > 0) this.#startTimeout(this.#inFlight.head);
    if (pending.timedOut && pending.error) {
      pending.error = new PgQueryTimeoutError(this.#options.queryTimeoutMs, false, { cause: pending.error });
    }
    switch (pending.kind) {
      case "extended":
        this.#settleExtended(pending, status);
        break;
      case "describe":
        if (pending.error) {
          // The Parse failed (or the Describe): the query that asked for it gets the error.
          this.#statements.forget(pending.statement);
          const job = this.#waiting.shift();
          job?.reject(pending.error);
        }
        this.#sendWaiting();
        break;
      case "simple":
        if (pending.error) pending.reject(pending.error);
        else pending.resolve(pending.results);
        break;
      case "close":
        break; // closing a statement the server no longer has is no error; nothing else to do
      case "copyIn":
        if (this.#gate === pending && pending.error) {
          // Refused before any data was asked for (no such table, …): nothing more will be sent.
          this.#gate = null;
          this.#sendWaiting();
        }
        if (pending.error) pending.reject(pending.error);
        else pending.resolve(pending.tag?.rowCount ?? 0);
        break;
      case "copyOut":
        if (this.#copyParts.length > 0) this.#deliverCopyParts();
        pending.stream.finish(pending.error);
        if (pending.error) pending.reject(pending.error);
        else pending.resolve();
        break;
    }
    // A query may have been waiting for this one's ParameterDescription (or failure).
    if (this.#waiting.length > 0) this.#sendWaiting();
  }

  /**
   * A statement the server no longer accepts — 26000 (it does not exist: DISCARD ALL, DEALLOCATE, or its
   * Parse failed earlier in this pipeline) or 0A000 (cached plan must not change result type: its table was
   * altered, or search_path now finds another) — is forgotten and closed. Outside a transaction the query
   * is written again once, with a fresh Parse: it gets its own real answer. Inside a transaction the server
   * has failed the transaction anyway, so the error is the answer.
   */
  #settleExtended(pending: PendingExtended, status: number): void {
    const error = pending.error;
    if (!this.#options.statementCacheSize) this.#statements.forget(pending.statement);
    const request = pending.request;
    if (!error) {
      const tag = pending.tag;
      request.resolve({
        command: tag?.command ?? "",
        rowCount: tag?.rowCount ?? null,
        fields: pending.statement.publicFields,
        rows: pending.rows,
      });
      return;
    }
    const stale = error instanceof PgError && (error.code === "26000" || error.code === "0A000");
    if (stale || !pending.statement.parsed) this.#statements.forget(pending.statement);
    if (stale && status === TransactionStatus.Idle && !request.retried) {
      request.retried = true;
      request.statement = null;
      this.#submitExtended(request);
    } else request.reject(error);
  }

  #onNotification(notification: Notification): void {
    for (const listener of this.#listeners.get(notification.channel) ?? []) {
      try {
        listener(notification);
      } catch (error) {
        console.error(`LISTEN ${notification.channel}: listener failed: ${(error as Error).message}`);
      }
    }
  }

  /** The connection is over: every pending and later query rejects with `error`. */
  #fail(error: Error): void {
    if (this.#lost) return;
    this.#lost =
      error instanceof PgConnectionError
        ? error
        : new PgConnectionError(`connection lost: ${error.message}`, { cause: error });
    this.#startup.reject(error);
    this.#startup.promise.catch(() => {});
    const pending = this.#inFlight.drain();
    for (const query of pending) {
      clearTimeout(query.timer);
      const reason = query.timedOut
        ? new PgQueryTimeoutError(this.#options.queryTimeoutMs, true, { cause: this.#lost })
        : error instanceof PgError
          ? error
          : this.#lost;
      if (query.kind === "copyOut") query.stream.finish(reason);
      query.reject(reason);
    }
    for (const job of this.#waiting.splice(0)) job.reject(error instanceof PgError ? error : this.#lost);
    this.#gate = null;
    this.#listeners.clear();
    this.#writer.abort();
  }
}

/**
 * Sends a CancelRequest on a fresh connection and waits for the server to close it (it does once it has
 * read the request), at most CANCEL_GRACE_MS. True if it closed (or reset) the connection, false if it
 * stayed silent.
 */
async function sendCancelRequest(
  reader: StreamReader,
  writer: StreamWriter,
  key: { processId: number; secretKey: number },
): Promise<boolean> {
  const out = new MessageBuilder();
  writeCancelRequest(out, key.processId, key.secretKey);
  writer.writeShared(out.take());
  writer.writeEof();
  let silent = false;
  const timer = setTimeout(() => {
    silent = true;
    writer.abort();
  }, CANCEL_GRACE_MS);
  try {
    await reader.read();
  } catch {
    // aborted (silent), or reset by the server: the request was sent either way
  } finally {
    clearTimeout(timer);
    writer.close();
  }
  return !silent;
}

function copyField(): FieldDescription {
  return {
    name: "copy",
    tableOid: 0,
    columnNumber: 0,
    typeOid: TypeOid.text,
    typeSize: -1,
    typeModifier: -1,
    format: 0,
  };
}

/**
 * SQL text travels as a C string (Query, Parse): a NUL byte would end it early and the rest of the message
 * would be read as something else — refused before anything is sent, as libpq's strings cannot hold one.
 */
function nulInSqlError(): TypeError {
  return new TypeError("the SQL text contains a NUL byte (\\0), which PostgreSQL's protocol cannot carry");
}
