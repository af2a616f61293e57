/**
 * A deterministic cluster simulator (TigerBeetle's VOPR, FoundationDB's simulation): a whole
 * cluster of the real {@link Consensus} code runs in one thread on a simulated clock, over
 * a simulated network (drops, delays that reorder, duplicates, partitions, one-way links)
 * and simulated storage (writes durable after an fsync delay; a crash loses or tears what
 * was not yet durable), driven the way `Server` drives the core. One seed decides
 * everything, so any failure replays exactly with `deno task sim --seed N --nodes K`.
 *
 * Checkers run on every run: election safety, log matching, leader completeness, state
 * machine safety, acknowledged writes, and linearizability of the clients' history.
 * @module
 */
import type { Consensus, OutboundMessage } from "../consensus.ts";
import type { PeerInfo } from "../types.ts";
import { SafetyChecker } from "./_sim_checkers.ts";
import { EventQueue, TraceHash } from "./_sim_event_queue.ts";
import { encodeKv } from "./_sim_kv.ts";
export type { ClientReply } from "./_sim_node.ts";
import {
  type ClientReply,
  type NodeHost,
  SimNode,
  type SimNodeConfig,
  type SnapshotMessage,
  type SnapshotReply,
} from "./_sim_node.ts";
import {
  checkLinearizability,
  HistoryRecorder,
  type KvInput,
  kvModel,
  type KvOutput,
} from "./linearizability.ts";
import { SeededRandom } from "./seeded_random.ts";

/** Network behaviour of a {@link Simulator}; every field may change during a run. */
export interface NetworkFaults {
  /** Chance that a message is lost. @default 0 */
  dropRate: number;
  /** Chance that a message is delivered twice. @default 0 */
  duplicateRate: number;
  /** Shortest one-way delay. @default 1 */
  minDelayMs: number;
  /** Longest usual one-way delay; delays vary in between, which reorders messages. @default 5 */
  maxDelayMs: number;
  /** Chance that a message is held back for up to `longDelayMs`. @default 0 */
  longDelayRate: number;
  /** Longest delay of a held-back message. @default 0 */
  longDelayMs: number;
}

/** Options of a {@link Simulator}. */
export interface SimulatorOptions {
  /** The seed every random choice derives from. */
  seed: number;
  /** Number of servers (named `n1`, `n2`, ...). @default 3 */
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
  /** Most entries per AppendEntries. @default 2000 */
  maxEntriesPerMessage?: number;
  /** Each node snapshots after this many applied entries; 0 never. @default 0 */
  snapshotEvery?: number;
  /** Entries kept behind a snapshot. @default 5 */
  trailingEntries?: number;
  /** Shortest simulated fsync. @default 1 */
  fsyncMinMs?: number;
  /** Longest simulated fsync. @default 5 */
  fsyncMaxMs?: number;
  /** After this long without an answer an RPC fails. @default the election timeout */
  rpcTimeoutMs?: number;
  /** Initial network behaviour. */
  network?: Partial<NetworkFaults>;
  /** Receives one line per simulated event (verbose replays). */
  log?: (line: string) => void;
  /**
   * Breaks one of the Server's ordering rules on purpose, to show the checkers catch it:
   * `replyBeforeFlush` answers requests before the writes they depend on are durable,
   * `voteBeforePersist` asks for votes before the candidacy is durable.
   */
  sabotage?: "replyBeforeFlush" | "voteBeforePersist";
}

/** Counters of what a run exercised. */
export interface SimStats {
  /** Requests and responses handed to the network. */
  messagesSent: number;
  /** Messages lost to random drops. */
  dropped: number;
  /** Messages lost to partitions and cut links. */
  partitionDropped: number;
  /** Messages delivered twice. */
  duplicated: number;
  /** Messages delivered after a later message on the same link. */
  reordered: number;
  /** Partitions made. */
  partitions: number;
  /** One-way link cuts made. */
  oneWayCuts: number;
  /** Crashes. */
  crashes: number;
  /** Crashes that lost or tore writes not yet durable. */
  crashesLostWrites: number;
  /** Restarts. */
  restarts: number;
  /** Storage writes. */
  writes: number;
  /** Snapshots taken by nodes. */
  snapshotsTaken: number;
  /** Snapshots installed from a leader. */
  snapshotsInstalled: number;
  /** Bytes of requests sent between servers (6.824's byte count). */
  rpcBytes: number;
}

/** A node's state, read-only. */
export interface SimNodeInfo {
  /** Node name. */
  name: string;
  /** Whether it runs. */
  up: boolean;
  /** `follower`, `precandidate`, `candidate` or `leader`. */
  role: string;
  /** Current term. */
  term: number;
  /** Leader it knows, `""` if none. */
  leader: string;
  /** Commit index. */
  commitIndex: number;
  /** Last log index. */
  lastIndex: number;
  /** Last index applied to its state machine. */
  appliedIndex: number;
  /** Index of its snapshot point. */
  snapshotIndex: number;
}

