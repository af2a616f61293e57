/**
 * Commit throughput and latency of a 3-node tsraft cluster: in one process on the memory
 * transport, or as three processes over TCP or HTTP with file or KV storage. Closed-loop
 * clients call `server.do()` inside the leader process, each awaiting its previous command.
 *
 * Run through `bench/main.ts` (`deno task bench`).
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createServer, LEADER, systemClock } from "@tsraft/core";
import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
import {
  benchRegistry,
  CounterStateMachine,
  type LoadResult,
  percentile,
  round,
  runClients,
  type RunClientsOptions,
} from "./_load.ts";
import { NodeProcess } from "./_node_process.ts";
import type { NodeConfig } from "./_protocol.ts";
import { type CpuProfile, InspectorSession } from "./_profile.ts";

/** Election timeout of the benchmark clusters: long enough that a loaded 2-core box keeps its leader. */
export const ELECTION_TIMEOUT_MS = 500;
/** Heartbeat interval of the benchmark clusters. */
export const HEARTBEAT_INTERVAL_MS = 50;

/** Durations and client counts of one cluster benchmark. */
export interface ClusterBenchOptions {
  /** One run per entry, in order, on the same cluster. */
  clientCounts: number[];
  durationMs: number;
  warmupMs: number;
  /** `maxInflightMessages` of every server. @default the server's default */
  maxInflightMessages?: number;
}

/** One run of a cluster benchmark. */
export interface ClusterRun {
  result: LoadResult;
  /** Counters of the leader and followers during the measured window (process clusters). */
  leader?: Record<string, unknown>;
  followers?: Record<string, unknown>[];
  leaderChanges?: number;
  /** Where an AppendEntries round trip goes, from both ends' traces (process clusters). */
  appendBreakdown?: AppendBreakdown;
}

/** p50 (and p99) in ms of the parts of an AppendEntries round trip with entries. */
export interface AppendBreakdown {
  /** Round trips traced at both ends. */
  count: number;
  /** From the leader's send call to the follower's handler. */
  requestMs: [number, number];
  /** In the follower's handler (persisting included). */
  handlingMs: [number, number];
  /** From the follower's handler returning to the leader's promise resolving. */
  responseMs: [number, number];
}

function breakdown(
  leader: Record<string, [number, number]>,
  followers: Record<string, [number, number]>[],
): AppendBreakdown {
  const request: number[] = [];
  const handling: number[] = [];
  const response: number[] = [];
  for (const trace of followers) {
    for (const [key, [received, replied]] of Object.entries(trace)) {
      const sent = leader[key];
      if (sent === undefined) continue;
      request.push(received - sent[0]);
      handling.push(replied - received);
      response.push(sent[1] - replied);
    }
  }
  const pair = (values: number[]): [number, number] => {
    const sorted = Float64Array.from(values).sort();
    return [round(percentile(sorted, 0.5), 3), round(percentile(sorted, 0.99), 3)];
  };
  return {
    count: request.length,
    requestMs: pair(request),
    handlingMs: pair(handling),
    responseMs: pair(response),
  };
}

/**
 * Case (a): three servers in this process on a MemoryNetwork with MemoryStorage and the
 * real system clock.
 * @param options client counts and durations
 * @returns one run per client count
 */
export async function benchMemoryCluster(options: ClusterBenchOptions): Promise<ClusterRun[]> {
  const network = new MemoryNetwork({ clock: systemClock });
  const names = ["a", "b", "c"];
  const members = names.map((name) => ({ name, connectionString: `memory://${name}` }));
  const servers = names.map((name) => {
    const server = createServer({
      name,
      connectionString: `memory://${name}`,
      peers: members.filter((member) => member.name !== name),
      transporter: network.transporter(),
      storage: new MemoryStorage(),
      stateMachine: new CounterStateMachine(),
      registry: benchRegistry(),
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      ...(options.maxInflightMessages === undefined
        ? {}
        : { maxInflightMessages: options.maxInflightMessages }),
    });
    network.register(server);
    return server;
  });
  try {
    for (const server of servers) await server.start();
    const leader = await waitFor(
      () => {
        const leaders = servers.filter((server) => server.state === LEADER);
        return leaders.length === 1 &&
            servers.every((server) => server.leader === leaders[0]!.name)
          ? leaders[0]
          : undefined;
      },
      10_000,
      "a leader in the memory cluster",
    );
    const runs: ClusterRun[] = [];
    for (const clients of options.clientCounts) {
      runs.push({ result: await runClients(leader, { ...options, clients }) });
    }
    return runs;
  } finally {
    for (const server of servers) await server.stop();
    network.close();
  }
}

