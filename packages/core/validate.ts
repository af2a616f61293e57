import { InvalidMessageError } from "./errors.ts";
import type {
  AppendEntriesRequest,
  LogEntry,
  PeerInfo,
  RequestVoteRequest,
  SnapshotRecoveryRequest,
  SnapshotRequest,
  TimeoutNowRequest,
} from "./types.ts";

// Requests reach handlers from transports and from users calling the handlers directly;
// the consensus core trusts its inputs, so every field is checked here once.

function fail(what: string, field: string, value: unknown): never {
  throw new InvalidMessageError(`${what}.${field} is invalid: ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === "object" && value !== null) return "object";
  return `${typeof value} ${String(value)}`;
}

function index(what: string, record: Record<string, unknown>, field: string): void {
  const value = record[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(what, field, value);
  }
}

function string(
  what: string,
  record: Record<string, unknown>,
  field: string,
  allowEmpty: boolean,
): void {
  const value = record[field];
  if (typeof value !== "string" || (!allowEmpty && value === "")) fail(what, field, value);
}

function boolean(what: string, record: Record<string, unknown>, field: string): void {
  if (typeof record[field] !== "boolean") fail(what, field, record[field]);
}

function object(what: string, value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null) {
    throw new InvalidMessageError(`${what} must be an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function peers(what: string, value: unknown): void {
  if (!Array.isArray(value)) fail(what, "peers", value);
  for (const peer of value as unknown[]) {
    const record = object(`${what}.peers[]`, peer);
    string(`${what}.peers[]`, record, "name", false);
    string(`${what}.peers[]`, record, "connectionString", true);
  }
}

/**
 * Checks an AppendEntries request's shape and that its entries follow `prevLogIndex`.
 * @throws InvalidMessageError naming the bad field
 */
export function validateAppendEntriesRequest(req: unknown): asserts req is AppendEntriesRequest {
  const what = "AppendEntriesRequest";
  const record = object(what, req);
  for (const field of ["term", "prevLogIndex", "prevLogTerm", "commitIndex", "heartbeatSeq"]) {
    index(what, record, field);
  }
  string(what, record, "leaderName", false);
  if (!Array.isArray(record.entries)) fail(what, "entries", record.entries);
  let expected = (record.prevLogIndex as number) + 1;
  for (const entry of record.entries as unknown[]) {
    const e = object(`${what}.entries[]`, entry);
    index(`${what}.entries[]`, e, "index");
    index(`${what}.entries[]`, e, "term");
    string(`${what}.entries[]`, e, "commandName", false);
    if (!(e.command instanceof Uint8Array)) fail(`${what}.entries[]`, "command", e.command);
    if (e.index !== expected) {
      throw new InvalidMessageError(
        `${what}.entries are not consecutive: expected index ${expected}, got ${e.index}`,
      );
    }
    if ((e as unknown as LogEntry).term > (record.term as number)) {
      throw new InvalidMessageError(
        `${what}.entries[] has term ${e.term} above the request's term ${record.term}`,
      );
    }
    expected++;
  }
}

/** @throws InvalidMessageError naming the bad field */
export function validateRequestVoteRequest(req: unknown): asserts req is RequestVoteRequest {
  const what = "RequestVoteRequest";
  const record = object(what, req);
  for (const field of ["term", "lastLogIndex", "lastLogTerm"]) index(what, record, field);
  string(what, record, "candidateName", false);
  boolean(what, record, "preVote");
  boolean(what, record, "transfer");
}

/** @throws InvalidMessageError naming the bad field */
export function validateSnapshotRequest(req: unknown): asserts req is SnapshotRequest {
  const what = "SnapshotRequest";
  const record = object(what, req);
  for (const field of ["term", "lastIndex", "lastTerm", "size"]) index(what, record, field);
  string(what, record, "leaderName", false);
}

/** @throws InvalidMessageError naming the bad field */
export function validateSnapshotRecoveryRequest(
  req: unknown,
): asserts req is SnapshotRecoveryRequest {
  const what = "SnapshotRecoveryRequest";
  const record = object(what, req);
  for (const field of ["term", "lastIndex", "lastTerm", "offset", "checksum"]) {
    index(what, record, field);
  }
  string(what, record, "leaderName", false);
  boolean(what, record, "done");
  if (!(record.data instanceof Uint8Array)) fail(what, "data", record.data);
  peers(what, record.peers);
}

/** @throws InvalidMessageError naming the bad field */
export function validateTimeoutNowRequest(req: unknown): asserts req is TimeoutNowRequest {
  const what = "TimeoutNowRequest";
  const record = object(what, req);
  index(what, record, "term");
  string(what, record, "leaderName", false);
}

/** @throws TypeError when a peer name or connection string is unusable */
export function validatePeer(peer: PeerInfo): void {
  if (typeof peer.name !== "string" || peer.name === "") {
    throw new TypeError("A peer needs a non-empty name");
  }
  if (typeof peer.connectionString !== "string") {
    throw new TypeError(`Peer ${peer.name} needs a connection string`);
  }
}
