/**
 * Minimal structural types for the parts of a Deno KV handle that `KvStorage` uses.
 *
 * Declared here instead of referring to `Deno.Kv` so that the package type-checks on Node
 * and Bun, where the `Deno` namespace does not exist. Both `Deno.Kv` and the `Kv` of the npm
 * package `@deno/kv` satisfy {@link KvLike}.
 * @module
 */

/**
 * One part of a KV key.
 * @example
 * ```ts
 * import type { KvKeyPart } from "@tsraft/storage-kv";
 * const prefix: KvKeyPart[] = ["raft", "node-1"];
 * ```
 */
export type KvKeyPart = Uint8Array | string | number | bigint | boolean;

/**
 * A KV key: a sequence of parts, ordered part by part.
 * @example
 * ```ts
 * import type { KvKey } from "@tsraft/storage-kv";
 * const key: KvKey = ["raft", "log", 7];
 * ```
 */
export type KvKey = readonly KvKeyPart[];

/**
 * A key read from the store, with its value (`null` and `versionstamp: null` when absent).
 * @example
 * ```ts
 * import type { KvEntryLike } from "@tsraft/storage-kv";
 * const missing: KvEntryLike = { key: ["a"], value: null, versionstamp: null };
 * ```
 */
export interface KvEntryLike {
  /** The key (typed loosely: `Deno.KvKeyPart` also allows symbols, which we never write). */
  readonly key: readonly unknown[];
  /** The value, `null` when the key is absent. */
  readonly value: unknown;
  /** Version of the last write to the key, `null` when the key is absent. */
  readonly versionstamp: string | null;
}

/**
 * Which keys {@link KvLike.list} returns: all under a prefix, optionally starting or ending
 * at a key, or a `[start, end)` range.
 * @example
 * ```ts
 * import type { KvListSelectorLike } from "@tsraft/storage-kv";
 * const range: KvListSelectorLike = { start: ["log", 1], end: ["log", 10] };
 * ```
 */
export type KvListSelectorLike =
  | { prefix: KvKey }
  | { prefix: KvKey; start: KvKey }
  | { prefix: KvKey; end: KvKey }
  | { start: KvKey; end: KvKey };

/**
 * Options of {@link KvLike.list}.
 * @example
 * ```ts
 * import type { KvListOptionsLike } from "@tsraft/storage-kv";
 * const options: KvListOptionsLike = { batchSize: 500 };
 * ```
 */
export interface KvListOptionsLike {
  /** Most entries to return. */
  limit?: number;
  /** Entries fetched per round trip. */
  batchSize?: number;
  /** Iterate from the end of the range. */
  reverse?: boolean;
}

/**
 * Result of {@link KvAtomicLike.commit}: `ok` is false when a check failed.
 * @example
 * ```ts
 * import type { KvCommitResultLike } from "@tsraft/storage-kv";
 * const failed: KvCommitResultLike = { ok: false };
 * ```
 */
export interface KvCommitResultLike {
  /** Whether the operation was applied. */
  ok: boolean;
  /** Version of every key written by the operation, when `ok`. */
  versionstamp?: string;
}

/**
 * An atomic operation: checks, then mutations, applied all together or not at all.
 * @example
 * ```ts
 * import type { KvLike } from "@tsraft/storage-kv";
 * async function put(kv: KvLike): Promise<boolean> {
 *   const result = await kv.atomic().check({ key: ["a"], versionstamp: null })
 *     .set(["a"], new Uint8Array([1])).commit();
 *   return result.ok;
 * }
 * ```
 */
export interface KvAtomicLike {
  /** Fails the operation unless each key has the given versionstamp (`null`: absent). */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): KvAtomicLike;
  /** Sets a key. */
  set(key: KvKey, value: Uint8Array): KvAtomicLike;
  /** Deletes a key. */
  delete(key: KvKey): KvAtomicLike;
  /** Applies the operation. */
  commit(): Promise<KvCommitResultLike>;
}

/**
 * The subset of `Deno.Kv` (and of `@deno/kv`'s `Kv`) that `KvStorage` uses.
 * @example
 * ```ts
 * import type { KvLike } from "@tsraft/storage-kv";
 * const kv: KvLike = await Deno.openKv(":memory:");
 * kv.close();
 * ```
 */
export interface KvLike {
  /** Reads one key. */
  get(key: KvKey): Promise<KvEntryLike>;
  /** Reads up to 10 keys in one consistent snapshot. */
  getMany(keys: KvKey[]): Promise<KvEntryLike[]>;
  /** Iterates keys in order. */
  list(selector: KvListSelectorLike, options?: KvListOptionsLike): AsyncIterable<KvEntryLike>;
  /** Starts an atomic operation. */
  atomic(): KvAtomicLike;
  /** Closes the handle. */
  close(): void;
}
