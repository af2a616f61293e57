// Smoke test of the benchmark suite: it runs and produces figures. No timing assertions: the
// numbers depend on the machine and its load.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runBenchmarks, scaleRows } from "./main.ts";
import { benchProcessCluster, type ClusterRun } from "./cluster_bench.ts";
import { summarize } from "./_load.ts";
import { spawnSync } from "node:child_process";
import { benchKvService, KV_SERVICE_CASES, kvServiceRows } from "./kv_service_bench.ts";

describe("bench", () => {
  test("runBenchmarks() --quick --only a measures the memory cluster for 1 and 32 clients", async () => {
    const results = await runBenchmarks({ quick: true, only: ["a"], print: false });
    assert.deepEqual(results.errors, []);
    const runs = results.clusters.a?.runs ?? [];
    assert.deepEqual(runs.map((run) => run.result.clients), [1, 32]);
    for (const { result } of runs) {
      assert.ok(result.commits > 0, `no commits with ${result.clients} client(s)`);
      assert.ok(result.commitsPerSec > 0);
      assert.ok(Number.isFinite(result.p50Ms) && result.p50Ms <= result.p99Ms);
    }
  });

  test("benchProcessCluster() runs three TCP + file nodes and traces AppendEntries", async () => {
    const runs = await benchProcessCluster({
      clientCounts: [4],
      durationMs: 300,
      warmupMs: 100,
      transport: "tcp",
      storage: "file",
    });
    assert.equal(runs.length, 1);
    const run = runs[0]!;
    assert.ok(run.result.commits > 0);
    assert.equal(run.followers?.length, 2);
    assert.ok((run.appendBreakdown?.count ?? 0) > 0);
  });

  test("runBenchmarks() --clients 1,2 --only b runs case (b) once per client count", async () => {
    const results = await runBenchmarks({
      quick: true,
      only: ["b"],
      clientCounts: [1, 2],
      print: false,
    });
    assert.deepEqual(results.errors, []);
    const runs = results.clusters.b?.runs ?? [];
    assert.deepEqual(runs.map((run) => run.result.clients), [1, 2]);
    const rows = scaleRows(runs);
    assert.equal(rows.length, 2);
    assert.match(String(rows[1]!["throughput vs previous"]), /^(ok|FALLS) ×/);
  });

  test("scaleRows() flags a fall in throughput and checks the p99 at 512 clients", () => {
    // Synthetic runs: 1 client at 1,000/s, 32 at 900/s (a fall), 512 at 5,000/s with p99 12 ms.
    // The slowest 2% of each run's commands take p99Ms, the rest 1 ms.
    const run = (clients: number, commits: number, p99Ms: number): ClusterRun => ({
      result: summarize(
        clients,
        Array.from({ length: commits }, (_, i) => i < commits * 0.98 ? 1 : p99Ms),
        0,
        1000,
      ),
    });
    const rows = scaleRows([run(1, 1000, 1), run(32, 900, 1), run(512, 5000, 12)]);
    assert.deepEqual(rows.map((row) => row["throughput vs previous"]), [
      "",
      "FALLS ×0.9",
      "ok ×5.56",
    ]);
    assert.deepEqual(rows.map((row) => row["p99 limit ms"]), ["", "", "≤ 10: OVER"]);
    const within = scaleRows([run(512, 100, 9)]);
    assert.equal(within[0]!["p99 limit ms"], "≤ 10: ok");
  });

  test("runBenchmarks() --only memory samples every node's RSS after each tenth of the commands", async () => {
    const results = await runBenchmarks({
      only: ["memory"],
      commands: 20_000,
      // Small enough that the run takes automatic snapshots.
      snapshotThreshold: 2_000,
      print: false,
    });
    assert.deepEqual(results.errors, []);
    const memory = results.memory!;
    assert.equal(memory.commands, 20_000);
    // The idle cluster, then one sample per tenth.
    assert.equal(memory.samples.length, 11);
    const last = memory.samples.at(-1)!;
    assert.equal(last.nodes.length, 3);
    for (const node of last.nodes) {
      assert.ok(node.rssBytes > 0, `${node.name} reports its RSS`);
      assert.ok(node.snapshotsTaken > 0, `${node.name} took automatic snapshots`);
    }
    assert.deepEqual(memory.growth.map((node) => node.name), ["n1", "n2", "n3"]);
  });
});

// Declared on Deno only, not skipped elsewhere: the kv nodes are Deno processes, and Bun's
// run allows a fixed number of skips (scripts/expected_min_tests.json).
if ((globalThis as { Deno?: unknown }).Deno !== undefined) {
  describe("bench failover", () => {
    test("runBenchmarks() --only failover kills the leader twice and times the first write after each", async () => {
      const results = await runBenchmarks({ only: ["failover"], trials: 2, print: false });
      assert.deepEqual(results.errors, []);
      const failover = results.failover!;
      assert.equal(failover.electionTimeoutMs, 300);
      assert.equal(failover.trials.length, 2);
      for (const trial of failover.trials) {
        assert.notEqual(trial.via, trial.killed);
        assert.notEqual(trial.newLeader, trial.killed);
        assert.ok(trial.failoverMs > 0);
      }
      assert.ok(failover.p50Ms <= failover.maxMs);
    });
  });
}

describe("bench (e) kv service", () => {
  const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  const wrk = spawnSync("wrk", ["--version"]).error === undefined;
  const skip = !deno ? "the kv nodes run on Deno" : !wrk ? "wrk is missing" : false;
  if (skip) console.log(`bench (e) smoke test skipped: ${skip}`);

  test("benchKvService() drives the kv service with wrk and reports CPU per request", {
    skip,
  }, async () => {
    const results = await benchKvService({
      durationMs: 1000,
      warmupMs: 500,
      cases: KV_SERVICE_CASES.filter((c) =>
        (c.name === "PUT leader" && c.clients === 32) || c.name === "GET follower"
      ),
    });
    assert.deepEqual(results.runs.map((run) => run.case), ["PUT leader", "GET follower"]);
    for (const run of results.runs) {
      assert.ok(run.requests > 0, `${run.case}: no requests`);
      assert.ok(run.clusterCpuUsPerRequest > 0, `${run.case}: no CPU measured`);
    }
    assert.ok(results.runs[0]!.writesPerEntry >= 1);
    assert.equal(kvServiceRows(results).length, 2);
  });
});
