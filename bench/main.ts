/**
 * The tsraft benchmark suite, in one run: commits/s and p50/p99 commit latency of a 3-node
 * cluster for 1 and 32 closed-loop clients (or the counts of `--clients`),
 *
 * - (a) in one process on the memory transport and memory storage (real clock),
 * - (b) three processes over TCP with FileStorage (fsync on),
 * - (c) three processes over HTTP (Hono on Deno.serve) with FileStorage,
 * - (d) three processes over TCP with KvStorage,
 * - (e) the kv example service (examples/kv) over its HTTP API, driven by wrk: PUT and
 *   linearizable GET at 1 and 32 clients, to the leader and through a follower, with CPU
 *   µs per request, beside the targets of issue 14 and a bare HTTP server's floor,
 *
 * next to the machine's limits measured in the same run (write 256 B + fdatasync, and a
 * loopback TCP round trip between processes), each cluster figure also given as a ratio to
 * them; then
 *
 * - the scale curve of (b): commits/s, p50 and p99 per client count, checked against issue
 *   14's targets (throughput does not fall as clients grow; p99 at 512 clients ≤ 10 ms),
 * - `failover`: kill -9 of the leader of three kv example processes to the first write
 *   committed through a survivor, p50 and max over `--trials` trials (default 20, 3 with
 *   `--quick`), beside the election timeout (bench/failover_bench.ts),
 * - `memory`: RSS of each node of a 3-process TCP + FileStorage cluster with automatic
 *   snapshots (`--snapshot-threshold`, default 10,000) after every tenth of `--commands`
 *   commands (default 1,000,000, 100,000 with `--quick`), and its growth over the first
 *   tenth beside the +20% limit (bench/memory_bench.ts),
 *
 * and the adapters' micro-benchmarks. Prints tables and writes everything to
 * `.bench/results.json`.
 *
 * Run: `deno task bench [--quick] [--only a,b,c,d,e,failover,memory,limits,micro|tcp,http,file,kv]
 * [--clients 1,8,32,128,512] [--trials N] [--election-timeout-ms N] [--commands N]
 * [--snapshot-threshold N] [--profile] [--dir DIR] [--max-inflight N] [--kv-baseline REV]`.
 * `--clients` sets the client counts of (a)-(d) (default 1,32); (e) keeps its own cases and
 * `memory` runs 32 clients. `--election-timeout-ms` is that of `failover` (default 300, as
 * in issue 14's reference).
 * `--profile` writes a CPU profile of the leader of (b)-(e) per run to
 * `.bench/<case>-c<clients>.cpuprofile` and prints its hottest functions.
 * `--kv-baseline REV` also runs (e) on the kv service of git revision REV, case by case
 * beside the current one.
 *
 * The full figures of issue 14: `deno task bench --clients 1,8,32,128,512` (everything), or
 * one part at a time: `deno task bench --only b --clients 1,8,32,128,512`,
 * `deno task bench --only failover --trials 20`,
 * `deno task bench --only memory --commands 1000000`.
 * @module
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { benchMemoryCluster, benchProcessCluster, type ClusterRun } from "./cluster_bench.ts";
import { type Limit, measureFdatasync, measureLoopbackRtt } from "./_limits.ts";
import { type CpuProfile, summarizeProfile } from "./_profile.ts";
import { round } from "./_load.ts";
import { runtimeName } from "./_measure.ts";
import { benchKvService, type KvServiceResults, printKvService } from "./kv_service_bench.ts";
import { benchFailover, type FailoverResults, printFailover } from "./failover_bench.ts";
import { benchMemory, type MemoryResults, printMemory } from "./memory_bench.ts";

const CLUSTERS = {
  a: { label: "memory, 1 process" },
  b: { label: "TCP + FileStorage", transport: "tcp", storage: "file" },
  c: { label: "HTTP + FileStorage", transport: "http", storage: "file" },
  d: { label: "TCP + KvStorage", transport: "tcp", storage: "kv" },
} as const;
type ClusterKey = keyof typeof CLUSTERS;

type Micro = () => Promise<Record<string, number>>;
/** Module, export, and the key of its figures in the results. */
const MICROS: { key: string; module: string; name: string }[] = [
  { key: "tcp", module: "./tcp_bench.ts", name: "benchTcp" },
  { key: "http", module: "./http_bench.ts", name: "benchHttp" },
  { key: "file", module: "./storage_file_bench.ts", name: "benchFileStorage" },
  { key: "kv", module: "./storage_kv_bench.ts", name: "benchKvStorage" },
];

