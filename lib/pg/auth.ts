/**
 * lib/pg/auth.ts — the password exchanges PostgreSQL asks for (manual: "Authentication Methods" and
 * "SASL Authentication").
 *
 * - cleartext: the password itself (only sane over TLS or a trusted network).
 * - md5: `"md5" + md5(md5(password + user) + salt)` — the server stores md5(password + user).
 * - SCRAM-SHA-256 (RFC 5802, RFC 7677): neither side sends the password or anything that replays. The
 *   client proves it knows the password; the server proves it knows it too, with its signature in the
 *   final message — which we check, so a server that only pretends to be PostgreSQL is refused.
 *
 * The server chooses SCRAM's PBKDF2 iteration count. libpq accepts any count, so a hostile server that
 * asks for 10^8 makes it hash for about 11 s (measured here with a synchronous pbkdf2 — a frozen event
 * loop). We do better: the count is capped ({@link MAX_SCRAM_ITERATIONS}) and the hashing runs on a
 * worker thread (node:crypto's asynchronous `pbkdf2`), so the event loop never waits for it.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Most PBKDF2 iterations we compute for a server: 100,000. PostgreSQL's default (`scram_iterations`) is
 * 4,096, about 0.5 ms of hashing here; 100,000 is 25 times that (about 11 ms) and leaves room for servers
 * that raised it. A larger request is refused before any hashing.
 */
export const MAX_SCRAM_ITERATIONS = 100_000;
const SALTED_PASSWORD_BYTES = 32; // SHA-256's output

/**
 * The server broke the SCRAM exchange: a malformed or repeated message, a nonce that is not ours, an error
 * it reported, or a signature that proves it does not know the password. The message starts `SCRAM: `.
 * During `connect` it is the `cause` of the PgConnectionError the connect rejects with.
 */
export class ScramError extends Error {
  override name = "ScramError";
}

/** The server asked for more PBKDF2 iterations than we compute. */
export class ScramIterationsError extends ScramError {
  override name = "ScramIterationsError";
  constructor(
    readonly iterations: number,
    readonly limit: number,
  ) {
    super(
      `SCRAM: the server asks for ${iterations.toLocaleString("en-US")} PBKDF2 iterations; this client computes at most ${limit.toLocaleString("en-US")}`,
    );
  }
}

/** The md5 method's response to a 4-byte salt. */
export function md5PasswordResponse(user: string, password: string, salt: Uint8Array): string {
  const inner = createHash("md5").update(password).update(user).digest("hex");
  return `md5${createHash("md5").update(inner).update(salt).digest("hex")}`;
}

/**
 * SCRAM channel binding (RFC 5802 §6, RFC 5929): ties the login to the TLS session, so a man in the middle
 * holding its own certificate cannot relay it.
 * - `none`: no TLS, or binding turned off — gs2 header `n,,`.
 * - `unused`: we could bind but the server did not offer SCRAM-SHA-256-PLUS — `y,,` (so a server that does
 *   offer it knows the offer was stripped on the way).
 * - `tls-server-end-point`: the hash of the server's certificate — `p=tls-server-end-point,,`.
 */
export type ScramChannelBinding =
  | { kind: "none" }
  | { kind: "unused" }
  | { kind: "tls-server-end-point"; data: Uint8Array };

/**
 * A SCRAM-SHA-256 exchange from the client's side: first message, final message, then verification.
 * `verified` becomes true only when the server's signature checks out: authentication that ends before
 * that (an AuthenticationOk with no valid server-final-message) must be refused by the caller.
 */
export class ScramClient {
  /** `SCRAM-SHA-256`, or `SCRAM-SHA-256-PLUS` with channel binding. */
  readonly mechanism: string;
  readonly #password: string;
  readonly #clientNonce: string;
  readonly #gs2Header: string;
  readonly #bindingData: Uint8Array;
  #clientFirstBare = "";
  #expectedServerSignature: Buffer | null = null;
  #serverFirstSeen = false;
  #verified = false;

