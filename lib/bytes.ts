/**
 * lib/bytes.ts — joining byte chunks: what a socket hands over in pieces, as one buffer.
 */

/**
 * The chunks as one buffer. A single chunk is returned as it is (not copied); `totalBytes`, when the
 * caller has already counted them, saves a pass over the list. No chunk is modified.
 */
export function concat(chunks: readonly Uint8Array[], totalBytes?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let total = totalBytes;
  if (total === undefined) {
    total = 0;
    for (const chunk of chunks) total += chunk.length;
  }
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}
