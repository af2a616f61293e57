import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryDisk, SeededRandom } from "@tsraft/core/testing";
import { runSimulation, simulationConfig } from "./run_simulation.ts";
import { SeedRunner } from "./seed_runner.ts";
import { SimClock } from "./sim_clock.ts";
import { crashDisk, SimStorage, SimStorageError } from "./sim_storage.ts";
import { Simulator } from "./simulator.ts";

describe("SimClock", () => {
  test("SimClock.runUntil() runs timers in time order and settles promises between them", async () => {
    const clock = new SimClock();
    const seen: string[] = [];
    clock.setTimeout(() => {
      seen.push(`b@${clock.now()}`);
      Promise.resolve().then(() => Promise.resolve()).then(() => seen.push("b-then"));
    }, 20);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => seen.push(`c@${clock.now()}`), 20);
    const cancelled = clock.setTimeout(() => seen.push("cancelled"), 15);
    clock.clearTimeout(cancelled);
    await clock.runFor(100);
    assert.deepEqual(seen, ["a@10", "b@20", "b-then", "c@20"]);
    assert.equal(clock.now(), 100);
    assert.equal(clock.pendingTimers, 0);
  });
});

describe("SimStorage", () => {
  test("SimStorage.save() resolves after the fsync latency; a crash before it loses the write", async () => {
    const clock = new SimClock();
    const disk = new MemoryDisk();
    const storage = new SimStorage({
      disk,
      clock,
      random: new SeededRandom(1),
      fsyncMinMs: 5,
      fsyncMaxMs: 5,
    });
    await storage.open();
    let durable = false;
    storage.save({ hardState: { term: 1, votedFor: "a" } }).then(() => durable = true);
    await clock.runFor(4);
    assert.equal(durable, false);
    assert.equal(disk.durable().hardState.term, 0);
    await clock.runFor(1);
    assert.equal(durable, true);
    const command = new TextEncoder().encode("x");
    const entries = [1, 2, 3].map((index) => ({ index, term: 1, commandName: "c", command }));
    const lost = storage.save({ hardState: { term: 2, votedFor: "b" }, entries });
    lost.catch(() => {});
    crashDisk(disk, { tornEntries: 2 });
    await assert.rejects(lost);
    // A torn write keeps a prefix of its entries, never a gap.
    assert.deepEqual(disk.durable().entries.map((entry) => entry.index), [1, 2]);
    await clock.runFor(10); // the called-off fsync does not flush later writes early
  });

  test("SimStorage injects write errors and fsync errors", async () => {
    const clock = new SimClock();
    const disk = new MemoryDisk();
    const faults: string[] = [];
    const storage = new SimStorage({
      disk,
      clock,
      random: new SeededRandom(2),
      faults: { writeErrorRate: 1 },
      onFault: (what) => faults.push(what),
    });
    await storage.open();
    await assert.rejects(storage.save({ hardState: { term: 1, votedFor: "" } }), SimStorageError);
    storage.faults = { writeErrorRate: 0, fsyncErrorRate: 1 };
    const failing = storage.save({ hardState: { term: 1, votedFor: "" } });
    failing.catch(() => {});
    await clock.runFor(10);
    await assert.rejects(failing);
    assert.equal(disk.durable().hardState.term, 0);
    assert.equal(faults.length, 2);
  });
});

describe("Simulator", () => {
  test("Simulator runs real Servers: one leader, commits on a majority, not on a minority", async () => {
    const sim = new Simulator({ seed: 5, nodes: 5 });
    sim.boot();
    assert.ok(await sim.runUntil(() => sim.leaders().length === 1, 3000));
    const leader = sim.leaders()[0]!;
    const others = sim.names.filter((name) => name !== leader);
    sim.partition([[leader, others[0]!], others.slice(1)]);
    const stale = sim.start(leader, "lost")!;
    assert.ok(stale);
    await sim.runFor(2000);
    assert.notEqual(sim.nCommitted(stale.index).content, "test|lost");
    const majorityLeader = sim.leaders().find((name) => others.slice(1).includes(name));
    assert.ok(majorityLeader, "the majority elects a leader");
    const kept = sim.start(majorityLeader, "kept")!;
    assert.ok(await sim.runUntil(() => sim.nCommitted(kept.index).count >= 3, 2000));
    sim.heal();
    assert.ok(await sim.runUntil(() => sim.nCommitted(kept.index).count === 5, 3000));
    assert.equal(sim.nCommitted(kept.index).content, "test|kept");
    sim.checkSafety();
    assert.deepEqual(sim.violations, []);
  });
});

