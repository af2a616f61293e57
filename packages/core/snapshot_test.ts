import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FOLLOWER } from "./constants.ts";
import { KvSetCommand, TestCluster } from "./testing/test_cluster.ts";

describe("Snapshots and compaction", () => {
  test("Server: a follower that crashes while a snapshot streams to it installs it after restart", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 21,
      serverOptions: { trailingLogEntries: 2, snapshotThreshold: 0, snapshotChunkBytes: 32 },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const victim = [...cluster.servers.values()].find((s) => s.state === FOLLOWER)!.name;
    cluster.network.isolate(victim);
    for (let i = 0; i < 40; i++) {
      await cluster.run(leader.do(new KvSetCommand(`k${i}`, `value-${i}`)));
    }
    const others = [...cluster.servers.values()].filter((server) => server.name !== victim);
    await cluster.waitFor(() =>
      others.every((server) => server.appliedIndex === leader.commitIndex)
    );
    // Every server that can lead compacts, so the victim can only catch up from a snapshot.
    for (const server of others) await cluster.run(server.takeSnapshot());
    let chunks = 0;
    const before = cluster.network.stats.sent.snapshotRecoveryRequest;
    // Give every message 1 ms of simulated latency so the transfer takes many steps.
    cluster.network.setDelay({ minMs: 1, maxMs: 1 });
    cluster.network.heal();
    // Crash as soon as a few chunks of the snapshot have arrived.
    await cluster.waitFor(() => {
      chunks = cluster.network.stats.sent.snapshotRecoveryRequest - before;
      return chunks >= 3;
    }, { stepMs: 1, what: "snapshot chunks to flow" });
    await cluster.crash(victim);
    assert.ok(
      cluster.machines.get(victim)!.data.get("k39") === undefined,
      "the crash came before the install",
    );
    cluster.clock.advance(300);
    await cluster.settle();
    await cluster.restart(victim);
    await cluster.waitFor(() => cluster.machines.get(victim)?.data.get("k39") === "value-39", {
      what: "the restarted follower to install the snapshot",
    });
    const restarted = cluster.server(victim);
    assert.equal(restarted.state, FOLLOWER);
    assert.ok(restarted.snapshotIndex >= 40, `snapshot index ${restarted.snapshotIndex}`);
    const current = await cluster.waitForLeader();
    await cluster.run(current.do(new KvSetCommand("after", "crash")));
    await cluster.waitFor(() => cluster.machines.get(victim)!.data.get("after") === "crash");
    await cluster.stop();
  });

  test("Server: the stored log stays bounded over 100k commands with automatic snapshots", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      seed: 22,
      serverOptions: { snapshotThreshold: 2_000, trailingLogEntries: 200 },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    let maxStored = 0;
    const total = 100_000;
    const batch = 1_000;
    for (let start = 0; start < total; start += batch) {
      await cluster.run(
        Promise.all(
          Array.from(
            { length: batch },
            (_, i) => leader.do(new KvSetCommand(`k${(start + i) % 500}`, `${start + i}`)),
          ),
        ),
        60_000,
      );
      for (const server of cluster.servers.values()) {
        maxStored = Math.max(maxStored, server.lastIndex - server.snapshotIndex);
      }
    }
    await cluster.waitFor(() =>
      [...cluster.servers.values()].every((s) => s.appliedIndex === leader.commitIndex)
    );
    for (const [name, disk] of cluster.disks) {
      const storage = cluster.server(name);
      assert.ok(
        storage.logEntries.length < 2_000 + 200 + batch * 2,
        `${name} holds ${storage.logEntries.length}`,
      );
      assert.ok(disk.saveCount > 0);
    }
    assert.ok(maxStored < 2_000 + 200 + batch * 2, `in-memory log peaked at ${maxStored} entries`);
    for (const machine of cluster.machines.values()) {
      assert.equal(machine.data.get(`k${(total - 1) % 500}`), `${total - 1}`);
    }
    await cluster.stop();
  });
});
