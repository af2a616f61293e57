import type { Clock, TimerHandle } from "@tsraft/core";
import { setImmediate } from "node:timers";
import { EventQueue, type QueuedEvent } from "./_event_queue.ts";

/**
 * Resolves once every microtask queued so far, and every microtask those queue, has run: a
 * macrotask comes only after the microtask queue is empty. Nothing else may be pending on
 * real timers or I/O for this to be deterministic (the simulator uses neither).
 */
function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Simulated time for real `Server`s: a {@link Clock} whose timers are events on one queue.
 * {@link SimClock.runUntil} runs the events in time order and, after each, lets every
 * promise continuation it caused run to completion before the next event, so the servers'
 * async code interleaves the same way on every run.
 *
 * @example
 * ```ts
 * import { SimClock } from "@tsraft/sim";
 * const clock = new SimClock();
 * const seen: number[] = [];
 * clock.setTimeout(() => Promise.resolve().then(() => seen.push(clock.now())), 20);
 * await clock.runFor(100);
 * if (seen[0] !== 20 || clock.now() !== 100) throw new Error("wrong time");
 * ```
 */
export class SimClock implements Clock {
  readonly #queue = new EventQueue();
  readonly #onError: (error: unknown) => void;
  #events = 0;
  /** Called every 256 events: lets a watchdog on another thread see that the run advances. */
  onProgress: (() => void) | undefined;

  /**
   * Creates a clock at time 0.
   * @param onError receives what a timer callback throws (the run goes on)
   * @default onError rethrows asynchronously
   */
  constructor(onError?: (error: unknown) => void) {
    this.#onError = onError ?? ((error) =>
      queueMicrotask(() => {
        throw error;
      }));
  }

  /** The simulated time in ms. @returns it */
  now(): number {
    return this.#queue.nowMs;
  }

  /** Schedules `callback` at `now() + delayMs`. @returns a handle for clearTimeout */
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    return this.#queue.at(this.#queue.nowMs + Math.max(0, delayMs || 0), callback);
  }

  /** Cancels a timer; a no-op for one that fired or a foreign handle. */
  clearTimeout(handle: TimerHandle): void {
    if (typeof handle === "object" && handle !== null && "cancelled" in handle) {
      this.#queue.cancel(handle as QueuedEvent);
    }
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.#queue.size;
  }

  /** Timer callbacks run so far. */
  get eventsRun(): number {
    return this.#events;
  }

  /**
   * Runs timers in time order until `done()` holds (checked after each event has settled)
   * or time reaches `untilMs`; the clock then reads `untilMs` if `done()` never held.
   * @param done stop condition
   * @param untilMs simulated deadline
   * @returns whether `done()` held
   */
  async runUntil(done: () => boolean, untilMs: number): Promise<boolean> {
    await drainMicrotasks();
    for (;;) {
      if (done()) return true;
      const event = this.#queue.take(untilMs);
      if (event === undefined) break;
      if ((++this.#events & 255) === 0) this.onProgress?.();
      try {
        event.run();
      } catch (error) {
        this.#onError(error);
      }
      await drainMicrotasks();
    }
    this.#queue.advanceTo(untilMs);
    return done();
  }

  /**
   * Runs every timer due in the next `ms` milliseconds.
   * @param ms simulated time to run
   */
  async runFor(ms: number): Promise<void> {
    await this.runUntil(() => false, this.now() + ms);
  }
}
