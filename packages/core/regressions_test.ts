// Regression tests for consensus bugs found by review (issue "Five confirmed consensus bugs").
// Each test replays the scenario that broke a Raft property and failed before its fix.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CoreHarness } from "./_core_harness.ts";
import { Consensus, JOIN_COMMAND_NAME, LEAVE_COMMAND_NAME } from "./consensus.ts";
import { LEADER } from "./constants.ts";
import {
  CommandOutcomeUnknownError,
  MembershipChangeInProgressError,
  NotLeaderError,
} from "./errors.ts";
import type { Logger } from "./logger.ts";
import { defineCommand } from "./command.ts";
import { crc32c } from "./crc32c.ts";
import { createServer } from "./server.ts";
import { ManualClock } from "./testing/manual_clock.ts";
import { MemoryStorage } from "./testing/memory_storage.ts";
import { MemoryNetwork } from "./testing/memory_transport.ts";
import { KvSetCommand, KvStateMachine, TestCluster } from "./testing/test_cluster.ts";
import type { LogEntry } from "./types.ts";

const encoder = new TextEncoder();
const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function peerCommand(name: string): Uint8Array {
  return encoder.encode(JSON.stringify({ name, connectionString: `mem://${name}` }));
}

/** Fails when two servers committed different entries at one index (State Machine Safety). */
function assertCommittedLogsAgree(h: CoreHarness): void {
  const byIndex = new Map<number, { name: string; entry: LogEntry }>();
  for (const [name, entries] of h.committed) {
    for (const entry of entries) {
      const seen = byIndex.get(entry.index);
      if (seen === undefined) {
        byIndex.set(entry.index, { name, entry });
        continue;
      }
      assert.equal(
        entry.term,
        seen.entry.term,
        `${seen.name} committed (${entry.index}, term ${seen.entry.term}) but ${name} committed term ${entry.term} there`,
      );
    }
  }
}

describe("Regressions: consensus bugs found by review", () => {
  test("Consensus refuses a membership change before the leader commits in its term (one-at-a-time change bug)", () => {
    // Reference: Ongaro, raft-dev 2015 "bug in single-server membership changes": a leader
    // must commit an entry of its own term before it appends a configuration change.
    const h = new CoreHarness(["s1", "s2", "s3", "s4", "s5"], {
      members: ["s1", "s2", "s3", "s4"],
    });
    h.nowMs = 1_000;
    h.node("s1").tick(h.nowMs);
    h.flush("s1");
    h.stabilize();
    assert.equal(h.node("s1").role, "leader");

    // s1 (term 2) catches s5 up as a learner and appends join(s5), which reaches only s5.
    h.node("s1").addLearner({ name: "s5", connectionString: "mem://s5" });
    h.flush("s1");
    h.stabilize();
    for (const other of ["s2", "s3", "s4"]) h.cut.add(`s1>${other}`);
    const join = h.node("s1").propose(JOIN_COMMAND_NAME, peerCommand("s5"));
    h.flush("s1");
    h.stabilize();
    assert.equal(h.node("s5").termAt(join.index), join.term);
    h.down.add("s1");

    // s2 wins term 3 with the votes of s3 and s4, loses s4 before its no-op reaches it, and
    // at once tries to remove s1.
    h.nowMs = 2_000;
    h.node("s2").tick(h.nowMs);
    h.flush("s2");
    while (h.node("s2").role !== "leader" && h.deliverOne());
    assert.equal(h.node("s2").role, "leader");
    h.cut.add("s2>s4");
    h.cut.add("s4>s2");
    h.stabilize();
    let refused = false;
    try {
      h.node("s2").propose(LEAVE_COMMAND_NAME, peerCommand("s1"));
    } catch (error) {
      assert.ok(error instanceof MembershipChangeInProgressError);
      refused = true;
    }
    h.flush("s2");
    h.stabilize();
    h.nowMs += 60;
    h.node("s2").tick(h.nowMs);
    h.flush("s2");
    h.stabilize();
    h.down.add("s2");

    // s1 restarts with configuration {s1..s5} and campaigns with s4 and s5.
    h.down.delete("s1");
    h.cut.clear();
    h.restart("s1");
    for (let attempt = 0; attempt < 5 && h.node("s1").role !== "leader"; attempt++) {
      h.nowMs += 1_000;
      h.node("s1").tick(h.nowMs);
      h.flush("s1");
      h.stabilize();
    }
    for (let round = 0; round < 3; round++) {
      h.nowMs += 60;
      for (const name of ["s1", "s3", "s4", "s5"]) {
        if (h.node(name).role === "leader") h.node(name).tick(h.nowMs);
      }
      for (const name of h.names) h.flush(name);
      h.stabilize();
    }
    assertCommittedLogsAgree(h);
    assert.ok(refused, "the leader refused the change before its no-op committed");
  });
});

