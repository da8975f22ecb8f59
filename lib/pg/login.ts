/**
 * lib/pg/login.ts — the client's side of the startup's authentication (manual: "Message Flow" → "Start-up",
 * and "SASL Authentication"): each Authentication request ('R') the server sends, answered with what it
 * asks for — nothing, the password, its MD5 hash, or a SCRAM-SHA-256 exchange (lib/pg/auth.ts) — unless the
 * settings forbid it (`require_auth`, `channel_binding=require`), in which case nothing is sent.
 */
import { createHash } from "node:crypto";
import { md5PasswordResponse, type ScramChannelBinding, ScramClient } from "./auth.ts";
import {
  connectionFailure,
  PgAuthenticationRefusedError,
  PgConnectionError,
  type PgError,
} from "./errors.ts";
import type { AuthMethod, ResolvedOptions } from "./options.ts";
import {
  Auth,
  type MessageBuilder,
  ProtocolError,
  parseAuthentication,
  parseSASLMechanisms,
  writePasswordMessage,
  writeSASLInitialResponse,
  writeSASLResponse,
} from "./protocol.ts";
import { endPointHashAlgorithm } from "./transport.ts";

/** What a Login writes through, and how it ends the connection when an answer it computes later fails. */
export interface LoginConnection {
  /** The connection's message buffer: answers are built here, then handed over with `flush()`. */
  readonly out: MessageBuilder;
  flush(): void;
  /** The connection is over (the SCRAM proof, computed off the event loop, is then not sent). */
  readonly closed: boolean;
  fail(error: PgConnectionError | PgError): void;
}

/** One connection's login: the answers to its Authentication requests, from the first to AuthenticationOk. */
export class Login {
  readonly #options: ResolvedOptions;
  /** The server's certificate (DER) when the connection is TLS: what SCRAM-SHA-256-PLUS binds to. */
  readonly #peerCertificate: Uint8Array | null;
  readonly #connection: LoginConnection;
  #scram: ScramClient | null = null;
  /** The server asked for a password or SASL: the startup was not `trust` ("none"). */
  #challenged = false;
  #authenticated = false;

  constructor(options: ResolvedOptions, peerCertificate: Uint8Array | null, connection: LoginConnection) {
    this.#options = options;
    this.#peerCertificate = peerCertificate;
    this.#connection = connection;
  }

  /** The SASL mechanism the login used (`SCRAM-SHA-256-PLUS` when bound to the TLS session), else null. */
  get saslMechanism(): string | null {
    return this.#scram?.mechanism ?? null;
  }

  /**
   * Answers one Authentication message. Returns true at AuthenticationOk (the login is over; from then on
   * the server may send messages up to MAX_MESSAGE_BYTES), false while the exchange goes on. Throws
   * {@link PgAuthenticationRefusedError} for a method `require_auth` does not allow, PgConnectionError for
   * one this client lacks, a missing password or a refused channel binding, {@link ScramError} for a
   * server whose SCRAM proof is wrong, and ProtocolError for a request after AuthenticationOk.
   */
  onAuthentication(body: Buffer): boolean {
    const { code, data } = parseAuthentication(body);
    if (this.#authenticated) {
      // Authentication happens once, before the first ReadyForQuery: a later request is not PostgreSQL's.
      throw new ProtocolError(`an authentication request (code ${code}) after authentication completed`);
    }
    switch (code) {
      case Auth.Ok:
        this.#refuseUnboundLogin("no authentication at all");
        this.#onAuthenticationOk();
        return true;
      case Auth.CleartextPassword:
        this.#allowAuthentication("password");
        this.#refuseUnboundLogin("a cleartext password");
        this.#sendPassword(this.#requirePassword("password"));
        return false;
      case Auth.MD5Password:
        this.#allowAuthentication("md5");
        this.#refuseUnboundLogin("an MD5 password");
        this.#sendPassword(
          md5PasswordResponse(this.#options.user, this.#requirePassword("md5"), data.subarray(0, 4)),
        );
        return false;
      case Auth.SASL: {
        this.#allowAuthentication("scram-sha-256");
        const mechanisms = parseSASLMechanisms(data);
        const binding = this.#channelBinding(mechanisms);
        if (binding.kind !== "tls-server-end-point" && !mechanisms.includes("SCRAM-SHA-256")) {
          throw new PgConnectionError(
            `the server offers only SASL mechanisms this client lacks: ${mechanisms.join(", ")}`,
          );
        }
        this.#scram = new ScramClient(this.#requirePassword("scram-sha-256"), undefined, binding);
        writeSASLInitialResponse(
          this.#connection.out,
          this.#scram.mechanism,
          this.#scram.clientFirstMessage(),
        );
        this.#connection.flush();
        return false;
      }
      case Auth.SASLContinue:
        this.#continueScram(data.toString("utf8"));
        return false;
      case Auth.SASLFinal:
        this.#scramClient().verifyServerFinal(data.toString("utf8"));
        return false;
      default:
        throw new PgConnectionError(
          `the server asks for an authentication method this client lacks (code ${code})`,
        );
    }
  }

