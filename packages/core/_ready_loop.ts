/**
 * The ready loop: the one way into the consensus core and out of it. Every input reaches
 * the core through {@link ReadyLoop.step}, which then drives the core's `Ready`:
 *
 * 1. dispatch its events (a leader stepping down fails its reads and catch-ups);
 * 2. send its messages, except vote requests, which wait for the candidacy to be durable;
 * 3. start the snapshot transfers it asks for, report progress to the catch-up, serve reads;
 * 4. queue its hard state and entries for the next storage write: writes are grouped (all
 *    outputs taken while one write is in flight go in the next), and once one completes the
 *    messages held for it are sent, the replies waiting on it are released, and the core
 *    is told (`written`);
 * 5. apply what is committed, re-arm the election/heartbeat timer, and re-check the
 *    conditions `waitUntil()` callers wait on.
 *
 * It owns the storage lock: every storage call of a running server goes through
 * {@link ReadyLoop.withStorage}, so writes, snapshot saves, compactions and close never
 * interleave.
 * @module
 */
import type { Applier } from "./_applier.ts";
import type { CatchUp } from "./_catch_up.ts";
import { mergeIntoBatch, type WriteBatch } from "./_write_batch.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import type { Consensus, OutboundMessage, Ready, RestoredState } from "./consensus.ts";
import { CANDIDATE, ELECTION_TIMEOUT_THRESHOLD_PERCENT, LEADER } from "./constants.ts";
import { CommandTimeoutError, type NotLeaderError, StopError } from "./errors.ts";
import type { RaftEventMap, RaftEventType } from "./events.ts";
import { consoleLogger, type Logger } from "./logger.ts";
import { logLevel, TRACE } from "./log_level.ts";
import type { StatsRecorder } from "./stats.ts";
import type { Storage } from "./storage.ts";
import type { Transporter } from "./transporter.ts";
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

/**
 * Election timeouts without a leader after which a member settles its pending commands as
 * unknown: ten failed elections in a row mean it is cut off, or was removed by a change it
 * never received. (A server whose own log removes it waits two: it does not campaign.)
 */
const CUT_OFF_ELECTION_TIMEOUTS = 10;

/**
 * One input to the consensus core. Inside `Server` every call that changes the core goes
 * through one `step(input)` entry point, which feeds the core and then drives its outputs
 * (persist, send, apply, re-arm the timer), so a run can be traced or recorded through
 * `ServerOptions.onStep`.
 */
export type ServerInput =
  /** The election/heartbeat timer fired. */
  | { kind: "timer" }
  /** The clock was read for a lease read: the core learns the time, nothing else. */
  | { kind: "tick" }
  /** An AppendEntries request arrived. */
  | { kind: "appendEntries"; request: AppendEntriesRequest }
  /** A RequestVote (or pre-vote) request arrived. */
  | { kind: "requestVote"; request: RequestVoteRequest }
  /** A TimeoutNow request arrived. */
  | { kind: "timeoutNow"; request: TimeoutNowRequest }
  /** A snapshot message arrived from `leaderName` in `term`. */
  | { kind: "leaderContact"; term: number; leaderName: string }
  /** A follower answered an AppendEntries. */
  | {
    kind: "appendEntriesResponse";
    from: string;
    request: AppendEntriesRequest;
    response: AppendEntriesResponse;
  }
  /** An AppendEntries could not be delivered or answered. */
  | { kind: "appendEntriesFailure"; to: string; request: AppendEntriesRequest }
  /** A peer answered a RequestVote. */
  | {
    kind: "requestVoteResponse";
    from: string;
    request: RequestVoteRequest;
    response: RequestVoteResponse;
  }
  /** A client proposed a command (`do()`). */
  | { kind: "propose"; commandName: string; command: Uint8Array }
  /** A client asked for a linearizable read (`readIndex()`). */
  | { kind: "readRequest" }
  /** A storage write completed; `last` is its last entry, when it held entries. */
  | { kind: "written"; last: { index: number; term: number } | undefined }
  /** A snapshot received from the leader is about to replace the log. */
  | { kind: "installSnapshot"; meta: SnapshotMeta }
  /** A snapshot taken here is durable: drop the entries it covers. */
  | { kind: "compact"; index: number }
  /** Sending a snapshot to `to` ended; `newerTerm` when the follower knew a newer term. */
  | {
    kind: "snapshotSent";
    to: string;
    lastIndex: number;
    installed: boolean;
    newerTerm: number | undefined;
  }
  /** Leadership transfer to `target` was asked for. */
  | { kind: "transferLeadership"; target: string }
  /** A leadership transfer timed out. */
  | { kind: "cancelTransfer" }
  /** `addPeer()` starts catching a newcomer up as a learner. */
  | { kind: "addLearner"; peer: PeerInfo }
  /** `addPeer()` gave up on a learner. */
  | { kind: "removeLearner"; name: string }
  /** The election timeout or heartbeat interval was changed. */
  | { kind: "setTimeouts"; electionTimeoutMs: number; heartbeatIntervalMs: number };

