import { mkdir, open, readdir, readFile, rename } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  crc32c,
  type HardState,
  type LogEntry,
  type SaveBatch,
  type SnapshotMeta,
  type SnapshotSink,
  type Storage,
  StorageCorruptionError,
  type StorageState,
  type StoredSnapshot,
} from "@tsraft/core";
import {
  decodeMeta,
  decodeSnapshotHeader,
  encodeMeta,
  encodeRecords,
  encodeSnapshotHeader,
  encodeSnapshotMeta,
  SNAPSHOT_HEADER_BYTES,
  type SnapshotHeader,
  snapshotMetaLength,
} from "./_format.ts";
import {
  isNotFound,
  readAt,
  removeFile,
  syncDir,
  writeAll,
  writeAllSync,
  writeFileAtomic,
} from "./_fs.ts";
import {
  offsetOf,
  readEntries,
  scanSegment,
  Segment,
  SEGMENT_NAME,
  segmentName,
} from "./_segment.ts";

/** Options of {@link FileStorage}. */
export interface FileStorageOptions {
  /**
   * A new segment file is started once the current one holds at least this many bytes.
   * Compaction deletes whole segments only, so smaller segments free space sooner.
   * @default {64 * 1024 * 1024}
   */
  segmentBytes?: number;
  /**
   * Whether to fsync (fdatasync for appends). Turning it off keeps data safe from a crash of
   * the process but not from a power cut or kernel crash; meant for tests and benchmarks.
   * @default {true}
   */
  fsync?: boolean;
}

const SNAPSHOT_NAME = /^(\d+)-(\d+)\.snap$/;
const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
const MAX_SEGMENT_BYTES = 2 ** 31;

interface SnapshotFile {
  name: string;
  term: number;
  index: number;
}

/**
 * A durable {@link Storage} in a directory: an append-only, checksummed, segmented log, an
 * atomically replaced meta file (term, vote, first index) and streamed snapshot files.
 * The log is not held in memory: only a sparse index of each segment is, and
 * {@link FileStorage.entries} reads from disk. Uses `node:fs/promises` only, so it runs on
 * Deno, Bun and Node. See the module documentation for the on-disk layout and recovery rules.
 *
 * One process at a time: nothing locks the directory against a second writer.
 *
 * @example
 * ```ts
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { FileStorage } from "@tsraft/storage-file";
 *
 * const dir = await mkdtemp(join(tmpdir(), "tsraft-"));
 * const storage = new FileStorage(dir);
 * await storage.open();
 * await storage.save({
 *   hardState: { term: 1, votedFor: "a" },
 *   entries: [{ index: 1, term: 1, commandName: "raft:nop", command: new Uint8Array() }],
 * });
 * const [entry] = await storage.entries(1, 2);
 * if (entry?.commandName !== "raft:nop") throw new Error("not stored");
 * await storage.close();
 * await rm(dir, { recursive: true });
 * ```
 */
export class FileStorage implements Storage {
  /** The directory holding the store. */
  readonly dir: string;
  readonly #segmentBytes: number;
  readonly #fsync: boolean;
  readonly #logDir: string;
  readonly #snapshotDir: string;
  readonly #metaPath: string;
  #open = false;
  #failure: unknown = undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #segments: Segment[] = [];
  /** Read-write handle on the last segment, while there is one. */
  #tail: FileHandle | undefined;
  #hardState: HardState = { term: 0, votedFor: "" };
  #firstIndex = 1;
  #lastIndex = 0;
  #snapshot: SnapshotMeta | undefined;
  #sinkCount = 0;

