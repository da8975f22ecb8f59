/**
 * lib/pg/transport.ts — the byte stream under a PostgreSQL connection: TCP or a Unix-domain socket, made
 * private with TLS the PostgreSQL way (manual: "Protocol Flow" → "SSL Session Encryption").
 *
 * PostgreSQL does not start TLS on a port of its own: on the ordinary connection the client sends an
 * SSLRequest (8 bytes, before the startup), the server answers one byte — `S` (go ahead) or `N` (no TLS
 * here) — and after `S` the TLS handshake runs on that same socket (Bun's `socket.upgradeTLS`). Then the
 * startup and everything else travel inside TLS, through the same StreamReader / StreamWriter as plain TCP:
 * nothing above this file knows the difference.
 *
 * Bun's socket handlers are wired here as lib/streams.ts wires them (data → reader, drain → writer,
 * end/close/error → EOF or failure), because the pair has to move from the raw socket to the TLS one.
 */
import { X509Certificate } from "node:crypto";
import type { Socket } from "bun";
import { socketHooks } from "../stream-writer.ts";
import { ConnectionLostError, connectFailureReason, StreamReader, StreamWriter } from "../streams.ts";
import { PgConnectionError } from "./errors.ts";
import type { ResolvedOptions } from "./options.ts";
import { MessageBuilder, SSL_ACCEPTED, SSL_REFUSED, writeSSLRequest } from "./protocol.ts";

/** Bytes the reader buffers before it pauses the socket: 2 × this (see StreamReader). */
const READ_LIMIT = 1024 * 1024; // 1 MiB

/** What the connection runs on, for channel binding and for the curious. */
export interface Transport {
  reader: StreamReader;
  writer: StreamWriter;
  /** The server's certificate (DER) when the connection is TLS, else null. */
  peerCertificate: Uint8Array | null;
}

/** The server refused what `sslmode` demands, or its certificate is not good enough. */
export class PgTlsError extends PgConnectionError {
  override name = "PgTlsError";
}

/** The TLS handshake itself failed (as opposed to a certificate refused): `prefer` then goes on in plain. */
class TlsHandshakeFailed extends PgTlsError {}

type Phase = "awaiting-ssl-answer" | "plain" | "upgraded";

/** Per-socket state in `socket.data` (Bun shares one handler object per connect). */
interface Connection {
  reader: StreamReader;
  writer: StreamWriter | null;
  phase: Phase;
  sslAnswer: PromiseWithResolvers<number> | null;
  handshake: PromiseWithResolvers<void> | null;
  sslmode: ResolvedOptions["sslmode"];
  verifyCa: boolean;
}

function lost(socket: Socket<Connection>, error?: Error): void {
  const { reader, writer } = socket.data;
  if (error)
    reader.setException(new ConnectionLostError(`connection lost: ${error.message}`, { cause: error }));
  else reader.feedEof();
  if (writer) socketHooks.onClose(writer, error);
}

/** Handlers of the socket we connect: the SSLRequest's answer, then (unless upgraded) the plain stream. */
const rawHandlers = {
  data(socket: Socket<Connection>, chunk: Uint8Array) {
    const state = socket.data;
    if (state.phase === "upgraded") return; // ciphertext: the TLS socket's handlers get the plaintext
    if (state.phase === "awaiting-ssl-answer") {
      // Exactly one byte. More would be bytes injected before the handshake, to be read as if they had
      // come through TLS (CVE-2021-23222): refuse them.
      if (chunk.length !== 1) {
        state.sslAnswer?.reject(
          new PgTlsError(`the server answered SSLRequest with ${chunk.length} bytes instead of one`),
        );
        return;
      }
      state.phase = "plain";
      state.sslAnswer?.resolve(chunk[0]!);
      return;
    }
    state.reader.feedData(chunk);
  },
  drain(socket: Socket<Connection>) {
    // Once upgraded, Bun reports the TLS socket's room to write here, on the raw socket: pass it on.
    if (socket.data.writer) socketHooks.onDrain(socket.data.writer);
  },
  end(socket: Socket<Connection>) {
    if (socket.data.phase === "upgraded") return;
    socket.data.sslAnswer?.reject(new PgConnectionError("the server closed the connection after SSLRequest"));
    socket.data.reader.feedEof();
  },
  close(socket: Socket<Connection>, error?: Error) {
    if (socket.data.phase === "upgraded") return;
    socket.data.sslAnswer?.reject(
      new PgConnectionError(`the connection closed before the server answered SSLRequest`),
    );
    lost(socket, error);
  },
  error(socket: Socket<Connection>, error: Error) {
    if (socket.data.phase === "upgraded") return;
    socket.data.reader.setException(
      new ConnectionLostError(`connection error: ${error.message}`, { cause: error }),
    );
  },
  connectError() {},
};

