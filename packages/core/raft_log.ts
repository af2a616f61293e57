/**
 * The replicated log of one server as the consensus core sees it: the entries after the
 * snapshot point, which of them are durable, which are committed, and which still have to
 * be handed to storage (etcd-raft's `raftLog` + `unstable`).
 * @module
 */
import type { LogEntry, SnapshotMeta } from "./types.ts";

/** Thrown when a log invariant is broken: a bug in the core, never a user error. */
export class InvariantError extends Error {
  /** Creates an instance. @param message which invariant and the values involved */
  constructor(message: string) {
    super(`Invariant violated: ${message}`);
    this.name = "InvariantError";
  }
}

/**
 * Entries after the snapshot point, held in memory until compacted.
 *
 * Invariants, checked where they can break:
 * - snapshotIndex <= commitIndex <= lastIndex (a log past a snapshot installed from the
 *   leader may be shorter than the commit index only while that snapshot is the log's base)
 * - persistedIndex <= lastIndex
 * - no entry at or below commitIndex is ever truncated
 */
export class RaftLog {
  #snapshotIndex = 0;
  #snapshotTerm = 0;
  #entries: LogEntry[] = [];
  #commitIndex = 0;
  /** Last index known durable in storage. */
  #persistedIndex = 0;
  /** Lowest index changed since the last {@link takeUnstable}; Infinity when none. */
  #unstableFrom = Infinity;

