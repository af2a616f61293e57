// On-disk encodings of FileStorage: log records, the meta file and the snapshot header.
// All integers are little-endian. Indexes and terms are 64-bit (two u32 halves) but must be
// safe integers, so the high half never exceeds 2^21 - 1.
import { crc32c, type HardState, type LogEntry, type SnapshotMeta } from "@tsraft/core";

/** "TRL1": marks the start of a log record; also what the torn-tail scan looks for. */
export const RECORD_MAGIC = 0x314c5254;
/** Fixed header in front of every record's body. */
export const RECORD_HEADER_BYTES = 40;
/** "TRM1": the meta file (hard state and logical first index). */
const META_MAGIC = 0x314d5254;
const META_HEADER_BYTES = 12;
/** "TRSNAP01" */
const SNAPSHOT_MAGIC = new TextEncoder().encode("TRSNAP01");
/** Fixed part of a snapshot file's header; the meta JSON follows, then the state bytes. */
export const SNAPSHOT_HEADER_BYTES = 32;
/** Upper bound on JSON headers, so a corrupt length cannot make us allocate gigabytes. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const TWO_32 = 2 ** 32;

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_32), true);
}

function getU64(view: DataView, at: number): number {
  // Above 2^21 in the high half the value is not a safe integer: report it as invalid.
  const high = view.getUint32(at + 4, true);
  if (high >= 2 ** 21) return -1;
  return high * TWO_32 + view.getUint32(at, true);
}

/** A record header that passed its checks; `body` is still undecoded. */
export interface RecordInfo {
  index: number;
  term: number;
  /** Offset of the first record of the write (one `save`) this record belongs to. */
  batchStart: number;
  /** Total bytes of the record, header included. */
  size: number;
  nameLength: number;
  bodyLength: number;
}

/**
 * Encodes entries as consecutive records in one buffer, for one write.
 * @param entries entries with consecutive indexes
 * @param batchStart file offset at which the buffer will be written
 * @returns the bytes and the offset of each record within them
 */
export function encodeRecords(
  entries: readonly LogEntry[],
  batchStart: number,
): { bytes: Uint8Array; offsets: number[] } {
  const offsets: number[] = [];
  const names = entries.map((e) => encoder.encode(e.commandName));
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    total += RECORD_HEADER_BYTES + names[i]!.length + entries[i]!.command.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const name = names[i]!;
    const bodyLength = name.length + entry.command.length;
    offsets.push(at);
    view.setUint32(at, RECORD_MAGIC, true);
    view.setUint32(at + 4, bodyLength, true);
    view.setUint32(at + 8, name.length, true);
    view.setUint32(at + 12, batchStart, true);
    setU64(view, at + 16, entry.index);
    setU64(view, at + 24, entry.term);
    view.setUint32(at + 32, 0, true);
    out.set(name, at + RECORD_HEADER_BYTES);
    out.set(entry.command, at + RECORD_HEADER_BYTES + name.length);
    const headCrc = crc32c(out.subarray(at, at + 36));
    const end = at + RECORD_HEADER_BYTES + bodyLength;
    view.setUint32(at + 36, crc32c(out.subarray(at + RECORD_HEADER_BYTES, end), headCrc), true);
    at = end;
  }
  return { bytes: out, offsets };
}

/**
 * Checks the header of a record whose first `available` bytes are `bytes[at..]`.
 * @returns the header fields, `"short"` when more bytes are needed to decide (the caller
 * knows whether they exist), or a reason why this is not a valid record
 */
export function parseHeader(
  bytes: Uint8Array,
  at: number,
): RecordInfo | string {
  if (bytes.length - at < RECORD_HEADER_BYTES) return "short";
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER_BYTES);
  if (view.getUint32(0, true) !== RECORD_MAGIC) return "bad magic";
  const bodyLength = view.getUint32(4, true);
  const nameLength = view.getUint32(8, true);
  const batchStart = view.getUint32(12, true);
  const index = getU64(view, 16);
  const term = getU64(view, 24);
  if (nameLength > bodyLength || index < 1 || term < 0 || view.getUint32(32, true) !== 0) {
    return "bad header";
  }
  return {
    index,
    term,
    batchStart,
    size: RECORD_HEADER_BYTES + bodyLength,
    nameLength,
    bodyLength,
  };
}

/** Whether the CRC stored in the record at `bytes[at..at + info.size)` matches its content. */
export function checkRecordCrc(bytes: Uint8Array, at: number, info: RecordInfo): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, RECORD_HEADER_BYTES);
  const headCrc = crc32c(bytes.subarray(at, at + 36));
  const crc = crc32c(bytes.subarray(at + RECORD_HEADER_BYTES, at + info.size), headCrc);
  return crc === view.getUint32(36, true);
}

/** Decodes a checked record into an entry (copying the command bytes out of `bytes`). */
export function decodeEntry(bytes: Uint8Array, at: number, info: RecordInfo): LogEntry {
  const nameStart = at + RECORD_HEADER_BYTES;
  const commandStart = nameStart + info.nameLength;
  return {
    index: info.index,
    term: info.term,
    commandName: decoder.decode(bytes.subarray(nameStart, commandStart)),
    command: bytes.slice(commandStart, at + info.size),
  };
}

