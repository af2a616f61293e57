/**
 * Counting wrappers around a Storage, a Transporter and a RaftHandler, so a benchmark can
 * tell where a commit's time goes (how many fsyncs per commit, entries per AppendEntries,
 * round-trip and fsync latencies) without touching the packages under test.
 * @module
 */
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  RaftHandler,
  SaveBatch,
  Storage,
  Transporter,
} from "@tsraft/core";
import { percentile, round } from "./_load.ts";

/** Counts and latencies of one kind of operation. */
class Series {
  count = 0;
  items = 0;
  totalMs = 0;
  #samples: number[] = [];

  add(ms: number, items: number): void {
    this.count++;
    this.items += items;
    this.totalMs += ms;
    // Bounded so a long run cannot grow memory without end; early samples are enough.
    if (this.#samples.length < 200_000) this.#samples.push(ms);
  }

  reset(): void {
    this.count = 0;
    this.items = 0;
    this.totalMs = 0;
    this.#samples = [];
  }

  summary(): Record<string, number> {
    const sorted = Float64Array.from(this.#samples).sort();
    return {
      count: this.count,
      itemsPerOp: round(this.count > 0 ? this.items / this.count : 0, 2),
      p50Ms: round(percentile(sorted, 0.5), 3),
      p99Ms: round(percentile(sorted, 0.99), 3),
      meanMs: round(this.count > 0 ? this.totalMs / this.count : NaN, 3),
      totalMs: round(this.totalMs, 1),
    };
  }
}

/** Everything the wrappers of one node count. */
export class NodeStats {
  /** `Storage.save` calls; items = entries per save. */
  readonly saves = new Series();
  /** AppendEntries sent with entries; items = entries per request. */
  readonly appendsSent = new Series();
  /** AppendEntries sent without entries (heartbeats, commit-index updates). */
  readonly emptyAppendsSent = new Series();
  /** AppendEntries handled as a follower (until the reply, persistence included). */
  readonly appendsHandled = new Series();
  /** Leader changes seen since the node started (not reset: a bench compares two values). */
  leaderChanges = 0;
  /**
   * Wall-clock times (ms, sub-ms precision, comparable across processes on one machine) of
   * AppendEntries with entries, keyed by {@link traceKey}: `[sent, answered]` on the leader,
   * `[received, replied]` on a follower.
   */
  trace = new Map<string, [number, number]>();
  #sinceMs = performance.now();
  #cpuStart = cpuMicros();

  /** Starts a new measuring window. */
  reset(): void {
    this.saves.reset();
    this.appendsSent.reset();
    this.emptyAppendsSent.reset();
    this.appendsHandled.reset();
    this.trace.clear();
    this.#sinceMs = performance.now();
    this.#cpuStart = cpuMicros();
  }

  /** @returns the figures since the last reset, with the process's CPU use */
  summary(): Record<string, unknown> {
    const elapsedMs = performance.now() - this.#sinceMs;
    const cpu = cpuMicros();
    return {
      elapsedMs: round(elapsedMs, 1),
      cpuPercent: round(
        ((cpu.user - this.#cpuStart.user + cpu.system - this.#cpuStart.system) / 1000) /
          elapsedMs * 100,
        1,
      ),
      saves: this.saves.summary(),
      appendsSent: this.appendsSent.summary(),
      emptyAppendsSent: this.emptyAppendsSent.summary(),
      appendsHandled: this.appendsHandled.summary(),
    };
  }
}

/** @returns the current wall-clock time in ms with sub-ms precision */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** @returns the key under which both ends trace one AppendEntries */
export function traceKey(follower: string, req: AppendEntriesRequest): string {
  return `${follower}:${req.term}:${req.prevLogIndex}:${req.entries.length}`;
}

const MAX_TRACED = 50_000;

function cpuMicros(): { user: number; system: number } {
  const process = (globalThis as {
    process?: { cpuUsage(): { user: number; system: number } };
  }).process;
  return process?.cpuUsage() ?? { user: 0, system: 0 };
}

/**
 * @param storage the storage to measure
 * @param stats where to count
 * @returns a Storage that delegates to `storage` and times each `save`
 */
export function instrumentStorage(storage: Storage, stats: NodeStats): Storage {
  return {
    open: () => storage.open(),
    async save(batch: SaveBatch): Promise<void> {
      const startMs = performance.now();
      await storage.save(batch);
      stats.saves.add(performance.now() - startMs, batch.entries?.length ?? 0);
    },
    entries: (from, to) => storage.entries(from, to),
    saveSnapshot: (meta, data) => storage.saveSnapshot(meta, data),
    loadSnapshot: () => storage.loadSnapshot(),
    compact: (throughIndex) => storage.compact(throughIndex),
    close: () => storage.close(),
  };
}

/**
 * @param transporter the transporter to measure
 * @param stats where to count
 * @returns a Transporter that delegates to `transporter` and times each AppendEntries
 */
export function instrumentTransporter(transporter: Transporter, stats: NodeStats): Transporter {
  return {
    async sendAppendEntriesRequest(sender, peer, req, options): Promise<AppendEntriesResponse> {
      const startMs = performance.now();
      const sentAt = wallMs();
      const response = await transporter.sendAppendEntriesRequest(sender, peer, req, options);
      const series = req.entries.length > 0 ? stats.appendsSent : stats.emptyAppendsSent;
      series.add(performance.now() - startMs, req.entries.length);
      if (req.entries.length > 0 && stats.trace.size < MAX_TRACED) {
        stats.trace.set(traceKey(peer.name, req), [sentAt, wallMs()]);
      }
      return response;
    },
    sendVoteRequest: (sender, peer, req, options) =>
      transporter.sendVoteRequest(sender, peer, req, options),
    sendSnapshotRequest: (sender, peer, req, options) =>
      transporter.sendSnapshotRequest(sender, peer, req, options),
    sendSnapshotRecoveryRequest: (sender, peer, req, options) =>
      transporter.sendSnapshotRecoveryRequest(sender, peer, req, options),
    sendTimeoutNow: (sender, peer, req, options) =>
      transporter.sendTimeoutNow(sender, peer, req, options),
  };
}

/**
 * A handler that forwards to a server created later (a node listens before it knows its
 * peers' ports) and times AppendEntries.
 * @param name the node's name
 * @param target returns the server once it exists
 * @param stats where to count; nothing is counted without it
 * @returns the forwarding handler
 */
export function forwardingHandler(
  name: string,
  target: () => RaftHandler | undefined,
  stats?: NodeStats,
): RaftHandler {
  function get(): RaftHandler {
    const handler = target();
    if (handler === undefined) throw new Error(`${name} is not started yet`);
    return handler;
  }
  return {
    name,
    async appendEntries(req: AppendEntriesRequest): Promise<AppendEntriesResponse> {
      if (stats === undefined) return await get().appendEntries(req);
      const startMs = performance.now();
      const receivedAt = wallMs();
      const response = await get().appendEntries(req);
      if (req.entries.length > 0) {
        stats.appendsHandled.add(performance.now() - startMs, req.entries.length);
        if (stats.trace.size < MAX_TRACED) {
          stats.trace.set(traceKey(name, req), [receivedAt, wallMs()]);
        }
      }
      return response;
    },
    requestVote: (req) => get().requestVote(req),
    requestSnapshot: (req) => get().requestSnapshot(req),
    snapshotRecoveryRequest: (req) => get().snapshotRecoveryRequest(req),
    timeoutNow: (req) => get().timeoutNow(req),
  };
}
