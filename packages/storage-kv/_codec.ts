// Binary encodings of the values KvStorage keeps in Deno KV. Every value is a Uint8Array so
// that no runtime needs a V8 serializer (Bun's is incompatible) and the layout is ours to
// version. Numbers are float64: every term and index is a safe integer, stored exactly.
import { crc32c, type HardState, type LogEntry, type PeerInfo } from "@tsraft/core";
import { StorageCorruptionError } from "@tsraft/core";

/** Largest value Deno KV accepts (inclusive). */
export const MAX_VALUE_BYTES = 65_536;

const ENTRY_VERSION = 1;
/** version u8, reserved u8, nameLength u16, commandLength u32, index f64, term f64, crc u32 */
export const ENTRY_HEADER_BYTES = 28;
const HARD_VERSION = 1;
const META_VERSION = 1;
const SNAP_META_VERSION = 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Log bounds persisted in the `meta` key; entries outside them are garbage. */
export interface LogMeta {
  firstIndex: number;
  lastIndex: number;
}

/** What the `snapmeta` key holds: the snapshot's Raft metadata plus where its bytes are. */
export interface SnapshotRecord {
  id: string;
  lastIndex: number;
  lastTerm: number;
  peers: PeerInfo[];
  size: number;
  checksum: number;
  chunkCount: number;
}

/** The values one log entry is stored as: the head value, then continuation chunks 1..n. */
export interface EncodedEntry {
  head: Uint8Array;
  chunks: Uint8Array[];
}

/** Splits an entry into a head value (header, name, first command bytes) and chunks. */
export function encodeEntry(entry: LogEntry): EncodedEntry {
  const name = encoder.encode(entry.commandName);
  const command = entry.command;
  if (ENTRY_HEADER_BYTES + name.length > MAX_VALUE_BYTES) {
    throw new RangeError(
      `Cannot store entry ${entry.index}: command name is ${name.length} bytes long`,
    );
  }
  if (command.length > 0xffff_ffff) {
    throw new RangeError(`Cannot store entry ${entry.index}: command exceeds 4 GiB`);
  }
  const headRoom = MAX_VALUE_BYTES - ENTRY_HEADER_BYTES - name.length;
  const headCommandBytes = Math.min(headRoom, command.length);
  const head = new Uint8Array(ENTRY_HEADER_BYTES + name.length + headCommandBytes);
  const view = new DataView(head.buffer);
  view.setUint8(0, ENTRY_VERSION);
  view.setUint16(2, name.length, true);
  view.setUint32(4, command.length, true);
  view.setFloat64(8, entry.index, true);
  view.setFloat64(16, entry.term, true);
  head.set(name, ENTRY_HEADER_BYTES);
  head.set(command.subarray(0, headCommandBytes), ENTRY_HEADER_BYTES + name.length);
  let crc = crc32c(head.subarray(0, 24));
  crc = crc32c(name, crc);
  crc = crc32c(command, crc);
  view.setUint32(24, crc, true);
  const chunks: Uint8Array[] = [];
  for (let at = headCommandBytes; at < command.length; at += MAX_VALUE_BYTES) {
    chunks.push(command.subarray(at, Math.min(command.length, at + MAX_VALUE_BYTES)));
  }
  return { head, chunks };
}

/** What the head value of an entry says, before its continuation chunks are read. */
export interface EntryHead {
  index: number;
  term: number;
  commandName: string;
  commandLength: number;
  crc: number;
  /** Command bytes held in the head value. */
  headCommand: Uint8Array;
  /** How many continuation chunks follow. */
  chunkCount: number;
  /** CRC of the header and name, to be continued over the command. */
  partialCrc: number;
}