/**
 * A cluster of real {@link Consensus} instances on a simulated clock, network and disks.
 * Drive it by hand (the 6.824 scenarios) or through {@link runSimulation}.
 * @example
 * ```ts
 * import { Simulator } from "@tsraft/core/testing";
 * const sim = new Simulator({ seed: 1, nodes: 3 });
 * sim.runFor(2000);
 * if (sim.leaders().length !== 1) throw new Error("expected one leader");
 * sim.checkSafety();
 * if (sim.violations.length > 0) throw new Error(sim.violations.join("\n"));
 * ```
 */
export class Simulator {
  /** Node names, `n1`...`nK`. */
  readonly names: string[];
  readonly #queue = new EventQueue();
  readonly #random: SeededRandom;
  readonly #faultRandom: SeededRandom;
  readonly #nodes = new Map<string, SimNode>();
  readonly #checker: SafetyChecker;
  readonly #hash = new TraceHash();
  readonly #log: ((line: string) => void) | undefined;
  readonly #cut = new Set<string>();
  readonly #linkSeq = new Map<string, { sent: number; delivered: number }>();
  readonly #rpcTimeoutMs: number;
  readonly #fsyncMinMs: number;
  readonly #fsyncMaxMs: number;
  #network: NetworkFaults;
  #failed = false;
  /** Bumped by {@link calm}: crashes scheduled before it are called off. */
  #faultEra = 0;
  /** What the run exercised. */
  readonly stats: SimStats = {
    messagesSent: 0,
    dropped: 0,
    partitionDropped: 0,
    duplicated: 0,
    reordered: 0,
    partitions: 0,
    oneWayCuts: 0,
    crashes: 0,
    crashesLostWrites: 0,
    restarts: 0,
    writes: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    rpcBytes: 0,
  };

