/**
 * lib/pg/pending.ts — the bookkeeping of queries between the call and the answer: what a result looks like
 * (`QueryResult`, `Field`), a query not yet written (`Job`), and what each kind of query in flight collects
 * from the server's messages until its ReadyForQuery settles it (`Pending`), and the queue of those in
 * flight (`PendingQueue`).
 */
import type { CopyOutStream } from "./copy-out-stream.ts";
import type { FieldDescription } from "./protocol.ts";
import type { Statement } from "./statement-cache.ts";
import { type Parser, parserFor } from "./types.ts";

/** A result column: its name and its type's OID (see TypeOid). */
export interface Field {
  name: string;
  typeOid: number;
}

/** What a statement returned: its command tag, and its rows (empty for a statement that returns none). */
export interface QueryResult<Row = Record<string, unknown>> {
  /** The command tag's verb: `SELECT`, `INSERT`, `CREATE TABLE`, … */
  command: string;
  /** Rows returned or affected, when the tag says (null for e.g. `CREATE TABLE`). */
  rowCount: number | null;
  fields: Field[];
  rows: Row[];
}

/** Rows and fields of the result set being received. */
export interface ResultSet {
  fields: FieldDescription[];
  parsers: Parser[];
  publicFields: Field[];
  rows: Record<string, unknown>[];
}

/**
 * A query not yet written: `send()` writes its messages and returns true, or returns false when it must
 * wait (its statement's parameter types are not known yet). Jobs are written strictly in call order.
 */
export interface Job {
  send(): boolean;
  reject(error: Error): void;
}

/** What the responses at the head of the queue belong to. */
export interface PendingBase {
  /** The first error of its answers (the rest are still read, up to ReadyForQuery); it rejects with it. */
  error: Error | null;
  reject(error: Error): void;
  /** The `queryTimeoutMs` timer, then the cancel's grace timer. */
  timer?: ReturnType<typeof setTimeout>;
  /** It ran past `queryTimeoutMs` and a cancel was sent. */
  timedOut?: boolean;
  /** A CopyInResponse came for it (and was answered): another one is a protocol violation. */
  copyInAnswered?: boolean;
}

/**
 * A `query()` call: kept until answered, so that it can be written again once — when its cached statement
 * turned out stale (the client's `#settleExtended`).
 */
export interface ExtendedRequest {
  text: string;
  params: readonly unknown[];
  /** The statement it runs; kept while it waits for the statement's Describe. */
  statement: Statement | null;
  retried: boolean;
  resolve(result: QueryResult): void;
  reject(error: Error): void;
}

export interface PendingExtended extends PendingBase {
  kind: "extended";
  request: ExtendedRequest;
  statement: Statement;
  rows: Record<string, unknown>[];
  tag: { command: string; rowCount: number | null } | null;
}

export interface PendingSimple extends PendingBase {
  kind: "simple";
  current: ResultSet | null;
  results: QueryResult[];
  /** Rows each result keeps; later ones are dropped unparsed (simpleQuery's `maxRows`). */
  maxRows: number;
  resolve(results: QueryResult[]): void;
}

/** Parse + Describe + Sync of a statement whose parameter types we need before we can encode a Bind. */
export interface PendingDescribe extends PendingBase {
  kind: "describe";
  statement: Statement;
  resolve(): void;
}

/** Close of statements we no longer use, with a Sync of its own so that nothing else can fail with it. */
export interface PendingClose extends PendingBase {
  kind: "close";
  resolve(): void;
}

/** COPY … FROM STDIN: rows go up while the server is in copy-in mode. */
export interface PendingCopyIn extends PendingBase {
  kind: "copyIn";
  /** Called on CopyInResponse: start sending. */
  start(): void;
  tag: { command: string; rowCount: number | null } | null;
  resolve(rowCount: number): void;
}

/** COPY … TO STDOUT: chunks come down into a bounded queue the consumer drains. */
export interface PendingCopyOut extends PendingBase {
  kind: "copyOut";
  stream: CopyOutStream;
  resolve(): void;
}

export type Pending =
  | PendingExtended
  | PendingSimple
  | PendingDescribe
  | PendingClose
  | PendingCopyIn
  | PendingCopyOut;

/** A row description's parsers (one per column) and the fields a result shows. */
export function describeFields(fields: FieldDescription[]): Pick<ResultSet, "parsers" | "publicFields"> {
  return {
    parsers: fields.map((field) => parserFor(field.typeOid)),
    publicFields: fields.map(({ name, typeOid }) => ({ name, typeOid })),
  };
}

/**
 * The queries in flight, in the order they were written — the order the server answers them in, so the
 * head owns every message until its ReadyForQuery. An array read from a moving head (no `shift()`, which
 * copies), emptied whenever the head catches up with the tail.
 */
export class PendingQueue {
  #items: Pending[] = [];
  #head = 0;

  /** The query the server is answering now; undefined when none is in flight (as during the startup). */
  get head(): Pending | undefined {
    return this.#items[this.#head];
  }

  /** Adds `pending` behind the others; returns how many are now in flight (1: it is the head). */
  push(pending: Pending): number {
    this.#items.push(pending);
    return this.#items.length - this.#head;
  }

  /** How many are in flight. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Removes and returns the head; undefined when none is in flight. */
  shift(): Pending | undefined {
    if (this.#head === this.#items.length) return undefined;
    const pending = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as unknown as Pending;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    }
    return pending;
  }

  /** Empties the queue; returns what was in flight, oldest first. */
  drain(): Pending[] {
    const pending = this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return pending;
  }
}