describe("Regressions: lease reads", () => {
  const options = { checkQuorum: true, preVote: true, seed: 3 };

  /** Moves time in 10 ms steps, ticking and flushing every live node. */
  function step(h: CoreHarness, ms: number, afterEach: () => void = () => {}): void {
    for (let elapsed = 0; elapsed < ms; elapsed += 10) {
      h.advance(10);
      afterEach();
    }
  }

  test("Consensus serves no lease read after a late TimeoutNow elects the transfer target", () => {
    // Reference: Raft thesis §3.10 (TimeoutNow) and §6.4 (leases): votes for a transfer's
    // target bypass the voters' lease, so a TimeoutNow still in flight voids the lease.
    const h = new CoreHarness(["a", "b", "c"], options);
    const leader = h.electLeader();
    const [target, other] = h.names.filter((name) => name !== leader) as [string, string];
    h.propose(leader, "x");
    step(h, 60);
    assert.notEqual(h.node(leader).leaseReadIndex(), undefined, "the lease holds before");

    // The transfer's TimeoutNow (and any re-send) is held back until the transfer expired.
    h.holdBack = (queued) => queued.message.kind === "timeoutNow";
    h.node(leader).transferLeadership(target);
    h.flush(leader);
    step(h, 200);
    h.holdBack = undefined;
    assert.equal(h.node(leader).role, "leader");
    assert.equal(h.node(leader).transferTarget, undefined, "the transfer expired");
    assert.ok(h.held.length >= 1);

    // Now the first TimeoutNow arrives; the old leader hears nothing of what follows.
    h.cut.add(`${leader}>${target}`);
    h.cut.add(`${target}>${leader}`);
    const late = h.held[0]!.message;
    assert.equal(late.kind, "timeoutNow");
    if (late.kind === "timeoutNow") h.node(target).handleTimeoutNow(late.request);
    h.flush(target);
    h.stabilize();
    assert.equal(h.node(target).role, "leader", "the late TimeoutNow elected the target");
    const written = h.propose(target, "y");
    h.stabilize();
    assert.ok(h.node(target).commitIndex >= written);
    assert.equal(h.node(other).termAt(written), h.node(target).term);

    assert.equal(h.node(leader).role, "leader");
    assert.equal(
      h.node(leader).leaseReadIndex(),
      undefined,
      `stale lease read: ${target} committed index ${written} that ${leader} does not have`,
    );
  });

  test("Consensus voter restarted within a lease refuses to elect another leader", () => {
    // Reference: Raft thesis §6.4: a lease relies on a majority not voting for an election
    // timeout after acknowledging a heartbeat; a restarted voter must keep that promise.
    const h = new CoreHarness(["a", "b", "c"], options);
    const leader = h.electLeader();
    const [isolated, restarted] = h.names.filter((name) => name !== leader) as [string, string];
    h.propose(leader, "x");
    step(h, 60);

    // `isolated` stops hearing from the leader; the leader keeps its lease through `restarted`.
    h.cut.add(`${leader}>${isolated}`);
    h.cut.add(`${isolated}>${leader}`);
    const campaignAtMs = h.node(isolated).nextWakeAtMs;
    step(h, Math.max(0, campaignAtMs - 20 - h.nowMs));
    assert.notEqual(h.node(leader).leaseReadIndex(), undefined, "the lease holds");

    // Just before `isolated` campaigns, `restarted` crashes and comes back, cut from the leader.
    h.restart(restarted);
    h.cut.add(`${leader}>${restarted}`);
    h.cut.add(`${restarted}>${leader}`);
    step(h, 100, () => {
      const newer = h.node(isolated);
      if (newer.role !== "leader" || newer.commitIndex <= h.node(leader).commitIndex) return;
      assert.equal(
        h.node(leader).role === "leader" ? h.node(leader).leaseReadIndex() : undefined,
        undefined,
        `stale lease read: ${isolated} leads term ${newer.term} and committed ${newer.commitIndex}`,
      );
    });
  });
});

