import type { Clock, TimerHandle } from "../clock.ts";

interface PendingTimer {
  id: number;
  dueMs: number;
  callback: () => void;
}

/**
 * A clock that moves only when told to, for deterministic tests and the simulator.
 * Timers due at the same time fire in the order they were set.
 * @example
 * ```ts
 * import { ManualClock } from "@tsraft/core/testing";
 * const clock = new ManualClock();
 * let fired = false;
 * clock.setTimeout(() => fired = true, 10);
 * clock.advance(10);
 * if (!fired) throw new Error("timer did not fire");
 * ```
 */
export class ManualClock implements Clock {
  #nowMs: number;
  #nextId = 1;
  #timers: PendingTimer[] = [];

  /** Creates an instance. @param startMs the initial time @default 0 */
  constructor(startMs = 0) {
    this.#nowMs = startMs;
  }

  /** The simulated time. @returns the current time in ms */
  now(): number {
    return this.#nowMs;
  }

  /** Schedules `callback` at `now() + delayMs`. @returns a handle for clearTimeout */
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.push({ id, dueMs: this.#nowMs + Math.max(0, delayMs), callback });
    return id;
  }

  /** Cancels a timer. */
  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((timer) => timer.id !== handle);
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Time of the earliest pending timer, or `undefined`. */
  nextDueMs(): number | undefined {
    let earliest: number | undefined;
    for (const timer of this.#timers) {
      if (earliest === undefined || timer.dueMs < earliest) earliest = timer.dueMs;
    }
    return earliest;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way, in order
   * (including timers set by the callbacks themselves).
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`Cannot advance by ${ms} ms`);
    const targetMs = this.#nowMs + ms;
    for (;;) {
      const next = this.#takeNextDue(targetMs);
      if (next === undefined) break;
      this.#nowMs = next.dueMs;
      next.callback();
    }
    this.#nowMs = targetMs;
  }

  #takeNextDue(limitMs: number): PendingTimer | undefined {
    let bestAt = -1;
    for (let i = 0; i < this.#timers.length; i++) {
      const timer = this.#timers[i]!;
      if (timer.dueMs > limitMs) continue;
      const best = this.#timers[bestAt];
      if (best === undefined || timer.dueMs < best.dueMs) bestAt = i;
    }
    if (bestAt < 0) return undefined;
    return this.#timers.splice(bestAt, 1)[0];
  }
}
