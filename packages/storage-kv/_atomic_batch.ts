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

/**
 * Room left in one atomic operation. Deno KV counts every key twice against the total size
 * (measured: the 800 KiB budget holds sum(2 * key + value) over all mutations), and we count
 * check keys the same way to stay on the safe side.
 */
export class AtomicBatch {
  readonly mutations: Mutation[] = [];
  #mutationsLeft = MAX_MUTATIONS;
  #bytesLeft = MAX_MUTATION_BYTES;
  #keyBytesLeft = MAX_TOTAL_KEY_BYTES;

  /** Keeps room for a check the caller adds at commit time. */
  reserveCheck(key: KvKey): this {
    const k = keyBytes(key);
    this.#bytesLeft -= 2 * k;
    this.#keyBytesLeft -= k;
    return this;
  }

  /** Keeps room for a mutation the caller adds at commit time. */
  reserveMutation(key: KvKey, valueBytes: number): this {
    const k = keyBytes(key);
    this.#mutationsLeft -= 1;
    this.#bytesLeft -= 2 * k + valueBytes;
    this.#keyBytesLeft -= k;
    return this;
  }

  /** Whether a mutation of `key` with a value of `valueBytes` still fits. */
  fits(key: KvKey, valueBytes: number): boolean {
    const k = keyBytes(key);
    return this.#mutationsLeft >= 1 && this.#bytesLeft >= 2 * k + valueBytes &&
      this.#keyBytesLeft >= k;
  }

  /** Adds a set (or, without value, a delete); the caller has checked `fits`. */
  add(key: KvKey, value?: Uint8Array): void {
    this.reserveMutation(key, value?.length ?? 0);
    this.mutations.push({ key, value });
  }
}
