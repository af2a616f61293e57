/**
 * A tsraft `Storage` on Deno KV: `Deno.openKv` in Deno, the npm package `@deno/kv` (the same
 * SQLite backend, so the files are interchangeable) in Node and Bun, or any KV handle you
 * pass in, with a key prefix so several servers can share one database.
 *
 * On Deno, `Deno.openKv` exists only with `--unstable-kv` (or `"unstable": ["kv"]` in
 * deno.json). Without it a `KvStorage` given a `path` opens the file with `@deno/kv` and
 * warns once; the `backend` option (`"deno"` or `"npm"`) makes the choice explicit.
 *
 * Durability and crash safety:
 * - Term, vote and the entries of one `save` are one atomic commit, durable when it resolves
 *   (SQLite in WAL mode syncs each commit).
 * - A `save` beyond Deno KV's per-commit limits (1000 mutations, 800 KiB) is split into
 *   several commits: the term first, then entries in index order, each commit moving the
 *   durable `lastIndex`, so a crash between them leaves a valid prefix of the log.
 * - Entries and snapshots larger than a KV value (64 KiB) are split into chunk keys. A new
 *   snapshot is written under a fresh id and switched to in one commit; the old one is then
 *   deleted. Snapshot bytes carry a CRC-32C checked when they are read back.
 * - Keys outside the durable log bounds (left by a crash mid-truncation or mid-compaction)
 *   are never read and are deleted by `open`.
 *
 * @example
 * ```ts
 * import { KvStorage } from "@tsraft/storage-kv";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/raft.sqlite`;
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
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @module
 */
export { KvStorage, type KvStorageOptions } from "./kv_storage.ts";
export type { KvBackend } from "./_open_kv.ts";
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
// Re-exported so the documentation of this package's signatures is self-contained.
export type {
  HardState,
  LogEntry,
  PeerInfo,
  SaveBatch,
  SnapshotMeta,
  SnapshotSink,
  Storage,
  StorageState,
  StoredSnapshot,
} from "@tsraft/core";