describe("Regressions: Server lifecycle and snapshots", () => {
  /** Every state machine applied each index at most once. */
  function assertAppliedOnce(cluster: TestCluster): void {
    for (const [name, machine] of cluster.machines) {
      const seen = new Set<number>();
      for (const index of machine.appliedIndexes) {
        assert.ok(!seen.has(index), `${name} applied index ${index} twice`);
        seen.add(index);
      }
    }
  }

  async function quiesce(cluster: TestCluster): Promise<void> {
    await cluster.waitFor(() => {
      const leaders = cluster.leaders();
      if (leaders.length !== 1) return false;
      const commit = leaders[0]!.commitIndex;
      return [...cluster.servers.values()].every((s) => !s.running() || s.appliedIndex === commit);
    }, { what: "every server to apply the leader's commit index" });
  }

  test("Server.stop() then start() on the same object rejoins as a follower and applies nothing twice", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 41 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 5; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, "v")));
    await leader.stop();
    await leader.start();
    assert.notEqual(leader.state, LEADER, "a restarted server starts as a follower");
    assert.equal(leader.leader, "", "and knows no leader until it hears from one");
    const current = await cluster.waitForLeader();
    await cluster.run(current.do(new KvSetCommand("after", "v")));
    await quiesce(cluster);
    assertAppliedOnce(cluster);
    assert.equal(cluster.machines.get(leader.name)!.data.get("after"), "v");
    await cluster.stop();
  });

  test("Server.loadSnapshot() after stop() rebuilds the state machine and re-applies the log once", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 42,
      serverOptions: { snapshotThreshold: 4, trailingLogEntries: 2 },
    });
    await cluster.start();
    let leader = await cluster.waitForLeader();
    for (let i = 0; i < 10; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, `${i}`)));
    await quiesce(cluster);
    const follower = [...cluster.servers.values()].find((s) => s !== leader)!;
    const machine = cluster.machines.get(follower.name)!;
    await cluster.waitFor(() => follower.snapshotIndex > 0, { what: "a follower snapshot" });
    await follower.stop();
    machine.data.set("k0", "scribbled"); // the reload must replace the state, not merge
    await follower.loadSnapshot();
    await follower.start();
    leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("after", "v")));
    await quiesce(cluster);
    assertAppliedOnce(cluster);
    assert.equal(machine.data.get("k0"), "0");
    assert.equal(machine.data.get("k9"), "9");
    assert.equal(machine.data.get("after"), "v");
    await cluster.stop();
  });

  test("Server.do() on a deposed leader settles when an installed snapshot covers its entry", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 43,
      serverOptions: { snapshotThreshold: 5, trailingLogEntries: 0 },
    });
    await cluster.start();
    const old = await cluster.waitForLeader();
    cluster.network.isolate(old.name);
    const stranded = old.do(new KvSetCommand("stranded", "v"));
    stranded.catch(() => {});
    const strandedIndex = old.lastIndex;
    await cluster.waitFor(() => cluster.leaders().some((s) => s !== old), {
      what: "a new leader among the others",
    });
    const next = cluster.leaders().find((s) => s !== old)!;
    for (let i = 0; i < 12; i++) await cluster.run(next.do(new KvSetCommand(`k${i}`, "v")));
    await cluster.waitFor(() => next.snapshotIndex > strandedIndex, {
      what: "the new leader to compact past the stranded entry",
    });
    cluster.network.rejoin(old.name);
    await assert.rejects(cluster.run(stranded, 5_000), (error: unknown) => {
      assert.ok(error instanceof CommandOutcomeUnknownError, String(error));
      assert.equal(error.index, strandedIndex);
      return true;
    });
    assert.equal(cluster.machines.get(old.name)!.data.get("k11"), "v");
    await cluster.stop();
  });
});

