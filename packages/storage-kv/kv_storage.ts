import {
  crc32c,
  type HardState,
  type LogEntry,
  type SaveBatch,
  type SnapshotMeta,
  type Storage,
  StorageCorruptionError,
  type StorageState,
  type StoredSnapshot,
} from "@tsraft/core";
import { AtomicBatch } from "./_atomic_batch.ts";
import {
  decodeEntryHead,
  decodeHardState,
  decodeLogMeta,
  decodeSnapshotRecord,
  encodeEntry,
  encodeHardState,
  encodeLogMeta,
  encodeSnapshotRecord,
  type EntryHead,
  finishEntry,
  keyBytes,
  LOG_META_BYTES,
  type LogMeta,
  MAX_VALUE_BYTES,
  type SnapshotRecord,
} from "./_codec.ts";
import { type KvBackend, openKvAt } from "./_open_kv.ts";
import type { KvEntryLike, KvKey, KvKeyPart, KvLike, KvListSelectorLike } from "./kv_like.ts";

/**
 * Where a {@link KvStorage} keeps its data: a database file it opens (and closes) itself,
 * or a KV handle the caller owns.
 * @example
 * ```ts
 * import type { KvStorageOptions } from "@tsraft/storage-kv";
 * const byPath: KvStorageOptions = { path: "./raft.sqlite" };
 * const shared: KvStorageOptions = { kv: await Deno.openKv(":memory:"), prefix: ["node-1"] };
 * ```
 */
export type KvStorageOptions =
  | {
    /** Path of the SQLite database file, created if missing. */
    path: string;
    /**
     * Which implementation opens the file: `Deno.openKv` (needs `--unstable-kv` on Deno) or
     * the npm package `@deno/kv`. `"auto"` picks `Deno.openKv` when available and warns
     * once when Deno runs without it.
     * @default {"auto"}
     */
    backend?: KvBackend;
    /**
     * Key prefix under which everything is stored.
     * @default {["tsraft"]}
     */
    prefix?: KvKeyPart[];
  }
  | {
    /** An open KV handle; {@link KvStorage.close} leaves it open. */
    kv: KvLike;
    /**
     * Key prefix under which everything is stored, so several servers can share one
     * database.
     * @default {["tsraft"]}
     */
    prefix?: KvKeyPart[];
  };

/** Snapshot bytes per KV value (Deno KV's value size limit). */
const SNAPSHOT_CHUNK_BYTES = MAX_VALUE_BYTES;
/** Snapshot chunks fetched per round trip while streaming (8 × 64 KiB). */
const SNAPSHOT_READ_BATCH = 8;
/** Entries per list round trip (`@deno/kv` caps it at 500, Deno at 1000). */
const LIST_BATCH = 500;

/**
 * A {@link Storage} on Deno KV: `Deno.openKv` in Deno, the npm package `@deno/kv` in Node
 * and Bun, or any handle passed in. Every write is an atomic KV commit, which the SQLite
 * backend makes durable (WAL, fsync) before it resolves.
 *
 * Layout under the prefix `p`:
 * - `[...p, "hard"]` term and vote
 * - `[...p, "meta"]` `firstIndex`, `lastIndex`: the bounds of the log. Only keys inside them
 *   are the log; anything outside is garbage left by a crash and is deleted by `open`.
 * - `[...p, "log", index]` an entry: header, command name, first command bytes; and
 *   `[...p, "log", index, n]` for n ≥ 1 the rest of a command larger than one KV value
 *   (64 KiB).
 * - `[...p, "snapmeta"]` the current snapshot: its metadata, id, size, CRC-32C
 * - `[...p, "snap", id, n]` its bytes in 64 KiB chunks
 *
 * Values are all `Uint8Array`, so no V8 serializer is involved on any runtime.
 *
 * @example
 * ```ts
 * import { KvStorage } from "@tsraft/storage-kv";
 * const kv = await Deno.openKv(":memory:");
 * const storage = new KvStorage({ kv, prefix: ["node-1"] });
 * const state = await storage.open();
 * await storage.save({
 *   hardState: { term: 1, votedFor: "node-1" },
 *   entries: [{ index: state.lastIndex + 1, term: 1, commandName: "raft:nop", command: new Uint8Array() }],
 * });
 * await storage.close();
 * kv.close();
 * ```
 */
