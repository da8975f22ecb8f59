/**
 * A proxy that speaks RESP (Redis's protocol) between a client and a real Redis, for tests that need
 * Redis to misbehave one command at a time: answer a command itself (an error reply such as `-LOADING`,
 * `-BUSY`, or a reply of the wrong shape), swallow a command so that its reply never comes (a blackhole
 * for that command; later replies on that connection wait behind it, as they would), or cut the connection
 * right after Redis ran a command and before its reply reaches the client (a lost reply). `blackhole()`
 * stops all traffic without closing anything; `cutAll()` resets every connection.
 *
 * Commands and replies are parsed (lib/chat-cluster/resp-parser.ts) and re-encoded; a reply's strings go
 * back as bulk strings, which RESP2 clients read the same as simple strings.
 */
import type { Socket } from "bun";
import { encodeCommand } from "../../lib/chat-cluster/resp-connection.ts";
import {
  OversizedBulk,
  RedisReplyError,
  RespParser,
  type RespValue,
} from "../../lib/chat-cluster/resp-parser.ts";

/** What to do with one command: forward it (undefined), answer it with raw RESP, or never answer it. */
export type CommandVerdict = undefined | { reply: string } | "drop" | "cut-after-reply";

/** Decides per command; `args[0]` is upper-cased. `connection` numbers the client connections from 1. */
export type CommandHook = (args: string[], connection: number) => CommandVerdict;

interface Slot {
  /** Filled when the reply is known (from Redis, or made here). */
  reply: string | null;
  cutAfter: boolean;
}

interface Pair {
  client: Socket<Pair>;
  upstream: Socket<Pair> | null;
  early: string[];
  slots: Slot[];
  fromClient: RespParser;
  fromServer: RespParser;
  number: number;
  /** Blackholed: nothing it carries arrives, ever (the client gives up on it and reconnects). */
  dark: boolean;
}

const LIMITS = { maxBulkBytes: 2 ** 31, maxReplyBytes: 2 ** 40 };

export async function startRespProxy(targetPort: number) {
  const pairs = new Set<Pair>();
  let hook: CommandHook = () => undefined;
  let cut = false;
  let blackholed = false;
  let connections = 0;
  const seen = new Map<string, number>();

  const flush = (pair: Pair) => {
    while (pair.slots.length > 0 && pair.slots[0]!.reply !== null) {
      const slot = pair.slots.shift()!;
      if (slot.cutAfter) {
        // Redis ran it; the reply never reaches the client.
        pair.client.terminate();
        pair.upstream?.terminate();
        return;
      }
      pair.client.write(slot.reply!);
    }
  };

  const listener = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client) {
        if (cut) return void client.terminate();
        const pair: Pair = {
          client,
          upstream: null,
          early: [],
          slots: [],
          fromClient: new RespParser(LIMITS),
          fromServer: new RespParser(LIMITS),
          number: ++connections,
          dark: blackholed,
        };
        client.data = pair;
        pairs.add(pair);
        try {
          pair.upstream = await Bun.connect<Pair>({
            hostname: "127.0.0.1",
            port: targetPort,
            data: pair,
            socket: {
              data(_upstream, chunk) {
                if (pair.dark) return;
                pair.fromServer.feed(new Uint8Array(chunk), (value) => {
                  const slot = pair.slots.find(
                    (candidate) => candidate.reply === null && !("dropped" in candidate),
                  );
                  if (slot) slot.reply = encodeReply(value);
                  flush(pair);
                });
              },
              close: () => client.terminate(),
              error() {},
            },
          });
        } catch {
          return void client.terminate();
        }
        for (const command of pair.early.splice(0)) pair.upstream.write(command);
      },
      data(client, chunk) {
        const pair = client.data;
        if (!pair || pair.dark) return;
        pair.fromClient.feed(new Uint8Array(chunk), (value) => {
          const args = (value as RespValue[]).map(String);
          args[0] = args[0]!.toUpperCase();
          seen.set(args[0], (seen.get(args[0]) ?? 0) + 1);
          const verdict = hook(args, pair.number);
          if (verdict === "drop") {
            pair.slots.push(Object.assign({ reply: null, cutAfter: false }, { dropped: true }));
            return;
          }
          if (verdict && typeof verdict === "object") {
            pair.slots.push({ reply: verdict.reply, cutAfter: false });
            return flush(pair);
          }
          pair.slots.push({ reply: null, cutAfter: verdict === "cut-after-reply" });
          const encoded = encodeCommand(args);
          if (pair.upstream) pair.upstream.write(encoded);
          else pair.early.push(encoded);
        });
      },
      close(client) {
        client.data?.upstream?.terminate();
        if (client.data) pairs.delete(client.data);
      },
      error() {},
    },
  });

  return {
    port: listener.port,
    url: `redis://127.0.0.1:${listener.port}`,
    /** How many times each command (upper-cased) was seen, from every client. */
    seen,
    /** Decides what happens to each command from now on (undefined: forward). */
    setHook(next: CommandHook) {
      hook = next;
    },
    /** Resets every connection, as a server that vanished would. */
    cutAll() {
      for (const pair of pairs) {
        pair.client.terminate();
        pair.upstream?.terminate();
      }
    },
    /** Resets every connection and refuses new ones until {@link restore}. */
    cut() {
      cut = true;
      this.cutAll();
    },
    restore() {
      cut = false;
      blackholed = false;
    },
    /**
     * Every byte, both ways, vanishes from now on — on the open connections for good, on new ones until
     * {@link restore}; nothing is closed (a link whose packets are lost).
     */
    blackhole() {
      blackholed = true;
      for (const pair of pairs) pair.dark = true;
    },
    stop() {
      this.cutAll();
      listener.stop(true);
    },
  };
}

/** A parsed reply as RESP again (strings as bulk strings). */
export function encodeReply(value: RespValue): string {
  if (value === null) return "$-1\r\n";
  if (typeof value === "number") return `:${value}\r\n`;
  if (typeof value === "string") return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
  if (value instanceof RedisReplyError) return `-${value.message}\r\n`;
  if (value instanceof OversizedBulk) throw new Error("the proxy keeps every bulk string");
  return `*${value.length}\r\n${value.map(encodeReply).join("")}`;
}