  /**
   * Creates the store object; nothing touches the disk until {@link FileStorage.open}.
   * @param dir directory of the store; created on {@link FileStorage.open} if missing
   * @param options segment size and whether to fsync
   * @throws RangeError when `segmentBytes` is not a positive integer up to 2 GiB
   */
  constructor(dir: string, options: FileStorageOptions = {}) {
    const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) {
      throw new RangeError(`segmentBytes must be an integer in [1, 2^31], got ${segmentBytes}`);
    }
    this.dir = dir;
    this.#segmentBytes = segmentBytes;
    this.#fsync = options.fsync ?? true;
    this.#logDir = join(dir, "log");
    this.#snapshotDir = join(dir, "snapshots");
    this.#metaPath = join(dir, "meta");
  }

  /**
   * Directory of the log segments (the spec's `LogPath()`).
   * @returns the path
   */
  logPath(): string {
    return this.#logDir;
  }

  /**
   * File a snapshot covering `lastIndex` (of term `lastTerm`) is stored in (the spec's
   * `SnapshotPath(lastIndex, lastTerm)`).
   * @param lastIndex last index the snapshot covers
   * @param lastTerm its term
   * @returns the path
   */
  snapshotPath(lastIndex: number, lastTerm: number): string {
    return join(this.#snapshotDir, `${lastTerm}-${lastIndex}.snap`);
  }

  /**
   * Opens (creating if needed) and recovers the store: drops a torn tail of the last segment
   * (and fsyncs the cut), deletes segments a finished compaction no longer needs and leftover
   * temporary files.
   * @returns the recovered hard state, snapshot metadata and log bounds
   * @throws StorageCorruptionError naming the file and offset of damage that is not a torn
   * tail (a bad record followed by a later write, a damaged earlier segment, a gap in indexes,
   * a bad meta file or snapshot header)
   * @throws TypeError when already open
   */
  open(): Promise<StorageState> {
    return this.#run(() => this.#recover(), "open");
  }

  /**
   * Makes the batch durable: the hard state via the meta file, the entries with one write and
   * one fdatasync (after cutting off a conflicting suffix, durably, first).
   * @param batch hard state and/or entries with consecutive indexes
   * @throws RangeError when the entries are not consecutive, start before the first index or
   * would leave a gap after the last one
   * @throws TypeError when the store is not open or a field has the wrong type
   */
  save(batch: SaveBatch): Promise<void> {
    return this.#run(async () => {
      const entries = batch.entries ?? [];
      checkEntries(entries);
      if (batch.hardState !== undefined) checkHardState(batch.hardState);
      if (entries.length > 0) {
        const first = entries[0]!.index;
        if (first < this.#firstIndex || first > this.#lastIndex + 1) {
          throw new RangeError(
            `Cannot append entry at index ${first}: log holds ${this.#firstIndex}..${this.#lastIndex}`,
          );
        }
      }
      if (batch.hardState !== undefined) {
        const hardState = { term: batch.hardState.term, votedFor: batch.hardState.votedFor };
        await this.#writeMeta(hardState, this.#firstIndex);
        this.#hardState = hardState;
      }
      if (entries.length > 0) {
        if (entries[0]!.index <= this.#lastIndex) await this.#truncateFrom(entries[0]!.index);
        await this.#append(entries);
      }
    }, "mutate");
  }

  /**
   * Reads entries `from <= index < to` from disk, checking each record's CRC.
   * @param from first index to read
   * @param to index after the last to read
   * @returns the entries, in index order
   * @throws RangeError when the range is not within `[firstIndex, lastIndex + 1]`
   * @throws StorageCorruptionError when a record read fails its check
   */
  entries(from: number, to: number): Promise<LogEntry[]> {
    return this.#run(async () => {
      if (
        !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from > to ||
        from < this.#firstIndex || to > this.#lastIndex + 1
      ) {
        throw new RangeError(
          `Cannot read entries [${from}, ${to}): log holds ${this.#firstIndex}..${this.#lastIndex}`,
        );
      }
      const out: LogEntry[] = [];
      if (from === to) return out;
      let i = this.#segmentFor(from);
      for (; i < this.#segments.length && this.#segments[i]!.firstIndex < to; i++) {
        const segment = this.#segments[i]!;
        const isTail = i === this.#segments.length - 1 && this.#tail !== undefined;
        const handle = isTail ? this.#tail! : await open(segment.path, "r");
        try {
          const start = Math.max(from, segment.firstIndex);
          await readEntries(segment, handle, start, Math.min(to, segment.lastIndex + 1), out);
        } finally {
          if (!isTail) await handle.close();
        }
      }
      return out;
    }, "read");
  }

  /**
   * Writes `snapshots/<term>-<index>.snap` via a temporary file, fsync, rename and directory
   * fsync, streaming `data` to disk; then deletes every other snapshot.
   * @param meta what the snapshot covers
   * @param data the state bytes
   * @throws TypeError when the store is not open
   */
  async saveSnapshot(
    meta: SnapshotMeta,
    data: Uint8Array | ReadableStream<Uint8Array>,
  ): Promise<void> {
    const sink = await this.createSnapshot(meta);
    try {
      if (data instanceof Uint8Array) {
        await sink.write(data);
      } else {
        const reader = data.getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          await sink.write(r.value);
        }
      }
    } catch (error) {
      await sink.cancel();
      throw error;
    }
    await sink.commit();
  }

  /**
   * Starts writing `snapshots/<term>-<index>.snap` piece by piece into a temporary file.
   * Writes go straight to that file, beside the log's operations rather than queued behind
   * them; `commit()` fsyncs it, renames it into place, fsyncs the directory and deletes every
   * other snapshot; `cancel()` deletes it.
   * @param meta what the snapshot covers
   * @returns the sink
   * @throws RangeError for an invalid index or term
   * @throws TypeError when the store is not open
   */
  async createSnapshot(meta: SnapshotMeta): Promise<SnapshotSink> {
    if (!Number.isSafeInteger(meta.lastIndex) || meta.lastIndex < 0) {
      throw new RangeError(`Invalid snapshot lastIndex ${meta.lastIndex}`);
    }
    if (!Number.isSafeInteger(meta.lastTerm) || meta.lastTerm < 0) {
      throw new RangeError(`Invalid snapshot lastTerm ${meta.lastTerm}`);
    }
    if (!this.#open) throw new TypeError("FileStorage is not open");
    const name = `${meta.lastTerm}-${meta.lastIndex}.snap`;
    const path = join(this.#snapshotDir, name);
    // Unique per sink: a snapshot received again while an earlier copy is still written.
    const tmp = `${path}.${++this.#sinkCount}.tmp`;
    const metaJson = encodeSnapshotMeta(meta);
    const peers = meta.peers.map((p) => ({ ...p }));
    const handle = await open(tmp, "w");
    let position = SNAPSHOT_HEADER_BYTES + metaJson.length;
    let crc = 0;
    let finished = false;
    let pending: Promise<void> = writeAll(handle, metaJson, SNAPSHOT_HEADER_BYTES);
    const discard = async () => {
      await handle.close().catch(() => {});
      await removeFile(tmp);
    };
    return {
      write: (chunk: Uint8Array) => {
        if (finished) return Promise.reject(new TypeError("The snapshot sink is closed"));
        const at = position;
        position += chunk.length;
        crc = crc32c(chunk, crc);
        pending = pending.then(() => writeAll(handle, chunk, at));
        return pending;
      },
      cancel: async () => {
        if (finished) return;
        finished = true;
        await pending.catch(() => {});
        await discard();
      },
      commit: async () => {
        if (finished) throw new TypeError("The snapshot sink is closed");
        finished = true;
        try {
          await pending;
          const dataLength = position - SNAPSHOT_HEADER_BYTES - metaJson.length;
          await writeAll(handle, encodeSnapshotHeader(metaJson, dataLength, crc), 0);
          if (this.#fsync) await handle.sync();
          await handle.close();
        } catch (error) {
          await discard();
          throw error;
        }
        await this.#run(async () => {
          await rename(tmp, path);
          if (this.#fsync) await syncDir(this.#snapshotDir);
          // Only now that the new snapshot is durable may the old ones go.
          let removed = false;
          for (const other of await readdir(this.#snapshotDir)) {
            if (other !== name && !other.endsWith(".tmp")) {
              await removeFile(join(this.#snapshotDir, other));
              removed = true;
            }
          }
          if (removed && this.#fsync) await syncDir(this.#snapshotDir);
          this.#snapshot = { lastIndex: meta.lastIndex, lastTerm: meta.lastTerm, peers };
        }, "read"); // a failed snapshot leaves the log as it was: no need to refuse later calls
      },
    };
  }

  /**
   * The newest snapshot by (index, term) compared as numbers. Its checksum is verified
   * before this resolves; the state is then streamed from the file.
   * @returns the snapshot, or `undefined` when none is stored
   * @throws StorageCorruptionError when the snapshot fails its checks
   */
  loadSnapshot(): Promise<StoredSnapshot | undefined> {
    return this.#run(async () => {
      const newest = await this.#newestSnapshot();
      if (newest === undefined) return undefined;
      const path = join(this.#snapshotDir, newest.name);
      const handle = await open(path, "r");
      try {
        const header = await readSnapshotHeader(handle, newest);
        let crc = 0;
        let position = header.dataOffset;
        const end = header.dataOffset + header.dataLength;
        while (position < end) {
          const chunk = await readAt(
            handle,
            position,
            Math.min(SNAPSHOT_CHUNK_BYTES, end - position),
          );
          if (chunk.length === 0) break;
          crc = crc32c(chunk, crc);
          position += chunk.length;
        }
        if (crc !== header.dataCrc) {
          throw new StorageCorruptionError(
            `Corrupt snapshot snapshots/${newest.name}: state checksum mismatch`,
          );
        }
        return {
          meta: header.meta,
          data: streamFile(handle, header.dataOffset, end),
          size: header.dataLength,
        };
      } catch (error) {
        await handle.close();
        throw error;
      }
    }, "read");
  }

  /**
   * Discards entries with `index <= throughIndex`: durably records the new first index in the
   * meta file, then deletes every segment it covers entirely. When `throughIndex` is past the
   * last entry the log becomes empty and the next entry appended is `throughIndex + 1`.
   * @param throughIndex last index to discard
   * @throws RangeError when `throughIndex` is not a non-negative safe integer
   */
  compact(throughIndex: number): Promise<void> {
    return this.#run(async () => {
      if (!Number.isSafeInteger(throughIndex) || throughIndex < 0) {
        throw new RangeError(`Invalid compaction index ${throughIndex}`);
      }
      if (throughIndex < this.#firstIndex) return;
      await this.#writeMeta(this.#hardState, throughIndex + 1);
      this.#firstIndex = throughIndex + 1;
      let removed = false;
      if (throughIndex >= this.#lastIndex) {
        await this.#closeTail();
        for (const segment of this.#segments) await removeFile(segment.path);
        removed = this.#segments.length > 0;
        this.#segments = [];
        this.#lastIndex = throughIndex;
      } else {
        while (this.#segments.length > 1 && this.#segments[0]!.lastIndex <= throughIndex) {
          await removeFile(this.#segments.shift()!.path);
          removed = true;
        }
      }
      if (removed && this.#fsync) await syncDir(this.#logDir);
    }, "mutate");
  }

  /** Waits for pending calls and closes files. Safe to call twice. */
  async close(): Promise<void> {
    const wait = this.#queue.then(() => {}, () => {});
    this.#queue = wait;
    await wait;
    await this.#closeTail();
    this.#segments = [];
    this.#open = false;
    this.#failure = undefined;
  }

  /**
   * Runs calls one at a time. An I/O failure while mutating leaves the files in an unknown
   * state (and after a failed fsync the page cache cannot be trusted), so the store then
   * refuses further calls until reopened.
   */
  #run<T>(fn: () => Promise<T>, mode: "open" | "read" | "mutate"): Promise<T> {
    const result = this.#queue.then(async () => {
      if (mode === "open" ? this.#open : !this.#open) {
        throw new TypeError(
          mode === "open" ? "FileStorage is already open" : "FileStorage is not open",
        );
      }
      if (this.#failure !== undefined) {
        throw new Error("FileStorage failed earlier; close and reopen it", {
          cause: this.#failure,
        });
      }
      try {
        return await fn();
      } catch (error) {
        if (mode === "mutate" && !(error instanceof RangeError) && !(error instanceof TypeError)) {
          this.#failure = error;
        }
        throw error;
      }
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  async #recover(): Promise<StorageState> {
    try {
      return await this.#recoverInner();
    } catch (error) {
      await this.#closeTail();
      this.#segments = [];
      throw error;
    }
  }

  async #recoverInner(): Promise<StorageState> {
    for (const path of [this.dir, this.#logDir, this.#snapshotDir]) {
      const created = await mkdir(path, { recursive: true });
      if (created !== undefined && this.#fsync) await syncDir(dirname(path));
    }
    await removeFile(`${this.#metaPath}.tmp`);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFile(this.#metaPath);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    if (bytes !== undefined) {
      const meta = decodeMeta(bytes);
      if (typeof meta === "string") {
        throw new StorageCorruptionError(`Corrupt meta file at offset 0: ${meta}`);
      }
      this.#hardState = meta.hardState;
      this.#firstIndex = meta.firstIndex;
    } else {
      this.#hardState = { term: 0, votedFor: "" };
      this.#firstIndex = 1;
    }
    await this.#recoverLog();
    for (const name of await readdir(this.#snapshotDir)) {
      if (name.endsWith(".tmp")) await removeFile(join(this.#snapshotDir, name));
    }
    this.#snapshot = undefined;
    const newest = await this.#newestSnapshot();
    if (newest !== undefined) {
      const handle = await open(join(this.#snapshotDir, newest.name), "r");
      try {
        this.#snapshot = (await readSnapshotHeader(handle, newest)).meta;
      } finally {
        await handle.close();
      }
    }
    this.#open = true;
    return {
      hardState: { ...this.#hardState },
      snapshot: this.#snapshot,
      firstIndex: this.#firstIndex,
      lastIndex: this.#lastIndex,
    };
  }

  async #recoverLog(): Promise<void> {
    const first = this.#firstIndex;
    const segments: Segment[] = [];
    for (const name of await readdir(this.#logDir)) {
      const match = SEGMENT_NAME.exec(name);
      if (match === null) continue;
      const index = Number(match[1]);
      if (!Number.isSafeInteger(index) || index < 1) {
        throw new StorageCorruptionError(`Invalid segment name log/${name}`);
      }
      segments.push(new Segment(index, join(this.#logDir, name), `log/${name}`));
    }
    segments.sort((a, b) => a.firstIndex - b.firstIndex);
    let removed = false;
    // Left by a compaction that crashed between writing the meta file and deleting them.
    while (segments.length > 1 && segments[1]!.firstIndex <= first) {
      await removeFile(segments.shift()!.path);
      removed = true;
    }
    // Check everything before repairing anything: a torn tail is only cut off once the rest
    // of the log is known to be sound.
    let tornAt: number | undefined;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const isLast = i === segments.length - 1;
      const handle = await open(segment.path, isLast ? "r+" : "r");
      if (isLast) this.#tail = handle;
      try {
        const { size } = await handle.stat();
        const scan = await scanSegment(segment, handle, size, isLast);
        if (scan.validEnd < size) tornAt = scan.validEnd;
        if (i > 0 && segments[i - 1]!.lastIndex + 1 !== segment.firstIndex) {
          throw segment.corruption(
            0,
            `gap in the log: previous segment ends at entry ${segments[i - 1]!.lastIndex}`,
          );
        }
      } finally {
        if (!isLast) await handle.close();
      }
    }
    const last = segments.at(-1);
    const firstKept = segments.find((segment) => segment.lastIndex >= first);
    if (firstKept !== undefined && firstKept.firstIndex > first) {
      throw firstKept.corruption(
        0,
        `entries ${first}..${firstKept.firstIndex - 1} are missing (the meta file says the ` +
          `log starts at ${first})`,
      );
    }
    if (last !== undefined && tornAt !== undefined) {
      // A torn tail: the last write never completed, so no save of it resolved.
      await this.#tail!.truncate(tornAt);
      if (this.#fsync) await this.#tail!.sync();
    }
    if (last !== undefined && last.lastIndex < first) {
      // Every entry is below the first index: a compaction past the end crashed before
      // deleting the segment.
      await this.#closeTail();
      await removeFile(last.path);
      segments.pop();
      removed = true;
    }
    if (removed && this.#fsync) await syncDir(this.#logDir);
    this.#segments = segments;
    this.#lastIndex = segments.length > 0 ? segments.at(-1)!.lastIndex : first - 1;
  }

  async #newestSnapshot(): Promise<SnapshotFile | undefined> {
    let best: SnapshotFile | undefined;
    for (const name of await readdir(this.#snapshotDir)) {
      const match = SNAPSHOT_NAME.exec(name);
      if (match === null) continue;
      const file = { name, term: Number(match[1]), index: Number(match[2]) };
      // Compare as numbers: as strings "1-9" would sort after "1-10".
      if (
        best === undefined || file.index > best.index ||
        (file.index === best.index && file.term > best.term)
      ) {
        best = file;
      }
    }
    return best;
  }

  async #writeMeta(hardState: HardState, firstIndex: number): Promise<void> {
    await writeFileAtomic(
      this.dir,
      this.#metaPath,
      encodeMeta({ hardState, firstIndex }),
      this.#fsync,
    );
  }

  /** Index in #segments of the segment holding `index` (which must be in the log). */
  #segmentFor(index: number): number {
    let lo = 0;
    let hi = this.#segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#segments[mid]!.firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Durably removes entries from `index` on. Whole later segments go newest first with a
   * directory fsync after each, so a crash never leaves a hole; then the segment holding
   * `index` is cut and fsynced before anything new is appended.
   */
  async #truncateFrom(index: number): Promise<void> {
    while (this.#segments.at(-1)!.firstIndex > index) {
      await this.#closeTail();
      await removeFile(this.#segments.pop()!.path);
      if (this.#fsync) await syncDir(this.#logDir);
    }
    const segment = this.#segments.at(-1)!;
    this.#tail ??= await open(segment.path, "r+");
    const offset = await offsetOf(segment, this.#tail, index);
    await this.#tail.truncate(offset);
    if (this.#fsync) await this.#tail.sync();
    segment.cut(index, offset);
    this.#lastIndex = index - 1;
  }

  async #append(entries: readonly LogEntry[]): Promise<void> {
    let segment = this.#segments.at(-1);
    let created = false;
    if (segment === undefined || segment.size >= this.#segmentBytes) {
      await this.#closeTail();
      const first = entries[0]!.index;
      const name = segmentName(first);
      segment = new Segment(first, join(this.#logDir, name), `log/${name}`);
      this.#tail = await open(segment.path, "w+");
      this.#segments.push(segment);
      created = true;
    }
    this.#tail ??= await open(segment.path, "r+");
    const { bytes, offsets } = encodeRecords(entries, segment.size);
    writeAllSync(this.#tail, bytes, segment.size);
    if (this.#fsync) {
      await this.#tail.datasync();
      if (created) await syncDir(this.#logDir);
    }
    for (let i = 0; i < entries.length; i++) {
      segment.noteRecord(entries[i]!.index, segment.size + offsets[i]!);
    }
    segment.size += bytes.length;
    segment.lastIndex = entries.at(-1)!.index;
    this.#lastIndex = segment.lastIndex;
  }

  async #closeTail(): Promise<void> {
    const tail = this.#tail;
    this.#tail = undefined;
    await tail?.close();
  }
}

function checkEntries(entries: readonly LogEntry[]): void {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (!Number.isSafeInteger(e.index) || e.index < 1) {
      throw new RangeError(`Invalid entry index ${e.index}`);
    }
    if (i > 0 && e.index !== entries[i - 1]!.index + 1) {
      throw new RangeError(
        `Entries must have consecutive indexes: ${e.index} follows ${entries[i - 1]!.index}`,
      );
    }
    if (!Number.isSafeInteger(e.term) || e.term < 0) {
      throw new RangeError(`Invalid term ${e.term} of entry ${e.index}`);
    }
    if (typeof e.commandName !== "string" || !(e.command instanceof Uint8Array)) {
      throw new TypeError(`Entry ${e.index} needs a string commandName and Uint8Array command`);
    }
  }
}

function checkHardState(hardState: HardState): void {
  if (!Number.isSafeInteger(hardState.term) || hardState.term < 0) {
    throw new RangeError(`Invalid term ${hardState.term}`);
  }
  if (typeof hardState.votedFor !== "string") throw new TypeError("votedFor must be a string");
}

async function readSnapshotHeader(
  handle: FileHandle,
  file: SnapshotFile,
): Promise<SnapshotHeader> {
  const corrupt = (what: string) =>
    new StorageCorruptionError(`Corrupt snapshot snapshots/${file.name} at offset 0: ${what}`);
  const fixed = await readAt(handle, 0, SNAPSHOT_HEADER_BYTES);
  const metaLength = snapshotMetaLength(fixed);
  if (typeof metaLength === "string") throw corrupt(metaLength);
  const metaJson = await readAt(handle, SNAPSHOT_HEADER_BYTES, metaLength);
  if (metaJson.length !== metaLength) throw corrupt("file too short");
  const header = decodeSnapshotHeader(fixed, metaJson);
  if (typeof header === "string") throw corrupt(header);
  if (header.meta.lastIndex !== file.index || header.meta.lastTerm !== file.term) {
    throw corrupt(
      `header says term ${header.meta.lastTerm} index ${header.meta.lastIndex}, not the file name`,
    );
  }
  const actual = (await handle.stat()).size;
  if (actual !== header.dataOffset + header.dataLength) {
    throw corrupt(`file is ${actual} bytes, header says ${header.dataOffset + header.dataLength}`);
  }
  return header;
}

/** Streams `[start, end)` of an open file, closing it when done or cancelled. */
function streamFile(handle: FileHandle, start: number, end: number): ReadableStream<Uint8Array> {
  let position = start;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = position < end
          ? await readAt(handle, position, Math.min(SNAPSHOT_CHUNK_BYTES, end - position))
          : new Uint8Array();
        if (chunk.length === 0) {
          await handle.close();
          controller.close();
          return;
        }
        position += chunk.length;
        controller.enqueue(chunk);
      } catch (error) {
        await handle.close().catch(() => {});
        controller.error(error);
      }
    },
    async cancel() {
      await handle.close();
    },
  });
}
