import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { systemClock } from "@tsraft/core";
import { ManualClock } from "@tsraft/core/testing";
import { Deadlines, type Expiring, Watchdog } from "./_deadlines.ts";

class Item implements Expiring {
  readonly name: string;
  readonly deadlineMs: number;
  settled = false;
  expiredAtMs: number | undefined;
  #onExpire: (item: Item) => void;

  constructor(name: string, timeoutMs: number, onExpire: (item: Item) => void) {
    this.name = name;
    this.deadlineMs = systemClock.now() + timeoutMs;
    this.#onExpire = onExpire;
  }

  expire(): void {
    assert.equal(this.settled, false, `${this.name} expired after it settled`);
    this.settled = true;
    this.expiredAtMs = systemClock.now();
    this.#onExpire(this);
  }
}

describe("Deadlines", () => {
  test("Deadlines expires each unsettled item at its deadline, across groups, and never a settled one", async () => {
    const deadlines = new Deadlines<Item>(systemClock);
    const expired: string[] = [];
    let allDone = () => {};
    const done = new Promise<void>((resolve) => allDone = resolve);
    const onExpire = (item: Item) => {
      expired.push(item.name);
      if (expired.length === 3) allDone();
    };
    const items = [
      new Item("slow", 120, onExpire),
      new Item("fast-1", 30, onExpire),
      new Item("fast-2", 30, onExpire),
      new Item("fast-answered", 30, onExpire),
    ];
    deadlines.add(120, items[0]!);
    for (const item of items.slice(1)) deadlines.add(30, item);
    items[3]!.settled = true; // answered before its deadline
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      done,
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("stuck")), 5000)),
    ]);
    clearTimeout(timer);
    assert.deepEqual(expired, ["fast-1", "fast-2", "slow"]);
    for (const item of items.slice(0, 3)) {
      assert.ok(item.expiredAtMs! >= item.deadlineMs, `${item.name} expired early`);
    }
    assert.deepEqual(deadlines.drain(), []);
  });

  test("Deadlines.drain() hands back the unsettled items and stops watching them", async () => {
    const deadlines = new Deadlines<Item>(systemClock);
    const fail = () => assert.fail("drained items must not expire");
    const a = new Item("a", 20, fail);
    const b = new Item("b", 20, fail);
    deadlines.add(20, a);
    deadlines.add(20, b);
    b.settled = true;
    assert.deepEqual(deadlines.drain(), [a]);
    // Past the deadline nothing fires: wait on a timer of our own beyond it.
    await new Promise((resolve) => setTimeout(resolve, 60));
  });
});

describe("Deadlines on an injected clock", () => {
  test("Deadlines expires items when the injected clock reaches their deadlines, not before", () => {
    const clock = new ManualClock(1000);
    const deadlines = new Deadlines<Expiring & { name: string; settled: boolean }>(clock);
    const expired: string[] = [];
    const item = (name: string, timeoutMs: number) => {
      const it = {
        name,
        deadlineMs: clock.now() + timeoutMs,
        settled: false,
        expire() {
          it.settled = true;
          expired.push(`${name}@${clock.now()}`);
        },
      };
      deadlines.add(timeoutMs, it);
      return it;
    };
    item("slow", 300);
    item("fast", 100);
    const answered = item("answered", 100);
    clock.advance(50);
    item("late", 100); // due at 1150
    answered.settled = true;
    clock.advance(49);
    assert.deepEqual(expired, []);
    clock.advance(1);
    assert.deepEqual(expired, ["fast@1100"]);
    clock.advance(200);
    assert.deepEqual(expired, ["fast@1100", "late@1150", "slow@1300"]);
    assert.equal(clock.pendingTimers, 0, "the watchdog stays unarmed once nothing is pending");
    assert.deepEqual(deadlines.drain(), []);
  });
});

describe("Watchdog", () => {
  test("Watchdog fires once at the earliest deadline armed", async () => {
    const fired: number[] = [];
    let onFire = () => {};
    const firing = new Promise<void>((resolve) => onFire = resolve);
    const watchdog = new Watchdog(() => {
      fired.push(systemClock.now());
      onFire();
    }, systemClock);
    const startMs = systemClock.now();
    watchdog.arm(startMs + 200);
    watchdog.arm(startMs + 20); // earlier: re-armed
    watchdog.arm(startMs + 100); // later: ignored
    // The watchdog's timer does not keep the process alive (unref); this one does.
    let guard: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      firing,
      new Promise((_, reject) => guard = setTimeout(() => reject(new Error("stuck")), 5000)),
    ]);
    clearTimeout(guard);
    assert.equal(fired.length, 1);
    // Node's timers run on libuv's millisecond loop clock and can fire up to ~1.5 ms early
    // as performance.now() (the system clock) measures it.
    const elapsedMs = fired[0]! - startMs;
    assert.ok(elapsedMs >= 17 && elapsedMs < 200, `fired after ${elapsedMs} ms`);
    watchdog.stop();
  });
});
