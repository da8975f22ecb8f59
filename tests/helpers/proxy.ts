/**
 * A TCP proxy between a client and a real server, for tests that need the network to misbehave:
 * added latency each way, every server byte in its own TCP segment, or the link cut for a while (every
 * connection reset, new ones refused until it is restored).
 */
import type { Socket } from "bun";

export interface ProxyOptions {
  /** Delay added to every chunk, each way, in milliseconds. */
  latencyMs?: number;
  /** Send what the server says one byte per write, with a pause between (one TCP segment each). */
  byteByByte?: boolean;
}

interface Pair {
  upstream: Socket<Pair> | null;
  client: Socket<Pair>;
  /** Client bytes that arrived before the upstream connection was open. */
  early: Uint8Array[];
  /** Serialises the writes towards the client, in order. */
  towardsClient: Promise<void>;
}

export async function startProxy(targetPort: number, options: ProxyOptions = {}) {
  const latency = options.latencyMs ?? 0;
  const pairs = new Set<Pair>();
  /** While cut, a new connection is closed as soon as it opens, as a broken link would. */
  let cut = false;
  const later = (ms: number) => (ms > 0 ? Bun.sleep(ms) : Promise.resolve());
  const listener = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      async open(client) {
        if (cut) return void client.terminate();
        const pair: Pair = { upstream: null, client, early: [], towardsClient: Promise.resolve() };
        client.data = pair;
        pairs.add(pair);
        pair.upstream = await Bun.connect<Pair>({
          hostname: "127.0.0.1",
          port: targetPort,
          data: pair,
          socket: {
            data(_upstream, chunk) {
              const bytes = new Uint8Array(chunk);
              const due = performance.now() + latency; // each chunk is late by `latency`, not by the sum
              pair.towardsClient = pair.towardsClient.then(async () => {
                await later(due - performance.now());
                if (!options.byteByByte) return void writeAll(client, bytes);
                for (let i = 0; i < bytes.length; i++) {
                  writeAll(client, bytes.subarray(i, i + 1));
                  await Bun.sleep(0);
                }
              });
            },
            close() {
              void pair.towardsClient.then(() => client.end());
            },
          },
        });
        for (const bytes of pair.early.splice(0)) writeAll(pair.upstream, bytes);
      },
      data(client, chunk) {
        if (!client.data) return;
        const bytes = new Uint8Array(chunk);
        const pair = client.data;
        later(latency).then(() => {
          if (pair.upstream) writeAll(pair.upstream, bytes);
          else pair.early.push(bytes);
        });
      },
      close(client) {
        if (!client.data) return;
        client.data.upstream?.end();
        pairs.delete(client.data);
      },
    },
  });
  return {
    port: listener.port,
    /** Cuts every connection at once, as a server that vanished would. */
    cutAll() {
      for (const pair of pairs) {
        pair.client.terminate();
        pair.upstream?.terminate();
      }
    },
    /** Cuts every connection and refuses new ones until {@link restore}. */
    cut() {
      cut = true;
      this.cutAll();
    },
    restore() {
      cut = false;
    },
    stop() {
      listener.stop(true);
    },
  };
}

/** Test-peer writes: small enough here that a retry loop on a short write is all the queue we need. */
function writeAll(socket: Socket<Pair>, bytes: Uint8Array): void {
  let rest = bytes;
  for (let tries = 0; rest.length > 0 && tries < 1000; tries++) {
    const written = socket.write(rest);
    if (written < 0) return;
    rest = rest.subarray(written);
  }
}
