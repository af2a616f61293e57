import { StopError } from "../errors.ts";
import type { SaveBatch, Storage, StorageState, StoredSnapshot } from "../storage.ts";
import type { HardState, LogEntry, PeerInfo, SnapshotMeta } from "../types.ts";

/** Chunk size of the streams returned by `loadSnapshot`, so readers meet several chunks. */
const SNAPSHOT_CHUNK_BYTES = 64 * 1024;

interface DiskState {
  hardState: HardState;
  /** Invariant: `entries[i].index === firstIndex + i`. */
  firstIndex: number;
  /** Frozen private copies; never handed out. */
  entries: LogEntry[];
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | undefined;
}

type Write = (state: DiskState) => void;

interface PendingWrite {
  write: Write;
  /** The write cut short: only its first `keep` entries reach the disk. */
  torn: ((keep: number) => Write) | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * What lives on a {@link MemoryDisk}. Kept out of the class so that {@link MemoryStorage}
 * can reach it without making it public API.
 */
class DiskCore {
  /** What survives a simulated power loss. */
  durable: DiskState = emptyState();
  /** What a process sees: `durable` plus every pending write (the OS page cache). */
  visible: DiskState = emptyState();
  pending: PendingWrite[] = [];
  holding = false;
  /** Token of the storage currently attached; older tokens are stale. */
  owner: object | undefined;
  saveCount = 0;

  /** Applies an already-validated write: at once, or later when writes are held. */
  write(write: Write, torn?: (keep: number) => Write): Promise<void> {
    write(this.visible);
    if (!this.holding) {
      write(this.durable);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.pending.push({ write, torn, resolve, reject }));
  }

  flush(count: number): number {
    const batch = this.pending.splice(0, count);
    for (const { write, resolve } of batch) {
      write(this.durable);
      resolve();
    }
    return batch.length;
  }
}

const cores = new WeakMap<MemoryDisk, DiskCore>();

function coreOf(disk: MemoryDisk): DiskCore {
  const core = cores.get(disk);
  if (core === undefined) throw new TypeError("Not a MemoryDisk");
  return core;
}

/** Options of {@link MemoryDisk.crash}. */
export interface CrashOptions {
  /**
   * How many of the oldest pending (held) writes reached the disk before the power went.
   * @default 0
   */
  keepWrites?: number;
  /**
   * Tears the first lost write: when it is a `save` of more than `tornEntries` entries, its
   * hard state and its first `tornEntries` entries reach the disk (a torn tail that the
   * storage repairs to a prefix). Its promise still rejects.
   * @default 0
   */
  tornEntries?: number;
}

/** What a {@link MemoryDisk} holds durably: what a crash now would leave. */
export interface DurableView {
  /** Persisted term and vote. */
  hardState: HardState;
  /** Metadata of the stored snapshot. */
  snapshot: SnapshotMeta | undefined;
  /** Index of the first entry of `entries`. */
  firstIndex: number;
  /** The durable log, in index order (shared, read-only: do not modify). */
  entries: readonly LogEntry[];
}

/**
 * The "disk" behind one or more successive {@link MemoryStorage}s: it outlives them, so
 * a simulated process restart is `await storage.close(); storage = new MemoryStorage(disk)`
 * (or, for a kill -9, just constructing a new one: opening it detaches the old one, whose
 * calls then reject with `StopError`).
 *
 * By default every write is durable as soon as it is made. To model writes that are
 * still in flight when the power goes, call {@link MemoryDisk.holdWrites}: later writes
 * are visible to reads but their promises stay pending until {@link MemoryDisk.flushWrites};
 * {@link MemoryDisk.crash} then loses all but a chosen prefix of them.
 *
 * @example
 * ```ts
 * import { MemoryDisk, MemoryStorage } from "@tsraft/core/testing";
 * const disk = new MemoryDisk();
 * const first = new MemoryStorage(disk);
 * await first.open();
 * await first.save({ hardState: { term: 3, votedFor: "a" } });
 * await first.close();
 * const second = new MemoryStorage(disk);
 * const state = await second.open();
 * if (state.hardState.term !== 3) throw new Error("term was not persisted");
 * ```
 */
export class MemoryDisk {
  /** Creates an empty disk. */
  constructor() {
    cores.set(this, new DiskCore());
  }

  /** Number of completed or pending `save` calls on this disk (to check write batching). */
  get saveCount(): number {
    return coreOf(this).saveCount;
  }

