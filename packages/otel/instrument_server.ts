/**
 * {@link instrumentServer}: OpenTelemetry instruments fed from `Server.stats()`.
 * @module
 */
import { metrics, ValueType } from "@opentelemetry/api";
import {
  CANDIDATE,
  FOLLOWER,
  INITIALIZED,
  type LatencyHistogram,
  LEADER,
  type ServerCounters,
  type ServerState,
  type ServerStats,
  SNAPSHOTTING,
  type StatsRpcKind,
  STOPPED,
} from "@tsraft/core";

/** The instrumentation scope name of the default meter. */
export const METER_NAME = "@tsraft/otel";

/** This package's version: the instrumentation scope version of the default meter. */
export const VERSION = "0.1.0";

/**
 * What {@link instrumentServer} observes: a tsraft `Server` is one (anything with a name and
 * `stats()` works, e.g. a wrapper that counts or filters).
 */
export interface StatsSource {
  /** The server's name, the default `server` attribute. */
  readonly name: string;
  /** The server's state and counters, read once per collection. */
  stats(): ServerStats;
}

/**
 * An attribute value as OpenTelemetry exporters carry it (a subset of `@opentelemetry/api`'s
 * `AttributeValue`).
 */
export type AttributeValue =
  | string
  | number
  | boolean
  | Array<null | undefined | string>
  | Array<null | undefined | number>
  | Array<null | undefined | boolean>;

/** Attributes of an observation: names to values. */
export type MetricAttributes = Record<string, AttributeValue>;

/** The options {@link instrumentServer} gives each instrument (of `MetricOptions`). */
export interface InstrumentOptions {
  /** What the instrument measures. */
  description?: string;
  /** Its unit (UCUM: `ms`, `By`, `{entry}`). */
  unit?: string;
  /** `ValueType.INT` (0) or `ValueType.DOUBLE` (1) of `@opentelemetry/api`. */
  valueType?: number;
}

/** What a batch callback observes into (`BatchObservableResult` of `@opentelemetry/api`). */
export interface BatchResult {
  /**
   * Records one value of an instrument.
   * @param instrument an observable the callback was registered with
   * @param value the value
   * @param attributes the series it belongs to
   */
  observe(instrument: object, value: number, attributes?: MetricAttributes): void;
}

/**
 * The part of an OpenTelemetry `Meter` that {@link instrumentServer} uses. Declared here so
 * this package's documentation stands alone; every `Meter` of `@opentelemetry/api` is one.
 */
export interface MeterLike {
  /**
   * Creates an observable gauge (`Meter.createObservableGauge`).
   * @param name the metric's name
   * @param options its description, unit and value type
   * @returns the instrument
   */
  createObservableGauge(name: string, options?: InstrumentOptions): object;
  /**
   * Creates an observable, monotonic counter (`Meter.createObservableCounter`).
   * @param name the metric's name
   * @param options its description, unit and value type
   * @returns the instrument
   */
  createObservableCounter(name: string, options?: InstrumentOptions): object;
  /**
   * Registers one callback that observes several instruments at each collection.
   * @param callback called once per collection
   * @param observables the instruments it observes
   */
  addBatchObservableCallback(
    callback: (result: BatchResult) => void,
    observables: object[],
  ): void;
  /**
   * Removes a callback registered with `addBatchObservableCallback`.
   * @param callback the callback
   * @param observables the instruments it was registered with
   */
  removeBatchObservableCallback(
    callback: (result: BatchResult) => void,
    observables: object[],
  ): void;
}

/** Options of {@link instrumentServer}. */
export interface InstrumentServerOptions {
  /**
   * The meter to create the instruments on. The default comes from the global meter
   * provider at the time of the call, so register the SDK's provider first: `@opentelemetry/api`
   * has no proxy meter, and a meter taken before an SDK is installed stays a no-op.
   * @default {metrics.getMeter("@tsraft/otel", VERSION)}
   */
  meter?: MeterLike;
  /**
   * Attributes added to every observation, after `{ server: server.name }` (so a `server`
   * given here replaces the server's name).
   * @default {{ server: server.name }}
   */
  attributes?: MetricAttributes;
}

