/**
 * Plain data types shared by the consensus core, the Server, storages and transports.
 * Every term and index is a non-negative safe integer (`Number.isSafeInteger`).
 * @module
 */

/** One entry of the replicated log. */
export interface LogEntry {
  /** Position in the log, starting at 1. */
  index: number;
  /** Term of the leader that created the entry. */
  term: number;
  /** Registered name of the command, e.g. `"raft:join"`. */
  commandName: string;
  /** Encoded command (JSON by default, or the command's own encoding). */
  command: Uint8Array;
}

/** A member of the cluster: its unique name and where to reach it. */
export interface PeerInfo {
  /** Unique name of the server. */
  name: string;
  /** Address understood by the transporter, e.g. `"127.0.0.1:4001"` or a URL. */
  connectionString: string;
}

/** Term and vote: what must survive a crash before any message depending on them is sent. */
export interface HardState {
  /** Latest term this server has seen. */
  term: number;
  /** Candidate voted for in `term`, `""` if none. */
  votedFor: string;
}

/** Describes a snapshot: the log prefix it replaces and the membership at that point. */
export interface SnapshotMeta {
  /** Index of the last entry covered by the snapshot. */
  lastIndex: number;
  /** Term of that entry. */
  lastTerm: number;
  /** Every member (including the snapshotting server) as of `lastIndex`. */
  peers: PeerInfo[];
}

/** Asks a follower to append entries; an empty `entries` is a heartbeat. */
export interface AppendEntriesRequest {
  /** Leader's term. */
  term: number;
  /** Index of the entry immediately before `entries`. */
  prevLogIndex: number;
  /** Term of that entry. */
  prevLogTerm: number;
  /** Leader's commit index. */
  commitIndex: number;
  /** Leader's name, so followers can redirect clients. */
  leaderName: string;
  /** Entries to append, in index order. */
  entries: LogEntry[];
  /** Heartbeat round number echoed by the response (ReadIndex, round-trip time); 0 if none. */
  heartbeatSeq: number;
}

/** A follower's answer to {@link AppendEntriesRequest}. */
export interface AppendEntriesResponse {
  /** Follower's current term. */
  term: number;
  /**
   * On success the index of the last entry the follower now matches; on failure a
   * hint where the leader should retry (fast backtracking).
   */
  index: number;
  /** Follower's commit index. */
  commitIndex: number;
  /** Whether the entries were accepted. */
  success: boolean;
  /** On failure, term of the conflicting entry at `index`, or 0 if the follower's log is too short. */
  conflictTerm: number;
  /** Echo of the request's `heartbeatSeq`. */
  heartbeatSeq: number;
}

/** Asks for a vote (or, with `preVote`, whether a vote would be granted). */
export interface RequestVoteRequest {
  /** Candidate's term (for a pre-vote: the term it would campaign in). */
  term: number;
  /** Index of the candidate's last log entry. */
  lastLogIndex: number;
  /** Term of the candidate's last log entry. */
  lastLogTerm: number;
  /** Candidate's name. */
  candidateName: string;
  /** A pre-vote probe: the receiver changes no state. */
  preVote: boolean;
  /** Sent because of a leadership transfer: the receiver ignores its leader lease. */
  transfer: boolean;
}

/** A voter's answer to {@link RequestVoteRequest}. */
export interface RequestVoteResponse {
  /** Voter's current term. */
  term: number;
  /** Whether the vote (or pre-vote) was granted. */
  voteGranted: boolean;
  /** Echo of the request's `preVote`. */
  preVote: boolean;
}

/** Tells a follower a snapshot is coming, so it enters the `snapshotting` state. */
export interface SnapshotRequest {
  /** Leader's term. */
  term: number;
  /** Leader's name. */
  leaderName: string;
  /** Last index covered by the snapshot. */
  lastIndex: number;
  /** Term of that index. */
  lastTerm: number;
  /** Total size of the snapshot state in bytes. */
  size: number;
}

/** A follower's answer to {@link SnapshotRequest}. */
export interface SnapshotResponse {
  /** Follower's current term. */
  term: number;
  /** Whether the follower accepts the snapshot (false when it already has these entries). */
  success: boolean;
  /** Byte offset from which the leader should stream (resuming an interrupted transfer). */
  nextOffset: number;
}

/** One chunk of snapshot state; the last chunk has `done` set and completes the install. */
export interface SnapshotRecoveryRequest {
  /** Leader's term. */
  term: number;
  /** Leader's name. */
  leaderName: string;
  /** Last index covered by the snapshot. */
  lastIndex: number;
  /** Term of that index. */
  lastTerm: number;
  /** Membership as of `lastIndex`. */
  peers: PeerInfo[];
  /** Byte offset of `data` within the whole state. */
  offset: number;
  /** This chunk's bytes. */
  data: Uint8Array;
  /** Whether this is the final chunk. */
  done: boolean;
  /** CRC-32C of the whole state, checked when `done`. */
  checksum: number;
}

/** A follower's answer to {@link SnapshotRecoveryRequest}. */
export interface SnapshotRecoveryResponse {
  /** Follower's current term. */
  term: number;
  /** Whether the chunk (and, when `done`, the whole snapshot) was accepted. */
  success: boolean;
  /** Follower's commit index. */
  commitIndex: number;
  /** Byte offset the follower expects next. */
  nextOffset: number;
}

/** Tells a caught-up follower to campaign at once (leadership transfer). */
export interface TimeoutNowRequest {
  /** Leader's term. */
  term: number;
  /** Leader's name. */
  leaderName: string;
}

/** Answer to {@link TimeoutNowRequest}. */
export interface TimeoutNowResponse {
  /** Receiver's term. */
  term: number;
  /** Whether the receiver started an election. */
  success: boolean;
}
