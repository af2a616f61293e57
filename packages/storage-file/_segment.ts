// One segment file of the log: its sparse in-memory index and the code that reads and scans
// its records from disk.
import type { FileHandle } from "node:fs/promises";
import { type LogEntry, StorageCorruptionError } from "@tsraft/core";
import {
  checkRecordCrc,
  decodeEntry,
  parseHeader,
  RECORD_HEADER_BYTES,
  RECORD_MAGIC,
  type RecordInfo,
} from "./_format.ts";
import { readAt } from "./_fs.ts";

/** Segment files are named by their first index, zero-padded so names sort like numbers. */
export const SEGMENT_NAME = /^(\d{20})\.seg$/;
/** A checkpoint is kept at most every this many bytes: memory stays ~0.1% of the log. */
const CHECKPOINT_STRIDE_BYTES = 16 * 1024;
/** How much is read at once when walking records. */
const READ_CHUNK_BYTES = 64 * 1024;

/** File name of the segment whose first entry is `firstIndex`. */
export function segmentName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, "0")}.seg`;
}

/**
 * What is kept in memory for one segment: its index range, size and a sparse table of
 * (index, offset) checkpoints, one per {@link CHECKPOINT_STRIDE_BYTES} at most.
 */
export class Segment {
  /** Index the segment was created for (its name); its first record holds this index. */
  readonly firstIndex: number;
  /** Absolute path of the file. */
  readonly path: string;
  /** Path relative to the store's directory, for error messages. */
  readonly label: string;
  /** Index of the last record, `firstIndex - 1` when empty. */
  lastIndex: number;
  /** Bytes of valid records; the next write goes here. */
  size = 0;
  #cpIndex: number[] = [];
  #cpOffset: number[] = [];

  constructor(firstIndex: number, path: string, label: string) {
    this.firstIndex = firstIndex;
    this.lastIndex = firstIndex - 1;
    this.path = path;
    this.label = label;
  }

  /** How many checkpoints are held: the segment's whole memory cost besides a few fields. */
  get checkpointCount(): number {
    return this.#cpIndex.length;
  }

  /** Notes that the record for `index` starts at `offset` (records arrive in order). */
  noteRecord(index: number, offset: number): void {
    const last = this.#cpOffset.length - 1;
    if (last < 0 || offset - this.#cpOffset[last]! >= CHECKPOINT_STRIDE_BYTES) {
      this.#cpIndex.push(index);
      this.#cpOffset.push(offset);
    }
  }

  /** The nearest checkpoint at or before `index` (which must be in the segment). */
  locate(index: number): { index: number; offset: number } {
    let lo = 0;
    let hi = this.#cpIndex.length - 1;
    if (hi < 0 || this.#cpIndex[0]! > index) return { index: this.firstIndex, offset: 0 };
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#cpIndex[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return { index: this.#cpIndex[lo]!, offset: this.#cpOffset[lo]! };
  }

  /** Forgets records from `index` on, which started at byte `offset`. */
  cut(index: number, offset: number): void {
    while (this.#cpIndex.length > 0 && this.#cpIndex[this.#cpIndex.length - 1]! >= index) {
      this.#cpIndex.pop();
      this.#cpOffset.pop();
    }
    this.lastIndex = index - 1;
    this.size = offset;
  }

  /** Builds a corruption error naming this file and an offset. */
  corruption(offset: number, what: string): StorageCorruptionError {
    return new StorageCorruptionError(
      `Corrupt log segment ${this.label} at offset ${offset}: ${what}`,
    );
  }
}

/** A window over a file, so walking small records does not issue one read per record. */
export class FileWindow {
  readonly handle: FileHandle;
  readonly size: number;
  #buf: Uint8Array = new Uint8Array(0);
  #start = 0;

  constructor(handle: FileHandle, size: number) {
    this.handle = handle;
    this.size = size;
  }

  /** `[offset, offset + length)` of the file, or `undefined` if it extends past the end. */
  async bytes(offset: number, length: number): Promise<Uint8Array | undefined> {
    if (offset + length > this.size) return undefined;
    const rel = offset - this.#start;
    if (rel < 0 || rel + length > this.#buf.length) {
      const want = Math.min(Math.max(length, READ_CHUNK_BYTES), this.size - offset);
      this.#buf = await readAt(this.handle, offset, want);
      this.#start = offset;
      if (this.#buf.length < length) return undefined;
      return this.#buf.subarray(0, length);
    }
    return this.#buf.subarray(rel, rel + length);
  }
}

/** A record read from a file: its header, and its bytes (header included). */
export interface ReadRecord {
  info: RecordInfo;
  bytes: Uint8Array;
}

/**
 * Reads and checks the record at `offset`.
 * @returns the record, or why there is no valid record there
 */
export async function readRecord(window: FileWindow, offset: number): Promise<ReadRecord | string> {
  const head = await window.bytes(offset, RECORD_HEADER_BYTES);
  if (head === undefined) return "truncated record header";
  const info = parseHeader(head, 0);
  if (typeof info === "string") return info;
  if (info.batchStart > offset) return "bad header";
  const bytes = await window.bytes(offset, info.size);
  if (bytes === undefined) return "truncated record";
  if (!checkRecordCrc(bytes, 0, info)) return "checksum mismatch";
  return { info, bytes };
}

/** Result of scanning a segment at open. */
export interface ScanResult {
  /** Offset where valid records end. */
  validEnd: number;
  /** Why the records stop before the end of the file, if they do (a torn tail). */
  tornReason?: string;
}

/**
 * Scans every record of a segment, filling its checkpoints, last index and size.
 *
 * In a segment other than the last, any invalid byte is corruption: a segment is only
 * followed by another once its last write was durable. In the last segment an invalid record
 * is a torn tail — the unfinished last write — unless a valid record from a LATER write
 * exists after it. Each record stores where its write (one `save`) began, so records of the
 * same torn write that happen to have survived after the damage are told apart from records
 * that could only have been written after the damaged one was acknowledged.
 * @throws StorageCorruptionError naming the file and offset of mid-log damage
 */
export async function scanSegment(
  segment: Segment,
  handle: FileHandle,
  fileSize: number,
  isLast: boolean,
): Promise<ScanResult> {
  const window = new FileWindow(handle, fileSize);
  let offset = 0;
  let expected = segment.firstIndex;
  while (offset < fileSize) {
    const record = await readRecord(window, offset);
    if (typeof record === "string") {
      if (!isLast) throw segment.corruption(offset, `${record} in a segment that is not the last`);
      const later = await findLaterWrite(window, offset);
      if (later !== undefined) {
        throw segment.corruption(
          offset,
          `${record}, followed by a valid record at offset ${later} written after it ` +
            "(this is damage inside the log, not a torn tail)",
        );
      }
      segment.size = offset;
      return { validEnd: offset, tornReason: record };
    }
    if (record.info.index !== expected) {
      throw segment.corruption(
        offset,
        `expected entry ${expected}, found entry ${record.info.index} (a gap in the log)`,
      );
    }
    segment.noteRecord(expected, offset);
    segment.lastIndex = expected;
    expected++;
    offset += record.info.size;
  }
  segment.size = offset;
  return { validEnd: offset };
}

/**
 * Looks for a valid record after `damagedAt` that belongs to a write which began after
 * `damagedAt` (proof that the damaged record had been acknowledged).
 * @returns its offset, or `undefined` if there is none
 */
async function findLaterWrite(window: FileWindow, damagedAt: number): Promise<number | undefined> {
  const first = RECORD_MAGIC & 0xff;
  let p = damagedAt + 1;
  while (p + RECORD_HEADER_BYTES <= window.size) {
    const chunk = await window.bytes(p, Math.min(READ_CHUNK_BYTES, window.size - p));
    if (chunk === undefined) break;
    let hit = -1;
    for (let i = 0; i + 4 <= chunk.length; i++) {
      if (
        chunk[i] === first && chunk[i + 1] === ((RECORD_MAGIC >>> 8) & 0xff) &&
        chunk[i + 2] === ((RECORD_MAGIC >>> 16) & 0xff) && chunk[i + 3] === RECORD_MAGIC >>> 24
      ) {
        hit = i;
        break;
      }
    }
    if (hit < 0) {
      // Keep 3 bytes of overlap so a magic split across chunks is still found.
      p += Math.max(1, chunk.length - 3);
      continue;
    }
    const at = p + hit;
    const record = await readRecord(window, at);
    if (typeof record === "string") {
      p = at + 1;
      continue;
    }
    if (record.info.batchStart > damagedAt) return at;
    p = at + record.info.size;
  }
  return undefined;
}

/**
 * Appends entries `from <= index < to` of a segment (the range must be within it) to `out`.
 * @returns the offset after the last record read
 */
export async function readEntries(
  segment: Segment,
  handle: FileHandle,
  from: number,
  to: number,
  out: LogEntry[],
): Promise<number> {
  const window = new FileWindow(handle, segment.size);
  let { index, offset } = segment.locate(from);
  while (index < to) {
    const record = await readRecord(window, offset);
    if (typeof record === "string") throw segment.corruption(offset, record);
    if (record.info.index !== index) {
      throw segment.corruption(offset, `expected entry ${index}, found ${record.info.index}`);
    }
    if (index >= from) out.push(decodeEntry(record.bytes, 0, record.info));
    offset += record.info.size;
    index++;
  }
  return offset;
}

/** Offset at which the record for `index` starts (it must be in the segment). */
export async function offsetOf(
  segment: Segment,
  handle: FileHandle,
  index: number,
): Promise<number> {
  if (index > segment.lastIndex) return segment.size;
  const window = new FileWindow(handle, segment.size);
  let { index: at, offset } = segment.locate(index);
  while (at < index) {
    const record = await readRecord(window, offset);
    if (typeof record === "string") throw segment.corruption(offset, record);
    offset += record.info.size;
    at++;
  }
  return offset;
}