/** What {@link ReadyLoop.step} returns for the inputs whose core call answers something. */
interface StepResults {
  appendEntries: AppendEntriesResponse;
  requestVote: RequestVoteResponse;
  timeoutNow: TimeoutNowResponse;
  leaderContact: boolean;
  propose: { index: number; term: number };
  readRequest: number;
  installSnapshot: boolean;
}
/** The result of stepping input `I`. */
export type StepResult<I extends ServerInput> = I["kind"] extends keyof StepResults
  ? StepResults[I["kind"]]
  : void;

/** Waiters are called with no argument once durable, or with the error that prevented it. */
type PendingWrite = WriteBatch<(error?: unknown) => void>;

/** What the ready loop needs from the server it runs for. */
export interface ReadyLoopOptions {
  /** The server's name, for logs and as the sender of its messages. */
  name: string;
  /** The current core (replaced at each init). */
  core: () => Consensus;
  /** Time source for the timer, and the time the core is ticked with. */
  clock: Clock;
  /** Where outputs are made durable. */
  storage: Storage;
  /** The transporter in use (the server's may be replaced). */
  transporter: () => Transporter;
  /** Counters. */
  stats: StatsRecorder;
  /** Where sends, failures and role changes are logged. */
  logger: Logger;
  /** Sees every input before the core does (`ServerOptions.onStep`). */
  onStep: ((input: ServerInput) => void) | undefined;
  /** Whether the server is running: a stopped server's core takes inputs, nothing is driven. */
  isRunning: () => boolean;
  /** A check that stays true while the current run of the server lasts. */
  currentRun: () => () => boolean;
  /** The current base election timeout. */
  electionTimeoutMs: () => number;
  /** Applies what is committed, and settles `do()` callers whose entries are gone. */
  applier: Pick<
    Applier<unknown>,
    "apply" | "hasWaiters" | "failOrphanedWaiters" | "failWaitersAfter"
  >;
  /** Told of each follower's progress, and failed when this server stops leading. */
  catchUp: Pick<CatchUp, "progressChanged" | "failAll">;
  /** Dispatches an event to the server's listeners. */
  dispatch: <K extends RaftEventType>(
    type: K,
    value: RaftEventMap[K]["value"],
    prevValue: RaftEventMap[K]["prevValue"],
  ) => void;
  /** The error a caller gets when this server is not (or no longer) the leader. */
  notLeaderError: () => NotLeaderError;
  /** Starts sending the latest snapshot to a peer behind the compacted log. */
  sendSnapshot: (peer: PeerInfo) => void;
  /** Stops the server after a failure that leaves memory and storage inconsistent. */
  failStop: (what: string, error: unknown) => Promise<void>;
}

