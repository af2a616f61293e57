import process from "node:process";
import { NotLeaderError, type Server } from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import {
  checkLinearizability,
  HistoryRecorder,
  type KvInput,
  kvModel,
  type KvOutput,
  type OperationHandle,
} from "./linearizability.ts";
import { AsyncKvCommand, KvCommand, type KvResult } from "./kv.ts";
import { describeError, type NetworkFaults, type SimStats, Simulator } from "./simulator.ts";
import { runScenario, type ScenarioName, SCENARIOS } from "./_scenarios.ts";

/** Which faults and workload a randomized run uses; chosen from the seed by {@link simulationConfig}. */
export interface SimulationConfig {
  /** The run's seed. */
  seed: number;
  /** Founding cluster size. */
  nodes: number;
  /** Base election timeout. */
  electionTimeoutMs: number;
  /** Heartbeat interval. */
  heartbeatIntervalMs: number;
  /** Pre-vote on. */
  preVote: boolean;
  /** Check-quorum on. */
  checkQuorum: boolean;
  /** Pipelining window per follower. */
  maxInflightMessages: number;
  /** Automatic snapshot threshold in entries (0: none). */
  snapshotThreshold: number;
  /** Entries kept behind a snapshot. */
  trailingLogEntries: number;
  /** Bytes per snapshot chunk. */
  snapshotChunkBytes: number;
  /** Longest fsync. */
  fsyncMaxMs: number;
  /** Network faults of the fault phase. */
  network: NetworkFaults;
  /** Chance per write of an injected write error, and of an fsync error. */
  diskErrorRate: number;
  /** The nemesis partitions the cluster. */
  partitions: boolean;
  /** The nemesis cuts links one way. */
  oneWayLinks: boolean;
  /** The nemesis crashes nodes (power loss) and restarts them from disk. */
  crashes: boolean;
  /** The nemesis stops servers and starts the same objects again. */
  stopStart: boolean;
  /** The nemesis adds and removes members (the leader included). */
  membership: boolean;
  /** The nemesis transfers leadership. */
  transfers: boolean;
  /** The nemesis calls `takeSnapshot`. */
  snapshots: boolean;
  /** Simulated time with faults, before the liveness phase. */
  faultPhaseMs: number;
  /** Mean time between nemesis actions. */
  nemesisIntervalMs: number;
  /** Concurrent clients. */
  clients: number;
  /** Keys the clients use. */
  keys: number;
  /** A client gives up (unknown outcome) after this long when it uses a deadline. */
  clientTimeoutMs: number;
  /** Fraction of client operations with a deadline (an AbortSignal); the others wait. */
  deadlineRate: number;
  /** Fraction of reads served by `readIndex()` instead of through the log. */
  readIndexRate: number;
  /** Fraction of `readIndex()` reads that ask for the lease. */
  leaseRate: number;
  /** Fraction of commands that apply asynchronously. */
  asyncRate: number;
  /** Most entries per AppendEntries. */
  maxEntriesPerMessage: number;
  /** A targeted nemesis that replaces the random one, or "none". */
  scenario: ScenarioName | "none";
}

/** Coverage flags of one run: which fault kinds and API calls it exercised. */
export interface SimulationCoverage {
  /** Nodes crashed (power loss). */
  crashes: boolean;
  /** A crash lost or tore unsynced writes. */
  crashLostWrites: boolean;
  /** A Server was stopped and started in place. */
  stopStart: boolean;
  /** A storage error stopped a server. */
  storageErrors: boolean;
  /** The cluster was partitioned. */
  partitions: boolean;
  /** Links were cut one way. */
  oneWayLinks: boolean;
  /** A follower installed a leader's snapshot. */
  snapshotsInstalled: boolean;
  /** A member was added. */
  addPeer: boolean;
  /** A member was removed. */
  removePeer: boolean;
  /** Leadership was transferred. */
  transfers: boolean;
  /** More than one term had a leader. */
  leadershipChanges: boolean;
  /** A lease read returned. */
  leaseReads: boolean;
}

