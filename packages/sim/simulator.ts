/**
 * A deterministic simulator of real tsraft clusters (TigerBeetle's VOPR, FoundationDB's
 * simulation): every node is a `Server` made by `createServer`, exactly as shipped, over
 * simulated adapters — a {@link SimClock} on one event queue, a `MemoryNetwork` with faults
 * (drops, duplicates, delays that reorder, long delays, partitions, one-way cuts) and
 * {@link SimStorage} disks (fsync latency, crashes that lose or tear unsynced writes, write
 * and fsync errors). One seed decides everything, so a failure replays exactly.
 * @module
 */
import {
  type Command,
  type CommandRegistry as CommandRegistryType,
  createServer,
  type LogEntry,
  type Logger,
  type PeerInfo,
  type Server,
  type Transporter,
  TransportError,
} from "@tsraft/core";
import { CommandRegistry } from "@tsraft/core";
import { MemoryDisk, MemoryNetwork, SeededRandom } from "@tsraft/core/testing";
import { contentOf, type LogView, SafetyChecker } from "./_checkers.ts";
import { TraceHash } from "./_event_queue.ts";
import { registerKvCommands, SimKv } from "./kv.ts";
import { SimClock } from "./sim_clock.ts";
import { crashDisk, type DiskFaults, SimStorage } from "./sim_storage.ts";

/** Network behaviour of a {@link Simulator}; every field may change during a run. */
export interface NetworkFaults {
  /** Chance that a request or response is lost. @default 0 */
  dropRate: number;
  /** Chance that a request is delivered twice. @default 0 */
  duplicateRate: number;
  /** Shortest one-way delay in ms. @default 1 */
  minDelayMs: number;
  /** Longest usual one-way delay; delays vary in between, which reorders messages. @default 5 */
  maxDelayMs: number;
  /** Chance that a message is held back for up to `longDelayMs` more. @default 0 */
  longDelayRate: number;
  /** Longest extra delay of a held-back message. @default 0 */
  longDelayMs: number;
}

/** Options of a {@link Simulator}. */
export interface SimulatorOptions {
  /** The seed every random choice derives from. */
  seed: number;
  /** Number of founding servers (named `n1`, `n2`, ...). @default 3 */
  nodes?: number;
  /** Base election timeout. @default 150 */
  electionTimeoutMs?: number;
  /** Heartbeat interval. @default 50 */
  heartbeatIntervalMs?: number;
  /** Pre-vote. @default true */
  preVote?: boolean;
  /** Check-quorum. @default true */
  checkQuorum?: boolean;
  /** AppendEntries with entries in flight per follower. @default 32 */
  maxInflightMessages?: number;
  /** Automatic snapshot after this many applied entries; 0 never. @default 0 */
  snapshotThreshold?: number;
  /** Entries kept behind a snapshot. @default 5 */
  trailingLogEntries?: number;
  /** Bytes per snapshot chunk. @default 64 */
  snapshotChunkBytes?: number;
  /** Most entries per AppendEntries. @default 2000 */
  maxEntriesPerMessage?: number;
  /** Shortest fsync. @default 1 */
  fsyncMinMs?: number;
  /** Longest fsync. @default 5 */
  fsyncMaxMs?: number;
  /** An RPC without an answer after this long fails. @default the election timeout */
  rpcTimeoutMs?: number;
  /** Initial network behaviour. */
  network?: Partial<NetworkFaults>;
  /** Initial disk faults of every node. */
  disk?: Partial<DiskFaults>;
  /** Every disk acknowledges writes before they are durable (a broken adapter). @default false */
  ackBeforeDurable?: boolean;
  /** Receives every trace line (verbose replays). */
  log?: (line: string) => void;
}

/** Counters of what a run exercised. */
export interface SimStats {
  /** Crashes (power loss: unsynced writes lost or torn). */
  crashes: number;
  /** Crashes that lost or tore unsynced writes. */
  crashesLostWrites: number;
  /** Servers started anew over a surviving disk. */
  restarts: number;
  /** `stop()` then `start()` on the same Server object. */
  stopStarts: number;
  /** Servers that stopped themselves (storage errors). */
  selfStops: number;
  /** Injected storage faults. */
  diskFaults: number;
  /** Partitions made. */
  partitions: number;
  /** One-way link cuts made. */
  oneWayCuts: number;
  /** Successful `addPeer` calls. */
  peersAdded: number;
  /** Successful `removePeer` calls. */
  peersRemoved: number;
  /** Successful `transferLeadership` calls. */
  transfers: number;
  /** Snapshots installed from a leader (seen as `snapshotting` then back). */
  snapshotsInstalled: number;
  /** Explicit `takeSnapshot` calls that resolved. */
  snapshotsTaken: number;
  /** Simulated events run. */
  events: number;
  /** Inputs the Servers stepped their cores with (`ServerOptions.onStep`). */
  steps: number;
}

