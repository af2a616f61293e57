// Smoke test of the benchmark suite: it runs and produces figures. No timing assertions: the
// numbers depend on the machine and its load.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runBenchmarks } from "./main.ts";
import { benchProcessCluster } from "./cluster_bench.ts";

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
