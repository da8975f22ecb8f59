/**
 * lib/pg/errors.ts — what goes wrong, with everything the server said about it.
 *
 * An ErrorResponse ('E') is a list of fields, each a one-letter code and a string (manual: "Error and
 * Notice Message Fields"): S severity, C SQLSTATE code, M message, D detail, H hint, P position, … A
 * NoticeResponse ('N') has the same fields and does not fail anything.
 */
import { ConnectionLostError } from "../streams.ts";

// ── Errors ────────────────────────────────────────────────────────────────────────────────────────────

/** ErrorResponse field codes (manual: "Error and Notice Message Fields") → property names. */
const ERROR_FIELDS: Record<string, keyof PgErrorFields> = {
  S: "severity",
  C: "code",
  M: "message",
  D: "detail",
  H: "hint",
  P: "position",
  p: "internalPosition",
  q: "internalQuery",
  W: "where",
  s: "schema",
  t: "table",
  c: "column",
  d: "dataType",
  n: "constraint",
  F: "file",
  L: "line",
  R: "routine",
};

export interface PgErrorFields {
  /** ERROR, FATAL, PANIC (or WARNING, NOTICE, … for notices). */
  severity: string;
  /** SQLSTATE, e.g. `42P01` undefined_table, `23505` unique_violation, `57014` query_canceled. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** 1-based character position in the query text. */
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

export function errorFields(raw: Map<string, string>): PgErrorFields {
  const fields: Partial<PgErrorFields> = {};
  for (const [code, value] of raw) {
    const name = ERROR_FIELDS[code];
    if (name) fields[name] = value;
  }
  return { severity: "ERROR", code: "XX000", message: "unknown error", ...fields };
}

/** An ErrorResponse from the server: every field it sent, `code` being the SQLSTATE. */
export class PgError extends Error implements PgErrorFields {
  override name = "PgError";
  readonly severity: string;
  readonly code: string;
  declare readonly detail?: string;
  declare readonly hint?: string;
  declare readonly position?: string;
  declare readonly internalPosition?: string;
  declare readonly internalQuery?: string;
  declare readonly where?: string;
  declare readonly schema?: string;
  declare readonly table?: string;
  declare readonly column?: string;
  declare readonly dataType?: string;
  declare readonly constraint?: string;
  declare readonly file?: string;
  declare readonly line?: string;
  declare readonly routine?: string;

  constructor(fields: PgErrorFields) {
    super(fields.message);
    Object.assign(this, fields);
    this.severity = fields.severity;
    this.code = fields.code;
  }
}

/**
 * A value of a result could not be read (its text is not what its type's output looks like, see
 * PgValueTextError): the query rejects with it, its other rows are dropped, the connection goes on. A
 * TypeError, as before it had a class of its own; `cause` is the parser's error.
 */
export class PgResultValueError extends TypeError {
  override name = "PgResultValueError";
  constructor(cause: unknown) {
    super(`cannot read a value of the result: ${(cause as Error).message}`, { cause });
  }
}

/** A NoticeResponse (a warning or notice that does not fail the query). */
export type PgNotice = PgErrorFields;

/** The connection failed or is gone; every pending and later query rejects with it. */
export class PgConnectionError extends Error {
  override name = "PgConnectionError";
}

/**
 * The one failure path of a connection whose reading (or login) threw: what its queries reject with. A
 * PgConnectionError, or the server's own PgError (a FATAL ErrorResponse), stays as it is; a lost socket
 * keeps its words (`connection lost: …`); anything else — a protocol violation, a refused SCRAM exchange —
 * reads `connection failed: …`. The original is the `cause`.
 */
export function connectionFailure(error: unknown): PgConnectionError | PgError {
  if (error instanceof PgConnectionError || error instanceof PgError) return error;
  const message = (error as Error).message;
  return new PgConnectionError(
    error instanceof ConnectionLostError ? message : `connection failed: ${message}`,
    { cause: error },
  );
}

/**
 * A query ran past `queryTimeoutMs`. A CancelRequest was sent; `connectionClosed` says whether the server
 * ignored it (then the connection was closed, and every other pending query failed with
 * PgConnectionError) or answered (then the connection goes on). `cause` is what the server answered.
 */
export class PgQueryTimeoutError extends Error {
  override name = "PgQueryTimeoutError";
  constructor(
    readonly timeoutMs: number,
    readonly connectionClosed: boolean,
    options?: ErrorOptions,
  ) {
    super(
      `the query ran longer than ${timeoutMs} ms and was cancelled${connectionClosed ? "; the server did not answer the cancel, so the connection was closed" : ""}`,
      options,
    );
  }
}

/** The server's authentication request is one `requireAuth` does not allow; nothing was sent in reply. */
export class PgAuthenticationRefusedError extends PgConnectionError {
  override name = "PgAuthenticationRefusedError";
  constructor(
    readonly method: string,
    readonly requireAuth: string,
  ) {
    super(
      method === "none"
        ? `the server let us in without authentication, but require_auth=${requireAuth} does not allow that`
        : `the server asks for ${method} authentication, but require_auth=${requireAuth} does not allow it; no password was sent`,
    );
  }
}

/**
 * No connection of a Pool came free (or could be opened) within its `acquireTimeoutMs`: the query was not
 * sent. Carries the limit and what the pool looked like when it gave up.
 */
export class PgPoolTimeoutError extends PgConnectionError {
  override name = "PgPoolTimeoutError";
  constructor(
    readonly timeoutMs: number,
    /** The pool's `max`. */
    readonly max: number,
    /** Connections open (all busy) or being opened. */
    readonly open: number,
    /** Callers still waiting behind this one. */
    readonly waiting: number,
  ) {
    super(
      `no database connection came free within ${timeoutMs / 1000} s (all ${open} of ${max} busy or connecting)`,
    );
  }
}