  /**
   * Boots every node from an empty disk.
   * @param options see {@link SimulatorOptions}
   */
  constructor(options: SimulatorOptions) {
    const count = options.nodes ?? 3;
    if (!Number.isInteger(count) || count < 1) throw new RangeError("nodes must be >= 1");
    this.#random = new SeededRandom(options.seed);
    this.#faultRandom = new SeededRandom(this.#random.int(0x7fffffff));
    this.#log = options.log;
    this.#checker = new SafetyChecker(() => this.#queue.nowMs);
    const electionTimeoutMs = options.electionTimeoutMs ?? 150;
    this.#rpcTimeoutMs = options.rpcTimeoutMs ?? electionTimeoutMs;
    this.#fsyncMinMs = options.fsyncMinMs ?? 1;
    this.#fsyncMaxMs = Math.max(this.#fsyncMinMs, options.fsyncMaxMs ?? 5);
    this.#network = {
      dropRate: 0,
      duplicateRate: 0,
      minDelayMs: 1,
      maxDelayMs: 5,
      longDelayRate: 0,
      longDelayMs: 0,
      ...options.network,
    };
    const config: SimNodeConfig = {
      electionTimeoutMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 50,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxInflightMessages: options.maxInflightMessages ?? 32,
      maxEntriesPerMessage: options.maxEntriesPerMessage ?? 2000,
      snapshotEvery: options.snapshotEvery ?? 0,
      trailingEntries: options.trailingEntries ?? 5,
      sabotage: options.sabotage,
    };
    this.names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    const peers: PeerInfo[] = this.names.map((name) => ({ name, connectionString: name }));
    const host = this.#host();
    for (const name of this.names) {
      const random = new SeededRandom(this.#random.int(0x7fffffff));
      this.#nodes.set(name, new SimNode(name, host, { config, peers, random }));
    }
    for (const node of this.#nodes.values()) this.#guard(() => node.boot());
  }

  // ------------------------------------------------------------ time

  /** Current simulated time. */
  get nowMs(): number {
    return this.#queue.nowMs;
  }

  /** Fingerprint of everything that happened so far: equal seeds give equal hashes. */
  get traceHash(): string {
    return `${this.#hash.hex}/${this.#hash.count}`;
  }

  /** Violations found so far (safety checks and exceptions thrown by the core). */
  get violations(): readonly string[] {
    return this.#checker.violations;
  }

  /** Number of terms in which some node was leader. */
  get leaderTerms(): number {
    return this.#checker.leaderTerms;
  }

  /**
   * Runs every event due in the next `ms` milliseconds.
   * @param ms simulated time to run
   */
  runFor(ms: number): void {
    this.#runTo(this.nowMs + ms);
  }

  /**
   * Runs until `done()` holds (checked after every event) or `maxMs` passes.
   * @returns whether `done()` held
   */
  runUntil(done: () => boolean, maxMs: number): boolean {
    const deadline = this.nowMs + maxMs;
    while (!this.#failed) {
      if (done()) return true;
      if (this.#queue.peekMs() > deadline) break;
      this.#guard(() => this.#queue.step(deadline));
    }
    this.#queue.advanceTo(Math.max(this.nowMs, deadline));
    return done();
  }

  /**
   * Schedules `run` after `delayMs` of simulated time.
   * @param delayMs delay
   * @param run what to run
   */
  after(delayMs: number, run: () => void): void {
    this.#queue.at(this.nowMs + delayMs, () => this.#guard(run));
  }

  #runTo(untilMs: number): void {
    while (!this.#failed && this.#queue.peekMs() <= untilMs) {
      this.#guard(() => this.#queue.step(untilMs));
    }
    if (!this.#failed) this.#queue.advanceTo(untilMs);
  }

  #guard(run: () => unknown): void {
    try {
      run();
    } catch (error) {
      this.#failed = true;
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      this.#checker.violation(`exception: ${text}`);
    }
  }

  // ------------------------------------------------------------ nodes

  /**
   * The live {@link Consensus} of a node (read it; drive it only through the simulator).
   * @param name the node
   * @returns its current core (a new one after each restart)
   */
  core(name: string): Consensus {
    return this.#node(name).core;
  }

  /** A node's state. */
  info(name: string): SimNodeInfo {
    const node = this.#node(name);
    const core = node.core;
    return {
      name,
      up: node.up,
      role: core.role,
      term: core.term,
      leader: core.leader,
      commitIndex: core.commitIndex,
      lastIndex: core.lastIndex,
      appliedIndex: node.appliedIndex,
      snapshotIndex: core.snapshotIndex,
    };
  }

  /** Whether a node is running. */
  isUp(name: string): boolean {
    return this.#node(name).up;
  }

  /** Names of running nodes that believe they lead. */
  leaders(): string[] {
    return this.names.filter((name) => {
      const node = this.#node(name);
      return node.up && node.core.role === "leader";
    });
  }

  /**
   * Crashes a node: what it had not made durable is lost, and its write in progress may be
   * torn (a prefix of its entries reaches the disk).
   * @param name the node
   * @param options `tearWrites: false` loses the write in progress whole; `duringNextWrite`
   *   crashes the node before the next write it starts is durable
   */
  crash(name: string, options: { tearWrites?: boolean; duringNextWrite?: boolean } = {}): void {
    const node = this.#node(name);
    if (!node.up) return;
    if (options.duringNextWrite) {
      // Strike while the next write is on its way to the disk: its fsync has not completed.
      const era = this.#faultEra;
      node.onNextWrite = (fsyncMs) => {
        const delay = this.#faultRandom.int(Math.max(1, fsyncMs));
        this.#queue.at(this.nowMs + delay, () =>
          this.#guard(() => {
            if (era === this.#faultEra) {
              this.crash(name, { tearWrites: options.tearWrites ?? true });
            }
          }));
      };
      return;
    }
    const outcome = node.crash(this.#faultRandom, options.tearWrites ?? true);
    this.stats.crashes++;
    if (outcome.lostWrites) this.stats.crashesLostWrites++;
  }

  /** Restarts a crashed node from its durable state. */
  restart(name: string): void {
    const node = this.#node(name);
    if (node.up) return;
    this.stats.restarts++;
    this.#guard(() => node.boot());
  }

  /** The number of requests a node has received. */
  rpcCount(name?: string): number {
    if (name !== undefined) return this.#node(name).rpcsReceived;
    let total = 0;
    for (const node of this.#nodes.values()) total += node.rpcsReceived;
    return total;
  }

  /**
   * How many nodes applied `index`, and the command there (6.824's `nCommitted`). A node that
   * received the entry inside a snapshot counts with the committed command.
   */
  nCommitted(index: number): { count: number; content: string | undefined } {
    let count = 0;
    let content: string | undefined;
    for (const node of this.#nodes.values()) {
      if (node.appliedIndex < index) continue;
      const applied = node.appliedLog.get(index) ?? this.#checker.committedContent(index);
      if (applied === undefined) continue;
      if (content !== undefined && content !== applied) {
        this.#checker.violation(`nCommitted(${index}): ${content} vs ${applied}`);
      }
      content = applied;
      count++;
    }
    return { count, content };
  }

  /**
   * Proposes a raw command on a node, as 6.824's `Start` (`commandName` "test"). Like
   * `Server.do`, the node drives its core once per turn, so proposals made in one go are
   * replicated in one message per follower.
   * @returns the index and term, or `undefined` when the node is not a running leader
   */
  start(name: string, text: string): { index: number; term: number } | undefined {
    const node = this.#node(name);
    if (!node.up || node.core.role !== "leader") return undefined;
    let proposal: { index: number; term: number } | undefined;
    this.#guard(() => {
      proposal = node.propose("test", new TextEncoder().encode(text), () => {}, true);
    });
    return proposal;
  }

  // ------------------------------------------------------------ network

  /** The current network behaviour. */
  get network(): NetworkFaults {
    return { ...this.#network };
  }

  /** Changes the network behaviour. */
  setNetwork(faults: Partial<NetworkFaults>): void {
    this.#network = { ...this.#network, ...faults };
  }

  /** Cuts every link to and from `name` (6.824's `disconnect`). */
  disconnect(name: string): void {
    for (const other of this.names) {
      if (other === name) continue;
      this.#cut.add(`${name}>${other}`);
      this.#cut.add(`${other}>${name}`);
    }
  }

  /** Restores every link to and from `name`, except to nodes still disconnected. */
  connect(name: string): void {
    for (const other of this.names) {
      this.#cut.delete(`${name}>${other}`);
      this.#cut.delete(`${other}>${name}`);
    }
  }

  /** Splits the cluster: nodes talk only within their group. */
  partition(groups: string[][]): void {
    this.stats.partitions++;
    this.#cut.clear();
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => group.forEach((name) => groupOf.set(name, i)));
    for (const a of this.names) {
      for (const b of this.names) {
        if (a !== b && groupOf.get(a) !== groupOf.get(b)) this.#cut.add(`${a}>${b}`);
      }
    }
    this.#trace(`partition ${JSON.stringify(groups)}`);
  }

  /** Cuts the link from `from` to `to` only. */
  cutOneWay(from: string, to: string): void {
    this.stats.oneWayCuts++;
    this.#cut.add(`${from}>${to}`);
    this.#trace(`cut ${from}>${to}`);
  }

  /**
   * Ends every fault: heals the network, makes it reliable (no drops, duplicates or long
   * delays), calls off scheduled crashes and restarts every crashed node.
   */
  calm(): void {
    this.#faultEra++;
    for (const node of this.#nodes.values()) node.onNextWrite = undefined;
    this.heal();
    this.setNetwork({ dropRate: 0, duplicateRate: 0, longDelayRate: 0 });
    for (const name of this.names) this.restart(name);
  }

  /** Restores every link. */
  heal(): void {
    this.#cut.clear();
    this.#trace("heal");
  }

  /** Whether messages from `from` reach `to` now (clients are never partitioned). */
  linkUp(from: string, to: string): boolean {
    return !this.#cut.has(`${from}>${to}`);
  }

  /**
   * Sends a client request to a node; `done` gets the reply, or `undefined` when none came
   * within `timeoutMs` (the outcome is then unknown).
   * @param clientId the client (its messages may be dropped, never partitioned)
   * @param node the server asked
   * @param options the operation, whether a read goes through the log (else ReadIndex),
   *   the timeout and the callback
   */
  request(
    clientId: string,
    node: string,
    options: {
      input: KvInput;
      viaLog: boolean;
      timeoutMs: number;
      done: (reply: ClientReply | undefined) => void;
    },
  ): void {
    let finished = false;
    const finish = (reply: ClientReply | undefined) => {
      if (finished) return;
      finished = true;
      options.done(reply);
    };
    const target = this.#node(node);
    this.#transmit(clientId, node, `req ${JSON.stringify(options.input)}`, () => {
      if (!target.up) return;
      target.onClient(options.input, options.viaLog, (reply) => {
        this.#transmit(node, clientId, `reply ${reply.kind}`, () => finish(reply), false);
      });
    }, false);
    this.after(options.timeoutMs, () => finish(undefined));
  }

  // ------------------------------------------------------------ checks

  /** Checks log matching on the durable logs of every node (also run periodically). */
  checkLogMatching(): void {
    this.#checker.checkLogMatching([...this.#nodes.values()].map((node) => node.durableLog()));
  }

  /** Runs the end-of-run checks: log matching on durable logs, leader completeness of leaders. */
  checkSafety(): void {
    this.checkLogMatching();
    for (const node of this.#nodes.values()) {
      const core = node.core;
      if (!node.up || core.role !== "leader") continue;
      this.#checker.checkLeaderCompleteness(
        node.name,
        core.term,
        core.snapshotIndex,
        (index) => core.termAt(index),
      );
    }
  }

  /** Records a violation found outside the simulator (by a workload or a test). */
  violation(text: string): void {
    this.#checker.violation(text);
  }

  /** The committed command at `index`, as `commandName|text`, if known. */
  committedContent(index: number): string | undefined {
    return this.#checker.committedContent(index);
  }

  // ------------------------------------------------------------ internals

  #node(name: string): SimNode {
    const node = this.#nodes.get(name);
    if (node === undefined) throw new RangeError(`Unknown node ${name}`);
    return node;
  }

  #trace(text: string): void {
    const line = `${this.nowMs} ${text}`;
    this.#hash.add(line);
    this.#log?.(line);
  }

  #host(): NodeHost {
    const queue = this.#queue;
    return {
      get nowMs() {
        return queue.nowMs;
      },
      at: (atMs, run) => this.#queue.at(atMs, run),
      fsyncDelayMs: () =>
        this.#fsyncMinMs + this.#random.int(this.#fsyncMaxMs - this.#fsyncMinMs + 1),
      rpc: (from, message) => this.#rpc(from, message),
      sendSnapshot: (from, to, message, done) => this.#rpcSnapshot(from, to, message, done),
      checker: this.#checker,
      stats: this.stats,
      trace: (text) => this.#trace(text),
    };
  }

  /**
   * Delivers `deliver` after a delay unless the message is lost; may deliver it twice,
   * except client traffic: the KV has no session deduplication, so a duplicated request
   * would really run twice.
   */
  #transmit(
    from: string,
    to: string,
    what: string,
    deliver: () => void,
    duplicable = true,
  ): void {
    const net = this.#network;
    const random = this.#faultRandom;
    this.stats.messagesSent++;
    const link = `${from}>${to}`;
    let seq = this.#linkSeq.get(link);
    if (seq === undefined) this.#linkSeq.set(link, seq = { sent: 0, delivered: 0 });
    const id = ++seq.sent;
    if (net.dropRate > 0 && random.chance(net.dropRate)) {
      this.stats.dropped++;
      this.#trace(`drop ${link} ${what}`);
      return;
    }
    const copies = duplicable && net.duplicateRate > 0 && random.chance(net.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      let delay = net.minDelayMs + random.int(Math.max(0, net.maxDelayMs - net.minDelayMs) + 1);
      if (net.longDelayRate > 0 && random.chance(net.longDelayRate)) {
        delay += random.int(net.longDelayMs + 1);
      }
      const linkSeq = seq;
      this.#queue.at(this.nowMs + delay, () =>
        this.#guard(() => {
          if (!this.linkUp(from, to)) {
            this.stats.partitionDropped++;
            return;
          }
          if (id < linkSeq.delivered) this.stats.reordered++;
          else linkSeq.delivered = id;
          this.#trace(`${link} ${what}`);
          deliver();
        }));
    }
  }

  #rpc(from: SimNode, message: OutboundMessage): void {
    const to = this.#node(message.to.name);
    const incarnation = from.incarnation;
    const alive = () => from.up && from.incarnation === incarnation;
    let answered = false;
    switch (message.kind) {
      case "appendEntries": {
        const req = message.request;
        let bytes = 64;
        for (const entry of req.entries) {
          bytes += 24 + entry.commandName.length + entry.command.length;
        }
        this.stats.rpcBytes += bytes;
        const what =
          `ae t=${req.term} prev=${req.prevLogIndex}:${req.prevLogTerm} n=${req.entries.length} c=${req.commitIndex}`;
        this.#transmit(from.name, to.name, what, () => {
          if (!to.up) return;
          to.onAppendEntries(req, (resp) => {
            this.#transmit(
              to.name,
              from.name,
              `aer t=${resp.term} ok=${resp.success} i=${resp.index}`,
              () => {
                if (answered || !alive()) return;
                answered = true;
                from.core.tick(this.nowMs);
                from.core.handleAppendEntriesResponse(to.name, req, resp);
                from.drive();
              },
            );
          });
        });
        this.#queue.at(this.nowMs + this.#rpcTimeoutMs, () =>
          this.#guard(() => {
            if (answered || !alive()) return;
            answered = true;
            from.core.handleAppendEntriesFailure(to.name, req);
            from.drive();
          }));
        return;
      }
      case "requestVote": {
        const req = message.request;
        this.stats.rpcBytes += 64;
        const what =
          `rv t=${req.term} pre=${req.preVote} last=${req.lastLogIndex}:${req.lastLogTerm}`;
        this.#transmit(from.name, to.name, what, () => {
          if (!to.up) return;
          to.onRequestVote(req, (resp) => {
            this.#transmit(to.name, from.name, `rvr t=${resp.term} ok=${resp.voteGranted}`, () => {
              if (answered || !alive()) return;
              answered = true;
              from.core.handleRequestVoteResponse(to.name, req, resp);
              from.drive();
            });
          });
        });
        return;
      }
      case "timeoutNow": {
        const req = message.request;
        this.stats.rpcBytes += 32;
        this.#transmit(from.name, to.name, `tn t=${req.term}`, () => {
          if (to.up) to.onTimeoutNow(req, () => {});
        });
        return;
      }
    }
  }

  #rpcSnapshot(
    from: SimNode,
    to: PeerInfo,
    message: SnapshotMessage,
    done: (reply: SnapshotReply | undefined) => void,
  ): void {
    const target = this.#node(to.name);
    let answered = false;
    const finish = (reply: SnapshotReply | undefined) => {
      if (answered) return;
      answered = true;
      done(reply);
    };
    this.stats.rpcBytes += 64 + message.data.length;
    const what = `snap t=${message.term} ${message.meta.lastIndex}:${message.meta.lastTerm}`;
    this.#transmit(from.name, to.name, what, () => {
      if (!target.up) return;
      target.onSnapshot(message, (reply) => {
        this.#transmit(to.name, from.name, `snapr ok=${reply.success}`, () => finish(reply));
      });
    });
    this.#queue.at(this.nowMs + this.#rpcTimeoutMs * 2, () => this.#guard(() => finish(undefined)));
  }
}