/** Everything one run measured. */
export interface BenchResults {
  date: string;
  runtime: string;
  quick: boolean;
  /** Client counts of (a)-(d). */
  clientCounts: number[];
  limits: { fdatasync?: Limit; fdatasync3?: Limit; loopbackRtt?: Limit };
  clusters: Partial<Record<ClusterKey, { label: string; runs: ClusterRun[] }>>;
  micro: Record<string, Record<string, number>>;
  /** Case (e), the kv example service over HTTP. */
  kvService?: KvServiceResults;
  /** kill -9 of the leader to the first committed write. */
  failover?: FailoverResults;
  /** RSS of each node over a long run with automatic snapshots. */
  memory?: MemoryResults;
  errors: string[];
}

/** Options of {@link runBenchmarks}. */
export interface RunOptions {
  quick?: boolean;
  /**
   * Sections to run: a, b, c, d, e, failover, memory, limits, micro, tcp, http, file, kv.
   * @default all
   */
  only?: string[];
  /** Closed-loop clients of (a)-(d), one run per entry in order. @default [1, 32] */
  clientCounts?: number[];
  /** Leaders killed by `failover`. @default 20, 3 when quick */
  trials?: number;
  /** Election timeout of `failover`'s nodes. @default 300 */
  electionTimeoutMs?: number;
  /** Commands through `memory`'s cluster. @default 1,000,000, 100,000 when quick */
  commands?: number;
  /** Automatic snapshot threshold of `memory`'s nodes. @default 10000 */
  snapshotThreshold?: number;
  /** Write CPU profiles of the leaders of (b)-(d) with this path prefix. */
  profilePrefix?: string;
  /** Where data directories go. @default the OS temp dir */
  dir?: string;
  /** Print progress and tables. @default true */
  print?: boolean;
  /** `maxInflightMessages` of the servers of (a)-(d). @default the server's default */
  maxInflightMessages?: number;
  /** Git revision whose kv service (e) also measures, case by case. */
  kvBaseline?: string;
}

/**
 * Runs the selected benchmarks; one failing section is reported in `errors` and the others
 * still run.
 * @param options sections, durations, profile
 * @returns the figures
 */
