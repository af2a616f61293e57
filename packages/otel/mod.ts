/**
 * OpenTelemetry metrics for tsraft: {@link instrumentServer} registers observable gauges and
 * counters on an `@opentelemetry/api` meter, fed from `Server.stats()` by one batch callback
 * per server, so the server is read once per collection. Without an OpenTelemetry SDK the
 * API's meter is a no-op and nothing is read; `@tsraft/core` itself does not depend on
 * OpenTelemetry.
 *
 * Register the SDK's meter provider before instrumenting (the API's global meter has no
 * proxy), or pass a meter.
 *
 * @example
 * ```ts
 * import { metrics } from "@opentelemetry/api";
 * import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
 * import { KvSetCommand, TestCluster } from "@tsraft/core/testing";
 * import { instrumentServer } from "@tsraft/otel";
 *
 * // In an app, a PeriodicExportingMetricReader with an OTLP or Prometheus exporter.
 * class Reader extends MetricReader {
 *   protected override onForceFlush(): Promise<void> {
 *     return Promise.resolve();
 *   }
 *   protected override onShutdown(): Promise<void> {
 *     return Promise.resolve();
 *   }
 * }
 * const reader = new Reader();
 * metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
 *
 * const cluster = new TestCluster(["a", "b", "c"]);
 * const instrumentations = [...cluster.servers.values()].map((server) => instrumentServer(server));
 * await cluster.start();
 * const leader = await cluster.waitForLeader();
 * await cluster.run(leader.do(new KvSetCommand("x", "1")));
 *
 * const { resourceMetrics } = await reader.collect();
 * const proposals = resourceMetrics.scopeMetrics
 *   .find((scope) => scope.scope.name === "@tsraft/otel")!.metrics
 *   .find((metric) => metric.descriptor.name === "raft.proposals")!.dataPoints
 *   .find((point) => point.attributes.server === leader.name)!;
 * if (proposals.value !== 1) throw new Error("expected one proposal");
 *
 * for (const instrumentation of instrumentations) instrumentation.close();
 * await cluster.stop();
 * metrics.disable();
 * ```
 * @module
 */
export {
  type AttributeValue,
  type BatchResult,
  type InstrumentOptions,
  instrumentServer,
  type InstrumentServerOptions,
  METER_NAME,
  type MeterLike,
  type MetricAttributes,
  type ServerInstrumentation,
  type StatsSource,
  VERSION,
} from "./instrument_server.ts";
// Re-exported so the documentation of this package's signatures is self-contained.
export type {
  CANDIDATE,
  FOLLOWER,
  FollowerStats,
  INITIALIZED,
  LatencyHistogram,
  LEADER,
  RpcCounts,
  ServerCounters,
  ServerState,
  ServerStats,
  SNAPSHOTTING,
  StatsRpcKind,
  STOPPED,
} from "@tsraft/core";
