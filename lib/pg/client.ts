/**
 * lib/pg/client.ts — one connection to PostgreSQL, on lib/streams.
 *
 * A reading task takes whatever bytes have arrived (`reader.read()`), the MessageFramer cuts them into
 * messages, and each message goes to the query at the head of the pending queue. Writing never waits:
 * `query()` builds its messages and hands them to the StreamWriter at once, so queries issued together are
 * *pipelined* — they travel in one write, the server answers them in order, and each Sync's ReadyForQuery
 * tells us one query is done and the next answer begins.
 */
import { ConnectionLostError, openConnection, type StreamReader, type StreamWriter } from "../streams.ts";
import { md5PasswordResponse, ScramClient } from "./auth.ts";
import {
  errorFields,
  PgAuthenticationRefusedError,
  PgConnectionError,
  PgError,
  type PgNotice,
  PgQueryTimeoutError,
} from "./errors.ts";
import { type AuthMethod, type ConnectOptions, type ResolvedOptions, resolveOptions } from "./options.ts";
import {
  Auth,
  Backend,
  ByteaParameter,
  type FieldDescription,
  MAX_BIND_PARAMETERS,
  MessageBuilder,
  MessageFramer,
  ProtocolError,
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseErrorFields,
  parseNotificationResponse,
  parseParameterStatus,
  parseRowDescription,
  parseSASLMechanisms,
  writeBind,
  writeCancelRequest,
  writeClose,
  writeCopyFail,
  writeDescribe,
  writeExecute,
  writeParse,
  writePasswordMessage,
  writeQuery,
  writeSASLInitialResponse,
  writeSASLResponse,
  writeStartupMessage,
  writeSync,
  writeTerminate,
} from "./protocol.ts";
import { type Parser, parserFor, serializeParameter, TypeOid } from "./types.ts";

/** Bytes taken from the reader at a time: everything buffered, up to 4 MiB. */
const READ_BYTES = 4 * 1024 * 1024;
/**
 * How long a server has to answer a CancelRequest (by ending the cancelled query) before the connection is
 * taken for dead and closed: 2 s. A live server cancels in milliseconds.
 */
export const CANCEL_GRACE_MS = 2_000;

export {
  PgAuthenticationRefusedError,
  PgConnectionError,
  PgError,
  type PgErrorFields,
  type PgNotice,
  PgQueryTimeoutError,
} from "./errors.ts";

// ── Results ───────────────────────────────────────────────────────────────────────────────────────────

export interface Field {
  name: string;
  typeOid: number;
}

export interface QueryResult<Row = Record<string, unknown>> {
  /** The command tag's verb: `SELECT`, `INSERT`, `CREATE TABLE`, … */
  command: string;
  /** Rows returned or affected, when the tag says (null for e.g. `CREATE TABLE`). */
  rowCount: number | null;
  fields: Field[];
  rows: Row[];
}

export interface Notification {
  processId: number;
  channel: string;
  payload: string;
}

/** A prepared statement: parsed once by the server, then only bound and executed. */
interface Statement {
  name: string;
  fields: FieldDescription[] | null;
  parsers: Parser[];
  publicFields: Field[];
  /** Set when its Parse failed: later queries that used it report this error. */
  parseError: PgError | null;
}

/** Rows and fields of the result set being received. */
interface ResultSet {
  fields: FieldDescription[];
  parsers: Parser[];
  publicFields: Field[];
  rows: Record<string, unknown>[];
}

/** What the responses at the head of the queue belong to. */
interface PendingBase {
  error: Error | null;
  reject(error: Error): void;
  /** The `queryTimeoutMs` timer, then the cancel's grace timer. */
  timer?: ReturnType<typeof setTimeout>;
  /** It ran past `queryTimeoutMs` and a cancel was sent. */
  timedOut?: boolean;
}

interface PendingExtended extends PendingBase {
  kind: "extended";
  statement: Statement;
  rows: Record<string, unknown>[];
  tag: { command: string; rowCount: number | null } | null;
  resolve(result: QueryResult): void;
}

interface PendingSimple extends PendingBase {
  kind: "simple";
  current: ResultSet | null;
  results: QueryResult[];
  resolve(results: QueryResult[]): void;
}

type Pending = PendingExtended | PendingSimple;

const NO_FIELDS: FieldDescription[] = [];

