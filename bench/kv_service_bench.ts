/**
 * Case (e): the kv example service (examples/kv) as its users run it: three
 * `examples/kv/main.ts` processes over TCP + FileStorage (fsync on), driven through the HTTP
 * client API by wrk, an external closed-loop load generator with keep-alive connections.
 * PUTs and linearizable GETs of 100-byte values, to the leader and through a follower; CPU
 * per request of the whole cluster from `/proc/<pid>/stat`.
 *
 * With `baseline` (a git revision), the kv service of that revision runs as a second cluster
 * beside the current one, and every case is measured on both, back to back, so a noisy
 * machine hurts both alike.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  freePorts,
  type LocalClusterSpec,
  NodeProcess,
  waitFor,
  waitForLeader,
} from "../examples/kv/node_process.ts";
import { type CpuProfile, InspectorSession } from "./_profile.ts";
import { ensureWrk, processCpuMs, runWrk, type WrkResult } from "./_wrk.ts";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
/** As in the other cluster benches: a loaded 2-core machine keeps its leader. */
const ELECTION_TIMEOUT_MS = 500;
/** Keys the load cycles through (wrk's default). */
const KEYS = 1000;

/** One measured case of the kv service. */
export interface KvServiceCase {
  /** e.g. `PUT leader`. */
  name: string;
  method: "GET" | "PUT";
  via: "leader" | "follower";
  clients: number;
}

/** The cases, in the order they run. */
export const KV_SERVICE_CASES: KvServiceCase[] = [
  { name: "PUT leader", method: "PUT", via: "leader", clients: 1 },
  { name: "PUT leader", method: "PUT", via: "leader", clients: 32 },
  { name: "GET leader", method: "GET", via: "leader", clients: 32 },
  { name: "PUT follower", method: "PUT", via: "follower", clients: 1 },
  { name: "PUT follower", method: "PUT", via: "follower", clients: 32 },
  { name: "GET follower", method: "GET", via: "follower", clients: 32 },
];

/** One case run on one build of the service. */
export interface KvServiceRun extends WrkResult {
  case: string;
  method: "GET" | "PUT";
  via: "leader" | "follower";
  /** `current`, or the baseline revision. */
  build: string;
  /** CPU of the three nodes per completed request, in µs. */
  clusterCpuUsPerRequest: number;
  /** CPU of the node the client talks to per request, in µs. */
  entryCpuUsPerRequest: number;
  /** CPU of the load generator per request, in µs. */
  loadCpuUsPerRequest: number;
  /** Share of one core each node used, leader first. */
  nodeCpuPercent: number[];
  /** Writes per log entry on the leader (NaN for a build without batching). */
  writesPerEntry: number;
  /** Mean time from proposing a batch entry to its result on the leader, in ms. */
  entryMs: number;
  /** Reads served per ReadIndex round on the leader. */
  readsPerRound: number;
  /** Requests per message on the follower's forwarding link. */
  forwardedPerMessage: number;
  /** Rounds the figures combine (rates and CPU over all, percentiles the median round's). */
  rounds: number;
}

/** The leader's batching counters (`service` of `GET /status`), if it reports them. */
async function serviceStats(node: NodeProcess): Promise<Record<string, number> | undefined> {
  try {
    const response = await fetch(`${node.url}/status`);
    const status = await response.json() as { service?: Record<string, number> };
    return status.service;
  } catch {
    return undefined;
  }
}

/** Options of {@link benchKvService}. */
export interface KvServiceOptions {
  durationMs: number;
  warmupMs: number;
  /** Where the data directories go. @default the OS temp dir */
  parentDir?: string;
  /** Git revision whose examples/kv to measure beside the current one. */
  baseline?: string;
  /** More clusters of the current build, each with extra node arguments (tuning). */
  variants?: { name: string; args: string[] }[];
  /** Write CPU profiles of the current build's leader to `${profilePath}-<case>.cpuprofile`. */
  profilePath?: string;
  /**
   * Split each case into this many rounds, interleaved across the builds; rates and CPU are
   * totals over the rounds, percentiles the median round's.
   * @default 1
   */
  rounds?: number;
  /** Cases to run. @default {@link KV_SERVICE_CASES} */
  cases?: KvServiceCase[];
  /** Progress lines. */
  say?: (line: string) => void;
}

