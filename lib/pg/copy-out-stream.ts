/**
 * lib/pg/copy-out-stream.ts — the data of a `COPY … TO STDOUT` on its way from the read loop to whoever
 * iterates `copyTo()`: a queue with a high-water mark in both directions. The consumer waits for a chunk;
 * the read loop waits for room — and while it waits it reads nothing, so the socket pauses and the server
 * blocks in its send (ClientWrite): memory stays bounded however slow the consumer is.
 */

/** Bytes of COPY TO data queued for a slow consumer before we stop reading the socket. */
const COPY_OUT_HIGH_WATER = 4 * 1024 * 1024; // 4 MiB

/** The chunks of a COPY TO in flight, and whoever waits for them. */
export class CopyOutStream {
  readonly #chunks: Uint8Array[] = [];
  #head = 0;
  #queuedBytes = 0;
  #done = false;
  #discarding = false;
  #error: Error | null = null;
  /** The consumer waits for a chunk; the read loop waits for room. */
  #consumer: (() => void) | null = null;
  #room: PromiseWithResolvers<void> | null = null;

  /** `finish()` was called: no more chunks will come. */
  get done(): boolean {
    return this.#done;
  }

  /** The consumer is gone: drop what is queued and whatever still comes. */
  discard(): void {
    this.#discarding = true;
    this.#chunks.length = 0;
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#room?.resolve();
    this.#room = null;
  }

  push(chunk: Uint8Array): void {
    if (this.#discarding) return;
    this.#chunks.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#wakeConsumer();
  }

  finish(error: Error | null): void {
    this.#done = true;
    this.#error = error;
    this.#wakeConsumer();
    this.#room?.resolve();
    this.#room = null;
  }

  /** The next chunk, or null at the end. Throws the COPY's error. */
  async next(): Promise<Uint8Array | null> {
    while (this.#head === this.#chunks.length) {
      if (this.#done) {
        if (this.#error) throw this.#error;
        return null;
      }
      await new Promise<void>((resolve) => {
        this.#consumer = resolve;
      });
    }
    const chunk = this.#chunks[this.#head]!;
    this.#chunks[this.#head++] = EMPTY;
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    }
    this.#queuedBytes -= chunk.length;
    if (this.#room && this.#queuedBytes <= COPY_OUT_HIGH_WATER / 2) {
      this.#room.resolve();
      this.#room = null;
    }
    return chunk;
  }

  /** For the read loop: a promise to wait on while the queue is over its high-water mark. */
  full(): Promise<void> | null {
    if (this.#queuedBytes <= COPY_OUT_HIGH_WATER || this.#done) return null;
    this.#room ??= Promise.withResolvers<void>();
    return this.#room.promise;
  }

  #wakeConsumer(): void {
    const consumer = this.#consumer;
    this.#consumer = null;
    consumer?.();
  }
}

const EMPTY = new Uint8Array(0);
