// Packs mutations into atomic operations that stay within Deno KV's per-operation limits.
import { keyBytes } from "./_codec.ts";
import type { KvKey } from "./kv_like.ts";

/** Deno KV rejects an atomic operation with more mutations than this. */
export const MAX_MUTATIONS = 1000;
/** Deno KV rejects an atomic operation whose keys and values add up to more than this. */
export const MAX_MUTATION_BYTES = 800 * 1024;
/** Deno KV rejects an atomic operation whose keys add up to more than this. */
export const MAX_TOTAL_KEY_BYTES = 80 * 1024;

/** One set (value present) or delete (value undefined). */
export interface Mutation {
  key: KvKey;
  value: Uint8Array | undefined;
}

/** Room left in one atomic operation. */
export class AtomicBatch {
  readonly mutations: Mutation[] = [];
  #mutationsLeft: number;
  #bytesLeft: number;
  #keyBytesLeft: number;

  /**
   * @param reserve room kept free for mutations added by the caller at commit time (the
   * metadata key), so that `fits` never lets them overflow the limits
   */
  constructor(reserve: { mutations: number; bytes: number; keyBytes: number }) {
    this.#mutationsLeft = MAX_MUTATIONS - reserve.mutations;
    this.#bytesLeft = MAX_MUTATION_BYTES - reserve.bytes;
    this.#keyBytesLeft = MAX_TOTAL_KEY_BYTES - reserve.keyBytes;
  }

  /** Whether a mutation of `key` with a value of `valueBytes` still fits. */
  fits(key: KvKey, valueBytes: number): boolean {
    const k = keyBytes(key);
    return this.#mutationsLeft >= 1 && this.#bytesLeft >= k + valueBytes &&
      this.#keyBytesLeft >= k;
  }

  /** Adds a set (or, without value, a delete); the caller has checked `fits`. */
  add(key: KvKey, value?: Uint8Array): void {
    const k = keyBytes(key);
    this.#mutationsLeft -= 1;
    this.#bytesLeft -= k + (value?.length ?? 0);
    this.#keyBytesLeft -= k;
    this.mutations.push({ key, value });
  }
}