/** The HTTP floor at one client count, with the server's CPU per request. */
export type HttpFloorRun = WrkResult & { cpuUsPerRequest: number };

/** Everything case (e) measured. */
export interface KvServiceResults {
  runs: KvServiceRun[];
  /** A bare `Deno.serve` answering "ok", driven the same way: the HTTP floor of this machine. */
  httpFloor: HttpFloorRun[];
  /** Paths of the CPU profiles written. */
  profiles: string[];
  /** Cases skipped because their cluster had no stable leader. */
  failures: string[];
}

/** A running 3-node kv service cluster of one build. */
export interface KvCluster {
  /** `current`, a baseline revision or a variant's name. */
  build: string;
  nodes: NodeProcess[];
  dataRoot: string;
}

/** Options of {@link startKvCluster}. */
export interface KvClusterOptions {
  /** Name of the build in reports. @default "current" */
  build?: string;
  /** Where the data directories go. @default the OS temp dir */
  parentDir?: string;
  /** Entry point of another build of the service. @default examples/kv/main.ts */
  mainPath?: string;
  /** Open node i's V8 inspector on port `inspectBase + i`. */
  inspectBase?: number;
  /** More arguments for every node. */
  nodeArgs?: string[];
  /** `--election-timeout-ms` of every node. @default 500 */
  electionTimeoutMs?: number;
  /** Keys written before it is returned, so reads of them find a value. @default 1000 */
  prefillKeys?: number;
}

/**
 * Starts three `examples/kv/main.ts` processes over TCP + FileStorage and waits for a leader.
 * @param options build, election timeout, keys to write first
 * @returns the cluster; stop it with {@link stopKvCluster}
 * @throws Error (after printing the nodes' output) when no leader is elected within 30 s
 */
export async function startKvCluster(options: KvClusterOptions = {}): Promise<KvCluster> {
  const build = options.build ?? "current";
  const ports = await freePorts(3, 1000);
  const dataRoot = await mkdtemp(join(options.parentDir ?? tmpdir(), "tsraft-kvbench-"));
  const inspectBase = options.inspectBase;
  const electionTimeoutMs = options.electionTimeoutMs ?? ELECTION_TIMEOUT_MS;
  const spec: LocalClusterSpec = {
    nodes: ports.map((port, i) => ({ id: `n${i + 1}`, port })),
    dataRoot,
    transport: "tcp",
    storage: "file",
    extraArgs: ["--election-timeout-ms", String(electionTimeoutMs), ...options.nodeArgs ?? []],
    ...(options.mainPath === undefined ? {} : { mainPath: options.mainPath }),
    ...(inspectBase === undefined
      ? {}
      : { runtimeArgs: (id: string) => [`--inspect=127.0.0.1:${inspectBase + Number(id[1])}`] }),
  };
  const nodes = spec.nodes.map((node) => new NodeProcess(spec, node.id));
  for (const node of nodes) node.start();
  try {
    const leader = await waitForLeader(nodes.map((node) => node.url), { timeoutMs: 30_000 });
    // Every key the GET cases read exists (404s would count as errors).
    const url = nodes.find((node) => node.id === leader.id)!.url;
    const keys = options.prefillKeys ?? KEYS;
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < keys) {
        const response = await fetch(`${url}/kv/k${next++}`, { method: "PUT", body: "v" });
        await response.body?.cancel();
      }
    }));
  } catch (error) {
    for (const node of nodes) console.error(`--- ${build} ${node.id}\n${node.output}`);
    await stopKvCluster({ build, nodes, dataRoot });
    throw error;
  }
  return { build, nodes, dataRoot };
}

/** Stops every node of `cluster` (SIGTERM) and removes its data. */
export async function stopKvCluster(cluster: KvCluster): Promise<void> {
  await Promise.all(cluster.nodes.map((node) => node.kill("SIGTERM")));
  await rm(cluster.dataRoot, { recursive: true, force: true });
}

/**
 * Extracts examples/kv of `revision` where it resolves the workspace's imports; a directory
 * holding a `main.ts` (a copy of examples/kv made by hand) is used as it is.
 */
