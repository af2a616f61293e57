import {
  type Clock,
  type LogEntry,
  RaftError,
  type Random,
  type SaveBatch,
  type SnapshotMeta,
  type Storage,
  type StorageState,
  type StoredSnapshot,
} from "@tsraft/core";
import { type CrashOptions, type MemoryDisk, MemoryStorage } from "@tsraft/core/testing";

/** An I/O error injected by a {@link SimStorage} (a failed write or fsync). */
export class SimStorageError extends RaftError {
  /**
   * Creates an instance.
   * @param message what failed
   */
  constructor(message: string) {
    super("SIM_STORAGE_ERROR", message);
    this.name = "SimStorageError";
  }
}

/** The faults of a {@link SimStorage}; the simulator may change them during a run. */
export interface DiskFaults {
  /** Chance that a write fails at once (EIO): nothing is written. @default 0 */
  writeErrorRate: number;
  /**
   * Chance that a write's fsync fails: the process cannot know what reached the disk, so,
   * as after fsyncgate, the disk loses everything not yet durable and the write rejects.
   * @default 0
   */
  fsyncErrorRate: number;
}

/** Options of a {@link SimStorage}. */
export interface SimStorageOptions {
  /** Where the data lives; it outlives the storage (restarts, crashes). */
  disk: MemoryDisk;
  /** Simulated time: each write becomes durable after a drawn fsync latency. */
  clock: Clock;
  /** Draws latencies and faults. */
  random: Random;
  /** Shortest fsync in ms. @default 1 */
  fsyncMinMs?: number;
  /** Longest fsync in ms. @default 5 */
  fsyncMaxMs?: number;
  /** Injected errors. @default none */
  faults?: Partial<DiskFaults>;
  /**
   * A broken disk that acknowledges a write before it is durable (write-back cache with no
   * flush): `save` resolves at once, and a crash still loses the write. For showing that the
   * checkers catch a storage that lies.
   * @default false
   */
  ackBeforeDurable?: boolean;
  /** Called with a short description of each injected fault. */
  onFault?: (what: string) => void;
}

/**
 * A faulty {@link Storage} for the simulator: a {@link MemoryStorage} over a held
 * {@link MemoryDisk} whose writes become durable (and resolve) only after a simulated fsync
 * latency, one after another; writes can fail (EIO) or fail their fsync. A crash is
 * `disk.crash(...)`: unsynced writes are lost or torn.
 *
 * @example
 * ```ts
 * import { MemoryDisk, SeededRandom } from "@tsraft/core/testing";
 * import { SimClock, SimStorage } from "@tsraft/sim";
 * const clock = new SimClock();
 * const disk = new MemoryDisk();
 * const storage = new SimStorage({ disk, clock, random: new SeededRandom(1) });
 * await storage.open();
 * let durable = false;
 * storage.save({ hardState: { term: 1, votedFor: "" } }).then(() => durable = true);
 * await clock.runFor(10);
 * if (!durable || disk.durable().hardState.term !== 1) throw new Error("not durable");
 * ```
 */
export class SimStorage implements Storage {
  readonly #disk: MemoryDisk;
  readonly #inner: MemoryStorage;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #fsyncMinMs: number;
  readonly #fsyncMaxMs: number;
  readonly #ackBeforeDurable: boolean;
  readonly #onFault: ((what: string) => void) | undefined;
  /** The faults in force. */
  faults: DiskFaults;

  /** Creates an instance. @param options see {@link SimStorageOptions} */
  constructor(options: SimStorageOptions) {
    this.#disk = options.disk;
    this.#disk.holdWrites();
    this.#inner = new MemoryStorage(options.disk);
    this.#clock = options.clock;
    this.#random = options.random;
    this.#fsyncMinMs = options.fsyncMinMs ?? 1;
    this.#fsyncMaxMs = Math.max(this.#fsyncMinMs, options.fsyncMaxMs ?? 5);
    this.#ackBeforeDurable = options.ackBeforeDurable ?? false;
    this.#onFault = options.onFault;
    this.faults = { writeErrorRate: 0, fsyncErrorRate: 0, ...options.faults };
  }