/** What {@link instrumentServer} returns. */
export interface ServerInstrumentation {
  /**
   * Removes the batch callback: the server is no longer read at collections. Calling it again
   * does nothing. The instruments stay on the meter (the OpenTelemetry API cannot remove
   * them); another server's instrumentation keeps reporting through them. An SDK reader with
   * cumulative temporality may keep exporting the last values observed.
   */
  close(): void;
}

/** The states the `raft.state` gauge reports, one series each. */
const STATES: readonly ServerState[] = [
  STOPPED,
  INITIALIZED,
  FOLLOWER,
  CANDIDATE,
  LEADER,
  SNAPSHOTTING,
];

/** Each monotonic counter of `ServerCounters`: its metric name, unit and description. */
const COUNTERS: ReadonlyArray<[keyof ServerCounters, string, string, string]> = [
  ["electionsStarted", "raft.elections", "{election}", "Times this server became a candidate"],
  ["leadershipsWon", "raft.leaderships", "{leadership}", "Times this server became leader"],
  ["proposals", "raft.proposals", "{command}", "Commands accepted by do() as leader"],
  ["entriesApplied", "raft.entries_applied", "{entry}", "Log entries applied to the state machine"],
  ["storageWrites", "raft.storage.writes", "{write}", "Completed storage writes (one per batch)"],
  ["storageWriteErrors", "raft.storage.write_errors", "{write}", "Storage writes that failed"],
  ["snapshotsTaken", "raft.snapshots.taken", "{snapshot}", "Snapshots of the state machine taken"],
  ["snapshotsSent", "raft.snapshots.sent", "{snapshot}", "Snapshots sent completely to a follower"],
  [
    "snapshotsInstalled",
    "raft.snapshots.installed",
    "{snapshot}",
    "Snapshots installed from a leader",
  ],
];

/** The instruments of one latency histogram of `Server.stats()`. */
interface LatencyInstruments {
  bucket: object;
  count: object;
  sum: object;
}

/**
 * Registers OpenTelemetry instruments for `server` on a meter, all fed by one batch callback
 * that reads `Server.stats()` once per collection. With no SDK installed the meter is
 * the API's no-op meter, the callback is never called and the cost is the few no-op
 * instruments created here.
 *
 * Every observation carries `server` (the server's name) and `options.attributes`.
 *
 * Gauges: `raft.term`, `raft.commit_index`, `raft.applied_index`, `raft.last_index`,
 * `raft.snapshot_index`, `raft.members`, `raft.state` (1 for the current state, 0 for the
 * others, by attribute `state`), `raft.leader_contact.age` (ms; not observed until a leader
 * has contacted the server), and on a leader, per follower (attribute `peer`):
 * `raft.follower.match_index`, `raft.follower.lag` (the leader's last index minus the match
 * index), `raft.follower.inflight` and `raft.follower.contact.age` (ms).
 *
 * Counters (cumulative, monotonic): `raft.elections`, `raft.leaderships`, `raft.proposals`,
 * `raft.entries_applied`, `raft.storage.writes` (one per batch, each waiting for its fsync
 * on a durable storage), `raft.storage.write_errors`, `raft.snapshots.taken`,
 * `raft.snapshots.sent`, `raft.snapshots.installed`, and `raft.rpc.messages` and
 * `raft.rpc.bytes` by attributes `rpc` (`appendEntries`, `requestVote`, ...) and
 * `direction` (`sent` or `received`).
 *
 * Latencies: the stats keep bucket counts, not samples, and the OpenTelemetry API has no
 * asynchronous histogram, so replaying them into a `Histogram` would invent the sums and
 * extremes. Instead each is reported as Prometheus-style cumulative counters:
 * `raft.storage.write.duration.bucket` (samples at most `le` ms, attribute `le`, `"+Inf"` for
 * the last), `raft.storage.write.duration.count` and `raft.storage.write.duration.sum` (ms);
 * the same for `raft.commit.duration` (from `do()` to the command applied, for commands
 * proposed on this server).
 *
 * @param server the server to observe (any object with `name` and `stats()`)
 * @param options the meter and extra attributes
 * @returns a handle whose `close()` removes the callback
 * @example
 * ```ts
 * import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
 * import { createServer } from "@tsraft/core";
 * import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
 * import { instrumentServer } from "@tsraft/otel";
 *
 * class Reader extends MetricReader {
 *   protected override onForceFlush(): Promise<void> {
 *     return Promise.resolve();
 *   }
 *   protected override onShutdown(): Promise<void> {
 *     return Promise.resolve();
 *   }
 * }
 * const reader = new Reader();
 * const provider = new MeterProvider({ readers: [reader] });
 *
 * const network = new MemoryNetwork();
 * const server = createServer({
 *   name: "a",
 *   transporter: network.transporter(),
 *   storage: new MemoryStorage(),
 * });
 * network.register(server);
 * await server.start();
 * const instrumentation = instrumentServer(server, { meter: provider.getMeter("raft") });
 *
 * const { resourceMetrics } = await reader.collect();
 * const members = resourceMetrics.scopeMetrics[0]!.metrics
 *   .find((metric) => metric.descriptor.name === "raft.members")!;
 * if (members.dataPoints[0]!.value !== 1) throw new Error("expected one member");
 *
 * instrumentation.close();
 * await provider.shutdown();
 * await server.stop();
 * ```
 */