async function extractBaseline(revision: string): Promise<string> {
  if (existsSync(join(revision, "main.ts"))) return join(revision, "main.ts");
  const dir = join(REPO_ROOT, ".bench", `baseline-${revision.replace(/[^\w.-]/g, "_")}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const archive = spawnSync("git", ["archive", revision, "examples/kv"], {
    cwd: REPO_ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (archive.status !== 0) {
    throw new Error(`git archive ${revision} failed: ${archive.stderr.toString()}`);
  }
  const tar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr.toString()}`);
  return join(dir, "examples", "kv", "main.ts");
}

async function roles(cluster: KvCluster): Promise<{ leader: NodeProcess; follower: NodeProcess }> {
  const status = await waitForLeader(cluster.nodes.map((node) => node.url), {
    timeoutMs: 60_000,
  });
  const leader = cluster.nodes.find((node) => node.id === status.id)!;
  // Followers must know the leader's address before we send them traffic to forward.
  const follower = cluster.nodes.find((node) => node !== leader)!;
  return { leader, follower };
}

/** Starts a bare Deno.serve in a child process. */
async function httpFloor(
  durationMs: number,
): Promise<HttpFloorRun[]> {
  const [port] = await freePorts(1);
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (deno === undefined) return [];
  const code = `Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen() {} }, ` +
    `async (r) => { await r.arrayBuffer(); return new Response("ok"); });`;
  const { spawn } = await import("node:child_process");
  const child = spawn(deno.execPath(), ["eval", code], { stdio: "ignore" });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => {
      try {
        await (await fetch(url)).arrayBuffer();
        return true;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000, message: "the HTTP floor server" });
    await runWrk({ url, method: "PUT", clients: 32, durationMs: 1000 });
    const out: HttpFloorRun[] = [];
    for (const clients of [1, 32]) {
      const before = processCpuMs(child.pid!);
      const result = await runWrk({ url, method: "PUT", clients, durationMs });
      const cpu = processCpuMs(child.pid!) - before;
      out.push({ ...result, cpuUsPerRequest: Math.round((cpu * 1000) / result.requests) });
    }
    return out;
  } finally {
    child.kill("SIGKILL");
  }
}

/**
 * Runs case (e).
 * @param options durations, baseline revision, profile path
 * @returns one run per case and build, and the machine's HTTP floor
 */
export async function benchKvService(options: KvServiceOptions): Promise<KvServiceResults> {
  ensureWrk();
  const say = options.say ?? (() => {});
  const parentDir = options.parentDir ?? tmpdir();
  const inspectBase = options.profilePath === undefined ? undefined : 19_330;
  const clusters: KvCluster[] = [];
  const killAll = () => clusters.forEach((c) => c.nodes.forEach((n) => void n.kill("SIGKILL")));
  process.once("exit", killAll);
  const results: KvServiceResults = { runs: [], httpFloor: [], profiles: [], failures: [] };
  try {
    say("  HTTP floor: bare Deno.serve under wrk ...");
    results.httpFloor = await httpFloor(options.durationMs);
    clusters.push(
      await startKvCluster({ parentDir, ...(inspectBase === undefined ? {} : { inspectBase }) }),
    );
    if (options.baseline !== undefined) {
      const mainPath = await extractBaseline(options.baseline);
      clusters.push(await startKvCluster({ build: options.baseline, parentDir, mainPath }));
    }
    for (const variant of options.variants ?? []) {
      clusters.push(
        await startKvCluster({ build: variant.name, parentDir, nodeArgs: variant.args }),
      );
    }
    const rounds = Math.max(1, options.rounds ?? 1);
    const roundMs = Math.max(1000, Math.round(options.durationMs / rounds));
    for (const spec of options.cases ?? KV_SERVICE_CASES) {
      // Each build's cluster, warmed up; then the rounds, interleaved across the builds so a
      // burst of load from elsewhere on the machine hurts them alike.
      const prepared: {
        cluster: KvCluster;
        leader: NodeProcess;
        entry: NodeProcess;
        measured: RoundMeasure[];
      }[] = [];
      for (const cluster of clusters) {
        try {
          const { leader, follower } = await roles(cluster);
          const entry = spec.via === "leader" ? leader : follower;
          say(`  ${cluster.build}: ${spec.name}, ${spec.clients} client(s) ...`);
          // Warm-up: JIT, keep-alive connections, forwarding links.
          await runWrk({
            url: entry.url,
            method: "PUT",
            clients: spec.clients,
            durationMs: options.warmupMs,
          });
          prepared.push({ cluster, leader, entry, measured: [] });
        } catch (error) {
          // An overloaded machine can leave a cluster electing for a while: skip the case.
          const message = `${cluster.build}: ${spec.name} c${spec.clients}: ${String(error)}`;
          results.failures.push(message);
          say(`  !! ${message}`);
        }
      }
      for (let round = 0; round < rounds; round++) {
        for (const item of prepared) {
          const profile = inspectBase !== undefined && item.cluster.build === "current" &&
              round === 0
            ? { base: inspectBase, prefix: options.profilePath!, paths: results.profiles }
            : undefined;
          item.measured.push(
            await measureRound(item.cluster, item.leader, item.entry, spec, roundMs, profile),
          );
        }
      }
      for (const item of prepared) {
        results.runs.push(combineRounds(item.cluster.build, spec, item.measured));
      }
    }
    return results;
  } finally {
    await Promise.all(clusters.map(stopKvCluster));
    process.off("exit", killAll);
  }
}

