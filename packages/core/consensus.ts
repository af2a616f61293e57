/**
 * The Raft protocol as a pure, synchronous, deterministic state machine.
 *
 * No I/O, timers, promises or randomness of its own: the {@link Server} (or the simulator)
 * feeds it inputs — `tick(nowMs)`, received requests and responses, proposals, storage
 * completions — and drains its outputs with {@link Consensus.takeReady}. The ordering rules
 * the caller must keep are written on {@link Ready}.
 *
 * @module
 */
import { CANDIDATE, FOLLOWER, LEADER, type ServerState } from "./constants.ts";
import {
  LeadershipTransferError,
  MembershipChangeInProgressError,
  NotLeaderError,
} from "./errors.ts";
import type { Random } from "./random.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  HardState,
  LogEntry,
  PeerInfo,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotMeta,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "./types.ts";

/** Names of the membership commands the core interprets itself. */
export const JOIN_COMMAND_NAME = "raft:join";
/** Name of the command that removes a member. */
export const LEAVE_COMMAND_NAME = "raft:leave";
/** Name of the entry holding a whole membership (written when a cluster bootstraps). */
export const CONFIG_COMMAND_NAME = "raft:config";
/** Name of the no-op a new leader appends. */
export const NOP_COMMAND_NAME = "raft:nop";

/** Options of a {@link Consensus}. */
export interface ConsensusOptions {
  /** This server's name. */
  name: string;
  /** This server's connection string, used when it is part of a bootstrap configuration. */
  connectionString?: string;
  /**
   * Bootstrap membership (self is added) used when neither a snapshot nor the log says
   * otherwise. Without it a server starts as a single-member cluster.
   */
  peers?: PeerInfo[];
  /**
   * Start with an empty membership and wait to be added by an existing cluster's leader
   * (`JoinCommand`) instead of bootstrapping. @default false
   */
  joinExisting?: boolean;
  /** Base election timeout; each round waits a random time in `[t, 2t)`. */
  electionTimeoutMs: number;
  /** Interval between heartbeats of a leader. */
  heartbeatIntervalMs: number;
  /** Randomness for election timeouts. */
  random: Random;
  /** Run a pre-vote round before campaigning (Raft thesis §9.6). @default true */
  preVote?: boolean;
  /** Step down as leader without contact to a quorum for an election timeout. @default true */
  checkQuorum?: boolean;
  /** Most entries per AppendEntries. @default 2000 */
  maxEntriesPerMessage?: number;
  /** Most bytes of commands per AppendEntries (at least one entry is always sent). @default 1 MiB */
  maxBytesPerMessage?: number;
  /** Most AppendEntries carrying entries in flight per follower. @default 32 */
  maxInflightMessages?: number;
  /**
   * Most bytes of commands in flight per follower: a slow follower cannot grow the
   * leader's send queue past it (at least one message is always allowed). @default 8 MiB
   */
  maxInflightBytes?: number;
  /**
   * Bound on the relative clock drift between servers assumed by lease reads: a lease
   * lasts `electionTimeoutMs * (1 - leaseClockDrift)` after a heartbeat a quorum answered.
   * @default 0.1
   */
  leaseClockDrift?: number;
  /**
   * Longest time a message may spend in the network, assumed by lease reads only: after a
   * leadership transfer's TimeoutNow, leases count only heartbeats sent once that message,
   * and the vote requests it may trigger, can no longer arrive. @default electionTimeoutMs
   */
  maxMessageDelayMs?: number;
}

/** What a server recovered from storage, handed to {@link Consensus.restore}. */
export interface RestoredState {
  /** Persisted term and vote. */
  hardState: HardState;
  /** The stored snapshot's metadata, if any. */
  snapshot: SnapshotMeta | undefined;
  /** Every stored entry after the snapshot, in order. */
  entries: LogEntry[];
}

/** A request the caller must send; the response comes back through the matching handler. */
export type OutboundMessage =
  | { kind: "appendEntries"; to: PeerInfo; request: AppendEntriesRequest }
  | { kind: "requestVote"; to: PeerInfo; request: RequestVoteRequest }
  | { kind: "timeoutNow"; to: PeerInfo; request: TimeoutNowRequest };

/** An event for listeners, collected during a turn. */
export interface CoreEvent {
  /** Event type, one of the spec's names. */
  type: "stateChange" | "leaderChange" | "termChange" | "addPeer" | "removePeer";
  /** New value. */
  value: unknown;
  /** Previous value. */
  prevValue: unknown;
}

/**
 * Everything one or more inputs produced. Ordering rules for the caller:
 * 1. `hardState` and `entries` must be durable before any response computed in the same
 *    turns is returned and before `messages` of kind `requestVote` are sent (a vote or a
 *    candidacy must not be forgotten by a crash). A leader's `appendEntries` may be sent in
 *    parallel with persisting: its own entries count toward commit only after
 *    {@link Consensus.persisted}.
 * 2. `entries` replaces every stored entry from `entries[0].index` on.
 * 3. Committed entries are read with {@link Consensus.entriesBetween} up to `commitIndex`
 *    and applied in order, each exactly once.
 */
export interface Ready {
  /** Term and vote to persist, when changed. */
  hardState: HardState | undefined;
  /** Entries to persist (first index may be below the stored last index: truncate). */
  entries: LogEntry[];
  /** Requests to send. */
  messages: OutboundMessage[];
  /** The commit index; entries up to it may be applied. */
  commitIndex: number;
  /** Peers behind the compacted log that need the latest snapshot. */
  snapshotsNeeded: PeerInfo[];
  /** Read requests confirmed by a heartbeat quorum: apply up to `index`, then serve them. */
  readsReady: { id: number; index: number }[];
  /** Events to dispatch, in order. */
  events: CoreEvent[];
}

/** Internal role of a {@link Consensus}; `precandidate` is reported as `candidate`. */
export type Role = "follower" | "precandidate" | "candidate" | "leader";
type ProgressMode = "probe" | "replicate" | "snapshot";

/** A leader's view of one follower or learner. */
export interface FollowerProgress {
  /** The follower's name. */
  name: string;
  /** Highest index known replicated on it. */
  matchIndex: number;
  /** Next index to send. */
  nextIndex: number;
  /** `probe` (finding the match), `replicate` (streaming) or `snapshot` (receiving one). */
  mode: string;
  /** Whether it is a voting member (false for a learner catching up). */
  voter: boolean;
  /** Clock time of its last response. */
  lastResponseAtMs: number;
  /** AppendEntries carrying entries sent and not yet answered. */
  inflightMessages: number;
}

interface Progress {
  peer: PeerInfo;
  matchIndex: number;
  nextIndex: number;
  mode: ProgressMode;
  /** AppendEntries carrying entries not yet answered. */
  inflight: number;
  /** Command bytes in those messages. */
  inflightBytes: number;
  lastResponseAtMs: number;
  ackedHeartbeatSeq: number;
  /** When the newest heartbeat this follower answered was sent. */
  ackedHeartbeatSentAtMs: number;
}

