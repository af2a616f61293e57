/**
 * `deno task chaos`: a real-process chaos test of examples/kv. N nodes run as separate
 * processes in their own network namespaces, joined by a bridge; a nemesis cuts the network
 * with iptables (partitions, one-way drops, packet loss), kills nodes with SIGKILL and freezes
 * them with SIGSTOP while concurrent clients read and write over HTTP. At the end the history the clients saw is
 * checked with the linearizability checker of `@tsraft/sim`. Linux and root only;
 * elsewhere it prints why it is skipped and exits 0. `--help` lists the options.
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import type { ServerStats } from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import {
  checkLinearizability,
  HistoryRecorder,
  type KvInput,
  kvModel,
  type KvOutput,
} from "@tsraft/sim";
import { type AttemptRecord, newClientStats, runClient } from "./_chaos_client.ts";
import { ChaosNet, chaosUnsupported, run } from "./_chaos_net.ts";
import { CHAOS_PORT, ChaosNode } from "./_chaos_node.ts";
import { fetchStatus, MAIN_PATH, type NodeStatus, waitFor } from "./kv/node_process.ts";

const HELP = `Usage: deno task chaos [options] [-- extra node options]

Runs N examples/kv nodes in network namespaces (Linux, root), injects faults chosen by a
seed (iptables partitions, one-way drops and packet loss, kill -9 and restart, SIGSTOP
pauses) while
concurrent clients read and write, then checks the history for linearizability.
Exits 0 when the history is linearizable (or the test cannot run here), 1 when it is not.

  --nodes N              number of nodes (default 3)
  --duration S           seconds of faults and client load (default 30)
  --minutes M            the same in minutes (a soak: --minutes 10 --nodes 5)
  --seed N               seed of the fault schedule and the clients (default: random)
  --clients N            concurrent clients (default 6)
  --keys N               number of keys (default 5)
  --transport tcp|http   raft transport (default tcp)
  --storage file|kv      storage (default file)
  --faults LIST          fault kinds, comma-separated (default all): partition,
                         isolate-leader, bridge, one-way, loss, kill, kill-leader, kill-all,
                         pause, pause-leader (SIGSTOP for 2-6 s, then SIGCONT),
                         disk-full (a node restarts on a small tmpfs that fills up: it
                         must fail-stop; then its data goes back to disk and it restarts),
                         disk-eio (writes and fsyncs under a node's data directory fail with
                         EIO, through an LD_PRELOAD shim built with cc: it must fail-stop;
                         then writes work again and it restarts),
                         transfer (leadership transfer through the admin API),
                         add-node (a fresh node, empty data directory, joins: it needs a
                         snapshot), remove-node, remove-leader (membership stays between
                         N and N+1; a removed node is stopped and comes back fresh)
  --attempt-timeout-ms N limit of one HTTP request (default 1500)
  --op-timeout-ms N      limit of one operation over its retries; a write still
                         unanswered then has an unknown outcome (default 4000)
  --check-timeout-ms N   budget of the linearizability check (default 60000)
  --lease-reads          nodes run with --lease-reads: the leader answers reads from its
                         lease (its own monotonic clock) while it holds, with no heartbeat
                         round; pauses and transfers are what put a lease to the test
  --local-reads          clients read with ?local (a node's possibly stale copy): a
                         deliberate bug, to see the check catch stale reads
  --keep                 keep the data directory, logs and history
  -h, --help             this text

Anything after -- is passed to every node (e.g. -- --election-timeout-ms 500).`;

const NETWORK_FAULTS = ["partition", "isolate-leader", "bridge", "one-way", "loss"] as const;
const PROCESS_FAULTS = [
  "kill",
  "kill-leader",
  "kill-all",
  "pause",
  "pause-leader",
  "disk-full",
  "disk-eio",
] as const;
const ADMIN_FAULTS = ["transfer", "add-node", "remove-node", "remove-leader"] as const;
const MEMBERSHIP_FAULTS: readonly FaultKind[] = ["add-node", "remove-node", "remove-leader"];
/**
 * Writes under the victim's data directory fail with EIO while it runs: it must fail-stop
 * (a later fsync cannot be trusted after a failed one, so there is no retrying). Then writes
 * work again and it restarts from what its storage holds.
 */
async function eioFault(
  victim: ChaosNode,
  wasLeader: boolean,
  end: number,
  record: FaultRecord,
): Promise<void> {
  if (eioShim === undefined) {
    record.detail = `${victim.id}: not injected: ${eioUnavailable}`;
    console.log(`${clock()} fault disk-eio: ${record.detail}`);
    return;
  }
  console.log(
    `${clock()} fault disk-eio: writes under ${victim.id}${
      wasLeader ? " (leader)" : ""
    }'s data directory fail with EIO`,
  );
  const startedAt = performance.now();
  const stopped = victim.waitForLine(FAIL_STOP_LINE, Math.max(8000, end - performance.now()));
  victim.failWrites(true);
  const line = await stopped;
  const afterS = ((performance.now() - startedAt) / 1000).toFixed(1);
  const status = await fetchStatus(victim.url, 1000);
  let outcome: string;
  if (line !== undefined) {
    outcome = `fail-stop after ${afterS} s ("${line.trim().slice(0, 120)}"), then ${
      status === undefined ? "no answer" : `state ${status.state}`
    }`;
    if (status !== undefined && (status.state === "leader" || status.state === "follower")) {
      diskProblems.push(`${victim.id} logged a fail-stop but still runs as ${status.state}`);
    }
  } else {
    outcome = `no fail-stop within ${afterS} s (state ${status?.state ?? "?"})`;
    if (
      performance.now() < end && status !== undefined &&
      (status.state === "leader" || status.state === "follower")
    ) {
      diskProblems.push(`${victim.id} runs as ${status.state} while its writes fail with EIO`);
    }
  }
  await victim.kill();
  victim.failWrites(false);
  if (victim.member) victim.start();
  record.endS = seconds();
  record.detail = `${victim.id}: ${outcome}; restarted`;
  console.log(`${clock()} disk-eio: ${record.detail}`);
}