export async function runBenchmarks(options: RunOptions = {}): Promise<BenchResults> {
  const quick = options.quick ?? false;
  const print = options.print ?? true;
  const say = (text: string) => print && console.log(text);
  const only = new Set(
    options.only ?? ["a", "b", "c", "d", "e", "failover", "memory", "limits", "micro"],
  );
  const wants = (key: string) => only.has(key);
  const dir = options.dir ?? tmpdir();
  const durations = quick
    ? { durationMs: 800, warmupMs: 200, limitMs: 500 }
    : { durationMs: 5000, warmupMs: 1000, limitMs: 2000 };
  const clientCounts = options.clientCounts ?? [1, 32];
  const results: BenchResults = {
    date: new Date().toISOString(),
    runtime: runtimeName(),
    quick,
    clientCounts,
    limits: {},
    clusters: {},
    micro: {},
    errors: [],
  };
  const attempt = async (what: string, body: () => Promise<void>) => {
    try {
      await body();
    } catch (error) {
      const message = `${what}: ${error instanceof Error ? error.stack ?? error.message : error}`;
      results.errors.push(message);
      console.error(`!! ${message}`);
    }
  };

  const processClusters = (["b", "c", "d"] as const).filter(wants);
  if (wants("limits") || processClusters.length > 0 || wants("e")) {
    await attempt("fdatasync limit", async () => {
      say(`measuring write 256 B + fdatasync in ${dir} ...`);
      results.limits.fdatasync = await measureFdatasync(dir, durations.limitMs);
      say("measuring the same with 3 writers at once (3 nodes on one disk) ...");
      results.limits.fdatasync3 = await measureFdatasync(dir, durations.limitMs, 3);
    });
    await attempt("loopback RTT limit", async () => {
      say("measuring loopback node:net round trips between processes ...");
      results.limits.loopbackRtt = await measureLoopbackRtt(durations.limitMs);
    });
  }

  const serverOptions = options.maxInflightMessages === undefined
    ? {}
    : { maxInflightMessages: options.maxInflightMessages };
  if (wants("a")) {
    await attempt("cluster a", async () => {
      say(`cluster (a) ${CLUSTERS.a.label} ...`);
      const runs = await benchMemoryCluster({ clientCounts, ...durations, ...serverOptions });
      results.clusters.a = { label: CLUSTERS.a.label, runs };
    });
  }
  for (const key of processClusters) {
    const spec = CLUSTERS[key];
    await attempt(`cluster ${key}`, async () => {
      say(`cluster (${key}) ${spec.label}, 3 processes ...`);
      const runs = await benchProcessCluster({
        clientCounts,
        ...durations,
        transport: spec.transport,
        storage: spec.storage,
        parentDir: dir,
        ...serverOptions,
        ...(options.profilePrefix ? { profilePath: `${options.profilePrefix}${key}` } : {}),
      });
      results.clusters[key] = { label: spec.label, runs };
    });
  }

  if (wants("e")) {
    await attempt("kv service e", async () => {
      say("case (e) kv service over HTTP, 3 processes, wrk ...");
      results.kvService = await benchKvService({
        durationMs: durations.durationMs,
        warmupMs: durations.warmupMs,
        // Interleaved rounds: a burst of load from elsewhere hurts both builds alike.
        rounds: quick ? 1 : 3,
        parentDir: dir,
        say,
        ...(options.kvBaseline === undefined ? {} : { baseline: options.kvBaseline }),
        ...(options.profilePrefix ? { profilePath: `${options.profilePrefix}e` } : {}),
      });
    });
  }

  if (wants("failover")) {
    await attempt("failover", async () => {
      say("failover: kill -9 of the leader of 3 kv processes ...");
      results.failover = await benchFailover({
        trials: options.trials ?? (quick ? 3 : 20),
        parentDir: dir,
        say,
        ...(options.electionTimeoutMs === undefined
          ? {}
          : { electionTimeoutMs: options.electionTimeoutMs }),
      });
    });
  }

  if (wants("memory")) {
    await attempt("memory", async () => {
      const commands = options.commands ?? (quick ? 100_000 : 1_000_000);
      say(`memory: ${commands} commands through 3 processes with automatic snapshots ...`);
      results.memory = await benchMemory({
        commands,
        parentDir: dir,
        say,
        ...(options.snapshotThreshold === undefined
          ? {}
          : { snapshotThreshold: options.snapshotThreshold }),
      });
    });
  }

  for (const micro of MICROS) {
    if (!wants("micro") && !wants(micro.key)) continue;
    await attempt(`micro ${micro.key}`, async () => {
      say(`micro-benchmark ${micro.module} ...`);
      // A variable specifier: a bench file that is missing fails here, not the whole suite.
      const specifier = micro.module;
      const module = await import(specifier) as Record<string, Micro | undefined>;
      const run = module[micro.name];
      if (typeof run !== "function") throw new Error(`${micro.module} has no ${micro.name}()`);
      results.micro[micro.key] = await run();
    });
  }
  return results;
}

/** @returns the cluster table rows, with ratios to the limits */
export function clusterRows(results: BenchResults): Record<string, string | number>[] {
  const fsync = results.limits.fdatasync;
  const rtt = results.limits.loopbackRtt;
  const rows: Record<string, string | number>[] = [];
  for (const [key, cluster] of Object.entries(results.clusters)) {
    for (const run of cluster.runs) {
      const r = run.result;
      const leader = run.leader as { saves?: { count: number } } | undefined;
      const disk = key !== "a";
      rows.push({
        case: `(${key}) ${cluster.label}`,
        clients: r.clients,
        "commits/s": r.commitsPerSec,
        "p50 ms": r.p50Ms,
        "p99 ms": r.p99Ms,
        errors: r.errors,
        "÷ fsync/s": disk && fsync ? round(r.commitsPerSec / fsync.perSec, 2) : "",
        "p50 ÷ (fsync+RTT)": disk && fsync && rtt
          ? round(r.p50Ms / (fsync.p50Ms + rtt.p50Ms), 2)
          : "",
        "leader saves/commit": leader?.saves && r.commits > 0
          ? round(leader.saves.count / r.commits, 3)
          : "",
      });
    }
  }
  return rows;
}

/** Issue 14's limit on the p99 commit latency of (b) at 512 clients. */
export const SCALE_P99_LIMIT = { clients: 512, p99Ms: 10 };

