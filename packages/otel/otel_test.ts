import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { metrics } from "@opentelemetry/api";
import {
  type CollectionResult,
  DataPointType,
  MeterProvider,
  MetricReader,
  type ScopeMetrics,
} from "@opentelemetry/sdk-metrics";
import type { Server, ServerStats } from "@tsraft/core";
import { KvSetCommand, TestCluster } from "@tsraft/core/testing";
import { instrumentServer, METER_NAME, VERSION } from "./mod.ts";

/** A reader the test collects from on demand (an app would export periodically). */
class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function scopeOf(result: CollectionResult, name: string): ScopeMetrics {
  assert.deepEqual(result.errors, []);
  const scope = result.resourceMetrics.scopeMetrics.find((s) => s.scope.name === name);
  assert.ok(scope, `no scope ${name}`);
  return scope;
}

/** The values of metric `name` whose attributes include `where` (none when it has no points). */
function values(
  scope: ScopeMetrics,
  name: string,
  where: Record<string, string>,
): number[] {
  // The SDK leaves out a metric with no points at all.
  const metric = scope.metrics.find((m) => m.descriptor.name === name);
  return (metric?.dataPoints ?? [])
    .filter((point) => Object.entries(where).every(([k, v]) => point.attributes[k] === v))
    .map((point) => point.value as number);
}

