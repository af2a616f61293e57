import { DEFAULT_ELECTION_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL } from "./constants.ts";
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

/** The options {@link validateServerOptions} reads (ServerOptions, without importing it). */
interface CheckedServerOptions {
  name?: unknown;
  transporter?: unknown;
  storage?: unknown;
  peers?: PeerInfo[];
  electionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  leaseClockDrift?: number;
  maxInflightMessages?: number;
  maxInflightBytes?: number;
  maxEntriesPerMessage?: number;
  maxBytesPerMessage?: number;
  snapshotThreshold?: number;
  snapshotThresholdBytes?: number;
  trailingLogEntries?: number;
  snapshotChunkBytes?: number;
  maxMessageDelayMs?: number;
}

/**
 * Checks a server's options; the error names the option.
 * @throws TypeError for a missing or mistyped option, RangeError for one out of range
 */
export function validateServerOptions(options: CheckedServerOptions): void {
  if (typeof options.name !== "string" || options.name === "") {
    throw new TypeError("ServerOptions.name must be a non-empty string");
  }
  if (!options.transporter) throw new TypeError("ServerOptions.transporter is required");
  if (!options.storage) throw new TypeError("ServerOptions.storage is required");
  const seen = new Set<string>();
  for (const peer of options.peers ?? []) {
    validatePeer(peer);
    if (seen.has(peer.name)) {
      throw new RangeError(`ServerOptions.peers names ${peer.name} twice`);
    }
    seen.add(peer.name);
  }
  const number = (
    field: keyof CheckedServerOptions,
    check: (value: number) => boolean,
    rule: string,
  ): void => {
    const value = options[field];
    if (value === undefined) return;
    if (typeof value !== "number" || !check(value)) {
      throw new RangeError(`ServerOptions.${field} must be ${rule}, got ${String(value)}`);
    }
  };
  const positive = (value: number) => Number.isFinite(value) && value > 0;
  const positiveInteger = (value: number) => Number.isSafeInteger(value) && value > 0;
  const nonNegativeInteger = (value: number) => Number.isSafeInteger(value) && value >= 0;
  number("electionTimeoutMs", positive, "a positive number of ms");
  number("heartbeatIntervalMs", positive, "a positive number of ms");
  number("maxMessageDelayMs", positive, "a positive number of ms");
  number("leaseClockDrift", (v) => v >= 0 && v < 1, "in [0, 1)");
  number("maxInflightMessages", positiveInteger, "a positive integer");
  number("maxInflightBytes", positiveInteger, "a positive integer");
  number("maxEntriesPerMessage", positiveInteger, "a positive integer");
  number("maxBytesPerMessage", positiveInteger, "a positive integer");
  number("snapshotChunkBytes", positiveInteger, "a positive integer");
  number("snapshotThreshold", nonNegativeInteger, "a non-negative integer (0 disables)");
  number("snapshotThresholdBytes", nonNegativeInteger, "a non-negative integer (0 disables)");
  number("trailingLogEntries", nonNegativeInteger, "a non-negative integer");
  const election = options.electionTimeoutMs ?? DEFAULT_ELECTION_TIMEOUT;
  const heartbeat = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL;
  if (!(election > 2 * heartbeat)) {
    // Followers must hear at least two heartbeats per election timeout, or one late
    // heartbeat starts an election against a healthy leader.
    throw new RangeError(
      `ServerOptions.electionTimeoutMs (${election}) must exceed twice heartbeatIntervalMs (${heartbeat})`,
    );
  }
}
