/**
 * Test tools for tsraft: a manual clock, seeded randomness, memory storage and transport
 * with fault injection, conformance suites for adapters, the cluster simulator and a
 * linearizability checker.
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
export {
  checkLinearizability,
  type CheckLinearizabilityOptions,
  HistoryRecorder,
  type HistoryRecorderOptions,
  type IllegalExplanation,
  type KvInput,
  kvModel,
  type KvOutput,
  type KvState,
  type LinearizabilityResult,
  type Model,
  type Operation,
  type OperationHandle,
  type RegisterInput,
  registerModel,
  type RegisterOutput,
  type StepResult,
} from "./linearizability.ts";
export { ManualClock } from "./manual_clock.ts";
export { type CrashOptions, MemoryDisk, MemoryStorage } from "./memory_storage.ts";
export {
  type DelayRange,
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
export {
  type ClientReply,
  type NetworkFaults,
  runSimulation,
  type RunSimulationOptions,
  type SimNodeInfo,
  type SimStats,
  type SimulationConfig,
  simulationConfig,
  type SimulationCoverage,
  type SimulationResult,
  Simulator,
  type SimulatorOptions,
} from "./simulator.ts";
export { waitUntil } from "./wait_until.ts";
export { checkClusterCommits } from "./cluster_check.ts";
// Every type of @tsraft/core, re-exported (as types only) so that this entrypoint's
// documentation is self-contained: its signatures name Server, Storage, Transporter, ...
export type * from "../mod.ts";
