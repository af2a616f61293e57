/**
 * Failover: three kv example processes (examples/kv, TCP + FileStorage, fsync on); each trial
 * kills the leader with SIGKILL and measures the time from the kill to the first write
 * committed through a survivor (a PUT acknowledged with 200 by either of them, forwarded to
 * the new leader or served by it), then restarts the killed node on its data directory and
 * waits until it has applied everything the leader committed. Issue 14's reference: p50
 * 338 ms, max 458 ms at a 300 ms election timeout.
 *
 * Run through `bench/main.ts` (`deno task bench --only failover [--trials N]`).
 * @module
 */
import { tmpdir } from "node:os";
import process from "node:process";
import {
  fetchStatus,
  type NodeProcess,
  waitFor,
  waitForLeader,
} from "../examples/kv/node_process.ts";
import { percentile, round } from "./_load.ts";
import { startKvCluster, stopKvCluster } from "./kv_service_bench.ts";

/** The kv example's default election timeout, at which issue 14's reference was measured. */
export const FAILOVER_ELECTION_TIMEOUT_MS = 300;
/** Issue 14's measurement at {@link FAILOVER_ELECTION_TIMEOUT_MS}. */
export const FAILOVER_REFERENCE = { p50Ms: 338, maxMs: 458 };

/** Options of {@link benchFailover}. */
export interface FailoverOptions {
  /** Leaders killed, one after another. */
  trials: number;
  /** `--election-timeout-ms` of the nodes. @default 300 */
  electionTimeoutMs?: number;
  /** Where the data directories go. @default the OS temp dir */
  parentDir?: string;
  /** Progress lines. */
  say?: (line: string) => void;
}

/** One kill of a leader. */
export interface FailoverTrial {
  /** The leader killed. */
  killed: string;
  /** The survivor whose PUT was acknowledged first. */
  via: string;
  /** The leader after the failover. */
  newLeader: string;
  /** From the SIGKILL to the first acknowledged PUT. */
  failoverMs: number;
  /** From the restart of the killed node to its applying the leader's commit index. */
  catchUpMs: number;
}

/** Everything {@link benchFailover} measured. */
export interface FailoverResults {
  electionTimeoutMs: number;
  trials: FailoverTrial[];
  p50Ms: number;
  maxMs: number;
  catchUpP50Ms: number;
}

/**
 * Runs the failover benchmark.
 * @param options trials and election timeout
 * @returns every trial and the p50 and max failover time
 * @throws Error when no write commits within 30 s of a kill, or the cluster does not recover
 */