/** What one round of one case measured on one cluster. */
interface RoundMeasure {
  result: WrkResult;
  /** CPU ms of each node, leader first. */
  spentMs: number[];
  /** Index of the entry node in `spentMs`. */
  entryIndex: number;
  /** Deltas of the leader's and the entry node's service counters. */
  leader: Record<string, number>;
  entry: Record<string, number>;
}

async function measureRound(
  cluster: KvCluster,
  leader: NodeProcess,
  entry: NodeProcess,
  spec: KvServiceCase,
  durationMs: number,
  profile: { base: number; prefix: string; paths: string[] } | undefined,
): Promise<RoundMeasure> {
  const ordered = [leader, ...cluster.nodes.filter((node) => node !== leader)];
  const before = ordered.map((node) => processCpuMs(node.pid ?? -1));
  const leaderBefore = await serviceStats(leader);
  const entryBefore = await serviceStats(entry);
  // Profile the node the clients talk to, and the leader when that is another node.
  const profiled = profile === undefined ? [] : [...new Set([entry, leader])];
  const sessions = await Promise.all(profiled.map(async (node) => {
    const session = await InspectorSession.connect(profile!.base + Number(node.id[1]));
    await session.startProfiling();
    return session;
  }));
  const result = await runWrk({
    url: entry.url,
    method: spec.method,
    clients: spec.clients,
    durationMs,
  });
  for (const [i, session] of sessions.entries()) {
    const cpuProfile: CpuProfile = await session.stopProfiling();
    session.close();
    const role = profiled[i] === leader ? "leader" : "follower";
    const path = `${profile!.prefix}-${
      spec.name.replace(" ", "-").toLowerCase()
    }-c${spec.clients}-${role}.cpuprofile`;
    await writeFile(path, JSON.stringify(cpuProfile));
    profile!.paths.push(path);
  }
  const spentMs = ordered.map((node, i) => processCpuMs(node.pid ?? -1) - before[i]!);
  const diff = (after?: Record<string, number>, before?: Record<string, number>) =>
    Object.fromEntries(
      Object.keys(after ?? {}).map((key) => [key, (after?.[key] ?? NaN) - (before?.[key] ?? NaN)]),
    );
  return {
    result,
    spentMs,
    entryIndex: ordered.indexOf(entry),
    leader: diff(await serviceStats(leader), leaderBefore),
    entry: diff(await serviceStats(entry), entryBefore),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1] ?? NaN;
}

