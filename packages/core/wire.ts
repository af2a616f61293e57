/**
 * The one wire codec every network transport uses: each RPC message is a protobuf message
 * of a schema defined here in code (no `.proto` file, so it loads on every runtime without
 * a file system). The message kind is not part of the payload; transports carry it in their
 * own framing (a URL path, a frame header).
 *
 * {@link RPCS} is the one table of the five RPCs that every transport (TCP, HTTP, memory)
 * dispatches through: request and response kinds, the {@link RaftHandler} method that
 * serves the request, its timeout class and its HTTP path. The defaults transports share
 * (timeouts, reconnect backoff, in-flight bound) are the `DEFAULT_*` constants below.
 *
 * Decoding is hostile-input safe: it throws nothing but {@link WireError}, and what it
 * returns is a plain object whose every field has been checked (types, safe integers,
 * bounded strings) with byte arrays copied out of the input buffer.
 * @module
 */
import protobuf from "protobufjs/light.js";
import { WireError } from "./errors.ts";
import type { RaftHandler } from "./transporter.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "./types.ts";

/** Names of the messages the wire codec knows, one per RPC request and response. */
export type MessageKind =
  | "appendEntriesRequest"
  | "appendEntriesResponse"
  | "requestVoteRequest"
  | "requestVoteResponse"
  | "snapshotRequest"
  | "snapshotResponse"
  | "snapshotRecoveryRequest"
  | "snapshotRecoveryResponse"
  | "timeoutNowRequest"
  | "timeoutNowResponse";

/** Maps each {@link MessageKind} to the message type it encodes. */
export interface MessageMap {
  /** AppendEntries request. */
  appendEntriesRequest: AppendEntriesRequest;
  /** AppendEntries response. */
  appendEntriesResponse: AppendEntriesResponse;
  /** RequestVote request. */
  requestVoteRequest: RequestVoteRequest;
  /** RequestVote response. */
  requestVoteResponse: RequestVoteResponse;
  /** Snapshot announcement. */
  snapshotRequest: SnapshotRequest;
  /** Answer to a snapshot announcement. */
  snapshotResponse: SnapshotResponse;
  /** One snapshot chunk. */
  snapshotRecoveryRequest: SnapshotRecoveryRequest;
  /** Answer to a snapshot chunk. */
  snapshotRecoveryResponse: SnapshotRecoveryResponse;
  /** TimeoutNow request. */
  timeoutNowRequest: TimeoutNowRequest;
  /** TimeoutNow response. */
  timeoutNowResponse: TimeoutNowResponse;
}

/**
 * Every {@link MessageKind}, in a fixed order. Transports may use a kind's position in this
 * list as its numeric code on the wire, so new kinds are only ever appended.
 * @example
 * ```ts
 * import { MESSAGE_KINDS } from "@tsraft/core";
 * if (MESSAGE_KINDS.indexOf("appendEntriesRequest") !== 0) throw new Error("order changed");
 * ```
 */
export const MESSAGE_KINDS: readonly MessageKind[] = Object.freeze([
  "appendEntriesRequest",
  "appendEntriesResponse",
  "requestVoteRequest",
  "requestVoteResponse",
  "snapshotRequest",
  "snapshotResponse",
  "snapshotRecoveryRequest",
  "snapshotRecoveryResponse",
  "timeoutNowRequest",
  "timeoutNowResponse",
]);