/** What the three node processes of {@link startProcessCluster} are. */
export interface ProcessClusterSpec {
  transport: "tcp" | "http";
  storage: "file" | "kv";
  /** Directory under which the nodes' data directories are made. @default the OS temp dir */
  parentDir?: string;
  /** `maxInflightMessages` of every server. @default the server's default */
  maxInflightMessages?: number;
  /** `snapshotThreshold` of every server. @default the server's default */
  snapshotThreshold?: number;
  /** Count saves and AppendEntries in the nodes (`_instrument.ts`). @default true */
  instrument?: boolean;
  /** Open node i's V8 inspector on port `inspectBase + i`. */
  inspectBase?: number;
}

/** Three started `_bench_node.ts` processes on loopback. */
export interface ProcessCluster {
  /** n1, n2, n3. */
  nodes: NodeProcess[];
  /** Stops the nodes and removes their data. */
  close(): Promise<void>;
}

/**
 * Spawns three `_bench_node.ts` processes (fsync on), tells each the others' addresses and
 * starts their servers; the caller then waits for a leader ({@link waitForProcessLeader}).
 * @param spec transport, storage and server options
 * @returns the running cluster
 * @throws Error (after printing the nodes' logs) when a node does not come up within 30 s
 */
export async function startProcessCluster(spec: ProcessClusterSpec): Promise<ProcessCluster> {
  const root = await mkdtemp(join(spec.parentDir ?? tmpdir(), "tsraft-bench-"));
  const names = ["n1", "n2", "n3"];
  for (const name of names) await mkdir(join(root, name));
  const nodes = names.map((name, i) => {
    const config: NodeConfig = {
      name,
      transport: spec.transport,
      storage: spec.storage,
      dir: join(root, name),
      fsync: true,
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      ...(spec.maxInflightMessages === undefined
        ? {}
        : { maxInflightMessages: spec.maxInflightMessages }),
      ...(spec.snapshotThreshold === undefined
        ? {}
        : { snapshotThreshold: spec.snapshotThreshold }),
      ...(spec.instrument === undefined ? {} : { instrument: spec.instrument }),
    };
    return NodeProcess.spawn(
      config,
      spec.inspectBase === undefined ? {} : { inspectPort: spec.inspectBase + i },
    );
  });
  const killAll = () => nodes.forEach((node) => node.kill());
  process.once("exit", killAll);
  async function close(): Promise<void> {
    await Promise.all(nodes.map((node) => node.close()));
    process.off("exit", killAll);
    await rm(root, { recursive: true, force: true });
  }
  try {
    const ports = await withDeadline(
      Promise.all(nodes.map((node) => node.port())),
      30_000,
      "the nodes to listen",
    );
    const members = names.map((name, i) => ({ name, connectionString: `127.0.0.1:${ports[i]}` }));
    await Promise.all(nodes.map((node, i) =>
      node.request({
        op: "start",
        connectionString: members[i]!.connectionString,
        peers: members.filter((member) => member.name !== node.name),
      })
    ));
  } catch (error) {
    printNodeLogs(nodes);
    await close();
    throw error;
  }
  return { nodes, close };
}

/** Prints what each node logged (after a failure). */
export function printNodeLogs(nodes: NodeProcess[]): void {
  for (const node of nodes) {
    if (node.log.trim() !== "") console.error(`--- log of ${node.name}:\n${node.log}`);
  }
}