describe("Regressions: snapshot transfer", () => {
  test("Consensus keeps a follower in snapshot mode while heartbeats below the snapshot are rejected", () => {
    const h = new CoreHarness(["a", "b", "c"]);
    const leader = h.electLeader();
    const lagging = h.names.find((name) => name !== leader)!;
    h.isolate(lagging);
    for (let i = 0; i < 10; i++) h.propose(leader, `x${i}`);
    h.advance(100);
    const core = h.node(leader);
    core.compact(core.commitIndex);
    h.heal();
    h.advance(60); // the next heartbeat finds the follower behind the snapshot
    const requests = () => h.snapshotRequests.filter((r) => r.to === lagging).length;
    assert.equal(requests(), 1, "one snapshot is requested");
    assert.equal(core.progress.find((p) => p.name === lagging)?.mode, "snapshot");
    h.advance(500); // ten heartbeat rounds while the (never finishing) transfer runs
    assert.equal(core.progress.find((p) => p.name === lagging)?.mode, "snapshot");
    assert.equal(requests(), 1, "heartbeat rejections do not restart the transfer");
  });
});

describe("Regressions: found by the simulator", () => {
  test("Server.do() on a leader that removes itself settles once the removal applies (sim seed 29)", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 44 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const [f1, f2] = [...leader.peers.keys()] as [string, string];
    await cluster.run(leader.do(new KvSetCommand("before", "v")));
    cluster.network.cutLink(leader.name, f1);
    cluster.network.cutLink(leader.name, f2);
    const lastBefore = leader.lastIndex;
    const removal = leader.removePeer(leader.name);
    removal.catch(() => {});
    await cluster.waitFor(() => leader.lastIndex === lastBefore + 1, { what: "leave appended" });
    // Only f2 receives the leave entry; then only f1 receives the leave and the next command.
    cluster.network.restoreLink(leader.name, f2);
    await cluster.waitFor(() => cluster.server(f2).lastIndex === lastBefore + 1, {
      what: "f2 to hold the leave entry",
    });
    cluster.network.cutLink(leader.name, f2);
    const stranded = leader.do(new KvSetCommand("after-leave", "v"));
    stranded.catch(() => {});
    cluster.network.restoreLink(leader.name, f1);
    await cluster.run(removal);
    cluster.network.heal();
    await assert.rejects(cluster.run(stranded, 5_000), CommandOutcomeUnknownError);
    await cluster.stop();
  });
});

describe("Regressions: storage failures fail-stop", () => {
  test("Server stops, and recovers on restart, when storage fails while it installs a snapshot (sim seed 11)", async () => {
    let failCompaction = false;
    class CompactionFails extends MemoryStorage {
      override compact(throughIndex: number): Promise<void> {
        if (failCompaction) return Promise.reject(new Error("EIO"));
        return super.compact(throughIndex);
      }
    }
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 45,
      serverOptions: { snapshotThreshold: 5, trailingLogEntries: 0, logger: quietLogger },
      storage: (_name, disk) => new CompactionFails(disk),
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const lagging = [...leader.peers.keys()][0]!;
    cluster.network.isolate(lagging);
    for (let i = 0; i < 12; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, "v")));
    await cluster.waitFor(() => leader.snapshotIndex > cluster.server(lagging).lastIndex, {
      what: "the leader to compact past the lagging follower",
    });
    failCompaction = true;
    cluster.network.rejoin(lagging);
    await cluster.waitFor(() => !cluster.server(lagging).running(), {
      what: "the follower to stop when its snapshot cannot be stored",
    });
    failCompaction = false;
    cluster.network.unregister(lagging);
    const restarted = await cluster.restart(lagging);
    await cluster.waitFor(() => restarted.appliedIndex >= leader.commitIndex, {
      what: "the restarted follower to catch up",
    });
    assert.equal(cluster.machines.get(lagging)!.data.get("k11"), "v");
    await cluster.stop();
  });
});

