// Reading HTTP bodies under a size bound, shared by the routes and the fetch client.

/** Result of {@link readBodyLimited}: the bytes, or `undefined` when the bound was exceeded. */
export type LimitedBody = Uint8Array | undefined;

/**
 * Reads a whole body, giving up (and cancelling the stream) as soon as it exceeds
 * `maxBytes`, so a peer cannot make us buffer more than the bound. A declared
 * `content-length` above the bound is refused before any byte is read.
 */
export async function readBodyLimited(
  source: { readonly body: ReadableStream<Uint8Array> | null; readonly headers: Headers },
  maxBytes: number,
): Promise<LimitedBody> {
  const declared = source.headers.get("content-length");
  if (declared !== null) {
    const length = Number(declared);
    if (Number.isFinite(length) && length > maxBytes) {
      await source.body?.cancel().catch(() => {});
      return undefined;
    }
  }
  if (source.body === null) return new Uint8Array(0);
  const reader = source.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return concatChunks(chunks, total);
}

/** Joins chunks into one array; a single chunk is returned as is (no copy). */
export function concatChunks(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
