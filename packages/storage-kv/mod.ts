/**
 * A tsraft {@link https://jsr.io/@tsraft/core | Storage} on Deno KV: `Deno.openKv` in Deno,
 * the npm package `@deno/kv` (the same SQLite backend) in Node and Bun, or any KV handle you
 * pass in. Term, vote and the entries of one `save` are one atomic commit; batches beyond
 * Deno KV's per-commit limits, entries and snapshots beyond its 64 KiB value limit are split
 * so that a crash always leaves a valid log and a complete snapshot.
 *
 * @example
 * ```ts
 * import { KvStorage } from "@tsraft/storage-kv";
 *
 * const path = await Deno.makeTempFile({ suffix: ".sqlite" });
 * const storage = new KvStorage({ path });
 * const state = await storage.open();
 * await storage.save({
 *   hardState: { term: 1, votedFor: "a" },
 *   entries: [{
 *     index: state.lastIndex + 1,
 *     term: 1,
 *     commandName: "raft:nop",
 *     command: new Uint8Array(),
 *   }],
 * });
 * await storage.close();
 *
 * const reopened = new KvStorage({ path });
 * const recovered = await reopened.open();
 * if (recovered.lastIndex !== 1 || recovered.hardState.term !== 1) throw new Error("lost");
 * await reopened.close();
 * await Deno.remove(path);
 * ```
 * @module
 */
export { KvStorage, type KvStorageOptions } from "./kv_storage.ts";
export type {
  KvAtomicLike,
  KvCommitResultLike,
  KvEntryLike,
  KvKey,
  KvKeyPart,
  KvLike,
  KvListOptionsLike,
  KvListSelectorLike,
} from "./kv_like.ts";