export function instrumentServer(
  server: StatsSource,
  options: InstrumentServerOptions = {},
): ServerInstrumentation {
  const meter: MeterLike = options.meter ?? metrics.getMeter(METER_NAME, VERSION);
  const base: MetricAttributes = { server: server.name, ...options.attributes };
  const gauge = (name: string, unit: string, description: string, valueType = ValueType.INT) =>
    meter.createObservableGauge(name, { unit, description, valueType });
  const counter = (name: string, unit: string, description: string, valueType = ValueType.INT) =>
    meter.createObservableCounter(name, { unit, description, valueType });
  const latency = (name: string, what: string): LatencyInstruments => ({
    bucket: counter(
      `${name}.bucket`,
      "{sample}",
      `${what}: samples at most le ms (cumulative buckets)`,
    ),
    count: counter(`${name}.count`, "{sample}", `${what}: number of samples`),
    sum: counter(`${name}.sum`, "ms", `${what}: sum of the samples`, ValueType.DOUBLE),
  });

  const term = gauge("raft.term", "{term}", "Current term");
  const commitIndex = gauge("raft.commit_index", "{entry}", "Highest index known committed");
  const appliedIndex = gauge("raft.applied_index", "{entry}", "Highest index applied");
  const lastIndex = gauge("raft.last_index", "{entry}", "Index of the last log entry");
  const snapshotIndex = gauge(
    "raft.snapshot_index",
    "{entry}",
    "Index through which the log is compacted",
  );
  const members = gauge("raft.members", "{server}", "Members of the configuration");
  const state = gauge("raft.state", "1", "1 for the server's current state, 0 for the others");
  const leaderContactAge = gauge(
    "raft.leader_contact.age",
    "ms",
    "Time since a leader last contacted this server (0 on the leader)",
    ValueType.DOUBLE,
  );
  const matchIndex = gauge(
    "raft.follower.match_index",
    "{entry}",
    "Highest index known replicated on the follower (leader only)",
  );
  const lag = gauge(
    "raft.follower.lag",
    "{entry}",
    "Leader's last index minus the follower's match index (leader only)",
  );
  const inflight = gauge(
    "raft.follower.inflight",
    "{message}",
    "AppendEntries with entries sent to the follower and not yet answered (leader only)",
  );
  const followerContactAge = gauge(
    "raft.follower.contact.age",
    "ms",
    "Time since the follower last answered (leader only)",
    ValueType.DOUBLE,
  );
  const counters = COUNTERS.map(([key, name, unit, description]) =>
    [key, counter(name, unit, description)] as const
  );
  const rpcMessages = counter("raft.rpc.messages", "{message}", "Requests by RPC and direction");
  const rpcBytes = counter(
    "raft.rpc.bytes",
    "By",
    "Payload bytes (commands or snapshot data) of requests by RPC and direction",
  );
  const storageLatency = latency(
    "raft.storage.write.duration",
    "Storage write latency, fsync included",
  );
  const commitLatency = latency("raft.commit.duration", "From do() to the command applied");

  const observables: object[] = [
    term,
    commitIndex,
    appliedIndex,
    lastIndex,
    snapshotIndex,
    members,
    state,
    leaderContactAge,
    matchIndex,
    lag,
    inflight,
    followerContactAge,
    ...counters.map(([, observable]) => observable),
    rpcMessages,
    rpcBytes,
    ...Object.values(storageLatency),
    ...Object.values(commitLatency),
  ];

  const callback = (result: BatchResult): void => {
    // One stats() per collection: every instrument sees the same moment.
    const stats = server.stats();
    result.observe(term, stats.term, base);
    result.observe(commitIndex, stats.commitIndex, base);
    result.observe(appliedIndex, stats.appliedIndex, base);
    result.observe(lastIndex, stats.lastIndex, base);
    result.observe(snapshotIndex, stats.snapshotIndex, base);
    result.observe(members, stats.members.length, base);
    for (const each of STATES) {
      result.observe(state, each === stats.state ? 1 : 0, { ...base, state: each });
    }
    // Infinity means no leader ever made contact: no value is more honest than a huge one.
    if (Number.isFinite(stats.leaderContactMsAgo)) {
      result.observe(leaderContactAge, stats.leaderContactMsAgo, base);
    }
    for (const follower of stats.followers) {
      const attributes = { ...base, peer: follower.name };
      result.observe(matchIndex, follower.matchIndex, attributes);
      result.observe(lag, Math.max(0, stats.lastIndex - follower.matchIndex), attributes);
      result.observe(inflight, follower.inflightMessages, attributes);
      result.observe(followerContactAge, follower.lastContactMsAgo, attributes);
    }
    for (const [key, observable] of counters) result.observe(observable, stats.counters[key], base);
    for (const direction of ["sent", "received"] as const) {
      for (const [rpc, counts] of Object.entries(stats[direction])) {
        const attributes = { ...base, rpc: rpc as StatsRpcKind, direction };
        result.observe(rpcMessages, counts.messages, attributes);
        result.observe(rpcBytes, counts.bytes, attributes);
      }
    }
    observeLatency(result, storageLatency, stats.storageWriteLatency, base);
    observeLatency(result, commitLatency, stats.commitLatency, base);
  };
  meter.addBatchObservableCallback(callback, observables);

  let closed = false;
  return {
    close(): void {
      if (closed) return;
      closed = true;
      meter.removeBatchObservableCallback(callback, observables);
    },
  };
}

function observeLatency(
  result: BatchResult,
  instruments: LatencyInstruments,
  histogram: LatencyHistogram,
  base: MetricAttributes,
): void {
  // Cumulative, as Prometheus' `le` buckets are: the stats count each bucket on its own.
  let cumulative = 0;
  histogram.boundsMs.forEach((boundMs, i) => {
    cumulative += histogram.counts[i] ?? 0;
    const le = boundMs === Infinity ? "+Inf" : String(boundMs);
    result.observe(instruments.bucket, cumulative, { ...base, le });
  });
  result.observe(instruments.count, histogram.count, base);
  result.observe(instruments.sum, histogram.sumMs, base);
}