  /**
   * What is durable now, i.e. what a {@link MemoryDisk.crash} now would leave (held writes
   * not included). For checkers: read it, never modify it.
   */
  durable(): DurableView {
    const state = coreOf(this).durable;
    return {
      hardState: { ...state.hardState },
      snapshot: state.snapshot === undefined ? undefined : copyMeta(state.snapshot.meta),
      firstIndex: state.firstIndex,
      entries: state.entries.slice(),
    };
  }

  /** Number of held writes not yet durable. */
  get pendingWrites(): number {
    return coreOf(this).pending.length;
  }

  /**
   * From now on, writes (`save`, `saveSnapshot`, `compact`) are visible to reads at once
   * but are durable, and their promises resolve, only when flushed.
   */
  holdWrites(): void {
    coreOf(this).holding = true;
  }

  /**
   * Makes the oldest held writes durable, in order, and resolves their promises.
   * @param count how many to flush
   * @default count Infinity
   * @returns how many were flushed
   */
  flushWrites(count: number = Infinity): number {
    if (!(count >= 0)) throw new RangeError(`Cannot flush ${count} writes`);
    return coreOf(this).flush(count);
  }

  /** Stops holding writes and flushes every pending one. */
  releaseWrites(): void {
    const core = coreOf(this);
    core.holding = false;
    core.flush(Infinity);
  }

  /**
   * Simulates a power loss: the first `keepWrites` pending writes become durable, the rest
   * are lost and their promises reject with `StopError`; every attached storage is
   * detached. Writes stay held if they were.
   */
  crash(options: CrashOptions = {}): void {
    const keepWrites = options.keepWrites ?? 0;
    if (!(keepWrites >= 0)) throw new RangeError(`Cannot keep ${keepWrites} writes`);
    const tornEntries = options.tornEntries ?? 0;
    if (!(tornEntries >= 0)) throw new RangeError(`Cannot keep ${tornEntries} torn entries`);
    const core = coreOf(this);
    const lost = core.pending.splice(keepWrites);
    core.flush(Infinity);
    const torn = lost[0]?.torn;
    if (torn !== undefined && tornEntries > 0) torn(tornEntries)(core.durable);
    core.visible = cloneState(core.durable);
    core.owner = undefined;
    for (const { reject } of lost) {
      reject(new StopError("Write lost in a simulated crash of the MemoryDisk"));
    }
  }
}

/**
 * A {@link Storage} kept in memory, for tests and the simulator. Its data lives on a
 * {@link MemoryDisk}, which survives simulated restarts and crashes. Entries and snapshot
 * bytes are copied in and out, so callers never share buffers with the store. Misuse
 * (gaps, overwriting compacted entries, compacting past the snapshot) throws `RangeError`.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "@tsraft/core/testing";
 * const storage = new MemoryStorage();
 * await storage.open();
 * const command = new TextEncoder().encode("{}");
 * await storage.save({ entries: [{ index: 1, term: 1, commandName: "nop", command }] });
 * const [entry] = await storage.entries(1, 2);
 * if (entry?.term !== 1) throw new Error("entry was not stored");
 * await storage.close();
 * ```
 */
export class MemoryStorage implements Storage {
  #disk: MemoryDisk;
  #core: DiskCore;
  #token: object | undefined;
  #closed = false;

  /**
   * Creates a storage over `disk`; call `open()` before anything else.
   * @param disk where the data lives; pass the same disk to a new storage to reopen it
   * @default disk a new, empty MemoryDisk
   */
  constructor(disk: MemoryDisk = new MemoryDisk()) {
    this.#disk = disk;
    this.#core = coreOf(disk);
  }

  /** The disk this storage reads and writes. */
  get disk(): MemoryDisk {
    return this.#disk;
  }

  /** Attaches to the disk (detaching any other storage on it) and reports its state. */
  open(): Promise<StorageState> {
    const token = {};
    this.#token = token;
    this.#closed = false;
    this.#core.owner = token;
    const state = this.#core.visible;
    return Promise.resolve({
      hardState: { ...state.hardState },
      snapshot: state.snapshot === undefined ? undefined : copyMeta(state.snapshot.meta),
      firstIndex: state.firstIndex,
      lastIndex: lastIndexOf(state),
    });
  }