/**
 * The scale curve of one cluster case: one row per client count, in the order run (rising
 * counts, as `--clients` gives them), checked
 * against issue 14's targets: throughput does not fall from one count to the next (`ok` or
 * `FALLS`, with the ratio to the previous count), and the p99 at 512 clients is at most
 * 10 ms (`≤ 10: ok` or `≤ 10: OVER`).
 * @param runs the case's runs
 * @returns the table rows
 */
export function scaleRows(runs: ClusterRun[]): Record<string, string | number>[] {
  return runs.map((run, i) => {
    const r = run.result;
    const previous = runs[i - 1]?.result;
    const ratio = previous === undefined ? undefined : r.commitsPerSec / previous.commitsPerSec;
    const grows = ratio === undefined ? "" : `${ratio >= 1 ? "ok" : "FALLS"} ×${round(ratio, 2)}`;
    const limited = r.clients === SCALE_P99_LIMIT.clients;
    return {
      clients: r.clients,
      "commits/s": r.commitsPerSec,
      "p50 ms": r.p50Ms,
      "p99 ms": r.p99Ms,
      errors: r.errors,
      "throughput vs previous": grows,
      "p99 limit ms": limited
        ? `≤ ${SCALE_P99_LIMIT.p99Ms}: ${r.p99Ms <= SCALE_P99_LIMIT.p99Ms ? "ok" : "OVER"}`
        : "",
    };
  });
}

function printResults(
  results: BenchResults,
  profilePrefix: string | undefined,
  previous?: BenchResults,
): void {
  const { fdatasync, loopbackRtt } = results.limits;
  console.log(`\ntsraft benchmarks (${results.runtime}${results.quick ? ", --quick" : ""})`);
  if (fdatasync) {
    console.log(
      `disk: write 256 B + fdatasync ${fdatasync.perSec}/s, p50 ${fdatasync.p50Ms} ms, p99 ${fdatasync.p99Ms} ms`,
    );
  }
  if (results.limits.fdatasync3) {
    const three = results.limits.fdatasync3;
    console.log(
      `disk, 3 writers at once: ${three.perSec}/s in total, p50 ${three.p50Ms} ms, p99 ${three.p99Ms} ms`,
    );
  }
  if (loopbackRtt) {
    console.log(
      `loopback node:net round trip between processes: ${loopbackRtt.perSec}/s, p50 ${
        round(loopbackRtt.p50Ms * 1000, 1)
      } µs, p99 ${round(loopbackRtt.p99Ms * 1000, 1)} µs`,
    );
  }
  const rows = clusterRows(results);
  if (rows.length > 0) console.table(rows);
  const scale = results.clusters.b;
  if (scale !== undefined) {
    console.log(
      `\nscale curve of (b) ${scale.label}, 3 processes, clients in the leader ` +
        `(issue 14: throughput must not fall as clients grow; p99 at ${SCALE_P99_LIMIT.clients} ` +
        `clients ≤ ${SCALE_P99_LIMIT.p99Ms} ms):`,
    );
    console.table(scaleRows(scale.runs));
  }
  if (results.kvService) {
    printKvService(results.kvService, previous?.kvService, previous?.date);
  }
  for (const [key, cluster] of Object.entries(results.clusters)) {
    for (const run of cluster.runs) {
      if (run.leader === undefined) continue;
      const leader = run.leader as Record<string, Record<string, number> | number | string>;
      const saves = leader.saves as Record<string, number>;
      const sent = leader.appendsSent as Record<string, number>;
      const follower = (run.followers?.[0] ?? {}) as Record<string, Record<string, number>>;
      const handled = follower.appendsHandled ?? {};
      const followerSaves = follower.saves ?? {};
      console.log(
        `  (${key}) ${run.result.clients} client(s): leader CPU ${leader.cpuPercent}%, ` +
          `saves ${saves.count} (${saves.itemsPerOp} entries each, p50 ${saves.p50Ms} ms), ` +
          `AppendEntries ${sent.count} (${sent.itemsPerOp} entries each, RTT p50 ${sent.p50Ms} ms), ` +
          `follower handles AE in p50 ${handled.p50Ms} ms with ${followerSaves.count} saves ` +
          `(p50 ${followerSaves.p50Ms} ms), follower CPU ${follower.cpuPercent}%, ` +
          `leader changes ${run.leaderChanges}`,
      );
      const parts = run.appendBreakdown;
      if (parts !== undefined && parts.count > 0) {
        console.log(
          `      AppendEntries p50/p99 ms: leader→follower ${parts.requestMs.join("/")}, ` +
            `in follower ${parts.handlingMs.join("/")}, follower→leader ${
              parts.responseMs.join("/")
            } (${parts.count} traced)`,
        );
      }
    }
  }
  if (results.failover) printFailover(results.failover);
  if (results.memory) printMemory(results.memory);
  for (const [key, figures] of Object.entries(results.micro)) {
    console.log(`\nmicro-benchmark ${key}:`);
    for (const [name, value] of Object.entries(figures)) {
      console.log(`  ${name.padEnd(40)} ${value}`);
    }
  }
  if (results.errors.length > 0) {
    console.log(`\n${results.errors.length} section(s) failed:`);
    for (const error of results.errors) console.log(`  ${error.split("\n")[0]}`);
  }
  if (profilePrefix !== undefined) console.log(`\nCPU profiles: ${profilePrefix}*.cpuprofile`);
}