// ------------------------------------------------------------------ randomized runs

/** Which faults a randomized run injects; chosen from the seed by {@link simulationConfig}. */
export interface SimulationConfig {
  /** The run's seed. */
  seed: number;
  /** Cluster size. */
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
  /** Entries applied between snapshots (0: none). */
  snapshotEvery: number;
  /** Entries kept behind a snapshot. */
  trailingEntries: number;
  /** Longest fsync. */
  fsyncMaxMs: number;
  /** Network faults of the fault phase. */
  network: NetworkFaults;
  /** The nemesis partitions the cluster. */
  partitions: boolean;
  /** The nemesis cuts links one way. */
  oneWayLinks: boolean;
  /** The nemesis crashes and restarts nodes. */
  crashes: boolean;
  /** Simulated time with faults, before the liveness phase. */
  faultPhaseMs: number;
  /** Mean time between fault actions. */
  nemesisIntervalMs: number;
  /** Concurrent clients. */
  clients: number;
  /** Keys the clients use. */
  keys: number;
  /** A client gives up (unknown outcome) after this long. */
  clientTimeoutMs: number;
  /** Fraction of reads served by ReadIndex instead of through the log. */
  readIndexRate: number;
}

/** Coverage flags of one run: which fault kinds it exercised. */
export interface SimulationCoverage {
  /** Messages were dropped. */
  drops: boolean;
  /** Messages were duplicated. */
  duplicates: boolean;
  /** Messages overtook earlier ones. */
  reordering: boolean;
  /** The cluster was partitioned. */
  partitions: boolean;
  /** Links were cut one way. */
  oneWayLinks: boolean;
  /** Nodes crashed. */
  crashes: boolean;
  /** A crash lost or tore writes not yet durable. */
  crashLostWrites: boolean;
  /** A follower installed a leader's snapshot. */
  snapshotsInstalled: boolean;
  /** More than one term had a leader. */
  leadershipChanges: boolean;
}

