// One simulated server: the real Consensus driven the way server.ts drives it (persist →
// send → apply, replies only once what was taken from the core is durable, vote requests
// only after the candidacy is durable), over a storage model whose writes become durable
// after a simulated fsync delay and whose unsynced writes a crash may tear or lose.
import { Consensus, type OutboundMessage, type Ready } from "../consensus.ts";
import { LEADER } from "../constants.ts";
import { NotLeaderError } from "../errors.ts";
import type { Random } from "../random.ts";
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
} from "../types.ts";
import { contentOf, type LogView, type SafetyChecker } from "./_sim_checkers.ts";
import { decodeKv, encodeKv, KV_COMMAND_NAME, SimKv } from "./_sim_kv.ts";
import type { KvInput, KvOutput } from "./linearizability.ts";
import type { SeededRandom } from "./seeded_random.ts";
import { mergeIntoBatch, type WriteBatch } from "../_write_batch.ts";

/** Consensus and shell settings shared by every node of a simulation. */
export interface SimNodeConfig {
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxInflightMessages: number;
  maxEntriesPerMessage: number;
  /** Take a snapshot after this many applied entries (0: never). */
  snapshotEvery: number;
  /** Entries kept in the log behind a snapshot. */
  trailingEntries: number;
  /** Deliberately break one of server.ts's ordering rules (to test the checkers). */
  sabotage: "replyBeforeFlush" | "voteBeforePersist" | undefined;
}

/** A snapshot as the simulator's network carries it. */
export interface SnapshotMessage {
  term: number;
  leaderName: string;
  meta: SnapshotMeta;
  data: Uint8Array;
}

/** Answer to a {@link SnapshotMessage}. */
export interface SnapshotReply {
  term: number;
  success: boolean;
}

/**
 * Answer to a client request: `ok` with the state machine's output and the entry's index,
 * `notLeader` (try `leader`; the operation did not happen) or `fail` (the operation's entry
 * was overwritten: it did not happen).
 */
export type ClientReply =
  | { kind: "ok"; output: KvOutput; index: number }
  | { kind: "notLeader"; leader: string }
  | { kind: "fail" };

/** What a node needs from the simulator. */
export interface NodeHost {
  readonly nowMs: number;
  at(atMs: number, run: () => void): void;
  fsyncDelayMs(): number;
  rpc(from: SimNode, message: OutboundMessage): void;
  sendSnapshot(
    from: SimNode,
    to: PeerInfo,
    message: SnapshotMessage,
    done: (reply: SnapshotReply | undefined) => void,
  ): void;
  readonly checker: SafetyChecker;
  readonly stats: { snapshotsTaken: number; snapshotsInstalled: number; writes: number };
  trace(text: string): void;
}

type PendingWrite = WriteBatch<() => void>;

/** Durable state of a node: what survives a crash. */
export interface DurableState {
  hardState: HardState;
  snapshot: { meta: SnapshotMeta; data: Uint8Array } | undefined;
  /** Contiguous entries (may start at or before the snapshot point). */
  entries: LogEntry[];
}

/** What a crash did to the unsynced writes. */
export interface CrashOutcome {
  /** Some write that had not completed was lost or torn. */
  lostWrites: boolean;
}

export class SimNode {
  readonly name: string;
  readonly #host: NodeHost;
  readonly #config: SimNodeConfig;
  readonly #peers: PeerInfo[];
  readonly #random: Random;
  up = false;
  incarnation = 0;
  core!: Consensus;
  readonly disk: DurableState = {
    hardState: { term: 0, votedFor: "" },
    snapshot: undefined,
    entries: [],
  };
  kv = new SimKv();
  appliedIndex = 0;
  /** Content of every entry this node applied itself, by index (across restarts). */
  readonly appliedLog = new Map<number, string>();
  /** Received requests, by kind (6.824's RPC counts). */
  rpcsReceived = 0;

  #pending: PendingWrite | undefined;
  #inflight: PendingWrite | undefined;
  #waiters = new Map<number, { term: number; done: (reply: ClientReply) => void }>();
  #readWaiters = new Map<number, (index: number | undefined) => void>();
  #appliedWaiters: { index: number; run: () => void }[] = [];
  #timerDueMs = Infinity;
  #timerToken = 0;
  #sinceSnapshot = 0;
  #sendingSnapshotTo = new Set<string>();
  #wasLeaderTerm = -1;
  #seenCommit = 0;
  #driveScheduled = false;
  /** Called when the next write starts, with its fsync delay (crash-during-write faults). */
  onNextWrite: ((fsyncMs: number) => void) | undefined;