/**
 * Default upper bound on an encoded message (64 MiB), large enough for a full batch of
 * ordinary entries or one snapshot chunk.
 * @example
 * ```ts
 * import { DEFAULT_MAX_MESSAGE_BYTES } from "@tsraft/core";
 * if (DEFAULT_MAX_MESSAGE_BYTES !== 64 * 1024 * 1024) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 64 * 1024 * 1024;

/**
 * Default time a transport lets an RPC take, connecting included, before the send
 * rejects with `TransportError` (the `"default"` {@link RpcTimeoutClass}).
 * @example
 * ```ts
 * import { DEFAULT_RPC_TIMEOUT_MS } from "@tsraft/core";
 * if (DEFAULT_RPC_TIMEOUT_MS !== 2000) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_RPC_TIMEOUT_MS = 2000;

/**
 * Default time a transport lets one snapshot chunk take (the `"snapshot"`
 * {@link RpcTimeoutClass}): chunks are large and the receiver writes them to storage.
 * @example
 * ```ts
 * import { DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS } from "@tsraft/core";
 * if (DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS !== 30_000) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS = 30_000;

/**
 * Default first delay before a connection-oriented transport reconnects to a peer after a
 * failed attempt; it doubles with each further failure up to
 * {@link DEFAULT_MAX_RECONNECT_DELAY_MS}.
 * @example
 * ```ts
 * import { DEFAULT_MIN_RECONNECT_DELAY_MS } from "@tsraft/core";
 * if (DEFAULT_MIN_RECONNECT_DELAY_MS !== 50) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_MIN_RECONNECT_DELAY_MS = 50;

/**
 * Default longest delay between a transport's connection attempts to one peer.
 * @example
 * ```ts
 * import { DEFAULT_MAX_RECONNECT_DELAY_MS } from "@tsraft/core";
 * if (DEFAULT_MAX_RECONNECT_DELAY_MS !== 2000) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000;

/**
 * Default number of requests a transport serves at once per incoming connection before
 * it stops reading from it (backpressure on a peer that pipelines faster than the
 * handler keeps up).
 * @example
 * ```ts
 * import { DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION } from "@tsraft/core";
 * if (DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION !== 256) throw new Error("unexpected");
 * ```
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION = 256;

/**
 * For each RPC, named by the kind of its request: the kind of its response and the
 * {@link RaftHandler} method that serves it.
 */
export interface RpcMap {
  /** AppendEntries, served by `RaftHandler.appendEntries`. */
  appendEntriesRequest: { response: "appendEntriesResponse"; method: "appendEntries" };
  /** RequestVote (and pre-vote), served by `RaftHandler.requestVote`. */
  requestVoteRequest: { response: "requestVoteResponse"; method: "requestVote" };
  /** Snapshot announcement, served by `RaftHandler.requestSnapshot`. */
  snapshotRequest: { response: "snapshotResponse"; method: "requestSnapshot" };
  /** One snapshot chunk, served by `RaftHandler.snapshotRecoveryRequest`. */
  snapshotRecoveryRequest: {
    response: "snapshotRecoveryResponse";
    method: "snapshotRecoveryRequest";
  };
  /** TimeoutNow (leadership transfer), served by `RaftHandler.timeoutNow`. */
  timeoutNowRequest: { response: "timeoutNowResponse"; method: "timeoutNow" };
}

/** The message kind of each RPC's request; an RPC is named by it. */
export type RequestKind = keyof RpcMap;

/** The message kind of the response to `K`. */
export type ResponseKind<K extends RequestKind = RequestKind> = RpcMap[K]["response"];

/** The {@link RaftHandler} methods that serve RPCs. */
export type RpcMethod = RpcMap[RequestKind]["method"];

/**
 * How long a transport lets an RPC take: `"default"` for the small, latency-bound RPCs
 * ({@link DEFAULT_RPC_TIMEOUT_MS}), `"snapshot"` for snapshot chunks
 * ({@link DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS}).
 */
export type RpcTimeoutClass = "default" | "snapshot";

/** One row of {@link RPCS}: everything a transport needs to carry and serve one RPC. */
export interface Rpc<K extends RequestKind = RequestKind> {
  /** Kind of the request message; also the RPC's name. */
  readonly request: K;
  /** Kind of the response message. */
  readonly response: ResponseKind<K>;
  /** The {@link RaftHandler} method that serves the request. */
  readonly method: RpcMap[K]["method"];
  /** Which of a transport's timeouts applies. */
  readonly timeout: RpcTimeoutClass;
  /** Last segment of the RPC's HTTP path, after the transport's prefix (no slash). */
  readonly path: string;
  /**
   * Hands `request` to `handler`'s {@link Rpc.method}; the pairing of request, method and
   * response is checked by the compiler here, so transports need no casts.
   * @param handler the receiving server
   * @param request a decoded request
   * @returns the handler's response
   */
  serve(handler: RaftHandler, request: MessageMap[K]): Promise<MessageMap[ResponseKind<K>]>;
}