  /** The disk under this storage. */
  get disk(): MemoryDisk {
    return this.#disk;
  }

  /** Opens the store on its disk. @returns the recovered state */
  open(): Promise<StorageState> {
    return this.#inner.open();
  }

  /** Writes a batch; resolves once its fsync completes. */
  save(batch: SaveBatch): Promise<void> {
    return this.#write("save", () => this.#inner.save(batch));
  }

  /** Reads entries. @returns copies of the entries in `[from, to)` */
  entries(from: number, to: number): Promise<LogEntry[]> {
    return this.#inner.entries(from, to);
  }

  /** Stores a snapshot; resolves once its fsync completes. */
  async saveSnapshot(
    meta: SnapshotMeta,
    data: Uint8Array | ReadableStream<Uint8Array>,
  ): Promise<void> {
    // Read a stream first so that the write itself starts synchronously below.
    const bytes = data instanceof Uint8Array ? data : await new Response(data).bytes();
    return this.#write("saveSnapshot", () => this.#inner.saveSnapshot(meta, bytes));
  }

  /** The stored snapshot. @returns it, or undefined */
  loadSnapshot(): Promise<StoredSnapshot | undefined> {
    return this.#inner.loadSnapshot();
  }

  /** Compacts the log; resolves once durable. */
  compact(throughIndex: number): Promise<void> {
    return this.#write("compact", () => this.#inner.compact(throughIndex));
  }

  /** Detaches from the disk. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  #write(what: string, operation: () => Promise<void>): Promise<void> {
    if (this.#chance(this.faults.writeErrorRate)) {
      this.#onFault?.(`${what} failed (EIO)`);
      return Promise.reject(new SimStorageError(`Injected write error in ${what}`));
    }
    const before = this.#disk.pendingWrites;
    const written = operation();
    if (this.#disk.pendingWrites > before) this.#scheduleFsync(what);
    if (this.#ackBeforeDurable) {
      written.catch(() => {});
      return Promise.resolve();
    }
    return written;
  }

  /** fsyncs complete one after another, in write order. */
  #scheduleFsync(what: string): void {
    const latency = this.#fsyncMinMs +
      Math.floor(this.#random.next() * (this.#fsyncMaxMs - this.#fsyncMinMs + 1));
    const failing = this.#chance(this.faults.fsyncErrorRate);
    const queue = fsyncQueueOf(this.#disk);
    const due = Math.max(this.#clock.now() + latency, queue.lastDueMs);
    queue.lastDueMs = due;
    const epoch = queue.epoch;
    this.#clock.setTimeout(() => {
      if (queue.epoch !== epoch || this.#disk.pendingWrites === 0) return; // lost in a crash
      if (failing) {
        this.#onFault?.(`fsync of ${what} failed: unsynced writes lost`);
        crashDisk(this.#disk);
        return;
      }
      this.#disk.flushWrites(1);
    }, due - this.#clock.now());
  }

  #chance(p: number): boolean {
    return p > 0 && this.#random.next() < p;
  }
}

/** Per disk: when its latest fsync completes, and how many crashes it went through. */
interface FsyncQueue {
  lastDueMs: number;
  epoch: number;
}

const fsyncQueues = new WeakMap<MemoryDisk, FsyncQueue>();

function fsyncQueueOf(disk: MemoryDisk): FsyncQueue {
  let queue = fsyncQueues.get(disk);
  if (queue === undefined) fsyncQueues.set(disk, queue = { lastDueMs: 0, epoch: 0 });
  return queue;
}

/**
 * Power loss on a disk used by {@link SimStorage}s: the first `keepWrites` unsynced writes
 * survive, the next may be torn, the rest are lost; fsyncs scheduled before are called off.
 * @param disk the disk
 * @param options see `MemoryDisk.crash`
 */
export function crashDisk(disk: MemoryDisk, options: CrashOptions = {}): void {
  const queue = fsyncQueueOf(disk);
  queue.epoch++;
  queue.lastDueMs = 0;
  disk.crash(options);
}