/** Stats of a run that exercised nothing yet. @returns all counts at zero */
export function emptySimStats(): SimStats {
  return {
    crashes: 0,
    crashesLostWrites: 0,
    restarts: 0,
    stopStarts: 0,
    selfStops: 0,
    diskFaults: 0,
    partitions: 0,
    oneWayCuts: 0,
    peersAdded: 0,
    peersRemoved: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    snapshotsTaken: 0,
    events: 0,
    steps: 0,
  };
}

/** A node's state, read through the public API of its current Server. */
export interface SimNodeInfo {
  /** Node name. */
  name: string;
  /** Whether its Server is running. */
  up: boolean;
  /** Server state. */
  state: string;
  /** Current term. */
  term: number;
  /** Leader it knows, `""` if none. */
  leader: string;
  /** Commit index. */
  commitIndex: number;
  /** Last log index. */
  lastIndex: number;
  /** Last index applied. */
  appliedIndex: number;
  /** Index of its snapshot point. */
  snapshotIndex: number;
}

const decoder = new TextDecoder();

class SimNode {
  server!: Server;
  storage!: SimStorage;
  kv!: SimKv;
  readonly disk = new MemoryDisk();
  /** The process exists (not crashed); its Server may still be stopped in place. */
  alive = false;
  /** The simulator stopped this Server (stop in place); it has not been started again. */
  stoppedInPlace = false;
  /** Bumped per process; listeners of an older one are ignored. */
  incarnation = 0;
  killTransport: () => void = () => {};
  /** Content of every entry this node applied (across restarts), by index. */
  readonly applied = new Map<number, string>();
  constructor(readonly name: string, readonly joined: boolean) {}
}

/**
 * A cluster of real `Server`s on simulated time, network and disks. Drive it by hand (the
 * 6.824 scenarios) or through `runSimulation`. Every method that changes the cluster is
 * synchronous: what it sets off (a start, a stop) happens as simulated time runs.
 * @example
 * ```ts
 * import { Simulator } from "@tsraft/sim";
 * const sim = new Simulator({ seed: 1, nodes: 3 });
 * sim.boot();
 * await sim.runUntil(() => sim.leaders().length === 1, 3000);
 * sim.checkSafety();
 * if (sim.violations.length > 0) throw new Error(sim.violations.join("\n"));
 * ```
 */
export class Simulator {
  /** Founding node names, `n1`...`nK`. */
  readonly names: string[];
  /** The simulated clock every server and adapter uses. */
  readonly clock: SimClock;
  /** The network between the servers. */
  readonly network: MemoryNetwork;
  /** Command types of the servers. */
  readonly registry: CommandRegistryType = new CommandRegistry();
  /** What the run exercised. */
  readonly stats: SimStats = emptySimStats();
  readonly #options: SimulatorOptions;
  readonly #random: SeededRandom;
  readonly #faultRandom: SeededRandom;
  readonly #nodes = new Map<string, SimNode>();
  readonly #checker: SafetyChecker;
  readonly #hash = new TraceHash();
  readonly #recent: string[] = [];
  #sendFilter: ((from: string, kind: string, to: string) => SendFate | undefined) | undefined;
  #network: NetworkFaults;
  #disk: DiskFaults;
  #founders: PeerInfo[];
  /** Acknowledged writes: index and content, checked against the durable logs. */
  readonly #acked = new Map<number, { term: number | undefined; content: string }>();
  #minMembers: number;
  /** Restart nodes that stop themselves (storage errors) after a while. */
  autoRestart = true;