/**
 * The one table of the RPCs, keyed by request kind, that every transport dispatches
 * through instead of keeping its own routes. Adding an RPC here (and to {@link RpcMap},
 * {@link MESSAGE_KINDS} and `RaftHandler`) is the whole of teaching the transports it.
 * @example
 * ```ts
 * import { RPCS } from "@tsraft/core";
 * const rpc = RPCS.snapshotRecoveryRequest;
 * if (rpc.response !== "snapshotRecoveryResponse" || rpc.timeout !== "snapshot") {
 *   throw new Error("unexpected row");
 * }
 * if (RPCS.appendEntriesRequest.path !== "appendEntries") throw new Error("unexpected path");
 * ```
 */
export const RPCS: { readonly [K in RequestKind]: Rpc<K> } = Object.freeze({
  appendEntriesRequest: Object.freeze({
    request: "appendEntriesRequest",
    response: "appendEntriesResponse",
    method: "appendEntries",
    timeout: "default",
    path: "appendEntries",
    serve: (handler: RaftHandler, request: AppendEntriesRequest) => handler.appendEntries(request),
  }),
  requestVoteRequest: Object.freeze({
    request: "requestVoteRequest",
    response: "requestVoteResponse",
    method: "requestVote",
    timeout: "default",
    path: "requestVote",
    serve: (handler: RaftHandler, request: RequestVoteRequest) => handler.requestVote(request),
  }),
  snapshotRequest: Object.freeze({
    request: "snapshotRequest",
    response: "snapshotResponse",
    method: "requestSnapshot",
    timeout: "default",
    path: "snapshot",
    serve: (handler: RaftHandler, request: SnapshotRequest) => handler.requestSnapshot(request),
  }),
  snapshotRecoveryRequest: Object.freeze({
    request: "snapshotRecoveryRequest",
    response: "snapshotRecoveryResponse",
    method: "snapshotRecoveryRequest",
    // Raft §7: InstallSnapshot chunks are large and the receiver writes each one to
    // storage before answering, so a chunk may take far longer than a heartbeat.
    timeout: "snapshot",
    path: "snapshotRecovery",
    serve: (handler: RaftHandler, request: SnapshotRecoveryRequest) =>
      handler.snapshotRecoveryRequest(request),
  }),
  timeoutNowRequest: Object.freeze({
    request: "timeoutNowRequest",
    response: "timeoutNowResponse",
    method: "timeoutNow",
    timeout: "default",
    path: "timeoutNow",
    serve: (handler: RaftHandler, request: TimeoutNowRequest) => handler.timeoutNow(request),
  }),
});

/**
 * Every {@link RequestKind}, in {@link MESSAGE_KINDS} order.
 * @example
 * ```ts
 * import { REQUEST_KINDS } from "@tsraft/core";
 * if (REQUEST_KINDS.length !== 5) throw new Error("unexpected");
 * ```
 */
export const REQUEST_KINDS: readonly RequestKind[] = Object.freeze(
  MESSAGE_KINDS.filter((kind): kind is RequestKind => Object.hasOwn(RPCS, kind)),
);

