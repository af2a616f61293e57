import type { HardState, LogEntry, SnapshotMeta } from "./types.ts";

/** What {@link Storage.open} recovers from durable state. */
export interface StorageState {
  /** Persisted term and vote; `{ term: 0, votedFor: "" }` for a new store. */
  hardState: HardState;
  /** Metadata of the newest stored snapshot, if any. */
  snapshot: SnapshotMeta | undefined;
  /** Index of the first entry held in the log (`snapshot.lastIndex + 1` after compaction, else 1). */
  firstIndex: number;
  /** Index of the last entry held in the log (`firstIndex - 1` when it holds none). */
  lastIndex: number;
}

/** What {@link Storage.save} makes durable in one call. */
export interface SaveBatch {
  /** New term and vote, if they changed. */
  hardState?: HardState;
  /**
   * Entries with consecutive indexes. If `entries[0].index <= lastIndex`, every stored
   * entry from that index on is replaced (a conflicting suffix is truncated first).
   */
  entries?: LogEntry[];
}

/** A stored snapshot: its metadata and a stream of its state bytes. */
export interface StoredSnapshot {
  /** What the snapshot covers. */
  meta: SnapshotMeta;
  /** The state bytes. */
  data: ReadableStream<Uint8Array>;
  /** Number of state bytes, when the storage knows it without reading them. */
  size?: number;
}

/**
 * A snapshot being written piece by piece (hashicorp/raft's `SnapshotSink`): nothing of it
 * is visible until {@link SnapshotSink.commit}; {@link SnapshotSink.cancel} discards it.
 */
export interface SnapshotSink {
  /** Appends state bytes; may be called many times before commit or cancel. */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Makes the snapshot durable and the newest one (as `saveSnapshot` would), replacing the
   * older ones.
   */
  commit(): Promise<void>;
  /** Discards what was written. Safe to call after a failed write and more than once. */
  cancel(): Promise<void>;
}

/**
 * Durable home of a server's term, vote, log and snapshots.
 *
 * Contract (checked by `storageConformance` in `@tsraft/core/testing`):
 * - `save` resolves only once everything in the batch is durable (would survive a crash
 *   or kill -9 of the process and, for disk stores, a power cut after fsync). After a crash
 *   the log is a prefix of what was saved, containing every entry whose `save` resolved.
 * - Calls are not overlapped by the server: it awaits each before the next mutating one.
 * - Malformed or corrupt data found at `open` is repaired only when it is a torn tail,
 *   otherwise `open` rejects with `StorageCorruptionError`.
 */
export interface Storage {
  /** Opens (creating if needed) and recovers the store. */
  open(): Promise<StorageState>;
  /** Makes a hard state and/or entries durable in one call (one fsync / one commit). */
  save(batch: SaveBatch): Promise<void>;
  /**
   * Reads entries with `from <= index < to`.
   * @throws RangeError when the range is not within `[firstIndex, lastIndex + 1]`
   */
  entries(from: number, to: number): Promise<LogEntry[]>;
  /**
   * Durably stores a snapshot (replacing older ones). Does not compact the log.
   * @param meta what the snapshot covers
   * @param data its state bytes
   */
  saveSnapshot(meta: SnapshotMeta, data: Uint8Array | ReadableStream<Uint8Array>): Promise<void>;
  /**
   * Optional: starts writing a snapshot piece by piece, for one received from a leader
   * chunk by chunk. Writes to the sink must not wait for, nor delay, the storage's other
   * operations. Without it, a server buffers a received snapshot in memory.
   * @param meta what the snapshot covers
   * @returns the sink
   */
  createSnapshot?(meta: SnapshotMeta): Promise<SnapshotSink>;
  /** The newest stored snapshot, or `undefined`. */
  loadSnapshot(): Promise<StoredSnapshot | undefined>;
  /**
   * Discards entries with `index <= throughIndex`. Only called for indexes covered by a
   * stored snapshot. When `throughIndex` is past the last entry, the log becomes empty and
   * the next entry appended is `throughIndex + 1`.
   */
  compact(throughIndex: number): Promise<void>;
  /** Releases files and handles. Safe to call twice. */
  close(): Promise<void>;
  /** Optional: the directory the storage lives in (the spec's `Path()`). */
  readonly dir?: string;
  /** Optional: where the log is kept (the spec's `LogPath()`). */
  logPath?(): string;
  /** Optional: where a snapshot of `lastIndex`/`lastTerm` is kept (the spec's `SnapshotPath()`). */
  snapshotPath?(lastIndex: number, lastTerm: number): string;
}