  /**
   * Stores a hard state and/or entries atomically, truncating a conflicting suffix.
   * @throws RangeError when the entries are not consecutive, leave a gap after the last
   * entry, or would overwrite compacted entries
   * @throws TypeError when a field has the wrong type
   */
  async save(batch: SaveBatch): Promise<void> {
    const state = this.#attached("save");
    const hardState = batch.hardState === undefined ? undefined : checkHardState(batch.hardState);
    const entries = batch.entries === undefined ? [] : checkEntries(batch.entries);
    const first = entries[0];
    if (first !== undefined) {
      const lastIndex = lastIndexOf(state);
      if (first.index > lastIndex + 1) {
        throw new RangeError(
          `Cannot append entry at index ${first.index}: log ends at index ${lastIndex}`,
        );
      }
      if (first.index < state.firstIndex) {
        throw new RangeError(
          `Cannot overwrite entry at index ${first.index}: log is compacted through index ${
            state.firstIndex - 1
          }`,
        );
      }
    }
    this.#core.saveCount++;
    const writeEntries = (kept: readonly LogEntry[]): Write => (target) => {
      if (hardState !== undefined) target.hardState = { ...hardState };
      if (first === undefined) return;
      target.entries.length = first.index - target.firstIndex;
      target.entries.push(...kept);
    };
    await this.#core.write(
      writeEntries(entries),
      // Only a proper prefix is a torn write; keeping them all is keeping the write.
      (keep) => writeEntries(entries.slice(0, Math.min(keep, entries.length - 1))),
    );
  }

  /**
   * Reads copies of the entries with `from <= index < to`.
   * @throws RangeError when the range is not within `[firstIndex, lastIndex + 1]`
   */
  entries(from: number, to: number): Promise<LogEntry[]> {
    try {
      const state = this.#attached("read entries");
      const lastIndex = lastIndexOf(state);
      if (
        !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from > to ||
        from < state.firstIndex || to > lastIndex + 1
      ) {
        const holds = lastIndex < state.firstIndex
          ? `log holds no entries (next index ${state.firstIndex})`
          : `log holds [${state.firstIndex}, ${lastIndex}]`;
        throw new RangeError(`Cannot read entries [${from}, ${to}): ${holds}`);
      }
      const offset = state.firstIndex;
      return Promise.resolve(state.entries.slice(from - offset, to - offset).map(copyEntry));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stores a snapshot, replacing the current one.
   * @throws RangeError when a snapshot through a later index is already stored
   * @throws TypeError when the metadata or data has the wrong type
   */
  async saveSnapshot(
    meta: SnapshotMeta,
    data: Uint8Array | ReadableStream<Uint8Array>,
  ): Promise<void> {
    this.#attached("save a snapshot");
    const copiedMeta = checkMeta(meta);
    const bytes = data instanceof Uint8Array ? data.slice() : await readAll(data);
    const state = this.#attached("save a snapshot");
    const current = state.snapshot?.meta.lastIndex ?? 0;
    if (copiedMeta.lastIndex < current) {
      throw new RangeError(
        `Cannot save a snapshot through index ${copiedMeta.lastIndex}: one through index ${current} is already stored`,
      );
    }
    const snapshot = { meta: copiedMeta, data: bytes };
    await this.#core.write((target) => {
      target.snapshot = snapshot;
    });
  }

  /** The newest snapshot, its bytes streamed in chunks of at most 64 KiB. */
  loadSnapshot(): Promise<StoredSnapshot | undefined> {
    try {
      const snapshot = this.#attached("load a snapshot").snapshot;
      if (snapshot === undefined) return Promise.resolve(undefined);
      return Promise.resolve({ meta: copyMeta(snapshot.meta), data: streamOf(snapshot.data) });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Discards entries with `index <= throughIndex`.
   * @throws RangeError when no stored snapshot covers `throughIndex`
   */
  async compact(throughIndex: number): Promise<void> {
    const state = this.#attached("compact");
    if (!Number.isSafeInteger(throughIndex) || throughIndex < 0) {
      throw new RangeError(`Cannot compact through index ${throughIndex}`);
    }
    const covered = state.snapshot?.meta.lastIndex;
    if (covered === undefined || throughIndex > covered) {
      throw new RangeError(
        `Cannot compact through index ${throughIndex}: ${
          covered === undefined
            ? "no snapshot is stored"
            : `the stored snapshot covers only through index ${covered}`
        }`,
      );
    }
    if (throughIndex < state.firstIndex) return;
    await this.#core.write((target) => {
      target.entries = target.entries.slice(throughIndex + 1 - target.firstIndex);
      target.firstIndex = throughIndex + 1;
    });
  }