  /** Creates the nodes (not started: call {@link Simulator.boot}). @param options see {@link SimulatorOptions} */
  constructor(options: SimulatorOptions) {
    const count = options.nodes ?? 3;
    if (!Number.isInteger(count) || count < 1) throw new RangeError("nodes must be >= 1");
    this.#options = options;
    this.#random = new SeededRandom(options.seed);
    this.#faultRandom = new SeededRandom(this.#random.int(0x7fffffff));
    this.clock = new SimClock((error) => this.#exception(error));
    this.#checker = new SafetyChecker(() => this.clock.now());
    this.#checker.onViolation = (text) => this.trace(`VIOLATION ${text}`);
    this.#network = {
      dropRate: 0,
      duplicateRate: 0,
      minDelayMs: 1,
      maxDelayMs: 5,
      longDelayRate: 0,
      longDelayMs: 0,
      ...options.network,
    };
    this.#disk = { writeErrorRate: 0, fsyncErrorRate: 0, ...options.disk };
    const electionTimeoutMs = options.electionTimeoutMs ?? 150;
    this.network = new MemoryNetwork({
      clock: this.clock,
      random: new SeededRandom(this.#random.int(0x7fffffff)),
      timeoutMs: options.rpcTimeoutMs ?? electionTimeoutMs,
    });
    this.#applyNetwork();
    registerKvCommands(this.registry);
    this.registry.register(TextCommand);
    this.names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.#founders = this.names.map((name) => ({ name, connectionString: `memory://${name}` }));
    this.#minMembers = count;
    for (const name of this.names) this.#nodes.set(name, new SimNode(name, false));
  }

  // ------------------------------------------------------------ time and trace

  /** Current simulated time. */
  get nowMs(): number {
    return this.clock.now();
  }

  /** Fingerprint of the trace so far: equal seeds give equal hashes. */
  get traceHash(): string {
    return `${this.#hash.hex}/${this.#hash.count}`;
  }

  /** Violations found so far. */
  get violations(): readonly string[] {
    return this.#checker.violations;
  }

  /** Number of terms in which some node was leader. */
  get leaderTerms(): number {
    return this.#checker.leaderTerms;
  }

  /** The last trace lines (kept for failure reports). */
  get recentTrace(): readonly string[] {
    return this.#recent;
  }

  /** Appends a line to the trace. @param text what happened */
  trace(text: string): void {
    const line = `${this.nowMs.toFixed(1).padStart(8)} ${text}`;
    this.#hash.add(line);
    this.#recent.push(line);
    if (this.#recent.length > 60) this.#recent.shift();
    this.#options.log?.(line);
  }

  /** Runs `ms` of simulated time. */
  async runFor(ms: number): Promise<void> {
    await this.clock.runFor(ms);
    this.stats.events = this.clock.eventsRun;
  }

  /** Runs until `done()` holds or `maxMs` passes. @returns whether `done()` held */
  async runUntil(done: () => boolean, maxMs: number): Promise<boolean> {
    const held = await this.clock.runUntil(done, this.nowMs + maxMs);
    this.stats.events = this.clock.eventsRun;
    return held;
  }

  /** Schedules `run` after `delayMs` of simulated time. */
  after(delayMs: number, run: () => void): void {
    this.clock.setTimeout(run, delayMs);
  }

  /** Records a violation found outside the simulator (a workload or a test). */
  violation(text: string): void {
    this.#checker.violation(text);
  }

  #exception(error: unknown): void {
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.#checker.violation(`exception: ${text}`);
  }

  // ------------------------------------------------------------ nodes

  /** Every node ever created (founders and joiners). */
  get allNames(): string[] {
    return [...this.#nodes.keys()];
  }

  /** Starts every founding node. */
  boot(): void {
    for (const name of this.names) this.#spawn(this.#node(name));
  }

  /** A node's current Server (a new object after each restart from disk). */
  server(name: string): Server {
    return this.#node(name).server;
  }

  /** A node's current state machine. */
  kv(name: string): SimKv {
    return this.#node(name).kv;
  }

  /** A node's disk. */
  disk(name: string): MemoryDisk {
    return this.#node(name).disk;
  }

  /** Whether a node's Server is running. */
  isUp(name: string): boolean {
    const node = this.#node(name);
    return node.alive && node.server.running();
  }

  /** Whether a node's process exists (it may be stopped in place). */
  isAlive(name: string): boolean {
    return this.#node(name).alive;
  }

  /** A node's state. */
  info(name: string): SimNodeInfo {
    const node = this.#node(name);
    const server = node.server;
    return {
      name,
      up: this.isUp(name),
      state: server.state,
      term: server.term,
      leader: server.leader,
      commitIndex: server.commitIndex,
      lastIndex: server.lastIndex,
      appliedIndex: server.appliedIndex,
      snapshotIndex: server.snapshotIndex,
    };
  }

  /** Names of running servers that believe they lead. */
  leaders(): string[] {
    return this.allNames.filter((name) => this.isUp(name) && this.server(name).state === "leader");
  }

  /**
   * Power loss on a node: its process dies, unsynced writes are lost except the first
   * `keepWrites`, and the next one may be torn after `tornEntries` entries.
   */
  crash(name: string, options: { keepWrites?: number; tornEntries?: number } = {}): void {
    const node = this.#node(name);
    if (!node.alive) return;
    const pending = node.disk.pendingWrites;
    const keepWrites = Math.min(options.keepWrites ?? 0, pending);
    this.stats.crashes++;
    if (keepWrites < pending) this.stats.crashesLostWrites++;
    this.trace(
      `crash ${name} (kept ${keepWrites}/${pending} unsynced writes, torn ${
        options.tornEntries ?? 0
      })`,
    );
    this.#kill(node);
    crashDisk(node.disk, { keepWrites, tornEntries: options.tornEntries ?? 0 });
  }

  /** Starts a new process (a new Server) on a crashed node's disk. */
  restart(name: string): void {
    const node = this.#node(name);
    if (node.alive) return;
    this.stats.restarts++;
    this.trace(`restart ${name} from disk`);
    this.#spawn(node);
  }

  /** `stop()` on a node's running Server, keeping the object for {@link Simulator.startInPlace}. */
  stopInPlace(name: string): void {
    const node = this.#node(name);
    if (!node.alive || !node.server.running()) return;
    node.stoppedInPlace = true;
    this.trace(`stop ${name} in place`);
    this.#settle(`${name}.stop()`, node.server.stop());
  }

  /** `start()` on a node's Server stopped by {@link Simulator.stopInPlace}. */
  startInPlace(name: string): void {
    const node = this.#node(name);
    if (!node.alive || !node.stoppedInPlace || node.server.running()) return;
    node.stoppedInPlace = false;
    this.stats.stopStarts++;
    this.trace(`start ${name} in place`);
    this.#startOrRestart(node, node.incarnation);
  }

  /**
   * Creates and starts a new, empty node that waits to be added (`joinExisting`).
   * @returns its name
   */
  spawnJoiner(): string {
    const name = `n${this.#nodes.size + 1}`;
    const node = new SimNode(name, true);
    this.#nodes.set(name, node);
    this.trace(`spawn ${name} (empty, joinExisting)`);
    this.#spawn(node);
    return name;
  }

  /**
   * Proposes a raw text command (`commandName` "test") on a node, as 6.824's `Start`: through
   * `server.do()`, reading the proposal's index and term from the public accessors right
   * after (the Server proposes synchronously).
   * @returns the index and term, or `undefined` when the node is not a running leader
   */
  start(name: string, text: string): { index: number; term: number } | undefined {
    if (!this.isUp(name)) return undefined;
    const server = this.server(name);
    if (server.state !== "leader") return undefined;
    const before = server.lastIndex;
    server.do(new TextCommand(text)).catch(() => {});
    if (server.lastIndex <= before) return undefined;
    return { index: server.lastIndex, term: server.term };
  }

  /** Requests sent over the network so far (6.824's RPC count). */
  rpcCount(): number {
    return this.network.stats.total;
  }

  /** Bytes of commands and snapshot chunks carried by requests so far (6.824's byte count). */
  get rpcBytes(): number {
    return this.network.stats.payloadBytes;
  }

  /** Peer info of a node. */
  peerInfo(name: string): PeerInfo {
    return { name, connectionString: `memory://${name}` };
  }

  /** Notes that the cluster may have shrunk to `members` voters (for the durability check). */
  noteMembers(members: number): void {
    this.#minMembers = Math.min(this.#minMembers, members);
  }

  #spawn(node: SimNode): void {
    const incarnation = ++node.incarnation;
    const seedOf = () => this.#random.int(0x7fffffff);
    const electionTimeoutMs = this.#options.electionTimeoutMs ?? 150;
    node.kv = new SimKv();
    node.kv.clock = this.clock;
    node.kv.onViolation = (text) => this.#checker.violation(`${node.name}: ${text}`);
    node.storage = new SimStorage({
      disk: node.disk,
      clock: this.clock,
      random: new SeededRandom(seedOf()),
      fsyncMinMs: this.#options.fsyncMinMs ?? 1,
      fsyncMaxMs: this.#options.fsyncMaxMs ?? 5,
      faults: { ...this.#disk },
      ackBeforeDurable: this.#options.ackBeforeDurable ?? false,
      onFault: (what) => {
        this.stats.diskFaults++;
        this.trace(`disk ${node.name}: ${what}`);
      },
    });
    let killed = false;
    node.killTransport = () => killed = true;
    const server = createServer({
      name: node.name,
      connectionString: `memory://${node.name}`,
      transporter: killable(
        this.network.transporter(),
        () => killed,
        this.clock,
        (kind, to) =>
          this.#checker.violation(
            `busy loop: ${node.name} sent ${BUSY_LOOP_SENDS} requests (the last: ${kind} to ${to}) ` +
              `without simulated time passing`,
          ),
        (kind, to) => this.#sendFilter?.(node.name, kind, to),
        this.#options.rpcTimeoutMs ?? electionTimeoutMs,
      ),
      storage: node.storage,
      stateMachine: node.kv,
      peers: node.joined ? [] : this.#founders.filter((peer) => peer.name !== node.name),
      joinExisting: node.joined,
      electionTimeoutMs,
      heartbeatIntervalMs: this.#options.heartbeatIntervalMs ?? 50,
      preVote: this.#options.preVote ?? true,
      checkQuorum: this.#options.checkQuorum ?? true,
      maxInflightMessages: this.#options.maxInflightMessages ?? 32,
      snapshotThreshold: this.#options.snapshotThreshold ?? 0,
      trailingLogEntries: this.#options.trailingLogEntries ?? 5,
      snapshotChunkBytes: this.#options.snapshotChunkBytes ?? 64,
      maxEntriesPerMessage: this.#options.maxEntriesPerMessage ?? 2000,
      registry: this.registry,
      clock: this.clock,
      random: new SeededRandom(seedOf()),
      logger: this.#logger(node.name),
      onStep: (input) => {
        this.stats.steps++;
        // Printed in verbose replays, not hashed: a replay keeps the run's trace hash.
        this.#options.log?.(`${this.nowMs.toFixed(1).padStart(8)} ${node.name} step ${input.kind}`);
      },
    });
    node.server = server;
    node.alive = true;
    node.stoppedInPlace = false;
    this.#watch(node, server, incarnation);
    this.network.unregister(node.name);
    this.network.register(server);
    this.#startOrRestart(node, incarnation);
  }

  /** Starts a node's Server; one that fails to start (a storage error) is restarted later. */
  #startOrRestart(node: SimNode, incarnation: number): void {
    node.server.start().catch((error) => {
      if (node.incarnation !== incarnation) return;
      this.trace(`${node.name}.start() failed: ${describeError(error)}`);
      this.#selfStopped(node);
    });
  }