  constructor(
    name: string,
    host: NodeHost,
    options: { config: SimNodeConfig; peers: PeerInfo[]; random: Random },
  ) {
    this.name = name;
    this.#host = host;
    this.#config = options.config;
    this.#peers = options.peers;
    this.#random = options.random;
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts (or restarts) from the durable state, as Server.init + start do. */
  boot(): void {
    this.incarnation++;
    this.up = true;
    const c = this.#config;
    this.core = new Consensus({
      name: this.name,
      peers: this.#peers,
      electionTimeoutMs: c.electionTimeoutMs,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      random: this.#random,
      preVote: c.preVote,
      checkQuorum: c.checkQuorum,
      maxInflightMessages: c.maxInflightMessages,
      maxEntriesPerMessage: c.maxEntriesPerMessage,
    });
    const snapshot = this.disk.snapshot;
    const snapIndex = snapshot?.meta.lastIndex ?? 0;
    this.core.restore({
      hardState: { ...this.disk.hardState },
      snapshot: snapshot?.meta,
      entries: this.disk.entries.filter((entry) => entry.index > snapIndex),
    }, this.#host.nowMs);
    this.kv = new SimKv();
    if (snapshot) this.kv.restore(snapshot.data);
    this.appliedIndex = snapIndex;
    this.#sinceSnapshot = 0;
    this.#seenCommit = this.core.commitIndex;
    this.#wasLeaderTerm = -1;
    // Server.init writes the bootstrap entry before it starts.
    const bootstrap = this.core.takeReady();
    if (bootstrap.hardState !== undefined || bootstrap.entries.length > 0) {
      this.#writeToDisk(bootstrap.hardState, bootstrap.entries);
      const last = bootstrap.entries[bootstrap.entries.length - 1];
      if (last !== undefined) this.core.persisted(last.index, last.term);
    }
    this.#trace(`boot term=${this.core.term} last=${this.core.lastIndex} snap=${snapIndex}`);
    this.drive();
  }

  /**
   * Crashes the node: writes not yet durable are lost, except that the write in progress
   * may have reached the disk in part (a prefix of its entries; old or new hard state).
   */
  crash(random: SeededRandom, tearWrites: boolean): CrashOutcome {
    let lostWrites = this.#pending !== undefined;
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      if (tearWrites) {
        const keep = random.int(inflight.entries.length + 1);
        const keepHardState = random.chance(0.5);
        if (keep < inflight.entries.length || (inflight.hardState && !keepHardState)) {
          lostWrites = true;
        }
        this.#writeToDisk(
          keepHardState ? inflight.hardState : undefined,
          inflight.entries.slice(0, keep),
        );
      } else lostWrites = true;
    }
    this.up = false;
    this.incarnation++;
    this.#pending = undefined;
    this.#inflight = undefined;
    this.#waiters.clear();
    this.#readWaiters.clear();
    this.#appliedWaiters = [];
    this.#timerDueMs = Infinity;
    this.#timerToken++;
    this.#driveScheduled = false;
    this.#sendingSnapshotTo.clear();
    this.onNextWrite = undefined;
    this.#trace(`crash lostWrites=${lostWrites}`);
    return { lostWrites };
  }

  /** The durable log, for the log matching checker. */
  durableLog(): LogView {
    const meta = this.disk.snapshot?.meta;
    const snapshotIndex = meta?.lastIndex ?? 0;
    return {
      name: this.name,
      snapshotIndex,
      snapshotTerm: meta?.lastTerm ?? 0,
      entries: this.disk.entries.filter((entry) => entry.index > snapshotIndex),
    };
  }

  // ------------------------------------------------------------ the loop (server.ts #drive)

  drive(): void {
    if (!this.up) return;
    if (this.core.hasReady) this.#handleReady(this.core.takeReady());
    this.#applyCommitted();
    this.#armTimer();
    this.#observe();
  }

