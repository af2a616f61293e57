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
import {
  CANDIDATE,
  FOLLOWER,
  LEADER,
  MAX_LOG_ENTRIES_PER_REQUEST,
  type ServerState,
} from "./constants.ts";
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

import {
  CONFIG_COMMAND_NAME,
  ConfigurationHistory,
  encodeConfigCommand,
  JOIN_COMMAND_NAME,
  LEAVE_COMMAND_NAME,
  type MembershipDiff,
  NOP_COMMAND_NAME,
} from "./membership.ts";
import { Progress } from "./progress.ts";
import { RaftLog } from "./raft_log.ts";
import { leaseHolds, ReadIndexQueue, type ReadyRead } from "./reads.ts";

export { CONFIG_COMMAND_NAME, JOIN_COMMAND_NAME, LEAVE_COMMAND_NAME, NOP_COMMAND_NAME };

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
  /**
   * Followers and learners whose match index or mode changed (a leader's only), in the
   * order of their first change: what waits on a peer's progress (learner catch-up before
   * a join) is told here instead of polling.
   */
  progressChanged: string[];
}

/** Internal role of a {@link Consensus}; `precandidate` is reported as `candidate`. */
export type Role = "follower" | "precandidate" | "candidate" | "leader";

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
  #bootstrapPeers: PeerInfo[];
  #restored = false;

  // Persistent state (Figure 2), made durable through Ready.hardState.
  #term = 0;
  #votedFor = "";
  #hardStateDirty = false;

  #role: Role = "follower";
  #leader = "";
  readonly #log = new RaftLog();
  readonly #configs = new ConfigurationHistory();

  #nowMs = 0;
  #electionDeadlineMs = 0;
  #heartbeatDeadlineMs = 0;
  #lastLeaderContactMs = -Infinity;
  #quorumCheckDeadlineMs = 0;
  /** A restarted server refuses (pre-)votes until then: it may have promised a lease. */
  #voteRefusalUntilMs = -Infinity;

  // Candidate state.
  #votes = new Map<string, boolean>();

  // Leader state.
  #progress = new Map<string, Progress>();
  #heartbeatSeq = 0;
  /** Send times of recent heartbeat rounds, by sequence number (for leases). */
  #heartbeatSentAtMs = new Map<number, number>();
  readonly #reads = new ReadIndexQueue();
  #transfer: { target: string; deadlineMs: number; timeoutNowSent: boolean } | undefined;
  /**
   * Lease reads count only heartbeats sent at or after this time: votes granted to a
   * transfer's target bypass the voters' lease.
   */
  #leaseNotBeforeMs = -Infinity;

  // Outputs, drained by takeReady().
  #messages: OutboundMessage[] = [];
  #replicationPending = false;
  /** A heartbeat round with this sequence number is owed to reads (sent at takeReady). */
  #readRoundSeq = 0;
  #events: CoreEvent[] = [];
  #snapshotsNeeded: PeerInfo[] = [];
  #readsReady: ReadyRead[] = [];
  #progressChanged = new Set<string>();

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
      maxEntriesPerMessage: options.maxEntriesPerMessage ?? MAX_LOG_ENTRIES_PER_REQUEST,
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
    return this.#log.commitIndex;
  }
  /** Index of the last log entry (the snapshot index when the log is empty). */
  get lastIndex(): number {
    return this.#log.lastIndex;
  }
  /** Term of the last log entry. */
  get lastTerm(): number {
    return this.#log.lastTerm;
  }
  /** Index of the newest snapshot point (0 if none). */
  get snapshotIndex(): number {
    return this.#log.snapshotIndex;
  }
  /** Term at the snapshot point. */
  get snapshotTerm(): number {
    return this.#log.snapshotTerm;
  }
  /** Last index known durable. */
  get persistedIndex(): number {
    return this.#log.persistedIndex;
  }
  /** The current membership (latest configuration in the log, Raft §6). */
  get members(): PeerInfo[] {
    return this.#configs.members;
  }
  /** Whether a membership change is appended but not committed. */
  get membershipChangePending(): boolean {
    return this.#configs.latestIndex > this.#log.commitIndex;
  }
  /**
   * Whether the entry at the commit index is of the current term: a new leader knows the
   * commit index only from then on (its no-op committed, Raft §8).
   */
  get hasCommittedInTerm(): boolean {
    return this.#log.termAt(this.#log.commitIndex) === this.#term;
  }
  /** Whether this server is a voting member of its own current configuration. */
  get isMember(): boolean {
    return this.#configs.isVoter(this.name);
  }
  /** Number of members. */
  get memberCount(): number {
    return this.members.length;
  }
  /** Votes needed to win an election or commit. */
  get quorumSize(): number {
    return this.#configs.quorumSize;
  }
  /** Clock time of the last message from a leader of the current or an earlier term. */
  get lastLeaderContactMs(): number {
    return this.#lastLeaderContactMs;
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
      voter: this.#configs.isVoter(p.peer.name),
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
    return this.#log.termAt(index);
  }

  /**
   * Entries with `from <= index < to` held in memory.
   * @throws RangeError when the range is compacted or past the end
   */
  entriesBetween(from: number, to: number): LogEntry[] {
    return this.#log.entriesBetween(from, to);
  }

  /**
   * Membership as of `index` (for snapshot metadata).
   * @param index log index at or after the snapshot point
   */
  membersAt(index: number): PeerInfo[] {
    return this.#configs.membersAt(index);
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Loads recovered state. Called once, before any other input; a restart uses a new
   * instance.
   * @param state what storage recovered
   * @param nowMs current time
   * @throws TypeError when called twice
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
    this.#log.restore(state.snapshot, state.entries);
    const base = state.snapshot
      ? state.snapshot.peers
      : this.#joinExisting
      ? []
      : this.#withSelf(this.#bootstrapPeers);
    this.#configs.reset(this.#log.snapshotIndex, base);
    for (
      const entry of this.#log.entriesBetween(this.#log.snapshotIndex + 1, this.#log.lastIndex + 1)
    ) {
      this.#configs.noteEntry(entry);
    }
    const pristine = state.snapshot === undefined && this.#log.lastIndex === 0 &&
      this.#term === 0;
    if (pristine && !this.#joinExisting) {
      // Bootstrap (as etcd does): every founding server writes the same first entry holding
      // the founding membership, committed by construction. Servers that join later learn
      // the whole membership from the log instead of from their own options.
      this.#setTerm(1);
      this.#appendLocal([{
        index: 1,
        term: 1,
        commandName: CONFIG_COMMAND_NAME,
        command: encodeConfigCommand(this.members),
      }]);
      this.#log.commitTo(1);
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
   * @throws MembershipChangeInProgressError for a second uncommitted membership change, or
   *   for a change before this leader committed an entry of its term
   */
  propose(commandName: string, command: Uint8Array): { index: number; term: number } {
    if (this.#role !== "leader") throw this.#notLeader();
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
    this.#log.persisted(index, term);
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
      commitIndex: this.#log.commitIndex,
      success,
      conflictTerm,
      heartbeatSeq: req.heartbeatSeq,
    });
    if (req.term < this.#term) return reply(false, this.lastIndex);
    this.#noteLeaderContact(req.term, req.leaderName);

    let prevIndex = req.prevLogIndex;
    let entries = req.entries;
    const snapshotIndex = this.#log.snapshotIndex;
    if (prevIndex < snapshotIndex) {
      // Entries up to our snapshot are committed and therefore match (Log Matching).
      const skip = snapshotIndex - prevIndex;
      entries = entries.slice(skip);
      prevIndex = snapshotIndex;
      if (entries.length === 0) {
        return reply(true, Math.max(req.prevLogIndex + req.entries.length, 0));
      }
      if (entries[0]!.index !== prevIndex + 1) {
        return reply(true, req.prevLogIndex + req.entries.length);
      }
    } else {
      const localTerm = this.#log.termAt(prevIndex);
      if (localTerm === undefined) return reply(false, this.lastIndex, 0);
      if (localTerm !== req.prevLogTerm) {
        // Fast backtracking: point the leader at the first entry of the conflicting term.
        return reply(false, this.#log.firstIndexOfTermAt(prevIndex), localTerm);
      }
    }

    const changedFrom = this.#log.mergeFromLeader(entries);
    if (changedFrom !== undefined) this.#noteLogChange(changedFrom, entries);
    const lastNew = prevIndex + entries.length;
    // Raft Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    this.#log.commitTo(Math.min(req.commitIndex, lastNew));
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
    if (resp.commitIndex <= this.lastIndex) progress.ack(resp.commitIndex);
    if (progress.mode === "probe" || req.entries.length > 0) {
      progress.freeInflight(entryBytes(req.entries));
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
      if (resp.success && resp.index <= this.lastIndex && progress.ack(resp.index)) {
        this.#maybeCommit();
      }
      return;
    }
    if (resp.success) {
      if (progress.ack(resp.index)) this.#maybeCommit();
      // Only a success at the probed position proves everything before nextIndex matches;
      // a heartbeat's success (checked at matchIndex) does not.
      if (progress.mode === "probe" && progress.matchIndex >= progress.nextIndex - 1) {
        progress.becomeReplicate();
      }
      if (this.#transfer?.target === from && progress.matchIndex === this.lastIndex) {
        this.#sendTimeoutNow(progress);
      }
    } else {
      let hint: number;
      if (resp.conflictTerm === 0) {
        hint = resp.index + 1;
      } else {
        const lastOfTerm = this.#log.lastIndexOfTerm(resp.conflictTerm, req.prevLogIndex);
        hint = lastOfTerm !== undefined ? lastOfTerm + 1 : resp.index;
      }
      // A stale rejection, for a position already known to match, changes nothing.
      if (!progress.reject(req.prevLogIndex, hint)) return;
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
      progress.freeInflight(0);
      return;
    }
    // Heartbeats carry nothing to resend, and while a snapshot streams its outcome decides.
    if (req.entries.length === 0 || progress.mode === "snapshot") return;
    // The pipeline has a hole: fall back to probing from the last known match.
    progress.becomeProbe();
  }

  /**
   * Handles RequestVote or a pre-vote (Raft §5.2, §5.4.1; thesis §9.6).
   * @returns the response, to be returned only after the resulting Ready is durable
   */
  handleRequestVote(req: RequestVoteRequest): RequestVoteResponse {
    const refuse = (): RequestVoteResponse => ({
      term: this.#term,
      voteGranted: false,
      preVote: req.preVote,
    });
    const inLease = this.#options.checkQuorum && !req.transfer && (this.#role === "leader" ||
      this.#nowMs < this.#voteRefusalUntilMs ||
      (this.#leader !== "" &&
        this.#nowMs - this.#lastLeaderContactMs < this.#options.electionTimeoutMs));
    // A server that hears from a live leader ignores disruptive candidates (thesis §4.2.3).
    if (req.term > this.#term && inLease) return refuse();
    // The candidate need not be in this server's configuration (thesis §4.1, as in etcd): a
    // new member that has not yet received the entry adding it, or the configuration of the
    // leader it must elect, would otherwise refuse every vote and could stall the cluster.
    // Removed servers do not campaign (tick), and the lease check above keeps them from
    // disrupting a live leader.
    // Raft §5.4.1: only a candidate whose log is at least as up-to-date as ours.
    const logOk = req.lastLogTerm > this.lastTerm ||
      (req.lastLogTerm === this.lastTerm && req.lastLogIndex >= this.lastIndex);
    if (req.preVote) {
      const granted = logOk && (req.term > this.#term ||
        (req.term === this.#term && this.#role !== "leader" && this.#leader === ""));
      return { term: this.#term, voteGranted: granted, preVote: true };
    }
    if (req.term < this.#term) return refuse();
    if (req.term > this.#term) this.#becomeFollower(req.term, "");
    const canVote = this.#votedFor === "" || this.#votedFor === req.candidateName;
    if (!canVote || !logOk) return refuse();
    if (this.#votedFor !== req.candidateName) {
      this.#votedFor = req.candidateName;
      this.#hardStateDirty = true;
    }
    this.#resetElectionTimer();
    return { term: this.#term, voteGranted: true, preVote: false };
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
    let granted = 0;
    let rejected = 0;
    for (const [name, yes] of this.#votes) {
      if (!yes) rejected++;
      else if (this.#configs.isVoter(name)) granted++;
    }
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
    this.#noteLeaderContact(term, leaderName);
    return true;
  }

  /**
   * Replaces the log with an installed snapshot (Raft §7). Keeps a suffix that matches.
   * @param meta the snapshot's metadata
   * @returns false when the snapshot is older than what is committed here (nothing changes)
   */
  installSnapshot(meta: SnapshotMeta): boolean {
    if (!this.#log.installSnapshot(meta.lastIndex, meta.lastTerm)) return false;
    this.#configs.install(
      meta.lastIndex,
      meta.peers,
      (index) => this.#log.termAt(index) !== undefined,
    );
    return true;
  }

  /**
   * Drops in-memory entries up to `index` after a local snapshot covering them is durable.
   * @param index last index to drop (must be committed)
   * @throws RangeError when `index` is not committed
   */
  compact(index: number): void {
    if (index <= this.#log.snapshotIndex) return;
    this.#log.compact(index);
    this.#configs.compact(index);
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
    if (ok) {
      progress.lastResponseAtMs = this.#nowMs;
      progress.snapshotDone(lastIndex, true, 0);
      this.#maybeCommit();
    } else {
      // A follower refuses a snapshot that is not ahead of its commit index: it already holds
      // those entries although our matchIndex is stale (its acks were lost), and probing at
      // matchIndex would lead straight back to the snapshot, forever. Probe at the end of
      // the log instead: the answer's hint says where the follower's log ends.
      progress.snapshotDone(lastIndex, false, Math.max(progress.nextIndex, this.lastIndex + 1));
    }
    if (this.#role === "leader") this.#sendAppend(progress, false);
  }

  /**
   * Starts a linearizable read (ReadIndex, thesis §6.4).
   * @returns an id reported in `readsReady` once a quorum confirmed leadership
   * @throws NotLeaderError when not the leader
   */
  requestRead(): number {
    if (this.#role !== "leader") throw this.#notLeader();
    // The commit index is only known to be current once an entry of this term committed.
    if (!this.hasCommittedInTerm) return this.#reads.request(undefined, Infinity);
    const id = this.#reads.request(this.#log.commitIndex, this.#heartbeatSeq + 1);
    // The heartbeat round goes out at takeReady(): every read of one turn shares it (and a
    // round sent meanwhile, by a tick, confirms them as well).
    this.#readRoundSeq = this.#heartbeatSeq + 1;
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
    if (this.#role !== "leader") throw this.#notLeader();
    const progress = this.#progress.get(target);
    if (progress === undefined || !this.#configs.isVoter(target)) {
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
    if (this.#role !== "leader") throw this.#notLeader();
    if (peer.name === this.name || this.#progress.has(peer.name)) return;
    this.#addProgress(peer);
    this.#sendAppend(this.#progress.get(peer.name)!, true);
  }

  /**
   * Stops replicating to a learner that did not become a member.
   * @param name the learner's name
   */
  removeLearner(name: string): void {
    if (!this.#configs.isVoter(name)) this.#progress.delete(name);
  }

  /**
   * The index a lease read may serve without a heartbeat round, or `undefined` when the
   * lease has lapsed. Safe only with check-quorum on (followers then refuse to vote while
   * they hear from this leader, and for an election timeout after restarting), clocks that
   * drift less than `leaseClockDrift`, and messages delayed less than `maxMessageDelayMs`.
   * @returns the commit index, when the lease holds
   */
  leaseReadIndex(): number | undefined {
    if (this.#role !== "leader" || !this.#options.checkQuorum || this.#transfer) return undefined;
    if (!this.hasCommittedInTerm) return undefined;
    const ackedSentAtMs = this.members.map((member) =>
      member.name === this.name
        ? this.#nowMs
        : this.#progress.get(member.name)?.ackedHeartbeatSentAtMs ?? -Infinity
    );
    const holds = leaseHolds(ackedSentAtMs, this.quorumSize, {
      nowMs: this.#nowMs,
      electionTimeoutMs: this.#options.electionTimeoutMs,
      clockDrift: this.#options.leaseClockDrift,
      notBeforeMs: this.#leaseNotBeforeMs,
    });
    return holds ? this.#log.commitIndex : undefined;
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
      for (const progress of this.#progress.values()) this.#sendAppend(progress, false);
    }
    if (this.#readRoundSeq > this.#heartbeatSeq && this.#role === "leader") {
      this.#broadcastHeartbeat();
    }
    const ready: Ready = {
      hardState: this.#hardStateDirty ? { term: this.#term, votedFor: this.#votedFor } : undefined,
      entries: this.#log.takeUnstable(),
      messages: this.#messages,
      commitIndex: this.#log.commitIndex,
      snapshotsNeeded: this.#snapshotsNeeded,
      readsReady: this.#readsReady,
      events: this.#events,
      progressChanged: [...this.#progressChanged],
    };
    this.#progressChanged.clear();
    this.#hardStateDirty = false;
    this.#messages = [];
    this.#snapshotsNeeded = [];
    this.#readsReady = [];
    this.#events = [];
    return ready;
  }

  /** Whether {@link takeReady} would return anything. */
  get hasReady(): boolean {
    return this.#hardStateDirty || this.#replicationPending || this.#log.hasUnstable ||
      (this.#readRoundSeq > this.#heartbeatSeq && this.#role === "leader") ||
      this.#messages.length > 0 || this.#snapshotsNeeded.length > 0 ||
      this.#readsReady.length > 0 || this.#events.length > 0 || this.#progressChanged.size > 0;
  }

  // ---------------------------------------------------------------- roles

  #withSelf(peers: PeerInfo[]): PeerInfo[] {
    if (peers.some((peer) => peer.name === this.name)) return peers;
    return [{ name: this.name, connectionString: this.#connectionString }, ...peers];
  }

  #peerInfo(name: string): PeerInfo | undefined {
    return this.members.find((member) => member.name === name) ?? this.#progress.get(name)?.peer;
  }

  #notLeader(): NotLeaderError {
    return new NotLeaderError(this.#leader, this.#peerInfo(this.#leader)?.connectionString ?? "");
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

  #noteLeaderContact(term: number, leaderName: string): void {
    if (term > this.#term || this.#role !== "follower" || this.#leader !== leaderName) {
      this.#becomeFollower(term, leaderName);
    }
    this.#lastLeaderContactMs = this.#nowMs;
    this.#resetElectionTimer();
  }

  #becomeFollower(term: number, leader: string): void {
    this.#setTerm(term);
    this.#setRole("follower");
    this.#setLeader(leader);
    this.#progress.clear();
    this.#votes.clear();
    this.#transfer = undefined;
    this.#reads.clear();
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
    const progress = new Progress(peer, this.lastIndex + 1, this.#nowMs);
    progress.onChange = () => this.#progressChanged.add(peer.name);
    this.#progress.set(peer.name, progress);
  }

  // ---------------------------------------------------------------- log and membership

  #appendLocal(entries: LogEntry[]): void {
    this.#log.append(entries);
    for (const entry of entries) this.#applyMembershipDiff(this.#configs.noteEntry(entry));
  }

  /** After the log changed from `from` on (truncated, then `entries` appended). */
  #noteLogChange(from: number, entries: LogEntry[]): void {
    this.#applyMembershipDiff(this.#configs.truncateFrom(from));
    for (const entry of entries) {
      if (entry.index >= from) this.#applyMembershipDiff(this.#configs.noteEntry(entry));
    }
  }

  #applyMembershipDiff(diff: MembershipDiff | undefined): void {
    if (diff === undefined) return;
    const { before, after } = diff;
    for (const peer of after) {
      if (before.some((member) => member.name === peer.name)) continue;
      this.#events.push({ type: "addPeer", value: peer, prevValue: undefined });
      if (this.#role === "leader" && peer.name !== this.name && !this.#progress.has(peer.name)) {
        this.#addProgress(peer);
      }
    }
    for (const peer of before) {
      if (after.some((member) => member.name === peer.name)) continue;
      this.#events.push({ type: "removePeer", value: peer, prevValue: undefined });
      this.#progress.delete(peer.name);
    }
  }

  // ---------------------------------------------------------------- replication

  #maybeCommit(): void {
    if (this.#role !== "leader") return;
    const matches: number[] = [];
    for (const member of this.members) {
      if (member.name === this.name) matches.push(this.#log.persistedIndex);
      else matches.push(this.#progress.get(member.name)?.matchIndex ?? 0);
    }
    if (matches.length === 0) return;
    matches.sort((a, b) => b - a);
    const candidate = matches[this.quorumSize - 1]!;
    // Raft §5.4.2: never commit an entry from an earlier term by counting replicas.
    if (candidate > this.#log.commitIndex && this.#log.termAt(candidate) === this.#term) {
      this.#log.commitTo(candidate);
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
    if (prevIndex < this.#log.snapshotIndex) {
      progress.becomeSnapshot();
      this.#snapshotsNeeded.push(progress.peer);
      return;
    }
    const hasNew = progress.nextIndex <= this.lastIndex;
    const paused = progress.isPaused(
      this.#options.maxInflightMessages,
      this.#options.maxInflightBytes,
    );
    if (progress.mode === "probe") {
      // One probe at a time at nextIndex - 1 until a success shows where the logs match;
      // heartbeats probe too, so a follower with nothing new to receive is still found.
      if (paused && !heartbeat) return;
      const entries = hasNew && !paused ? this.#batchFrom(progress.nextIndex) : [];
      this.#pushAppend(progress, prevIndex, entries, heartbeat);
      progress.sent(entries.length, entryBytes(entries));
      return;
    }
    if (hasNew && !paused) {
      const entries = this.#batchFrom(progress.nextIndex);
      this.#pushAppend(progress, prevIndex, entries, heartbeat);
      progress.sent(entries.length, entryBytes(entries));
      // Keep streaming while the window allows: a turn's entries go in as few messages as possible.
      if (progress.nextIndex <= this.lastIndex) this.#sendAppend(progress, false);
      return;
    }
    if (heartbeat) {
      // A heartbeat checks only what is known to match, so it never fails on a lagging follower.
      const matchPrev = Math.max(progress.matchIndex, this.#log.snapshotIndex);
      this.#pushAppend(progress, matchPrev, [], true);
    }
  }

  #batchFrom(from: number): LogEntry[] {
    return this.#log.batchFrom(
      from,
      this.#options.maxEntriesPerMessage,
      this.#options.maxBytesPerMessage,
    );
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
        prevLogTerm: this.#log.termAt(prevIndex) ?? 0,
        commitIndex: this.#log.commitIndex,
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

  // ---------------------------------------------------------------- reads

  #confirmReadsAwaitingCommit(): void {
    if (!this.hasCommittedInTerm) return;
    if (!this.#reads.commitKnown(this.#log.commitIndex, this.#heartbeatSeq + 1)) return;
    this.#broadcastHeartbeat();
    if (this.quorumSize === 1) this.#confirmReads();
  }

  #confirmReads(): void {
    if (this.#reads.isEmpty) return;
    const confirmed = this.#reads.takeConfirmed((seq) => {
      let acks = 0;
      for (const member of this.members) {
        if (member.name === this.name) acks++;
        else if ((this.#progress.get(member.name)?.ackedHeartbeatSeq ?? 0) >= seq) acks++;
      }
      return acks >= this.quorumSize;
    });
    this.#readsReady.push(...confirmed);
  }
}

const textEncoder = new TextEncoder();

function entryBytes(entries: LogEntry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.command.length;
  return bytes;
}