  /** Detaches from the disk; held writes stay pending on it. Safe to call twice. */
  close(): Promise<void> {
    if (this.#token !== undefined && this.#core.owner === this.#token) {
      this.#core.owner = undefined;
    }
    this.#token = undefined;
    this.#closed = true;
    return Promise.resolve();
  }

  #attached(action: string): DiskState {
    if (this.#token === undefined) {
      if (this.#closed) throw new StopError(`Cannot ${action}: the MemoryStorage is closed`);
      throw new TypeError(`Cannot ${action}: call open() first`);
    }
    if (this.#core.owner !== this.#token) {
      throw new StopError(
        `Cannot ${action}: the MemoryStorage was detached by a crash or by another open() on its disk`,
      );
    }
    return this.#core.visible;
  }
}

function emptyState(): DiskState {
  return {
    hardState: { term: 0, votedFor: "" },
    firstIndex: 1,
    entries: [],
    snapshot: undefined,
  };
}

/** Entries and snapshot bytes are immutable once stored, so sharing them is safe. */
function cloneState(state: DiskState): DiskState {
  return {
    hardState: { ...state.hardState },
    firstIndex: state.firstIndex,
    entries: state.entries.slice(),
    snapshot: state.snapshot,
  };
}

function lastIndexOf(state: DiskState): number {
  return state.firstIndex + state.entries.length - 1;
}

function isIndex(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function checkHardState(hardState: HardState): HardState {
  if (!isIndex(hardState.term)) {
    throw new TypeError(`Invalid hard state: term ${hardState.term} is not a safe integer >= 0`);
  }
  if (typeof hardState.votedFor !== "string") {
    throw new TypeError("Invalid hard state: votedFor is not a string");
  }
  return { term: hardState.term, votedFor: hardState.votedFor };
}

function checkEntries(entries: LogEntry[]): LogEntry[] {
  const copies: LogEntry[] = [];
  for (const entry of entries) {
    if (!isIndex(entry.index) || entry.index < 1) {
      throw new TypeError(`Invalid entry: index ${entry.index} is not a safe integer >= 1`);
    }
    if (!isIndex(entry.term)) {
      throw new TypeError(`Invalid entry ${entry.index}: term ${entry.term} is not valid`);
    }
    if (typeof entry.commandName !== "string") {
      throw new TypeError(`Invalid entry ${entry.index}: commandName is not a string`);
    }
    if (!(entry.command instanceof Uint8Array)) {
      throw new TypeError(`Invalid entry ${entry.index}: command is not a Uint8Array`);
    }
    const previous = copies[copies.length - 1];
    if (previous !== undefined && entry.index !== previous.index + 1) {
      throw new RangeError(
        `Cannot save entry at index ${entry.index}: entries must be consecutive and it follows index ${previous.index}`,
      );
    }
    copies.push(Object.freeze(copyEntry(entry)));
  }
  return copies;
}

function checkMeta(meta: SnapshotMeta): SnapshotMeta {
  if (!isIndex(meta.lastIndex) || !isIndex(meta.lastTerm)) {
    throw new TypeError(
      `Invalid snapshot metadata: lastIndex ${meta.lastIndex} and lastTerm ${meta.lastTerm} must be safe integers >= 0`,
    );
  }
  if (!Array.isArray(meta.peers)) {
    throw new TypeError("Invalid snapshot metadata: peers is not an array");
  }
  for (const peer of meta.peers as unknown[]) {
    const candidate = peer as Partial<PeerInfo> | null;
    if (
      typeof candidate?.name !== "string" || typeof candidate.connectionString !== "string"
    ) {
      throw new TypeError("Invalid snapshot metadata: a peer lacks a name or connectionString");
    }
  }
  return copyMeta(meta);
}

function copyEntry(entry: LogEntry): LogEntry {
  return {
    index: entry.index,
    term: entry.term,
    commandName: entry.commandName,
    command: entry.command.slice(),
  };
}

function copyMeta(meta: SnapshotMeta): SnapshotMeta {
  return {
    lastIndex: meta.lastIndex,
    lastTerm: meta.lastTerm,
    peers: meta.peers.map((peer) => ({
      name: peer.name,
      connectionString: peer.connectionString,
    })),
  };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!(value instanceof Uint8Array)) {
        throw new TypeError("Invalid snapshot data: the stream yielded a non-Uint8Array chunk");
      }
      chunks.push(value.slice());
      length += value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      const end = Math.min(offset + SNAPSHOT_CHUNK_BYTES, bytes.byteLength);
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
    },
  });
}
