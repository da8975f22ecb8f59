/**
 * lib/deque.ts — a double-ended queue with a maximum length: push at the back, and the oldest item falls
 * off the front when it is full. The book's chat client keeps its messages in a deque whose maximum length
 * is the number of rows; this one is a ring buffer, so pushing never moves the items already there.
 */
export class Deque<T> implements Iterable<T> {
  #items: (T | undefined)[];
  #start = 0;
  #length = 0;

  constructor(readonly maxLength: number) {
    if (!Number.isInteger(maxLength) || maxLength < 1)
      throw new RangeError("maxLength must be a positive integer");
    this.#items = new Array(maxLength);
  }

  get length(): number {
    return this.#length;
  }

  /** Adds at the back; returns the item that fell off the front, if the deque was full. */
  push(item: T): T | undefined {
    if (this.#length < this.maxLength) {
      this.#items[(this.#start + this.#length++) % this.maxLength] = item;
      return undefined;
    }
    const dropped = this.#items[this.#start];
    this.#items[this.#start] = item;
    this.#start = (this.#start + 1) % this.maxLength;
    return dropped;
  }

  /** The item `index` places from the front (0 = oldest). */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.#length) return undefined;
    return this.#items[(this.#start + index) % this.maxLength];
  }

  clear(): void {
    this.#items = new Array(this.maxLength);
    this.#start = 0;
    this.#length = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let index = 0; index < this.#length; index++)
      yield this.#items[(this.#start + index) % this.maxLength]!;
  }
}