/** Handlers of the TLS socket `upgradeTLS` makes. */
const tlsHandlers = {
  data(socket: Socket<Connection>, chunk: Uint8Array) {
    socket.data.reader.feedData(chunk);
  },
  drain(socket: Socket<Connection>) {
    if (socket.data.writer) socketHooks.onDrain(socket.data.writer);
  },
  handshake(socket: Socket<Connection>, success: boolean, authorizationError: Error | null) {
    const state = socket.data;
    // With rejectUnauthorized off, Bun reports a certificate it would not trust as success = false too; a
    // handshake that really failed (not TLS at all, no common cipher) has no peer certificate.
    const completed = success || Boolean(socket.getPeerCertificate());
    const refusal = completed
      ? certificateRefusal(state, authorizationError)
      : `the TLS handshake failed: ${authorizationError?.message ?? "no reason given"}`;
    if (refusal) {
      state.handshake?.reject(completed ? new PgTlsError(refusal) : new TlsHandshakeFailed(refusal));
      socket.terminate();
    } else state.handshake?.resolve();
  },
  end(socket: Socket<Connection>) {
    socket.data.reader.feedEof();
  },
  close(socket: Socket<Connection>, error?: Error) {
    socket.data.handshake?.reject(
      new PgConnectionError(
        `the connection closed during the TLS handshake${error ? `: ${error.message}` : ""}`,
      ),
    );
    lost(socket, error);
  },
  error(socket: Socket<Connection>, error: Error) {
    socket.data.reader.setException(
      new ConnectionLostError(`connection error: ${error.message}`, { cause: error }),
    );
  },
};

/** Host-name mismatch: all `verify-ca` tolerates (the chain is checked first, so this means the CA is good). */
const HOST_MISMATCH = "ERR_TLS_CERT_ALTNAME_INVALID";

/**
 * Why the server's certificate is not good enough for `sslmode`, or null. We ask Bun not to reject
 * anything itself and judge its verdict here: `require` and `prefer` take any certificate (they protect
 * against eavesdropping, not impersonation), `verify-ca` needs a chain to a trusted CA, `verify-full` also
 * the host name.
 */
function certificateRefusal(state: Connection, error: Error | null): string | null {
  if (!error) return null;
  const code = (error as { code?: string }).code;
  if (state.sslmode === "verify-full")
    return `the server's certificate is refused (verify-full): ${error.message}`;
  if (state.verifyCa && code !== HOST_MISMATCH) {
    return `the server's certificate is refused (verify-ca): ${error.message}`;
  }
  return null;
}

/**
 * Connects as `options` say: the socket, then TLS per `sslmode`. Rejects with {@link PgTlsError} when TLS
 * is required and refused or the certificate fails its check, {@link PgConnectionError} otherwise.
 * `signal`, if given, aborts a connect under way (the connect timeout).
 */
