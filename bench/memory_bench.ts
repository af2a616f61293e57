/**
 * Memory over a long run: a 3-process cluster (TCP + FileStorage, fsync on) with automatic
 * snapshots takes `commands` commands from closed-loop clients in the leader process; after
 * every tenth of them each node reports its RSS (`process.memoryUsage()`, from inside the
 * process). Issue 14's limit: every node stays within +20% of its RSS after the first
 * tenth (the first 100,000 of 1,000,000 commands).
 *
 * The nodes run without the counting wrappers of `_instrument.ts`, whose sample buffers
 * would be the harness's memory, not the library's.
 *
 * Run through `bench/main.ts` (`deno task bench --only memory [--commands N]`).
 * @module
 */
import { type LoadResult, round } from "./_load.ts";
import { startProcessCluster, waitForProcessLeader } from "./cluster_bench.ts";

/** Issue 14's limit on RSS growth after the first tenth of the commands, in percent. */
export const MEMORY_GROWTH_LIMIT_PERCENT = 20;
/** Samples per run: after every tenth of the commands. */
const SAMPLES = 10;

/** Options of {@link benchMemory}. */
export interface MemoryBenchOptions {
  /** Commands committed in the whole run. */
  commands: number;
  /** Closed-loop clients in the leader. @default 32 */
  clients?: number;
  /** Applied entries between automatic snapshots. @default 10000 (the server's default) */
  snapshotThreshold?: number;
  /** Directory under which the nodes' data directories are made. @default the OS temp dir */
  parentDir?: string;
  /** Progress lines. */
  say?: (line: string) => void;
}

/** One node's figures at one sample. */
export interface NodeMemory {
  name: string;
  /** `leader`, `follower`, ... */
  state: string;
  rssBytes: number;
  heapUsedBytes: number;
  /** Automatic snapshots taken so far. */
  snapshotsTaken: number;
  /** Entries held in the log (after compaction). */
  logEntries: number;
}

/** The nodes after `commands` commands. */
export interface MemorySample {
  /** Commands committed so far (0: the idle cluster before any load). */
  commands: number;
  /** Throughput and latency of the commands since the previous sample. */
  load?: LoadResult;
  nodes: NodeMemory[];
}

/** One node's RSS growth against its first loaded sample. */
export interface MemoryGrowth {
  name: string;
  /** RSS after the first tenth of the commands. */
  baseMiB: number;
  lastMiB: number;
  maxMiB: number;
  /** Growth of the largest later sample over the base. */
  maxGrowthPercent: number;
  /** Whether `maxGrowthPercent` is within {@link MEMORY_GROWTH_LIMIT_PERCENT}. */
  ok: boolean;
}

/** Everything {@link benchMemory} measured. */
export interface MemoryResults {
  commands: number;
  clients: number;
  snapshotThreshold: number;
  samples: MemorySample[];
  growth: MemoryGrowth[];
  limitPercent: number;
}

/**
 * Runs the memory benchmark.
 * @param options commands, clients, snapshot threshold
 * @returns the samples and each node's growth
 * @throws RangeError when `commands` is below 10 (one per sample)
 */