/** The built EIO shim, when `cc` could build it. */
let eioShim: string | undefined;
/** Why the EIO shim is not there. */
let eioUnavailable = "";

/** Builds examples/_chaos_eio.c into the data root (needs `cc`). */
async function buildEioShim(root: string): Promise<void> {
  const source = fileURLToPath(new URL("./_chaos_eio.c", import.meta.url));
  const output = join(root, "chaos_eio.so");
  const built = await run("cc", ["-shared", "-fPIC", "-O2", "-o", output, source, "-ldl"], {
    timeoutMs: 60_000,
  });
  if (built.code === 0) eioShim = output;
  else eioUnavailable = `cannot build the EIO shim with cc: ${built.stderr.trim().slice(0, 200)}`;
}

/** The line a node prints when a storage write fails and it stops (Server's fail-stop). */
const FAIL_STOP_LINE = /write failed, stopping|failed, stopping/;

/** Disk faults that went wrong: a node that kept running on a full disk. */
const diskProblems: string[] = [];
/** Fail-stops outside a disk fault: a storage write that failed on a healthy disk. */
const unexpectedStops: string[] = [];

type FaultKind =
  | (typeof NETWORK_FAULTS)[number]
  | (typeof PROCESS_FAULTS)[number]
  | (typeof ADMIN_FAULTS)[number];

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    nodes: { type: "string", default: "3" },
    duration: { type: "string", default: "30" },
    minutes: { type: "string" },
    seed: { type: "string" },
    clients: { type: "string", default: "6" },
    keys: { type: "string", default: "5" },
    transport: { type: "string", default: "tcp" },
    storage: { type: "string", default: "file" },
    faults: { type: "string" },
    "check-timeout-ms": { type: "string", default: "60000" },
    "attempt-timeout-ms": { type: "string", default: "1500" },
    "op-timeout-ms": { type: "string", default: "4000" },
    keep: { type: "boolean", default: false },
    "local-reads": { type: "boolean", default: false },
    "lease-reads": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});

function fail(message: string): never {
  console.error(`${message}\n\n${HELP}`);
  process.exit(2);
}