  #handleReady(ready: Ready): void {
    for (const event of ready.events) {
      this.#trace(`${event.type} ${JSON.stringify(event.value)}`);
      if (event.type === "stateChange" && event.prevValue === LEADER) this.#failReads();
    }
    const needsPersist = ready.hardState !== undefined || ready.entries.length > 0;
    const afterPersist: OutboundMessage[] = [];
    for (const message of ready.messages) {
      if (
        message.kind === "requestVote" && needsPersist &&
        this.#config.sabotage !== "voteBeforePersist"
      ) afterPersist.push(message);
      else this.#host.rpc(this, message);
    }
    for (const peer of ready.snapshotsNeeded) this.#sendSnapshot(peer);
    for (const read of ready.readsReady) {
      const waiter = this.#readWaiters.get(read.id);
      this.#readWaiters.delete(read.id);
      waiter?.(read.index);
    }
    if (needsPersist || afterPersist.length > 0) {
      this.#queueWrite(ready.hardState, ready.entries, afterPersist);
    }
  }

  #queueWrite(
    hardState: HardState | undefined,
    entries: LogEntry[],
    afterPersist: OutboundMessage[],
  ): void {
    this.#pending = mergeIntoBatch(this.#pending, hardState, entries, afterPersist);
    if (this.#inflight === undefined) this.#startWrite();
  }

  #startWrite(): void {
    const batch = this.#pending;
    if (batch === undefined) return;
    this.#pending = undefined;
    this.#inflight = batch;
    const incarnation = this.incarnation;
    const fsyncMs = this.#host.fsyncDelayMs();
    const hook = this.onNextWrite;
    this.onNextWrite = undefined;
    hook?.(fsyncMs);
    this.#host.at(this.#host.nowMs + fsyncMs, () => {
      if (this.incarnation !== incarnation) return;
      this.#inflight = undefined;
      this.#writeToDisk(batch.hardState, batch.entries);
      const last = batch.entries[batch.entries.length - 1];
      if (last !== undefined) this.core.persisted(last.index, last.term);
      for (const message of batch.afterPersist) this.#host.rpc(this, message);
      for (const waiter of batch.waiters) waiter();
      this.drive();
      if (this.up && this.#inflight === undefined) this.#startWrite();
    });
  }

  #writeToDisk(hardState: HardState | undefined, entries: LogEntry[]): void {
    this.#host.stats.writes++;
    if (hardState) this.disk.hardState = { ...hardState };
    const first = entries[0];
    if (first === undefined) return;
    const disk = this.disk.entries;
    const diskFirst = disk[0]?.index ?? first.index;
    const diskLast = disk.length > 0 ? disk[disk.length - 1]!.index : first.index - 1;
    if (first.index > diskLast + 1) {
      const snapIndex = this.disk.snapshot?.meta.lastIndex ?? 0;
      if (first.index > snapIndex + 1) {
        this.#host.checker.violation(
          `${this.name}: a write at ${first.index} leaves a gap after the stored log end ${diskLast}`,
        );
      }
      disk.length = 0;
    } else {
      disk.length = Math.max(0, first.index - diskFirst);
    }
    disk.push(...entries);
    this.#host.checker.noteEntries(this.name, entries);
  }

  /** Runs `then` once everything taken from the core so far is durable. */
  #flushed(then: () => void): void {
    if (this.#config.sabotage === "replyBeforeFlush") return then();
    const target = this.#pending ?? this.#inflight;
    if (target === undefined) return then();
    const incarnation = this.incarnation;
    target.waiters.push(() => {
      if (this.incarnation === incarnation) then();
    });
  }

  #armTimer(): void {
    const due = this.core.nextWakeAtMs;
    if (due >= this.#timerDueMs) return;
    this.#timerDueMs = due;
    const token = ++this.#timerToken;
    const incarnation = this.incarnation;
    this.#host.at(due, () => {
      if (this.incarnation !== incarnation || this.#timerToken !== token) return;
      this.#timerDueMs = Infinity;
      this.core.tick(this.#host.nowMs);
      this.drive();
    });
  }

  /** Feeds the checkers: leaders per term, commits, leader completeness. */
  #observe(): void {
    const core = this.core;
    const checker = this.#host.checker;
    if (core.role === "leader" && this.#wasLeaderTerm !== core.term) {
      this.#wasLeaderTerm = core.term;
      checker.noteLeader(core.term, this.name);
      checker.checkLeaderCompleteness(
        this.name,
        core.term,
        core.snapshotIndex,
        (index) => core.termAt(index),
      );
    }
    if (core.commitIndex > this.#seenCommit) {
      const from = Math.max(this.#seenCommit + 1, core.snapshotIndex + 1);
      if (from <= core.commitIndex) {
        for (const entry of core.entriesBetween(from, core.commitIndex + 1)) {
          checker.noteCommitted(this.name, entry, core.term);
        }
      }
      this.#seenCommit = core.commitIndex;
    }
  }

  // ------------------------------------------------------------ apply

  #applyCommitted(): void {
    const core = this.core;
    if (this.appliedIndex >= core.commitIndex) return;
    const from = this.appliedIndex + 1;
    if (from <= core.snapshotIndex) {
      this.#host.checker.violation(
        `${this.name}: entry ${from} was compacted before it was applied`,
      );
      return;
    }
    for (const entry of core.entriesBetween(from, core.commitIndex + 1)) this.#apply(entry);
    this.#afterApply();
  }

  #apply(entry: LogEntry): void {
    const checker = this.#host.checker;
    const content = contentOf(entry);
    if (entry.index !== this.appliedIndex + 1) {
      checker.violation(`${this.name} applies ${entry.index} after ${this.appliedIndex}`);
    }
    checker.noteApplied(this.name, entry.index, content);
    const before = this.appliedLog.get(entry.index);
    if (before !== undefined && before !== content) {
      checker.violation(`${this.name} applied ${before} at ${entry.index}, now ${content}`);
    }
    this.appliedLog.set(entry.index, content);
    let output: KvOutput = null;
    if (entry.commandName === KV_COMMAND_NAME) output = this.kv.apply(decodeKv(entry.command));
    this.appliedIndex = entry.index;
    this.#sinceSnapshot++;
    const waiter = this.#waiters.get(entry.index);
    if (waiter) {
      this.#waiters.delete(entry.index);
      // An entry of another term at our index means ours was overwritten: it never commits.
      waiter.done(
        waiter.term === entry.term ? { kind: "ok", output, index: entry.index } : { kind: "fail" },
      );
    }
  }

  #afterApply(): void {
    const ready = this.#appliedWaiters.filter((w) => w.index <= this.appliedIndex);
    this.#appliedWaiters = this.#appliedWaiters.filter((w) => w.index > this.appliedIndex);
    for (const waiter of ready) waiter.run();
    const every = this.#config.snapshotEvery;
    if (every > 0 && this.#sinceSnapshot >= every) this.#takeSnapshot();
  }

  #takeSnapshot(): void {
    const core = this.core;
    const index = this.appliedIndex;
    const term = core.termAt(index);
    if (index === 0 || term === undefined) return;
    this.#sinceSnapshot = 0;
    const meta: SnapshotMeta = { lastIndex: index, lastTerm: term, peers: core.membersAt(index) };
    this.disk.snapshot = { meta, data: this.kv.save() };
    this.#host.stats.snapshotsTaken++;
    const compactTo = Math.min(index - this.#config.trailingEntries, core.commitIndex);
    if (compactTo > core.snapshotIndex) {
      core.compact(compactTo);
      this.disk.entries = this.disk.entries.filter((entry) => entry.index > compactTo);
    }
    this.#trace(`snapshot at ${index}, compacted through ${compactTo}`);
  }

  #waitApplied(index: number, run: () => void): void {
    if (this.appliedIndex >= index) run();
    else this.#appliedWaiters.push({ index, run });
  }

  #failReads(): void {
    const waiters = [...this.#readWaiters.values()];
    this.#readWaiters.clear();
    for (const waiter of waiters) waiter(undefined);
  }

  // ------------------------------------------------------------ snapshots

  #sendSnapshot(peer: PeerInfo): void {
    if (this.#sendingSnapshotTo.has(peer.name)) return;
    const stored = this.disk.snapshot;
    const term = this.core.term;
    const incarnation = this.incarnation;
    const finish = (ok: boolean, lastIndex: number) => {
      if (this.incarnation !== incarnation) return;
      this.#sendingSnapshotTo.delete(peer.name);
      this.core.snapshotSent(peer.name, lastIndex, ok);
      this.drive();
    };
    if (stored === undefined) {
      this.#host.checker.violation(`${this.name} must send a snapshot but stores none`);
      return;
    }
    this.#sendingSnapshotTo.add(peer.name);
    this.#host.sendSnapshot(
      this,
      peer,
      { term, leaderName: this.name, meta: stored.meta, data: stored.data },
      (reply) => {
        if (this.incarnation !== incarnation) return;
        if (reply !== undefined && reply.term > term) {
          this.core.handleLeaderContact(reply.term, "");
        }
        finish(reply !== undefined && reply.term <= term && reply.success, stored.meta.lastIndex);
      },
    );
  }

  // ------------------------------------------------------------ RPC handlers (server.ts)

  onAppendEntries(req: AppendEntriesRequest, reply: (resp: AppendEntriesResponse) => void): void {
    this.rpcsReceived++;
    this.core.tick(this.#host.nowMs);
    const response = this.core.handleAppendEntries(req);
    const expectedTerm = this.core.termAt(response.index);
    this.drive();
    this.#flushed(() => {
      const core = this.core;
      // As server.ts: an acknowledgement must never outlive the entries it covers.
      if (
        response.success &&
        (core.term !== response.term ||
          (response.index > core.snapshotIndex && core.termAt(response.index) !== expectedTerm))
      ) {
        reply({
          ...response,
          term: core.term,
          success: false,
          index: core.lastIndex,
          conflictTerm: 0,
        });
      } else reply(response);
    });
  }

  onRequestVote(req: RequestVoteRequest, reply: (resp: RequestVoteResponse) => void): void {
    this.rpcsReceived++;
    this.core.tick(this.#host.nowMs);
    const response = this.core.handleRequestVote(req);
    this.drive();
    this.#flushed(() => reply(response));
  }

  onTimeoutNow(req: TimeoutNowRequest, reply: (resp: TimeoutNowResponse) => void): void {
    this.rpcsReceived++;
    const response = this.core.handleTimeoutNow(req);
    this.drive();
    this.#flushed(() => reply(response));
  }

  onSnapshot(message: SnapshotMessage, reply: (resp: SnapshotReply) => void): void {
    this.rpcsReceived++;
    const current = this.core.handleLeaderContact(message.term, message.leaderName);
    this.drive();
    this.#flushed(() => {
      const core = this.core;
      const { meta, data } = message;
      if (!current || meta.lastIndex <= core.commitIndex) {
        reply({ term: core.term, success: false });
        return;
      }
      if (core.installSnapshot(meta)) {
        // saveSnapshot + compact, modelled as one atomic durable step.
        this.disk.snapshot = { meta, data };
        this.disk.entries = this.disk.entries.filter((entry) => entry.index > meta.lastIndex);
        this.kv.restore(data);
        this.appliedIndex = meta.lastIndex;
        this.#seenCommit = Math.max(this.#seenCommit, meta.lastIndex);
        this.#host.stats.snapshotsInstalled++;
        this.#trace(`installed snapshot ${meta.lastIndex}:${meta.lastTerm}`);
        this.#afterApply();
      }
      this.drive();
      reply({ term: core.term, success: true });
    });
  }

  // ------------------------------------------------------------ clients

  /** Starts a command as a leader's `Server.do` does; `done` gets its outcome. */
  propose(
    commandName: string,
    command: Uint8Array,
    done: (reply: ClientReply) => void,
    groupCommit = false,
  ): { index: number; term: number } | undefined {
    let proposal: { index: number; term: number };
    try {
      proposal = this.core.propose(commandName, command);
    } catch (error) {
      done(
        error instanceof NotLeaderError
          ? { kind: "notLeader", leader: error.leader }
          : { kind: "fail" },
      );
      return undefined;
    }
    this.#waiters.set(proposal.index, { term: proposal.term, done });
    if (!groupCommit) this.drive();
    else if (!this.#driveScheduled) {
      // As Server.do(): drive once per turn, so proposals made together travel together.
      this.#driveScheduled = true;
      const incarnation = this.incarnation;
      this.#host.at(this.#host.nowMs, () => {
        this.#driveScheduled = false;
        if (this.incarnation === incarnation) this.drive();
      });
    }
    return proposal;
  }

  /** Serves a client's KV request: reads by ReadIndex or through the log. */
  onClient(input: KvInput, viaLog: boolean, done: (reply: ClientReply) => void): void {
    if (input.op !== "get" || viaLog) {
      this.propose(KV_COMMAND_NAME, encodeKv(input), done);
      return;
    }
    let id: number;
    try {
      id = this.core.requestRead();
    } catch {
      done({ kind: "notLeader", leader: this.core.leader });
      return;
    }
    this.#readWaiters.set(id, (index) => {
      if (index === undefined) done({ kind: "notLeader", leader: this.core.leader });
      else {
        this.#waitApplied(index, () => done({ kind: "ok", output: this.kv.get(input.key), index }));
      }
    });
    this.drive();
  }

  #trace(text: string): void {
    this.#host.trace(`${this.name} ${text}`);
  }
}