/** The outcome of {@link runSimulation}. */
export interface SimulationResult {
  /** The seed. */
  seed: number;
  /** Cluster size. */
  nodes: number;
  /** No violation. */
  ok: boolean;
  /** What the checkers found (empty when `ok`). */
  violations: string[];
  /** Things worth knowing that are not failures (unknown outcomes, a checker that gave up). */
  warnings: string[];
  /** Fingerprint of the run; equal for equal seeds and options. */
  traceHash: string;
  /** Simulated time at the end. */
  simulatedMs: number;
  /** Counters of what happened. */
  stats: SimStats;
  /** Which fault kinds were exercised. */
  coverage: SimulationCoverage;
  /** Client operations recorded, and how many of them ended with an unknown outcome. */
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
  /** Number of servers; by default 3, 5 or 7 chosen from the seed. */
  nodes?: number;
  /** Receives one line per simulated event. */
  log?: (line: string) => void;
  /** Time budget of the linearizability check (real time). @default 10000 */
  linearizabilityTimeoutMs?: number;
  /** See {@link SimulatorOptions.sabotage}. */
  sabotage?: "replyBeforeFlush" | "voteBeforePersist";
}

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

/**
 * The fault mix of a seed: each fault kind is switched on or off and sized by the seed.
 * @param seed the run's seed
 * @param nodes a fixed cluster size, or undefined to pick 3, 5 or 7
 * @returns the configuration
 */
