/**
 * lib/listen.ts — `listen()`: `Bun.listen` with a reason when it fails, and a reserve of file descriptors.
 *
 * Two things every server lesson needs around `Bun.listen`:
 *
 * 1. **A failure that says why.** Bun reports a busy port as "Failed to listen at 127.0.0.1". `listen()`
 *    throws a {@link ListenError} with one line a user can act on:
 *    `cannot listen on 127.0.0.1:8000: address already in use — is another server running? (--port 0 picks
 *    a free port)`.
 *
 * 2. **Descriptor exhaustion without a spinning CPU.** Every connection is a file descriptor, and a process
 *    may hold at most `ulimit -n` of them (Linux's default soft limit is often 1,024). When none is left,
 *    the kernel still reports the listening socket as ready, `accept()` fails with EMFILE, and the event
 *    loop calls it again at once: 100 % CPU, and the users already connected starve. So `listen()` stops
 *    accepting while fewer than {@link DESCRIPTOR_RESERVE} descriptors are free, and listens again on the
 *    same port once twice that many are free. Meanwhile new connections are refused by the kernel (the
 *    client sees "connection refused" and can retry); existing users, timers and files keep working.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { SocketHandler, TCPSocketListener } from "bun";

/**
 * Descriptors kept free for everything but new connections (files, DNS, a database connection, the
 * idle sweep's log lines): 32. Accepting stops below this many, and resumes at twice as many.
 */
export const DESCRIPTOR_RESERVE = 32;
/** While not accepting, how often to look whether descriptors were freed elsewhere: 1 s. */
const RELISTEN_CHECK_MS = 1000;

/** Why listening failed, by the system's error code: what a user can do about it. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: "address already in use — is another server running? (--port 0 picks a free port)",
  EACCES: "permission denied — ports below 1024 need privileges (pick one above 1023, or --port 0)",
  EADDRNOTAVAIL: "address not available — not an address of this machine (try 127.0.0.1 or 0.0.0.0)",
  ENOTFOUND: "unknown host name (try 127.0.0.1 or 0.0.0.0)",
  EAI_AGAIN: "could not resolve the host name (try 127.0.0.1 or 0.0.0.0)",
};

/** `Bun.listen` failed. `code` is the system's (e.g. `EADDRINUSE`); the message is one line for a user. */
export class ListenError extends Error {
  override name = "ListenError";
  constructor(
    readonly host: string,
    readonly port: number,
    readonly code: string | undefined,
    options?: ErrorOptions,
  ) {
    // Bun gives no code for some bad addresses (256.1.1.1, a name that does not resolve).
    const reason =
      (code && LISTEN_FAILURES[code]) ??
      "not an address this machine can listen on (try 127.0.0.1 or 0.0.0.0)";
    super(`cannot listen on ${host}:${port}: ${reason}`, options);
  }
}

export interface ListenOptions<T> {
  hostname: string;
  port: number;
  socket: SocketHandler<T>;
  allowHalfOpen?: boolean;
  /** Linux: several processes may listen on the same port; the kernel spreads connections. */
  reusePort?: boolean;
}

/** A listening socket that stops accepting when descriptors run low (see the module doc). */
export interface Listener {
  readonly hostname: string;
  /** The port really listened on (the free one picked when 0 was asked). */
  readonly port: number;
  /** Stops accepting for good. Open connections stay, unless `closeConnections` is true. */
  stop(closeConnections?: boolean): void;
}

/** `Bun.listen`, throwing a {@link ListenError}, with the descriptor reserve. */
export function listen<T>(options: ListenOptions<T>): Listener {
  const limit = openFilesLimit();
  let current: TCPSocketListener<T> | null = null;
  /** Every listener this one has been (one more after each suspension): their connections stay theirs. */
  const all: TCPSocketListener<T>[] = [];
  let stopped = false;
  let retry: ReturnType<typeof setInterval> | undefined;
  /** Connections we know of; the real descriptor count is read only when this gets near the limit. */
  let connections = 0;
  const baseline = openDescriptors() ?? 0;
  const { open, close } = options.socket;

  const suspend = () => {
    if (!current) return;
    current.stop(false);
    current = null;
    retry = setInterval(resumeIfRoom, RELISTEN_CHECK_MS);
  };
  const resumeIfRoom = () => {
    if (stopped || current || limit === null) return;
    if (limit - (openDescriptors() ?? baseline + connections) < 2 * DESCRIPTOR_RESERVE) return;
    try {
      current = Bun.listen<T>({ ...options, hostname: listener.hostname, port: listener.port, socket });
      all.push(current);
    } catch {
      return; // the port is busy for a moment, or still no room: the next check tries again
    }
    clearInterval(retry);
  };
  /** Whether fewer than the reserve are free: the estimate first, the real count only near the limit. */
  const lowOnDescriptors = () => {
    if (limit === null || limit - baseline - connections > 4 * DESCRIPTOR_RESERVE) return false;
    return limit - (openDescriptors() ?? baseline + connections) < DESCRIPTOR_RESERVE;
  };

  const socket: SocketHandler<T> = {
    ...options.socket,
    open(client) {
      connections++;
      if (lowOnDescriptors()) suspend();
      return open?.(client);
    },
    close(client, error) {
      connections--;
      if (!current && !stopped) resumeIfRoom();
      return close?.(client, error);
    },
  };

  try {
    current = Bun.listen<T>({ ...options, socket });
    all.push(current);
  } catch (error) {
    throw new ListenError(options.hostname, options.port, (error as { code?: string }).code, {
      cause: error,
    });
  }
  const listener = {
    hostname: current.hostname,
    port: current.port,
    stop(closeConnections = false) {
      stopped = true;
      clearInterval(retry);
      for (const each of all) each.stop(closeConnections);
      current = null;
    },
  };
  return listener;
}

/** The soft limit on open files (`ulimit -n`) from /proc, or null where there is no /proc (not Linux). */
export function openFilesLimit(): number | null {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
    return soft === undefined || soft === "unlimited" ? null : Number(soft);
  } catch {
    return null;
  }
}

/** How many descriptors this process has open, from /proc; null where there is no /proc. */
export function openDescriptors(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}