/** The one value of metric `name` whose attributes include `where`. */
function value(scope: ScopeMetrics, name: string, where: Record<string, string>): number {
  const found = values(scope, name, where);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(where)}: ${found.length} points`);
  return found[0]!;
}

/** A server whose stats() calls are counted. */
function counted(server: Server): Pick<Server, "name" | "stats"> & { calls: number } {
  const wrapper = {
    name: server.name,
    calls: 0,
    stats: () => {
      wrapper.calls++;
      return server.stats();
    },
  };
  return wrapper;
}

/** Waits until every server has applied everything the leader committed, and heard of it. */
async function waitCaughtUp(cluster: TestCluster, leader: Server): Promise<void> {
  await cluster.waitFor(
    () =>
      [...cluster.servers.values()].every((server) =>
        server.commitIndex === leader.commitIndex &&
        server.stats().appliedIndex === leader.commitIndex
      ) &&
      leader.stats().followers.every((follower) =>
        follower.matchIndex === leader.stats().lastIndex
      ),
    { what: "every server caught up with the leader" },
  );
  await cluster.settle();
}

test("instrumentServer() reports a 3-node cluster's indexes, state, counters and per-peer progress", async () => {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("raft-test");
  const cluster = new TestCluster(["a", "b", "c"], { seed: 11 });
  const instrumentations = [...cluster.servers.values()].map((server) =>
    instrumentServer(server, { meter })
  );
  try {
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await waitCaughtUp(cluster, leader);
    const before = scopeOf(await reader.collect(), "raft-test");
    const proposalsBefore = value(before, "raft.proposals", { server: leader.name });
    assert.equal(proposalsBefore, leader.stats().counters.proposals);

    const commands = 5;
    for (let i = 0; i < commands; i++) {
      await cluster.run(leader.do(new KvSetCommand(`k${i}`, `v${i}`)));
    }
    await waitCaughtUp(cluster, leader);
    const scope = scopeOf(await reader.collect(), "raft-test");

    assert.equal(
      value(scope, "raft.proposals", { server: leader.name }),
      proposalsBefore + commands,
    );
    for (const server of cluster.servers.values()) {
      const stats = server.stats();
      const at = { server: server.name };
      assert.equal(value(scope, "raft.term", at), server.term);
      assert.equal(value(scope, "raft.commit_index", at), server.commitIndex);
      assert.equal(value(scope, "raft.commit_index", at), leader.commitIndex);
      assert.equal(value(scope, "raft.applied_index", at), stats.appliedIndex);
      assert.equal(value(scope, "raft.last_index", at), stats.lastIndex);
      assert.equal(value(scope, "raft.snapshot_index", at), stats.snapshotIndex);
      assert.equal(value(scope, "raft.members", at), 3);
      assert.equal(value(scope, "raft.state", { ...at, state: server.state }), 1);
      assert.equal(values(scope, "raft.state", at).reduce((sum, v) => sum + v, 0), 1);
      assert.equal(value(scope, "raft.entries_applied", at), stats.counters.entriesApplied);
      assert.equal(value(scope, "raft.storage.writes", at), stats.counters.storageWrites);
      assert.equal(value(scope, "raft.elections", at), stats.counters.electionsStarted);
      assert.equal(
        value(scope, "raft.leader_contact.age", at),
        stats.leaderContactMsAgo,
      );
      for (const direction of ["sent", "received"] as const) {
        for (const [rpc, counts] of Object.entries(stats[direction])) {
          const where = { ...at, rpc, direction };
          assert.equal(value(scope, "raft.rpc.messages", where), counts.messages);
          assert.equal(value(scope, "raft.rpc.bytes", where), counts.bytes);
        }
      }
      const writes = value(scope, "raft.storage.write.duration.count", at);
      assert.equal(writes, stats.storageWriteLatency.count);
      assert.equal(
        value(scope, "raft.storage.write.duration.bucket", { ...at, le: "+Inf" }),
        writes,
      );
      assert.equal(
        value(scope, "raft.storage.write.duration.sum", at),
        stats.storageWriteLatency.sumMs,
      );
    }

    // The leader's view of each follower, by peer; the followers report none.
    const leaderStats = leader.stats();
    assert.equal(value(scope, "raft.state", { server: leader.name, state: "leader" }), 1);
    assert.equal(value(scope, "raft.leader_contact.age", { server: leader.name }), 0);
    assert.equal(value(scope, "raft.leaderships", { server: leader.name }), 1);
    const followers = [...cluster.servers.values()].filter((server) => server !== leader);
    assert.equal(leaderStats.followers.length, 2);
    for (const follower of followers) {
      const at = { server: leader.name, peer: follower.name };
      assert.equal(value(scope, "raft.follower.match_index", at), leaderStats.lastIndex);
      assert.equal(value(scope, "raft.follower.match_index", at), follower.stats().lastIndex);
      assert.equal(value(scope, "raft.follower.lag", at), 0);
      assert.equal(value(scope, "raft.follower.inflight", at), 0);
      const contact = leaderStats.followers.find((f) => f.name === follower.name)!;
      assert.equal(value(scope, "raft.follower.contact.age", at), contact.lastContactMsAgo);
      assert.deepEqual(values(scope, "raft.follower.match_index", { server: follower.name }), []);
    }
    const sentAppends = value(scope, "raft.rpc.messages", {
      server: leader.name,
      rpc: "appendEntries",
      direction: "sent",
    });
    assert.ok(sentAppends >= commands, `${sentAppends} AppendEntries sent`);
    assert.ok(
      value(scope, "raft.rpc.bytes", {
        server: leader.name,
        rpc: "appendEntries",
        direction: "sent",
      }) > 0,
    );

    // Commit latency: the commands proposed on the leader, in cumulative `le` buckets.
    const at = { server: leader.name };
    assert.equal(value(scope, "raft.commit.duration.count", at), commands);
    assert.equal(value(scope, "raft.commit.duration.sum", at), leaderStats.commitLatency.sumMs);
    const buckets = leaderStats.commitLatency.boundsMs.map((boundMs) =>
      value(scope, "raft.commit.duration.bucket", {
        ...at,
        le: boundMs === Infinity ? "+Inf" : String(boundMs),
      })
    );
    let cumulative = 0;
    assert.deepEqual(buckets, leaderStats.commitLatency.counts.map((c) => cumulative += c));
    assert.equal(buckets[buckets.length - 1], commands);
    for (const follower of followers) {
      assert.equal(value(scope, "raft.commit.duration.count", { server: follower.name }), 0);
    }
  } finally {
    for (const instrumentation of instrumentations) instrumentation.close();
    await cluster.stop();
    await provider.shutdown();
  }
});

test("instrumentServer() reads stats() once per collection, and close() stops reading it", async () => {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("raft-test");
  const cluster = new TestCluster(["a", "b", "c"], { seed: 12 });
  const observed = [...cluster.servers.values()].map(counted);
  const instrumentations = observed.map((server) => instrumentServer(server, { meter }));
  try {
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await waitCaughtUp(cluster, leader);
    await reader.collect();
    assert.deepEqual(observed.map((server) => server.calls), [1, 1, 1]);
    await reader.collect();
    assert.deepEqual(observed.map((server) => server.calls), [2, 2, 2]);

    const closing = observed.findIndex((server) => server.name === leader.name);
    instrumentations[closing]!.close();
    instrumentations[closing]!.close(); // a second close() does nothing
    const closedValue = value(
      scopeOf(await reader.collect(), "raft-test"),
      "raft.proposals",
      { server: leader.name },
    );
    await cluster.run(leader.do(new KvSetCommand("after", "close")));
    await waitCaughtUp(cluster, leader);
    const scope = scopeOf(await reader.collect(), "raft-test");
    assert.deepEqual(
      observed.map((server) => server.calls),
      observed.map((_, i) => i === closing ? 2 : 4),
    );
    // The closed server's values no longer follow it (a cumulative SDK reader may keep
    // exporting the last one); the others' still do.
    assert.equal(leader.stats().counters.proposals, closedValue + 1);
    assert.ok(
      values(scope, "raft.proposals", { server: leader.name }).every((v) => v === closedValue),
    );
    for (const server of cluster.servers.values()) {
      if (server === leader) continue;
      assert.equal(value(scope, "raft.commit_index", { server: server.name }), leader.commitIndex);
    }
  } finally {
    for (const instrumentation of instrumentations) instrumentation.close();
    await cluster.stop();
    await provider.shutdown();
  }
});

test("instrumentServer() defaults to the global provider's @tsraft/otel meter and adds attributes", async () => {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  assert.ok(metrics.setGlobalMeterProvider(provider));
  const cluster = new TestCluster(["solo"], { seed: 13 });
  const server = cluster.server("solo");
  const instrumentation = instrumentServer(server, { attributes: { cluster: "c1" } });
  try {
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("x", "1")));
    await cluster.settle();
    const result = await reader.collect();
    const scope = scopeOf(result, METER_NAME);
    const denoJson = JSON.parse(readFileSync(new URL("./deno.json", import.meta.url), "utf8"));
    assert.equal(scope.scope.version, VERSION);
    assert.equal(VERSION, denoJson.version);
    assert.equal(
      value(scope, "raft.commit_index", { server: "solo", cluster: "c1" }),
      server.commitIndex,
    );
    assert.equal(value(scope, "raft.proposals", { server: "solo", cluster: "c1" }), 1);
    assert.equal(value(scope, "raft.members", { server: "solo" }), 1);
    for (const metric of scope.metrics) {
      for (const point of metric.dataPoints) {
        assert.equal(point.attributes.server, "solo", metric.descriptor.name);
        assert.equal(point.attributes.cluster, "c1", metric.descriptor.name);
      }
    }
    // A single server has no followers.
    assert.deepEqual(values(scope, "raft.follower.match_index", {}), []);
  } finally {
    instrumentation.close();
    await cluster.stop();
    metrics.disable();
    await provider.shutdown();
  }
});

test("instrumentServer() without an SDK never reads stats()", async () => {
  metrics.disable();
  const cluster = new TestCluster(["solo"], { seed: 14 });
  const server = counted(cluster.server("solo"));
  const instrumentation = instrumentServer(server);
  try {
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("x", "1")));
    assert.equal(server.calls, 0);
  } finally {
    instrumentation.close();
    await cluster.stop();
  }
});

test("instrumentServer() maps each field of stats() to its own instrument", async () => {
  const rpc = (n: number) => ({
    appendEntries: { messages: n + 1, bytes: n + 2 },
    requestVote: { messages: n + 3, bytes: n + 4 },
    timeoutNow: { messages: n + 5, bytes: n + 6 },
    requestSnapshot: { messages: n + 7, bytes: n + 8 },
    snapshotRecoveryRequest: { messages: n + 9, bytes: n + 10 },
  });
  // Every number distinct, so a field reported under another's name shows.
  const stats: ServerStats = {
    name: "x",
    state: "candidate",
    term: 7,
    leader: "",
    commitIndex: 41,
    appliedIndex: 40,
    lastIndex: 45,
    snapshotIndex: 30,
    members: ["x", "y", "z", "w"],
    leaderContactMsAgo: Infinity,
    followers: [{
      name: "y",
      matchIndex: 42,
      nextIndex: 43,
      mode: "replicate",
      voter: true,
      inflightMessages: 2,
      lastContactMsAgo: 12.5,
    }],
    counters: {
      electionsStarted: 101,
      leadershipsWon: 102,
      proposals: 103,
      entriesApplied: 104,
      storageWrites: 105,
      storageWriteErrors: 106,
      snapshotsTaken: 107,
      snapshotsSent: 108,
      snapshotsInstalled: 109,
    },
    sent: rpc(200),
    received: rpc(300),
    storageWriteLatency: { boundsMs: [1, 10, Infinity], counts: [3, 0, 2], count: 5, sumMs: 61.5 },
    commitLatency: { boundsMs: [1, 10, Infinity], counts: [0, 4, 1], count: 5, sumMs: 99.25 },
  };
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const instrumentation = instrumentServer(
    { name: "x", stats: () => stats },
    { meter: provider.getMeter("raft-test") },
  );
  try {
    const scope = scopeOf(await reader.collect(), "raft-test");
    const at = { server: "x" };
    assert.equal(value(scope, "raft.term", at), 7);
    assert.equal(value(scope, "raft.commit_index", at), 41);
    assert.equal(value(scope, "raft.applied_index", at), 40);
    assert.equal(value(scope, "raft.last_index", at), 45);
    assert.equal(value(scope, "raft.snapshot_index", at), 30);
    assert.equal(value(scope, "raft.members", at), 4);
    assert.deepEqual(
      ["stopped", "initialized", "follower", "candidate", "leader", "snapshotting"].map((state) =>
        value(scope, "raft.state", { ...at, state })
      ),
      [0, 0, 0, 1, 0, 0],
    );
    // No leader ever made contact: no value rather than Infinity.
    assert.deepEqual(values(scope, "raft.leader_contact.age", at), []);
    const peer = { ...at, peer: "y" };
    assert.equal(value(scope, "raft.follower.match_index", peer), 42);
    assert.equal(value(scope, "raft.follower.lag", peer), 3);
    assert.equal(value(scope, "raft.follower.inflight", peer), 2);
    assert.equal(value(scope, "raft.follower.contact.age", peer), 12.5);
    const counters: Array<[string, number]> = [
      ["raft.elections", 101],
      ["raft.leaderships", 102],
      ["raft.proposals", 103],
      ["raft.entries_applied", 104],
      ["raft.storage.writes", 105],
      ["raft.storage.write_errors", 106],
      ["raft.snapshots.taken", 107],
      ["raft.snapshots.sent", 108],
      ["raft.snapshots.installed", 109],
    ];
    for (const [name, expected] of counters) assert.equal(value(scope, name, at), expected, name);
    assert.equal(
      value(scope, "raft.rpc.messages", { ...at, rpc: "requestVote", direction: "sent" }),
      203,
    );
    assert.equal(
      value(scope, "raft.rpc.bytes", {
        ...at,
        rpc: "snapshotRecoveryRequest",
        direction: "received",
      }),
      310,
    );
    assert.equal(values(scope, "raft.rpc.messages", at).length, 10);
    const buckets = (name: string) =>
      ["1", "10", "+Inf"].map((le) => value(scope, name, { ...at, le }));
    assert.deepEqual(buckets("raft.storage.write.duration.bucket"), [3, 3, 5]);
    assert.equal(value(scope, "raft.storage.write.duration.count", at), 5);
    assert.equal(value(scope, "raft.storage.write.duration.sum", at), 61.5);
    assert.deepEqual(buckets("raft.commit.duration.bucket"), [0, 4, 5]);
    assert.equal(value(scope, "raft.commit.duration.count", at), 5);
    assert.equal(value(scope, "raft.commit.duration.sum", at), 99.25);
    const sum = scope.metrics.find((m) => m.descriptor.name === "raft.storage.write.duration.sum")!;
    assert.equal(sum.descriptor.unit, "ms");
    // A monotonic sum (an observable counter), not a gauge.
    assert.equal(sum.dataPointType, DataPointType.SUM);
    assert.equal(sum.isMonotonic, true);
  } finally {
    instrumentation.close();
    await provider.shutdown();
  }
});