export function simulationConfig(seed: number, nodes?: number): SimulationConfig {
  const random = new SeededRandom(seed ^ 0x5bd1e995);
  const size = pick(random, [3, 3, 3, 5, 5, 7]);
  const electionTimeoutMs = pick(random, [100, 150, 150, 300]);
  const jittery = random.chance(0.7);
  return {
    seed,
    nodes: nodes ?? size,
    electionTimeoutMs,
    heartbeatIntervalMs: Math.floor(electionTimeoutMs / pick(random, [3, 5])),
    preVote: random.chance(0.7),
    checkQuorum: random.chance(0.7),
    maxInflightMessages: pick(random, [1, 4, 32]),
    snapshotEvery: random.chance(0.6) ? pick(random, [5, 10, 25, 50]) : 0,
    trailingEntries: pick(random, [0, 2, 10]),
    fsyncMaxMs: pick(random, [1, 5, 20]),
    network: {
      dropRate: random.chance(0.6) ? pick(random, [0.01, 0.05, 0.1, 0.2]) : 0,
      duplicateRate: random.chance(0.4) ? pick(random, [0.01, 0.05, 0.1]) : 0,
      minDelayMs: 1,
      maxDelayMs: jittery ? pick(random, [5, 15, 40]) : 2,
      longDelayRate: jittery && random.chance(0.5) ? pick(random, [0.01, 0.05]) : 0,
      longDelayMs: pick(random, [100, 300, 1000]),
    },
    partitions: random.chance(0.5),
    oneWayLinks: random.chance(0.3),
    crashes: random.chance(0.6),
    faultPhaseMs: 2000 + random.int(4000),
    nemesisIntervalMs: pick(random, [100, 300, 600]),
    clients: 2 + random.int(4),
    keys: 1 + random.int(4),
    clientTimeoutMs: pick(random, [300, 1000]),
    readIndexRate: pick(random, [0, 0.5, 1]),
  };
}