  constructor(
    password: string,
    clientNonce = randomBytes(18).toString("base64"),
    binding: ScramChannelBinding = { kind: "none" },
  ) {
    // PostgreSQL applies SASLprep where it can; NFKC is its core, and plain ASCII is unchanged by both.
    this.#password = password.normalize("NFKC");
    this.#clientNonce = clientNonce;
    const bound = binding.kind === "tls-server-end-point";
    this.mechanism = bound ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    this.#gs2Header = bound ? "p=tls-server-end-point,," : binding.kind === "unused" ? "y,," : "n,,";
    this.#bindingData = bound ? binding.data : new Uint8Array(0);
  }

  /** True once the server's final message proved it knows the password. */
  get verified(): boolean {
    return this.#verified;
  }

  /** client-first-message: the gs2 header, then the user name — empty, the startup message has it. */
  clientFirstMessage(): string {
    this.#clientFirstBare = `n=,r=${this.#clientNonce}`;
    return `${this.#gs2Header}${this.#clientFirstBare}`;
  }

  /**
   * Given server-first-message (`r=…,s=…,i=…`), resolves with client-final-message and our proof. The key
   * derivation runs off the event loop. Rejects with {@link ScramIterationsError} past the iteration cap,
   * {@link ScramError} for a server-first-message that is malformed, repeated, or not an extension of ours.
   */
  async clientFinalMessage(serverFirst: string): Promise<string> {
    if (this.#serverFirstSeen) throw new ScramError("SCRAM: a second server-first-message");
    this.#serverFirstSeen = true;
    const attributes = parseAttributes(serverFirst);
    const nonce = attributes.get("r");
    const salt = attributes.get("s");
    const iterations = Number(attributes.get("i"));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new ScramError("SCRAM: malformed server-first-message");
    }
    if (!nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length) {
      throw new ScramError("SCRAM: the server's nonce does not extend ours");
    }
    if (iterations > MAX_SCRAM_ITERATIONS) throw new ScramIterationsError(iterations, MAX_SCRAM_ITERATIONS);
    const saltedPassword = await saltPassword(this.#password, Buffer.from(salt, "base64"), iterations);
    const clientKey = hmac(saltedPassword, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    // c= is the gs2 header and the binding data, in base64 (`biws` for a plain `n,,`).
    const channelBinding = Buffer.concat([Buffer.from(this.#gs2Header), this.#bindingData]).toString(
      "base64",
    );
    const clientFinalWithoutProof = `c=${channelBinding},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.#expectedServerSignature = hmac(hmac(saltedPassword, "Server Key"), authMessage);
    return `${clientFinalWithoutProof},p=${proof.toString("base64")}`;
  }

  /**
   * Checks server-final-message (`v=…`). Throws {@link ScramError} unless the server proved it knows the
   * password.
   */
  verifyServerFinal(serverFinal: string): void {
    const attributes = parseAttributes(serverFinal);
    const error = attributes.get("e");
    if (error) throw new ScramError(`SCRAM: the server reported ${error}`);
    const signature = Buffer.from(attributes.get("v") ?? "", "base64");
    const expected = this.#expectedServerSignature;
    if (!expected || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError(
        "SCRAM: the server's signature is wrong — it does not know the password; refusing it",
      );
    }
    this.#verified = true;
  }
}

/** SaltedPassword := Hi(password, salt, i) — PBKDF2 with HMAC-SHA-256 (RFC 5802), on a worker thread. */
function saltPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(password, salt, iterations, SALTED_PASSWORD_BYTES, "sha256", (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

function hmac(key: Uint8Array, message: string): Buffer {
  return createHmac("sha256", key).update(message).digest();
}

/** `a=1,b=2` → Map; values may contain `=` (base64). */
function parseAttributes(message: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const part of message.split(",")) {
    const equals = part.indexOf("=");
    if (equals > 0) attributes.set(part.slice(0, equals), part.slice(equals + 1));
  }
  return attributes;
}