function integer(text: string, name: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    fail(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const nodeCount = integer(values.nodes, "--nodes", 1, 9);
const durationMs = values.minutes === undefined
  ? integer(values.duration, "--duration", 1, 24 * 3600) * 1000
  : integer(values.minutes, "--minutes", 1, 24 * 60) * 60_000;
const seed = values.seed === undefined
  ? Math.floor(Math.random() * 0x7fff_ffff)
  : integer(values.seed, "--seed", 0, 0xffff_ffff);
const clientCount = integer(values.clients, "--clients", 1, 64);
const keyCount = integer(values.keys, "--keys", 1, 1000);
const attemptTimeoutMs = integer(values["attempt-timeout-ms"], "--attempt-timeout-ms", 1, 600_000);
const opTimeoutMs = integer(values["op-timeout-ms"], "--op-timeout-ms", 1, 600_000);
const checkTimeoutMs = integer(values["check-timeout-ms"], "--check-timeout-ms", 1, 3_600_000);
if (values.transport !== "tcp" && values.transport !== "http") fail("--transport is tcp or http");
if (values.storage !== "file" && values.storage !== "kv") fail("--storage is file or kv");
const transport: "tcp" | "http" = values.transport;
const storage: "file" | "kv" = values.storage;
const allFaults: readonly FaultKind[] = [...NETWORK_FAULTS, ...PROCESS_FAULTS, ...ADMIN_FAULTS];
const enabled = new Set<FaultKind>(
  values.faults === undefined ? allFaults : values.faults.split(",").map((name) => {
    if (!allFaults.includes(name as FaultKind)) fail(`Unknown fault "${name}"`);
    return name as FaultKind;
  }),
);

const reason = await chaosUnsupported({ install: true });
if (reason !== undefined) {
  console.log(`chaos: skipped: ${reason}`);
  process.exit(0);
}

const started = performance.now();
/** Seconds since the start, for log lines. */
function clock(): string {
  return `[${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
}
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

const replay = [
  `--seed ${seed}`,
  `--nodes ${nodeCount}`,
  `--duration ${durationMs / 1000}`,
  `--clients ${clientCount}`,
  `--keys ${keyCount}`,
  `--transport ${transport}`,
  `--storage ${storage}`,
  `--attempt-timeout-ms ${attemptTimeoutMs}`,
  `--op-timeout-ms ${opTimeoutMs}`,
  ...(values.faults === undefined ? [] : [`--faults ${values.faults}`]),
  ...(values["local-reads"] ? ["--local-reads"] : []),
  ...(values["lease-reads"] ? ["--lease-reads"] : []),
  ...(positionals.length === 0 ? [] : ["--", ...positionals]),
].join(" ");
const readMode = values["local-reads"]
  ? "local (stale on purpose)"
  : values["lease-reads"]
  ? "lease"
  : "read index";
console.log(
  `chaos: seed ${seed}, ${nodeCount} nodes (${transport}, ${storage}), ${clientCount} clients, ` +
    `${keyCount} keys, reads: ${readMode}, ${durationMs / 1000} s\n` +
    `  replay: deno task chaos ${replay}`,
);
// The fault schedule and the clients' choices replay exactly from the seed; process timing
// (elections, which node leads when a fault strikes) does not, so a replay is close, not equal.

// Make sure every module a node needs is in the cache: inside a namespace there is no
// route to a registry.
await run(process.execPath, ["cache", "--unstable-kv", MAIN_PATH], { timeoutMs: 120_000 });

let net: ChaosNet | undefined;
let nodes: ChaosNode[] = [];
/** The client API URLs the clients use: the members'. */
let clientUrls: string[] = [];
let dataRoot: string | undefined;
let keepData = values.keep;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(nodes.map((node) => node.retire()));
    await net?.destroy();
    if (dataRoot !== undefined && !keepData) await rm(dataRoot, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.log(`\nchaos: ${signal}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** A fault as it is reported. */
interface FaultRecord {
  kind: FaultKind;
  detail: string;
  startS: number;
  endS?: number;
}

let exitCode = 0;
try {
  exitCode = await main();
} catch (error) {
  console.error(`chaos: error: ${error instanceof Error ? error.stack : String(error)}`);
  for (const node of nodes) console.error(`--- ${node.id} (last lines)\n${node.tail}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);

async function main(): Promise<number> {
  dataRoot = await mkdtemp(join(tmpdir(), `tsraft-chaos-${seed}-`));
  // One namespace more than the founders when membership changes: the node that comes and goes.
  const membership = nodeCount >= 3 && MEMBERSHIP_FAULTS.some((kind) => enabled.has(kind));
  net = await ChaosNet.create(nodeCount + (membership ? 1 : 0));
  if (enabled.has("disk-eio")) await buildEioShim(dataRoot);
  const spec = {
    ...(eioShim === undefined ? {} : { eioShim }),
    net,
    dataRoot,
    transport,
    storage,
    extraArgs: [
      ...(values["lease-reads"] ? ["--lease-reads"] : []),
      // Snapshots every few seconds of load, so a node that joins (or lags) needs one; the
      // nodes take the last occurrence of an option, so `-- --snapshot-threshold N` wins.
      "--snapshot-threshold",
      "200",
      "--trailing-log-entries",
      "50",
      ...positionals,
    ],
    founders: nodeCount,
    // The nodes' admin API listens on their namespace address, reachable from here only.
    adminToken: randomBytes(16).toString("hex"),
    onLine: (node: ChaosNode, line: string) => {
      if (FAIL_STOP_LINE.test(line) && !node.diskFault) {
        unexpectedStops.push(`${clock()} ${node.id}: ${line.trim()}`);
        console.log(`${clock()} ${node.id} stopped unexpectedly: ${line.trim()}`);
      }
    },
  };
  nodes = Array.from({ length: net.size }, (_, k) => new ChaosNode(spec, k + 1));
  console.log(
    `${clock()} network: bridge tsrc${net.slot}br, nodes ${
      nodes.map((node) => `${node.id}=${net!.address(node.index)}`).join(" ")
    }; data ${dataRoot}`,
  );
  for (const node of nodes) if (node.member) node.start();
  const first = await leader(30_000);
  console.log(`${clock()} leader ${first.id} in term ${first.term}`);

  const recorder = new HistoryRecorder<KvInput, KvOutput>({ now: () => performance.now() });
  const stats = newClientStats();
  const attempts: AttemptRecord[] = [];
  const faults: FaultRecord[] = [];
  const end = performance.now() + durationMs;
  // Changed in place as members come and go.
  clientUrls = nodes.filter((node) => node.member).map((node) => node.url);
  const urls = clientUrls;
  const keys = Array.from({ length: keyCount }, (_, k) => `k${k}`);
  const root = new SeededRandom(seed);
  const childSeed = () => Math.floor(root.next() * 0x1_0000_0000);

  const leaders = watchLeaders();
  const clients = Array.from({ length: clientCount }, (_, k) =>
    runClient({
      name: `c${k + 1}`,
      urls,
      keys,
      random: new SeededRandom(childSeed()),
      recorder,
      stats,
      keepGoing: () => performance.now() < end,
      attemptTimeoutMs,
      opTimeoutMs,
      thinkMs: 20,
      onAttempt: (attempt) => attempts.push(attempt),
      localReads: values["local-reads"],
    }));
  const networkRandom = new SeededRandom(childSeed());
  const processRandom = new SeededRandom(childSeed());
  const adminRandom = new SeededRandom(childSeed());
  const nemeses = [
    networkNemesis(networkRandom, end, faults),
    processNemesis(processRandom, end, faults),
    adminNemesis(adminRandom, end, faults),
  ];
  await Promise.all(nemeses);

  // Liveness phase: everything healed and running again.
  console.log(`${clock()} healing the network, restarting stopped nodes`);
  await net.heal();
  for (const node of nodes) node.resume();
  await settleMembership();
  // A node whose join did not go through is of no use to the final checks.
  for (const node of nodes) if (!node.member) await node.kill();
  for (const node of nodes) if (node.member && !node.running) node.start();
  // A fail-stopped node waits for its operator: restart it (the run fails anyway, see below).
  for (const node of nodes.filter((node) => node.member && node.running)) {
    if ((await fetchStatus(node.url, 1000))?.state === "stopped") {
      await node.kill();
      node.start();
    }
  }
  await Promise.all(clients);
  const final = await leader(30_000);
  console.log(`${clock()} leader ${final.id} in term ${final.term}; final reads`);
  const finalStats = newClientStats();
  for (const key of keys) {
    // The clients' own read path, through the leader, recorded in the same history.
    const before = recorder.history().length;
    await runClient({
      name: "final",
      urls: [final.leaderUrl ?? nodes.find((node) => node.id === final.id)!.url],
      keys: [key],
      random: new SeededRandom(0),
      recorder,
      stats: finalStats,
      keepGoing: (() => {
        let once = true;
        return () => once && !(once = false);
      })(),
      attemptTimeoutMs: 3000,
      opTimeoutMs: 15_000,
      thinkMs: 0,
      onAttempt: (attempt) => attempts.push(attempt),
      readOnly: true,
    });
    if (recorder.history().length === before) {
      throw new Error(
        `The final read of ${key} failed: ${JSON.stringify([...finalStats.failures])}`,
      );
    }
  }
  const divergence = await compareReplicas(keys);
  const leadership = await leaders.stop();

  // The check.
  const history = recorder.history();
  const checkStart = performance.now();
  const verdict = checkLinearizability(kvModel, history, { timeoutMs: checkTimeoutMs });
  const checkMs = performance.now() - checkStart;

  const writes = history.filter((op) => op.input.op !== "get");
  const unknown = history.filter((op) => op.return === undefined);
  const byOp = new Map<string, number>();
  for (const op of history) byOp.set(op.input.op, (byOp.get(op.input.op) ?? 0) + 1);
  const casOk = history.filter((op) => op.input.op === "cas" && op.output === true).length;
  const byFault = new Map<string, number>();
  for (const fault of faults) byFault.set(fault.kind, (byFault.get(fault.kind) ?? 0) + 1);
  const restarts = nodes.reduce((sum, node) => sum + Math.max(0, node.starts - 1), 0);
  const statuses = await Promise.all(nodes.map((node) => fetchStatus(node.url, 2000)));

  console.log(`
chaos report (seed ${seed}, ${nodeCount} nodes, ${transport} + ${storage}, reads: ${readMode})
  ops:        ${history.length} (${
    [...byOp].map(([op, n]) => `${op} ${n}`).join(", ")
  }; cas swapped ${casOk})
  operations: ${stats.ok + finalStats.ok} ok, ${stats.failed + finalStats.failed} failed, ${
    stats.unknown + finalStats.unknown
  } unknown (${unknown.length} of ${writes.length} writes in the history unanswered)
  attempts:   ${stats.attempts} HTTP requests, ${stats.duplicates} answered as duplicates
  failures:   ${
    [...stats.failures].sort((a, b) => b[1] - a[1]).map(([cause, n]) => `${cause} ${n}`)
      .join(", ") || "none"
  }
  faults:     ${faults.length} (${
    [...byFault].map(([kind, n]) => `${kind} ${n}`).join(", ")
  }), ${restarts} restarts
  leaders:    ${leadership.changes} leader changes seen, ${leadership.terms} terms with a leader, ${leadership.polls} status polls
  final:      leader ${final.id}, term ${final.term}, ${
    statuses.map((s) => s === undefined ? "?" : `${s.id} applied ${s.appliedIndex}`).join(", ")
  }
  check:      ${verdict.result} in ${checkMs.toFixed(0)} ms
  elapsed:    ${((performance.now() - started) / 1000).toFixed(1)} s`);

  let code = 0;
  if (stats.errors.length > 0) {
    console.log(`\nchaos: ${stats.errors.length} unexpected answers:`);
    for (const error of stats.errors.slice(0, 20)) console.log(`  ${error}`);
    code = 1;
  }
  if (unexpectedStops.length > 0) {
    console.log(`\nchaos: nodes stopped on their own (not in a disk fault):`);
    for (const line of unexpectedStops) console.log(`  ${line}`);
    code = 1;
  }
  if (diskProblems.length > 0) {
    console.log(`\nchaos: disk faults:`);
    for (const line of diskProblems) console.log(`  ${line}`);
    code = 1;
  }
  if (leadership.conflicts.length > 0) {
    console.log(`\nchaos: two leaders in one term:`);
    for (const line of leadership.conflicts) console.log(`  ${line}`);
    code = 1;
  }
  if (divergence.length > 0) {
    console.log(`\nchaos: replicas diverge after catching up:`);
    for (const line of divergence) console.log(`  ${line}`);
    code = 1;
  }
  if (verdict.result === "illegal") {
    console.log(
      `\nchaos: the history is NOT linearizable (seed ${seed})\n${verdict.explanation.message}`,
    );
    code = 1;
  } else if (verdict.result === "unknown") {
    console.log(`\nchaos: warning: the check gave up: ${verdict.reason}`);
  }
  if (code !== 0) {
    keepData = true;
    await writeFile(join(dataRoot, "history.json"), JSON.stringify(history));
    await writeFile(
      join(dataRoot, "attempts.jsonl"),
      attempts.map((attempt) => JSON.stringify(attempt)).join("\n") + "\n",
    );
    await writeFile(join(dataRoot, "faults.json"), JSON.stringify(faults, null, 1));
    console.log(`\nchaos: kept ${dataRoot} (node logs n*.log, history.json, attempts.jsonl)`);
  } else if (keepData) {
    await writeFile(join(dataRoot, "history.json"), JSON.stringify(history));
    console.log(`chaos: kept ${dataRoot}`);
  }
  console.log(`verdict: ${code === 0 ? verdict.result : "FAILED"}`);
  return code;
}

/** Waits until the running nodes agree on a leader. */
async function leader(timeoutMs: number): Promise<NodeStatus> {
  return await waitFor(async () => {
    const statuses = (await Promise.all(
      nodes.filter((node) => node.running).map((node) => fetchStatus(node.url, 1000)),
    )).filter((status): status is NodeStatus => status !== undefined);
    const found = statuses.find((status) => status.state === "leader");
    if (found === undefined || statuses.length < nodes.filter((node) => node.running).length) {
      return undefined;
    }
    return statuses.every((status) => status.term === found.term && status.leader === found.id)
      ? found
      : undefined;
  }, { timeoutMs, intervalMs: 100, message: "a leader every running node follows" });
}

/** What {@link watchLeaders} saw. */
interface LeadershipRecord {
  /** Times the leader seen changed (another node, or the same one in a new term). */
  changes: number;
  /** Distinct terms in which some node said it led. */
  terms: number;
  /** Rounds of /status requests. */
  polls: number;
  /** Terms in which two nodes said they led (Raft §5.2 allows one leader per term). */
  conflicts: string[];
}

/**
 * Polls every running node's /status a few times a second until stopped, counting leader
 * changes. Polling misses a leader that lasts less than a poll, so the count is a floor.
 */
function watchLeaders(): { stop(): Promise<LeadershipRecord> } {
  const byTerm = new Map<number, string>();
  const record: LeadershipRecord = { changes: 0, terms: 0, polls: 0, conflicts: [] };
  let last: string | undefined;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const statuses = await Promise.all(
        nodes.filter((node) => node.running && !node.paused).map((node) =>
          fetchStatus(node.url, 500)
        ),
      );
      record.polls++;
      let newest: NodeStatus | undefined;
      for (const status of statuses) {
        if (status?.state !== "leader") continue;
        const known = byTerm.get(status.term);
        if (known === undefined) byTerm.set(status.term, status.id);
        else if (known !== status.id) {
          record.conflicts.push(`term ${status.term}: ${known} and ${status.id}`);
        }
        if (newest === undefined || status.term > newest.term) newest = status;
      }
      const now = newest === undefined ? undefined : `${newest.id}@${newest.term}`;
      if (now !== undefined && now !== last) {
        if (last !== undefined) record.changes++;
        last = now;
      }
      await sleep(200);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      record.terms = byTerm.size;
      return record;
    },
  };
}

/** The node that claims leadership in the highest term, if any answers. */
async function currentLeader(): Promise<ChaosNode | undefined> {
  const statuses = await Promise.all(nodes.map((node) => fetchStatus(node.url, 500)));
  let best: NodeStatus | undefined;
  for (const status of statuses) {
    if (status?.state === "leader" && (best === undefined || status.term > best.term)) {
      best = status;
    }
  }
  return nodes.find((node) => node.id === best?.id);
}

function shuffled<T>(random: SeededRandom, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

function names(indexes: number[]): string {
  return `{${indexes.map((i) => `n${i}`).join(",")}}`;
}

/** Network faults one after another: each is held a while, then healed. */
async function networkNemesis(
  random: SeededRandom,
  end: number,
  faults: FaultRecord[],
): Promise<void> {
  const kinds = NETWORK_FAULTS.filter((kind) =>
    enabled.has(kind) && (kind !== "bridge" || nodeCount >= 3)
  );
  if (kinds.length === 0 || nodeCount < 2) return;
  const all = nodes.map((node) => node.index);
  for (;;) {
    await sleep(Math.min(500 + random.int(1500), end - performance.now()));
    if (performance.now() >= end) return;
    const kind = pick(random, kinds);
    const holdMs = 1000 + random.int(3000);
    let detail: string;
    switch (kind) {
      case "partition": {
        const order = shuffled(random, all);
        const cut = 1 + random.int(Math.floor(nodeCount / 2));
        const minority = order.slice(0, cut).sort();
        const majority = order.slice(cut).sort();
        await net!.partition([minority, majority]);
        detail = `${names(minority)} | ${names(majority)}`;
        break;
      }
      case "isolate-leader": {
        const target = (await currentLeader())?.index ?? pick(random, all);
        await net!.partition([[target], all.filter((i) => i !== target)]);
        detail = `${names([target])} | ${names(all.filter((i) => i !== target))}`;
        break;
      }
      case "bridge": {
        // Two halves that only one node (the bridge) can talk to both of.
        const order = shuffled(random, all);
        const middle = order[0]!;
        const half = Math.ceil((nodeCount - 1) / 2);
        const left = order.slice(1, 1 + half).sort();
        const right = order.slice(1 + half).sort();
        await net!.partition([[middle, ...left], [middle, ...right]].map((group) => group.sort()));
        detail = `${names(left)} - n${middle} - ${names(right)}`;
        break;
      }
      case "one-way": {
        const target = (await currentLeader())?.index ?? pick(random, all);
        const others = all.filter((i) => i !== target);
        if (random.chance(0.5)) {
          await net!.dropOneWay(others, [target]);
          detail = `n${target} hears nobody (its packets still leave)`;
        } else {
          await net!.dropOneWay([target], others);
          detail = `nobody hears n${target} (it still hears them)`;
        }
        break;
      }
      case "loss": {
        const p = 0.05 + random.next() * 0.25;
        await net!.loss(p);
        detail = `${(p * 100).toFixed(0)}% of packets between nodes lost`;
        break;
      }
    }
    const record: FaultRecord = { kind, detail, startS: seconds() };
    faults.push(record);
    console.log(`${clock()} fault ${kind}: ${detail}`);
    await sleep(Math.min(holdMs, end - performance.now()));
    if (kind === "loss") await net!.loss(0);
    else await net!.partition([all]);
    record.endS = seconds();
    console.log(`${clock()} healed ${kind}`);
  }
}

/**
 * Process faults one after another: kill -9 one or more nodes and restart them later, or
 * freeze one with SIGSTOP for a few seconds and let it go on (SIGCONT).
 */
async function processNemesis(
  random: SeededRandom,
  end: number,
  faults: FaultRecord[],
): Promise<void> {
  const kinds = PROCESS_FAULTS.filter((kind) => enabled.has(kind));
  if (kinds.length === 0) return;
  // A minority at most, so the cluster can still elect a leader (kill-all aside).
  const maxDown = Math.max(1, Math.floor((nodeCount - 1) / 2));
  for (;;) {
    await sleep(Math.min(1000 + random.int(2500), end - performance.now()));
    if (performance.now() >= end) return;
    // kill-all is rare: it stops the load for a few seconds every time.
    const kind = random.chance(0.1) || !kinds.includes("kill-all")
      ? pick(random, kinds)
      : pick(random, kinds.filter((k) => k !== "kill-all"));
    if (kind === "pause" || kind === "pause-leader") {
      await pauseFault(kind, random, end, faults);
      continue;
    }
    if (kind === "disk-full" || kind === "disk-eio") {
      await diskFault(kind, random, end, faults);
      continue;
    }
    const all = nodes.filter((node) => node.member && node.running).map((node) => node.index);
    if (all.length === 0) continue;
    let victims: number[];
    if (kind === "kill-all") victims = all;
    else if (kind === "kill-leader") {
      victims = [(await currentLeader())?.index ?? pick(random, all)];
    } else {
      victims = shuffled(random, all).slice(0, 1 + random.int(maxDown)).sort();
    }
    const downMs = 300 + random.int(2700);
    const record: FaultRecord = {
      kind,
      detail: `${names(victims)} for ${downMs} ms`,
      startS: seconds(),
    };
    faults.push(record);
    console.log(`${clock()} fault ${kind}: kill -9 ${record.detail}`);
    await Promise.all(victims.map((i) => nodes[i - 1]!.kill()));
    await sleep(Math.min(downMs, end - performance.now()));
    // A victim removed from the cluster meanwhile stays down (the membership nemesis owns it).
    for (const i of victims) {
      if (!nodes[i - 1]!.running && nodes[i - 1]!.member) nodes[i - 1]!.start();
    }
    record.endS = seconds();
    console.log(`${clock()} restarted ${names(victims)}`);
  }
}

/**
 * SIGSTOP one node for 2 to 6 seconds (well past an election timeout), then SIGCONT. Biased
 * toward the leader: `pause-leader` always takes it, `pause` half the time. A leader that
 * wakes up still believing it leads is what lease reads and stale answers are made of.
 */
async function pauseFault(
  kind: "pause" | "pause-leader",
  random: SeededRandom,
  end: number,
  faults: FaultRecord[],
): Promise<void> {
  const useLeader = kind === "pause-leader" || random.chance(0.5);
  const leaderNode = useLeader ? await currentLeader() : undefined;
  const candidates = nodes.filter((node) => node.running && node.member);
  const victim = leaderNode ?? (candidates.length === 0 ? undefined : pick(random, candidates));
  const pauseMs = 2000 + random.int(4000);
  if (victim === undefined || !victim.pause()) return;
  const record: FaultRecord = {
    kind,
    detail: `${victim.id}${leaderNode === undefined ? "" : " (leader)"} for ${pauseMs} ms`,
    startS: seconds(),
  };
  faults.push(record);
  console.log(`${clock()} fault ${kind}: SIGSTOP ${record.detail}`);
  await sleep(Math.min(pauseMs, end - performance.now()));
  victim.resume();
  record.endS = seconds();
  console.log(`${clock()} SIGCONT ${victim.id}`);
}

/**
 * Changes the cluster through the nodes' admin API, one change after another: leadership
 * transfers to a chosen or to the most caught-up follower, and membership changes that keep
 * between N and N+1 members: a fresh node joins, then a member (or the leader) leaves.
 */
async function adminNemesis(
  random: SeededRandom,
  end: number,
  faults: FaultRecord[],
): Promise<void> {
  const kinds = ADMIN_FAULTS.filter((kind) =>
    enabled.has(kind) && (kind === "transfer" || nodes.length > nodeCount)
  );
  if (kinds.length === 0 || nodeCount < 2) return;
  for (;;) {
    await sleep(Math.min(1000 + random.int(3000), end - performance.now()));
    if (performance.now() >= end) return;
    // Only the changes that keep the membership between N and N+1.
    const grown = nodes.filter((node) => node.member).length > nodeCount;
    const possible = kinds.filter((kind) =>
      kind === "transfer" || (kind === "add-node" ? !grown : grown)
    );
    if (possible.length === 0) continue;
    const kind = pick(random, possible);
    if (kind === "transfer") await transferFault(random, faults);
    else await membershipFault(kind, random, faults);
  }
}

async function transferFault(random: SeededRandom, faults: FaultRecord[]): Promise<void> {
  const from = await currentLeader();
  if (from === undefined) return;
  const others = nodes.filter((node) => node.member && node !== from);
  const to = random.chance(0.7) && others.length > 0 ? pick(random, others).id : undefined;
  const record: FaultRecord = { kind: "transfer", detail: "", startS: seconds() };
  const answer = await from.admin("/admin/transfer", to === undefined ? {} : { to }, 5000);
  record.endS = seconds();
  record.detail = `${from.id} -> ${to ?? "(most caught up)"}: ${outcome(answer)}`;
  faults.push(record);
  console.log(`${clock()} fault transfer: ${record.detail}`);
}

function outcome(answer: { status: number; body: Record<string, unknown> }): string {
  return answer.status === 200
    ? `ok, leader ${String(answer.body.leader)}`
    : `${answer.status} ${String(answer.body.error ?? "")} ${String(answer.body.reason ?? "")}`
      .trim();
}

/**
 * One membership change. With N+1 members it removes one (`remove-leader`: the leader, which
 * steps down once the change commits); with N it adds the node that is out, from an empty
 * data directory when it was removed before. Whatever the admin request answered, the
 * membership is then read from the leader, since a change can commit after its request
 * failed. A node is wiped only once its removal is seen committed: a member that forgot its
 * log and votes could break safety, a removed one cannot.
 */
async function membershipFault(
  kind: FaultKind,
  random: SeededRandom,
  faults: FaultRecord[],
): Promise<void> {
  await settleMembership();
  const members = nodes.filter((node) => node.member);
  const leaderNode = await currentLeader();
  if (leaderNode === undefined) return;
  const record: FaultRecord = { kind, detail: "", startS: seconds() };
  if (members.length > nodeCount) {
    if (kind === "add-node") return;
    // A node in a disk fault is the process nemesis's until the fault is over.
    const others = members.filter((node) => node !== leaderNode && !node.diskFault);
    const target = kind === "remove-leader" ? leaderNode : pick(random, others);
    if (target.diskFault || others.length === 0) return;
    // Clients stop using it first: answers from a node on its way out are not the point.
    clientUrls.splice(
      0,
      clientUrls.length,
      ...members.filter((n) => n !== target).map((n) => n.url),
    );
    console.log(`${clock()} fault ${kind}: removing ${target.id}`);
    const answer = await leaderNode.admin("/admin/remove-peer", { name: target.id }, 35_000);
    await settleMembership();
    record.endS = seconds();
    record.detail = `${target.id}${target === leaderNode ? " (leader)" : ""}: ${outcome(answer)}; ${
      target.member ? "still a member" : "removed, stopped"
    }`;
  } else {
    if (kind !== "add-node") return;
    const target = nodes.find((node) => !node.member && !node.diskFault);
    if (target === undefined) return;
    let fresh = false;
    if (!target.running) {
      // Only a node whose removal was seen committed is stopped and out (see above).
      target.wipe();
      target.joining = true;
      target.start();
      fresh = true;
    }
    console.log(`${clock()} fault add-node: adding ${target.id}${fresh ? " (empty data)" : ""}`);
    const answer = await leaderNode.admin("/admin/add-peer", {
      name: target.id,
      connectionString: `${net!.address(target.index)}:${CHAOS_PORT}`,
    }, 35_000);
    await settleMembership();
    const stats = await fetchRaftStats(target);
    record.endS = seconds();
    record.detail = `${target.id}${fresh ? " (empty data directory)" : ""}: ${outcome(answer)}; ${
      target.member ? "a member" : "not a member"
    }, snapshot chunks received ${stats?.received.snapshotRecoveryRequest.messages ?? "?"}`;
  }
  faults.push(record);
  console.log(`${clock()} ${kind}: ${record.detail}`);
}

/**
 * Reads the membership from the leader (waiting up to 15 s for one) and brings the nodes in
 * line: members are marked and offered to the clients; a node out of the configuration is
 * stopped, and its data may then be wiped.
 */
async function settleMembership(): Promise<void> {
  if (nodes.length === nodeCount) return;
  let members: string[] | undefined;
  const deadline = performance.now() + 15_000;
  while (members === undefined && performance.now() < deadline) {
    const leaderNode = await currentLeader();
    const stats = leaderNode === undefined ? undefined : await fetchRaftStats(leaderNode);
    if (stats?.state === "leader") members = stats.members;
    else await sleep(200);
  }
  if (members === undefined) return; // No leader to ask; try again at the next change.
  for (const node of nodes) {
    const member = members.includes(node.id);
    if (member === node.member) continue;
    node.member = member;
    if (!member) {
      node.joining = true;
      await node.kill();
    }
  }
  clientUrls.splice(
    0,
    clientUrls.length,
    ...nodes.filter((node) => node.member).map((node) => node.url),
  );
}

/** `server.stats()` of a node (GET /stats), or undefined when it does not answer. */
async function fetchRaftStats(node: ChaosNode): Promise<ServerStats | undefined> {
  try {
    const response = await fetch(`${node.url}/stats`, { signal: AbortSignal.timeout(1000) });
    if (!response.ok) return undefined;
    return ((await response.json()) as { raft: ServerStats }).raft;
  } catch {
    return undefined;
  }
}

/**
 * A full disk (ENOSPC): the victim (the leader half the time) restarts with its data
 * directory on a tmpfs with little room left (see ChaosNode.fillDisk) and must fail-stop
 * with a log line once a write fails. Then the fault is removed: its data, as it left it,
 * goes back to disk and it restarts.
 */
async function diskFault(
  kind: "disk-full" | "disk-eio",
  random: SeededRandom,
  end: number,
  faults: FaultRecord[],
): Promise<void> {
  // The disk fills only under load: no use starting when the clients are about to stop.
  if (end - performance.now() < 5000) return;
  const candidates = nodes.filter((node) => node.member && node.running && !node.paused);
  const leaderNode = random.chance(0.5) ? await currentLeader() : undefined;
  const victim = leaderNode ?? (candidates.length === 0 ? undefined : pick(random, candidates));
  if (victim === undefined || !victim.running || victim.paused) return;
  const record: FaultRecord = { kind, detail: "", startS: seconds() };
  faults.push(record);
  if (kind === "disk-eio") {
    await eioFault(victim, leaderNode !== undefined, end, record);
    return;
  }
  await victim.kill();
  let disk: { sizeBytes: number; freeBytes: number };
  try {
    disk = await victim.fillDisk({ freeBytes: 16 * 1024, minSizeBytes: 2 * 1024 * 1024 });
  } catch (error) {
    record.detail = `${victim.id}: not injected: ${String(error)}`;
    console.log(`${clock()} fault disk-full: ${record.detail}`);
    if (victim.member) victim.start();
    return;
  }
  console.log(
    `${clock()} fault disk-full: ${victim.id}${leaderNode === undefined ? "" : " (leader)"} ` +
      `restarts on a ${disk.sizeBytes}-byte tmpfs with ${disk.freeBytes} bytes free`,
  );
  const startedAt = performance.now();
  const stopped = victim.waitForLine(FAIL_STOP_LINE, Math.max(8000, end - performance.now()));
  victim.start();
  const line = await stopped;
  const afterS = ((performance.now() - startedAt) / 1000).toFixed(1);
  let outcome: string;
  if (line !== undefined) {
    const status = await fetchStatus(victim.url, 1000);
    outcome = `fail-stop after ${afterS} s ("${line.trim().slice(0, 120)}"), then ${
      status === undefined ? "no answer" : `state ${status.state}`
    }`;
    if (status !== undefined && (status.state === "leader" || status.state === "follower")) {
      diskProblems.push(`${victim.id} logged a fail-stop but still runs as ${status.state}`);
    }
  } else {
    const status = await fetchStatus(victim.url, 1000);
    const full = await victim.diskFreeBytes() === 0;
    outcome = `no fail-stop within ${afterS} s (state ${status?.state ?? "?"}, disk ${
      full ? "full" : "not full"
    })`;
    // While the clients still write, a node on a full disk must have hit ENOSPC on its log.
    if (
      full && performance.now() < end && status !== undefined &&
      (status.state === "leader" || status.state === "follower")
    ) {
      diskProblems.push(`${victim.id} runs as ${status.state} on a full disk with no fail-stop`);
    }
  }
  await victim.kill();
  await victim.clearDisk();
  if (victim.member) victim.start();
  record.endS = seconds();
  record.detail = `${victim.id}: ${outcome}; restarted on disk`;
  console.log(`${clock()} disk-full: ${record.detail}`);
}

function seconds(): number {
  return Math.round((performance.now() - started) / 100) / 10;
}

function members(): ChaosNode[] {
  return nodes.filter((node) => node.member);
}

/** After the nodes catch up, every replica must hold the same value for every key. */
async function compareReplicas(keys: string[]): Promise<string[]> {
  const target = await waitFor(async () => {
    const statuses = await Promise.all(members().map((node) => fetchStatus(node.url, 1000)));
    if (statuses.some((status) => status === undefined)) return undefined;
    const commit = Math.max(...statuses.map((status) => status!.commitIndex));
    return statuses.every((status) => status!.appliedIndex >= commit) ? commit : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200, message: "every replica applying the last commit" });
  const problems: string[] = [];
  for (const key of keys) {
    const copies = await Promise.all(
      members().map(async (node) => {
        const response = await fetch(`${node.url}/kv/${key}?local`, {
          signal: AbortSignal.timeout(2000),
        });
        const text = await response.text();
        return response.status === 200 ? text : response.status === 404 ? null : `?${text}`;
      }),
    );
    if (new Set(copies).size > 1) {
      problems.push(
        `${key} at index ${target}: ${
          members().map((node, k) => `${node.id}=${JSON.stringify(copies[k])}`).join(" ")
        }`,
      );
    }
  }
  return problems;
}