function describeFields(fields: FieldDescription[]): Pick<ResultSet, "parsers" | "publicFields"> {
  return {
    parsers: fields.map((field) => parserFor(field.typeOid)),
    publicFields: fields.map(({ name, typeOid }) => ({ name, typeOid })),
  };
}

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
  #pending: Pending[] = [];
  #head = 0;
  readonly #statements = new Map<string, Statement>();
  #statementCounter = 0;
  /**
   * Statement names are unique to this client, not just to its connection: a server that multiplexes
   * several connections onto one session (PGlite's socket server; poolers) would otherwise see two `s1`s.
   */
  readonly #statementPrefix = `s${Math.floor(Math.random() * 36 ** 6).toString(36)}_`;
  #backendKey: { processId: number; secretKey: number } | null = null;
  readonly #listeners = new Map<string, Set<(notification: Notification) => void>>();
  #lost: PgConnectionError | null = null;
  #closing = false;
  /** Settles when the startup ends: the first ReadyForQuery, or an error. */
  readonly #startup = Promise.withResolvers<void>();
  #scram: ScramClient | null = null;
  /** The server asked for a password or SASL: the startup was not `trust` ("none"). */
  #authChallenged = false;
  #lastQuery: Promise<unknown> = Promise.resolve();

  private constructor(options: ResolvedOptions, reader: StreamReader, writer: StreamWriter) {
    this.#options = options;
    this.#reader = reader;
    this.#writer = writer;
  }

  /**
   * Connects and authenticates. Rejects with {@link PgError} for what the server refuses (a wrong password:
   * `28P01`, no such database: `3D000`), {@link PgConnectionError} for a connection that cannot be made or
   * a timeout, and an `Error` for settings it cannot use.
   */
  static async connect(urlOrOptions?: string | ConnectOptions): Promise<Client> {
    const options = resolveOptions(urlOrOptions);
    const where = `${options.host}:${options.port}`;
    let client: Client | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new PgConnectionError(
          `timed out after ${options.connectTimeoutMs / 1000} s connecting to ${where}`,
        );
        if (client) client.#fail(error);
        reject(error);
      }, options.connectTimeoutMs);
    });
    try {
      const keepAlive = options.keepAlive ? { keepAliveMs: options.keepAliveIdleMs } : {};
      const opened = openConnection(options.host, options.port, keepAlive).catch((error: Error) => {
        throw new PgConnectionError(
          error.message.replace(/^cannot connect to/, "cannot connect to PostgreSQL at"),
          {
            cause: error,
          },
        );
      });
      const [reader, writer] = await Promise.race([opened, timeout]);
      client = new Client(options, reader, writer);
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

  /** The backend's process ID (what `pg_backend_pid()` returns; what `cancel()` names). */
  get processId(): number | null {
    return this.#backendKey?.processId ?? null;
  }

  /** True once the connection is closed or lost. */
  get closed(): boolean {
    return this.#lost !== null;
  }

  /**
   * Runs one statement with the extended protocol; `$1`, `$2`, … are replaced by `params` (sent as text,
   * never spliced into the SQL). The statement is prepared once per connection and reused.
   * Rejects with {@link PgError} (the connection stays usable) or {@link PgConnectionError}.
   */
  query<Row = Record<string, unknown>>(
    text: string,
    params: readonly unknown[] = [],
  ): Promise<QueryResult<Row>> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (params.length > MAX_BIND_PARAMETERS) {
      // Bind counts them in 16 bits: 65,536 would be sent as 0 and the server would blame the protocol.
      return Promise.reject(
        new RangeError(
          `a query takes at most ${MAX_BIND_PARAMETERS.toLocaleString("en-US")} parameters; this one has ${params.length.toLocaleString("en-US")}`,
        ),
      );
    }
    let values: (Uint8Array | ByteaParameter | null)[];
    try {
      values = params.map(bindValue);
    } catch (error) {
      return Promise.reject(new TypeError(`cannot send a parameter: ${(error as Error).message}`));
    }
    const out = this.#out;
    const statement = this.#prepare(text, out);
    writeBind(out, "", statement.name, values);
    writeExecute(out, "");
    writeSync(out);
    const { promise, resolve, reject } = Promise.withResolvers<QueryResult>();
    this.#enqueue({ kind: "extended", statement, rows: [], tag: null, error: null, resolve, reject });
    this.#lastQuery = promise;
    return promise as Promise<QueryResult<Row>>;
  }

  /**
   * Runs `text` with the simple query protocol: one or more statements separated by `;`, no parameters;
   * resolves with one result per statement. What a console sends for what the user types.
   */
  simpleQuery(text: string): Promise<QueryResult[]> {
    if (this.#lost) return Promise.reject(this.#lost);
    writeQuery(this.#out, text);
    const { promise, resolve, reject } = Promise.withResolvers<QueryResult[]>();
    this.#enqueue({ kind: "simple", current: null, results: [], error: null, resolve, reject });
    this.#lastQuery = promise;
    return promise;
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
    const [reader, writer] = await openConnection(this.#options.host, this.#options.port);
    const out = new MessageBuilder();
    writeCancelRequest(out, key.processId, key.secretKey);
    writer.writeShared(out.take());
    writer.writeEof();
    // The server closes the connection once it has read the request; a silent one gets CANCEL_GRACE_MS.
    const timer = setTimeout(() => writer.abort(), CANCEL_GRACE_MS);
    try {
      await reader.read();
    } catch {
      // aborted, or reset by the server: the request was sent either way
    } finally {
      clearTimeout(timer);
      writer.close();
    }
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

  // ── Startup and authentication ──

  #start(): void {
    const parameters: Record<string, string> = {
      user: this.#options.user,
      database: this.#options.database,
      application_name: this.#options.applicationName,
      client_encoding: "UTF8",
    };
    writeStartupMessage(this.#out, parameters);
    this.#flush();
    void this.#readLoop();
  }

  #onAuthentication(body: Buffer): void {
    const { code, data } = parseAuthentication(body);
    if (this.#framer.authenticated) {
      // Authentication happens once, before the first ReadyForQuery: a later request is not PostgreSQL's.
      throw new ProtocolError(`an authentication request (code ${code}) after authentication completed`);
    }
    switch (code) {
      case Auth.Ok:
        return this.#onAuthenticationOk();
      case Auth.CleartextPassword:
        this.#allowAuthentication("password");
        return this.#sendPassword(this.#requirePassword("password"));
      case Auth.MD5Password:
        this.#allowAuthentication("md5");
        return this.#sendPassword(
          md5PasswordResponse(this.#options.user, this.#requirePassword("md5"), data.subarray(0, 4)),
        );
      case Auth.SASL: {
        this.#allowAuthentication("scram-sha-256");
        const mechanisms = parseSASLMechanisms(data);
        if (!mechanisms.includes("SCRAM-SHA-256")) {
          throw new PgConnectionError(
            `the server offers only SASL mechanisms this client lacks: ${mechanisms.join(", ")}`,
          );
        }
        this.#scram = new ScramClient(this.#requirePassword("scram-sha-256"));
        writeSASLInitialResponse(this.#out, this.#scram.mechanism, this.#scram.clientFirstMessage());
        return this.#flush();
      }
      case Auth.SASLContinue:
        return this.#continueScram(data.toString("utf8"));
      case Auth.SASLFinal:
        return this.#scramClient().verifyServerFinal(data.toString("utf8"));
      default:
        throw new PgConnectionError(
          `the server asks for an authentication method this client lacks (code ${code})`,
        );
    }
  }

  /** AuthenticationOk: refused if a SCRAM exchange began and the server never proved its signature. */
  #onAuthenticationOk(): void {
    if (this.#scram && !this.#scram.verified) {
      throw new PgConnectionError(
        "the server ended SCRAM-SHA-256 authentication without proving it knows the password (no valid server-final-message); refusing it",
      );
    }
    if (!this.#authChallenged) this.#allowAuthentication("none");
    this.#framer.authenticated = true; // from now on, messages up to MAX_MESSAGE_BYTES
  }

  /** Throws before anything is sent if `requireAuth` does not allow the method the server chose. */
  #allowAuthentication(method: AuthMethod): void {
    this.#authChallenged = true;
    const allowed = this.#options.allowedAuth;
    if (allowed && !allowed.has(method)) {
      throw new PgAuthenticationRefusedError(method, this.#options.requireAuth);
    }
  }

  /** client-final-message: its PBKDF2 runs off the event loop; the server waits for it. */
  #continueScram(serverFirst: string): void {
    this.#scramClient()
      .clientFinalMessage(serverFirst)
      .then(
        (message) => {
          if (this.#lost) return;
          writeSASLResponse(this.#out, message);
          this.#flush();
        },
        (error: Error) =>
          this.#fail(new PgConnectionError(`connection failed: ${error.message}`, { cause: error })),
      );
  }

  #requirePassword(method: string): string {
    const password = this.#options.password;
    if (password === undefined) {
      throw new PgConnectionError(
        `the server asks for a password (${method}) and none was given (URL, options or PGPASSWORD)`,
      );
    }
    return password;
  }

  #scramClient(): ScramClient {
    if (!this.#scram) throw new ProtocolError("SASL message before the SASL exchange began");
    return this.#scram;
  }

  #sendPassword(password: string): void {
    writePasswordMessage(this.#out, password);
    this.#flush();
  }

  // ── Writing ──

  /** Finds or prepares `text`: a cached statement, or Parse + Describe written into `out` now. */
  #prepare(text: string, out: MessageBuilder): Statement {
    const capacity = this.#options.statementCacheSize;
    const cached = this.#statements.get(text);
    if (cached) {
      // Most recently used goes last: the Map's order is the eviction order.
      this.#statements.delete(text);
      this.#statements.set(text, cached);
      return cached;
    }
    const statement: Statement = {
      name: capacity > 0 ? `${this.#statementPrefix}${++this.#statementCounter}` : "",
      fields: null,
      parsers: [],
      publicFields: [],
      parseError: null,
    };
    if (capacity > 0) {
      if (this.#statements.size >= capacity) {
        const [oldestText, oldest] = this.#statements.entries().next().value!;
        this.#statements.delete(oldestText);
        writeClose(out, "S", oldest.name); // its CloseComplete arrives among this query's answers
      }
      this.#statements.set(text, statement);
    }
    writeParse(out, statement.name, text);
    writeDescribe(out, "S", statement.name);
    return statement;
  }

  #enqueue(pending: Pending): void {
    this.#pending.push(pending);
    this.#flush();
    // Alone in flight: nothing will join this write, so send it now rather than at the end of the turn.
    // (Queries issued together still leave in one write: only the first goes early.)
    if (this.#pending.length - this.#head === 1) {
      this.#writer.flushNow();
      this.#startTimeout(pending);
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
    this.cancel().catch(() => {}); // a refused cancel connection: the grace timer decides
  }

  /** Hands what was built to the writer, which sends it at the end of this turn with whatever follows. */
  #flush(): void {
    this.#writer.writeShared(this.#out.take());
  }

  // ── Reading ──

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const chunk = await this.#reader.read(READ_BYTES);
        if (chunk.length === 0) break;
        this.#framer.push(chunk);
      }
      this.#fail(new PgConnectionError("the server closed the connection"));
    } catch (error) {
      if (error instanceof PgConnectionError) this.#fail(error);
      else if (error instanceof PgError) this.#fail(error);
      else if (error instanceof ConnectionLostError)
        this.#fail(new PgConnectionError(error.message, { cause: error }));
      else
        this.#fail(new PgConnectionError(`connection failed: ${(error as Error).message}`, { cause: error }));
    }
  }

  /** One backend message, routed by its type byte. */
  #dispatch(type: number, body: Buffer): void {
    const pending = this.#pending[this.#head];
    switch (type) {
      case Backend.DataRow: // 'D'
        return this.#onDataRow(pending, body);
      case Backend.CommandComplete: // 'C'
        return this.#onCommandComplete(pending, body);
      case Backend.ReadyForQuery: // 'Z'
        return this.#onReadyForQuery();
      case Backend.ParseComplete: // '1'
      case Backend.BindComplete: // '2'
      case Backend.CloseComplete: // '3'
      case Backend.ParameterDescription: // 't'
      case Backend.CopyDone: // 'c'
      case Backend.PortalSuspended: // 's'
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
        return this.#onAuthentication(body);
      case Backend.CopyInResponse: // 'G'
        writeCopyFail(this.#out, "COPY FROM STDIN is not supported by this client");
        return this.#flush();
      case Backend.CopyOutResponse: // 'H'
        return this.#onRowDescription(pending, [copyField()]);
      case Backend.CopyData: // 'd'
        if (pending?.kind === "simple" && pending.current) {
          pending.current.rows.push({ copy: body.toString("utf8").replace(/\n$/, "") });
        }
        return;
      default:
        throw new ProtocolError(
          `unexpected message type ${JSON.stringify(String.fromCharCode(type))} from the server`,
        );
    }
  }

  #onRowDescription(pending: Pending | undefined, fields: FieldDescription[]): void {
    if (!pending) throw new ProtocolError("a row description with no query waiting");
    const described = describeFields(fields);
    if (pending.kind === "extended") {
      Object.assign(pending.statement, { fields }, described);
    } else {
      pending.current = { fields, ...described, rows: [] };
    }
  }

  #onDataRow(pending: Pending | undefined, body: Buffer): void {
    if (!pending) throw new ProtocolError("a data row with no query waiting");
    const target = pending.kind === "extended" ? pending.statement : pending.current;
    if (!target?.fields) throw new ProtocolError("a data row before its row description");
    if (pending.error) return; // a value already failed to parse: skip the rest
    try {
      const row = parseDataRow(body, target.fields, target.parsers);
      if (pending.kind === "extended") pending.rows.push(row);
      else pending.current!.rows.push(row);
    } catch (error) {
      pending.error = new TypeError(`cannot read a value of the result: ${(error as Error).message}`);
    }
  }

  #onCommandComplete(pending: Pending | undefined, body: Buffer): void {
    if (!pending) throw new ProtocolError("a command completion with no query waiting");
    const tag = parseCommandComplete(body);
    if (pending.kind === "extended") {
      pending.tag = tag;
      return;
    }
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
    else if (pending) pending.tag = { command: "", rowCount: null };
  }

  #onErrorResponse(pending: Pending | undefined, error: PgError): void {
    if (error.severity === "FATAL" || error.severity === "PANIC" || !pending) throw error;
    if (pending.kind === "extended") {
      const statement = pending.statement;
      if (statement.fields === null) {
        // Its Parse failed: the statement does not exist on the server. Forget it.
        statement.parseError = error;
        this.#forgetStatement(statement);
      } else if (error.code === "26000" || error.code === "0A000") {
        // Gone (DISCARD ALL) or stale (the table changed under a cached plan): prepare afresh next time.
        this.#forgetStatement(statement);
      }
    }
    pending.error ??= error;
  }

  #forgetStatement(statement: Statement): void {
    for (const [text, cached] of this.#statements) {
      if (cached === statement) this.#statements.delete(text);
    }
  }

  #onReadyForQuery(): void {
    if (this.#head === this.#pending.length) {
      this.#startup.resolve(); // the first one ends the startup
      return;
    }
    const pending = this.#pending[this.#head]!;
    this.#pending[this.#head++] = undefined as unknown as Pending;
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    }
    clearTimeout(pending.timer);
    this.#startTimeout(this.#pending[this.#head]);
    if (pending.timedOut && pending.error) {
      pending.reject(new PgQueryTimeoutError(this.#options.queryTimeoutMs, false, { cause: pending.error }));
    } else if (pending.error) {
      const parseError = pending.kind === "extended" ? pending.statement.parseError : null;
      const error = pending.error;
      pending.reject(parseError && error instanceof PgError && error.code === "26000" ? parseError : error);
    } else if (pending.kind === "extended") {
      const tag = pending.tag;
      pending.resolve({
        command: tag?.command ?? "",
        rowCount: tag?.rowCount ?? null,
        fields: pending.statement.publicFields,
        rows: pending.rows,
      });
    } else {
      pending.resolve(pending.results);
    }
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
    const pending = this.#pending.slice(this.#head);
    this.#pending = [];
    this.#head = 0;
    for (const query of pending) {
      clearTimeout(query.timer);
      if (query.timedOut) {
        query.reject(new PgQueryTimeoutError(this.#options.queryTimeoutMs, true, { cause: this.#lost }));
      } else query.reject(error instanceof PgError ? error : this.#lost);
    }
    this.#listeners.clear();
    this.#writer.abort();
  }
}

/** A parameter as Bind carries it: bytea is hex-encoded straight into the message, the rest as text. */
function bindValue(value: unknown): Uint8Array | ByteaParameter | null {
  return value instanceof Uint8Array ? new ByteaParameter(value) : serializeParameter(value);
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
 * DataRow ('D'): Int16 column count, then per column an Int32 length (−1 for NULL) and that many bytes of
 * text. Integers are read straight from the bytes; everything else is decoded as UTF-8 and parsed.
 */
export function parseDataRow(
  body: Buffer,
  fields: FieldDescription[],
  parsers: Parser[],
): Record<string, unknown> {
  const count = body.readInt16BE(0);
  const row: Record<string, unknown> = {};
  let offset = 2;
  for (let column = 0; column < count; column++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    const field = fields[column]!;
    if (length === -1) {
      row[field.name] = null;
      continue;
    }
    const end = offset + length;
    const typeOid = field.typeOid;
    row[field.name] =
      typeOid === TypeOid.int4 || typeOid === TypeOid.int2 || typeOid === TypeOid.oid
        ? parseAsciiInteger(body, offset, end)
        : parsers[column]!(body.toString("utf8", offset, end));
    offset = end;
  }
  return row;
}

/** A decimal integer of at most 10 digits, without making a string first. */
function parseAsciiInteger(bytes: Buffer, start: number, end: number): number {
  const negative = bytes[start] === 0x2d; // '-'
  let value = 0;
  for (let index = negative ? start + 1 : start; index < end; index++)
    value = value * 10 + (bytes[index]! - 0x30);
  return negative ? -value : value;
}