describe("Regressions: large snapshots", () => {
  test("Server keeps receiving a snapshot whose transfer outlasts the snapshotting timeout while chunks keep coming", async () => {
    const clock = new ManualClock();
    const network = new MemoryNetwork({ clock });
    const storage = new MemoryStorage();
    const machine = new KvStateMachine();
    const follower = createServer({
      name: "f",
      transporter: network.transporter(),
      storage,
      stateMachine: machine,
      peers: [{ name: "l", connectionString: "" }, { name: "x", connectionString: "" }],
      clock,
      random: { next: () => 0.5 },
      logger: quietLogger,
    });
    await follower.start();
    const state = new TextEncoder().encode(
      JSON.stringify({ data: [["k", "v"]], applied: [] }) + " ".repeat(4_000),
    );
    const base = { term: 5, leaderName: "l", lastIndex: 50, lastTerm: 5 };
    assert.equal((await follower.requestSnapshot({ ...base, size: state.length })).success, true);
    const chunk = 1_000;
    // Five chunks, 500 ms apart: 2.5 s in all, while the timeout is 4 election timeouts (600 ms).
    for (let offset = 0; offset < state.length; offset += chunk) {
      clock.advance(500);
      const data = state.subarray(offset, offset + chunk);
      const done = offset + chunk >= state.length;
      const reply = await follower.snapshotRecoveryRequest({
        ...base,
        peers: [{ name: "l", connectionString: "" }, { name: "f", connectionString: "" }],
        offset,
        data,
        done,
        checksum: done ? crc32c(state) : 0,
      });
      assert.equal(reply.success, true, `chunk at ${offset}`);
    }
    assert.equal(follower.appliedIndex, 50);
    assert.equal(machine.data.get("k"), "v");
    await follower.stop();
  });
});

describe("Regressions: joining a cluster that needs a snapshot", () => {
  test("Server.addPeer() makes a learner a voter only after it installed the snapshot and streams", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 46,
      serverOptions: { snapshotThreshold: 5, trailingLogEntries: 0 },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 20; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, "v")));
    await cluster.waitFor(() => leader.snapshotIndex > 10, { what: "a compacted log" });
    const joiner = await cluster.addServer("d");
    let appliedWhenJoined = -1;
    leader.addEventListener("addPeer", (event) => {
      if (event.value.name === "d") appliedWhenJoined = joiner.appliedIndex;
    });
    await cluster.run(leader.addPeer("d", "memory://d"));
    assert.ok(
      appliedWhenJoined >= leader.snapshotIndex,
      `d joined at applied index ${appliedWhenJoined}, before the snapshot at ${leader.snapshotIndex}`,
    );
    assert.equal(cluster.machines.get("d")!.data.get("k19"), "v");
    await cluster.stop();
  });

  test("Consensus grants a vote to a candidate outside its own configuration (thesis §4.1)", () => {
    // A new member that knows no configuration yet must still be able to help elect the
    // leader whose configuration counts it, or a two-member cluster deadlocks.
    const joiner = new Consensus({
      name: "b",
      joinExisting: true,
      electionTimeoutMs: 150,
      heartbeatIntervalMs: 50,
      random: { next: () => 0 },
    });
    joiner.restore({ hardState: { term: 2, votedFor: "" }, snapshot: undefined, entries: [] }, 0);
    joiner.tick(1_000);
    const vote = joiner.handleRequestVote({
      term: 3,
      lastLogIndex: 3,
      lastLogTerm: 2,
      candidateName: "a",
      preVote: false,
      transfer: false,
    });
    assert.equal(vote.voteGranted, true);
  });
});