interface ConfigVersion {
  index: number;
  members: PeerInfo[];
}

interface PendingRead {
  id: number;
  index: number;
  heartbeatSeq: number;
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/**
 * The Raft state machine of one server. See the module documentation.
 * @example
 * ```ts
 * import { Consensus } from "@tsraft/core";
 * const core = new Consensus({
 *   name: "a",
 *   peers: [],
 *   electionTimeoutMs: 150,
 *   heartbeatIntervalMs: 50,
 *   random: { next: () => 0.5 },
 * });
 * core.restore({ hardState: { term: 0, votedFor: "" }, snapshot: undefined, entries: [] }, 0);
 * core.tick(1000); // a single-member cluster elects itself
 * if (core.role !== "leader") throw new Error("expected leader");
 * ```
 */
export class Consensus {
  /** This server's name. */
  readonly name: string;
  #connectionString: string;
  #options: Required<
    Omit<ConsensusOptions, "peers" | "connectionString" | "joinExisting" | "maxMessageDelayMs">
  >;
  #maxMessageDelayMs: number | undefined;
  #joinExisting: boolean;

  #term = 0;
  #votedFor = "";
  #role: Role = "follower";
  #leader = "";

  // Log: entries after the snapshot point, in memory (bounded by snapshots).
  #snapshotIndex = 0;
  #snapshotTerm = 0;
  #log: LogEntry[] = [];
  #commitIndex = 0;
  /** Last index known durable in storage. Invariant: persistedIndex <= lastIndex. */
  #persistedIndex = 0;
  /** Lowest index changed since the last takeReady; Infinity when nothing is unstable. */
  #unstableFrom = Infinity;
  #hardStateDirty = false;

  #configs: ConfigVersion[] = [];

  #nowMs = 0;
  #electionDeadlineMs = 0;
  #heartbeatDeadlineMs = 0;
  #lastLeaderContactMs = -Infinity;
  #quorumCheckDeadlineMs = 0;

  #votes = new Map<string, boolean>();
  #progress = new Map<string, Progress>();
  #heartbeatSeq = 0;
  /** Send times of recent heartbeat rounds, by sequence number (for leases). */
  #heartbeatSentAtMs = new Map<number, number>();
  #pendingReads: PendingRead[] = [];
  #nextReadId = 1;
  #transfer: { target: string; deadlineMs: number; timeoutNowSent: boolean } | undefined;
  /**
   * Lease reads count only heartbeats sent at or after this time: votes granted to a
   * transfer's target bypass the voters' lease.
   */
  #leaseNotBeforeMs = -Infinity;
  /** A restarted server refuses (pre-)votes until then: it may have promised a lease. */
  #voteRefusalUntilMs = -Infinity;
  #restored = false;

  #messages: OutboundMessage[] = [];
  #replicationPending = false;
  #events: CoreEvent[] = [];
  #snapshotsNeeded: PeerInfo[] = [];
  #readsReady: { id: number; index: number }[] = [];
  #bootstrapPeers: PeerInfo[];

  /** Creates an instance. @param options see {@link ConsensusOptions} */
  constructor(options: ConsensusOptions) {
    if (!(options.electionTimeoutMs > 0) || !(options.heartbeatIntervalMs > 0)) {
      throw new RangeError("electionTimeoutMs and heartbeatIntervalMs must be positive");
    }
    this.name = options.name;
    this.#connectionString = options.connectionString ?? "";
    this.#bootstrapPeers = options.peers ?? [];
    this.#joinExisting = options.joinExisting ?? false;
    this.#options = {
      name: options.name,
      electionTimeoutMs: options.electionTimeoutMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      random: options.random,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxEntriesPerMessage: options.maxEntriesPerMessage ?? 2000,
      maxBytesPerMessage: options.maxBytesPerMessage ?? 1024 * 1024,
      maxInflightMessages: options.maxInflightMessages ?? 32,
      leaseClockDrift: options.leaseClockDrift ?? 0.1,
      maxInflightBytes: options.maxInflightBytes ?? 8 * 1024 * 1024,
    };
    this.#maxMessageDelayMs = options.maxMessageDelayMs;
  }

  // ---------------------------------------------------------------- accessors

  /** Current term. */
  get term(): number {
    return this.#term;
  }
  /** Candidate voted for in the current term, `""` if none. */
  get votedFor(): string {
    return this.#votedFor;
  }
  /** Internal role (`precandidate` is reported as `candidate` by {@link state}). */
  get role(): Role {
    return this.#role;
  }
  /** Role as a spec state name. */
  get state(): ServerState {
    if (this.#role === "leader") return LEADER;
    if (this.#role === "follower") return FOLLOWER;
    return CANDIDATE;
  }
  /** Name of the known leader, `""` if none. */
  get leader(): string {
    return this.#leader;
  }
  /** Highest index known committed. */
  get commitIndex(): number {
    return this.#commitIndex;
  }
  /** Index of the last log entry (the snapshot index when the log is empty). */
  get lastIndex(): number {
    return this.#snapshotIndex + this.#log.length;
  }
  /** Term of the last log entry. */
  get lastTerm(): number {
    return this.#log.length > 0 ? this.#log[this.#log.length - 1]!.term : this.#snapshotTerm;
  }
  /** Index of the newest snapshot point (0 if none). */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }
  /** Term at the snapshot point. */
  get snapshotTerm(): number {
    return this.#snapshotTerm;
  }
  /** Last index known durable. */
  get persistedIndex(): number {
    return this.#persistedIndex;
  }
  /** The current membership (latest configuration in the log, Raft §6). */
  get members(): PeerInfo[] {
    return this.#configs[this.#configs.length - 1]?.members ?? [];
  }
  /** Whether a membership change is appended but not committed. */
  get membershipChangePending(): boolean {
    const latest = this.#configs[this.#configs.length - 1];
    return latest !== undefined && latest.index > this.#commitIndex;
  }
  /**
   * Whether the entry at the commit index is of the current term: a new leader knows the
   * commit index only from then on (its no-op committed, Raft §8).
   */
  get hasCommittedInTerm(): boolean {
    return this.termAt(this.#commitIndex) === this.#term;
  }
  /** Whether this server is a voting member of its own current configuration. */
  get isMember(): boolean {
    return this.members.some((member) => member.name === this.name);
  }
  /** Number of members. */
  get memberCount(): number {
    return this.members.length;
  }
  /** Votes needed to win an election or commit. */
  get quorumSize(): number {
    return Math.floor(this.members.length / 2) + 1;
  }
  /** Target of an ongoing leadership transfer, if any. */
  get transferTarget(): string | undefined {
    return this.#transfer?.target;
  }
  /** Per-follower replication state of a leader (read-only copies). */
  get progress(): FollowerProgress[] {
    return [...this.#progress.values()].map((p) => ({
      name: p.peer.name,
      matchIndex: p.matchIndex,
      nextIndex: p.nextIndex,
      mode: p.mode,
      voter: this.#isVoter(p.peer.name),
      lastResponseAtMs: p.lastResponseAtMs,
      inflightMessages: p.inflight,
    }));
  }
  /** The time by which {@link tick} must next be called. */
  get nextWakeAtMs(): number {
    if (this.#role === "leader") {
      return Math.min(
        this.#heartbeatDeadlineMs,
        this.#quorumCheckDeadlineMs,
        this.#transfer?.deadlineMs ?? Infinity,
      );
    }
    return this.#electionDeadlineMs;
  }