  /** Nobody asked it to stop (a storage error): a supervisor restarts the process. */
  #selfStopped(node: SimNode): void {
    this.stats.selfStops++;
    this.trace(`${node.name} stopped itself`);
    this.#kill(node);
    if (this.autoRestart) {
      this.after(10 + this.#faultRandom.int(200), () => this.restart(node.name));
    }
  }

  /** Server log lines go to the trace (warnings and errors always, debug when verbose). */
  #logger(name: string): Logger {
    const line = (level: string) => (message: string, properties?: Record<string, unknown>) =>
      this.trace(
        `${name} ${level}: ${message}${properties ? ` ${JSON.stringify(properties)}` : ""}`,
      );
    const verbose = this.#options.log !== undefined;
    return {
      // Debug lines are printed, not hashed: a verbose replay keeps the run's trace hash.
      debug: verbose
        ? (message, properties) =>
          this.#options.log?.(
            `${this.nowMs.toFixed(1).padStart(8)} ${name} debug: ${message}${
              properties ? ` ${JSON.stringify(properties)}` : ""
            }`,
          )
        : () => {},
      info: line("info"),
      warn: line("warn"),
      error: line("error"),
    };
  }

  #kill(node: SimNode): void {
    node.alive = false;
    node.incarnation++;
    node.killTransport();
    this.network.unregister(node.name);
    // The process is gone: its Server stops (rejecting its callers) without touching the disk.
    void node.server.stop().catch(() => {});
  }

  /** Observes a Server through its events only. */
  #watch(node: SimNode, server: Server, incarnation: number): void {
    const current = () => node.incarnation === incarnation;
    server.addEventListener("stateChange", (event) => {
      if (!current()) return;
      this.trace(`${node.name} ${event.prevValue} -> ${event.value} (term ${server.term})`);
      if (event.value === "leader") {
        this.#checker.noteLeader(server.term, node.name);
        this.#checkLeaderCompleteness(node.name, server);
      }
      if (event.prevValue === "snapshotting" && server.snapshotIndex > 0) {
        this.stats.snapshotsInstalled++;
      }
      if (event.value === "stopped" && !node.stoppedInPlace) this.#selfStopped(node);
    });
    server.addEventListener("leaderChange", (event) => {
      if (current()) {
        this.trace(`${node.name} leader ${event.prevValue || "-"} -> ${event.value || "-"}`);
      }
    });
    server.addEventListener("commit", (event) => {
      if (!current()) return;
      const entry = event.value;
      const content = contentOf(entry);
      if (entry.index <= event.prevValue) {
        this.#checker.violation(
          `exactly-once apply: ${node.name} applied ${entry.index} after ${event.prevValue}`,
        );
      }
      this.#checker.noteEntries(node.name, [entry]);
      this.#checker.noteCommitted(node.name, entry, server.term);
      this.#checker.noteApplied(node.name, entry.index, content);
      node.applied.set(entry.index, content);
    });
  }

  #checkLeaderCompleteness(name: string, server: Server): void {
    const entries = server.logEntries;
    const first = entries[0]?.index ?? server.snapshotIndex + 1;
    this.#checker.checkLeaderCompleteness(
      name,
      server.term,
      server.snapshotIndex + 1,
      (index) => entries[index - first]?.term,
    );
  }

  /** Awaits a promise the simulator set off; an unexpected rejection is traced. */
  #settle(what: string, promise: Promise<unknown>): void {
    promise.catch((error) => this.trace(`${what} failed: ${describeError(error)}`));
  }

  // ------------------------------------------------------------ network and disks

  /** The current network behaviour. */
  get networkFaults(): NetworkFaults {
    return { ...this.#network };
  }

  /** Changes the network behaviour. */
  setNetwork(faults: Partial<NetworkFaults>): void {
    this.#network = { ...this.#network, ...faults };
    this.#applyNetwork();
  }

  #applyNetwork(): void {
    const net = this.#network;
    this.network.setDropRate(net.dropRate);
    this.network.setDuplicateRate(net.duplicateRate);
    this.network.setDelay({
      minMs: net.minDelayMs,
      maxMs: Math.max(net.minDelayMs, net.maxDelayMs),
    });
    this.network.setLongDelay({ rate: net.longDelayRate, maxMs: net.longDelayMs });
  }

  /** Changes the disk faults of every node (current and future processes). */
  setDiskFaults(faults: Partial<DiskFaults>): void {
    this.#disk = { ...this.#disk, ...faults };
    for (const node of this.#nodes.values()) {
      if (node.alive) node.storage.faults = { ...this.#disk };
    }
  }

  /** Splits the cluster: nodes talk only within their group. */
  partition(groups: string[][]): void {
    this.stats.partitions++;
    this.network.heal();
    const grouped = new Set(groups.flat());
    const rest = this.allNames.filter((name) => !grouped.has(name));
    this.network.partition(...groups.map((g, i) => (i === 0 ? [...g, ...rest] : g)));
    this.trace(`partition ${JSON.stringify(groups)}`);
  }

  /**
   * Decides the fate of each request a server sends (kinds as `TimeoutNow`, `AppendEntries`,
   * `RequestVote`, ...) before the network sees it; `undefined` removes the filter.
   */
  filterSends(
    filter: ((from: string, kind: string, to: string) => SendFate | undefined) | undefined,
  ): void {
    this.#sendFilter = filter;
  }

  /** Cuts the link from `from` to `to` only. */
  cutOneWay(from: string, to: string): void {
    this.stats.oneWayCuts++;
    this.network.cutLink(from, to);
    this.trace(`cut ${from} -> ${to}`);
  }

  /** Cuts every link to and from `name` (6.824's `disconnect`). */
  disconnect(name: string): void {
    this.network.isolate(name);
    this.trace(`disconnect ${name}`);
  }

  /** Undoes {@link Simulator.disconnect}. */
  connect(name: string): void {
    this.network.rejoin(name);
    this.trace(`connect ${name}`);
  }

  /** Restores every link. */
  heal(): void {
    this.network.heal();
    this.trace("heal");
  }

  /**
   * Ends every fault: heals the network, makes it and the disks reliable, and brings every
   * node back (restart from disk, or start in place).
   */
  calm(): void {
    this.heal();
    this.#sendFilter = undefined;
    this.setNetwork({ dropRate: 0, duplicateRate: 0, longDelayRate: 0, maxDelayMs: 5 });
    this.setDiskFaults({ writeErrorRate: 0, fsyncErrorRate: 0 });
    for (const name of this.allNames) {
      const node = this.#node(name);
      if (!node.alive) this.restart(name);
      else if (node.stoppedInPlace) this.startInPlace(name);
    }
  }

  // ------------------------------------------------------------ checks

  /**
   * Notes an acknowledged write (a `do()` that resolved): it must stay committed at `index`
   * and durable on a majority.
   */
  noteAcknowledged(index: number, entry: LogEntry | undefined, content: string): void {
    this.#acked.set(index, { term: entry?.term, content });
  }

  /** Log matching on the durable logs and the in-memory logs of running servers. */
  checkLogMatching(): void {
    const logs: LogView[] = [];
    for (const node of this.#nodes.values()) {
      const durable = node.disk.durable();
      logs.push({
        name: `${node.name}(disk)`,
        snapshotIndex: Math.max(durable.snapshot?.lastIndex ?? 0, durable.firstIndex - 1),
        snapshotTerm: durable.snapshot?.lastTerm ?? 0,
        entries: durable.entries,
      });
      this.#checker.noteEntries(`${node.name}(disk)`, durable.entries);
      if (node.alive && node.server.running()) {
        const entries = node.server.logEntries;
        logs.push({
          name: node.name,
          snapshotIndex: node.server.snapshotIndex,
          snapshotTerm: 0,
          entries,
        });
        this.#checker.noteEntries(node.name, entries);
      }
    }
    this.#checker.checkLogMatching(logs);
  }

  /**
   * Every acknowledged write is durable (in the log or under a snapshot) on at least a
   * majority of the smallest configuration the cluster had.
   */
  checkAcknowledgedDurable(): void {
    const disks = [...this.#nodes.values()].map((node) => node.disk.durable());
    const needed = Math.floor(this.#minMembers / 2) + 1;
    for (const [index, acked] of this.#acked) {
      let holders = 0;
      for (const disk of disks) {
        if ((disk.snapshot?.lastIndex ?? 0) >= index) {
          holders++;
          continue;
        }
        const entry = disk.entries[index - disk.firstIndex];
        if (entry !== undefined && contentOf(entry) === acked.content) holders++;
      }
      if (holders < needed) {
        this.#checker.violation(
          `acknowledged write lost: ${acked.content} at ${index} is durable on ${holders} ` +
            `disks, fewer than a majority (${needed})`,
        );
        this.#acked.delete(index);
      }
    }
  }

  /** End-of-run checks: log matching, durability, leader completeness, acknowledged writes. */
  checkSafety(): void {
    this.checkLogMatching();
    this.checkAcknowledgedDurable();
    for (const name of this.leaders()) this.#checkLeaderCompleteness(name, this.server(name));
    for (const [index, acked] of this.#acked) {
      const committed = this.#checker.committedContent(index);
      if (committed !== undefined && committed !== acked.content) {
        this.#checker.violation(
          `acknowledged write lost: ${acked.content} was acknowledged at ${index}, ` +
            `the committed command there is ${committed}`,
        );
      }
    }
  }

  /** The committed command at `index` as `commandName|bytes`, if some node applied it. */
  committedContent(index: number): string | undefined {
    return this.#checker.committedContent(index);
  }

  /**
   * How many nodes applied `index`, and the command there (6.824's `nCommitted`); a node
   * that got the entry inside a snapshot counts with the committed command.
   */
  nCommitted(index: number): { count: number; content: string | undefined } {
    let count = 0;
    let content: string | undefined;
    for (const node of this.#nodes.values()) {
      if (!node.alive || node.server.appliedIndex < index) continue;
      const applied = node.applied.get(index) ?? this.#checker.committedContent(index);
      if (applied === undefined) continue;
      if (content !== undefined && content !== applied) {
        this.#checker.violation(`nCommitted(${index}): ${content} vs ${applied}`);
      }
      content = applied;
      count++;
    }
    return { count, content };
  }

  #node(name: string): SimNode {
    const node = this.#nodes.get(name);
    if (node === undefined) throw new RangeError(`Unknown node ${name}`);
    return node;
  }
}