describe("runSimulation", () => {
  test("runSimulation() replays a seed exactly (same trace hash, stats and history)", async () => {
    for (const seed of [3, 17]) {
      const lines: string[][] = [[], []];
      const a = await runSimulation(seed, { log: (line) => lines[0]!.push(line) });
      const b = await runSimulation(seed, { log: (line) => lines[1]!.push(line) });
      assert.equal(a.traceHash, b.traceHash);
      assert.deepEqual(a.stats, b.stats);
      assert.equal(a.operations, b.operations);
      assert.deepEqual(lines[0], lines[1]);
      assert.ok(lines[0]!.length > 100);
    }
    assert.notEqual((await runSimulation(3)).traceHash, (await runSimulation(4)).traceHash);
  });

  test("runSimulation() reports the replay command and the cluster size asked for", async () => {
    // In a worker: a server's unhandled rejection there is the run's violation, not the test's.
    const runner = new SeedRunner();
    const result = await runner.run(11, { nodes: 5 }).finally(() => runner.close());
    assert.equal(result.nodes, 5);
    assert.equal(result.replay, "deno task sim --seed 11 --nodes 5");
    assert.equal(simulationConfig(11, 5).nodes, 5);
  });

  test("runSimulation() catches a disk that acknowledges writes before they are durable", async () => {
    // Seeds found by running `deno task sim --seeds 300 --ack-before-durable`.
    const violations: string[] = [];
    const runner = new SeedRunner();
    try {
      for (const seed of ACK_BEFORE_DURABLE_SEEDS) {
        violations.push(...(await runner.run(seed, { ackBeforeDurable: true })).violations);
      }
    } finally {
      runner.close();
    }
    const safety = violations.filter((violation) => !violation.includes("liveness"));
    assert.ok(safety.length > 0, "no safety violation found");
  });

  test("runSimulation() passes every checker on seeds 1..40 and exercises every fault kind", async () => {
    const runner = new SeedRunner(10_000);
    const failures: string[] = [];
    const seen = new Set<string>();
    try {
      for (let seed = 1; seed <= 40; seed++) {
        // Known failures are reported by `deno task sim`; one of them hangs until the watchdog.
        if (KNOWN_FAILING_SEEDS.has(seed)) continue;
        const result = await runner.run(seed, {});
        for (const [kind, hit] of Object.entries(result.coverage)) if (hit) seen.add(kind);
        if (!result.ok) failures.push(`${result.replay}\n${result.violations.join("\n")}`);
      }
    } finally {
      runner.close();
    }
    assert.deepEqual(failures, []);
    assert.deepEqual([...seen].sort(), [
      "addPeer",
      "crashLostWrites",
      "crashes",
      "leadershipChanges",
      "leaseReads",
      "oneWayLinks",
      "partitions",
      "removePeer",
      "snapshotsInstalled",
      "stopStart",
      "storageErrors",
      "transfers",
    ]);
  });
});

/** Seeds on which the broken disk of `ackBeforeDurable` leads to a safety violation. */
const ACK_BEFORE_DURABLE_SEEDS = [1];

/**
 * Seeds of 1..40 that fail on today's main because of server bugs listed, with their
 * diagnosis, under "Known failing seeds" in README.md (issue 11 and its follow-ups). The
 * failures are reported, not hidden: `deno task sim` fails on them. Remove a seed once the
 * bug behind it is fixed.
 */
const KNOWN_FAILING_SEEDS = new Set<number>([]);