/** The outcome of {@link runSimulation}. */
export interface SimulationResult {
  /** The seed. */
  seed: number;
  /** Founding cluster size. */
  nodes: number;
  /** No violation. */
  ok: boolean;
  /** What the checkers found (empty when `ok`). */
  violations: string[];
  /** Things worth knowing that are not failures. */
  warnings: string[];
  /** The last trace lines before the end (or the first violation). */
  trace: string[];
  /** Fingerprint of the run; equal for equal seeds and options. */
  traceHash: string;
  /** Simulated time at the end. */
  simulatedMs: number;
  /** Counters of what happened. */
  stats: SimStats;
  /** What the run exercised. */
  coverage: SimulationCoverage;
  /** Client operations recorded. */
  operations: number;
  /** Client operations whose outcome stayed unknown. */
  unknownOperations: number;
  /** The command that replays this run. */
  replay: string;
  /** The fault mix the seed chose. */
  config: SimulationConfig;
}

/** Options of {@link runSimulation}. */
export interface RunSimulationOptions {
  /** Number of founding servers; by default 3 or 5 chosen from the seed. */
  nodes?: number;
  /** Receives every trace line. */
  log?: (line: string) => void;
  /** Time budget of the linearizability check (real time). @default 10000 */
  linearizabilityTimeoutMs?: number;
  /** Every disk acknowledges before durable (a broken storage adapter). @default false */
  ackBeforeDurable?: boolean;
  /** Called now and then while the run advances (for a watchdog on another thread). */
  onProgress?: () => void;
  /** Run this targeted nemesis (or none) instead of the one the seed chooses. */
  scenario?: ScenarioName | "none";
}

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

/**
 * The fault mix and workload of a seed.
 * @param seed the run's seed
 * @param nodes a fixed cluster size, or undefined to pick one
 * @param scenario a targeted nemesis (or none) instead of the one the seed chooses
 * @returns the configuration
 */
export function simulationConfig(
  seed: number,
  nodes?: number,
  scenario?: ScenarioName | "none",
): SimulationConfig {
  const random = new SeededRandom(seed ^ 0x5bd1e995);
  const size = pick(random, [3, 3, 3, 5, 5]);
  const electionTimeoutMs = pick(random, [100, 150, 150, 300]);
  const jittery = random.chance(0.7);
  const config: SimulationConfig = {
    seed,
    nodes: nodes ?? size,
    electionTimeoutMs,
    heartbeatIntervalMs: Math.floor(electionTimeoutMs / pick(random, [3, 5])),
    preVote: random.chance(0.7),
    checkQuorum: random.chance(0.7),
    maxInflightMessages: pick(random, [1, 4, 32]),
    snapshotThreshold: random.chance(0.7) ? pick(random, [5, 10, 25, 50]) : 0,
    trailingLogEntries: pick(random, [0, 2, 10]),
    snapshotChunkBytes: pick(random, [16, 64, 256, 4096]),
    fsyncMaxMs: pick(random, [1, 5, 20]),
    network: {
      dropRate: random.chance(0.6) ? pick(random, [0.01, 0.05, 0.1, 0.2]) : 0,
      duplicateRate: random.chance(0.4) ? pick(random, [0.01, 0.05, 0.1]) : 0,
      minDelayMs: 1,
      maxDelayMs: jittery ? pick(random, [5, 15, 40]) : 2,
      longDelayRate: jittery && random.chance(0.5) ? pick(random, [0.01, 0.05]) : 0,
      longDelayMs: pick(random, [100, 300, 1000]),
    },
    diskErrorRate: random.chance(0.25) ? pick(random, [0.002, 0.01]) : 0,
    partitions: random.chance(0.5),
    oneWayLinks: random.chance(0.3),
    crashes: random.chance(0.6),
    stopStart: random.chance(0.3),
    membership: random.chance(0.4),
    transfers: random.chance(0.4),
    snapshots: random.chance(0.4),
    faultPhaseMs: 2000 + random.int(3000),
    nemesisIntervalMs: pick(random, [100, 300, 600]),
    clients: 2 + random.int(4),
    keys: 1 + random.int(4),
    clientTimeoutMs: pick(random, [300, 1000]),
    deadlineRate: pick(random, [0.5, 0.9, 1]),
    readIndexRate: pick(random, [0, 0.5, 1]),
    leaseRate: pick(random, [0, 0.5]),
    asyncRate: pick(random, [0, 0.3]),
    maxEntriesPerMessage: pick(random, [1, 4, 2000, 2000]),
    scenario: random.chance(0.3) ? pick(random, SCENARIOS) : "none",
  };
  if (scenario !== undefined) config.scenario = scenario;
  return config.scenario === "none" ? config : aimed(config, config.scenario);
}