/**
 * Whether `kind` names an RPC's request (and so a row of {@link RPCS}).
 * @param kind any string, e.g. a kind read off the wire
 * @returns `true` for the five request kinds
 * @example
 * ```ts
 * import { isRequestKind } from "@tsraft/core";
 * if (!isRequestKind("timeoutNowRequest") || isRequestKind("timeoutNowResponse")) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export function isRequestKind(kind: string): kind is RequestKind {
  return Object.hasOwn(RPCS, kind);
}

const RPC_BY_METHOD: ReadonlyMap<string, Rpc> = new Map(
  REQUEST_KINDS.map((kind) => [RPCS[kind].method, RPCS[kind] as Rpc]),
);

/**
 * The row of {@link RPCS} served by a {@link RaftHandler} method, for transports that
 * name RPCs by method (the memory transport does).
 * @param method a handler method name, e.g. `"requestSnapshot"`
 * @returns the RPC's row
 * @throws {TypeError} when `method` serves no RPC
 * @example
 * ```ts
 * import { rpcOfMethod } from "@tsraft/core";
 * if (rpcOfMethod("requestSnapshot").request !== "snapshotRequest") throw new Error("unexpected");
 * ```
 */
export function rpcOfMethod(method: RpcMethod): Rpc {
  const rpc = RPC_BY_METHOD.get(method);
  if (rpc === undefined) throw new TypeError(`No RPC is served by ${JSON.stringify(method)}`);
  return rpc;
}

/** Longest string field (names, command names, connection strings) accepted, in UTF-16 units. */
const MAX_STRING_LENGTH = 4096;

// Field kinds of the schema; one table drives the protobuf schema, the checks before
// encoding and the normalization after decoding, so the three cannot drift apart.
type FieldKind = "u64" | "u32" | "bool" | "string" | "bytes" | "entries" | "peers";
type FieldSpec = readonly [name: string, kind: FieldKind];

const LOG_ENTRY: readonly FieldSpec[] = [
  ["index", "u64"],
  ["term", "u64"],
  ["commandName", "string"],
  ["command", "bytes"],
];

const PEER_INFO: readonly FieldSpec[] = [
  ["name", "string"],
  ["connectionString", "string"],
];

// Field numbers are positions in these lists (1-based): never reorder, only append.
const MESSAGES: { readonly [K in MessageKind]: readonly FieldSpec[] } = {
  appendEntriesRequest: [
    ["term", "u64"],
    ["prevLogIndex", "u64"],
    ["prevLogTerm", "u64"],
    ["commitIndex", "u64"],
    ["leaderName", "string"],
    ["entries", "entries"],
    ["heartbeatSeq", "u64"],
  ],
  appendEntriesResponse: [
    ["term", "u64"],
    ["index", "u64"],
    ["commitIndex", "u64"],
    ["success", "bool"],
    ["conflictTerm", "u64"],
    ["heartbeatSeq", "u64"],
  ],
  requestVoteRequest: [
    ["term", "u64"],
    ["lastLogIndex", "u64"],
    ["lastLogTerm", "u64"],
    ["candidateName", "string"],
    ["preVote", "bool"],
    ["transfer", "bool"],
  ],
  requestVoteResponse: [
    ["term", "u64"],
    ["voteGranted", "bool"],
    ["preVote", "bool"],
  ],
  snapshotRequest: [
    ["term", "u64"],
    ["leaderName", "string"],
    ["lastIndex", "u64"],
    ["lastTerm", "u64"],
    ["size", "u64"],
  ],
  snapshotResponse: [
    ["term", "u64"],
    ["success", "bool"],
    ["nextOffset", "u64"],
  ],
  snapshotRecoveryRequest: [
    ["term", "u64"],
    ["leaderName", "string"],
    ["lastIndex", "u64"],
    ["lastTerm", "u64"],
    ["peers", "peers"],
    ["offset", "u64"],
    ["data", "bytes"],
    ["done", "bool"],
    ["checksum", "u32"],
  ],
  snapshotRecoveryResponse: [
    ["term", "u64"],
    ["success", "bool"],
    ["commitIndex", "u64"],
    ["nextOffset", "u64"],
  ],
  timeoutNowRequest: [
    ["term", "u64"],
    ["leaderName", "string"],
  ],
  timeoutNowResponse: [
    ["term", "u64"],
    ["success", "bool"],
  ],
};

const PROTO_TYPES: Record<FieldKind, string> = {
  u64: "uint64",
  u32: "uint32",
  bool: "bool",
  string: "string",
  bytes: "bytes",
  entries: "LogEntry",
  peers: "PeerInfo",
};

