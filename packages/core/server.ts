import { type Clock, systemClock, type TimerHandle } from "./clock.ts";
import {
  type Command,
  type CommandRegistry,
  defaultRegistry,
  JoinCommand,
  LeaveCommand,
} from "./command.ts";
import { Consensus, type FollowerProgress } from "./consensus.ts";
import {
  DEFAULT_ELECTION_TIMEOUT,
  DEFAULT_HEARTBEAT_INTERVAL,
  INITIALIZED,
  LEADER,
  NUMBER_OF_LOG_ENTRIES_AFTER_SNAPSHOT,
  type ServerState,
  SNAPSHOTTING,
  STOPPED,
} from "./constants.ts";
import { Applier } from "./_applier.ts";
import { CatchUp } from "./_catch_up.ts";
import { entryBytes, ReadyLoop, type ServerInput } from "./_ready_loop.ts";
import {
  CommandTimeoutError,
  DuplicatePeerError,
  LeadershipTransferError,
  MembershipChangeInProgressError,
  NotLeaderError,
  StopError,
} from "./errors.ts";
import type { RaftEvent, RaftEventListener, RaftEventMap, RaftEventType } from "./events.ts";
import { consoleLogger, type Logger } from "./logger.ts";
import { type ServerStats, StatsRecorder } from "./stats.ts";
import { cryptoRandom, type Random } from "./random.ts";
import type { Storage, StoredSnapshot } from "./storage.ts";
import { type SendOutcome, sendSnapshot, SnapshotReceiver } from "./_snapshot_transfer.ts";
import type { RaftHandler, Transporter } from "./transporter.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  LogEntry,
  PeerInfo,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotMeta,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "./types.ts";
import {
  validateAppendEntriesRequest,
  validatePeer,
  validateRequestVoteRequest,
  validateServerOptions,
  validateSnapshotRecoveryRequest,
  validateSnapshotRequest,
  validateTimeoutNowRequest,
} from "./validate.ts";

/**
 * Saves and restores the application's state for snapshots (hashicorp/raft's FSM
 * `Snapshot`/`Restore`, goraft's `Save`/`Recovery`).
 */
export interface StateMachine {
  /**
   * Serializes the state as of the last applied command. A returned stream may be read
   * while later commands are applied, so it must describe the state at the time of the
   * call (a copy, or a copy-on-write view), as hashicorp/raft's `FSM.Snapshot` does.
   */
  save():
    | Uint8Array
    | ReadableStream<Uint8Array>
    | Promise<Uint8Array | ReadableStream<Uint8Array>>;
  /** Replaces the state with a snapshot's bytes. */
  recovery(data: Uint8Array): void | Promise<void>;
  /**
   * Optional: replaces the state with a snapshot read from a stream. When present it is
   * used instead of {@link StateMachine.recovery}, so a snapshot larger than memory can be
   * installed (hashicorp/raft's `FSM.Restore(io.ReadCloser)`); consume the stream to its end.
   */
  recoveryStream?(data: ReadableStream<Uint8Array>): void | Promise<void>;
}

/** Options of {@link createServer}. */
export interface ServerOptions<M extends StateMachine = StateMachine> {
  /** Unique name of this server in the cluster. */
  name: string;
  /** Sends RPCs to peers. */
  transporter: Transporter;
  /** Durable term, vote, log and snapshots. */
  storage: Storage;
  /**
   * Application state, needed for snapshots and log compaction; commands reach it as
   * `context.stateMachine` (typed as `M`).
   */
  stateMachine?: M;
  /** Anything; returned by {@link Server.context}. */
  context?: unknown;
  /** How peers reach this server (host:port, URL...). @default "" */
  connectionString?: string;
  /**
   * Initial members (other servers) when the storage holds no configuration yet; this
   * server is added. Give every founding server the same list.
   * @default [] (a single-server cluster)
   */
  peers?: PeerInfo[];
  /** Start with no membership and wait to be added by a leader (`addPeer`). @default false */
  joinExisting?: boolean;
  /** Base election timeout in ms; each round waits a random time in `[t, 2t)`. @default 150 */
  electionTimeoutMs?: number;
  /** Heartbeat interval in ms. @default 50 */
  heartbeatIntervalMs?: number;
  /** Pre-vote before campaigning. @default true */
  preVote?: boolean;
  /** Leader steps down without a quorum's contact for an election timeout. @default true */
  checkQuorum?: boolean;
  /** Clock drift bound assumed by lease reads (`readIndex({ lease: true })`). @default 0.1 */
  leaseClockDrift?: number;
  /** Most AppendEntries with entries in flight per follower. @default 32 */
  maxInflightMessages?: number;
  /** Take a snapshot automatically after this many applied entries (0 disables). @default 10000 */
  snapshotThreshold?: number;
  /**
   * Also take one once the commands applied since the last snapshot reach this many bytes
   * (0 disables). @default 64 MiB
   */
  snapshotThresholdBytes?: number;
  /** Most bytes of commands in flight per follower (flow control). @default 8 MiB */
  maxInflightBytes?: number;
  /** Most log entries in one AppendEntries request. @default 2000 (`MAX_LOG_ENTRIES_PER_REQUEST`) */
  maxEntriesPerMessage?: number;
  /** Most bytes of commands in one AppendEntries request (one larger entry goes alone). @default 1 MiB */
  maxBytesPerMessage?: number;
  /** Entries kept after a snapshot for slow followers. @default 200 */
  trailingLogEntries?: number;
  /** Bytes per snapshot chunk sent to followers. @default 1 MiB */
  snapshotChunkBytes?: number;
  /** Command types; @default the global registry filled by `registerCommand` */
  registry?: CommandRegistry;
  /** Time source. @default systemClock */
  clock?: Clock;
  /** Random source for election timeouts. @default cryptoRandom */
  random?: Random;
  /**
   * Longest time a message may spend in the network, assumed by lease reads only (after a
   * leadership transfer they wait this long twice). @default electionTimeoutMs
   */
  maxMessageDelayMs?: number;
  /** Where the server logs (LogTape's Logger fits). @default consoleLogger */
  logger?: Logger;
  /** Let {@link Server.stop} also close the transporter (when it has `close()`). @default false */
  closeTransporterOnStop?: boolean;
  /**
   * Called synchronously with every input before it reaches the consensus core, for
   * simulators and tracing (record a run, replay it, or count inputs). It must not call
   * back into the server; an exception it throws propagates to the input's caller.
   */
  onStep?: (input: ServerInput) => void;
}

