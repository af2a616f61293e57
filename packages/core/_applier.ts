/**
 * The applier: applies committed entries to the state machine in log order, each exactly
 * once, settles the `do()` and read callers waiting on them, and says when the applied
 * commands call for a snapshot. Everything that must not interleave with applying (taking
 * or installing a snapshot) runs on its chain through {@link Applier.exclusive}.
 *
 * Invariant: appliedIndex <= commitIndex, and entries are applied at appliedIndex + 1 only.
 * @module
 */
import type { CommandRegistry, Context, LeaveCommand } from "./command.ts";
import { type Consensus, JOIN_COMMAND_NAME, LEAVE_COMMAND_NAME } from "./consensus.ts";
import { CommandOutcomeUnknownError, CommandTimeoutError, type NotLeaderError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { isMembershipCommand } from "./membership.ts";
import { InvariantError } from "./raft_log.ts";
import type { StatsRecorder } from "./stats.ts";
import type { LogEntry } from "./types.ts";

/** A `do()` call waiting for its entry to be applied. */
interface Waiter {
  term: number;
  /** When do() proposed it, for the commit-latency histogram. */
  proposedAtMs: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** What the applier needs from the server it applies for. */
export interface ApplierOptions<S> {
  /** The server's name (a `LeaveCommand` naming it removes it). */
  name: string;
  /** The server, as commands see it in their context. */
  server: S;
  /** The application's state machine, as commands see it. */
  stateMachine: unknown;
  /** Decodes entries into commands. */
  registry: CommandRegistry;
  /** The current core (replaced at each init). */
  core: () => Consensus;
  /** Current clock time in ms. */
  nowMs: () => number;
  /** Whether the server is running. */
  isRunning: () => boolean;
  /** A check that stays true while the current run of the server lasts. */
  currentRun: () => () => boolean;
  /** Counters. */
  stats: StatsRecorder;
  /** Where failed applies are logged. */
  logger: Logger;
  /** Dispatches the `commit` event for each applied entry. */
  onCommit: (entry: LogEntry, previousIndex: number) => void;
  /** The error a caller gets when its entry was replaced by another leader's. */
  notLeaderError: () => NotLeaderError;
  /** Stops the server after a failure that leaves memory and storage inconsistent. */
  failStop: (what: string, error: unknown) => Promise<void>;
  /** Called when the applied commands reach a snapshot threshold. */
  onSnapshotDue: () => void;
  /** Entries applied since the last snapshot that make one due (0 disables). */
  snapshotThreshold: number;
  /** Command bytes applied since the last snapshot that make one due (0 disables). */
  snapshotThresholdBytes: number;
}

/** Applies committed entries and settles the calls waiting on them. */
export class Applier<S> {
  readonly #options: ApplierOptions<S>;
  /** Highest index applied to the state machine. */
  appliedIndex = 0;
  /** Name of the last applied command. */
  lastCommandName = "";
  #applying = false;
  #chain: Promise<void> = Promise.resolve();
  #waiters = new Map<number, Waiter>();
  #appliedWaiters: { index: number; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #entriesSinceSnapshot = 0;
  #bytesSinceSnapshot = 0;

  /**
   * Creates an instance.
   * @param options see {@link ApplierOptions}
   */
  constructor(options: ApplierOptions<S>) {
    this.#options = options;
  }

  /** Whether any `do()` call waits for its entry. */
  get hasWaiters(): boolean {
    return this.#waiters.size > 0;
  }

  /**
   * Waits for the entry a `do()` proposed at `index` in `term` to be applied.
   * @returns the command's apply result
   */
  waitFor(index: number, term: number, signal: AbortSignal | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { term, proposedAtMs: this.#options.nowMs(), resolve, reject };
      // A waiter left at this index by an earlier term lost its entry to a truncation.
      this.#waiters.get(index)?.reject(new CommandOutcomeUnknownError(index));
      this.#waiters.set(index, waiter);
      signal?.addEventListener("abort", () => {
        if (this.#waiters.get(index) !== waiter) return;
        this.#waiters.delete(index);
        reject(new CommandTimeoutError());
      }, { once: true });
    });
  }

  /** Resolves once everything up to `index` is applied. */
  waitApplied(index: number): Promise<void> {
    if (this.appliedIndex >= index) return Promise.resolve();
    return new Promise((resolve, reject) => this.#appliedWaiters.push({ index, resolve, reject }));
  }

  /** Rejects every waiting call (the server stops). */
  rejectAll(error: unknown): void {
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    for (const waiter of this.#appliedWaiters) waiter.reject(error);
    this.#waiters.clear();
    this.#appliedWaiters = [];
  }

  /** Notes that a snapshot was taken: the policy counts from here. */
  snapshotTaken(): void {
    this.#entriesSinceSnapshot = 0;
    this.#bytesSinceSnapshot = 0;
  }

  /**
   * Runs `operation` between applies, so the state machine holds exactly `appliedIndex`.
   * @returns what the operation returns
   */
  exclusive(operation: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(operation);
    this.#chain = run.then(() => undefined, () => undefined);
    return run;
  }

  /** Applies committed entries in order, one at a time, each exactly once. */
  apply(): void {
    // A stopped server applies nothing: re-arming here would chain loops that exit at once,
    // forever, and starve the event loop (simulator seeds 54, 95, ...).
    if (!this.#options.isRunning()) return;
    if (this.#applying || this.appliedIndex >= this.#options.core().commitIndex) return;
    this.#applying = true;
    const current = this.#options.currentRun();
    this.#chain = this.#chain.then(async () => {
      try {
        await this.#applyLoop(current);
      } catch (error) {
        await this.#options.failStop("applying committed entries failed", error);
        return;
      } finally {
        this.#applying = false;
      }
      this.#afterApply();
    });
  }

  async #applyLoop(current: () => boolean): Promise<void> {
    const core = this.#options.core;
    while (current() && this.appliedIndex < core().commitIndex) {
      const commit = core().commitIndex;
      const from = this.appliedIndex + 1;
      if (from <= core().snapshotIndex) {
        throw new InvariantError(`entry ${from} compacted before it was applied`);
      }
      const entries = core().entriesBetween(from, commit + 1);
      for (const entry of entries) {
        if (!current()) break;
        // Synchronous commands are applied back to back: awaiting each one would let every
        // resumed client propose on its own turn, one entry per message and per write.
        const pending = this.#applyEntry(entry);
        if (pending !== undefined) await pending;
      }
    }
  }

  #applyEntry(entry: LogEntry): Promise<void> | undefined {
    const options = this.#options;
    const waiter = this.#waiters.get(entry.index);
    if (waiter) this.#waiters.delete(entry.index);
    let result: unknown;
    let asyncResult: PromiseLike<unknown> | undefined;
    let failure: unknown;
    let failed = false;
    const membership = isMembershipCommand(entry.commandName);
    if (!membership) {
      try {
        const command = options.registry.decode(entry.commandName, entry.command);
        const core = options.core();
        const context: Context<S> = {
          server: options.server,
          stateMachine: options.stateMachine,
          currentTerm: core.term,
          currentIndex: entry.index,
          commitIndex: core.commitIndex,
        };
        result = command.apply(context as Context);
        if (typeof (result as PromiseLike<unknown> | null)?.then === "function") {
          asyncResult = result as PromiseLike<unknown>;
        }
      } catch (error) {
        // The entry is committed everywhere; a failing apply is the command's own outcome.
        failure = error;
        failed = true;
      }
    } else {
      // The core already applied the membership change when the entry was appended.
      result = entry.commandName === JOIN_COMMAND_NAME
        ? "joined"
        : entry.commandName === LEAVE_COMMAND_NAME
        ? "left"
        : "configured";
    }
    if (asyncResult !== undefined) {
      return Promise.resolve(asyncResult).then(
        (value) => this.#finishApply(entry, waiter, value, false, undefined),
        (error) => this.#finishApply(entry, waiter, undefined, true, error),
      );
    }
    this.#finishApply(entry, waiter, result, failed, failure);
    if (entry.commandName === LEAVE_COMMAND_NAME && this.#leaves(entry)) {
      // Removed: no leader sends this server entries any more, so commands it proposed after
      // its removal will never be applied here (they may still commit elsewhere).
      this.failWaitersAfter(entry.index, "this server was removed from the cluster");
    }
    return undefined;
  }

  #leaves(entry: LogEntry): boolean {
    try {
      return (this.#options.registry.decode(entry.commandName, entry.command) as LeaveCommand)
        .name === this.#options.name;
    } catch {
      return false;
    }
  }

  /**
   * Settles `do()` calls whose index lies past the end of a log a newer leader truncated (or
   * a snapshot replaced): nothing may ever be applied there again, and another server
   * holding the entry may still win an election and commit it. A waiter whose index the
   * log still holds, with another term, is settled when that index is applied: then it is
   * certain the command did not commit (NotLeaderError).
   */
  failOrphanedWaiters(): void {
    const lastIndex = this.#options.core().lastIndex;
    for (const [index, waiter] of this.#waiters) {
      if (index <= lastIndex) continue;
      this.#waiters.delete(index);
      waiter.reject(
        new CommandOutcomeUnknownError(
          index,
          `The outcome of the command at index ${index} is unknown: a newer leader cut this server's log short of it; another server may still commit it`,
        ),
      );
    }
  }

  /** Settles every `do()` call waiting past `index` as unknown, saying why. */
  failWaitersAfter(index: number, reason: string): void {
    for (const [waiterIndex, waiter] of this.#waiters) {
      if (waiterIndex <= index) continue;
      this.#waiters.delete(waiterIndex);
      waiter.reject(
        new CommandOutcomeUnknownError(
          waiterIndex,
          `The outcome of the command at index ${waiterIndex} is unknown: ${reason}`,
        ),
      );
    }
  }

  #finishApply(
    entry: LogEntry,
    waiter: Waiter | undefined,
    result: unknown,
    failed: boolean,
    failure: unknown,
  ): void {
    const options = this.#options;
    if (failed) {
      options.logger.debug(`${options.name}: a command's apply failed`, {
        index: entry.index,
        commandName: entry.commandName,
        error: String(failure),
      });
    }
    const previous = this.appliedIndex;
    this.appliedIndex = entry.index;
    options.stats.count("entriesApplied");
    this.lastCommandName = entry.commandName;
    this.#entriesSinceSnapshot++;
    this.#bytesSinceSnapshot += entry.command.length;
    options.onCommit(entry, previous);
    if (waiter) {
      if (waiter.term !== entry.term) {
        waiter.reject(options.notLeaderError());
      } else {
        options.stats.recordCommitLatency(options.nowMs() - waiter.proposedAtMs);
        if (failed) waiter.reject(failure);
        else waiter.resolve(result);
      }
    }
  }

  /** Serves reads waiting on what was applied, applies the snapshot policy, goes on applying. */
  #afterApply(): void {
    const options = this.#options;
    const ready = this.#appliedWaiters.filter((waiter) => waiter.index <= this.appliedIndex);
    this.#appliedWaiters = this.#appliedWaiters.filter((waiter) =>
      waiter.index > this.appliedIndex
    );
    for (const waiter of ready) waiter.resolve();
    const threshold = options.snapshotThreshold;
    const thresholdBytes = options.snapshotThresholdBytes;
    const due = (threshold > 0 && this.#entriesSinceSnapshot >= threshold) ||
      (thresholdBytes > 0 && this.#bytesSinceSnapshot >= thresholdBytes);
    if (due && options.stateMachine) {
      this.snapshotTaken();
      options.onSnapshotDue();
    }
    if (this.appliedIndex < options.core().commitIndex) this.apply();
  }

  /**
   * After a snapshot replaced the state machine through `index`, no entry up to it will be
   * applied here: a `do()` waiting on one cannot learn whether its command committed.
   */
  settleCoveredBySnapshot(index: number): void {
    for (const [waiterIndex, waiter] of this.#waiters) {
      if (waiterIndex > index) continue;
      this.#waiters.delete(waiterIndex);
      waiter.reject(new CommandOutcomeUnknownError(waiterIndex));
    }
    this.#afterApply();
  }
}