export async function benchFailover(options: FailoverOptions): Promise<FailoverResults> {
  const electionTimeoutMs = options.electionTimeoutMs ?? FAILOVER_ELECTION_TIMEOUT_MS;
  const say = options.say ?? (() => {});
  const cluster = await startKvCluster({
    parentDir: options.parentDir ?? tmpdir(),
    electionTimeoutMs,
    // A log that is not empty, as in a cluster that has served writes.
    prefillKeys: 100,
  });
  const killAll = () => cluster.nodes.forEach((node) => void node.kill("SIGKILL"));
  process.once("exit", killAll);
  const trials: FailoverTrial[] = [];
  try {
    for (let trial = 1; trial <= options.trials; trial++) {
      const urls = cluster.nodes.map((node) => node.url);
      const old = await waitForLeader(urls, { timeoutMs: 30_000 });
      const victim = cluster.nodes.find((node) => node.id === old.id)!;
      const survivors = cluster.nodes.filter((node) => node !== victim);
      const killedMs = performance.now();
      await victim.kill("SIGKILL");
      // Writes start once the process is gone, so none can be acknowledged by it.
      const { via, atMs } = await firstWrite(survivors, `failover-${trial}`);
      const failoverMs = atMs - killedMs;
      const fresh = await waitForLeader(survivors.map((node) => node.url), { timeoutMs: 30_000 });

      const restartedMs = performance.now();
      victim.start();
      await waitFor(async () => {
        const leader = await fetchStatus(cluster.nodes.find((node) => node.id === fresh.id)!.url);
        const status = await fetchStatus(victim.url);
        return leader !== undefined && status !== undefined &&
          status.appliedIndex >= leader.commitIndex;
      }, { timeoutMs: 60_000, intervalMs: 20, message: `${victim.id} catches up` });
      const catchUpMs = performance.now() - restartedMs;
      trials.push({
        killed: victim.id,
        via,
        newLeader: fresh.id,
        failoverMs: round(failoverMs, 1),
        catchUpMs: round(catchUpMs, 1),
      });
      say(
        `  trial ${trial}: killed ${victim.id}, first write through ${via} after ` +
          `${round(failoverMs, 1)} ms, new leader ${fresh.id}; ${victim.id} caught up in ` +
          `${Math.round(catchUpMs)} ms`,
      );
    }
  } catch (error) {
    for (const node of cluster.nodes) console.error(`--- ${node.id}\n${node.output}`);
    throw error;
  } finally {
    await stopKvCluster(cluster);
    process.off("exit", killAll);
  }
  const sorted = Float64Array.from(trials.map((trial) => trial.failoverMs)).sort();
  const catchUp = Float64Array.from(trials.map((trial) => trial.catchUpMs)).sort();
  return {
    electionTimeoutMs,
    trials,
    p50Ms: round(percentile(sorted, 0.5), 1),
    maxMs: sorted.at(-1) ?? NaN,
    catchUpP50Ms: round(percentile(catchUp, 0.5), 1),
  };
}

/**
 * PUTs `key` through every node of `survivors` at once, each retrying 5 ms after a failure
 * (no leader known, the dead leader unreachable), until one is acknowledged.
 * @returns the node that acknowledged first and when
 */
async function firstWrite(
  survivors: NodeProcess[],
  key: string,
): Promise<{ via: string; atMs: number }> {
  const done = new AbortController();
  const deadline = performance.now() + 30_000;
  const writer = async (node: NodeProcess): Promise<{ via: string; atMs: number }> => {
    for (let attempt = 0;; attempt++) {
      if (done.signal.aborted) throw new Error("another survivor answered first");
      if (performance.now() > deadline) throw new Error(`No write committed through ${node.id}`);
      try {
        const response = await fetch(`${node.url}/kv/${key}`, {
          method: "PUT",
          body: `${node.id}-${attempt}`,
          signal: AbortSignal.any([done.signal, AbortSignal.timeout(2000)]),
        });
        await response.body?.cancel();
        if (response.status === 200) return { via: node.id, atMs: performance.now() };
      } catch {
        // Refused, reset or timed out while the cluster elects: try again.
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  try {
    return await Promise.any(survivors.map(writer));
  } catch (error) {
    throw error instanceof AggregateError ? error.errors[0] : error;
  } finally {
    done.abort();
  }
}

/** Prints the failover figures beside the election timeout and issue 14's reference. */
export function printFailover(results: FailoverResults): void {
  const reference = results.electionTimeoutMs === FAILOVER_ELECTION_TIMEOUT_MS
    ? ` (issue 14's reference: p50 ${FAILOVER_REFERENCE.p50Ms} ms, max ${FAILOVER_REFERENCE.maxMs} ms)`
    : "";
  console.log(
    `\nfailover: kill -9 of the leader → first write committed through a survivor, ` +
      `${results.trials.length} trials, 3 kv processes (TCP + FileStorage), election timeout ` +
      `${results.electionTimeoutMs} ms: p50 ${results.p50Ms} ms, max ${results.maxMs} ms` +
      reference,
  );
  console.log(
    `  each trial (ms): ${results.trials.map((trial) => trial.failoverMs).join(", ")}; ` +
      `the restarted node caught up in p50 ${results.catchUpP50Ms} ms`,
  );
}
