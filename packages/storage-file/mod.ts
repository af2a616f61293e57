/**
 * A durable, file-backed `Storage` (from `@tsraft/core`) for tsraft: {@link FileStorage}.
 * Pass `new FileStorage(dir)` as the `storage` of `createServer`; each server needs its own
 * directory.
 *
 * ## On-disk layout
 *
 * ```text
 * <dir>/meta                              term, vote and the log's first index
 * <dir>/log/00000000000000000001.seg      log segment whose first entry is 1
 * <dir>/log/00000000000000004097.seg      ... named by first index, zero-padded to 20 digits
 * <dir>/snapshots/<term>-<index>.snap     the newest snapshot
 * ```
 *
 * All integers are little-endian; 64-bit ones are two 32-bit halves and must be safe
 * integers.
 *
 * - **meta**: `u32 magic "TRM1" | u32 length | u32 CRC-32C of the JSON | JSON
 *   {term, votedFor, firstIndex}`. Replaced atomically: written to `meta.tmp`, fsynced,
 *   renamed over `meta`, directory fsynced. A missing file means a new store.
 * - **segment**: back-to-back records, one per entry, no file header. A record is a 40-byte
 *   header `u32 magic "TRL1" | u32 bodyLength | u32 nameLength | u32 batchStart | u64 index |
 *   u64 term | u32 0 | u32 CRC-32C of the preceding 36 header bytes and the body` followed by
 *   the body (command name in UTF-8, then command bytes). `batchStart` is the file offset of
 *   the first record of the same `save` write. Each `save` appends its records with one write
 *   and one fdatasync; a new segment is started once the current one reaches `segmentBytes`
 *   (and the log directory fsynced). Memory holds, per segment, its index range and a
 *   checkpoint (index, offset) at most every 16 KiB; `entries()` reads from disk.
 * - **snapshot**: a 32-byte header `"TRSNAP01" | u32 metaLength | u32 0 | u64 dataLength |
 *   u32 CRC-32C of the state | u32 CRC-32C of the header's first 28 bytes and the meta JSON`,
 *   the meta JSON `{lastIndex, lastTerm, peers}`, then the state bytes. Written to
 *   `<name>.tmp` while streaming (header filled in last), fsynced, renamed, directory fsynced;
 *   only then are other snapshots deleted. `loadSnapshot` picks the newest by index, then
 *   term, compared as numbers, and verifies the CRC before returning the stream.
 *
 * ## Recovery rules
 *
 * - In the **last** segment an invalid record (short, bad magic or header, bad CRC) is a
 *   torn tail when no valid record from a *later* write follows it — that is, every valid
 *   record after it has `batchStart` at or before the damage (it belongs to the same
 *   unfinished write). The tail is cut off and fsynced (only after the rest of the log has
 *   been checked); the log stays writable. Damage inside the last `save`'s records, or
 *   damage that runs to the end of the last segment, is indistinguishable from a torn write
 *   and is treated as one.
 * - Everything else is {@link StorageCorruptionError}, naming the file and offset: an
 *   invalid record followed by a later write, any invalid byte in an earlier segment, a gap
 *   or jump in indexes, a segment missing below the meta file's first index, a corrupt meta
 *   file or snapshot.
 * - A conflicting suffix is removed by deleting later segments newest first (directory
 *   fsync after each) and cutting the segment holding the first replaced entry (fsync)
 *   before appending, so every crash leaves a valid prefix.
 * - Compaction writes the new first index to `meta` first, then deletes the segments it
 *   covers entirely; segments left by a crash in between are deleted at open.
 *
 * @example Write, close, reopen: the entry and the term are recovered
 * ```ts
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { FileStorage } from "@tsraft/storage-file";
 *
 * const dir = await mkdtemp(join(tmpdir(), "tsraft-"));
 * const storage = new FileStorage(dir, { segmentBytes: 16 * 1024 * 1024 });
 * const state = await storage.open(); // recovers whatever is there
 * const command = new TextEncoder().encode('{"key":"x"}');
 * await storage.save({
 *   hardState: { term: 1, votedFor: "node-1" },
 *   entries: [{ index: state.lastIndex + 1, term: 1, commandName: "set", command }],
 * });
 * await storage.close();
 *
 * const again = new FileStorage(dir);
 * const recovered = await again.open();
 * if (recovered.lastIndex !== 1 || recovered.hardState.term !== 1) throw new Error("lost");
 * await again.close();
 * await rm(dir, { recursive: true });
 * ```
 * @module
 */
export { FileStorage, type FileStorageOptions } from "./file_storage.ts";
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