export type { ServerInput } from "./_ready_loop.ts";

/** Options of {@link Server.do}. */
export interface DoOptions {
  /** Gives up waiting (rejecting with `CommandTimeoutError`); the command may still commit. */
  signal?: AbortSignal;
}

/** Options of {@link Server.readIndex}. */
export interface ReadIndexOptions extends DoOptions {
  /**
   * Serve from the leader lease when it holds (no heartbeat round): faster, but correct
   * only while clocks drift less than `leaseClockDrift`. Falls back to ReadIndex.
   * @default false
   */
  lease?: boolean;
}

/**
 * Creates a server. Call {@link Server.init} (or {@link Server.start}, which initializes)
 * to load its storage.
 * @param options see {@link ServerOptions}
 * @returns the server
 * @example
 * ```ts
 * import { createServer } from "@tsraft/core";
 * import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
 * const network = new MemoryNetwork();
 * const server = createServer({ name: "a", transporter: network.transporter(), storage: new MemoryStorage() });
 * network.register(server);
 * await server.start();
 * await server.stop();
 * ```
 */
export function createServer<M extends StateMachine = StateMachine>(
  options: ServerOptions<M>,
): Server<M> {
  return new Server(options);
}

/**
 * A Raft server: follower, candidate or leader of a cluster. The async shell around the
 * pure {@link Consensus}, a façade (options, lifecycle, client API, RPC handlers) that
 * wires together: the ready loop (`_ready_loop.ts`), where every input, startup's restore
 * included, reaches the core through one `step` that then persists before replying, sends
 * and re-arms the timer; the applier (`_applier.ts`), which applies committed commands in
 * order and resolves {@link Server.do}; snapshot transfer (`_snapshot_transfer.ts`); and
 * membership catch-up (`_catch_up.ts`). Each module sees the server only through the
 * options it was built with.
 */
export class Server<M extends StateMachine = StateMachine> implements RaftHandler {
  readonly #options: ServerOptions<M>;
  readonly #logger: Logger;
  readonly #stats: StatsRecorder;
  /** Replaced by a fresh one at each init(): a restart in place must not inherit a role. */
  #core: Consensus;
  /** Bumped at each stop(): callbacks of an earlier run must not feed the current core. */
  #generation = 0;
  /** Whether init() ran before: the state machine then already holds `#appliedIndex`. */
  #initializedBefore = false;
  readonly #clock: Clock;
  readonly #registry: CommandRegistry;
  readonly #storage: Storage;
  readonly #listeners = new Map<RaftEventType, Set<RaftEventListener<RaftEventType, Server>>>();
  #transporter: Transporter;

  #phase: "stopped" | "initialized" | "running" = STOPPED;
  #snapshotting = false;
  #electionTimeoutMs: number;
  #heartbeatIntervalMs: number;

  readonly #applier: Applier<Server<M>>;
  readonly #loop: ReadyLoop;
  #snapshotInProgress = false;
  #sendingSnapshotTo = new Set<string>();
  readonly #catchUp: CatchUp;
  readonly #receiver: SnapshotReceiver;
  #snapshotTimer: TimerHandle | undefined;