/** Steps the core and drives its outputs: persist → send → apply, and the timer. */
export class ReadyLoop {
  readonly #options: ReadyLoopOptions;
  #timer: TimerHandle | undefined;
  #timerDueMs = Infinity;
  #driveScheduled = false;
  /** Checks of pending {@link ReadyLoop.waitUntil} calls, run after every drive. */
  readonly #conditionWaiters = new Set<() => void>();
  #pendingWrite: PendingWrite | undefined;
  #inflightWrite: PendingWrite | undefined;
  #storageLock: Promise<void> = Promise.resolve();
  /** Last index handed to storage; a later batch starting at or below it truncated the log. */
  #lastTakenIndex = 0;
  /** Storage holds no entry at or below this index (as of its last completed compaction). */
  #storageCompactedThrough = 0;
  #readWaiters = new Map<
    number,
    { resolve: (index: number) => void; reject: (error: unknown) => void }
  >();
  /** When this server last stopped leading (a leader counts as in contact with one). */
  #steppedDownAtMs = -Infinity;

  /**
   * Creates an instance.
   * @param options see {@link ReadyLoopOptions}
   */
  constructor(options: ReadyLoopOptions) {
    this.#options = options;
  }

  // ------------------------------------------------------------ startup and stop

  /**
   * Notes how far storage, as just opened, has compacted its log: a write never goes below.
   * @param compactedThrough storage holds no entry at or below this index
   */
  storageOpened(compactedThrough: number): void {
    this.#storageCompactedThrough = compactedThrough;
  }

