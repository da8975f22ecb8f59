import { describe, expect, test } from "bun:test";
import { MessageBuilder } from "../lib/pg/protocol.ts";
import { StatementCache, writeParseAndDescribe } from "../lib/pg/statement-cache.ts";

/** Frontend messages in `bytes` as `type:body` strings, the body's NULs shown as `|`. */
function messages(bytes: Uint8Array): string[] {
  const buffer = Buffer.from(bytes);
  const out: string[] = [];
  for (let offset = 0; offset < buffer.length; ) {
    const length = buffer.readInt32BE(offset + 1);
    const body = buffer.toString("latin1", offset + 5, offset + 1 + length).replaceAll("\0", "|");
    out.push(`${String.fromCharCode(buffer[offset]!)}:${body}`);
    offset += 1 + length;
  }
  return out;
}

describe("StatementCache: prepared statements by SQL text", () => {
  test("the same text gives the same statement; another text a new, unparsed one with a unique name", () => {
    const cache = new StatementCache(10);
    const out = new MessageBuilder();
    const a = cache.statementFor("SELECT 1", out);
    expect(cache.statementFor("SELECT 1", out)).toBe(a);
    const b = cache.statementFor("SELECT 2", out);
    expect(b).not.toBe(a);
    expect(b.name).not.toBe(a.name);
    expect([a.parseSent, a.parsed, a.forgotten, a.paramTypes]).toEqual([false, false, false, null]);
    expect(out.take().length).toBe(0); // looking up writes nothing
    // Another cache (another client) names its statements apart, for servers that share one session.
    expect(new StatementCache(10).statementFor("SELECT 1", out).name).not.toBe(a.name);
  });

  test("a full cache evicts the least recently used, closing it on the server only if its Parse was sent", () => {
    const cache = new StatementCache(2);
    const out = new MessageBuilder();
    const a = cache.statementFor("SELECT 'a'", out);
    const b = cache.statementFor("SELECT 'b'", out);
    writeParseAndDescribe(out, a);
    expect(messages(out.take())).toEqual([`P:${a.name}|SELECT 'a'|||`, `D:S${a.name}|`]);
    cache.statementFor("SELECT 'a'", out); // a is now the most recent: b goes first
    cache.statementFor("SELECT 'c'", out);
    expect(b.forgotten).toBe(true);
    expect(out.take().length).toBe(0); // b was never parsed: nothing to close
    cache.statementFor("SELECT 'd'", out);
    expect(a.forgotten).toBe(true);
    expect(messages(out.take())).toEqual([`C:S${a.name}|`]);
    expect(cache.statementFor("SELECT 'a'", out)).not.toBe(a);
  });

  test("with capacity 0 nothing is kept: each lookup is a new statement", () => {
    const cache = new StatementCache(0);
    const out = new MessageBuilder();
    expect(cache.statementFor("SELECT 1", out)).not.toBe(cache.statementFor("SELECT 1", out));
  });

  test("a forgotten statement the server holds is closed with a Sync of its own at the next write", () => {
    const cache = new StatementCache(10);
    const out = new MessageBuilder();
    const parsed = cache.statementFor("SELECT 1", out);
    parsed.parsed = true;
    const unparsed = cache.statementFor("SELECT 2", out);
    expect(cache.writeCloseAbandoned(out)).toBe(false);
    cache.forget(parsed);
    cache.forget(parsed); // twice is once
    cache.forget(unparsed);
    expect(cache.statementFor("SELECT 1", out)).not.toBe(parsed);
    expect(cache.writeCloseAbandoned(out)).toBe(true);
    expect(messages(out.take())).toEqual([`C:S${parsed.name}|`, "S:"]);
    expect(cache.writeCloseAbandoned(out)).toBe(false);
  });

  test("after DISCARD ALL only the statements parsed before it are dropped", () => {
    const cache = new StatementCache(10);
    const out = new MessageBuilder();
    const before = cache.statementFor("SELECT 1", out);
    before.parsed = true;
    const pending = cache.statementFor("SELECT 2", out);
    cache.forgetPrepared();
    expect(cache.statementFor("SELECT 1", out)).not.toBe(before);
    expect(cache.statementFor("SELECT 2", out)).toBe(pending);
    expect(cache.writeCloseAbandoned(out)).toBe(false); // the server no longer has them: nothing to close
  });
});