/**
 * A targeted nemesis runs alone on a network that keeps its windows open: no drops, short
 * delays, no disk errors, a longer fault phase; and the options its window needs.
 */
function aimed(config: SimulationConfig, scenario: ScenarioName): SimulationConfig {
  return {
    ...config,
    network: { ...config.network, dropRate: 0, maxDelayMs: 3, longDelayRate: 0 },
    diskErrorRate: 0,
    faultPhaseMs: config.faultPhaseMs + 4000,
    // Old entries acknowledged one by one, before the new leader's own entry (Figure 8).
    ...(scenario === "stale-leader" ? { maxEntriesPerMessage: 1, asyncRate: 0 } : {}),
    // Lease reads are served only with check-quorum.
    ...(scenario === "voter-restart" || scenario === "late-timeout-now"
      ? { checkQuorum: true }
      : {}),
  };
}

type Outcome = "ok" | "fail" | "unknown";

/**
 * Runs one seed against real Servers: a fault phase (clients through the public API while
 * the nemesis partitions, cuts, crashes, restarts, stops and starts, changes membership,
 * transfers leadership, snapshots and injects disk errors, as the seed chooses), then a
 * liveness phase (faults stop and every node comes back: every pending call must settle, a
 * write and reads must complete and every member catch up within a bound), then the
 * checkers, linearizability last.
 * @param seed the seed
 * @param options cluster size, logging, a broken disk
 * @returns what happened; `ok` is false on any violation
 * @example
 * ```ts
 * import { runSimulation } from "@tsraft/sim";
 * const result = await runSimulation(42, { nodes: 3 });
 * if (!result.ok) throw new Error(`${result.violations.join("\n")}\nreplay: ${result.replay}`);
 * ```
 */