/** Parses the head value of the entry stored under `index`. */
export function decodeEntryHead(index: number, value: unknown): EntryHead {
  if (!(value instanceof Uint8Array) || value.length < ENTRY_HEADER_BYTES) {
    throw new StorageCorruptionError(`Log entry ${index} is not a valid entry value`);
  }
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (view.getUint8(0) !== ENTRY_VERSION) {
    throw new StorageCorruptionError(
      `Log entry ${index} has unknown format version ${view.getUint8(0)}`,
    );
  }
  const nameLength = view.getUint16(2, true);
  const commandLength = view.getUint32(4, true);
  const storedIndex = view.getFloat64(8, true);
  const term = view.getFloat64(16, true);
  const crc = view.getUint32(24, true);
  const nameEnd = ENTRY_HEADER_BYTES + nameLength;
  if (storedIndex !== index || !Number.isSafeInteger(term) || term < 0 || nameEnd > value.length) {
    throw new StorageCorruptionError(`Log entry ${index} has a malformed header`);
  }
  const headCommand = value.subarray(nameEnd);
  if (headCommand.length > commandLength) {
    throw new StorageCorruptionError(`Log entry ${index} is longer than its header says`);
  }
  let commandName: string;
  try {
    commandName = decoder.decode(value.subarray(ENTRY_HEADER_BYTES, nameEnd));
  } catch (cause) {
    throw new StorageCorruptionError(`Log entry ${index} has an invalid command name`, { cause });
  }
  const partialCrc = crc32c(
    value.subarray(ENTRY_HEADER_BYTES, nameEnd),
    crc32c(value.subarray(0, 24)),
  );
  return {
    index,
    term,
    commandName,
    commandLength,
    crc,
    headCommand,
    chunkCount: Math.ceil((commandLength - headCommand.length) / MAX_VALUE_BYTES),
    partialCrc,
  };
}

/** Joins a head with its continuation chunks and verifies the checksum. */
export function finishEntry(head: EntryHead, chunks: readonly Uint8Array[]): LogEntry {
  let command: Uint8Array;
  if (chunks.length === 0) {
    command = head.headCommand;
  } else {
    command = new Uint8Array(head.commandLength);
    command.set(head.headCommand);
    let at = head.headCommand.length;
    for (const chunk of chunks) {
      if (at + chunk.length > command.length) {
        throw new StorageCorruptionError(`Log entry ${head.index} has oversized chunks`);
      }
      command.set(chunk, at);
      at += chunk.length;
    }
    if (at !== command.length) {
      throw new StorageCorruptionError(`Log entry ${head.index} is missing command bytes`);
    }
  }
  if (command.length !== head.commandLength || crc32c(command, head.partialCrc) !== head.crc) {
    throw new StorageCorruptionError(`Log entry ${head.index} failed its checksum`);
  }
  return {
    index: head.index,
    term: head.term,
    commandName: head.commandName,
    // A plain copy: the head's bytes may be a Node Buffer (from @deno/kv), whose slice() is
    // a view, and the caller should not keep the whole head value alive.
    command: chunks.length === 0 ? new Uint8Array(command) : command,
  };
}

/** Encodes term and vote. */
export function encodeHardState(hardState: HardState): Uint8Array {
  const vote = encoder.encode(hardState.votedFor);
  const out = new Uint8Array(9 + vote.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, HARD_VERSION);
  view.setFloat64(1, hardState.term, true);
  out.set(vote, 9);
  return out;
}

/** Decodes term and vote; absent means a new store. */
export function decodeHardState(value: unknown): HardState {
  if (value === null || value === undefined) return { term: 0, votedFor: "" };
  if (!(value instanceof Uint8Array) || value.length < 9 || value[0] !== HARD_VERSION) {
    throw new StorageCorruptionError("Hard state value is malformed");
  }
  const term = new DataView(value.buffer, value.byteOffset, value.byteLength).getFloat64(1, true);
  if (!Number.isSafeInteger(term) || term < 0) {
    throw new StorageCorruptionError(`Hard state has an invalid term ${term}`);
  }
  try {
    return { term, votedFor: decoder.decode(value.subarray(9)) };
  } catch (cause) {
    throw new StorageCorruptionError("Hard state has an invalid vote", { cause });
  }
}