/** Contents of the meta file. */
export interface Meta {
  hardState: HardState;
  /** Logical first index of the log (entries below it were compacted away). */
  firstIndex: number;
}

/** Encodes the meta file: magic, JSON length, CRC of the JSON, JSON. */
export function encodeMeta(meta: Meta): Uint8Array {
  const json = encoder.encode(JSON.stringify({
    term: meta.hardState.term,
    votedFor: meta.hardState.votedFor,
    firstIndex: meta.firstIndex,
  }));
  const out = new Uint8Array(META_HEADER_BYTES + json.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, META_MAGIC, true);
  view.setUint32(4, json.length, true);
  view.setUint32(8, crc32c(json), true);
  out.set(json, META_HEADER_BYTES);
  return out;
}

/** Decodes the meta file. @returns the meta, or a reason why it is invalid */
export function decodeMeta(bytes: Uint8Array): Meta | string {
  if (bytes.length < META_HEADER_BYTES) return "file too short";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (view.getUint32(0, true) !== META_MAGIC) return "bad magic";
  const length = view.getUint32(4, true);
  if (bytes.length !== META_HEADER_BYTES + length) return "length mismatch";
  const json = bytes.subarray(META_HEADER_BYTES);
  if (crc32c(json) !== view.getUint32(8, true)) return "checksum mismatch";
  try {
    const value = JSON.parse(decoder.decode(json)) as Record<string, unknown>;
    const { term, votedFor, firstIndex } = value;
    if (
      !isIndex(term, 0) || typeof votedFor !== "string" || !isIndex(firstIndex, 1)
    ) {
      return "invalid fields";
    }
    return { hardState: { term, votedFor }, firstIndex };
  } catch {
    return "invalid JSON";
  }
}

function isIndex(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min;
}

/** Fields of a snapshot file's header. */
export interface SnapshotHeader {
  meta: SnapshotMeta;
  /** Offset of the first state byte. */
  dataOffset: number;
  dataLength: number;
  dataCrc: number;
}

/** Encodes the snapshot meta JSON (placed after the fixed header). */
export function encodeSnapshotMeta(meta: SnapshotMeta): Uint8Array {
  return encoder.encode(JSON.stringify({
    lastIndex: meta.lastIndex,
    lastTerm: meta.lastTerm,
    peers: meta.peers.map((p) => ({ name: p.name, connectionString: p.connectionString })),
  }));
}

/**
 * Encodes the fixed snapshot header, written last (at offset 0) once the state's length and
 * CRC are known.
 */
export function encodeSnapshotHeader(
  metaJson: Uint8Array,
  dataLength: number,
  dataCrc: number,
): Uint8Array {
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(SNAPSHOT_MAGIC, 0);
  view.setUint32(8, metaJson.length, true);
  view.setUint32(12, 0, true);
  setU64(view, 16, dataLength);
  view.setUint32(24, dataCrc, true);
  view.setUint32(28, crc32c(metaJson, crc32c(out.subarray(0, 28))), true);
  return out;
}

/** Length of the meta JSON announced by a fixed header, or a reason it is invalid. */
export function snapshotMetaLength(fixed: Uint8Array): number | string {
  if (fixed.length < SNAPSHOT_HEADER_BYTES) return "file too short";
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) {
    if (fixed[i] !== SNAPSHOT_MAGIC[i]) return "bad magic";
  }
  const view = new DataView(fixed.buffer, fixed.byteOffset, SNAPSHOT_HEADER_BYTES);
  const length = view.getUint32(8, true);
  if (length > MAX_JSON_BYTES) return "meta too long";
  return length;
}

/** Decodes and checks a snapshot header (fixed part plus meta JSON). */
export function decodeSnapshotHeader(
  fixed: Uint8Array,
  metaJson: Uint8Array,
): SnapshotHeader | string {
  const view = new DataView(fixed.buffer, fixed.byteOffset, SNAPSHOT_HEADER_BYTES);
  if (crc32c(metaJson, crc32c(fixed.subarray(0, 28))) !== view.getUint32(28, true)) {
    return "header checksum mismatch";
  }
  const dataLength = getU64(view, 16);
  if (dataLength < 0) return "bad data length";
  try {
    const value = JSON.parse(decoder.decode(metaJson)) as Record<string, unknown>;
    const { lastIndex, lastTerm, peers } = value;
    if (!isIndex(lastIndex, 0) || !isIndex(lastTerm, 0) || !Array.isArray(peers)) {
      return "invalid meta fields";
    }
    const parsedPeers = [];
    for (const p of peers as unknown[]) {
      const peer = p as Record<string, unknown>;
      if (typeof peer?.name !== "string" || typeof peer.connectionString !== "string") {
        return "invalid peer";
      }
      parsedPeers.push({ name: peer.name, connectionString: peer.connectionString });
    }
    return {
      meta: { lastIndex, lastTerm, peers: parsedPeers },
      dataOffset: SNAPSHOT_HEADER_BYTES + metaJson.length,
      dataLength,
      dataCrc: view.getUint32(24, true),
    };
  } catch {
    return "invalid meta JSON";
  }
}