describe("Regressions: found by the simulator, second round", () => {
  test("Server.do() on a deposed leader settles when a newer leader's shorter log truncates its entries (sim seed 69)", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 47,
      serverOptions: { logger: quietLogger },
    });
    await cluster.start();
    const old = await cluster.waitForLeader();
    await cluster.run(old.do(new KvSetCommand("before", "v")));
    cluster.network.isolate(old.name);
    const stranded = [1, 2, 3].map((i) => old.do(new KvSetCommand(`lost${i}`, "v")));
    for (const call of stranded) call.catch(() => {});
    await cluster.waitFor(() => cluster.leaders().some((s) => s !== old), {
      what: "a new leader among the others",
    });
    cluster.network.rejoin(old.name);
    // The cluster stays quiet: the new leader's no-op overwrites the first of those indexes
    // (its command certainly did not commit), nothing ever reaches the others.
    await assert.rejects(cluster.run(stranded[0]!, 5_000), NotLeaderError);
    for (const call of stranded.slice(1)) {
      await assert.rejects(cluster.run(call, 5_000), CommandOutcomeUnknownError);
    }
    await cluster.stop();
  });

  test("Server stopped while committed entries wait for an asynchronous apply leaves the event loop free (sim seed 95)", async () => {
    const cluster = new TestCluster(["a"], { seed: 48, serverOptions: { logger: quietLogger } });
    let release = () => {};
    const gate = new Promise<void>((resolve) => release = resolve);
    const Slow = defineCommand({ name: "slow", apply: () => gate });
    cluster.registry.register(Slow);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const slow = leader.do(Slow({}));
    slow.catch(() => {});
    const behind = leader.do(new KvSetCommand("x", "1"));
    behind.catch(() => {});
    await cluster.waitFor(() => leader.commitIndex > leader.appliedIndex + 1, {
      what: "an entry committed behind the slow one",
    });
    await leader.stop();
    release();
    // A macrotask runs only once the microtask queue is empty: with the loop spinning, never.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(leader.running(), false);
    await cluster.stop();
  });
});

describe("Regressions: found by the simulator, third round", () => {
  test("Server settles the calls of a leader that removed itself and never learns the outcome (sim seed 71)", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 49,
      serverOptions: { logger: quietLogger },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const followers = [...leader.peers.keys()];
    await cluster.run(leader.do(new KvSetCommand("before", "v")));
    // Answers no longer reach the leader: it cannot commit its removal, the others can.
    for (const follower of followers) cluster.network.cutLink(follower, leader.name);
    const removal = leader.removePeer(leader.name);
    removal.catch(() => {});
    await cluster.waitFor(() => !leader.members.some((m) => m.name === leader.name), {
      what: "the leave entry appended",
    });
    const after = leader.do(new KvSetCommand("after-leave", "v"));
    after.catch(() => {});
    await cluster.waitFor(
      () => cluster.leaders().some((s) => s !== leader && s.members.length === 2),
      { what: "the others to elect a leader of the two-member configuration" },
    );
    cluster.network.heal();
    await assert.rejects(cluster.run(removal, 5_000), CommandOutcomeUnknownError);
    await assert.rejects(cluster.run(after, 5_000), CommandOutcomeUnknownError);
    await cluster.stop();
  });
});