export async function runSimulation(
  seed: number,
  options: RunSimulationOptions = {},
): Promise<SimulationResult> {
  const config = simulationConfig(seed, options.nodes, options.scenario);
  const sim = new Simulator({
    seed,
    nodes: config.nodes,
    electionTimeoutMs: config.electionTimeoutMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    preVote: config.preVote,
    checkQuorum: config.checkQuorum,
    maxInflightMessages: config.maxInflightMessages,
    snapshotThreshold: config.snapshotThreshold,
    trailingLogEntries: config.trailingLogEntries,
    snapshotChunkBytes: config.snapshotChunkBytes,
    maxEntriesPerMessage: config.maxEntriesPerMessage,
    fsyncMaxMs: config.fsyncMaxMs,
    network: config.network,
    disk: { writeErrorRate: config.diskErrorRate, fsyncErrorRate: config.diskErrorRate },
    ...(options.ackBeforeDurable ? { ackBeforeDurable: true } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  sim.clock.onProgress = options.onProgress;
  const restoreConsole = captureWarnings(sim);
  try {
    return await drive(sim, config, options);
  } finally {
    restoreConsole();
  }
}

/**
 * Server warnings (a failed write, a failed snapshot) go to the trace, not the console, and a
 * promise rejection nobody handles (an invariant a server asserts in its async code) is a
 * violation of the run.
 */
function captureWarnings(sim: Simulator): () => void {
  const warn = console.warn;
  const error = console.error;
  console.warn = (...args: unknown[]) => sim.trace(`warn: ${args.map(String).join(" ")}`);
  console.error = (...args: unknown[]) => sim.trace(`log: ${args.map(String).join(" ")}`);
  const onRejection = (reason: unknown) => {
    sim.violation(
      `unhandled rejection: ${
        reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)
      }`,
    );
  };
  // node:process works the same on Deno, Node and Bun; a listener marks rejections handled.
  process.on("unhandledRejection", onRejection);
  return () => {
    console.warn = warn;
    console.error = error;
    process.off("unhandledRejection", onRejection);
  };
}

async function drive(
  sim: Simulator,
  config: SimulationConfig,
  options: RunSimulationOptions,
): Promise<SimulationResult> {
  const seed = config.seed;
  const random = new SeededRandom(seed ^ 0x2545f491);
  const recorder = new HistoryRecorder<KvInput, KvOutput>({ now: () => sim.nowMs });
  const keys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
  const pending = new Map<number, string>();
  let nextCall = 0;
  let leaseReads = 0;
  let faultPhase = true;
  let clientsPaused = false;

  sim.boot();

  /** Runs one client call; `describe` names it for the liveness report. */
  function track<T>(describe: string, promise: Promise<T>): Promise<T> {
    const id = nextCall++;
    pending.set(id, `${describe} (called at ${sim.nowMs.toFixed(1)} ms)`);
    const done = () => pending.delete(id);
    promise.then(done, done);
    return promise;
  }

  function deadline(): AbortSignal | undefined {
    if (!random.chance(config.deadlineRate)) return undefined;
    const controller = new AbortController();
    sim.after(config.clientTimeoutMs, () => controller.abort());
    return controller.signal;
  }

  /** A do() or read's rejection: did the operation certainly not happen? */
  function outcomeOf(error: unknown, isRead: boolean): Outcome {
    if (isRead) return "fail"; // a read that did not return has no effect
    // NotLeaderError: refused before proposing, or its entry was overwritten by another.
    return error instanceof NotLeaderError ? "fail" : "unknown";
  }

  function runningServer(name: string): Server | undefined {
    return sim.isUp(name) ? sim.server(name) : undefined;
  }

  /**
   * One client operation on `target`, recorded in the history: a read by `readIndex()` when
   * `read` says so, otherwise a command through `do()`. Resolves once it settled.
   */
  function perform(
    clientId: string,
    target: string,
    input: KvInput,
    how: { read?: { lease: boolean }; async?: number; signal?: AbortSignal | undefined },
    settled: (error?: unknown) => void = () => {},
  ): Promise<void> {
    const server = sim.server(target);
    const signal = how.signal;
    const finish = (handle: OperationHandle, outcome: Outcome, output?: KvOutput) => {
      if (outcome === "ok") recorder.ok(handle, output!);
      else if (outcome === "fail") recorder.fail(handle);
      else recorder.unknown(handle);
      sim.trace(
        `${clientId} ${JSON.stringify(input)} @${target} -> ${
          outcome === "ok" ? JSON.stringify(output) : outcome
        }`,
      );
    };
    if (input.op === "get" && how.read !== undefined) {
      const lease = how.read.lease;
      const handle = recorder.invoke(clientId, input);
      const read = server.readIndex({ lease, ...(signal ? { signal } : {}) });
      return track(`${clientId} readIndex(lease: ${lease}) on ${target}`, read).then(
        () => {
          if (lease) leaseReads++;
          finish(handle, "ok", sim.kv(target).get(input.key));
          settled();
        },
        (error) => {
          finish(handle, outcomeOf(error, true));
          settled(error);
        },
      );
    }
    const command = how.async !== undefined
      ? new AsyncKvCommand(input, how.async)
      : new KvCommand(input);
    const content = `${command.commandName}|${
      new TextDecoder().decode(sim.registry.encode(command))
    }`;
    const handle = recorder.invoke(clientId, input);
    const call = server.do<KvResult>(command, signal ? { signal } : {});
    return track(`${clientId} do(${JSON.stringify(input)}) on ${target}`, call).then(
      (result) => {
        if (input.op !== "get") {
          const entry = server.running()
            ? server.logEntries.find((e) => e.index === result.index)
            : undefined;
          sim.noteAcknowledged(result.index, entry, content);
        }
        finish(handle, "ok", result.output);
        settled();
      },
      (error) => {
        finish(handle, outcomeOf(error, false));
        settled(error);
      },
    );
  }

  // ---------------------------------------------------------------- clients
  for (let c = 0; c < config.clients; c++) {
    const clientId = `c${c + 1}`;
    let guess = sim.names[random.int(sim.names.length)]!;
    let seq = 0;
    const nextGuess = (hint?: string) => {
      const names = sim.allNames;
      guess = hint && names.includes(hint) ? hint : names[random.int(names.length)]!;
    };
    const issue = () => {
      if (!faultPhase) return;
      if (clientsPaused) {
        sim.after(1 + random.int(20), issue);
        return;
      }
      if (runningServer(guess) === undefined) {
        nextGuess();
        sim.after(1 + random.int(20), issue);
        return;
      }
      const key = pick(random, keys);
      const roll = random.next();
      const value = `${clientId}.${++seq}`;
      const input: KvInput = roll < 0.35
        ? { op: "put", key, value }
        : roll < 0.7
        ? { op: "get", key }
        : roll < 0.9
        ? {
          op: "cas",
          key,
          expect: random.chance(0.3)
            ? null
            : `c${1 + random.int(config.clients)}.${Math.max(1, seq - 1 - random.int(3))}`,
          value,
        }
        : { op: "delete", key };
      const signal = deadline();
      const read = input.op === "get" && random.chance(config.readIndexRate)
        ? { lease: random.chance(config.leaseRate) }
        : undefined;
      const asyncDelay = read === undefined && random.chance(config.asyncRate)
        ? random.int(3)
        : undefined;
      void perform(clientId, guess, input, {
        ...(read ? { read } : {}),
        ...(asyncDelay !== undefined ? { async: asyncDelay } : {}),
        signal,
      }, (error) => {
        if (error instanceof NotLeaderError) nextGuess(error.leader);
        else if (error !== undefined && read === undefined && random.chance(0.5)) nextGuess();
        sim.after(1 + random.int(20), issue);
      });
    };
    sim.after(random.int(100), issue);
  }

  // ---------------------------------------------------------------- the nemesis
  /** A nemesis call, traced and tracked; resolves whether it succeeded. */
  function nemesisCall(label: string, call: Promise<unknown>, onOk: () => void): Promise<boolean> {
    sim.trace(label);
    return track(label, call).then(
      () => {
        onOk();
        sim.trace(`${label} ok`);
        return true;
      },
      (error) => {
        sim.trace(`${label} failed: ${describeError(error)}`);
        return false;
      },
    );
  }

  /** `leader.addPeer(name)`; resolves whether it succeeded. */
  function addPeerOn(leader: Server, name: string): Promise<boolean> {
    const peer = sim.peerInfo(name);
    return nemesisCall(
      `${leader.name}.addPeer(${name})`,
      leader.addPeer(peer.name, peer.connectionString),
      () => sim.stats.peersAdded++,
    );
  }

  /** `leader.removePeer(name)`; resolves whether it succeeded. */
  function removePeerOn(leader: Server, name: string): Promise<boolean> {
    sim.noteMembers(leader.memberCount - 1);
    return nemesisCall(
      `${leader.name}.removePeer(${name})`,
      leader.removePeer(name),
      () => sim.stats.peersRemoved++,
    );
  }

  const actions: string[] = ["heal"];
  if (config.partitions) actions.push("partition", "partition");
  if (config.oneWayLinks) actions.push("oneWay", "oneWay");
  if (config.crashes) actions.push("crash", "crash", "restart", "restart");
  if (config.stopStart) actions.push("stop", "start");
  if (config.membership) actions.push("add", "remove");
  if (config.transfers) actions.push("transfer");
  if (config.snapshots) actions.push("snapshot");
  const leader = (): Server | undefined => {
    const name = sim.leaders()[0];
    return name === undefined ? undefined : sim.server(name);
  };
  const nemesis = () => {
    if (!faultPhase) return;
    const names = sim.allNames;
    switch (pick(random, actions)) {
      case "heal":
        sim.heal();
        break;
      case "partition": {
        const shuffled = [...names];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = random.int(i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const cut = 1 + random.int(names.length - 1);
        sim.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
        break;
      }
      case "oneWay": {
        const from = pick(random, names);
        const to = pick(random, names.filter((name) => name !== from));
        sim.cutOneWay(from, to);
        break;
      }
      case "crash": {
        const alive = names.filter((name) => sim.isAlive(name));
        if (alive.length > 0) {
          const victim = pick(random, alive);
          const pendingWrites = sim.disk(victim).pendingWrites;
          sim.crash(victim, {
            keepWrites: random.int(pendingWrites + 1),
            tornEntries: random.chance(0.5) ? 1 + random.int(3) : 0,
          });
        }
        break;
      }
      case "restart": {
        const dead = names.filter((name) => !sim.isAlive(name));
        if (dead.length > 0) sim.restart(pick(random, dead));
        break;
      }
      case "stop": {
        const up = names.filter((name) => sim.isUp(name));
        if (up.length > 0) sim.stopInPlace(pick(random, up));
        break;
      }
      case "start": {
        for (const name of names) {
          if (sim.isAlive(name) && !sim.isUp(name)) {
            sim.startInPlace(name);
            break;
          }
        }
        break;
      }
      case "add": {
        const current = leader();
        if (current === undefined || names.length >= config.nodes + 3) break;
        void addPeerOn(current, sim.spawnJoiner());
        break;
      }
      case "remove": {
        const current = leader();
        if (current === undefined || current.memberCount <= 2) break;
        const members = current.members.map((m) => m.name);
        void removePeerOn(current, random.chance(0.3) ? current.name : pick(random, members));
        break;
      }
      case "transfer": {
        const current = leader();
        if (current === undefined) break;
        const to = random.chance(0.5)
          ? undefined
          : pick(random, current.members.map((m) => m.name).filter((n) => n !== current.name));
        void nemesisCall(
          `${current.name}.transferLeadership(${to ?? ""})`,
          current.transferLeadership(to),
          () => sim.stats.transfers++,
        );
        break;
      }
      case "snapshot": {
        const up = names.filter((name) => sim.isUp(name));
        if (up.length === 0) break;
        const server = sim.server(pick(random, up));
        void nemesisCall(
          `${server.name}.takeSnapshot()`,
          server.takeSnapshot(),
          () => sim.stats.snapshotsTaken++,
        );
        break;
      }
    }
    sim.after(1 + random.int(config.nemesisIntervalMs * 2), nemesis);
  };
  if (config.scenario !== "none") {
    let scenarioCalls = 0;
    const up = (target: string) => sim.isUp(target);
    void runScenario(config.scenario, {
      sim,
      random: new SeededRandom(seed ^ 0x1b873593),
      electionTimeoutMs: config.electionTimeoutMs,
      key: keys[0]!,
      active: () => faultPhase,
      pauseClients: (paused) => clientsPaused = paused,
      write: (target, key, value) =>
        up(target)
          ? perform(`s${++scenarioCalls}`, target, { op: "put", key, value }, {})
          : Promise.resolve(),
      leaseRead: (target, key) =>
        up(target)
          ? perform(`s${++scenarioCalls}`, target, { op: "get", key }, { read: { lease: true } })
          : Promise.resolve(),
      addPeer: addPeerOn,
      removePeer: removePeerOn,
    });
  } else if (actions.length > 1) {
    sim.after(random.int(config.nemesisIntervalMs * 2), nemesis);
  }

  const periodic = () => {
    sim.checkLogMatching();
    sim.checkAcknowledgedDurable();
    sim.after(250, periodic);
  };
  sim.after(250, periodic);

  await sim.runFor(config.faultPhaseMs);

  // ---------------------------------------------------------------- liveness phase
  faultPhase = false;
  sim.trace("--- liveness phase: faults stop, every node comes back");
  sim.calm();
  const boundMs = config.electionTimeoutMs * 20 + config.clientTimeoutMs * 4 + 2000;
  const livenessStart = sim.nowMs;
  // Every call made during the fault phase settles once the cluster is healed and quiet.
  if (!(await sim.runUntil(() => pending.size === 0, boundMs))) {
    sim.violation(
      `liveness: ${pending.size} calls still pending ${boundMs} ms after faults stopped: ` +
        [...pending.values()].slice(0, 5).join("; ") + `; nodes: ${describeNodes(sim)}`,
    );
  }
  // Then a write and reads through a leader, and every member catches up.
  const finalOps: KvInput[] = [
    { op: "put", key: "final", value: `seed${seed}` },
    ...keys.map((key) => ({ op: "get", key }) as KvInput),
  ];
  let finalIndex = 0;
  let opIndex = 0;
  let finalBusy = false;
  let finalAttempts = 0;
  const runFinal = () => {
    if (finalBusy || opIndex >= finalOps.length) return;
    const name = sim.leaders()[0];
    if (name === undefined) return;
    const server = sim.server(name);
    const input = finalOps[opIndex]!;
    finalBusy = true;
    finalAttempts++;
    const handle = recorder.invoke("final", input);
    const controller = new AbortController();
    sim.after(config.clientTimeoutMs, () => controller.abort());
    server.do<KvResult>(new KvCommand(input), { signal: controller.signal }).then(
      (result) => {
        recorder.ok(handle, result.output);
        if (opIndex === 0) finalIndex = result.index;
        opIndex++;
        finalBusy = false;
      },
      (error) => {
        if (outcomeOf(error, false) === "fail") recorder.fail(handle);
        else recorder.unknown(handle);
        finalBusy = false;
      },
    );
  };
  const remaining = Math.max(0, livenessStart + boundMs * 2 - sim.nowMs);
  const finalDone = await sim.runUntil(() => {
    runFinal();
    return opIndex >= finalOps.length;
  }, remaining);
  let members: string[] = [];
  if (!finalDone) {
    sim.violation(
      `liveness: no leader committed the final write and reads within ${
        (sim.nowMs - livenessStart).toFixed(0)
      } ms after faults stopped (${finalAttempts} attempts; leaders: ${
        sim.leaders().join(",") || "none"
      }; ${sim.allNames.map((n) => JSON.stringify(sim.info(n))).join(" ")})`,
    );
  } else {
    const current = sim.leaders()[0];
    members = current === undefined ? [] : sim.server(current).members.map((m) => m.name);
    const caughtUp = () =>
      members.every((name) => sim.isUp(name) && sim.server(name).appliedIndex >= finalIndex);
    const appliedSum = () =>
      members.reduce((sum, n) => sum + (sim.isUp(n) ? sim.server(n).appliedIndex : 0), 0);
    // A member far behind may catch up slowly (one entry per message, one in flight): it
    // fails only when nobody advances for a whole bound, or after ten bounds in all.
    let done = false;
    for (let round = 0; round < 10 && !done; round++) {
      const before = appliedSum();
      done = await sim.runUntil(caughtUp, boundMs);
      if (!done && appliedSum() === before) break;
    }
    if (!done) {
      sim.violation(
        `liveness: not every member applied ${finalIndex} (no progress for ${boundMs} ms): ` +
          members.map((n) => `${n}@${sim.isUp(n) ? sim.server(n).appliedIndex : "down"}`).join(
            " ",
          ) + `; nodes: ${describeNodes(sim)}`,
      );
    }
  }
  sim.checkSafety();

  // ---------------------------------------------------------------- linearizability
  const warnings: string[] = [];
  const history = recorder.history();
  const unknownOperations = history.filter((op) => op.return === undefined).length;
  options.onProgress?.();
  if (sim.violations.length === 0) {
    const check = checkLinearizability(kvModel, history, {
      timeoutMs: options.linearizabilityTimeoutMs ?? 10_000,
    });
    if (check.result === "illegal") {
      sim.violation(`linearizability: ${check.explanation.message}`);
    } else if (check.result === "unknown") {
      warnings.push(`linearizability check gave up: ${check.reason}`);
    }
  }
  if (unknownOperations > 0) warnings.push(`${unknownOperations} operations with unknown outcome`);

  const stats = { ...sim.stats };
  // End every process so that nothing of this run lingers.
  for (const name of sim.allNames) if (sim.isAlive(name)) sim.crash(name);
  await sim.runFor(1);
  return {
    seed,
    nodes: config.nodes,
    ok: sim.violations.length === 0,
    violations: [...sim.violations],
    warnings,
    trace: [...sim.recentTrace],
    traceHash: sim.traceHash,
    simulatedMs: sim.nowMs,
    stats,
    coverage: {
      crashes: stats.crashes > 0,
      crashLostWrites: stats.crashesLostWrites > 0,
      stopStart: stats.stopStarts > 0,
      storageErrors: stats.selfStops > 0,
      partitions: stats.partitions > 0,
      oneWayLinks: stats.oneWayCuts > 0,
      snapshotsInstalled: stats.snapshotsInstalled > 0,
      addPeer: stats.peersAdded > 0,
      removePeer: stats.peersRemoved > 0,
      transfers: stats.transfers > 0,
      leadershipChanges: sim.leaderTerms > 1,
      leaseReads: leaseReads > 0,
    },
    operations: history.length,
    unknownOperations,
    replay: `deno task sim --seed ${seed} --nodes ${config.nodes}` +
      (options.scenario !== undefined ? ` --scenario ${options.scenario}` : ""),
    config,
  };
}

/** Every node's state, term and indexes, for liveness reports. */
function describeNodes(sim: Simulator): string {
  return sim.allNames.map((n) => {
    const i = sim.info(n);
    const progress = i.state === "leader" && sim.isUp(n)
      ? ` [${
        sim.server(n).progress.map((p) =>
          `${p.name} ${p.mode} match ${p.matchIndex} next ${p.nextIndex} inflight ${p.inflightMessages}`
        ).join("; ")
      }]`
      : "";
    return `${n} ${i.state} t${i.term} last ${i.lastIndex} commit ${i.commitIndex} ` +
      `applied ${i.appliedIndex} snapshot ${i.snapshotIndex}${progress}`;
  }).join(", ");
}