  /**
   * Binds SCRAM to the TLS session when we can (a TLS connection, a certificate whose hash is defined) and
   * the server offers SCRAM-SHA-256-PLUS; `channel_binding=require` refuses to log in without it.
   */
  #channelBinding(mechanisms: string[]): ScramChannelBinding {
    const certificate = this.#peerCertificate;
    const mode = this.#options.channelBinding;
    const hash = certificate && mode !== "disable" ? endPointHashAlgorithm(certificate) : null;
    if (hash && mechanisms.includes("SCRAM-SHA-256-PLUS")) {
      return { kind: "tls-server-end-point", data: createHash(hash).update(certificate!).digest() };
    }
    if (mode === "require") {
      throw new PgConnectionError(
        certificate
          ? `channel_binding=require, but the server offers no SCRAM-SHA-256-PLUS (${mechanisms.join(", ")})`
          : "channel_binding=require needs TLS (sslmode=require or stronger)",
      );
    }
    return hash ? { kind: "unused" } : { kind: "none" };
  }

  /** With `channel_binding=require`, a login that is not SCRAM-SHA-256-PLUS is refused (as libpq does). */
  #refuseUnboundLogin(method: string): void {
    if (this.#options.channelBinding !== "require" || this.#scram?.mechanism === "SCRAM-SHA-256-PLUS") return;
    throw new PgConnectionError(`channel_binding=require, but the server asked for ${method}`);
  }

  /** AuthenticationOk: refused if a SCRAM exchange began and the server never proved its signature. */
  #onAuthenticationOk(): void {
    if (this.#scram && !this.#scram.verified) {
      throw new PgConnectionError(
        "the server ended SCRAM-SHA-256 authentication without proving it knows the password (no valid server-final-message); refusing it",
      );
    }
    if (!this.#challenged) this.#allowAuthentication("none");
    this.#authenticated = true;
  }

  /** Throws before anything is sent if `requireAuth` does not allow the method the server chose. */
  #allowAuthentication(method: AuthMethod): void {
    this.#challenged = true;
    const allowed = this.#options.allowedAuth;
    if (allowed && !allowed.has(method)) {
      throw new PgAuthenticationRefusedError(method, this.#options.requireAuth);
    }
  }

  /** client-final-message: its PBKDF2 runs off the event loop; the server waits for it. */
  #continueScram(serverFirst: string): void {
    const connection = this.#connection;
    this.#scramClient()
      .clientFinalMessage(serverFirst)
      .then(
        (message) => {
          if (connection.closed) return;
          writeSASLResponse(connection.out, message);
          connection.flush();
        },
        (error: Error) => connection.fail(connectionFailure(error)),
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
    writePasswordMessage(this.#connection.out, password);
    this.#connection.flush();
  }
}
