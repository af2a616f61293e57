/**
 * The tsraft benchmark suite, in one run: commits/s and p50/p99 commit latency of a 3-node
 * cluster for 1 and 32 closed-loop clients,
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
 * them; then the adapters' micro-benchmarks. Prints tables and writes everything to
 * `.bench/results.json`.
 *
 * Run: `deno task bench [--quick] [--only a,b,c,d,e,limits,micro|tcp,http,file,kv]
 * [--profile] [--dir DIR] [--max-inflight N] [--kv-baseline REV]`.
 * `--profile` writes a CPU profile of the leader of (b)-(e) per run to
 * `.bench/<case>-c<clients>.cpuprofile` and prints its hottest functions.
 * `--kv-baseline REV` also runs (e) on the kv service of git revision REV, case by case
 * beside the current one.
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
  limits: { fdatasync?: Limit; fdatasync3?: Limit; loopbackRtt?: Limit };
  clusters: Partial<Record<ClusterKey, { label: string; runs: ClusterRun[] }>>;
  micro: Record<string, Record<string, number>>;
  /** Case (e), the kv example service over HTTP. */
  kvService?: KvServiceResults;
  errors: string[];
}

/** Options of {@link runBenchmarks}. */
export interface RunOptions {
  quick?: boolean;
  /** Sections to run: a, b, c, d, e, limits, micro, tcp, http, file, kv. @default all */
  only?: string[];
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
  const only = new Set(options.only ?? ["a", "b", "c", "d", "e", "limits", "micro"]);
  const wants = (key: string) => only.has(key);
  const dir = options.dir ?? tmpdir();
  const durations = quick
    ? { durationMs: 800, warmupMs: 200, limitMs: 500 }
    : { durationMs: 5000, warmupMs: 1000, limitMs: 2000 };
  const results: BenchResults = {
    date: new Date().toISOString(),
    runtime: runtimeName(),
    quick,
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

  const clientCounts = [1, 32];
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
    .flatMap((key) => [1, 32].map((clients) => `${prefix}${key}-c${clients}.cpuprofile`));
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
    },
  });
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
  });
  printResults(results, profilePrefix, previous);
  if (profilePrefix) await printProfiles(profilePrefix, results);
  await writeFile(".bench/results.json", JSON.stringify(results, null, 2) + "\n");
  console.log("\nwrote .bench/results.json");
  // Adapters may keep sockets or timers alive; the suite is done.
  process.exit(results.errors.length > 0 ? 1 : 0);
}