/**
 * Runs one seed: a fault phase (clients, network faults, crashes, partitions as the seed
 * chooses), then a liveness phase (faults stop, every node restarts: a leader must be
 * elected and a write commit within a bound, and every node catch up), then the checkers.
 * @param seed the seed
 * @param options cluster size and logging
 * @returns what happened; `ok` is false on any violation
 * @example
 * ```ts
 * import { runSimulation } from "@tsraft/core/testing";
 * const result = runSimulation(42, { nodes: 3 });
 * if (!result.ok) throw new Error(`${result.violations.join("\n")}\nreplay: ${result.replay}`);
 * ```
 */
export function runSimulation(seed: number, options: RunSimulationOptions = {}): SimulationResult {
  const config = simulationConfig(seed, options.nodes);
  const sim = new Simulator({
    seed,
    nodes: config.nodes,
    electionTimeoutMs: config.electionTimeoutMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    preVote: config.preVote,
    checkQuorum: config.checkQuorum,
    maxInflightMessages: config.maxInflightMessages,
    snapshotEvery: config.snapshotEvery,
    trailingEntries: config.trailingEntries,
    fsyncMaxMs: config.fsyncMaxMs,
    network: config.network,
    ...(options.log ? { log: options.log } : {}),
    ...(options.sabotage ? { sabotage: options.sabotage } : {}),
  });
  const random = new SeededRandom(seed ^ 0x2545f491);
  const recorder = new HistoryRecorder<KvInput, KvOutput>({ now: () => sim.nowMs });
  const keys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
  const acked: { index: number; input: KvInput }[] = [];
  let faultPhase = true;
  const names = sim.names;

  // Clients: each runs one operation at a time against the node it believes leads.
  for (let c = 0; c < config.clients; c++) {
    const clientId = `c${c + 1}`;
    let guess = random.int(names.length);
    let seq = 0;
    const issue = () => {
      if (!faultPhase) return;
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
      const handle = recorder.invoke(clientId, input);
      sim.request(clientId, names[guess]!, {
        input,
        viaLog: input.op !== "get" || !random.chance(config.readIndexRate),
        timeoutMs: config.clientTimeoutMs,
        done: (reply) => {
          if (reply === undefined) {
            recorder.unknown(handle);
            guess = (guess + 1) % names.length;
          } else if (reply.kind === "ok") {
            recorder.ok(handle, reply.output);
            if (input.op !== "get") acked.push({ index: reply.index, input });
          } else {
            recorder.fail(handle);
            const hinted = reply.kind === "notLeader" ? names.indexOf(reply.leader) : -1;
            guess = hinted >= 0 ? hinted : (guess + 1) % names.length;
          }
          sim.after(1 + random.int(20), issue);
        },
      });
    };
    sim.after(random.int(100), issue);
  }

  // The nemesis: partitions, one-way cuts, crashes, restarts, heals.
  const actions: string[] = ["heal"];
  if (config.partitions) actions.push("partition", "partition");
  if (config.oneWayLinks) actions.push("oneWay", "oneWay");
  if (config.crashes) actions.push("crash", "crash", "restart", "restart");
  const nemesis = () => {
    if (!faultPhase) return;
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
        const up = names.filter((name) => sim.isUp(name));
        if (up.length > 0) {
          sim.crash(pick(random, up), {
            tearWrites: random.chance(0.8),
            duringNextWrite: random.chance(0.7),
          });
        }
        break;
      }
      case "restart": {
        const down = names.filter((name) => !sim.isUp(name));
        if (down.length > 0) sim.restart(pick(random, down));
        break;
      }
    }
    sim.after(1 + random.int(config.nemesisIntervalMs * 2), nemesis);
  };
  if (actions.length > 1) sim.after(random.int(config.nemesisIntervalMs * 2), nemesis);

  // Periodic durable log matching.
  const periodic = () => {
    sim.checkLogMatching();
    sim.after(500, periodic);
  };
  sim.after(500, periodic);

  sim.runFor(config.faultPhaseMs);

  // Liveness phase: faults stop, everything restarts.
  faultPhase = false;
  sim.calm();
  sim.setNetwork({ maxDelayMs: 5 });
  const livenessStartMs = sim.nowMs;
  const boundMs = config.electionTimeoutMs * 20 + config.clientTimeoutMs * 4;
  const finalOps: KvInput[] = [
    { op: "put", key: "final", value: `seed${seed}` },
    ...keys.map((key) => ({ op: "get", key }) as KvInput),
  ];
  let finalIndex = 0;
  let finalDone = false;
  let opIndex = 0;
  let guess = 0;
  const runFinal = () => {
    if (opIndex >= finalOps.length) {
      finalDone = true;
      return;
    }
    if (sim.nowMs - livenessStartMs > boundMs) return;
    const input = finalOps[opIndex]!;
    const handle = recorder.invoke("final", input);
    const leader = sim.leaders()[0];
    sim.request("final", leader ?? names[guess]!, {
      input,
      viaLog: true,
      timeoutMs: config.clientTimeoutMs,
      done: (reply) => {
        if (reply?.kind === "ok") {
          recorder.ok(handle, reply.output);
          if (opIndex === 0) {
            finalIndex = reply.index;
            acked.push({ index: reply.index, input });
          }
          opIndex++;
        } else if (reply === undefined) recorder.unknown(handle);
        else recorder.fail(handle);
        guess = (guess + 1) % names.length;
        sim.after(reply?.kind === "ok" ? 0 : 10, runFinal);
      },
    });
  };
  sim.after(0, runFinal);
  if (!sim.runUntil(() => finalDone, boundMs + config.clientTimeoutMs)) {
    sim.violation(
      `liveness: no leader committed the final write and reads within ${boundMs} ms after faults stopped ` +
        `(leaders: ${sim.leaders().join(",") || "none"}; ${
          names.map((n) => JSON.stringify(sim.info(n))).join(" ")
        })`,
    );
  } else if (
    !sim.runUntil(
      () => names.every((name) => sim.info(name).appliedIndex >= finalIndex),
      boundMs,
    )
  ) {
    sim.violation(
      `liveness: not every node applied ${finalIndex} within ${boundMs} ms: ` +
        names.map((n) => `${n}@${sim.info(n).appliedIndex}`).join(" "),
    );
  }
  sim.runFor(config.clientTimeoutMs + 10); // let outstanding client operations time out
  sim.checkSafety();

  // No acknowledged write lost: each one is the committed command at its index.
  for (const write of acked) {
    const committed = sim.committedContent(write.index);
    const expected = `sim:kv|${new TextDecoder().decode(encodeKv(write.input))}`;
    if (committed !== expected) {
      sim.violation(
        `acknowledged write lost: ${expected} was acknowledged at ${write.index}, ` +
          `the committed command there is ${committed}`,
      );
    }
  }

  const warnings: string[] = [];
  const history = recorder.history();
  const unknownOperations = history.filter((op) => op.return === undefined).length;
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

  const stats = sim.stats;
  return {
    seed,
    nodes: config.nodes,
    ok: sim.violations.length === 0,
    violations: [...sim.violations],
    warnings,
    traceHash: sim.traceHash,
    simulatedMs: sim.nowMs,
    stats: { ...stats },
    coverage: {
      drops: stats.dropped > 0,
      duplicates: stats.duplicated > 0,
      reordering: stats.reordered > 0,
      partitions: stats.partitions > 0,
      oneWayLinks: stats.oneWayCuts > 0,
      crashes: stats.crashes > 0,
      crashLostWrites: stats.crashesLostWrites > 0,
      snapshotsInstalled: stats.snapshotsInstalled > 0,
      leadershipChanges: sim.leaderTerms > 1,
    },
    operations: history.length,
    unknownOperations,
    replay: `deno task sim --seed ${seed} --nodes ${config.nodes}`,
    config,
  };
}