describe("Regressions: found by the simulator, fourth round", () => {
  test("Consensus keeps replicating to a follower whose probe succeeded while a heartbeat went out (sim seed 420)", () => {
    // A read waiting for a new leader's first commit makes that commit broadcast a
    // heartbeat; the follower whose probe answer committed it was still probing, so the
    // heartbeat took its one probe slot, which replicate mode never freed (there only
    // answers carrying entries free a slot): with one message in flight allowed, nothing
    // more was ever sent to it.
    const h = new CoreHarness(["a", "b", "c"], { maxInflightMessages: 1 });
    h.down.add("c"); // the leader commits only with the other one's acks
    h.holdBack = (queued) => queued.message.kind === "appendEntries";
    const leader = h.electLeader();
    const follower = leader === "a" ? "b" : "a";
    h.node(leader).requestRead();
    h.flush(leader);
    h.holdBack = undefined;
    h.queue.unshift(...h.held); // the first probe, with the leader's no-op, arrives now
    h.stabilize();
    const progress = () => h.node(leader).progress.find((p) => p.name === follower);
    assert.equal(progress()?.mode, "replicate");

    const index = h.propose(leader, "x");
    h.advance(200);
    assert.equal(h.node(leader).role, "leader");
    assert.equal(h.node(follower).lastIndex, index, `the entry reached ${follower}`);
    assert.equal(h.node(leader).commitIndex, index);
  });

  test("Server settles the calls of a leader removed by a change it never receives (sim seed 653)", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 53,
      serverOptions: { logger: quietLogger, preVote: true, checkQuorum: true },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("before", "v")));
    // Cut off, the leader proposes a command it cannot commit; the others elect a leader and
    // remove it. That leader sends nothing to a server outside its configuration, and the
    // removed one, whose log never shows its removal, cannot win a vote: no one contacts it.
    cluster.network.isolate(leader.name);
    const stranded = leader.do(new KvSetCommand("stranded", "v"));
    stranded.catch(() => {});
    await cluster.waitFor(() => cluster.leaders().some((s) => s !== leader), {
      what: "the others to elect a leader",
    });
    const successor = cluster.leaders().find((s) => s !== leader)!;
    await cluster.run(successor.removePeer(leader.name));
    cluster.network.heal();
    await assert.rejects(cluster.run(stranded, 5_000), CommandOutcomeUnknownError);
    assert.ok(leader.members.some((m) => m.name === leader.name), "its log still counts it");
    await cluster.stop();
  });
});

describe("Regressions: found by the 10,000-seed run", () => {
  test("Server restarts over a snapshot that is ahead of its durable log (sim seed 5474)", async () => {
    // A follower applies entries its own log has not made durable yet; a snapshot of them can
    // be durable while a crash loses the log's tail. The next entry must follow the snapshot.
    const cluster = new TestCluster(["solo"], { seed: 50, serverOptions: { logger: quietLogger } });
    const seed = new MemoryStorage(cluster.disks.get("solo")!);
    await seed.open();
    const member = [{ name: "solo", connectionString: "memory://solo" }];
    const configCommand = new TextEncoder().encode(JSON.stringify({ peers: member }));
    await seed.save({
      hardState: { term: 2, votedFor: "solo" },
      entries: [
        { index: 1, term: 1, commandName: "raft:config", command: configCommand },
        ...[2, 3, 4, 5].map((index) => ({
          index,
          term: 2,
          commandName: "raft:nop",
          command: new TextEncoder().encode("{}"),
        })),
      ],
    });
    await seed.saveSnapshot(
      { lastIndex: 10, lastTerm: 2, peers: member },
      new KvStateMachine().save(),
    );
    await seed.close();

    await cluster.start();
    const server = await cluster.waitForLeader();
    assert.equal(await cluster.run(server.do(new KvSetCommand("k", "v"))), null);
    assert.ok(server.running(), "the server keeps running");
    assert.equal(server.appliedIndex, 12, "the no-op at 11, the write at 12");
    assert.equal(cluster.machines.get("solo")!.data.get("k"), "v");
    await cluster.stop();
  });

  test("Server.readIndex() settles when a read's signal from before stop() and start() aborts late (sim seed 9227)", async () => {
    // Read ids start over with each Consensus, and start() builds a new one: the abort
    // listener of a read made before stop() outlives it and, firing later, removed the
    // waiter of the new read that reused its id. That read then never settled.
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 54,
      serverOptions: { logger: quietLogger },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const stale = new AbortController();
    await cluster.run(leader.readIndex({ signal: stale.signal }));
    await leader.stop();
    await leader.start();
    const current = await cluster.waitForLeader();
    if (current !== leader) await cluster.run(current.transferLeadership(leader.name));
    await cluster.waitFor(() => leader.state === LEADER, { what: "the restarted server to lead" });
    const read = leader.readIndex(); // the new core's first read, waiting for its round
    stale.abort(); // the deadline of the read made before stop() passes now
    assert.equal(await cluster.run(read, 5_000), leader.commitIndex);
    await cluster.stop();
  });
});
