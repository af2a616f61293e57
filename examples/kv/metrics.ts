/**
 * `GET /metrics` (Prometheus text exposition, version 0.0.4) and `GET /stats` (JSON for the
 * dashboard) of a KV node, both built from `server.stats()`.
 * @module
 */
import type { LatencyHistogram, Server, ServerStats, StatsRpcKind } from "@tsraft/core";
import type { Hono } from "hono";
import type { KvServiceStats } from "./kv_service.ts";

/** Content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Every state a server reports, so a state gauge is 0 or 1 for each (never absent). */
const STATES = ["leader", "follower", "candidate", "snapshotting", "initialized", "stopped"];

const RPC_LABELS: Record<StatsRpcKind, string> = {
  appendEntries: "append_entries",
  requestVote: "request_vote",
  timeoutNow: "timeout_now",
  requestSnapshot: "request_snapshot",
  snapshotRecoveryRequest: "snapshot_recovery_request",
};

const COUNTERS: [keyof ServerStats["counters"], string, string][] = [
  ["electionsStarted", "elections_started_total", "Times this server became a candidate."],
  ["leadershipsWon", "leaderships_won_total", "Times this server became leader."],
  ["proposals", "proposals_total", "Commands accepted by do() on this server as leader."],
  ["entriesApplied", "entries_applied_total", "Log entries applied to the state machine."],
  ["storageWrites", "storage_writes_total", "Storage writes (a batch of entries and state)."],
  ["storageWriteErrors", "storage_write_errors_total", "Storage writes that failed."],
  ["snapshotsTaken", "snapshots_taken_total", "Snapshots taken of the state machine."],
  ["snapshotsSent", "snapshots_sent_total", "Snapshots sent completely to a follower."],
  ["snapshotsInstalled", "snapshots_installed_total", "Snapshots received and installed."],
];

type Labels = Record<string, string>;

/** Builds one exposition: each family's HELP and TYPE once, then its samples. */
class Exposition {
  readonly #lines: string[] = [];

  family(
    name: string,
    type: "gauge" | "counter" | "histogram",
    help: string,
    samples: [Labels, number][],
  ): void {
    this.#lines.push(`# HELP tsraft_${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.#lines.push(`# TYPE tsraft_${name} ${type}`);
    for (const [labels, value] of samples) this.sample(name, labels, value);
  }

