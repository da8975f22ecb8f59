/**
 * lib/chat-cluster/cluster-keys.ts — every Redis key one chat cluster uses, under one prefix (`--prefix`,
 * default `chat:`), so several clusters can share one Redis.
 *
 *   PREFIX room              the room's stream: every line anyone sees, in one order (XADD / XREAD)
 *   PREFIX epoch             a random token set by the first node to find it missing: a new one means Redis
 *                            lost its data (restarted empty), so the stream started again from nothing
 *   PREFIX nodes             the set of node ids that have registered
 *   PREFIX alive:ID          the node's liveness: a key with a TTL of --node-timeout that it keeps renewing
 *   PREFIX names:ID          the set of names node ID holds (as typed), for /who and for its cleanup
 *   PREFIX seq:ID            the sequence number of the last line node ID added (each line is added once)
 *   PREFIX name:LOWERNAME    the claim on a name, ignoring case: its value is the id of the node holding it
 *
 * The Lua scripts (cluster-scripts.ts) build the per-node and per-name keys from the prefix themselves, so
 * this layout is for one Redis, not a Redis Cluster (where every key a script touches must be passed in
 * KEYS and live in one hash slot — see the README's "how far one Redis carries this").
 */
export class ClusterKeys {
  readonly room: string;
  readonly epoch: string;
  readonly nodes: string;

  constructor(readonly prefix: string) {
    this.room = `${prefix}room`;
    this.epoch = `${prefix}epoch`;
    this.nodes = `${prefix}nodes`;
  }

  alive(nodeId: string): string {
    return `${this.prefix}alive:${nodeId}`;
  }

  seq(nodeId: string): string {
    return `${this.prefix}seq:${nodeId}`;
  }

  names(nodeId: string): string {
    return `${this.prefix}names:${nodeId}`;
  }

  name(name: string): string {
    return `${this.prefix}name:${name.toLowerCase()}`;
  }
}