export class KvStorage implements Storage {
  #path: string | undefined;
  #backend: KvBackend = "auto";
  #kv: KvLike | undefined;
  #ownsKv: boolean;
  #hardKey: KvKey;
  #metaKey: KvKey;
  #snapMetaKey: KvKey;
  #logPrefix: KvKey;
  #snapPrefix: KvKey;
  #opened = false;
  #closed = false;
  #meta: LogMeta = { firstIndex: 1, lastIndex: 0 };
  /** Versionstamp of our last write of the meta key, checked by every write we make. */
  #metaVersionstamp: string | null = null;
  #snapshot: SnapshotRecord | undefined;
  /** Open `loadSnapshot` streams per snapshot id: their chunks must outlive a replacement. */
  #readers = new Map<string, number>();
  /** Replaced snapshots whose chunks are deleted once their last reader finishes. */
  #staleSnapshots = new Set<string>();
  #background = new Set<Promise<void>>();

  /**
   * Creates the storage; nothing is read or opened before {@link KvStorage.open}.
   * @param options a database path, or an open KV handle, and an optional key prefix
   * @throws TypeError when neither `path` nor `kv` is given
   */
  constructor(options: KvStorageOptions) {
    const prefix: KvKey = [...(options.prefix ?? ["tsraft"])];
    keyBytes(prefix); // validates the parts
    if ("kv" in options && options.kv) {
      this.#kv = options.kv;
      this.#ownsKv = false;
    } else if ("path" in options && typeof options.path === "string") {
      this.#path = options.path;
      this.#backend = options.backend ?? "auto";
      this.#ownsKv = true;
    } else {
      throw new TypeError("KvStorage needs either a path or a kv handle");
    }
    this.#hardKey = [...prefix, "hard"];
    this.#metaKey = [...prefix, "meta"];
    this.#snapMetaKey = [...prefix, "snapmeta"];
    this.#logPrefix = [...prefix, "log"];
    this.#snapPrefix = [...prefix, "snap"];
  }

