/**
 * The deterministic cluster simulator of tsraft: real `Server`s from `@tsraft/core` over a
 * simulated clock, a faulty network and faulty disks, driven by one seed; the safety,
 * liveness and linearizability checkers; `deno task sim`.
 *
 * @example
 * ```ts
 * import { runSimulation } from "@tsraft/sim";
 * const result = await runSimulation(7, { nodes: 3 });
 * if (!result.ok) throw new Error(`${result.replay}\n${result.violations.join("\n")}`);
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
export { AsyncKvCommand, KvCommand, type KvResult, registerKvCommands, SimKv } from "./kv.ts";
export { SimClock } from "./sim_clock.ts";
export {
  crashDisk,
  type DiskFaults,
  SimStorage,
  SimStorageError,
  type SimStorageOptions,
} from "./sim_storage.ts";
export {
  describeError,
  type NetworkFaults,
  type SendFate,
  type SimNodeInfo,
  type SimStats,
  Simulator,
  type SimulatorOptions,
} from "./simulator.ts";
export {
  runSimulation,
  type RunSimulationOptions,
  type SimulationConfig,
  simulationConfig,
  type SimulationCoverage,
  type SimulationResult,
} from "./run_simulation.ts";
export { SeedRunner } from "./seed_runner.ts";
export { type ScenarioName, SCENARIOS } from "./_scenarios.ts";
// Every type of @tsraft/core and @tsraft/core/testing, re-exported (as types only) so that this
// entrypoint's documentation is self-contained: its signatures name Server, MemoryDisk, ...
export type * from "@tsraft/core/testing";