/** 6.824's commands: raw text, stored as its UTF-8 bytes. */
export class TextCommand implements Command<string> {
  /** Name in the log. */
  static readonly commandName: string = "test";
  /** Name in the log. */
  readonly commandName: string = TextCommand.commandName;
  /** Creates an instance. @param text the command */
  constructor(readonly text: string) {}
  /** Decodes from the log. @returns the command */
  static decode(bytes: Uint8Array): TextCommand {
    return new TextCommand(decoder.decode(bytes));
  }
  /** The text's bytes. @returns them */
  encode(): Uint8Array {
    return new TextEncoder().encode(this.text);
  }
  /** Returns the text. @returns it */
  apply(): string {
    return this.text;
  }
}

/** Sends a server may make within one simulated event before it counts as a busy loop. */
const BUSY_LOOP_SENDS = 5000;

/**
 * A transporter that fails every send once its process is dead, and that stops a sender
 * that sends without end within one simulated event (a retry loop with no backoff would
 * otherwise never yield to the event queue): it reports it and leaves the send pending.
 */
function killable(
  inner: Transporter,
  dead: () => boolean,
  clock: SimClock,
  onBusyLoop: (kind: string, to: string) => void,
  filter: (kind: string, to: string) => SendFate | undefined,
  timeoutMs: number,
): Transporter {
  let event = -1;
  let sends = 0;
  const guard = <T>(kind: string, to: string, send: () => Promise<T>): Promise<T> => {
    if (dead()) return Promise.reject(new TransportError("Sender process is dead"));
    if (clock.eventsRun !== event) {
      event = clock.eventsRun;
      sends = 0;
    }
    if (++sends > BUSY_LOOP_SENDS) {
      if (sends === BUSY_LOOP_SENDS + 1) onBusyLoop(kind, to);
      return new Promise<T>(() => {});
    }
    const fate = filter(kind, to);
    if (fate === "drop") {
      // Lost on the way: the sender learns nothing until its RPC times out.
      return new Promise<T>((_, reject) =>
        clock.setTimeout(
          () => reject(new TransportError(`${kind} to ${to} timed out after ${timeoutMs} ms`)),
          timeoutMs,
        )
      );
    }
    if (typeof fate === "number") {
      return new Promise<T>((resolve, reject) =>
        clock.setTimeout(() => {
          if (dead()) reject(new TransportError("Sender process is dead"));
          else send().then(resolve, reject);
        }, fate)
      );
    }
    return send();
  };
  return {
    sendVoteRequest: (s, p, r, o) =>
      guard("RequestVote", p.name, () => inner.sendVoteRequest(s, p, r, o)),
    sendAppendEntriesRequest: (s, p, r, o) =>
      guard("AppendEntries", p.name, () => inner.sendAppendEntriesRequest(s, p, r, o)),
    sendSnapshotRequest: (s, p, r, o) =>
      guard("SnapshotRequest", p.name, () => inner.sendSnapshotRequest(s, p, r, o)),
    sendSnapshotRecoveryRequest: (s, p, r, o) =>
      guard("SnapshotRecoveryRequest", p.name, () => inner.sendSnapshotRecoveryRequest(s, p, r, o)),
    sendTimeoutNow: (s, p, r, o) =>
      guard("TimeoutNow", p.name, () => inner.sendTimeoutNow(s, p, r, o)),
  };
}

/**
 * What a {@link Simulator.filterSends} filter does with one request: lose it, hold it back
 * for a number of ms before the network takes it, or (undefined) let it be.
 */
export type SendFate = "drop" | number;

/** A short description of an error. @returns `Name: message` */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