  /**
   * Term of the entry at `index`, or `undefined` when it is compacted away or past the end.
   * @param index log index
   * @returns its term
   */
  termAt(index: number): number | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm;
    if (index < this.#snapshotIndex || index > this.lastIndex) return undefined;
    return this.#log[index - this.#snapshotIndex - 1]!.term;
  }

  /**
   * Entries with `from <= index < to` held in memory.
   * @throws RangeError when the range is compacted or past the end
   */
  entriesBetween(from: number, to: number): LogEntry[] {
    if (from <= this.#snapshotIndex || to > this.lastIndex + 1 || from > to) {
      throw new RangeError(
        `Cannot read entries [${from}, ${to}): log holds (${this.#snapshotIndex}, ${this.lastIndex}]`,
      );
    }
    return this.#log.slice(from - this.#snapshotIndex - 1, to - this.#snapshotIndex - 1);
  }

  /**
   * Membership as of `index` (for snapshot metadata).
   * @param index log index at or after the snapshot point
   */
  membersAt(index: number): PeerInfo[] {
    let found: PeerInfo[] = [];
    for (const config of this.#configs) {
      if (config.index <= index) found = config.members;
    }
    return found;
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Loads recovered state. Called once before any other input.
   * @param state what storage recovered
   * @param nowMs current time
   */
  restore(state: RestoredState, nowMs: number): void {
    if (this.#restored) {
      throw new TypeError("Consensus.restore() runs once; create a new Consensus to restart");
    }
    this.#restored = true;
    this.#nowMs = nowMs;
    if (state.hardState.term > 0 && this.#options.checkQuorum) {
      // Before the crash this server may have acknowledged a leader's heartbeat, and that
      // leader may still serve lease reads counting on it not to vote for anyone else
      // (Raft thesis §6.4): keep that promise for one election timeout after restarting.
      this.#voteRefusalUntilMs = nowMs + this.#options.electionTimeoutMs;
    }
    this.#term = state.hardState.term;
    this.#votedFor = state.hardState.votedFor;
    this.#snapshotIndex = state.snapshot?.lastIndex ?? 0;
    this.#snapshotTerm = state.snapshot?.lastTerm ?? 0;
    this.#log = state.entries.filter((entry) => entry.index > this.#snapshotIndex);
    for (let i = 0; i < this.#log.length; i++) {
      if (this.#log[i]!.index !== this.#snapshotIndex + 1 + i) {
        throw new RangeError(`Restored log is not contiguous at position ${i}`);
      }
    }
    this.#commitIndex = this.#snapshotIndex;
    this.#persistedIndex = this.lastIndex;
    const base = state.snapshot
      ? state.snapshot.peers
      : this.#joinExisting
      ? []
      : this.#withSelf(this.#bootstrapPeers);
    this.#configs = [{ index: this.#snapshotIndex, members: dedupe(base) }];
    for (const entry of this.#log) this.#noteConfigEntry(entry);
    const pristine = state.snapshot === undefined && this.#log.length === 0 && this.#term === 0;
    if (pristine && !this.#joinExisting) {
      // Bootstrap (as etcd does): every founding server writes the same first entry holding
      // the founding membership, committed by construction. Servers that join later learn
      // the whole membership from the log instead of from their own options.
      const command = textEncoder.encode(JSON.stringify({ peers: this.members }));
      this.#setTerm(1);
      this.#appendLocal([{ index: 1, term: 1, commandName: CONFIG_COMMAND_NAME, command }]);
      this.#commitIndex = 1;
      this.#events = [];
    }
    this.#resetElectionTimer();
  }

  /**
   * Advances time: elections, heartbeats, quorum checks and transfer timeouts.
   * @param nowMs current time
   */
  tick(nowMs: number): void {
    this.#nowMs = nowMs;
    if (this.#role === "leader") {
      if (nowMs >= this.#quorumCheckDeadlineMs) {
        this.#quorumCheckDeadlineMs = nowMs + this.#options.electionTimeoutMs;
        if (this.#options.checkQuorum && !this.#hasQuorumContact()) {
          // A leader cut off from a majority must not keep serving reads or accepting
          // writes that can never commit.
          this.#becomeFollower(this.#term, "");
          return;
        }
      }
      if (this.#transfer && nowMs >= this.#transfer.deadlineMs) this.#transfer = undefined;
      if (nowMs >= this.#heartbeatDeadlineMs) this.#broadcastHeartbeat();
      return;
    }
    if (nowMs >= this.#electionDeadlineMs) {
      if (!this.isMember) {
        this.#resetElectionTimer();
        return;
      }
      this.#startElection(this.#options.preVote ? "precandidate" : "candidate", false);
    }
  }

  /**
   * Appends a command to the leader's log and replicates it at once.
   * @returns the new entry's index and term
   * @throws NotLeaderError when not the leader
   * @throws LeadershipTransferError while transferring leadership
   * @throws MembershipChangeInProgressError for a second uncommitted membership change
   */
  propose(commandName: string, command: Uint8Array): { index: number; term: number } {
    if (this.#role !== "leader") {
      throw new NotLeaderError(this.#leader, this.#peerInfo(this.#leader)?.connectionString ?? "");
    }
    if (this.#transfer) {
      throw new LeadershipTransferError(
        `Leadership is being transferred to ${this.#transfer.target}`,
      );
    }
    if (commandName === JOIN_COMMAND_NAME || commandName === LEAVE_COMMAND_NAME) {
      // Raft §4.1: one membership change at a time keeps every pair of majorities overlapping.
      if (this.membershipChangePending) throw new MembershipChangeInProgressError();
      // ...but only once this leader has committed an entry of its own term (Ongaro, raft-dev
      // 2015): otherwise an uncommitted change of an earlier leader, unknown here, and this
      // one can yield two disjoint majorities that each elect a leader and commit.
      if (!this.hasCommittedInTerm) {
        throw new MembershipChangeInProgressError(
          "The leader has not yet committed an entry of its term; retry the membership change",
        );
      }
    }
    const entry: LogEntry = { index: this.lastIndex + 1, term: this.#term, commandName, command };
    this.#appendLocal([entry]);
    // Replication is deferred to takeReady(): proposals of one turn travel in one message.
    this.#replicationPending = true;
    return { index: entry.index, term: entry.term };
  }

  /**
   * Reports that storage made everything up to `index` durable (as of term `term`).
   * @param index last index written by the completed save
   * @param term term of that entry when it was written
   */
  persisted(index: number, term: number): void {
    // Ignore completions for entries that were truncated and rewritten in the meantime.
    if (this.termAt(index) !== term && index !== 0) return;
    if (index > this.#persistedIndex) this.#persistedIndex = index;
    if (this.#role === "leader") this.#maybeCommit();
  }

  /**
   * Handles AppendEntries from a leader (Raft §5.3).
   * @returns the response, to be returned only after the resulting Ready is durable
   */
  handleAppendEntries(req: AppendEntriesRequest): AppendEntriesResponse {
    const reply = (success: boolean, index: number, conflictTerm = 0): AppendEntriesResponse => ({
      term: this.#term,
      index,
      commitIndex: this.#commitIndex,
      success,
      conflictTerm,
      heartbeatSeq: req.heartbeatSeq,
    });
    if (req.term < this.#term) return reply(false, this.lastIndex);
    if (req.term > this.#term || this.#role !== "follower" || this.#leader !== req.leaderName) {
      this.#becomeFollower(req.term, req.leaderName);
    }
    this.#lastLeaderContactMs = this.#nowMs;
    this.#resetElectionTimer();

    let prevIndex = req.prevLogIndex;
    let entries = req.entries;
    if (prevIndex < this.#snapshotIndex) {
      // Entries up to our snapshot are committed and therefore match (Log Matching).
      const skip = this.#snapshotIndex - prevIndex;
      entries = entries.slice(skip);
      prevIndex = this.#snapshotIndex;
      if (entries.length === 0) {
        return reply(true, Math.max(req.prevLogIndex + req.entries.length, 0));
      }
      if (entries[0]!.index !== prevIndex + 1) {
        return reply(true, req.prevLogIndex + req.entries.length);
      }
    } else {
      const localTerm = this.termAt(prevIndex);
      if (localTerm === undefined) return reply(false, this.lastIndex, 0);
      if (localTerm !== req.prevLogTerm) {
        // Fast backtracking: point the leader at the first entry of the conflicting term.
        let first = prevIndex;
        while (first - 1 > this.#snapshotIndex && this.termAt(first - 1) === localTerm) first--;
        return reply(false, first, localTerm);
      }
    }

    const toAppend: LogEntry[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const existing = this.termAt(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) {
        if (entry.index <= this.#commitIndex) {
          throw new Error(`Invariant violated: leader overwrites committed entry ${entry.index}`);
        }
        this.#truncateFrom(entry.index);
      }
      toAppend.push(...entries.slice(i));
      break;
    }
    if (toAppend.length > 0) this.#appendLocal(toAppend);
    const lastNew = prevIndex + entries.length;
    // Raft Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    const newCommit = Math.min(req.commitIndex, lastNew);
    if (newCommit > this.#commitIndex) this.#commitIndex = newCommit;
    return reply(true, lastNew);
  }

  /**
   * Handles a follower's answer to an AppendEntries this leader sent.
   * @param from the follower
   * @param req the request that was sent
   * @param resp the follower's response
   */
  handleAppendEntriesResponse(
    from: string,
    req: AppendEntriesRequest,
    resp: AppendEntriesResponse,
  ): void {
    if (resp.term > this.#term) {
      this.#becomeFollower(resp.term, "");
      return;
    }
    const progress = this.#progress.get(from);
    if (this.#role !== "leader" || req.term !== this.#term || progress === undefined) return;
    progress.lastResponseAtMs = this.#nowMs;
    // A follower's commit index is a safe lower bound of where it matches: committed entries
    // are in every later leader's log (Leader Completeness). Without it, a follower whose
    // acks were lost and whose conflict hint points below our snapshot would be sent a
    // snapshot it refuses (it already has those entries), forever.
    if (resp.commitIndex > progress.matchIndex && resp.commitIndex <= this.lastIndex) {
      progress.matchIndex = resp.commitIndex;
    }
    if (progress.mode === "probe") {
      progress.inflight = 0;
      progress.inflightBytes = 0;
    } else if (req.entries.length > 0 && progress.inflight > 0) {
      progress.inflight--;
      progress.inflightBytes = Math.max(0, progress.inflightBytes - commandBytes(req.entries));
    }
    if (resp.heartbeatSeq > progress.ackedHeartbeatSeq) {
      progress.ackedHeartbeatSeq = resp.heartbeatSeq;
      progress.ackedHeartbeatSentAtMs = this.#heartbeatSentAtMs.get(resp.heartbeatSeq) ??
        progress.ackedHeartbeatSentAtMs;
      this.#confirmReads();
    }
    if (progress.mode === "snapshot") {
      // While a snapshot streams, heartbeats check a position below the snapshot that the
      // follower may reject; only the transfer's outcome (snapshotSent) changes the mode.
      if (resp.success && resp.index > progress.matchIndex && resp.index <= this.lastIndex) {
        progress.matchIndex = resp.index;
        this.#maybeCommit();
      }
      return;
    }
    if (resp.success) {
      if (resp.index > progress.matchIndex) {
        progress.matchIndex = resp.index;
        this.#maybeCommit();
      }
      if (progress.nextIndex <= progress.matchIndex) progress.nextIndex = progress.matchIndex + 1;
      // Only a success at the probed position proves everything before nextIndex matches;
      // a heartbeat's success (checked at matchIndex) does not.
      if (progress.mode === "probe" && progress.matchIndex >= progress.nextIndex - 1) {
        progress.mode = "replicate";
      }
      if (this.#transfer?.target === from && progress.matchIndex === this.lastIndex) {
        this.#sendTimeoutNow(progress);
      }
    } else {
      // Stale rejection for a position we already know matches.
      if (req.prevLogIndex < progress.matchIndex) return;
      let next: number;
      if (resp.conflictTerm === 0) {
        next = resp.index + 1;
      } else {
        const lastOfTerm = this.#lastIndexOfTerm(resp.conflictTerm, req.prevLogIndex);
        next = lastOfTerm !== undefined ? lastOfTerm + 1 : resp.index;
      }
      next = Math.max(progress.matchIndex + 1, Math.min(next, req.prevLogIndex));
      progress.nextIndex = next;
      progress.mode = "probe";
      progress.inflight = 0;
      progress.inflightBytes = 0;
    }
    this.#sendAppend(progress, false);
  }

  /**
   * Reports that an AppendEntries could not be delivered or answered.
   * @param to the follower
   * @param req the request that failed
   */
  handleAppendEntriesFailure(to: string, req: AppendEntriesRequest): void {
    const progress = this.#progress.get(to);
    if (this.#role !== "leader" || req.term !== this.#term || progress === undefined) return;
    if (progress.mode === "probe") {
      progress.inflight = 0;
      progress.inflightBytes = 0;
      return;
    }
    if (req.entries.length === 0) return;
    // The pipeline has a hole: fall back to probing from the last known match.
    progress.mode = "probe";
    progress.inflight = 0;
    progress.inflightBytes = 0;
    progress.nextIndex = progress.matchIndex + 1;
  }

  /**
   * Handles RequestVote or a pre-vote (Raft §5.2, §5.4.1; thesis §9.6).
   * @returns the response, to be returned only after the resulting Ready is durable
   */
  handleRequestVote(req: RequestVoteRequest): RequestVoteResponse {
    const inLease = this.#options.checkQuorum && !req.transfer && (this.#role === "leader" ||
      this.#nowMs < this.#voteRefusalUntilMs ||
      (this.#leader !== "" &&
        this.#nowMs - this.#lastLeaderContactMs < this.#options.electionTimeoutMs));
    if (req.term > this.#term && inLease) {
      // A server that hears from a live leader ignores disruptive candidates (thesis §4.2.3).
      return { term: this.#term, voteGranted: false, preVote: req.preVote };
    }
    const logOk = req.lastLogTerm > this.lastTerm ||
      (req.lastLogTerm === this.lastTerm && req.lastLogIndex >= this.lastIndex);
    if (!this.#isVoter(req.candidateName)) {
      // Votes go only to members; a removed or foreign server cannot become leader here.
      return { term: this.#term, voteGranted: false, preVote: req.preVote };
    }
    if (req.preVote) {
      const granted = logOk && (req.term > this.#term ||
        (req.term === this.#term && this.#role !== "leader" && this.#leader === ""));
      return { term: this.#term, voteGranted: granted, preVote: true };
    }
    if (req.term < this.#term) return { term: this.#term, voteGranted: false, preVote: false };
    if (req.term > this.#term) this.#becomeFollower(req.term, "");
    const canVote = this.#votedFor === "" || this.#votedFor === req.candidateName;
    if (canVote && logOk) {
      if (this.#votedFor !== req.candidateName) {
        this.#votedFor = req.candidateName;
        this.#hardStateDirty = true;
      }
      this.#resetElectionTimer();
      return { term: this.#term, voteGranted: true, preVote: false };
    }
    return { term: this.#term, voteGranted: false, preVote: false };
  }

  /**
   * Handles the answer to a vote request this server sent.
   * @param from the voter
   * @param req the request that was sent
   * @param resp the voter's response
   */
  handleRequestVoteResponse(
    from: string,
    req: RequestVoteRequest,
    resp: RequestVoteResponse,
  ): void {
    if (resp.term > this.#term && !(req.preVote && resp.voteGranted)) {
      this.#becomeFollower(resp.term, "");
      return;
    }
    if (req.preVote) {
      if (this.#role !== "precandidate" || req.term !== this.#term + 1) return;
    } else if (this.#role !== "candidate" || req.term !== this.#term) {
      return;
    }
    this.#votes.set(from, resp.voteGranted);
    const granted =
      [...this.#votes.entries()].filter(([name, yes]) => yes && this.#isVoter(name)).length;
    const rejected = [...this.#votes.values()].filter((yes) => !yes).length;
    if (granted >= this.quorumSize) {
      if (this.#role === "precandidate") this.#startElection("candidate", req.transfer);
      else this.#becomeLeader();
    } else if (rejected >= this.quorumSize) {
      this.#becomeFollower(this.#term, "");
    }
  }

  /**
   * Handles TimeoutNow: campaign at once, skipping pre-vote (thesis §3.10).
   * @returns the response
   */
  handleTimeoutNow(req: TimeoutNowRequest): TimeoutNowResponse {
    if (req.term < this.#term || !this.isMember) return { term: this.#term, success: false };
    if (req.term > this.#term) this.#becomeFollower(req.term, req.leaderName);
    this.#startElection("candidate", true);
    return { term: this.#term, success: true };
  }

  /**
   * Notes a leader's contact via a snapshot message (resets the election timer).
   * @param term the leader's term
   * @param leaderName the leader
   * @returns false when the term is stale and the message must be rejected
   */
  handleLeaderContact(term: number, leaderName: string): boolean {
    if (term < this.#term) return false;
    if (term > this.#term || this.#role !== "follower" || this.#leader !== leaderName) {
      this.#becomeFollower(term, leaderName);
    }
    this.#lastLeaderContactMs = this.#nowMs;
    this.#resetElectionTimer();
    return true;
  }

  /**
   * Replaces the log with an installed snapshot (Raft §7). Keeps a suffix that matches.
   * @param meta the snapshot's metadata
   * @returns false when the snapshot is older than what is committed here (nothing changes)
   */
  installSnapshot(meta: SnapshotMeta): boolean {
    if (meta.lastIndex <= this.#commitIndex) return false;
    // A stored suffix that is not kept here may survive in storage until the leader
    // overwrites it; it cannot match any future leader's log (its predecessor's term
    // differs from the snapshot's), so it never passes a consistency check.
    const keepSuffix = this.termAt(meta.lastIndex) === meta.lastTerm;
    this.#log = keepSuffix ? this.#log.slice(meta.lastIndex - this.#snapshotIndex) : [];
    this.#snapshotIndex = meta.lastIndex;
    this.#snapshotTerm = meta.lastTerm;
    this.#commitIndex = meta.lastIndex;
    this.#persistedIndex = keepSuffix
      ? Math.max(this.#persistedIndex, meta.lastIndex)
      : meta.lastIndex;
    if (!keepSuffix) this.#unstableFrom = Infinity;
    else if (this.#unstableFrom <= meta.lastIndex) this.#unstableFrom = meta.lastIndex + 1;
    const later = this.#configs.filter((config) =>
      config.index > meta.lastIndex && this.termAt(config.index) !== undefined
    );
    this.#configs = [{ index: meta.lastIndex, members: dedupe(meta.peers) }, ...later];
    return true;
  }

  /**
   * Drops in-memory entries up to `index` after a local snapshot covering them is durable.
   * @param index last index to drop (must be applied and committed)
   */
  compact(index: number): void {
    if (index <= this.#snapshotIndex) return;
    if (index > this.#commitIndex) {
      throw new RangeError(
        `Cannot compact through ${index}: committed only to ${this.#commitIndex}`,
      );
    }
    const term = this.termAt(index)!;
    const membersAtIndex = this.membersAt(index);
    this.#log = this.#log.slice(index - this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
    this.#configs = [
      { index, members: membersAtIndex },
      ...this.#configs.filter((config) => config.index > index),
    ];
  }

  /**
   * Reports the outcome of sending a snapshot to a follower.
   * @param to the follower
   * @param lastIndex the snapshot's last index
   * @param ok whether the follower installed it
   */
  snapshotSent(to: string, lastIndex: number, ok: boolean): void {
    const progress = this.#progress.get(to);
    if (progress === undefined || progress.mode !== "snapshot") return;
    progress.mode = "probe";
    progress.inflight = 0;
    progress.inflightBytes = 0;
    if (ok) {
      progress.lastResponseAtMs = this.#nowMs;
      progress.matchIndex = Math.max(progress.matchIndex, lastIndex);
      progress.nextIndex = progress.matchIndex + 1;
      this.#maybeCommit();
    } else {
      // A follower refuses a snapshot that is not ahead of its commit index: it already holds
      // those entries although our matchIndex is stale (its acks were lost), and probing at
      // matchIndex would lead straight back to the snapshot, forever. Probe at the end of
      // the log instead: the answer's hint says where the follower's log ends.
      progress.nextIndex = Math.max(progress.nextIndex, this.lastIndex + 1);
    }
    if (this.#role === "leader") this.#sendAppend(progress, false);
  }

  /**
   * Starts a linearizable read (ReadIndex, thesis §6.4).
   * @returns an id reported in `readsReady` once a quorum confirmed leadership
   * @throws NotLeaderError when not the leader
   */
  requestRead(): number {
    if (this.#role !== "leader") {
      throw new NotLeaderError(this.#leader, this.#peerInfo(this.#leader)?.connectionString ?? "");
    }
    const id = this.#nextReadId++;
    // The commit index is only known to be current once an entry of this term committed.
    if (!this.hasCommittedInTerm) {
      this.#pendingReads.push({ id, index: -1, heartbeatSeq: Infinity });
      return id;
    }
    this.#pendingReads.push({ id, index: this.#commitIndex, heartbeatSeq: this.#heartbeatSeq + 1 });
    this.#broadcastHeartbeat();
    if (this.quorumSize === 1) this.#confirmReads();
    return id;
  }

  /**
   * Starts a leadership transfer to `target` (thesis §3.10).
   * @param target a member's name
   * @throws NotLeaderError when not the leader
   * @throws LeadershipTransferError when the target is not a member
   */
  transferLeadership(target: string): void {
    if (this.#role !== "leader") {
      throw new NotLeaderError(this.#leader, this.#peerInfo(this.#leader)?.connectionString ?? "");
    }
    const progress = this.#progress.get(target);
    if (progress === undefined || !this.#isVoter(target)) {
      throw new LeadershipTransferError(
        `Cannot transfer leadership to ${target}: not a voting peer`,
      );
    }
    if (this.#transfer?.target === target) return;
    this.#transfer = {
      target,
      deadlineMs: this.#nowMs + this.#options.electionTimeoutMs,
      timeoutNowSent: false,
    };
    if (progress.matchIndex === this.lastIndex) this.#sendTimeoutNow(progress);
    else this.#sendAppend(progress, false);
  }

  /**
   * Starts replicating to a non-voting learner: it receives the log but counts toward no
   * quorum until a `JoinCommand` makes it a member (Raft thesis §4.2.1 catch-up).
   * @param peer the learner
   * @throws NotLeaderError when not the leader
   */
  addLearner(peer: PeerInfo): void {
    if (this.#role !== "leader") {
      throw new NotLeaderError(this.#leader, this.#peerInfo(this.#leader)?.connectionString ?? "");
    }
    if (peer.name === this.name || this.#progress.has(peer.name)) return;
    this.#addProgress(peer);
    this.#sendAppend(this.#progress.get(peer.name)!, true);
  }

  /**
   * Stops replicating to a learner that did not become a member.
   * @param name the learner's name
   */
  removeLearner(name: string): void {
    if (!this.#isVoter(name)) this.#progress.delete(name);
  }

  /**
   * The index a lease read may serve without a heartbeat round, or `undefined` when the
   * lease has lapsed. Safe only with check-quorum on (followers then refuse to vote while
   * they hear from this leader) and clocks that drift less than `leaseClockDrift`.
   * @returns the commit index, when the lease holds
   */
  leaseReadIndex(): number | undefined {
    if (this.#role !== "leader" || !this.#options.checkQuorum || this.#transfer) return undefined;
    if (!this.hasCommittedInTerm) return undefined;
    const sentTimes: number[] = [];
    for (const member of this.members) {
      if (member.name === this.name) sentTimes.push(this.#nowMs);
      else sentTimes.push(this.#progress.get(member.name)?.ackedHeartbeatSentAtMs ?? -Infinity);
    }
    sentTimes.sort((a, b) => b - a);
    const quorumSentAtMs = sentTimes[this.quorumSize - 1] ?? -Infinity;
    if (quorumSentAtMs < this.#leaseNotBeforeMs) return undefined;
    const leaseMs = this.#options.electionTimeoutMs * (1 - this.#options.leaseClockDrift);
    return this.#nowMs < quorumSentAtMs + leaseMs ? this.#commitIndex : undefined;
  }

  /** Abandons a pending transfer (e.g. after its deadline). */
  cancelTransfer(): void {
    this.#transfer = undefined;
  }

  /**
   * Changes the election timeout and heartbeat interval.
   * @param electionTimeoutMs new base election timeout
   * @param heartbeatIntervalMs new heartbeat interval
   */
  setTimeouts(electionTimeoutMs: number, heartbeatIntervalMs: number): void {
    if (!(electionTimeoutMs > 0) || !(heartbeatIntervalMs > 0)) {
      throw new RangeError("Timeouts must be positive");
    }
    this.#options.electionTimeoutMs = electionTimeoutMs;
    this.#options.heartbeatIntervalMs = heartbeatIntervalMs;
  }

  /**
   * Drains every output produced since the last call.
   * @returns the outputs; see {@link Ready} for the ordering rules
   */
  takeReady(): Ready {
    if (this.#replicationPending) {
      this.#replicationPending = false;
      this.#replicateToAll();
    }
    const entries = this.#unstableFrom <= this.lastIndex
      ? this.entriesBetween(
        Math.max(this.#unstableFrom, this.#snapshotIndex + 1),
        this.lastIndex + 1,
      )
      : [];
    const ready: Ready = {
      hardState: this.#hardStateDirty ? { term: this.#term, votedFor: this.#votedFor } : undefined,
      entries,
      messages: this.#messages,
      commitIndex: this.#commitIndex,
      snapshotsNeeded: this.#snapshotsNeeded,
      readsReady: this.#readsReady,
      events: this.#events,
    };
    this.#unstableFrom = Infinity;
    this.#hardStateDirty = false;
    this.#messages = [];
    this.#snapshotsNeeded = [];
    this.#readsReady = [];
    this.#events = [];
    return ready;
  }

  /** Whether {@link takeReady} would return anything. */
  get hasReady(): boolean {
    return this.#hardStateDirty || this.#replicationPending ||
      this.#unstableFrom <= this.lastIndex ||
      this.#messages.length > 0 ||
      this.#snapshotsNeeded.length > 0 || this.#readsReady.length > 0 || this.#events.length > 0;
  }

  // ---------------------------------------------------------------- internals

  #withSelf(peers: PeerInfo[]): PeerInfo[] {
    if (peers.some((peer) => peer.name === this.name)) return peers;
    return [{ name: this.name, connectionString: this.#connectionString }, ...peers];
  }

  #peerInfo(name: string): PeerInfo | undefined {
    return this.members.find((member) => member.name === name) ?? this.#progress.get(name)?.peer;
  }

  #isVoter(name: string): boolean {
    return this.members.some((member) => member.name === name);
  }

  #resetElectionTimer(): void {
    const base = this.#options.electionTimeoutMs;
    this.#electionDeadlineMs = this.#nowMs + base + Math.floor(this.#options.random.next() * base);
  }

  #setRole(role: Role): void {
    const before = this.state;
    this.#role = role;
    if (this.state !== before) {
      this.#events.push({ type: "stateChange", value: this.state, prevValue: before });
    }
  }

  #setLeader(leader: string): void {
    if (leader === this.#leader) return;
    this.#events.push({ type: "leaderChange", value: leader, prevValue: this.#leader });
    this.#leader = leader;
  }

  #setTerm(term: number): void {
    if (term === this.#term) return;
    this.#events.push({ type: "termChange", value: term, prevValue: this.#term });
    this.#term = term;
    this.#votedFor = "";
    this.#hardStateDirty = true;
  }

  #becomeFollower(term: number, leader: string): void {
    this.#setTerm(term);
    this.#setRole("follower");
    this.#setLeader(leader);
    this.#progress.clear();
    this.#votes.clear();
    this.#transfer = undefined;
    this.#pendingReads = [];
    this.#resetElectionTimer();
  }

  #startElection(role: "precandidate" | "candidate", transfer: boolean): void {
    const campaignTerm = this.#term + 1;
    if (role === "candidate") {
      this.#setTerm(campaignTerm);
      this.#votedFor = this.name;
      this.#hardStateDirty = true;
    }
    this.#setRole(role);
    this.#setLeader("");
    this.#progress.clear();
    this.#votes = new Map([[this.name, true]]);
    this.#resetElectionTimer();
    if (this.quorumSize <= 1) {
      if (role === "precandidate") this.#startElection("candidate", transfer);
      else this.#becomeLeader();
      return;
    }
    for (const member of this.members) {
      if (member.name === this.name) continue;
      this.#messages.push({
        kind: "requestVote",
        to: member,
        request: {
          term: campaignTerm,
          lastLogIndex: this.lastIndex,
          lastLogTerm: this.lastTerm,
          candidateName: this.name,
          preVote: role === "precandidate",
          transfer,
        },
      });
    }
  }

  #becomeLeader(): void {
    this.#setRole("leader");
    this.#setLeader(this.name);
    this.#votes.clear();
    this.#progress.clear();
    for (const member of this.members) {
      if (member.name !== this.name) this.#addProgress(member);
    }
    this.#quorumCheckDeadlineMs = this.#nowMs + this.#options.electionTimeoutMs;
    // Raft §5.4.2 and §8: entries of earlier terms commit only through an entry of this
    // term, so a new leader appends a no-op at once.
    const nop = textEncoder.encode(JSON.stringify({ commandName: NOP_COMMAND_NAME }));
    this.#appendLocal([{
      index: this.lastIndex + 1,
      term: this.#term,
      commandName: NOP_COMMAND_NAME,
      command: nop,
    }]);
    this.#broadcastHeartbeat();
  }

  #addProgress(peer: PeerInfo): void {
    this.#progress.set(peer.name, {
      peer,
      matchIndex: 0,
      nextIndex: this.lastIndex + 1,
      mode: "probe",
      inflight: 0,
      inflightBytes: 0,
      lastResponseAtMs: this.#nowMs,
      ackedHeartbeatSeq: 0,
      ackedHeartbeatSentAtMs: -Infinity,
    });
  }

  #appendLocal(entries: LogEntry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    if (first.index !== this.lastIndex + 1) {
      throw new RangeError(
        `Cannot append entry at index ${first.index}: log ends at index ${this.lastIndex}`,
      );
    }
    for (const entry of entries) {
      this.#log.push(entry);
      this.#noteConfigEntry(entry);
    }
    this.#unstableFrom = Math.min(this.#unstableFrom, first.index);
  }

  #truncateFrom(index: number): void {
    this.#log.length = index - this.#snapshotIndex - 1;
    this.#unstableFrom = Math.min(this.#unstableFrom, index);
    if (this.#persistedIndex >= index) this.#persistedIndex = index - 1;
    const before = this.members;
    this.#configs = this.#configs.filter((config, i) => i === 0 || config.index < index);
    this.#emitMembershipDiff(before, this.members);
  }

  #noteConfigEntry(entry: LogEntry): void {
    if (entry.commandName === CONFIG_COMMAND_NAME) {
      const members = parseConfigCommand(entry.command);
      if (members === undefined) return;
      const before = this.members;
      this.#configs.push({ index: entry.index, members });
      this.#emitMembershipDiff(before, members);
      return;
    }
    if (entry.commandName !== JOIN_COMMAND_NAME && entry.commandName !== LEAVE_COMMAND_NAME) return;
    const peer = parsePeerCommand(entry.command);
    if (peer === undefined) return;
    const before = this.members;
    const after = entry.commandName === JOIN_COMMAND_NAME
      ? dedupe([...before.filter((member) => member.name !== peer.name), peer])
      : before.filter((member) => member.name !== peer.name);
    this.#configs.push({ index: entry.index, members: after });
    this.#emitMembershipDiff(before, after);
  }

  #emitMembershipDiff(before: PeerInfo[], after: PeerInfo[]): void {
    for (const peer of after) {
      if (!before.some((member) => member.name === peer.name)) {
        this.#events.push({ type: "addPeer", value: peer, prevValue: undefined });
        if (this.#role === "leader" && peer.name !== this.name && !this.#progress.has(peer.name)) {
          this.#addProgress(peer);
        }
      }
    }
    for (const peer of before) {
      if (!after.some((member) => member.name === peer.name)) {
        this.#events.push({ type: "removePeer", value: peer, prevValue: undefined });
        this.#progress.delete(peer.name);
      }
    }
  }

  #lastIndexOfTerm(term: number, atOrBelow: number): number | undefined {
    for (let index = Math.min(atOrBelow, this.lastIndex); index > this.#snapshotIndex; index--) {
      const t = this.termAt(index)!;
      if (t === term) return index;
      if (t < term) return undefined;
    }
    return undefined;
  }

  #maybeCommit(): void {
    if (this.#role !== "leader") return;
    const matches: number[] = [];
    for (const member of this.members) {
      if (member.name === this.name) matches.push(this.#persistedIndex);
      else matches.push(this.#progress.get(member.name)?.matchIndex ?? 0);
    }
    if (matches.length === 0) return;
    matches.sort((a, b) => b - a);
    const candidate = matches[this.quorumSize - 1]!;
    // Raft §5.4.2: never commit an entry from an earlier term by counting replicas.
    if (candidate > this.#commitIndex && this.termAt(candidate) === this.#term) {
      this.#commitIndex = candidate;
      this.#confirmReadsAwaitingCommit();
      if (!this.isMember && !this.membershipChangePending) {
        // A leader removed from the configuration steps down once the change commits (§6).
        this.#becomeFollower(this.#term, "");
        return;
      }
      // Followers learn the new commit index from the next AppendEntries or heartbeat (as in
      // etcd): a message per commit per follower would double the leader's sends at low load.
    }
  }

  #replicateToAll(): void {
    for (const progress of this.#progress.values()) this.#sendAppend(progress, false);
  }

  #broadcastHeartbeat(): void {
    this.#heartbeatDeadlineMs = this.#nowMs + this.#options.heartbeatIntervalMs;
    this.#heartbeatSeq++;
    this.#heartbeatSentAtMs.set(this.#heartbeatSeq, this.#nowMs);
    this.#heartbeatSentAtMs.delete(this.#heartbeatSeq - 256);
    for (const progress of this.#progress.values()) this.#sendAppend(progress, true);
  }

  /**
   * Sends what a follower is missing. In `replicate` mode entries stream optimistically
   * (several messages in flight); in `probe` mode one message at a time finds the match.
   */
  #sendAppend(progress: Progress, heartbeat: boolean): void {
    if (this.#role !== "leader") return;
    if (progress.mode === "snapshot") {
      if (heartbeat) this.#pushAppend(progress, progress.matchIndex, [], true);
      return;
    }
    const prevIndex = progress.nextIndex - 1;
    if (prevIndex < this.#snapshotIndex) {
      progress.mode = "snapshot";
      this.#snapshotsNeeded.push(progress.peer);
      return;
    }
    const hasNew = progress.nextIndex <= this.lastIndex;
    if (progress.mode === "probe") {
      // One probe at a time at nextIndex - 1 until a success shows where the logs match;
      // heartbeats probe too, so a follower with nothing new to receive is still found.
      if (progress.inflight > 0 && !heartbeat) return;
      const entries = hasNew && progress.inflight === 0 ? this.#batchFrom(progress.nextIndex) : [];
      this.#pushAppend(progress, prevIndex, entries, heartbeat);
      progress.inflight = 1;
      return;
    }
    if (
      hasNew && progress.inflight < this.#options.maxInflightMessages &&
      progress.inflightBytes < this.#options.maxInflightBytes
    ) {
      const entries = this.#batchFrom(progress.nextIndex);
      this.#pushAppend(progress, prevIndex, entries, heartbeat);
      progress.inflight++;
      progress.inflightBytes += commandBytes(entries);
      progress.nextIndex += entries.length;
      // Keep streaming while the window allows: a turn's entries go in as few messages as possible.
      if (progress.nextIndex <= this.lastIndex) this.#sendAppend(progress, false);
      return;
    }
    if (heartbeat) {
      // A heartbeat checks only what is known to match, so it never fails on a lagging follower.
      const matchPrev = Math.max(progress.matchIndex, this.#snapshotIndex);
      this.#pushAppend(progress, matchPrev, [], true);
    }
  }

  #batchFrom(from: number): LogEntry[] {
    const batch: LogEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex; index++) {
      const entry = this.#log[index - this.#snapshotIndex - 1]!;
      if (
        batch.length > 0 && (batch.length >= this.#options.maxEntriesPerMessage ||
          bytes + entry.command.length > this.#options.maxBytesPerMessage)
      ) break;
      batch.push(entry);
      bytes += entry.command.length;
    }
    return batch;
  }

  #pushAppend(
    progress: Progress,
    prevIndex: number,
    entries: LogEntry[],
    carriesSeq: boolean,
  ): void {
    this.#messages.push({
      kind: "appendEntries",
      to: progress.peer,
      request: {
        term: this.#term,
        prevLogIndex: prevIndex,
        prevLogTerm: this.termAt(prevIndex) ?? 0,
        commitIndex: this.#commitIndex,
        leaderName: this.name,
        entries,
        heartbeatSeq: carriesSeq ? this.#heartbeatSeq : 0,
      },
    });
  }

  #sendTimeoutNow(progress: Progress): void {
    // Once per transfer: a TimeoutNow that arrives late makes its target campaign with votes
    // that bypass the voters' lease, so each one suspends lease reads until it is harmless.
    if (this.#transfer === undefined || this.#transfer.timeoutNowSent) return;
    this.#transfer.timeoutNowSent = true;
    const maxDelayMs = this.#maxMessageDelayMs ?? this.#options.electionTimeoutMs;
    // The TimeoutNow, then the target's vote requests, each may take up to maxDelayMs.
    this.#leaseNotBeforeMs = Math.max(this.#leaseNotBeforeMs, this.#nowMs + 2 * maxDelayMs);
    this.#messages.push({
      kind: "timeoutNow",
      to: progress.peer,
      request: { term: this.#term, leaderName: this.name },
    });
  }

  #hasQuorumContact(): boolean {
    let active = 0;
    for (const member of this.members) {
      if (member.name === this.name) {
        active++;
        continue;
      }
      const progress = this.#progress.get(member.name);
      if (progress && this.#nowMs - progress.lastResponseAtMs < this.#options.electionTimeoutMs) {
        active++;
      }
    }
    return active >= this.quorumSize;
  }

  #confirmReadsAwaitingCommit(): void {
    let changed = false;
    for (const read of this.#pendingReads) {
      if (read.index === -1 && this.hasCommittedInTerm) {
        read.index = this.#commitIndex;
        read.heartbeatSeq = this.#heartbeatSeq + 1;
        changed = true;
      }
    }
    if (changed) {
      this.#broadcastHeartbeat();
      if (this.quorumSize === 1) this.#confirmReads();
    }
  }

  #confirmReads(): void {
    if (this.#pendingReads.length === 0) return;
    const remaining: PendingRead[] = [];
    for (const read of this.#pendingReads) {
      let acks = 0;
      for (const member of this.members) {
        if (member.name === this.name) acks++;
        else if ((this.#progress.get(member.name)?.ackedHeartbeatSeq ?? 0) >= read.heartbeatSeq) {
          acks++;
        }
      }
      if (read.index >= 0 && acks >= this.quorumSize) {
        this.#readsReady.push({ id: read.id, index: read.index });
      } else remaining.push(read);
    }
    this.#pendingReads = remaining;
  }
}

function commandBytes(entries: LogEntry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.command.length;
  return bytes;
}

function dedupe(peers: PeerInfo[]): PeerInfo[] {
  const byName = new Map<string, PeerInfo>();
  for (const peer of peers) {
    byName.set(peer.name, { name: peer.name, connectionString: peer.connectionString });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function parseConfigCommand(bytes: Uint8Array): PeerInfo[] | undefined {
  try {
    const value = JSON.parse(textDecoder.decode(bytes)) as { peers?: unknown };
    if (!Array.isArray(value.peers)) return undefined;
    const peers: PeerInfo[] = [];
    for (const item of value.peers as { name?: unknown; connectionString?: unknown }[]) {
      if (typeof item?.name !== "string" || item.name === "") return undefined;
      peers.push({
        name: item.name,
        connectionString: typeof item.connectionString === "string" ? item.connectionString : "",
      });
    }
    return dedupe(peers);
  } catch {
    return undefined;
  }
}

function parsePeerCommand(bytes: Uint8Array): PeerInfo | undefined {
  try {
    const value = JSON.parse(textDecoder.decode(bytes)) as {
      name?: unknown;
      connectionString?: unknown;
    };
    if (typeof value.name !== "string" || value.name === "") return undefined;
    return {
      name: value.name,
      connectionString: typeof value.connectionString === "string" ? value.connectionString : "",
    };
  } catch {
    return undefined;
  }
}
