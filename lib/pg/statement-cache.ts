/**
 * lib/pg/statement-cache.ts — the prepared statements of one connection, by SQL text. A statement is parsed
 * once (Parse + Describe) and afterwards only bound and executed. The cache keeps the `capacity` used most
 * recently (default 100, like asyncpg; 0 keeps none: each statement is closed after its one use) and
 * evicts the least recently used, closing it on the server in the same write.
 *
 * A statement the client lets go of while the server may still hold it (evicted, failed, stale) is
 * *abandoned*: its name waits here until the connection's next write, which closes it first.
 */
import type { Field } from "./pending.ts";
import {
  type FieldDescription,
  type MessageBuilder,
  writeClose,
  writeDescribe,
  writeParse,
  writeSync,
} from "./protocol.ts";
import type { Parser } from "./types.ts";

/** A prepared statement: parsed once by the server, then only bound and executed. */
export interface Statement {
  name: string;
  text: string;
  /** The type the server gave each `$n` (ParameterDescription); null until it has answered. */
  paramTypes: number[] | null;
  fields: FieldDescription[] | null;
  parsers: Parser[];
  publicFields: Field[];
  /** Parse has been written (alone, or ahead of a Bind). */
  parseSent: boolean;
  /** The server has answered ParseComplete: it holds the statement. */
  parsed: boolean;
  /** Dropped from the cache: a query waiting on it prepares afresh. */
  forgotten: boolean;
}

export class StatementCache {
  readonly #capacity: number;
  /** Text → statement, least recently used first: the Map's order is the eviction order. */
  readonly #statements = new Map<string, Statement>();
  #counter = 0;
  /** The statement last in the cache's order (used most recently). */
  #mostRecent: Statement | null = null;
  /**
   * Statement names are unique to this client, not just to its connection: a server that multiplexes
   * several connections onto one session (PGlite's socket server; poolers) would otherwise see two `s1`s.
   */
  readonly #prefix = `s${Math.floor(Math.random() * 36 ** 6).toString(36)}_`;
  /** Names of statements the server may hold that we no longer use: closed before the next write. */
  #abandoned: string[] = [];

  /** `capacity`: statements kept (0: none, each is forgotten after its use). */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /**
   * The cached statement for `text`, or a new one (cached, unless the cache is off), not yet parsed. When
   * the cache is full, the least recently used statement is evicted: forgotten, and — if its Parse was
   * sent — closed by a Close written to `out` (its CloseComplete arrives among this query's answers;
   * closing is never an error).
   */
  statementFor(text: string, out: MessageBuilder): Statement {
    const capacity = this.#capacity;
    const cached = this.#statements.get(text);
    if (cached) {
      // Most recently used goes last: the Map's order is the eviction order. (Already last: nothing to do.)
      if (this.#mostRecent !== cached) {
        this.#statements.delete(text);
        this.#statements.set(text, cached);
        this.#mostRecent = cached;
      }
      return cached;
    }
    const statement: Statement = {
      // Without a cache, statements are still named, so a Bind can follow its Describe's answer safely;
      // each is closed right after use.
      name: `${this.#prefix}${++this.#counter}`,
      text,
      paramTypes: null,
      fields: null,
      parsers: [],
      publicFields: [],
      parseSent: false,
      parsed: false,
      forgotten: false,
    };
    if (capacity > 0) {
      if (this.#statements.size >= capacity) {
        const [oldestText, oldest] = this.#statements.entries().next().value!;
        this.#statements.delete(oldestText);
        oldest.forgotten = true;
        if (oldest.parseSent) writeClose(out, "S", oldest.name);
      }
      this.#statements.set(text, statement);
      this.#mostRecent = statement;
    }
    return statement;
  }

  /** Forgets a statement; one the server may still hold is abandoned (closed before the next write). */
  forget(statement: Statement): void {
    if (statement.forgotten) return;
    statement.forgotten = true;
    if (this.#statements.get(statement.text) === statement) this.#statements.delete(statement.text);
    if (statement.parsed) this.#abandoned.push(statement.name);
  }

  /**
   * The server dropped every prepared statement (DISCARD ALL, DEALLOCATE ALL): forget those it had parsed
   * when it did (a statement whose ParseComplete is still to come was parsed after, and stays).
   */
  forgetPrepared(): void {
    for (const [text, statement] of this.#statements) {
      if (statement.parsed) this.#statements.delete(text);
    }
  }

  /**
   * Writes a Close for each abandoned statement and a Sync of their own (so that their answers fail
   * nothing else), and returns true; returns false, writing nothing, when none is abandoned. The caller
   * queues the answers up to that Sync's ReadyForQuery.
   */
  writeCloseAbandoned(out: MessageBuilder): boolean {
    if (this.#abandoned.length === 0) return false;
    for (const name of this.#abandoned) writeClose(out, "S", name);
    this.#abandoned = [];
    writeSync(out);
    return true;
  }
}

/** Parse + Describe of `statement` (its parameter types and row description come back); marks it sent. */
export function writeParseAndDescribe(out: MessageBuilder, statement: Statement): void {
  writeParse(out, statement.name, statement.text);
  writeDescribe(out, "S", statement.name);
  statement.parseSent = true;
}