/** Options of {@link benchProcessCluster}. */
export interface ProcessClusterOptions extends ClusterBenchOptions {
  transport: "tcp" | "http";
  storage: "file" | "kv";
  /** Directory under which the nodes' data directories are made. @default the OS temp dir */
  parentDir?: string;
  /** Write a CPU profile of the leader for each run to `${profilePath}-c<clients>.cpuprofile`. */
  profilePath?: string;
}

/**
 * Cases (b)-(d): three `_bench_node.ts` processes on loopback; the load runs in the leader.
 * @param options transport, storage, client counts and durations
 * @returns one run per client count, with the nodes' counters
 */
export async function benchProcessCluster(options: ProcessClusterOptions): Promise<ClusterRun[]> {
  const inspectBase = options.profilePath === undefined ? undefined : 19_229;
  const cluster = await startProcessCluster({
    transport: options.transport,
    storage: options.storage,
    ...(options.parentDir === undefined ? {} : { parentDir: options.parentDir }),
    ...(options.maxInflightMessages === undefined
      ? {}
      : { maxInflightMessages: options.maxInflightMessages }),
    ...(inspectBase === undefined ? {} : { inspectBase }),
  });
  const { nodes } = cluster;
  try {
    const runs: ClusterRun[] = [];
    for (const clients of options.clientCounts) {
      const leaderIndex = await waitForProcessLeader(nodes);
      const leader = nodes[leaderIndex]!;
      const followers = nodes.filter((node) => node !== leader);
      await Promise.all(followers.map((node) => node.request({ op: "stats", reset: true })));
      const load: RunClientsOptions = { ...options, clients };
      let profile: CpuProfile | undefined;
      let answer: Record<string, unknown>;
      if (inspectBase !== undefined) {
        const session = await InspectorSession.connect(inspectBase + leaderIndex);
        try {
          // Profile only the measured window, not the warm-up.
          const bench = leader.request({ op: "bench", ...load });
          await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
          await session.startProfiling();
          const stopAt = new Promise((resolve) => setTimeout(resolve, options.durationMs));
          await stopAt;
          profile = await session.stopProfiling();
          answer = await bench;
        } finally {
          session.close();
        }
        const path = `${options.profilePath}-c${clients}.cpuprofile`;
        await writeFile(path, JSON.stringify(profile));
      } else {
        answer = await leader.request({ op: "bench", ...load });
      }
      const followerStats = await Promise.all(
        followers.map((node) => node.request({ op: "stats", reset: false })),
      );
      const traces = await Promise.all(
        [leader, ...followers].map(async (node) =>
          (await node.request({ op: "trace" })).trace as Record<string, [number, number]>
        ),
      );
      runs.push({
        result: answer.result as LoadResult,
        leader: { name: leader.name, ...(answer.stats as Record<string, unknown>) },
        followers: followerStats.map((stats, i) => ({
          name: followers[i]!.name,
          ...(stats.stats as Record<string, unknown>),
        })),
        leaderChanges: answer.leaderChanges as number,
        appendBreakdown: breakdown(traces[0]!, traces.slice(1)),
      });
    }
    return runs;
  } catch (error) {
    printNodeLogs(nodes);
    throw error;
  } finally {
    await cluster.close();
  }
}

/**
 * Waits until exactly one node leads and every node follows it.
 * @param nodes the cluster's nodes
 * @returns the leader's index in `nodes`
 * @throws Error after 20 s without such a leader
 */
export async function waitForProcessLeader(nodes: NodeProcess[]): Promise<number> {
  return await waitFor(
    async () => {
      const statuses = await Promise.all(nodes.map((node) => node.request({ op: "status" })));
      const leaders = statuses.flatMap((status, i) => status.state === LEADER ? [i] : []);
      if (leaders.length !== 1) return undefined;
      const name = nodes[leaders[0]!]!.name;
      return statuses.every((status) => status.leader === name) ? leaders[0] : undefined;
    },
    20_000,
    "a leader in the process cluster",
  );
}

/**
 * Polls `probe` every 10 ms until it returns a value.
 * @throws Error naming `what` after `timeoutMs`
 */
async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)),
          timeoutMs,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