  /**
   * Creates an instance.
   * @param options see {@link ServerOptions}
   * @throws TypeError or RangeError naming the option that is missing or out of range
   */
  constructor(options: ServerOptions<M>) {
    validateServerOptions(options);
    this.#options = options;
    this.#logger = options.logger ?? consoleLogger;
    this.#stats = new StatsRecorder();
    this.#receiver = new SnapshotReceiver(options.storage);
    this.#clock = options.clock ?? systemClock;
    this.#registry = options.registry ?? defaultRegistry;
    this.#storage = options.storage;
    this.#transporter = options.transporter;
    this.#electionTimeoutMs = options.electionTimeoutMs ?? DEFAULT_ELECTION_TIMEOUT;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL;
    this.#core = this.#createCore();
    this.#catchUp = new CatchUp({
      core: () => this.#core,
      clock: this.#clock,
      // The newcomer is given up on after stalling for 20 election timeouts.
      stallLimitMs: () => this.#electionTimeoutMs * 20,
    });
    this.#applier = new Applier({
      name: options.name,
      server: this,
      stateMachine: options.stateMachine,
      registry: this.#registry,
      core: () => this.#core,
      nowMs: () => this.#clock.now(),
      isRunning: () => this.#phase === "running",
      currentRun: () => this.#currentRun(),
      stats: this.#stats,
      logger: this.#logger,
      onCommit: (entry, previous) => this.#dispatch("commit", entry, previous),
      notLeaderError: () => this.#notLeaderError(),
      failStop: (what, error) => this.#failStop(what, error),
      onSnapshotDue: () =>
        this.takeSnapshot().catch((error) => {
          // A snapshot cut short by stop() is simply not taken.
          if (this.#phase === "running") {
            this.#logger.warn(`${this.name}: automatic snapshot failed`, {
              error: String(error),
            });
          }
        }),
      snapshotThreshold: options.snapshotThreshold ?? 10000,
      snapshotThresholdBytes: options.snapshotThresholdBytes ?? 64 * 1024 * 1024,
    });
    this.#loop = new ReadyLoop({
      name: options.name,
      core: () => this.#core,
      clock: this.#clock,
      storage: this.#storage,
      transporter: () => this.#transporter,
      stats: this.#stats,
      logger: this.#logger,
      onStep: options.onStep,
      isRunning: () => this.#phase === "running",
      currentRun: () => this.#currentRun(),
      electionTimeoutMs: () => this.#electionTimeoutMs,
      applier: this.#applier,
      catchUp: this.#catchUp,
      dispatch: (type, value, prevValue) => this.#dispatch(type, value, prevValue),
      notLeaderError: () => this.#notLeaderError(),
      sendSnapshot: (peer) => void this.#sendSnapshot(peer),
      failStop: (what, error) => this.#failStop(what, error),
    });
  }

  #createCore(): Consensus {
    const options = this.#options;
    return new Consensus({
      name: options.name,
      connectionString: options.connectionString ?? "",
      peers: options.peers ?? [],
      joinExisting: options.joinExisting ?? false,
      electionTimeoutMs: this.#electionTimeoutMs,
      heartbeatIntervalMs: this.#heartbeatIntervalMs,
      random: options.random ?? cryptoRandom,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxInflightMessages: options.maxInflightMessages ?? 32,
      maxInflightBytes: options.maxInflightBytes ?? 8 * 1024 * 1024,
      ...(options.maxEntriesPerMessage !== undefined
        ? { maxEntriesPerMessage: options.maxEntriesPerMessage }
        : {}),
      ...(options.maxBytesPerMessage !== undefined
        ? { maxBytesPerMessage: options.maxBytesPerMessage }
        : {}),
      leaseClockDrift: options.leaseClockDrift ?? 0.1,
      ...(options.maxMessageDelayMs !== undefined
        ? { maxMessageDelayMs: options.maxMessageDelayMs }
        : {}),
    });
  }

  // ------------------------------------------------------------ accessors (spec names)

  /** This server's name. */
  get name(): string {
    return this.#options.name;
  }
  /** The user context given at creation. */
  get context(): unknown {
    return this.#options.context;
  }
  /** The state machine given at creation. */
  get stateMachine(): M | undefined {
    return this.#options.stateMachine;
  }
  /** How peers reach this server. */
  get connectionString(): string {
    return this.#options.connectionString ?? "";
  }
  /** Name of the current leader, `""` if unknown. */
  get leader(): string {
    return this.#phase === "running" ? this.#core.leader : "";
  }
  /** One of `stopped`, `initialized`, `follower`, `candidate`, `leader`, `snapshotting`. */
  get state(): ServerState {
    if (this.#phase !== "running") return this.#phase === "initialized" ? INITIALIZED : STOPPED;
    if (this.#snapshotting) return SNAPSHOTTING;
    return this.#core.state;
  }
  /** Current term. */
  get term(): number {
    return this.#core.term;
  }
  /** Highest index known committed. */
  get commitIndex(): number {
    return this.#core.commitIndex;
  }
  /** Highest index applied to the state machine. */
  get appliedIndex(): number {
    return this.#applier.appliedIndex;
  }
  /** Index of the newest snapshot point of the in-memory log (0 when nothing is compacted). */
  get snapshotIndex(): number {
    return this.#core.snapshotIndex;
  }
  /** Index of the last log entry. */
  get lastIndex(): number {
    return this.#core.lastIndex;
  }
  /** Candidate voted for in the current term. */
  get votedFor(): string {
    return this.#core.votedFor;
  }
  /** Number of members, this server included when it is one. */
  get memberCount(): number {
    return this.#core.memberCount;
  }
  /** Votes (or acknowledgements) needed for a majority. */
  get quorumSize(): number {
    return this.#core.quorumSize;
  }
  /** Whether the in-memory log holds no entries. */
  get isLogEmpty(): boolean {
    return this.#core.lastIndex === this.#core.snapshotIndex;
  }
  /** Entries held in memory (after the last compaction). */
  get logEntries(): LogEntry[] {
    return this.#core.entriesBetween(this.#core.snapshotIndex + 1, this.#core.lastIndex + 1);
  }
  /** Name of the last applied command. */
  get lastCommandName(): string {
    return this.#applier.lastCommandName;
  }
  /** Every other member, keyed by name. */
  get peers(): Map<string, PeerInfo> {
    const peers = new Map<string, PeerInfo>();
    for (const member of this.#core.members) {
      if (member.name !== this.name) peers.set(member.name, member);
    }
    return peers;
  }
  /** Every member, this server included when it is one. */
  get members(): PeerInfo[] {
    return this.#core.members;
  }
  /** The transporter in use. */
  get transporter(): Transporter {
    return this.#transporter;
  }
  set transporter(transporter: Transporter) {
    this.#transporter = transporter;
  }
  /** Base election timeout in ms. */
  get electionTimeout(): number {
    return this.#electionTimeoutMs;
  }
  set electionTimeout(ms: number) {
    validateServerOptions({
      ...this.#options,
      electionTimeoutMs: ms,
      heartbeatIntervalMs: this.#heartbeatIntervalMs,
    });
    this.#loop.step({
      kind: "setTimeouts",
      electionTimeoutMs: ms,
      heartbeatIntervalMs: this.#heartbeatIntervalMs,
    });
    this.#electionTimeoutMs = ms;
  }
  /** Heartbeat interval in ms. */
  get heartbeatInterval(): number {
    return this.#heartbeatIntervalMs;
  }
  set heartbeatInterval(ms: number) {
    validateServerOptions({
      ...this.#options,
      electionTimeoutMs: this.#electionTimeoutMs,
      heartbeatIntervalMs: ms,
    });
    this.#loop.step({
      kind: "setTimeouts",
      electionTimeoutMs: this.#electionTimeoutMs,
      heartbeatIntervalMs: ms,
    });
    const previous = this.#heartbeatIntervalMs;
    this.#heartbeatIntervalMs = ms;
    this.#dispatch("heartbeatInterval", ms, previous);
  }
  /** Whether the server is running. */
  running(): boolean {
    return this.#phase === "running";
  }
  /** The spec's `GetState()`: a one-line summary. @returns e.g. `"Name: a, State: leader, Term: 3, CommittedIndex: 7"` */
  getState(): string {
    return `Name: ${this.name}, State: ${this.state}, Term: ${this.term}, CommittedIndex: ${this.commitIndex}`;
  }
  /** Read-only replication progress of a leader's followers and learners. */
  get progress(): FollowerProgress[] {
    return this.#core.progress;
  }

  /**
   * A snapshot of this server's state and counters since it was created (hashicorp/raft's
   * `Stats()`, etcd's `Status()`): role, term, indexes, each follower's progress, and
   * counts of elections, proposals, applied commands, messages and bytes per RPC, storage
   * writes with a latency histogram, and snapshots.
   * @returns a plain object, safe to serialize
   * @example
   * ```ts
   * import { createServer } from "@tsraft/core";
   * import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
   * const network = new MemoryNetwork();
   * const server = createServer({ name: "a", transporter: network.transporter(), storage: new MemoryStorage() });
   * network.register(server);
   * await server.start();
   * const stats = server.stats();
   * if (stats.name !== "a" || stats.counters.storageWrites < 1) throw new Error("unexpected stats");
   * await server.stop();
   * ```
   */
  stats(): ServerStats {
    const nowMs = this.#clock.now();
    return this.#stats.snapshot({
      name: this.name,
      state: this.state,
      term: this.term,
      leader: this.leader,
      commitIndex: this.commitIndex,
      appliedIndex: this.#applier.appliedIndex,
      lastIndex: this.#core.lastIndex,
      snapshotIndex: this.#core.snapshotIndex,
      members: this.#core.members.map((member) => member.name),
      leaderContactMsAgo: this.#core.state === LEADER
        ? 0
        : Math.max(0, nowMs - this.#core.lastLeaderContactMs),
      followers: this.#core.progress.map((p) => ({
        name: p.name,
        matchIndex: p.matchIndex,
        nextIndex: p.nextIndex,
        mode: p.mode,
        voter: p.voter,
        inflightMessages: p.inflightMessages,
        lastContactMsAgo: Math.max(0, nowMs - p.lastResponseAtMs),
      })),
    });
  }
  /**
   * The storage's directory when it has one (the spec's `Path()`), else `""`.
   * @returns the path
   */
  path(): string {
    return this.#storage.dir ?? "";
  }
  /**
   * Where the storage keeps its log, when it says (the spec's `LogPath()`), else `""`.
   * @returns the path
   */
  logPath(): string {
    return this.#storage.logPath?.() ?? "";
  }
  /**
   * Where the storage keeps a snapshot, when it says (the spec's `SnapshotPath()`), else `""`.
   * @param lastIndex last index the snapshot covers
   * @param lastTerm its term
   * @returns the path
   */
  snapshotPath(lastIndex: number, lastTerm: number): string {
    return this.#storage.snapshotPath?.(lastIndex, lastTerm) ?? "";
  }
  /**
   * Time of the last response from `name` as seen by this leader (the spec's
   * `Peer.LastActivity()`), or `undefined`.
   * @param name a peer's name
   * @returns clock time in ms
   */
  lastActivity(name: string): number | undefined {
    return this.#core.progress.find((p) => p.name === name)?.lastResponseAtMs;
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Loads storage (and the latest snapshot) without starting timers. Idempotent.
   *
   * After a {@link Server.stop}, this starts over as a fresh process would, as a follower
   * with a new consensus state read from storage. The state machine is not rebuilt: it
   * already holds every command applied before the stop (each was committed, so it stays
   * valid), and applying resumes after the last one — unless the stored snapshot is ahead.
   */
  async init(): Promise<void> {
    await this.#load(false);
  }

  async #load(rewindToSnapshot: boolean): Promise<void> {
    if (this.#phase !== STOPPED) return;
    const opened = await this.#storage.open();
    let snapshotMeta: SnapshotMeta | undefined;
    const stored = await this.#storage.loadSnapshot();
    // A first start or loadSnapshot() rebuilds the state machine from the snapshot; a
    // restart in place keeps what it applied unless the snapshot (installed from a leader)
    // is ahead of it. Either way every committed command is applied to it exactly once.
    const recover = stored !== undefined &&
      (!this.#initializedBefore || rewindToSnapshot ||
        stored.meta.lastIndex > this.#applier.appliedIndex);
    if (stored !== undefined) {
      snapshotMeta = stored.meta;
      if (recover) {
        await this.#recoverStateMachine(stored);
      } else {
        await stored.data.cancel();
      }
    }
    if (snapshotMeta !== undefined && opened.lastIndex < snapshotMeta.lastIndex) {
      // The snapshot outlived log entries it covers (a follower applies, and may snapshot,
      // entries its own log had not made durable yet, and a crash then lost them): the log
      // must continue right after the snapshot, not after the stored entries.
      await this.#storage.compact(snapshotMeta.lastIndex);
      opened.firstIndex = snapshotMeta.lastIndex + 1;
    }
    this.#loop.storageOpened(opened.firstIndex - 1);
    const from = Math.max(opened.firstIndex, (snapshotMeta?.lastIndex ?? 0) + 1);
    const entries = opened.lastIndex >= from
      ? await this.#storage.entries(from, opened.lastIndex + 1)
      : [];
    this.#core = this.#createCore();
    this.#loop.restore({ hardState: opened.hardState, snapshot: snapshotMeta, entries });
    if (recover || !this.#initializedBefore) {
      this.#applier.appliedIndex = snapshotMeta?.lastIndex ?? 0;
    }
    this.#initializedBefore = true;
    await this.#loop.persistBootstrap();
    this.#phase = "initialized";
  }

  /** Initializes if needed and starts the election timer. */
  async start(): Promise<void> {
    if (this.#phase === "running") return;
    await this.init();
    this.#phase = "running";
    this.#dispatch("stateChange", this.state, INITIALIZED);
    this.#loop.drive();
  }

  /** Stops timers, rejects pending commands with `StopError`, waits for writes, closes storage. */
  async stop(): Promise<void> {
    if (this.#phase === STOPPED) return;
    const before = this.state;
    this.#phase = STOPPED;
    this.#generation++;
    if (this.#snapshotTimer !== undefined) this.#clock.clearTimeout(this.#snapshotTimer);
    this.#snapshotTimer = undefined;
    this.#snapshotting = false;
    void this.#receiver.abort();
    const stopError = new StopError();
    this.#applier.rejectAll(stopError);
    this.#catchUp.failAll(stopError);
    this.#loop.stop(stopError);
    await this.#loop.withStorage(() => this.#storage.close());
    if (this.#options.closeTransporterOnStop) await this.#transporter.close?.();
    this.#dispatch("stateChange", STOPPED, before);
  }

  // ------------------------------------------------------------ client API

  /**
   * Replicates a command and resolves with its `apply` result once it is committed and
   * applied on this server.
   * @param command a registered command
   * @param options an AbortSignal to stop waiting
   * @returns the command's apply result
   * @throws NotLeaderError on a follower (with the leader's name and connection string)
   * @throws StopError when the server stops first
   * @throws CommandTimeoutError when the signal aborts first
   * @throws CommandOutcomeUnknownError when this server can no longer learn whether the
   * command committed (its log was cut short or replaced by a snapshot, or no leader has
   * contacted it for many election timeouts: it is cut off or was removed)
   * @throws UnknownCommandError when the command's name is not registered
   */
  do<R = unknown>(command: Command<R>, options: DoOptions = {}): Promise<R> {
    if (this.#phase !== "running") return Promise.reject(new StopError("Server is not running"));
    if (options.signal?.aborted) {
      return Promise.reject(new CommandTimeoutError("Aborted before proposing"));
    }
    let proposal: { index: number; term: number };
    try {
      const bytes = this.#registry.encode(command);
      proposal = this.#loop.step({
        kind: "propose",
        commandName: command.commandName,
        command: bytes,
      });
    } catch (error) {
      return Promise.reject(error);
    }
    this.#stats.count("proposals");
    return this.#applier.waitFor(proposal.index, proposal.term, options.signal) as Promise<R>;
  }

  /**
   * Confirms leadership with a heartbeat round and waits until the state machine has
   * applied everything committed before the call (ReadIndex). A read of local state after
   * it resolves is linearizable.
   * @param options an AbortSignal to stop waiting
   * @returns the read index
   * @throws NotLeaderError on a follower or when leadership is lost meanwhile
   */
  async readIndex(options: ReadIndexOptions = {}): Promise<number> {
    if (this.#phase !== "running") throw new StopError("Server is not running");
    if (options.signal?.aborted) throw new CommandTimeoutError("Read aborted before it started");
    if (options.lease) {
      this.#loop.step({ kind: "tick" });
      const leased = this.#core.leaseReadIndex();
      if (leased !== undefined) {
        await this.#applier.waitApplied(leased);
        return leased;
      }
    }
    const index = await this.#loop.read(options.signal);
    await this.#applier.waitApplied(index);
    return index;
  }

  /**
   * Hands leadership to `to` (or the most caught-up follower): catches it up, sends
   * TimeoutNow, and refuses proposals meanwhile.
   * @param to the target's name
   * @param options an AbortSignal
   * @throws LeadershipTransferError when it does not complete within an election timeout
   */
  async transferLeadership(to?: string, options: DoOptions = {}): Promise<void> {
    const target = to ??
      this.#core.progress.filter((p) => p.voter).sort((a, b) => b.matchIndex - a.matchIndex)[0]
        ?.name;
    if (target === undefined) {
      throw new LeadershipTransferError("No follower to transfer leadership to");
    }
    this.#loop.step({ kind: "transferLeadership", target });
    await this.#loop.waitUntil(() => this.#core.leader === target && this.#core.state !== LEADER, {
      timeoutMs: this.#electionTimeoutMs * 2,
      signal: options.signal,
      timeoutError: () => {
        this.#loop.step({ kind: "cancelTransfer" });
        return new LeadershipTransferError(`Transfer to ${target} did not complete in time`);
      },
    });
  }

  /**
   * Adds a member through the log (`JoinCommand`).
   * @param name the new member's name
   * @param connectionString where it is reached
   * @throws DuplicatePeerError when a member has this name
   * @throws MembershipChangeInProgressError while another change is uncommitted
   */
  async addPeer(name: string, connectionString: string, options: DoOptions = {}): Promise<void> {
    validatePeer({ name, connectionString });
    if (this.#core.members.some((member) => member.name === name)) {
      throw new DuplicatePeerError(name);
    }
    if (this.#core.membershipChangePending) throw new MembershipChangeInProgressError();
    await this.#untilCommittedInTerm(options.signal);
    // Catch the newcomer up as a learner first: a voter that is far behind would stall
    // commits of a small cluster until it caught up (Raft thesis §4.2.1).
    this.#loop.step({ kind: "addLearner", peer: { name, connectionString } });
    try {
      await this.#catchUp.wait(name, options.signal);
    } catch (error) {
      this.#loop.step({ kind: "removeLearner", name });
      throw error;
    }
    await this.do(new JoinCommand(name, connectionString), options);
  }

  /**
   * Removes a member through the log (`LeaveCommand`). A removed leader steps down once the
   * change commits.
   * @param name the member's name
   */
  async removePeer(name: string, options: DoOptions = {}): Promise<void> {
    if (!this.#core.members.some((member) => member.name === name)) {
      throw new RangeError(`Cannot remove ${name}: not a member`);
    }
    await this.#untilCommittedInTerm(options.signal);
    await this.do(new LeaveCommand(name), options);
  }

  /**
   * Waits (up to an election timeout) until this leader has committed an entry of its term:
   * no membership change may be appended before (see Consensus.propose).
   */
  #untilCommittedInTerm(signal: AbortSignal | undefined): Promise<void> {
    return this.#loop.waitUntil(() => {
      if (this.#core.state !== LEADER) throw this.#notLeaderError();
      return this.#core.hasCommittedInTerm;
    }, {
      timeoutMs: this.#electionTimeoutMs,
      signal,
      timeoutError: () =>
        new MembershipChangeInProgressError(
          "The leader has not yet committed an entry of its term; retry the membership change",
        ),
    });
  }

  /**
   * Registers a listener for one event type.
   * @param type the event type
   * @param listener called synchronously with each event
   */
  addEventListener<K extends RaftEventType>(type: K, listener: RaftEventListener<K, Server>): void {
    let set = this.#listeners.get(type);
    if (set === undefined) this.#listeners.set(type, set = new Set());
    set.add(listener as unknown as RaftEventListener<RaftEventType, Server>);
  }

  /**
   * Removes a listener.
   * @param type the event type
   * @param listener the listener given to addEventListener
   */
  removeEventListener<K extends RaftEventType>(
    type: K,
    listener: RaftEventListener<K, Server>,
  ): void {
    this.#listeners.get(type)?.delete(
      listener as unknown as RaftEventListener<RaftEventType, Server>,
    );
  }

  /**
   * Waits until all entries taken so far are durable; the commit index is kept in memory
   * (it is recovered from the leader), so this is the spec's `FlushCommitIndex`.
   */
  async flushCommitIndex(): Promise<void> {
    this.#loop.drive();
    await this.#loop.flushed();
  }

  /**
   * Snapshots the state machine at the applied index and compacts the log, keeping
   * `trailingLogEntries` entries for slow followers.
   * @throws TypeError when the server has no state machine
   */
  async takeSnapshot(): Promise<void> {
    const stateMachine = this.#options.stateMachine;
    if (!stateMachine) throw new TypeError("takeSnapshot() needs a stateMachine");
    if (this.#snapshotInProgress) return;
    this.#snapshotInProgress = true;
    try {
      // Serialize against the apply loop so the state matches the applied index exactly.
      let captured:
        | { meta: SnapshotMeta; data: Uint8Array | ReadableStream<Uint8Array> }
        | undefined;
      await this.#applier.exclusive(async () => {
        const index = this.#applier.appliedIndex;
        const term = this.#core.termAt(index);
        if (index === 0 || term === undefined) return;
        const saved = await stateMachine.save();
        captured = {
          meta: { lastIndex: index, lastTerm: term, peers: this.#core.membersAt(index) },
          // A stream is written to storage as it is read, after the apply lock is released:
          // it must describe the state as of this save() call (see StateMachine.save).
          data: saved,
        };
      });
      if (captured === undefined) return;
      const { meta: snapshotMeta, data: snapshotData } = captured;
      await this.#loop.withStorage(() => this.#storage.saveSnapshot(snapshotMeta, snapshotData));
      this.#applier.snapshotTaken();
      const keep = this.#options.trailingLogEntries ?? NUMBER_OF_LOG_ENTRIES_AFTER_SNAPSHOT;
      const compactTo = Math.min(snapshotMeta.lastIndex - keep, this.#core.commitIndex);
      if (compactTo > this.#core.snapshotIndex) {
        this.#loop.step({ kind: "compact", index: compactTo });
        await this.#loop.withStorage(() => this.#loop.compactStorage(compactTo));
      }
      this.#stats.count("snapshotsTaken");
      this.#logger.debug(`${this.name}: snapshot taken`, {
        lastIndex: snapshotMeta.lastIndex,
        compactedThrough: compactTo,
      });
    } finally {
      this.#snapshotInProgress = false;
    }
  }

  /**
   * Reloads the stored snapshot into the state machine (the server must be stopped); the
   * commands after it are applied again from the log once the server starts.
   */
  async loadSnapshot(): Promise<void> {
    if (this.#phase === "running") throw new TypeError("loadSnapshot() runs before start()");
    if (this.#phase === "initialized") {
      // Already loaded; a reload must start from storage again.
      await this.#loop.withStorage(() => this.#storage.close());
      this.#phase = STOPPED;
    }
    await this.#load(true);
  }

  // ------------------------------------------------------------ RPC handlers

  /** Handles AppendEntries from the leader. @throws InvalidMessageError for a malformed request */
  async appendEntries(req: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    validateAppendEntriesRequest(req);
    this.#assertRunning();
    this.#stats.received("appendEntries", entryBytes(req.entries));
    const response = this.#loop.step({ kind: "appendEntries", request: req });
    const expectedTerm = this.#core.termAt(response.index);
    await this.#loop.flushed();
    // Between deciding and becoming durable, a newer leader may have truncated what this
    // response acknowledges; an acknowledgement must never outlive the entries it covers.
    if (
      response.success &&
      (this.#core.term !== response.term ||
        (response.index > this.#core.snapshotIndex &&
          this.#core.termAt(response.index) !== expectedTerm))
    ) {
      return {
        ...response,
        term: this.#core.term,
        success: false,
        index: this.#core.lastIndex,
        conflictTerm: 0,
      };
    }
    return response;
  }

  /** Handles RequestVote. @throws InvalidMessageError for a malformed request */
  async requestVote(req: RequestVoteRequest): Promise<RequestVoteResponse> {
    validateRequestVoteRequest(req);
    this.#assertRunning();
    this.#stats.received("requestVote", 0);
    const response = this.#loop.step({ kind: "requestVote", request: req });
    await this.#loop.flushed();
    return response;
  }

  /** Handles TimeoutNow. @throws InvalidMessageError for a malformed request */
  async timeoutNow(req: TimeoutNowRequest): Promise<TimeoutNowResponse> {
    validateTimeoutNowRequest(req);
    this.#assertRunning();
    this.#stats.received("timeoutNow", 0);
    const response = this.#loop.step({ kind: "timeoutNow", request: req });
    await this.#loop.flushed();
    return response;
  }

  /** Handles a snapshot announcement; enters `snapshotting`. */
  async requestSnapshot(req: SnapshotRequest): Promise<SnapshotResponse> {
    validateSnapshotRequest(req);
    this.#assertRunning();
    this.#stats.received("requestSnapshot", 0);
    const current = this.#loop.step({
      kind: "leaderContact",
      term: req.term,
      leaderName: req.leaderName,
    });
    await this.#loop.flushed();
    if (!current || req.lastIndex <= this.#core.commitIndex) {
      return { term: this.#core.term, success: false, nextOffset: 0 };
    }
    const nextOffset = await this.#receiver.begin(req);
    this.#setSnapshotting(true);
    return { term: this.#core.term, success: true, nextOffset };
  }

  /** Handles one chunk of snapshot state; installs the snapshot after the last chunk. */
  async snapshotRecoveryRequest(req: SnapshotRecoveryRequest): Promise<SnapshotRecoveryResponse> {
    validateSnapshotRecoveryRequest(req);
    this.#assertRunning();
    this.#stats.received("snapshotRecoveryRequest", req.data.length);
    const current = this.#loop.step({
      kind: "leaderContact",
      term: req.term,
      leaderName: req.leaderName,
    });
    const reply = (success: boolean): SnapshotRecoveryResponse => ({
      term: this.#core.term,
      success,
      commitIndex: this.#core.commitIndex,
      nextOffset: this.#receiver.received,
    });
    if (!current) return reply(false);
    const result = await this.#receiver.receive(req);
    switch (result.kind) {
      case "rejected":
        return reply(false);
      case "accepted":
        this.#setSnapshotting(true);
        return reply(true);
      case "corrupt":
        this.#logger.warn(`${this.name}: a snapshot failed its checksum; discarded`, {
          lastIndex: req.lastIndex,
          from: req.leaderName,
        });
        this.#setSnapshotting(false);
        return reply(false);
    }
    const { meta, sink } = result;
    await this.#loop.flushed();
    await this.#applier.exclusive(async () => {
      if (!this.#loop.step({ kind: "installSnapshot", meta })) {
        await sink.cancel();
        return;
      }
      try {
        await this.#loop.withStorage(async () => {
          await sink.commit();
          await this.#loop.compactStorage(meta.lastIndex);
        });
        const stored = await this.#loop.withStorage(() => this.#storage.loadSnapshot());
        if (stored === undefined) throw new Error("the installed snapshot is not stored");
        await this.#recoverStateMachine(stored);
      } catch (error) {
        // The core already moved past entries that neither storage nor the state machine
        // now hold for certain: only a restart from storage is consistent again.
        await this.#failStop("installing a snapshot failed", error);
        throw new StopError("Installing a snapshot failed; the server stopped");
      }
      this.#applier.appliedIndex = meta.lastIndex;
      this.#stats.count("snapshotsInstalled");
      this.#applier.settleCoveredBySnapshot(meta.lastIndex);
      this.#applier.failOrphanedWaiters();
      this.#loop.logReplaced();
    });
    this.#setSnapshotting(false);
    this.#loop.drive();
    return reply(true);
  }

  /** Replaces the state machine's state with a stored snapshot, streamed when it can take a stream. */
  async #recoverStateMachine(stored: StoredSnapshot): Promise<void> {
    const stateMachine = this.#options.stateMachine;
    if (stateMachine === undefined) {
      await stored.data.cancel();
    } else if (typeof stateMachine.recoveryStream === "function") {
      await stateMachine.recoveryStream(stored.data);
    } else {
      await stateMachine.recovery(await readAll(stored.data));
    }
  }

  // ------------------------------------------------------------ wiring: what the modules ask of the server

  /** A check that stays true while the current run (from start() to stop()) lasts. */
  #currentRun(): () => boolean {
    const generation = this.#generation;
    return () => this.#phase === "running" && generation === this.#generation;
  }

  #notLeaderError(): NotLeaderError {
    const leader = this.#core.leader;
    return new NotLeaderError(leader, this.peers.get(leader)?.connectionString ?? "");
  }

  #assertRunning(): void {
    if (this.#phase !== "running") throw new StopError("Server is not running");
  }

  /**
   * Stops the server after a failure that leaves memory and storage inconsistent (a failed
   * write, snapshot install or apply invariant): restarting from storage is the only safe
   * way on. Never throws.
   */
  async #failStop(what: string, error: unknown): Promise<void> {
    this.#logger.error(`${this.name}: ${what}, stopping`, { error: String(error) });
    try {
      await this.stop();
    } catch (stopError) {
      this.#logger.error(`${this.name}: stopping failed too`, { error: String(stopError) });
    }
  }

  #setSnapshotting(on: boolean): void {
    if (this.#snapshotTimer !== undefined) this.#clock.clearTimeout(this.#snapshotTimer);
    this.#snapshotTimer = undefined;
    if (on) {
      // A leader that vanishes mid-transfer must not leave this server stuck in snapshotting;
      // the deadline counts from the last chunk, so a large snapshot may take as long as it
      // needs while chunks keep coming.
      this.#snapshotTimer = this.#clock.setTimeout(() => {
        this.#snapshotTimer = undefined;
        void this.#receiver.abort();
        this.#setSnapshotting(false);
      }, this.#electionTimeoutMs * 4);
    }
    if (this.#snapshotting === on) return;
    const before = this.state;
    this.#snapshotting = on;
    this.#dispatch("stateChange", this.state, before);
  }

  async #sendSnapshot(peer: PeerInfo): Promise<void> {
    if (this.#sendingSnapshotTo.has(peer.name)) return;
    this.#sendingSnapshotTo.add(peer.name);
    const generation = this.#generation;
    const term = this.#core.term;
    let outcome: SendOutcome = { installed: false, lastIndex: 0 };
    try {
      this.#stats.sent("requestSnapshot", 0);
      outcome = await sendSnapshot({
        storage: this.#storage,
        transporter: this.#transporter,
        sender: { name: this.name },
        peer,
        term,
        leaderName: this.name,
        chunkBytes: this.#options.snapshotChunkBytes ?? 1024 * 1024,
        stillLeading: () =>
          this.#generation === generation && this.#phase === "running" &&
          this.#core.term === term && this.#core.state === LEADER,
        onChunk: (bytes) => {
          this.#stats.sent("snapshotRecoveryRequest", bytes);
          this.#catchUp.snapshotChunkSent(peer.name);
        },
      });
      if (outcome.installed) this.#stats.count("snapshotsSent");
    } catch (error) {
      this.#logger.debug(`${this.name}: sending a snapshot failed`, {
        to: peer.name,
        error: String(error),
      });
    } finally {
      this.#sendingSnapshotTo.delete(peer.name);
      if (this.#phase === "running" && this.#generation === generation) {
        this.#loop.step({
          kind: "snapshotSent",
          to: peer.name,
          lastIndex: outcome.lastIndex,
          installed: outcome.installed,
          newerTerm: outcome.newerTerm,
        });
      }
    }
  }

  #dispatch<K extends RaftEventType>(
    type: K,
    value: RaftEventMap[K]["value"],
    prevValue: RaftEventMap[K]["prevValue"],
  ): void {
    const listeners = this.#listeners.get(type);
    if (listeners === undefined || listeners.size === 0) return;
    const event: RaftEvent<K, Server> = { type, source: this, value, prevValue };
    for (const listener of listeners) {
      try {
        (listener as unknown as RaftEventListener<K, Server>)(event);
      } catch (error) {
        this.#logger.warn(`${this.name}: an event listener threw`, {
          type,
          error: String(error),
        });
      }
    }
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return concat(chunks);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