  /**
   * Loads what storage recovered into the current core (a fresh one: see
   * `Consensus.restore`). This is the core's construction, not an input of a run, so it is
   * not a {@link ServerInput} and `onStep` does not see it: a recorded run starts from the
   * stored state. Follow with {@link ReadyLoop.persistBootstrap}.
   * @param state what storage holds
   */
  restore(state: RestoredState): void {
    const core = this.#options.core();
    core.restore(state, this.#options.clock.now());
    this.#lastTakenIndex = core.lastIndex;
  }

  /**
   * Makes durable what the restored core wrote before its first turn (a founding
   * configuration, a fresh hard state), before the server runs: nothing is sent or driven.
   */
  async persistBootstrap(): Promise<void> {
    const bootstrap = this.#options.core().takeReady();
    if (bootstrap.hardState === undefined && bootstrap.entries.length === 0) return;
    // Not running yet: no write loop or snapshot can be using storage, so no lock.
    await this.#options.storage.save({
      ...(bootstrap.hardState ? { hardState: bootstrap.hardState } : {}),
      entries: bootstrap.entries,
    });
    const last = bootstrap.entries[bootstrap.entries.length - 1];
    // Not running yet: the core takes the input and nothing is driven.
    if (last !== undefined) this.step({ kind: "written", last });
  }

  /**
   * The server stopped: clears the timer and settles every wait (conditions and reads
   * with `error`, the replies waiting on a queued write with `error`). A write in flight
   * completes; close storage through {@link ReadyLoop.withStorage} to wait for it.
   * @param error what the waiting callers get
   */
  stop(error: StopError): void {
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDueMs = Infinity;
    this.#checkConditions();
    for (const waiter of this.#readWaiters.values()) waiter.reject(error);
    this.#readWaiters.clear();
    for (const waiter of this.#pendingWrite?.waiters ?? []) waiter(error);
    this.#pendingWrite = undefined;
  }

  // ------------------------------------------------------------ stepping and driving

  /**
   * The one entry point into the core: notes the input for `onStep`, feeds it to the core,
   * then drives the outputs. Proposals and reads drive after the current synchronous work,
   * so that those made together share a write and a message; an installed snapshot is
   * driven by its caller once storage and the state machine hold it; every other input
   * drives at once. A stopped server drives nothing (its core still takes the input).
   * @param input the input
   * @returns what the core's handler of the input returns
   */
  step<I extends ServerInput>(input: I): StepResult<I> {
    this.#options.onStep?.(input);
    const result = this.#feed(input);
    switch (input.kind) {
      case "propose":
      case "readRequest":
        this.#scheduleDrive();
        break;
      case "installSnapshot":
        break;
      default:
        this.drive();
    }
    return result as StepResult<I>;
  }

  #feed(input: ServerInput): unknown {
    const core = this.#options.core();
    const clock = this.#options.clock;
    switch (input.kind) {
      case "timer":
        core.tick(clock.now());
        this.#settleIfCutOff();
        return;
      case "tick":
        return core.tick(clock.now());
      case "appendEntries":
        core.tick(clock.now());
        return core.handleAppendEntries(input.request);
      case "requestVote":
        core.tick(clock.now());
        return core.handleRequestVote(input.request);
      case "timeoutNow":
        return core.handleTimeoutNow(input.request);
      case "leaderContact":
        return core.handleLeaderContact(input.term, input.leaderName);
      case "appendEntriesResponse":
        core.tick(clock.now());
        return core.handleAppendEntriesResponse(input.from, input.request, input.response);
      case "appendEntriesFailure":
        return core.handleAppendEntriesFailure(input.to, input.request);
      case "requestVoteResponse":
        return core.handleRequestVoteResponse(input.from, input.request, input.response);
      case "propose":
        return core.propose(input.commandName, input.command);
      case "readRequest":
        return core.requestRead();
      case "written":
        if (input.last !== undefined) core.persisted(input.last.index, input.last.term);
        return;
      case "installSnapshot":
        return core.installSnapshot(input.meta);
      case "compact":
        return core.compact(input.index);
      case "snapshotSent":
        if (input.newerTerm !== undefined) core.handleLeaderContact(input.newerTerm, "");
        return core.snapshotSent(input.to, input.lastIndex, input.installed);
      case "transferLeadership":
        return core.transferLeadership(input.target);
      case "cancelTransfer":
        return core.cancelTransfer();
      case "addLearner":
        return core.addLearner(input.peer);
      case "removeLearner":
        return core.removeLearner(input.name);
      case "setTimeouts":
        return core.setTimeouts(input.electionTimeoutMs, input.heartbeatIntervalMs);
    }
  }

  /**
   * Drives once after the current synchronous work: proposals made together (many clients
   * in one turn) then share one storage write and one message per follower.
   */
  #scheduleDrive(): void {
    if (this.#driveScheduled) return;
    this.#driveScheduled = true;
    queueMicrotask(() => {
      this.#driveScheduled = false;
      this.drive();
    });
  }

  /** Drains the core's outputs: persist, send, apply, and re-arm the timer. */
  drive(): void {
    if (!this.#options.isRunning()) return;
    const core = this.#options.core();
    if (core.hasReady) {
      const ready = core.takeReady();
      this.#handleReady(ready);
    }
    this.#options.applier.apply();
    this.#armTimer();
    if (this.#conditionWaiters.size > 0) this.#checkConditions();
  }

  /**
   * The core's log was replaced by an installed snapshot: entries taken from now on follow
   * it, and do not truncate anything taken before.
   */
  logReplaced(): void {
    this.#lastTakenIndex = this.#options.core().lastIndex;
  }

  #handleReady(ready: Ready): void {
    const { clock, logger, stats, name } = this.#options;
    for (const event of ready.events) {
      this.#options.dispatch(event.type, event.value as never, event.prevValue as never);
      if (event.type === "stateChange" && event.prevValue === LEADER) {
        this.#steppedDownAtMs = clock.now();
        this.#failReads();
        this.#options.catchUp.failAll(this.#options.notLeaderError());
      }
      if (event.type === "stateChange") {
        if (event.value === CANDIDATE) stats.count("electionsStarted");
        if (event.value === LEADER) stats.count("leadershipsWon");
      }
      if (event.type !== "addPeer" && event.type !== "removePeer") {
        logger.debug(`${name}: ${event.type}`, {
          from: event.prevValue,
          to: event.value,
          term: this.#options.core().term,
        });
      }
    }
    const needsPersist = ready.hardState !== undefined || ready.entries.length > 0;
    const afterPersist: OutboundMessage[] = [];
    for (const message of ready.messages) {
      // A leader may replicate while persisting its own copy (Raft thesis §10.2.1); a vote
      // request must wait until the candidacy (term and self-vote) is durable.
      if (message.kind === "requestVote" && needsPersist) afterPersist.push(message);
      else this.#send(message);
    }
    for (const peer of ready.snapshotsNeeded) this.#options.sendSnapshot(peer);
    for (const peer of ready.progressChanged) this.#options.catchUp.progressChanged(peer);
    for (const read of ready.readsReady) {
      const waiter = this.#readWaiters.get(read.id);
      this.#readWaiters.delete(read.id);
      waiter?.resolve(read.index);
    }
    const first = ready.entries[0];
    if (first !== undefined) {
      // Entries replaced from first.index on: commands waiting there may be gone.
      if (first.index <= this.#lastTakenIndex) this.#options.applier.failOrphanedWaiters();
      this.#lastTakenIndex = ready.entries[ready.entries.length - 1]!.index;
    }
    if (needsPersist || afterPersist.length > 0) {
      this.#queueWrite(ready.hardState, ready.entries, afterPersist);
    }
  }

  // ------------------------------------------------------------ storage writes

  #queueWrite(
    hardState: HardState | undefined,
    entries: LogEntry[],
    afterPersist: OutboundMessage[],
  ): void {
    this.#pendingWrite = mergeIntoBatch(this.#pendingWrite, hardState, entries, afterPersist);
    if (this.#inflightWrite === undefined) void this.#writeLoop();
  }

  async #writeLoop(): Promise<void> {
    const { clock, stats, storage } = this.#options;
    while (this.#pendingWrite !== undefined && this.#options.isRunning()) {
      const batch = this.#pendingWrite;
      this.#pendingWrite = undefined;
      this.#inflightWrite = batch;
      const startedMs = clock.now();
      try {
        await this.withStorage(() => {
          // A snapshot installed or taken while this batch waited may have compacted storage
          // past its first entries: write only what follows. The floor is what storage has
          // compacted, not the core's snapshot index: a save queued before an install's
          // compaction runs after the core moved on, and skipping entries there left a gap.
          const floor = this.#storageCompactedThrough;
          const entries = batch.entries[0] !== undefined && batch.entries[0].index <= floor
            ? batch.entries.filter((entry) => entry.index > floor)
            : batch.entries;
          return storage.save({
            ...(batch.hardState ? { hardState: batch.hardState } : {}),
            ...(entries.length > 0 ? { entries } : {}),
          });
        });
      } catch (error) {
        // Storage that cannot write cannot acknowledge anything: stop rather than lie.
        stats.count("storageWriteErrors");
        this.#inflightWrite = undefined;
        for (const waiter of batch.waiters) waiter(new StopError("Storage write failed"));
        await this.#options.failStop("storage write failed", error);
        return;
      }
      stats.recordStorageWrite(clock.now() - startedMs);
      this.#inflightWrite = undefined;
      if (this.#options.isRunning()) {
        for (const message of batch.afterPersist) this.#send(message);
      }
      for (const waiter of batch.waiters) waiter();
      const last = batch.entries[batch.entries.length - 1];
      this.step({ kind: "written", last });
    }
  }

  /**
   * Resolves once everything taken from the core so far is durable.
   * @throws StopError when the write fails or the server stops first: a response may
   * acknowledge only what is durable
   */
  flushed(): Promise<void> {
    const target = this.#pendingWrite ?? this.#inflightWrite;
    if (target === undefined) return Promise.resolve();
    // A write that fails must fail the reply too: a response may acknowledge only what is durable.
    return new Promise((resolve, reject) =>
      target.waiters.push((error) => error === undefined ? resolve() : reject(error))
    );
  }

  /**
   * Runs a storage operation once every earlier one has settled.
   * @param operation the operation
   * @returns its result
   */
  withStorage<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#storageLock.then(operation);
    this.#storageLock = run.then(() => undefined, () => undefined);
    return run;
  }

  /**
   * Compacts storage through `throughIndex` and notes how far; call it inside
   * {@link ReadyLoop.withStorage}.
   * @param throughIndex the last index dropped
   */
  async compactStorage(throughIndex: number): Promise<void> {
    await this.#options.storage.compact(throughIndex);
    this.#storageCompactedThrough = Math.max(this.#storageCompactedThrough, throughIndex);
  }

  // ------------------------------------------------------------ timer

  #armTimer(): void {
    const clock = this.#options.clock;
    const due = this.#options.core().nextWakeAtMs;
    if (this.#timer !== undefined && due >= this.#timerDueMs) return;
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
    this.#timerDueMs = due;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerDueMs = Infinity;
      if (!this.#options.isRunning()) return;
      this.step({ kind: "timer" });
    }, Math.max(0, due - clock.now()));
  }

  /**
   * Settles pending commands as unknown once no leader has contacted this server for a
   * while: only a leader's entries can tell it whether they committed. A server whose own
   * log removes it waits two election timeouts (leaders send nothing to servers outside
   * their configuration, and it does not campaign; simulator seed 71). A member waits
   * {@link CUT_OFF_ELECTION_TIMEOUTS}: it is partitioned away, or it was removed by a change
   * it never received (simulator seed 653). Then no leader contacts it, its votes fail, as
   * its log is behind, and nothing else would ever settle its calls. A leader that reaches
   * it later still replicates to it as before.
   */
  #settleIfCutOff(): void {
    const { applier, clock } = this.#options;
    const core = this.#options.core();
    if (!applier.hasWaiters || core.state === LEADER) return;
    const lastContactMs = Math.max(core.lastLeaderContactMs, this.#steppedDownAtMs);
    const silentMs = clock.now() - lastContactMs;
    const removed = !core.isMember;
    const limitMs = this.#options.electionTimeoutMs() *
      (removed ? 2 : CUT_OFF_ELECTION_TIMEOUTS);
    if (!(silentMs > limitMs)) return;
    applier.failWaitersAfter(
      core.commitIndex,
      removed
        ? "this server's log removes it from the cluster and no leader has contacted it since"
        : `no leader has contacted this server for ${CUT_OFF_ELECTION_TIMEOUTS} election timeouts`,
    );
  }

  // ------------------------------------------------------------ messages

  /** Whether trace messages are wanted: building one per RPC costs on the hot path. */
  #tracing(): boolean {
    const logger = this.#options.logger;
    return logger.trace !== undefined && (logger !== consoleLogger || logLevel() >= TRACE);
  }

  #send(message: OutboundMessage): void {
    const { clock, logger, name, stats } = this.#options;
    const transporter = this.#options.transporter();
    const sender = { name };
    // Answers to a stopped run's requests must not reach the core of a later run.
    const current = this.#options.currentRun();
    stats.sent(
      message.kind,
      message.kind === "appendEntries" ? entryBytes(message.request.entries) : 0,
    );
    if (this.#tracing()) {
      logger.trace!(`${name}: send ${message.kind}`, {
        to: message.to.name,
        term: message.request.term,
      });
    }
    switch (message.kind) {
      case "appendEntries": {
        const startedMs = clock.now();
        const request = message.request;
        transporter.sendAppendEntriesRequest(sender, message.to, request).then(
          (response) => {
            if (!current()) return;
            if (request.entries.length === 0) {
              this.#noteHeartbeat(message.to.name, clock.now() - startedMs);
            }
            this.step({ kind: "appendEntriesResponse", from: message.to.name, request, response });
          },
          (error) => {
            if (!current()) return;
            logger.debug(`${name}: AppendEntries failed`, {
              to: message.to.name,
              error: String(error),
            });
            this.step({ kind: "appendEntriesFailure", to: message.to.name, request });
          },
        );
        return;
      }
      case "requestVote": {
        const request = message.request;
        transporter.sendVoteRequest(sender, message.to, request).then(
          (response) => {
            if (!current()) return;
            this.step({ kind: "requestVoteResponse", from: message.to.name, request, response });
          },
          (error) =>
            logger.debug(`${name}: RequestVote failed`, {
              to: message.to.name,
              error: String(error),
            }),
        );
        return;
      }
      case "timeoutNow":
        transporter.sendTimeoutNow(sender, message.to, message.request).catch((error) =>
          logger.debug(`${name}: TimeoutNow failed`, {
            to: message.to.name,
            error: String(error),
          })
        );
        return;
    }
  }

  #noteHeartbeat(peer: string, roundTripMs: number): void {
    this.#options.dispatch("heartbeat", { peer, roundTripMs }, undefined);
    const threshold = this.#options.electionTimeoutMs() * ELECTION_TIMEOUT_THRESHOLD_PERCENT;
    if (roundTripMs > threshold) {
      this.#options.dispatch("electionTimeoutThreshold", { peer, roundTripMs }, threshold);
    }
  }

  // ------------------------------------------------------------ waiters

  /**
   * Asks the core for a linearizable read (ReadIndex) and resolves with its read index
   * once a heartbeat round confirmed this server still leads.
   * @param signal rejects the wait with CommandTimeoutError when it aborts
   * @returns the read index
   * @throws NotLeaderError when this server is not, or stops being, the leader
   * @throws StopError when the server stops first
   */
  read(signal: AbortSignal | undefined): Promise<number> {
    const id = this.step({ kind: "readRequest" });
    return new Promise<number>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#readWaiters.set(id, waiter);
      signal?.addEventListener("abort", () => {
        // Read ids start over with each core (start() builds a new one): a signal that
        // aborts after stop() and start() must not remove a newer read that reuses the id.
        if (this.#readWaiters.get(id) !== waiter) return;
        this.#readWaiters.delete(id);
        reject(new CommandTimeoutError("Read aborted"));
      }, { once: true });
    });
  }

  #failReads(): void {
    const error = this.#options.notLeaderError();
    for (const waiter of this.#readWaiters.values()) waiter.reject(error);
    this.#readWaiters.clear();
  }

  /**
   * Resolves once `condition()` holds, checked now and after every drive (every input goes
   * through {@link ReadyLoop.step}, so nothing it depends on changes unseen); rejects with
   * what `condition()` throws, with StopError once the server stops, or with
   * `timeoutError()` at the deadline or on abort.
   * @param condition checked synchronously; may throw to fail the wait
   * @param options the deadline, an AbortSignal, and the error either rejects with
   */
  waitUntil(
    condition: () => boolean,
    options: { timeoutMs: number; signal: AbortSignal | undefined; timeoutError: () => Error },
  ): Promise<void> {
    const clock = this.#options.clock;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let timer: TimerHandle | undefined;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        this.#conditionWaiters.delete(check);
        if (timer !== undefined) clock.clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const check = () => {
        try {
          if (!this.#options.isRunning()) return finish(new StopError());
          if (condition()) return finish();
        } catch (error) {
          return finish(error);
        }
      };
      const onAbort = () => finish(options.timeoutError());
      check();
      if (settled) return;
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (Number.isFinite(options.timeoutMs)) {
        timer = clock.setTimeout(onAbort, options.timeoutMs);
      }
      this.#conditionWaiters.add(check);
    });
  }

  /** Re-checks every {@link ReadyLoop.waitUntil} condition. */
  #checkConditions(): void {
    for (const check of [...this.#conditionWaiters]) check();
  }
}

/**
 * Bytes of commands in `entries`.
 * @param entries log entries
 * @returns the sum of their command lengths
 */
export function entryBytes(entries: LogEntry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.command.length;
  return bytes;
}
