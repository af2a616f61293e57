/**
 * What {@link Server.stats} reports, and the counters behind it.
 * @module
 */
import type { ServerState } from "./constants.ts";

/** RPC kinds counted by {@link ServerStats}. */
export type StatsRpcKind =
  | "appendEntries"
  | "requestVote"
  | "timeoutNow"
  | "requestSnapshot"
  | "snapshotRecoveryRequest";

/** Messages and payload bytes (log commands or snapshot data) of one RPC kind. */
export interface RpcCounts {
  /** Requests. */
  messages: number;
  /** Bytes of commands (AppendEntries) or snapshot data (chunks) they carried. */
  bytes: number;
}

/** A leader's view of one follower or learner in {@link ServerStats}. */
export interface FollowerStats {
  /** The follower's name. */
  name: string;
  /** Highest index known replicated on it. */
  matchIndex: number;
  /** Next index to send. */
  nextIndex: number;
  /** `probe`, `replicate` or `snapshot`. */
  mode: string;
  /** Whether it votes (false for a learner catching up). */
  voter: boolean;
  /** AppendEntries with entries sent and not yet answered. */
  inflightMessages: number;
  /** Milliseconds since its last answer. */
  lastContactMsAgo: number;
}

/** Event counts since the server was created. */
export interface ServerCounters {
  /** Times this server became a candidate (pre-vote rounds included). */
  electionsStarted: number;
  /** Times it became leader. */
  leadershipsWon: number;
  /** Commands accepted by `do()` on this server as leader. */
  proposals: number;
  /** Log entries applied here (membership and no-op entries included). */
  entriesApplied: number;
  /** Storage writes (one per batch of entries and hard state). */
  storageWrites: number;
  /** Storage writes that failed (the server stops after one). */
  storageWriteErrors: number;
  /** Snapshots taken of the local state machine. */
  snapshotsTaken: number;
  /** Snapshots sent completely to a follower. */
  snapshotsSent: number;
  /** Snapshots received from a leader and installed. */
  snapshotsInstalled: number;
}

/** A latency histogram: `counts[i]` samples were at most `boundsMs[i]` (and above the previous bound). */
export interface LatencyHistogram {
  /** Upper bounds in ms; the last is `Infinity`. */
  boundsMs: number[];
  /** Samples per bucket. */
  counts: number[];
  /** Number of samples. */
  count: number;
  /** Sum of the samples in ms. */
  sumMs: number;
}

/** What {@link Server.stats} returns. */
export interface ServerStats {
  /** The server's name. */
  name: string;
  /** Its state (`leader`, `follower`, ...). */
  state: ServerState;
  /** Current term. */
  term: number;
  /** Known leader, `""` if none. */
  leader: string;
  /** Highest index known committed. */
  commitIndex: number;
  /** Highest index applied to the state machine. */
  appliedIndex: number;
  /** Index of the last log entry. */
  lastIndex: number;
  /** Index through which the log is compacted. */
  snapshotIndex: number;
  /** Names of the members. */
  members: string[];
  /**
   * Milliseconds since a leader last contacted this server (0 on the leader itself;
   * `Infinity` when none ever did).
   */
  leaderContactMsAgo: number;
  /** A leader's followers and learners; empty on other servers. */
  followers: FollowerStats[];
  /** Event counts. */
  counters: ServerCounters;
  /** Requests sent, by RPC kind. */
  sent: Record<StatsRpcKind, RpcCounts>;
  /** Requests received, by RPC kind. */
  received: Record<StatsRpcKind, RpcCounts>;
  /** How long storage writes took (including the wait for fsync). */
  storageWriteLatency: LatencyHistogram;
  /** From `do()` to its command applied here, for commands proposed on this server. */
  commitLatency: LatencyHistogram;
}

/** The state part of {@link ServerStats}, which the server fills in. */
export type ServerStatsState = Omit<
  ServerStats,
  "counters" | "sent" | "received" | "storageWriteLatency" | "commitLatency"
>;

const LATENCY_BOUNDS_MS = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, Infinity];

function rpcCounts(): Record<StatsRpcKind, RpcCounts> {
  return {
    appendEntries: { messages: 0, bytes: 0 },
    requestVote: { messages: 0, bytes: 0 },
    timeoutNow: { messages: 0, bytes: 0 },
    requestSnapshot: { messages: 0, bytes: 0 },
    snapshotRecoveryRequest: { messages: 0, bytes: 0 },
  };
}

class Histogram {
  readonly #counts: number[] = LATENCY_BOUNDS_MS.map(() => 0);
  #count = 0;
  #sumMs = 0;

  record(latencyMs: number): void {
    this.#count++;
    this.#sumMs += latencyMs;
    let bucket = 0;
    while (latencyMs > LATENCY_BOUNDS_MS[bucket]!) bucket++;
    this.#counts[bucket]!++;
  }

  snapshot(): LatencyHistogram {
    return {
      boundsMs: [...LATENCY_BOUNDS_MS],
      counts: [...this.#counts],
      count: this.#count,
      sumMs: this.#sumMs,
    };
  }
}

/** Counters a server updates on its hot paths; cheap increments only. */
export class StatsRecorder {
  readonly #counters: ServerCounters = {
    electionsStarted: 0,
    leadershipsWon: 0,
    proposals: 0,
    entriesApplied: 0,
    storageWrites: 0,
    storageWriteErrors: 0,
    snapshotsTaken: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
  };
  readonly #sent = rpcCounts();
  readonly #received = rpcCounts();
  readonly #storageLatency = new Histogram();
  readonly #commitLatency = new Histogram();

  /** Adds one to a counter. @param counter which */
  count(counter: keyof ServerCounters): void {
    this.#counters[counter]++;
  }

  /** Notes a request sent. @param kind the RPC @param bytes its payload bytes */
  sent(kind: StatsRpcKind, bytes: number): void {
    this.#sent[kind].messages++;
    this.#sent[kind].bytes += bytes;
  }

  /** Notes a request received. @param kind the RPC @param bytes its payload bytes */
  received(kind: StatsRpcKind, bytes: number): void {
    this.#received[kind].messages++;
    this.#received[kind].bytes += bytes;
  }

  /** Notes a completed storage write. @param latencyMs how long it took */
  recordStorageWrite(latencyMs: number): void {
    this.#counters.storageWrites++;
    this.#storageLatency.record(latencyMs);
  }

  /** Notes a proposed command applied. @param latencyMs time since its do() */
  recordCommitLatency(latencyMs: number): void {
    this.#commitLatency.record(latencyMs);
  }

  /**
   * Combines the counters with the server's state into copies safe to keep.
   * @param state the server's current state
   * @returns the full stats
   */
  snapshot(state: ServerStatsState): ServerStats {
    const copy = (counts: Record<StatsRpcKind, RpcCounts>) =>
      Object.fromEntries(
        Object.entries(counts).map(([kind, c]) => [kind, { ...c }]),
      ) as Record<StatsRpcKind, RpcCounts>;
    return {
      ...state,
      counters: { ...this.#counters },
      sent: copy(this.#sent),
      received: copy(this.#received),
      storageWriteLatency: this.#storageLatency.snapshot(),
      commitLatency: this.#commitLatency.snapshot(),
    };
  }
}