  /**
   * Opens the database (when given a path) and recovers term, vote, log bounds and
   * snapshot metadata; deletes garbage a crash may have left outside the log bounds.
   * @returns the recovered state
   * @throws StorageCorruptionError when stored values are malformed
   */
  async open(): Promise<StorageState> {
    if (this.#closed) throw new TypeError("KvStorage is closed");
    if (this.#kv === undefined) this.#kv = await openKvAt(this.#path!, this.#backend);
    const kv = this.#kv;
    const [hard, meta, snap] = await kv.getMany([this.#hardKey, this.#metaKey, this.#snapMetaKey]);
    const hardState = decodeHardState(hard?.value);
    this.#meta = decodeLogMeta(meta?.value);
    this.#metaVersionstamp = meta?.versionstamp ?? null;
    this.#snapshot = decodeSnapshotRecord(snap?.value);
    const { firstIndex, lastIndex } = this.#meta;
    if (lastIndex >= firstIndex) {
      // The bounds are written in the same commit as the entries they cover, so both ends
      // must be present; checking them catches a store edited behind our back cheaply.
      const ends = await kv.getMany([[...this.#logPrefix, firstIndex], [
        ...this.#logPrefix,
        lastIndex,
      ]]);
      for (const [i, index] of [firstIndex, lastIndex].entries()) {
        const value = ends[i]?.value;
        if (value === null || value === undefined) {
          throw new StorageCorruptionError(
            `Log entry ${index} is missing; the log should hold [${firstIndex}, ${lastIndex}]`,
          );
        }
        decodeEntryHead(index, value);
      }
    }
    this.#opened = true;
    await this.#collectGarbage();
    return {
      hardState,
      snapshot: this.#snapshot && snapshotMeta(this.#snapshot),
      firstIndex,
      lastIndex,
    };
  }

  /**
   * Makes term, vote and entries durable. Resolves once every part is committed.
   *
   * One atomic commit when the batch fits Deno KV's limits (1000 mutations, 800 KiB);
   * otherwise several, ordered so that a crash between them still leaves a valid log:
   * 1. The hard state goes in the first commit. Raft needs `currentTerm` to be at least the
   *    term of every entry in the log; persisting the term early is always safe (nothing has
   *    been sent on its strength yet), persisting it late is not.
   * 2. Entries are written in index order, and every commit also sets `meta.lastIndex` to
   *    the last entry it completed (an entry larger than 64 KiB can span commits). After a
   *    crash the log is therefore the old entries before `entries[0].index` followed by a
   *    prefix of the new ones: a prefix of the log this save was producing.
   * 3. When the new log is shorter than the old one, the stale tail is deleted only after the
   *    final commit has moved `lastIndex` below it; keys past `lastIndex` are never read and
   *    `open` deletes any that a crash left behind.
   * @param batch hard state and/or entries with consecutive indexes
   * @throws RangeError when the entries do not continue or overwrite the log
   * @throws StorageCorruptionError when another writer changed the store meanwhile
   */
  async save(batch: SaveBatch): Promise<void> {
    this.#requireOpen();
    const entries = batch.entries ?? [];
    const hardState = batch.hardState;
    if (hardState !== undefined) checkHardState(hardState);
    if (entries.length === 0) {
      if (hardState === undefined) return;
      const only = this.#checkedBatch();
      only.add(this.#hardKey, encodeHardState(hardState));
      await this.#commit(only, undefined);
      return;
    }
    this.#checkEntries(entries);
    const start = entries[0]!.index;
    const oldLastIndex = this.#meta.lastIndex;
    const newBatch = () => this.#checkedBatch().reserveMutation(this.#metaKey, LOG_META_BYTES);
    const groups: { batch: AtomicBatch; lastIndex: number }[] = [];
    let current = newBatch();
    if (hardState !== undefined) current.add(this.#hardKey, encodeHardState(hardState));
    let completed = start - 1;
    for (const entry of entries) {
      const { head, chunks } = encodeEntry(entry);
      const parts: [KvKey, Uint8Array][] = [[[...this.#logPrefix, entry.index], head]];
      chunks.forEach((chunk, n) => parts.push([[...this.#logPrefix, entry.index, n + 1], chunk]));
      for (const [key, value] of parts) {
        if (!current.fits(key, value.length)) {
          groups.push({ batch: current, lastIndex: completed });
          current = newBatch();
        }
        current.add(key, value);
      }
      completed = entry.index;
    }
    groups.push({ batch: current, lastIndex: completed });
    for (const group of groups) {
      await this.#commit(group.batch, {
        firstIndex: this.#meta.firstIndex,
        lastIndex: group.lastIndex,
      });
    }
    if (completed < oldLastIndex) {
      await this.#deleteRange({
        prefix: this.#logPrefix,
        start: [...this.#logPrefix, completed + 1],
      });
    }
  }

  /**
   * Reads entries with `from <= index < to`.
   * @param from first index to read
   * @param to one past the last index to read
   * @returns the entries in index order
   * @throws RangeError when the range is not within `[firstIndex, lastIndex + 1]`
   * @throws StorageCorruptionError when an entry is missing or fails its checksum
   */
  async entries(from: number, to: number): Promise<LogEntry[]> {
    const kv = this.#requireOpen();
    const { firstIndex, lastIndex } = this.#meta;
    if (
      !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from > to ||
      from < firstIndex || to > lastIndex + 1
    ) {
      throw new RangeError(
        `Cannot read entries [${from}, ${to}): the log holds [${firstIndex}, ${lastIndex}]`,
      );
    }
    const out: LogEntry[] = [];
    if (from === to) return out;
    const depth = this.#logPrefix.length;
    let head: EntryHead | undefined;
    let chunks: Uint8Array[] = [];
    const iterator = kv.list(
      { start: [...this.#logPrefix, from], end: [...this.#logPrefix, to] },
      { batchSize: Math.min(LIST_BATCH, to - from + 1) },
    );
    for await (const { key, value } of iterator) {
      const index = key[depth];
      if (key.length === depth + 1) {
        if (head !== undefined) out.push(finishEntry(head, chunks));
        if (index !== from + out.length) {
          throw new StorageCorruptionError(`Log entry ${from + out.length} is missing`);
        }
        head = decodeEntryHead(index, value);
        chunks = [];
      } else if (
        // Other chunk keys are leftovers of a longer entry once stored at this index.
        head !== undefined && index === head.index && key[depth + 1] === chunks.length + 1 &&
        chunks.length < head.chunkCount
      ) {
        if (!(value instanceof Uint8Array)) {
          throw new StorageCorruptionError(`Log entry ${head.index} has a malformed chunk`);
        }
        chunks.push(value);
      }
    }
    if (head !== undefined) out.push(finishEntry(head, chunks));
    if (out.length !== to - from) {
      throw new StorageCorruptionError(`Log entry ${from + out.length} is missing`);
    }
    return out;
  }

  /**
   * Stores a snapshot under a fresh id in 64 KiB chunks, then switches the snapshot
   * metadata to it in one commit (with the last chunks), then deletes the previous
   * snapshot's chunks (once no `loadSnapshot` stream still reads them). A crash at any point
   * leaves either the old or the new snapshot complete.
   * @param meta what the snapshot covers
   * @param data its state bytes
   * @throws StorageCorruptionError when another writer changed the store meanwhile
   */
  async saveSnapshot(
    meta: SnapshotMeta,
    data: Uint8Array | ReadableStream<Uint8Array>,
  ): Promise<void> {
    this.#requireOpen();
    if (!Number.isSafeInteger(meta.lastIndex) || !Number.isSafeInteger(meta.lastTerm)) {
      throw new RangeError(`Invalid snapshot position ${meta.lastIndex}/${meta.lastTerm}`);
    }
    const peers = meta.peers.map((p) => ({ name: p.name, connectionString: p.connectionString }));
    const id = crypto.randomUUID();
    // Fails early (RangeError) if the membership is too large for one value.
    encodeSnapshotRecord({ id, ...meta, peers, size: 0, checksum: 0, chunkCount: 0 });
    let chunkCount = 0;
    let size = 0;
    let checksum = 0;
    const newBatch = () => this.#checkedBatch().reserveMutation(this.#snapMetaKey, MAX_VALUE_BYTES);
    let batch = newBatch();
    const addChunk = async (bytes: Uint8Array) => {
      const key = [...this.#snapPrefix, id, chunkCount];
      if (!batch.fits(key, bytes.length)) {
        await this.#commit(batch, undefined);
        batch = newBatch();
      }
      batch.add(key, bytes);
      chunkCount++;
    };
    try {
      if (data instanceof Uint8Array) {
        checksum = crc32c(data);
        size = data.length;
        for (let at = 0; at < data.length; at += SNAPSHOT_CHUNK_BYTES) {
          await addChunk(data.slice(at, at + SNAPSHOT_CHUNK_BYTES));
        }
      } else {
        const pending = new Uint8Array(SNAPSHOT_CHUNK_BYTES);
        let filled = 0;
        const reader = data.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            checksum = crc32c(value, checksum);
            size += value.length;
            for (let at = 0; at < value.length;) {
              const n = Math.min(value.length - at, SNAPSHOT_CHUNK_BYTES - filled);
              pending.set(value.subarray(at, at + n), filled);
              filled += n;
              at += n;
              if (filled === SNAPSHOT_CHUNK_BYTES) {
                await addChunk(pending.slice());
                filled = 0;
              }
            }
          }
        } finally {
          reader.releaseLock();
        }
        if (filled > 0) await addChunk(pending.slice(0, filled));
      }
      const record: SnapshotRecord = {
        id,
        lastIndex: meta.lastIndex,
        lastTerm: meta.lastTerm,
        peers,
        size,
        checksum,
        chunkCount,
      };
      batch.add(this.#snapMetaKey, encodeSnapshotRecord(record));
      await this.#commit(batch, undefined);
      const previous = this.#snapshot;
      this.#snapshot = record;
      if (previous !== undefined) await this.#dropSnapshot(previous.id);
    } catch (error) {
      // Best effort: `open` also deletes chunks of any snapshot that never became current.
      if (!this.#closed) {
        await this.#deleteRange({ prefix: [...this.#snapPrefix, id] }).catch(() => {});
      }
      throw error;
    }
  }

  /**
   * The newest stored snapshot. Its bytes are read lazily as the stream is read (64 KiB
   * chunks, up to 8 per KV round trip); the CRC-32C is verified before the last chunk is
   * delivered, so a corrupt snapshot errors the stream instead of ending it cleanly.
   * @returns the snapshot, or `undefined` when none is stored
   */
  loadSnapshot(): Promise<StoredSnapshot | undefined> {
    const kv = this.#requireOpen();
    const record = this.#snapshot;
    if (record === undefined) return Promise.resolve(undefined);
    this.#readers.set(record.id, (this.#readers.get(record.id) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (this.#readers.get(record.id) ?? 1) - 1;
      if (left > 0) {
        this.#readers.set(record.id, left);
      } else {
        this.#readers.delete(record.id);
        if (this.#staleSnapshots.delete(record.id)) void this.#dropSnapshot(record.id);
      }
    };
    let chunks: AsyncIterator<KvEntryLike> | undefined;
    let next = 0;
    let size = 0;
    let checksum = 0;
    const verify = () => {
      if (size !== record.size || checksum !== record.checksum) {
        throw new StorageCorruptionError(
          `Snapshot ${record.id} failed its checksum (${size} of ${record.size} bytes read)`,
        );
      }
    };
    const data = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          if (next === record.chunkCount) {
            verify();
            release();
            controller.close();
            return;
          }
          chunks ??= kv.list({ prefix: [...this.#snapPrefix, record.id] }, {
            batchSize: SNAPSHOT_READ_BATCH,
          })[Symbol.asyncIterator]();
          const step = await chunks.next();
          const value = step.done || step.value.key.at(-1) !== next ? undefined : step.value.value;
          if (!(value instanceof Uint8Array)) {
            throw new StorageCorruptionError(`Snapshot ${record.id} is missing chunk ${next}`);
          }
          next++;
          size += value.length;
          checksum = crc32c(value, checksum);
          if (next === record.chunkCount) verify();
          // A plain Uint8Array view even when @deno/kv hands out a Node Buffer.
          controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
          if (next === record.chunkCount) {
            release();
            controller.close();
          }
        } catch (error) {
          release();
          controller.error(error);
        }
      },
      cancel: async () => {
        release();
        await chunks?.return?.();
      },
    }, { highWaterMark: 0 });
    return Promise.resolve({ meta: snapshotMeta(record), data });
  }

  /**
   * Discards entries with `index <= throughIndex`: first records the new `firstIndex`
   * (so the discarded keys stop being log at once), then deletes them in batches.
   * @param throughIndex last index to discard; may be past the last entry
   */
  async compact(throughIndex: number): Promise<void> {
    this.#requireOpen();
    if (!Number.isSafeInteger(throughIndex) || throughIndex < 0) {
      throw new RangeError(`Cannot compact through index ${throughIndex}`);
    }
    if (throughIndex < this.#meta.firstIndex) return;
    await this.#commit(this.#checkedBatch(), {
      firstIndex: throughIndex + 1,
      lastIndex: Math.max(this.#meta.lastIndex, throughIndex),
    });
    await this.#deleteRange({
      prefix: this.#logPrefix,
      end: [...this.#logPrefix, throughIndex + 1],
    });
  }

  /** Waits for background deletions, then closes the database if this storage opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    if (this.#ownsKv) {
      this.#kv?.close();
      this.#kv = undefined;
    }
  }

  #requireOpen(): KvLike {
    if (this.#closed) throw new TypeError("KvStorage is closed");
    if (!this.#opened || this.#kv === undefined) {
      throw new TypeError("KvStorage is not open: call open() first");
    }
    return this.#kv;
  }

  #checkEntries(entries: readonly LogEntry[]): void {
    const { firstIndex, lastIndex } = this.#meta;
    const start = entries[0]!.index;
    if (!Number.isSafeInteger(start) || start < firstIndex || start > lastIndex + 1) {
      throw new RangeError(
        `Cannot append entry at index ${start}: the log holds [${firstIndex}, ${lastIndex}]`,
      );
    }
    entries.forEach((entry, i) => {
      if (entry.index !== start + i) {
        throw new RangeError(
          `Entries must have consecutive indexes: got ${entry.index} after ${start + i - 1}`,
        );
      }
      if (!Number.isSafeInteger(entry.term) || entry.term < 0) {
        throw new RangeError(`Entry ${entry.index} has an invalid term ${entry.term}`);
      }
      if (!(entry.command instanceof Uint8Array)) {
        throw new TypeError(`Entry ${entry.index} has a command that is not a Uint8Array`);
      }
    });
  }

  /** A batch with room for the check that {@link KvStorage.#commit} adds. */
  #checkedBatch(): AtomicBatch {
    return new AtomicBatch().reserveCheck(this.#metaKey);
  }

  /**
   * Commits one atomic operation, setting the log bounds to `meta` when given. Every commit
   * checks that the meta key is still the one we last wrote: a second writer on the same
   * keys fails loudly instead of interleaving two logs.
   */
  async #commit(batch: AtomicBatch, meta: LogMeta | undefined): Promise<void> {
    const kv = this.#requireOpen();
    const op = kv.atomic().check({ key: this.#metaKey, versionstamp: this.#metaVersionstamp });
    for (const { key, value } of batch.mutations) {
      if (value === undefined) op.delete(key);
      else op.set(key, value);
    }
    if (meta !== undefined) op.set(this.#metaKey, encodeLogMeta(meta));
    const result = await op.commit();
    if (!result.ok) {
      throw new StorageCorruptionError(
        "The store was modified by another writer (its log metadata changed unexpectedly)",
      );
    }
    if (meta !== undefined) {
      this.#meta = meta;
      this.#metaVersionstamp = result.versionstamp ??
        (await kv.get(this.#metaKey)).versionstamp;
    }
  }

  /** Deletes every key the selector lists, in as few commits as the limits allow. */
  async #deleteRange(selector: KvListSelectorLike): Promise<void> {
    // Not #requireOpen(): a background deletion may still run while close() waits for it.
    const kv = this.#kv!;
    let batch = new AtomicBatch();
    for await (const entry of kv.list(selector, { batchSize: LIST_BATCH })) {
      // A key read back from the store is a valid key to delete.
      const key = entry.key as KvKey;
      if (!batch.fits(key, 0)) {
        await commitDeletes(kv, batch);
        batch = new AtomicBatch();
      }
      batch.add(key);
    }
    if (batch.mutations.length > 0) await commitDeletes(kv, batch);
  }

  /** Deletes a replaced snapshot's chunks now, or when its last reader is done. */
  async #dropSnapshot(id: string): Promise<void> {
    if ((this.#readers.get(id) ?? 0) > 0) {
      this.#staleSnapshots.add(id);
      return;
    }
    if (this.#closed) return; // `open` will collect them
    const task = this.#deleteRange({ prefix: [...this.#snapPrefix, id] }).catch(() => {});
    this.#background.add(task);
    try {
      await task;
    } finally {
      this.#background.delete(task);
    }
  }

  /** Deletes keys a crash left outside the log bounds and chunks of non-current snapshots. */
  async #collectGarbage(): Promise<void> {
    const log = this.#logPrefix;
    const snap = this.#snapPrefix;
    await this.#deleteRange({ prefix: log, end: [...log, this.#meta.firstIndex] });
    await this.#deleteRange({ prefix: log, start: [...log, this.#meta.lastIndex + 1] });
    const current = this.#snapshot?.id;
    if (current === undefined) {
      await this.#deleteRange({ prefix: snap });
    } else {
      await this.#deleteRange({ prefix: snap, end: [...snap, current] });
      // `true` sorts after every number, so this starts just past the current chunks.
      await this.#deleteRange({ prefix: snap, start: [...snap, current, true] });
    }
  }
}

/**
 * Garbage deletes are not checked against the meta versionstamp: they may run in the
 * background alongside `save`, and deleting keys nobody reads is safe either way.
 */
async function commitDeletes(kv: KvLike, batch: AtomicBatch): Promise<void> {
  const op = kv.atomic();
  for (const { key } of batch.mutations) op.delete(key);
  await op.commit();
}

function snapshotMeta(record: SnapshotRecord): SnapshotMeta {
  return {
    lastIndex: record.lastIndex,
    lastTerm: record.lastTerm,
    peers: record.peers.map((p) => ({ ...p })),
  };
}

function checkHardState(hardState: HardState): void {
  if (!Number.isSafeInteger(hardState.term) || hardState.term < 0) {
    throw new RangeError(`Invalid term ${hardState.term}`);
  }
  if (typeof hardState.votedFor !== "string") {
    throw new TypeError("votedFor must be a string");
  }
}
