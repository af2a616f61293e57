import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LEADER } from "./constants.ts";
import { CommandTimeoutError, LeadershipTransferError } from "./errors.ts";
import { KvSetCommand, TestCluster } from "./testing/test_cluster.ts";

describe("Beyond goraft: transfer, lease reads, RTT warnings", () => {
  test("Server.transferLeadership() under load hands over leadership and loses no acknowledged write", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 31 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const acknowledged = new Map<string, string>();
    let running = true;
    const writers = Array.from({ length: 3 }, async (_, client) => {
      for (let i = 0; running; i++) {
        const current = cluster.leaders()[0];
        if (current) {
          try {
            await current.do(new KvSetCommand(`c${client}-${i}`, "v"));
            acknowledged.set(`c${client}-${i}`, "v");
          } catch {
            // refused during the transfer or not the leader any more: not acknowledged
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    });
    await cluster.waitFor(() => acknowledged.size >= 20, {
      what: "some writes before the transfer",
    });
    const target = [...leader.peers.keys()][0]!;
    await cluster.run(leader.transferLeadership(target));
    await cluster.waitFor(
      () => cluster.leaders().length === 1 && cluster.leaders()[0]!.name === target,
      {
        what: "the target to lead",
      },
    );
    const countAtTransfer = acknowledged.size;
    await cluster.waitFor(() => acknowledged.size >= countAtTransfer + 20, {
      what: "writes after the transfer",
    });
    running = false;
    await cluster.run(Promise.all(writers));
    const newLeader = cluster.server(target);
    await cluster.waitFor(() =>
      [...cluster.servers.values()].every((s) => s.appliedIndex === newLeader.commitIndex)
    );
    for (const machine of cluster.machines.values()) {
      for (const key of acknowledged.keys()) {
        assert.equal(machine.data.get(key), "v", `lost ${key}`);
      }
    }
    await cluster.stop();
  });

  test("Server.transferLeadership() to an unreachable peer times out cleanly and keeps leading", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 32 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const target = [...leader.peers.keys()][0]!;
    cluster.network.isolate(target);
    await cluster.run(leader.do(new KvSetCommand("x", "1")));
    await assert.rejects(cluster.run(leader.transferLeadership(target)), LeadershipTransferError);
    assert.equal(leader.state, LEADER);
    assert.equal(
      await cluster.run(leader.do(new KvSetCommand("x", "2"))),
      "1",
      "proposals are accepted again",
    );
    await cluster.stop();
  });

  test("Server.readIndex({ lease: true }) answers without a heartbeat round while the lease holds", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 33 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("x", "1")));
    cluster.clock.advance(60); // one heartbeat round answered by a quorum starts the lease
    await cluster.settle();
    const before = cluster.network.stats.sent.appendEntries;
    const index = await leader.readIndex({ lease: true });
    assert.equal(index, leader.commitIndex);
    assert.equal(cluster.network.stats.sent.appendEntries, before, "no message was needed");
    // Cut off from the others, the lease lapses and the leader falls back to ReadIndex, which cannot complete.
    for (const name of leader.peers.keys()) cluster.network.isolate(name);
    cluster.clock.advance(leader.electionTimeout);
    await cluster.settle();
    const read = leader.readIndex({ lease: true, signal: AbortSignal.abort() });
    await assert.rejects(read, CommandTimeoutError);
    await cluster.stop();
  });

  test("Server emits electionTimeoutThreshold when a heartbeat round trip nears the election timeout", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 34 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const warnings: number[] = [];
    leader.addEventListener(
      "electionTimeoutThreshold",
      (event) => warnings.push(event.value.roundTripMs),
    );
    // Small steps: the manual clock does not move while messages are in flight.
    for (let elapsed = 0; elapsed < 300; elapsed += 5) {
      cluster.clock.advance(5);
      await cluster.settle();
    }
    assert.equal(warnings.length, 0, "fast round trips raise no warning");
    cluster.network.setDelay({ minMs: 65, maxMs: 65 }); // 130 ms round trip > 0.8 × 150 ms
    await cluster.waitFor(() => warnings.length > 0, { what: "a threshold warning" });
    assert.ok(warnings.every((ms) => ms > leader.electionTimeout * 0.8));
    await cluster.stop();
  });
});
