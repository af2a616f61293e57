// A synchronous network of Consensus instances for protocol tests: messages are queued and
// delivered by hand, storage is an array per node that survives restarts, and time moves
// only through `advance`. Not exported: the public simulator lives in testing/.
import { Consensus, type ConsensusOptions, type OutboundMessage } from "./consensus.ts";
import type { HardState, LogEntry, PeerInfo } from "./types.ts";
import { SeededRandom } from "./testing/seeded_random.ts";

export interface NodeDisk {
  hardState: HardState;
  entries: LogEntry[];
}

export interface QueuedMessage {
  from: string;
  message: OutboundMessage;
}

export interface HarnessOptions
  extends Partial<Omit<ConsensusOptions, "name" | "random" | "peers" | "joinExisting">> {
  seed?: number;
  /** Founding members; the other names start empty and wait to be added. @default every name */
  members?: string[];
}

export class CoreHarness {
  readonly names: string[];
  readonly nodes = new Map<string, Consensus>();
  readonly disks = new Map<string, NodeDisk>();
  readonly down = new Set<string>();
  readonly cut = new Set<string>();
  queue: QueuedMessage[] = [];
  /** Messages this predicate matches are moved to {@link held} instead of delivered. */
  holdBack: ((queued: QueuedMessage) => boolean) | undefined;
  /** Messages held back, in the order they were sent. */
  held: QueuedMessage[] = [];
  /** Every time a leader asked for a snapshot to be sent (`Ready.snapshotsNeeded`). */
  readonly snapshotRequests: { from: string; to: string }[] = [];
  /** Every (index → term) pair each node applied as committed, for safety checks. */
  readonly committed = new Map<string, LogEntry[]>();
  nowMs = 0;
  readonly #options: HarnessOptions;
  readonly #random: SeededRandom;

  constructor(names: string[], options: HarnessOptions = {}) {
    this.names = names;
    this.#options = options;
    this.#random = new SeededRandom(options.seed ?? 1);
    for (const name of names) {
      this.disks.set(name, { hardState: { term: 0, votedFor: "" }, entries: [] });
      this.committed.set(name, []);
      this.#boot(name);
    }
  }

  get peers(): PeerInfo[] {
    return (this.#options.members ?? this.names).map((name) => ({
      name,
      connectionString: `mem://${name}`,
    }));
  }

  node(name: string): Consensus {
    return this.nodes.get(name)!;
  }

  #boot(name: string): void {
    const disk = this.disks.get(name)!;
    const core = new Consensus({
      electionTimeoutMs: 150,
      heartbeatIntervalMs: 50,
      preVote: false,
      checkQuorum: false,
      ...this.#options,
      name,
      peers: this.peers,
      joinExisting: !this.peers.some((peer) => peer.name === name),
      random: { next: () => this.#random.next() },
    });
    core.restore({
      hardState: { ...disk.hardState },
      snapshot: undefined,
      entries: [...disk.entries],
    }, this.nowMs);
    this.nodes.set(name, core);
    this.committed.set(name, []);
  }

  /** Simulates a crash and restart from the node's disk. */
  restart(name: string): void {
    this.queue = this.queue.filter((queued) => queued.from !== name);
    this.#boot(name);
  }

  isolate(name: string): void {
    for (const other of this.names) {
      if (other === name) continue;
      this.cut.add(`${name}>${other}`);
      this.cut.add(`${other}>${name}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Persists a node's outputs (synchronously) and queues its messages. */
  flush(name: string): void {
    const core = this.node(name);
    const ready = core.takeReady();
    const disk = this.disks.get(name)!;
    if (ready.hardState) disk.hardState = { ...ready.hardState };
    const first = ready.entries[0];
    if (first) {
      disk.entries = disk.entries.filter((entry) => entry.index < first.index).concat(
        ready.entries,
      );
      const last = ready.entries[ready.entries.length - 1]!;
      core.persisted(last.index, last.term);
    }
    for (const message of ready.messages) this.queue.push({ from: name, message });
    for (const peer of ready.snapshotsNeeded) {
      this.snapshotRequests.push({ from: name, to: peer.name });
    }
    this.#recordCommits(name);
    // persisted() may have advanced the commit and produced more messages
    if (core.hasReady) this.flush(name);
  }

  #recordCommits(name: string): void {
    const core = this.node(name);
    const applied = this.committed.get(name)!;
    const start = applied.length + 1;
    if (core.commitIndex >= start && start > core.snapshotIndex) {
      applied.push(...core.entriesBetween(start, core.commitIndex + 1));
    }
  }

  #linkUp(from: string, to: string): boolean {
    return !this.down.has(from) && !this.down.has(to) && !this.cut.has(`${from}>${to}`);
  }

  /** Delivers one queued message and its response. Returns false when the queue is empty. */
  deliverOne(): boolean {
    const queued = this.queue.shift();
    if (queued === undefined) return false;
    if (this.holdBack?.(queued)) {
      this.held.push(queued);
      return true;
    }
    const { from, message } = queued;
    const to = message.to.name;
    const sender = this.nodes.get(from)!;
    const target = this.nodes.get(to);
    const requestArrives = target !== undefined && this.#linkUp(from, to);
    switch (message.kind) {
      case "appendEntries": {
        if (!requestArrives) {
          sender.handleAppendEntriesFailure(to, message.request);
          break;
        }
        const response = target.handleAppendEntries(message.request);
        this.flush(to);
        if (this.#linkUp(to, from)) {
          sender.handleAppendEntriesResponse(to, message.request, response);
        } else sender.handleAppendEntriesFailure(to, message.request);
        break;
      }
      case "requestVote": {
        if (!requestArrives) break;
        const response = target.handleRequestVote(message.request);
        this.flush(to);
        if (this.#linkUp(to, from)) sender.handleRequestVoteResponse(to, message.request, response);
        break;
      }
      case "timeoutNow": {
        if (!requestArrives) break;
        target.handleTimeoutNow(message.request);
        this.flush(to);
        break;
      }
    }
    this.flush(from);
    return true;
  }

  /** Delivers messages until none are left (bounded). */
  stabilize(limit = 100_000): void {
    for (let i = 0; i < limit; i++) {
      for (const name of this.names) this.flush(name);
      if (!this.deliverOne()) return;
    }
    throw new Error("network did not stabilize");
  }

  /** Moves time forward in steps, ticking every live node and delivering all messages. */
  advance(ms: number, stepMs = 10): void {
    for (let elapsed = 0; elapsed < ms; elapsed += stepMs) {
      this.nowMs += stepMs;
      for (const name of this.names) {
        if (this.down.has(name)) continue;
        this.node(name).tick(this.nowMs);
        this.flush(name);
      }
      this.stabilize();
    }
  }

  leaders(): string[] {
    return this.names.filter((name) => !this.down.has(name) && this.node(name).role === "leader");
  }

  /** Runs until exactly one live leader exists (bounded); returns its name. */
  electLeader(maxMs = 5000): string {
    for (let elapsed = 0; elapsed < maxMs; elapsed += 10) {
      this.advance(10);
      const leaders = this.leaders();
      if (leaders.length === 1) return leaders[0]!;
    }
    throw new Error(`no single leader after ${maxMs} ms: ${this.leaders().join(",")}`);
  }

  propose(leader: string, text: string): number {
    const { index } = this.node(leader).propose("test", new TextEncoder().encode(text));
    this.flush(leader);
    return index;
  }
}

export function entryText(entry: LogEntry): string {
  return new TextDecoder().decode(entry.command);
}