  sample(name: string, labels: Labels, value: number): void {
    const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escapeLabel(text)}"`);
    const braces = pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
    this.#lines.push(`tsraft_${name}${braces} ${formatValue(value)}`);
  }

  histogram(name: string, help: string, histogram: LatencyHistogram): void {
    this.family(name, "histogram", help, []);
    // Prometheus buckets are cumulative; the core counts each sample in one bucket.
    let cumulative = 0;
    histogram.boundsMs.forEach((boundMs, i) => {
      cumulative += histogram.counts[i] ?? 0;
      this.sample(`${name}_bucket`, { le: formatValue(boundMs / 1000) }, cumulative);
    });
    this.sample(`${name}_sum`, {}, histogram.sumMs / 1000);
    this.sample(`${name}_count`, {}, histogram.count);
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

function escapeLabel(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

/**
 * Renders a server's stats (and optionally the KV service's counters) in the Prometheus
 * text format. Every name starts with `tsraft_`; per-follower series carry a `peer` label,
 * per-RPC series an `rpc` label. Times are in seconds, as Prometheus expects.
 * @param stats what `server.stats()` returned
 * @param service the KV service's counters, exported as `tsraft_kv_*`
 * @returns the exposition, ending with a newline
 * @example
 * ```ts ignore
 * const text = prometheusText(server.stats());
 * ```
 */
export function prometheusText(stats: ServerStats, service?: KvServiceStats): string {
  const out = new Exposition();
  out.family(
    "state",
    "gauge",
    "1 for the state this server is in, 0 for the others.",
    STATES.map((state) => [{ state }, stats.state === state ? 1 : 0]),
  );
  out.family("term", "gauge", "Current term.", [[{}, stats.term]]);
  out.family("commit_index", "gauge", "Highest log index known committed.", [[
    {},
    stats.commitIndex,
  ]]);
  out.family("applied_index", "gauge", "Highest log index applied to the state machine.", [[
    {},
    stats.appliedIndex,
  ]]);
  out.family("last_index", "gauge", "Index of the last log entry.", [[{}, stats.lastIndex]]);
  out.family("snapshot_index", "gauge", "Index through which the log is compacted.", [[
    {},
    stats.snapshotIndex,
  ]]);
  out.family("members", "gauge", "Members of the cluster configuration.", [[
    {},
    stats.members.length,
  ]]);

  const followers = stats.followers;
  const byPeer = (value: (f: ServerStats["followers"][number]) => number): [Labels, number][] =>
    followers.map((f) => [{ peer: f.name }, value(f)]);
  out.family(
    "follower_match_index",
    "gauge",
    "Leader only: highest index known replicated on the follower.",
    byPeer((f) => f.matchIndex),
  );
  out.family(
    "follower_next_index",
    "gauge",
    "Leader only: next index to send to the follower.",
    byPeer((f) => f.nextIndex),
  );
  out.family(
    "follower_lag_entries",
    "gauge",
    "Leader only: entries the follower is behind the leader's last index.",
    byPeer((f) => Math.max(0, stats.lastIndex - f.matchIndex)),
  );
  out.family(
    "follower_inflight_messages",
    "gauge",
    "Leader only: AppendEntries with entries sent to the follower and not yet answered.",
    byPeer((f) => f.inflightMessages),
  );
  out.family(
    "follower_last_contact_seconds",
    "gauge",
    "Leader only: seconds since the follower last answered.",
    byPeer((f) => f.lastContactMsAgo / 1000),
  );
  out.family(
    "follower_voter",
    "gauge",
    "Leader only: 1 for a voting follower, 0 for a learner catching up.",
    byPeer((f) => f.voter ? 1 : 0),
  );
  out.family(
    "follower_mode",
    "gauge",
    "Leader only: 1 for the follower's replication mode (probe, replicate or snapshot).",
    followers.map((f) => [{ peer: f.name, mode: f.mode }, 1]),
  );

  for (const [key, name, help] of COUNTERS) {
    out.family(name, "counter", help, [[{}, stats.counters[key]]]);
  }
  const kinds = Object.keys(RPC_LABELS) as StatsRpcKind[];
  for (const direction of ["sent", "received"] as const) {
    out.family(
      `rpc_${direction}_messages_total`,
      "counter",
      `Raft requests ${direction}, by RPC.`,
      kinds.map((kind) => [{ rpc: RPC_LABELS[kind] }, stats[direction][kind].messages]),
    );
    out.family(
      `rpc_${direction}_bytes_total`,
      "counter",
      `Payload bytes (commands, snapshot data) of raft requests ${direction}, by RPC.`,
      kinds.map((kind) => [{ rpc: RPC_LABELS[kind] }, stats[direction][kind].bytes]),
    );
  }
  out.histogram(
    "storage_write_duration_seconds",
    "How long storage writes took, the wait for fsync included.",
    stats.storageWriteLatency,
  );
  out.histogram(
    "commit_duration_seconds",
    "From do() to the command applied, for commands proposed on this node.",
    stats.commitLatency,
  );
  if (Number.isFinite(stats.leaderContactMsAgo)) {
    out.family(
      "leader_contact_age_seconds",
      "gauge",
      "Seconds since a leader last contacted this node (0 on the leader).",
      [[{}, stats.leaderContactMsAgo / 1000]],
    );
  }

  if (service !== undefined) {
    out.family("kv_write_batches_total", "counter", "Log entries of batched writes proposed.", [
      [{}, service.batches],
    ]);
    out.family("kv_writes_total", "counter", "Writes in those batches.", [[{}, service.writes]]);
    out.family(
      "kv_write_batch_seconds_total",
      "counter",
      "Sum of the time from proposing a batch to its result (commit and apply).",
      [[{}, service.batchMs / 1000]],
    );
    out.family("kv_read_rounds_total", "counter", "ReadIndex rounds.", [[{}, service.readRounds]]);
    out.family("kv_reads_total", "counter", "Linearizable reads served.", [[{}, service.reads]]);
    out.family("kv_forwarded_total", "counter", "Requests forwarded to the leader.", [[
      {},
      service.forwarded,
    ]]);
  }
  return out.text();
}

/** One entry of a log tail: its index and term. */
export interface LogTailEntry {
  /** Log index. */
  index: number;
  /** Term of the leader that created it. */
  term: number;
}

/** What `GET /stats` answers. */
export interface NodeStats {
  /** `server.stats()`. */
  raft: ServerStats;
  /** The KV service's counters. */
  service: KvServiceStats;
  /** The last entries of the log (at most {@link LOG_TAIL_ENTRIES}), oldest first. */
  logTail: LogTailEntry[];
}

/** Entries of the log tail in `GET /stats`. */
export const LOG_TAIL_ENTRIES = 40;

/** Options of {@link installMetricsRoutes}. */
export interface MetricsRoutesOptions {
  /** The local raft server. */
  server: Server;
  /** The KV service's counters. */
  service: KvServiceStats;
}

/**
 * Mounts `GET /metrics` (Prometheus text) and `GET /stats` (JSON: stats, service counters
 * and the log tail, for the dashboard) on a node's client app.
 * @param app the client API's Hono app
 * @param options the server and the service counters
 */
export function installMetricsRoutes(app: Hono, options: MetricsRoutesOptions): void {
  const { server, service } = options;
  app.get("/metrics", () =>
    new Response(prometheusText(server.stats(), service), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
    }));
  app.get("/stats", (c) => {
    const entries = server.logEntries;
    const logTail = entries.slice(-LOG_TAIL_ENTRIES).map(({ index, term }) => ({ index, term }));
    const body: NodeStats = { raft: server.stats(), service, logTail };
    return c.json(body);
  });
}