/** One run from a case's rounds: totals for rates and CPU, medians for the percentiles. */
function combineRounds(build: string, spec: KvServiceCase, rounds: RoundMeasure[]): KvServiceRun {
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const requests = sum(rounds.map((r) => r.result.requests));
  const elapsedMs = sum(rounds.map((r) => r.result.elapsedMs));
  const loadCpuMs = sum(rounds.map((r) => r.result.loadCpuMs));
  const spent = rounds[0]!.spentMs.map((_, i) => sum(rounds.map((r) => r.spentMs[i]!)));
  const leader = (key: string) => sum(rounds.map((r) => r.leader[key] ?? NaN));
  const entry = (key: string) => sum(rounds.map((r) => r.entry[key] ?? NaN));
  const perRequest = (ms: number) => requests > 0 ? Math.round((ms * 1000) / requests) : NaN;
  const ratio = (a: number, b: number, digits = 10) => Math.round((a / b) * digits) / digits;
  return {
    clients: spec.clients,
    requests,
    errors: sum(rounds.map((r) => r.result.errors)),
    statusErrors: sum(rounds.map((r) => r.result.statusErrors)),
    elapsedMs,
    requestsPerSec: Math.round(requests / (elapsedMs / 1000)),
    p50Ms: median(rounds.map((r) => r.result.p50Ms)),
    p90Ms: median(rounds.map((r) => r.result.p90Ms)),
    p99Ms: median(rounds.map((r) => r.result.p99Ms)),
    maxMs: Math.max(...rounds.map((r) => r.result.maxMs)),
    meanMs: Math.round(
      sum(rounds.map((r) => r.result.meanMs * r.result.requests)) / requests *
        1000,
    ) / 1000,
    loadCpuMs,
    rounds: rounds.length,
    case: spec.name,
    method: spec.method,
    via: spec.via,
    build,
    clusterCpuUsPerRequest: perRequest(sum(spent)),
    entryCpuUsPerRequest: perRequest(spent[rounds[0]!.entryIndex]!),
    loadCpuUsPerRequest: perRequest(loadCpuMs),
    nodeCpuPercent: spent.map((ms) => Math.round((ms / elapsedMs) * 100)),
    writesPerEntry: ratio(leader("writes"), leader("batches")),
    entryMs: ratio(leader("batchMs"), leader("batches"), 100),
    // A follower counts its own rounds (read indexes asked of the leader).
    readsPerRound: spec.via === "leader"
      ? ratio(leader("reads"), leader("readRounds"))
      : ratio(entry("reads"), entry("readRounds")),
    forwardedPerMessage: ratio(entry("forwarded"), entry("forwardMessages")),
  };
}

/** The targets of issue 14 for case (e). */
export const KV_SERVICE_TARGETS = {
  putPerSec32: 15_000,
  putP99Ms32: 5,
  getPerSec32: 20_000,
  followerLatencyRatio: 1.5,
};

/**
 * @param results case (e)'s runs
 * @param previous the runs of an earlier bench (`.bench/results.json`), shown beside
 * @returns table rows: one per case and build, with the targets beside the figures
 */
export function kvServiceRows(
  results: KvServiceResults,
  previous?: KvServiceResults,
): Record<string, string | number>[] {
  const t = KV_SERVICE_TARGETS;
  const find = (build: string, name: string, clients: number) =>
    results.runs.find((r) => r.build === build && r.case === name && r.clients === clients);
  return results.runs.map((run) => {
    let target = "";
    if (run.case === "PUT leader" && run.clients === 32) {
      target = `≥ ${t.putPerSec32}/s, p99 ≤ ${t.putP99Ms32} ms`;
    } else if (run.case.startsWith("GET") && run.clients === 32) target = `≥ ${t.getPerSec32}/s`;
    let ratio: string | number = "";
    if (run.via === "follower") {
      const direct = find(run.build, run.case.replace("follower", "leader"), run.clients);
      if (direct !== undefined) ratio = Math.round((run.p50Ms / direct.p50Ms) * 100) / 100;
      target = `p50 ≤ ${t.followerLatencyRatio}× leader's`;
    }
    const before = previous?.runs.find((r) =>
      r.build === run.build && r.case === run.case && r.clients === run.clients
    );
    return {
      build: run.build,
      case: run.case,
      clients: run.clients,
      "req/s": run.requestsPerSec,
      "p50 ms": run.p50Ms,
      "p99 ms": run.p99Ms,
      "errors (non-2xx)": `${run.errors} (${run.statusErrors ?? "?"})`,
      "÷ leader p50": ratio,
      "cluster CPU µs/req": run.clusterCpuUsPerRequest,
      "entry node µs/req": run.entryCpuUsPerRequest,
      "wrk µs/req": run.loadCpuUsPerRequest,
      "node CPU %": run.nodeCpuPercent.join("/"),
      "writes/entry": run.method === "PUT" && Number.isFinite(run.writesPerEntry)
        ? run.writesPerEntry
        : "",
      "entry ms": run.method === "PUT" && Number.isFinite(run.entryMs) ? run.entryMs : "",
      "reads/round": run.method === "GET" && Number.isFinite(run.readsPerRound)
        ? run.readsPerRound
        : "",
      "fwd/msg": run.via === "follower" && Number.isFinite(run.forwardedPerMessage)
        ? run.forwardedPerMessage
        : "",
      ...(previous === undefined
        ? {}
        : { "previous req/s, p50": before ? `${before.requestsPerSec}, ${before.p50Ms}` : "" }),
      target,
    };
  });
}