export async function openTransport(options: ResolvedOptions, signal?: AbortSignal): Promise<Transport> {
  const reader = new StreamReader(READ_LIMIT);
  const wantsTls = options.sslmode !== "disable" && options.sslmode !== "allow";
  const state: Connection = {
    reader,
    writer: null,
    phase: wantsTls ? "awaiting-ssl-answer" : "plain",
    sslAnswer: wantsTls ? Promise.withResolvers<number>() : null,
    handshake: null,
    sslmode: options.sslmode,
    verifyCa:
      options.sslmode === "verify-ca" || (options.sslmode === "require" && options.sslrootcert !== undefined),
  };
  const where = describeAddress(options);
  let raw: Socket<Connection>;
  try {
    raw = await (options.socketPath
      ? Bun.connect<Connection>({ unix: options.socketPath, data: state, socket: rawHandlers })
      : Bun.connect<Connection>({
          hostname: options.host,
          port: options.port,
          data: state,
          allowHalfOpen: true,
          socket: rawHandlers,
        }));
  } catch (error) {
    throw new PgConnectionError(
      `cannot connect to PostgreSQL at ${where}: ${connectFailure(error, options.socketPath !== null)}`,
      { cause: error },
    );
  }
  // TCP keepalive (libpq's `keepalives`): a server that vanished without a FIN is noticed.
  if (options.keepAlive && !options.socketPath) raw.setKeepAlive(true, options.keepAliveIdleMs);
  const onAbort = () => raw.terminate();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!wantsTls) return plain(raw);
    const out = new MessageBuilder();
    writeSSLRequest(out);
    raw.write(out.take()); // 8 bytes on a fresh socket: the kernel takes them all
    const answer = await state.sslAnswer!.promise;
    state.sslAnswer = null;
    if (answer === SSL_REFUSED) {
      if (options.sslmode === "prefer") return plain(raw);
      throw new PgTlsError(
        `the server at ${where} does not offer TLS, and sslmode=${options.sslmode} requires it`,
      );
    }
    if (answer !== SSL_ACCEPTED) {
      throw new PgConnectionError(
        `the server at ${where} answered SSLRequest with byte 0x${answer.toString(16)}, not S or N: is it PostgreSQL?`,
      );
    }
    return await upgrade(raw, state, options);
  } catch (error) {
    raw.terminate();
    // libpq's `prefer`: a failed handshake is retried without TLS, on a new connection.
    if (error instanceof TlsHandshakeFailed && options.sslmode === "prefer" && !signal?.aborted) {
      return openTransport({ ...options, sslmode: "disable" }, signal);
    }
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function plain(socket: Socket<Connection>): Transport {
  const writer = new StreamWriter(socket);
  socket.data.writer = writer;
  socket.data.reader.setTransport(socket);
  return { reader: socket.data.reader, writer, peerCertificate: null };
}

async function upgrade(
  raw: Socket<Connection>,
  state: Connection,
  options: ResolvedOptions,
): Promise<Transport> {
  state.phase = "upgraded";
  state.handshake = Promise.withResolvers<void>();
  const rootCert = options.sslrootcert;
  const ca = rootCert && rootCert !== "system" ? await Bun.file(rootCert).text() : undefined;
  const [, tls] = raw.upgradeTLS<Connection>({
    data: state,
    tls: {
      // SNI must be a name, never an address (RFC 6066 §3); Bun checks the name against the certificate.
      serverName: options.host,
      ca,
      rejectUnauthorized: false, // we judge Bun's verdict ourselves, per sslmode (certificateRefusal)
    },
    socket: tlsHandlers,
  });
  await state.handshake.promise;
  state.handshake = null;
  const writer = new StreamWriter(tls);
  state.writer = writer;
  // Pausing the TLS socket alone does not stop Bun reading the raw one beneath: pause both.
  state.reader.setTransport({
    pause() {
      raw.pause();
      tls.pause();
    },
    resume() {
      raw.resume();
      tls.resume();
    },
  });
  const certificate = tls.getPeerCertificate() as { raw?: Uint8Array } | undefined;
  return { reader: state.reader, writer, peerCertificate: certificate?.raw ?? null };
}

/**
 * Why a connect failed, in words, from the error's `code`: `connection refused (is a server listening
 * there?) (ECONNREFUSED)`; a Unix socket's ENOENT and ECONNREFUSED in a socket's terms.
 */
function connectFailure(error: unknown, unix: boolean): string {
  const code = (error as { code?: string }).code;
  if (unix && code === "ENOENT")
    return "no such socket (is the server running, with its socket in that directory?) (ENOENT)";
  if (unix && code === "ECONNREFUSED")
    return "connection refused: nothing listens on that socket (ECONNREFUSED)";
  return connectFailureReason(error);
}

/** `host:port`, or the socket's path. */
export function describeAddress(options: Pick<ResolvedOptions, "host" | "port" | "socketPath">): string {
  // An IPv6 address in brackets, as in a URL (RFC 3986 §3.2.2): `[::1]:5432`, not `::1:5432`.
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return options.socketPath ?? `${host}:${options.port}`;
}

/** Signature algorithm OID → the hash tls-server-end-point uses (RFC 5929 §4.1: MD5 and SHA-1 become SHA-256). */
const SIGNATURE_HASHES: Record<string, string> = {
  "1.2.840.113549.1.1.4": "sha256", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.11": "sha256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "sha384", // sha384WithRSAEncryption
  "1.2.840.113549.1.1.13": "sha512", // sha512WithRSAEncryption
  "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.2": "sha256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "sha384", // ecdsa-with-SHA384
  "1.2.840.10045.4.3.4": "sha512", // ecdsa-with-SHA512
};

/**
 * The hash algorithm for SCRAM's `tls-server-end-point` channel binding, or null when the certificate's
 * signature algorithm has none defined (RSASSA-PSS, Ed25519: PostgreSQL cannot bind those either).
 */
export function endPointHashAlgorithm(certificate: Uint8Array): string | null {
  const oid = new X509Certificate(certificate).signatureAlgorithmOid;
  return SIGNATURE_HASHES[oid] ?? null;
}
