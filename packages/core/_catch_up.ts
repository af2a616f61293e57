/**
 * Membership catch-up: `addPeer()` first replicates to the newcomer as a learner and
 * proposes the join only once it is close to the end of the log (Raft thesis §4.2.1). A
 * voter far behind would stall the commits of a small cluster until it caught up.
 *
 * Nothing polls: the core reports each follower whose match index or mode changed
 * (`Ready.progressChanged`), the snapshot sender reports each chunk, and the leader's loss
 * of its role or the server's stop settles every wait.
 * @module
 */
import type { Clock, TimerHandle } from "./clock.ts";
import type { Consensus } from "./consensus.ts";
import { CommandTimeoutError } from "./errors.ts";

/** A learner is promoted once its log is within this many entries of the leader's. */
export const LEARNER_CATCH_UP_ENTRIES = 100;

interface Watch {
  name: string;
  lastMatch: number;
  stallTimer: TimerHandle | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** What {@link CatchUp} needs from the server. */
export interface CatchUpOptions {
  /** The current core (replaced at each init). */
  core: () => Consensus;
  /** Time source for the stall deadline. */
  clock: Clock;
  /** How long a learner may go without progress before it is given up on. */
  stallLimitMs: () => number;
}

/** The learners being caught up, and what `addPeer()` waits on for each. */
export class CatchUp {
  readonly #options: CatchUpOptions;
  readonly #watches = new Set<Watch>();

  /**
   * Creates an instance.
   * @param options see {@link CatchUpOptions}
   */
  constructor(options: CatchUpOptions) {
    this.#options = options;
  }

  /**
   * Resolves once learner `name` is caught up: streaming (a probe succeeded and any snapshot
   * is installed) and within {@link LEARNER_CATCH_UP_ENTRIES} of the leader's last index. A
   * voter that still needs a snapshot cannot help commit, and one that has not yet received
   * the configuration cannot help elect a leader either. It may take as long as it needs
   * while it makes progress (a large snapshot streams for a while).
   * @throws CommandTimeoutError when it stalls for the stall limit, or `signal` aborts
   */
  wait(name: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#caughtUp(name)) return resolve();
      if (signal?.aborted) return reject(new CommandTimeoutError(`Adding ${name} was aborted`));
      const watch: Watch = {
        name,
        lastMatch: this.#matchOf(name),
        stallTimer: undefined,
        resolve,
        reject,
      };
      this.#watches.add(watch);
      this.#armStall(watch);
      signal?.addEventListener("abort", () => {
        if (!this.#watches.has(watch)) return;
        this.#settle(watch, new CommandTimeoutError(`Adding ${name} was aborted`));
      }, { once: true });
    });
  }

  /** The core reported that `name`'s match index or mode changed. */
  progressChanged(name: string): void {
    for (const watch of this.#watches) {
      if (watch.name !== name) continue;
      const match = this.#matchOf(name);
      if (match > watch.lastMatch) {
        watch.lastMatch = match;
        this.#armStall(watch);
      }
      if (this.#caughtUp(name)) this.#settle(watch, undefined);
    }
  }

  /** A snapshot chunk reached `name`: progress, though its match index has not moved. */
  snapshotChunkSent(name: string): void {
    for (const watch of this.#watches) {
      if (watch.name === name) this.#armStall(watch);
    }
  }

  /** Rejects every wait (this server stopped leading, or stopped). */
  failAll(error: unknown): void {
    for (const watch of this.#watches) this.#settle(watch, error);
  }

  #matchOf(name: string): number {
    return this.#options.core().progress.find((p) => p.name === name)?.matchIndex ?? -1;
  }

  #caughtUp(name: string): boolean {
    const core = this.#options.core();
    const progress = core.progress.find((p) => p.name === name);
    return progress !== undefined && progress.mode === "replicate" &&
      progress.matchIndex + LEARNER_CATCH_UP_ENTRIES >= core.lastIndex;
  }

  #armStall(watch: Watch): void {
    const clock = this.#options.clock;
    if (watch.stallTimer !== undefined) clock.clearTimeout(watch.stallTimer);
    watch.stallTimer = clock.setTimeout(() => {
      watch.stallTimer = undefined;
      if (!this.#watches.has(watch)) return;
      this.#settle(
        watch,
        new CommandTimeoutError(`${watch.name} stopped catching up with the log`),
      );
    }, this.#options.stallLimitMs());
  }

  #settle(watch: Watch, error: unknown): void {
    if (watch.stallTimer !== undefined) this.#options.clock.clearTimeout(watch.stallTimer);
    watch.stallTimer = undefined;
    this.#watches.delete(watch);
    if (error === undefined) watch.resolve();
    else watch.reject(error);
  }
}
