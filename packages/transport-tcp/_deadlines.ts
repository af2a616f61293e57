/**
 * Deadlines of many operations kept with one timer, instead of a `setTimeout` and a
 * `clearTimeout` per request or per socket write: on a busy connection those two calls
 * cost about as much as the rest of the transport's JavaScript per message.
 *
 * Time comes from an injected `Clock` (core's interface): the one of the `TcpTransporter`
 * or `TimeoutConn` using it, core's `systemClock` unless a test passes a `ManualClock`.
 * There is no default, so no deadline can end up on another scale than the clock that
 * reads it.
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from "@tsraft/core";

/** One timer that fires `onFire` once at (or soon after) the earliest deadline armed. */
export class Watchdog {
  #onFire: () => void;
  #clock: Clock;
  #timer: TimerHandle | undefined;
  #dueAtMs = Infinity;

  /**
   * @param onFire called when the timer fires; it re-arms for what is still pending
   * @param clock the clock deadlines are read on and the timer is set with
   */
  constructor(onFire: () => void, clock: Clock) {
    this.#onFire = onFire;
    this.#clock = clock;
  }

  /** Makes sure the timer fires no later than `deadlineMs` (on the clock's scale). */
  arm(deadlineMs: number): void {
    if (deadlineMs >= this.#dueAtMs) return;
    const clock = this.#clock;
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
    this.#dueAtMs = deadlineMs;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#dueAtMs = Infinity;
      this.#onFire();
    }, Math.max(0, deadlineMs - clock.now()));
    // The operations it watches keep the process alive (a pending read or write); the
    // watchdog alone must not, since it stays armed after they finish. Only a real timer
    // can be unref'd: another clock's handle may collide with a real timer's id.
    if (clock === systemClock) unref(this.#timer);
  }

  /** Cancels the timer. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dueAtMs = Infinity;
  }
}

function unref(timer: TimerHandle): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
  } else {
    (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno?.unrefTimer?.(
      timer as unknown as number,
    );
  }
}

/** An operation with a deadline. */
export interface Expiring {
  /** Time (on the watching {@link Deadlines}' clock) after which the operation fails. */
  readonly deadlineMs: number;
  /** `true` once the operation finished otherwise; it is then dropped. */
  readonly settled: boolean;
  /** Fails the operation; called once, at or after `deadlineMs`, unless settled. */
  expire(): void;
}

/**
 * Operations whose deadlines are a fixed time after they start, grouped by that time: in
 * each group the deadlines come in start order, so only the oldest of each group needs
 * watching and finished operations are dropped from the front, without search.
 */
export class Deadlines<T extends Expiring> {
  #lanes = new Map<number, { items: T[]; head: number }>();
  #clock: Clock;
  #watchdog: Watchdog;

  /** @param clock the clock items' `deadlineMs` are on */
  constructor(clock: Clock) {
    this.#clock = clock;
    this.#watchdog = new Watchdog(() => this.#sweep(), clock);
  }

  /**
   * Watches `item`, whose `deadlineMs` must be its start time plus `timeoutMs`.
   * @param timeoutMs the group: every item added with it has the same timeout
   * @param item the operation
   */
  add(timeoutMs: number, item: T): void {
    let lane = this.#lanes.get(timeoutMs);
    if (lane === undefined) {
      lane = { items: [], head: 0 };
      this.#lanes.set(timeoutMs, lane);
    }
    dropSettled(lane);
    lane.items.push(item);
    this.#watchdog.arm(lane.items[lane.head]!.deadlineMs);
  }

  /**
   * Stops watching.
   * @returns the items not settled yet, for the caller to fail otherwise
   */
  drain(): T[] {
    const pending: T[] = [];
    for (const lane of this.#lanes.values()) {
      for (let i = lane.head; i < lane.items.length; i++) {
        const item = lane.items[i]!;
        if (!item.settled) pending.push(item);
      }
    }
    this.#lanes.clear();
    this.#watchdog.stop();
    return pending;
  }

  #sweep(): void {
    const nowMs = this.#clock.now();
    let nextMs = Infinity;
    for (const [timeoutMs, lane] of this.#lanes) {
      for (;;) {
        dropSettled(lane);
        const item = lane.items[lane.head];
        if (item === undefined || item.deadlineMs > nowMs) break;
        lane.head++;
        item.expire();
      }
      const head = lane.items[lane.head];
      if (head === undefined) this.#lanes.delete(timeoutMs);
      else nextMs = Math.min(nextMs, head.deadlineMs);
    }
    if (nextMs < Infinity) this.#watchdog.arm(nextMs);
  }
}

function dropSettled<T extends Expiring>(lane: { items: T[]; head: number }): void {
  const { items } = lane;
  while (lane.head < items.length && items[lane.head]!.settled) lane.head++;
  if (lane.head === items.length) {
    items.length = 0;
    lane.head = 0;
  } else if (lane.head > 1024 && lane.head * 2 > items.length) {
    items.splice(0, lane.head);
    lane.head = 0;
  }
}
