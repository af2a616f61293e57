/**
 * Test tools for tsraft: a manual clock, seeded randomness, memory storage and transport
 * with fault injection, conformance suites for adapters and `TestCluster`. The cluster
 * simulator and the linearizability checker are in `@tsraft/sim`.
 *
 * @example
 * ```ts
 * import { ManualClock, SeededRandom } from "@tsraft/core/testing";
 * const clock = new ManualClock();
 * const random = new SeededRandom(1);
 * clock.advance(random.int(10));
 * ```
 * @module
 */
export { ManualClock } from "./manual_clock.ts";
export {
  type CrashOptions,
  type DurableView,
  MemoryDisk,
  MemoryStorage,
} from "./memory_storage.ts";
export {
  type DelayRange,
  type LongDelay,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type NetworkStats,
  type RpcKind,
} from "./memory_transport.ts";
export { SeededRandom } from "./seeded_random.ts";
export { storageConformance, type StorageHarness } from "./storage_conformance.ts";
export { transporterConformance, type TransporterHarness } from "./transporter_conformance.ts";
export {
  KvSetCommand,
  KvStateMachine,
  TestCluster,
  type TestClusterOptions,
} from "./test_cluster.ts";
export { type TrackedPromise, trackPromise, waitUntil } from "./wait_until.ts";
export { checkClusterCommits } from "./cluster_check.ts";
// Every type of @tsraft/core, re-exported (as types only) so that this entrypoint's
// documentation is self-contained: its signatures name Server, Storage, Transporter, ...
export type * from "../mod.ts";
