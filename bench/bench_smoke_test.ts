// Smoke test of the benchmark suite: it runs and produces figures. No timing assertions: the
// numbers depend on the machine and its load.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runBenchmarks } from "./main.ts";
import { benchProcessCluster } from "./cluster_bench.ts";
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
});

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