function toDescriptor(fields: readonly FieldSpec[]): protobuf.IType {
  const out: Record<string, protobuf.IField> = {};
  fields.forEach(([name, kind], i) => {
    // proto2 `required` makes protobufjs reject a message missing a scalar instead of
    // silently filling in a default: a truncated or foreign frame fails loudly.
    const rule = kind === "entries" || kind === "peers" ? "repeated" : "required";
    out[name] = { rule, type: PROTO_TYPES[kind], id: i + 1 };
  });
  return { fields: out };
}

function buildTypes(): Record<MessageKind, protobuf.Type> {
  const nested: Record<string, protobuf.AnyNestedObject> = {
    LogEntry: toDescriptor(LOG_ENTRY),
    PeerInfo: toDescriptor(PEER_INFO),
  };
  for (const kind of MESSAGE_KINDS) nested[kind] = toDescriptor(MESSAGES[kind]);
  // `edition` is understood by protobufjs but missing from its typings; without it types
  // default to proto3, where `required` does not exist.
  const descriptor = { edition: "proto2", nested: { tsraft: { edition: "proto2", nested } } };
  const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  const types = {} as Record<MessageKind, protobuf.Type>;
  for (const kind of MESSAGE_KINDS) types[kind] = root.lookupType(`tsraft.${kind}`);
  return types;
}

const TYPES = buildTypes();

// How a field check reports a problem: RangeError/TypeError for a caller's bad message
// (misuse), WireError for bytes from the network.
type Fail = (message: string, range: boolean) => never;

function failMisuse(message: string, range: boolean): never {
  throw range ? new RangeError(message) : new TypeError(message);
}

function failWire(message: string): never {
  throw new WireError(message);
}

/** State of one normalization; `views` collects decoded byte fields to copy at the end. */
interface Context {
  fail: Fail;
  views: { owner: Record<string, unknown>; name: string; view: Uint8Array }[] | undefined;
}

// Paths in messages are built only when a check fails: building them for every field
// used to cost more than the protobuf decoding itself.
function at(path: string, index: number, name: string): string {
  return index < 0 ? `${path}.${name}` : `${path}[${index}].${name}`;
}

interface LongLike {
  low: number;
  high: number;
}

function toSafeInteger(
  value: unknown,
  context: Context,
  path: string,
  index: number,
  name: string,
): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      context.fail(
        `${at(path, index, name)} must be a non-negative safe integer, got ${value}`,
        true,
      );
    }
    return value;
  }
  if (typeof value === "object" && value !== null && "low" in value && "high" in value) {
    const { low, high } = value as LongLike;
    if (typeof low === "number" && typeof high === "number") {
      const hi = high >>> 0;
      // 2^53 - 1 has 21 high bits set above the low 32 bits.
      if (hi > 0x1f_ffff) {
        context.fail(`${at(path, index, name)} exceeds Number.MAX_SAFE_INTEGER`, true);
      }
      return hi * 0x1_0000_0000 + (low >>> 0);
    }
  }
  return context.fail(`${at(path, index, name)} must be an integer, got ${typeof value}`, false);
}

