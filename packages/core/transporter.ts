import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  PeerInfo,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "./types.ts";

/**
 * The receiving side of the RPCs: a {@link Server} implements it, and transports deliver
 * decoded requests to it. Handlers never throw for a well-typed request; a request whose
 * fields are malformed rejects with `InvalidMessageError`.
 */
export interface RaftHandler {
  /** Name of the receiving server. */
  readonly name: string;
  /** Handles AppendEntries. */
  appendEntries(req: AppendEntriesRequest): Promise<AppendEntriesResponse>;
  /** Handles RequestVote (and pre-vote). */
  requestVote(req: RequestVoteRequest): Promise<RequestVoteResponse>;
  /** Handles the announcement of a snapshot. */
  requestSnapshot(req: SnapshotRequest): Promise<SnapshotResponse>;
  /** Handles one chunk of snapshot state. */
  snapshotRecoveryRequest(req: SnapshotRecoveryRequest): Promise<SnapshotRecoveryResponse>;
  /** Handles TimeoutNow (leadership transfer). */
  timeoutNow(req: TimeoutNowRequest): Promise<TimeoutNowResponse>;
}

/** Identifies the sending server to the transport. */
export interface TransportSender {
  /** Name of the sending server. */
  readonly name: string;
}

/** Per-call options of a send. */
export interface SendOptions {
  /** Aborts the call; the promise then rejects with `TransportError`. */
  signal?: AbortSignal;
}

/**
 * Sends the RPCs to peers. Every method resolves with the peer's response or rejects with
 * `TransportError` (unreachable, timed out, refused, undecodable reply). Implementations
 * may have several requests in flight to one peer at once.
 */
export interface Transporter {
  /** Sends RequestVote. */
  sendVoteRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: RequestVoteRequest,
    options?: SendOptions,
  ): Promise<RequestVoteResponse>;
  /** Sends AppendEntries. */
  sendAppendEntriesRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: AppendEntriesRequest,
    options?: SendOptions,
  ): Promise<AppendEntriesResponse>;
  /** Sends a snapshot announcement. */
  sendSnapshotRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRequest,
    options?: SendOptions,
  ): Promise<SnapshotResponse>;
  /** Sends one snapshot chunk. */
  sendSnapshotRecoveryRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRecoveryRequest,
    options?: SendOptions,
  ): Promise<SnapshotRecoveryResponse>;
  /** Sends TimeoutNow. */
  sendTimeoutNow(
    sender: TransportSender,
    peer: PeerInfo,
    req: TimeoutNowRequest,
    options?: SendOptions,
  ): Promise<TimeoutNowResponse>;
  /**
   * Optional: releases connections and listeners. Called by `Server.stop()` when the
   * server's `closeTransporterOnStop` option is set.
   */
  close?(): void | Promise<void>;
}