/** Encodes the log bounds. */
export function encodeLogMeta(meta: LogMeta): Uint8Array {
  const out = new Uint8Array(17);
  const view = new DataView(out.buffer);
  view.setUint8(0, META_VERSION);
  view.setFloat64(1, meta.firstIndex, true);
  view.setFloat64(9, meta.lastIndex, true);
  return out;
}

/** Size of an encoded {@link LogMeta}. */
export const LOG_META_BYTES = 17;

/** Decodes the log bounds; absent means an empty log starting at 1. */
export function decodeLogMeta(value: unknown): LogMeta {
  if (value === null || value === undefined) return { firstIndex: 1, lastIndex: 0 };
  if (!(value instanceof Uint8Array) || value.length !== 17 || value[0] !== META_VERSION) {
    throw new StorageCorruptionError("Log metadata value is malformed");
  }
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const firstIndex = view.getFloat64(1, true);
  const lastIndex = view.getFloat64(9, true);
  if (
    !Number.isSafeInteger(firstIndex) || !Number.isSafeInteger(lastIndex) || firstIndex < 1 ||
    lastIndex < firstIndex - 1
  ) {
    throw new StorageCorruptionError(
      `Log metadata is inconsistent: firstIndex ${firstIndex}, lastIndex ${lastIndex}`,
    );
  }
  return { firstIndex, lastIndex };
}

/** Encodes the snapshot record (JSON behind a version byte: it is small and rarely written). */
export function encodeSnapshotRecord(record: SnapshotRecord): Uint8Array {
  const json = encoder.encode(JSON.stringify(record));
  if (json.length + 1 > MAX_VALUE_BYTES) {
    throw new RangeError(`Snapshot metadata is ${json.length} bytes; at most 65535 fit`);
  }
  const out = new Uint8Array(json.length + 1);
  out[0] = SNAP_META_VERSION;
  out.set(json, 1);
  return out;
}

/** Decodes the snapshot record; absent means no snapshot. */
export function decodeSnapshotRecord(value: unknown): SnapshotRecord | undefined {
  if (value === null || value === undefined) return undefined;
  if (!(value instanceof Uint8Array) || value[0] !== SNAP_META_VERSION) {
    throw new StorageCorruptionError("Snapshot metadata value is malformed");
  }
  let record: unknown;
  try {
    record = JSON.parse(decoder.decode(value.subarray(1)));
  } catch (cause) {
    throw new StorageCorruptionError("Snapshot metadata is not valid JSON", { cause });
  }
  if (!isSnapshotRecord(record)) {
    throw new StorageCorruptionError("Snapshot metadata has missing or invalid fields");
  }
  return record;
}

function isSnapshotRecord(value: unknown): value is SnapshotRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<string, unknown>;
  return typeof r.id === "string" && isCount(r.lastIndex) && isCount(r.lastTerm) &&
    isCount(r.size) && isCount(r.chunkCount) && isCount(r.checksum) &&
    Array.isArray(r.peers) &&
    r.peers.every((p: unknown) =>
      typeof p === "object" && p !== null &&
      typeof (p as Record<string, unknown>).name === "string" &&
      typeof (p as Record<string, unknown>).connectionString === "string"
    );
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * Upper bound of the encoded size of a key, as Deno KV counts it against its per-operation
 * limits (tuple encoding: type tag, body with 0x00 escaped, terminator).
 */
export function keyBytes(key: readonly unknown[]): number {
  let size = 0;
  for (const part of key) {
    if (typeof part === "string") size += 2 + escapedLength(encoder.encode(part));
    else if (typeof part === "number") size += 9;
    else if (typeof part === "bigint") size += 3 + Math.ceil(part.toString(16).length / 2);
    else if (typeof part === "boolean") size += 1;
    else if (part instanceof Uint8Array) size += 2 + escapedLength(part);
    else throw new TypeError(`Invalid key part ${String(part)}`);
  }
  return size;
}

function escapedLength(bytes: Uint8Array): number {
  let zeros = 0;
  for (const byte of bytes) if (byte === 0) zeros++;
  return bytes.length + zeros;
}