function normalizeFields(
  input: unknown,
  fields: readonly FieldSpec[],
  context: Context,
  path: string,
  index: number,
): Record<string, unknown> {
  const fail: Fail = context.fail;
  if (typeof input !== "object" || input === null) {
    fail(`${index < 0 ? path : `${path}[${index}]`} must be an object`, false);
  }
  const source = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (let f = 0; f < fields.length; f++) {
    const [name, kind] = fields[f]!;
    const value = source[name];
    switch (kind) {
      case "u64":
        out[name] = toSafeInteger(value, context, path, index, name);
        break;
      case "u32": {
        const n = toSafeInteger(value, context, path, index, name);
        if (n > 0xffff_ffff) fail(`${at(path, index, name)} must fit in 32 bits, got ${n}`, true);
        out[name] = n;
        break;
      }
      case "bool":
        if (typeof value !== "boolean") fail(`${at(path, index, name)} must be a boolean`, false);
        out[name] = value;
        break;
      case "string":
        if (typeof value !== "string") fail(`${at(path, index, name)} must be a string`, false);
        if (value.length > MAX_STRING_LENGTH) {
          fail(`${at(path, index, name)} is longer than ${MAX_STRING_LENGTH} characters`, true);
        }
        out[name] = value;
        break;
      case "bytes":
        if (!(value instanceof Uint8Array)) {
          fail(`${at(path, index, name)} must be a Uint8Array`, false);
        }
        out[name] = value;
        context.views?.push({ owner: out, name, view: value });
        break;
      case "entries": {
        const list = normalizeList(value, LOG_ENTRY, context, at(path, index, name));
        for (let i = 0; i < list.length; i++) {
          // Raft §5.3: the log starts at index 1; index 0 only names the empty prefix.
          if (list[i]!.index === 0) {
            fail(`${at(path, index, name)}[${i}].index must be at least 1`, true);
          }
        }
        out[name] = list;
        break;
      }
      case "peers":
        // Peer names are not checked here: membership rules belong to the receiver.
        out[name] = normalizeList(value, PEER_INFO, context, at(path, index, name));
        break;
    }
  }
  return out;
}

function normalizeList(
  value: unknown,
  fields: readonly FieldSpec[],
  context: Context,
  path: string,
): Record<string, unknown>[] {
  if (!Array.isArray(value)) context.fail(`${path} must be an array`, false);
  const list = value as unknown[];
  const out = new Array<Record<string, unknown>>(list.length);
  for (let i = 0; i < list.length; i++) out[i] = normalizeFields(list[i], fields, context, path, i);
  return out;
}

/**
 * Replaces every decoded byte field (a view into the input) by a plain Uint8Array copy.
 * All copies share one allocation: a message's byte fields live and die together, and one
 * allocation instead of one per entry halves the cost of decoding a batch of entries.
 */
function copyViews(views: NonNullable<Context["views"]>): void {
  let total = 0;
  for (const { view } of views) total += view.byteLength;
  const arena = new Uint8Array(total);
  let offset = 0;
  for (const { owner, name, view } of views) {
    arena.set(view, offset);
    owner[name] = arena.subarray(offset, offset + view.byteLength);
    offset += view.byteLength;
  }
}

function typeOf(kind: MessageKind): protobuf.Type {
  const type = Object.hasOwn(MESSAGES, kind) ? TYPES[kind] : undefined;
  if (type === undefined) throw new TypeError(`Unknown message kind ${JSON.stringify(kind)}`);
  return type;
}

/**
 * Encodes one RPC message as protobuf bytes (terms and indexes as `uint64`).
 *
 * @param kind which message `message` is
 * @param message the message to encode; extra properties are ignored
 * @returns the encoded bytes (without any framing or kind tag)
 * @throws {TypeError} when `kind` is unknown or a field has the wrong type
 * @throws {RangeError} when a number is not a non-negative safe integer, a string is longer
 * than 4096 characters or an entry has index 0
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage } from "@tsraft/core";
 * const bytes = encodeMessage("timeoutNowRequest", { term: 3, leaderName: "a" });
 * const back = decodeMessage("timeoutNowRequest", bytes);
 * if (back.term !== 3 || back.leaderName !== "a") throw new Error("round trip failed");
 * ```
 */