/**
 * Prints case (e): the HTTP floor, then one row per case and build with its target.
 * @param kv what {@link benchKvService} measured
 * @param previous an earlier run's figures, printed beside
 * @param previousDate when that run was
 */
export function printKvService(
  kv: KvServiceResults,
  previous?: KvServiceResults,
  previousDate?: string,
): void {
  console.log(
    "\n(e) kv service over its HTTP API: 3 processes, TCP + FileStorage, fsync on, " +
      "wrk keep-alive closed-loop clients, 100 B values",
  );
  for (const floor of kv.httpFloor) {
    console.log(
      `  HTTP floor (bare Deno.serve, same wrk) ${floor.clients} client(s): ` +
        `${floor.requestsPerSec}/s, p50 ${floor.p50Ms} ms, p99 ${floor.p99Ms} ms, ` +
        `server ${floor.cpuUsPerRequest} µs CPU/req, wrk ${
          Math.round((floor.loadCpuMs * 1000) / floor.requests)
        } µs/req`,
    );
  }
  if (previous !== undefined) console.log(`  previous figures: the run of ${previousDate ?? "?"}`);
  console.table(kvServiceRows(kv, previous));
  for (const failure of kv.failures) console.log(`  skipped: ${failure}`);
}

if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  // Standalone: `deno run -A bench/kv_service_bench.ts [--baseline REV] [--quick]`.
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      baseline: { type: "string" },
      quick: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      cases: { type: "string" },
      rounds: { type: "string" },
      variant: { type: "string", multiple: true },
    },
  });
  await mkdir(".bench", { recursive: true });
  const results = await benchKvService({
    durationMs: values.quick ? 1000 : 5000,
    rounds: Number(values.rounds ?? (values.quick ? 1 : 3)),
    warmupMs: values.quick ? 1000 : 1000,
    say: (line) => console.log(line),
    ...(values.baseline === undefined ? {} : { baseline: values.baseline }),
    ...(values.profile ? { profilePath: ".bench/e" } : {}),
    // --variant 'inflight4=--batch-inflight 4'
    variants: (values.variant ?? []).map((text) => {
      const [name, args] = text.split("=", 2);
      return { name: name!, args: (args ?? "").split(" ").filter((arg) => arg !== "") };
    }),
    ...(values.cases === undefined ? {} : {
      cases: KV_SERVICE_CASES.filter((c) =>
        values.cases!.split(",").includes(`${c.name} c${c.clients}`)
      ),
    }),
  });
  printKvService(results);
  const { summarizeProfile } = await import("./_profile.ts");
  const { readFile } = await import("node:fs/promises");
  for (const path of results.profiles) {
    const summary = summarizeProfile(JSON.parse(await readFile(path, "utf8")) as CpuProfile, 25);
    console.log(`\n${path}: ${summary.totalMs} ms sampled, idle ${summary.idlePercent}%`);
    for (const spot of summary.functions) {
      console.log(`  ${String(spot.percent).padStart(5)}%  ${spot.name}`);
    }
  }
  await writeFile(".bench/kv_service.json", JSON.stringify(results, null, 2) + "\n");
  process.exit(0);
}