export async function benchMemory(options: MemoryBenchOptions): Promise<MemoryResults> {
  if (!(options.commands >= SAMPLES)) {
    throw new RangeError(`Cannot sample ${options.commands} commands: at least ${SAMPLES}`);
  }
  const clients = options.clients ?? 32;
  const snapshotThreshold = options.snapshotThreshold ?? 10_000;
  const say = options.say ?? (() => {});
  const cluster = await startProcessCluster({
    transport: "tcp",
    storage: "file",
    snapshotThreshold,
    instrument: false,
    ...(options.parentDir === undefined ? {} : { parentDir: options.parentDir }),
  });
  const { nodes } = cluster;
  const sample = async (commands: number, load?: LoadResult): Promise<MemorySample> => {
    const answers = await Promise.all(nodes.map((node) => node.request({ op: "memory" })));
    return {
      commands,
      ...(load === undefined ? {} : { load }),
      nodes: answers.map((answer, i) => ({
        name: nodes[i]!.name,
        state: answer.state as string,
        rssBytes: answer.rssBytes as number,
        heapUsedBytes: answer.heapUsedBytes as number,
        snapshotsTaken: answer.snapshotsTaken as number,
        logEntries: answer.logEntries as number,
      })),
    };
  };
  try {
    await waitForProcessLeader(nodes);
    const samples = [await sample(0)];
    let done = 0;
    for (let i = 1; i <= SAMPLES; i++) {
      const target = Math.round(options.commands * i / SAMPLES);
      // A leader change cuts a step short; the next step starts on the new leader.
      while (done < target) {
        const leader = nodes[await waitForProcessLeader(nodes)]!;
        const answer = await leader.request({
          op: "bench",
          clients,
          commands: target - done,
          warmupMs: 0,
          // A deadline only: the step ends when its commands have committed.
          durationMs: 600_000,
        });
        const load = answer.result as LoadResult;
        done += load.commits;
        if (done >= target) {
          samples.push(await sample(done, load));
          say(`  ${done} commands: RSS ${rssLine(samples.at(-1)!)}`);
        }
      }
    }
    return {
      commands: done,
      clients,
      snapshotThreshold,
      samples,
      growth: memoryGrowth(samples),
      limitPercent: MEMORY_GROWTH_LIMIT_PERCENT,
    };
  } finally {
    await cluster.close();
  }
}

function mib(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

function rssLine(sample: MemorySample): string {
  return sample.nodes.map((node) => `${node.name} ${mib(node.rssBytes)} MiB`).join(", ");
}

/**
 * @param samples the idle sample, then one per tenth of the commands
 * @returns each node's growth over its first loaded sample
 */
export function memoryGrowth(samples: MemorySample[]): MemoryGrowth[] {
  const loaded = samples.filter((sample) => sample.commands > 0);
  const first = loaded[0];
  if (first === undefined) return [];
  return first.nodes.map((node, i) => {
    const series = loaded.map((sample) => sample.nodes[i]!.rssBytes);
    const max = Math.max(...series);
    const growth = (max - node.rssBytes) / node.rssBytes * 100;
    return {
      name: node.name,
      baseMiB: mib(node.rssBytes),
      lastMiB: mib(series.at(-1)!),
      maxMiB: mib(max),
      maxGrowthPercent: round(growth, 1),
      ok: growth <= MEMORY_GROWTH_LIMIT_PERCENT,
    };
  });
}

/** @returns one row per sample: commands, each node's RSS (L marks the leader), load */
export function memoryRows(results: MemoryResults): Record<string, string | number>[] {
  return results.samples.map((sample) => {
    const row: Record<string, string | number> = { commands: sample.commands };
    for (const node of sample.nodes) {
      row[`${node.name} RSS MiB`] = `${mib(node.rssBytes)}${node.state === "leader" ? " L" : ""}`;
    }
    row["heap MiB (leader)"] = mib(
      (sample.nodes.find((node) => node.state === "leader") ?? sample.nodes[0]!).heapUsedBytes,
    );
    row["log entries"] = sample.nodes.map((node) => node.logEntries).join("/");
    row.snapshots = sample.nodes.map((node) => node.snapshotsTaken).join("/");
    row["commits/s"] = sample.load?.commitsPerSec ?? "";
    row["p99 ms"] = sample.load?.p99Ms ?? "";
    return row;
  });
}

/** Prints the RSS table and each node's growth beside the limit. */
export function printMemory(results: MemoryResults): void {
  console.log(
    `\nmemory: ${results.commands} commands, ${results.clients} clients in the leader, ` +
      `3 processes, TCP + FileStorage, automatic snapshots every ${results.snapshotThreshold} ` +
      `entries; RSS after every tenth`,
  );
  console.table(memoryRows(results));
  console.table(results.growth.map((node) => ({
    node: node.name,
    "RSS after 1st tenth MiB": node.baseMiB,
    "last MiB": node.lastMiB,
    "max MiB": node.maxMiB,
    "max growth": `${node.maxGrowthPercent >= 0 ? "+" : ""}${node.maxGrowthPercent}%`,
    limit: `+${results.limitPercent}%`,
    check: node.ok ? "ok" : "OVER",
  })));
}