export function encodeMessage<K extends MessageKind>(kind: K, message: MessageMap[K]): Uint8Array {
  const type = typeOf(kind);
  // Validate first so protobufjs never coerces a bad value into something plausible.
  const checked = normalizeFields(
    message,
    MESSAGES[kind],
    { fail: failMisuse, views: undefined },
    kind,
    -1,
  );
  const out = type.encode(checked).finish();
  // On Node-compatible runtimes protobufjs hands back a Buffer; expose a plain view.
  return out.constructor === Uint8Array
    ? out
    : new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Options of {@link decodeMessage}. */
export interface DecodeOptions {
  /**
   * Largest accepted input, in bytes.
   * @default {DEFAULT_MAX_MESSAGE_BYTES}
   */
  maxBytes?: number;
}

/**
 * Decodes bytes received from the network into a checked, plain message object.
 *
 * @param kind which message the bytes are expected to hold
 * @param bytes the encoded message (not modified, not retained)
 * @param options bounds of the input
 * @returns a fresh object with exactly the fields of `MessageMap[kind]`; byte fields are
 * copies (plain `Uint8Array` views into one buffer per message, never into `bytes`)
 * @throws {WireError} when the bytes are larger than `maxBytes`, are not valid protobuf,
 * miss a field, hold a field of the wrong type, a 64-bit value above
 * `Number.MAX_SAFE_INTEGER`, an over-long string or an entry with index 0
 * @throws {TypeError} when `kind` is unknown or `bytes` is not a `Uint8Array`
 * @throws {RangeError} when `maxBytes` is not a positive integer
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, WireError } from "@tsraft/core";
 * const bytes = encodeMessage("requestVoteResponse", { term: 2, voteGranted: true, preVote: false });
 * if (!decodeMessage("requestVoteResponse", bytes).voteGranted) throw new Error("lost vote");
 * try {
 *   decodeMessage("requestVoteResponse", new Uint8Array([0xff]));
 *   throw new Error("garbage decoded");
 * } catch (error) {
 *   if (!(error instanceof WireError)) throw error;
 * }
 * ```
 */
export function decodeMessage<K extends MessageKind>(
  kind: K,
  bytes: Uint8Array,
  options: DecodeOptions = {},
): MessageMap[K] {
  const type = typeOf(kind);
  if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Uint8Array");
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  if (bytes.byteLength > maxBytes) {
    throw new WireError(`${kind} of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
  }
  let decoded: unknown;
  // A Buffer would make protobufjs use its Buffer reader, which is slow where Buffer is a
  // polyfill (Deno); a plain view of the same memory avoids that.
  const input = bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    checkWireTypes(protobuf.Reader.create(input), input.byteLength, MESSAGES[kind]);
    decoded = type.decode(input);
  } catch (error) {
    // protobufjs throws RangeError/Error/ProtocolError (and a stack overflow on absurdly
    // nested groups is a RangeError too): all mean the bytes are not a valid message.
    throw new WireError(`Cannot decode ${kind}: ${describe(error)}`, { cause: error });
  }
  const context: Context = { fail: failWire, views: [] };
  const message = normalizeFields(decoded, MESSAGES[kind], context, kind, -1);
  copyViews(context.views!);
  return message as unknown as MessageMap[K];
}

// protobufjs reads a known field by its schema type whatever wire type the tag carries, so
// a string sent where a number belongs would decode as garbage; this pass rejects that.
// Unknown fields are skipped so newer peers may add fields.
function checkWireTypes(reader: protobuf.Reader, end: number, fields: readonly FieldSpec[]) {
  while (reader.pos < end) {
    const tag = reader.uint32();
    const id = tag >>> 3;
    const wireType = tag & 7;
    if (id === 0) throw new WireError("Field number 0 is invalid");
    const spec = fields[id - 1];
    if (spec === undefined) {
      reader.skipType(wireType);
      continue;
    }
    const [name, kind] = spec;
    const expected = kind === "u64" || kind === "u32" || kind === "bool" ? 0 : 2;
    if (wireType !== expected) {
      throw new WireError(`Field ${name} has wire type ${wireType}, expected ${expected}`);
    }
    if (kind === "entries" || kind === "peers") {
      const length = reader.uint32();
      const nestedEnd = reader.pos + length;
      if (nestedEnd > end) throw new WireError(`Field ${name} overruns its message`);
      checkWireTypes(reader, nestedEnd, kind === "entries" ? LOG_ENTRY : PEER_INFO);
      if (reader.pos !== nestedEnd) throw new WireError(`Field ${name} overruns its length`);
    } else {
      reader.skipType(wireType);
    }
  }
  if (reader.pos !== end) throw new WireError("Message overruns its length");
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
