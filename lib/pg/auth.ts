/**
 * lib/pg/auth.ts — the password exchanges PostgreSQL asks for (manual: "Authentication Methods" and
 * "SASL Authentication").
 *
 * - cleartext: the password itself (only sane over TLS or a trusted network).
 * - md5: `"md5" + md5(md5(password + user) + salt)` — the server stores md5(password + user).
 * - SCRAM-SHA-256 (RFC 5802, RFC 7677): neither side sends the password or anything that replays. The
 *   client proves it knows the password; the server proves it knows it too, with its signature in the
 *   final message — which we check, so a server that only pretends to be PostgreSQL is refused.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

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

/** A SCRAM-SHA-256 exchange from the client's side: first message, final message, then verification. */
export class ScramClient {
  /** `SCRAM-SHA-256`, or `SCRAM-SHA-256-PLUS` with channel binding. */
  readonly mechanism: string;
  readonly #password: string;
  readonly #clientNonce: string;
  readonly #gs2Header: string;
  readonly #bindingData: Uint8Array;
  #clientFirstBare = "";
  #expectedServerSignature: Buffer | null = null;

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

  /** client-first-message: the gs2 header, then the user name — empty, the startup message has it. */
  clientFirstMessage(): string {
    this.#clientFirstBare = `n=,r=${this.#clientNonce}`;
    return `${this.#gs2Header}${this.#clientFirstBare}`;
  }

  /** Given server-first-message (`r=…,s=…,i=…`), returns client-final-message with our proof. */
  clientFinalMessage(serverFirst: string): string {
    const attributes = parseAttributes(serverFirst);
    const nonce = attributes.get("r");
    const salt = attributes.get("s");
    const iterations = Number(attributes.get("i"));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error("SCRAM: malformed server-first-message");
    }
    if (!nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length) {
      throw new Error("SCRAM: the server's nonce does not extend ours");
    }
    const saltedPassword = pbkdf2Sync(this.#password, Buffer.from(salt, "base64"), iterations, 32, "sha256");
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

  /** Checks server-final-message (`v=…`). Throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    const attributes = parseAttributes(serverFinal);
    const error = attributes.get("e");
    if (error) throw new Error(`SCRAM: the server reported ${error}`);
    const signature = Buffer.from(attributes.get("v") ?? "", "base64");
    const expected = this.#expectedServerSignature;
    if (!expected || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new Error("SCRAM: the server's signature is wrong — it does not know the password; refusing it");
    }
  }
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