  /** Index of the last entry (the snapshot index when no entry follows it). */
  get lastIndex(): number {
    return this.#snapshotIndex + this.#entries.length;
  }
  /** Term of the last entry. */
  get lastTerm(): number {
    const last = this.#entries[this.#entries.length - 1];
    return last !== undefined ? last.term : this.#snapshotTerm;
  }
  /** Index of the snapshot point. */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }
  /** Term at the snapshot point. */
  get snapshotTerm(): number {
    return this.#snapshotTerm;
  }
  /** Highest index known committed. */
  get commitIndex(): number {
    return this.#commitIndex;
  }
  /** Last index known durable. */
  get persistedIndex(): number {
    return this.#persistedIndex;
  }
  /** Whether entries changed since the last {@link takeUnstable}. */
  get hasUnstable(): boolean {
    return this.#unstableFrom <= this.lastIndex;
  }

  /**
   * Loads what storage recovered; everything recovered is durable, only the snapshot is
   * known committed.
   * @param snapshot the stored snapshot's point, if any
   * @param entries stored entries; those at or below the snapshot point are skipped
   * @throws RangeError when the entries after the snapshot point are not contiguous
   */
  restore(snapshot: Pick<SnapshotMeta, "lastIndex" | "lastTerm"> | undefined, entries: LogEntry[]) {
    this.#snapshotIndex = snapshot?.lastIndex ?? 0;
    this.#snapshotTerm = snapshot?.lastTerm ?? 0;
    this.#entries = entries.filter((entry) => entry.index > this.#snapshotIndex);
    for (let i = 0; i < this.#entries.length; i++) {
      if (this.#entries[i]!.index !== this.#snapshotIndex + 1 + i) {
        throw new RangeError(`Restored log is not contiguous at position ${i}`);
      }
    }
    this.#commitIndex = this.#snapshotIndex;
    this.#persistedIndex = this.lastIndex;
    this.#unstableFrom = Infinity;
  }

  /**
   * Term of the entry at `index`, or `undefined` when it is compacted away or past the end.
   * @param index log index
   * @returns its term
   */
  termAt(index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm;
    if (index < this.#snapshotIndex || index > this.lastIndex) return undefined;
    return this.#entries[index - this.#snapshotIndex - 1]!.term;
  }

  /**
   * Entries with `from <= index < to`.
   * @throws RangeError when the range is compacted or past the end
   */
  entriesBetween(from: number, to: number): LogEntry[] {
    if (from <= this.#snapshotIndex || to > this.lastIndex + 1 || from > to) {
      throw new RangeError(
        `Cannot read entries [${from}, ${to}): log holds (${this.#snapshotIndex}, ${this.lastIndex}]`,
      );
    }
    return this.#entries.slice(from - this.#snapshotIndex - 1, to - this.#snapshotIndex - 1);
  }

  /**
   * Consecutive entries from `from`, bounded by count and command bytes (never empty when
   * `from` exists: one entry always fits).
   */
  batchFrom(from: number, maxEntries: number, maxBytes: number): LogEntry[] {
    const batch: LogEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex; index++) {
      const entry = this.#entries[index - this.#snapshotIndex - 1]!;
      if (
        batch.length > 0 &&
        (batch.length >= maxEntries || bytes + entry.command.length > maxBytes)
      ) break;
      batch.push(entry);
      bytes += entry.command.length;
    }
    return batch;
  }

  /**
   * Appends entries that follow the last one.
   * @throws RangeError when the first entry does not follow the last one
   */
  append(entries: LogEntry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    if (first.index !== this.lastIndex + 1) {
      throw new RangeError(
        `Cannot append entry at index ${first.index}: log ends at index ${this.lastIndex}`,
      );
    }
    for (const entry of entries) this.#entries.push(entry);
    this.#unstableFrom = Math.min(this.#unstableFrom, first.index);
  }

  /**
   * Merges a leader's entries that follow a matching position (Raft §5.3): entries already
   * held with the same term are skipped, the first conflicting one and everything after it
   * is replaced.
   * @param entries consecutive entries, all after the snapshot point
   * @returns the index from which the log changed, or `undefined` when nothing changed
   */
  mergeFromLeader(entries: LogEntry[]): number | undefined {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const existing = this.termAt(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) this.truncateFrom(entry.index);
      this.append(entries.slice(i));
      return entry.index;
    }
    return undefined;
  }

  /**
   * Drops every entry from `index` on.
   * @throws InvariantError when that would drop a committed entry
   */
  truncateFrom(index: number): void {
    if (index <= this.#commitIndex) {
      throw new InvariantError(
        `truncating from ${index} would drop committed entries (commit index ${this.#commitIndex})`,
      );
    }
    if (index > this.lastIndex) return;
    this.#entries.length = index - this.#snapshotIndex - 1;
    this.#unstableFrom = Math.min(this.#unstableFrom, index);
    if (this.#persistedIndex >= index) this.#persistedIndex = index - 1;
  }

  /**
   * Raises the commit index.
   * @param index the new commit index; ignored unless higher
   * @throws InvariantError when it is past the last entry
   */
  commitTo(index: number): boolean {
    if (index <= this.#commitIndex) return false;
    if (index > this.lastIndex) {
      throw new InvariantError(`commit index ${index} is past the last entry ${this.lastIndex}`);
    }
    this.#commitIndex = index;
    return true;
  }

  /**
   * Notes that storage made everything up to `index` durable, as written in term `term`.
   * A completion for entries truncated and rewritten since is ignored.
   * @returns whether the persisted index moved
   */
  persisted(index: number, term: number): boolean {
    if (index !== 0 && this.termAt(index) !== term) return false;
    if (index <= this.#persistedIndex) return false;
    this.#persistedIndex = index;
    return true;
  }

  /**
   * The entries to hand to storage since the last call (they replace stored entries from
   * their first index on).
   * @returns the changed suffix, empty when nothing changed
   */
  takeUnstable(): LogEntry[] {
    const entries = this.hasUnstable
      ? this.entriesBetween(
        Math.max(this.#unstableFrom, this.#snapshotIndex + 1),
        this.lastIndex + 1,
      )
      : [];
    this.#unstableFrom = Infinity;
    return entries;
  }

  /**
   * Drops entries through `index` once a snapshot covering them is durable.
   * @throws RangeError when `index` is not committed
   */
  compact(index: number): void {
    if (index <= this.#snapshotIndex) return;
    if (index > this.#commitIndex) {
      throw new RangeError(
        `Cannot compact through ${index}: committed only to ${this.#commitIndex}`,
      );
    }
    const term = this.termAt(index)!;
    this.#entries = this.#entries.slice(index - this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
  }

  /**
   * Makes a leader's snapshot the log's base (Raft §7), keeping a suffix that matches it.
   * @returns false when the snapshot is not ahead of the commit index (nothing changes)
   */
  installSnapshot(lastIndex: number, lastTerm: number): boolean {
    if (lastIndex <= this.#commitIndex) return false;
    // A stored suffix that is not kept here may survive in storage until the leader
    // overwrites it; it cannot match any future leader's log (its predecessor's term
    // differs from the snapshot's), so it never passes a consistency check.
    const keepSuffix = this.termAt(lastIndex) === lastTerm;
    this.#entries = keepSuffix ? this.#entries.slice(lastIndex - this.#snapshotIndex) : [];
    this.#snapshotIndex = lastIndex;
    this.#snapshotTerm = lastTerm;
    this.#commitIndex = lastIndex;
    this.#persistedIndex = keepSuffix ? Math.max(this.#persistedIndex, lastIndex) : lastIndex;
    if (!keepSuffix) this.#unstableFrom = Infinity;
    else if (this.#unstableFrom <= lastIndex) this.#unstableFrom = lastIndex + 1;
    return true;
  }

  /**
   * The last index at or below `atOrBelow` whose term is `term`, for fast backtracking.
   * @returns the index, or `undefined` when the log holds no entry of that term there
   */
  lastIndexOfTerm(term: number, atOrBelow: number): number | undefined {
    for (let index = Math.min(atOrBelow, this.lastIndex); index > this.#snapshotIndex; index--) {
      const t = this.termAt(index)!;
      if (t === term) return index;
      if (t < term) return undefined;
    }
    return undefined;
  }

  /**
   * The first index of the run of entries with the same term that ends at `index`.
   */
  firstIndexOfTermAt(index: number): number {
    const term = this.termAt(index);
    let first = index;
    while (first - 1 > this.#snapshotIndex && this.termAt(first - 1) === term) first--;
    return first;
  }
}