async function printProfiles(prefix: string, results: BenchResults): Promise<void> {
  const paths = Object.keys(results.clusters).filter((key) => key !== "a")
    .flatMap((key) =>
      results.clientCounts.map((clients) => `${prefix}${key}-c${clients}.cpuprofile`)
    );
  paths.push(...results.kvService?.profiles ?? []);
  for (const path of paths) {
    let profile: CpuProfile;
    try {
      profile = JSON.parse(await readFile(path, "utf8")) as CpuProfile;
    } catch {
      continue;
    }
    const summary = summarizeProfile(profile, 12);
    console.log(
      `\nleader profile ${path}: ${summary.totalMs} ms sampled, idle ${summary.idlePercent}%`,
    );
    console.log("  hottest functions (self time):");
    for (const spot of summary.functions) {
      console.log(`    ${String(spot.percent).padStart(5)}%  ${spot.name}`);
    }
    console.log("  by file:");
    for (const spot of summary.files.slice(0, 8)) {
      console.log(`    ${String(spot.percent).padStart(5)}%  ${spot.name}`);
    }
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      profile: { type: "boolean", default: false },
      dir: { type: "string" },
      "max-inflight": { type: "string" },
      "kv-baseline": { type: "string" },
      clients: { type: "string" },
      trials: { type: "string" },
      "election-timeout-ms": { type: "string" },
      commands: { type: "string" },
      "snapshot-threshold": { type: "string" },
    },
  });
  const integer = (name: string, text: string | undefined, min: number) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      console.error(`--${name} takes an integer of at least ${min}, not "${text}"`);
      process.exit(2);
    }
    return value;
  };
  const clientCounts = values.clients?.split(",").map((part) =>
    integer("clients", part.trim(), 1)!
  );
  const trials = integer("trials", values.trials, 1);
  const electionTimeoutMs = integer("election-timeout-ms", values["election-timeout-ms"], 1);
  const commands = integer("commands", values.commands, 10);
  const snapshotThreshold = integer("snapshot-threshold", values["snapshot-threshold"], 0);
  await mkdir(".bench", { recursive: true });
  // The last run's figures, printed beside this run's (case e).
  const previous = await readFile(".bench/results.json", "utf8").then(
    (text) => JSON.parse(text) as BenchResults,
    () => undefined,
  );
  const profilePrefix = values.profile ? ".bench/" : undefined;
  const results = await runBenchmarks({
    quick: values.quick,
    ...(values.only ? { only: values.only.split(",").map((s) => s.trim()) } : {}),
    ...(profilePrefix ? { profilePrefix } : {}),
    ...(values.dir ? { dir: values.dir } : {}),
    ...(values["max-inflight"] ? { maxInflightMessages: Number(values["max-inflight"]) } : {}),
    ...(values["kv-baseline"] ? { kvBaseline: values["kv-baseline"] } : {}),
    ...(clientCounts ? { clientCounts } : {}),
    ...(trials === undefined ? {} : { trials }),
    ...(electionTimeoutMs === undefined ? {} : { electionTimeoutMs }),
    ...(commands === undefined ? {} : { commands }),
    ...(snapshotThreshold === undefined ? {} : { snapshotThreshold }),
  });
  printResults(results, profilePrefix, previous);
  if (profilePrefix) await printProfiles(profilePrefix, results);
  await writeFile(".bench/results.json", JSON.stringify(results, null, 2) + "\n");
  console.log("\nwrote .bench/results.json");
  // Adapters may keep sockets or timers alive; the suite is done.
  process.exit(results.errors.length > 0 ? 1 : 0);
}
