import {
  runSimulation,
  type RunSimulationOptions,
  simulationConfig,
  type SimulationResult,
} from "./run_simulation.ts";

import { emptySimStats } from "./simulator.ts";
/** Real time a run may go without advancing before it counts as hung (a busy loop). */
const SEED_WATCHDOG_MS = 20_000;

/**
 * Runs seeds one at a time in a worker, so that a seed whose servers spin in microtasks
 * forever (which nothing on the same thread can interrupt) is reported as a failure after
 * a real-time watchdog, and the worker replaced.
 * @example
 * ```ts
 * import { SeedRunner } from "@tsraft/sim";
 * const runner = new SeedRunner();
 * const result = await runner.run(3, { nodes: 3 });
 * runner.close();
 * if (!result.ok) throw new Error(result.violations.join("\n"));
 * ```
 */
export class SeedRunner {
  readonly #watchdogMs: number;

  /** Creates a runner. @param watchdogMs real time a run may go without advancing @default 20000 */
  constructor(watchdogMs: number = SEED_WATCHDOG_MS) {
    this.#watchdogMs = watchdogMs;
  }

  #worker: Worker | undefined;
  #ready: Promise<void> = Promise.resolve();

  /**
   * Runs one seed; with `log`, the worker sends every trace line back as it happens, so a
   * replay that hangs still shows what led there.
   * @returns its result, or a failed one when the watchdog fired
   */
  run(seed: number, options: RunSimulationOptions): Promise<SimulationResult> {
    // Runtimes without Web Workers (Node) run the seed here, without a watchdog.
    if (typeof Worker === "undefined") return runSimulation(seed, options);
    const { log, ...rest } = options;
    if (this.#worker === undefined) {
      const worker = new Worker(new URL("./_sim_worker.ts", import.meta.url), { type: "module" });
      this.#worker = worker;
      this.#ready = new Promise((resolve) => {
        worker.onmessage = () => resolve();
      });
    }
    const worker = this.#worker;
    return this.#ready.then(() =>
      new Promise<SimulationResult>((resolve) => {
        const fail = (why?: string) => {
          clearTimeout(timer);
          worker.terminate();
          this.#worker = undefined;
          resolve(hung(seed, options, this.#watchdogMs, why));
        };
        let timer = setTimeout(() => fail(), this.#watchdogMs);
        worker.onmessage = (
          event: MessageEvent<SimulationResult | { progress: true } | { line: string }>,
        ) => {
          clearTimeout(timer);
          if ("line" in event.data) {
            log?.(event.data.line);
            timer = setTimeout(() => fail(), this.#watchdogMs);
            return;
          }
          if ("progress" in event.data) {
            // The run advances: only a run that stops advancing for the whole period hangs.
            timer = setTimeout(() => fail(), this.#watchdogMs);
            return;
          }
          resolve(event.data);
        };
        worker.onerror = (event) => {
          event.preventDefault();
          fail(`the run threw: ${event.message}`);
        };
        worker.postMessage({ seed, options: rest, verbose: log !== undefined });
      })
    );
  }

  /** Ends the worker. */
  close(): void {
    this.#worker?.terminate();
  }
}

function hung(
  seed: number,
  options: RunSimulationOptions,
  watchdogMs: number,
  why?: string,
): SimulationResult {
  const config = simulationConfig(seed, options.nodes, options.scenario);
  return {
    seed,
    nodes: config.nodes,
    ok: false,
    violations: [
      why ??
        `no progress: the run stopped advancing for ${watchdogMs / 1000} s of real time ` +
          `(a server spins in microtasks without yielding; replay the seed to see where)`,
    ],
    warnings: [],
    trace: [],
    traceHash: "",
    simulatedMs: 0,
    stats: emptySimStats(),
    coverage: {
      crashes: false,
      crashLostWrites: false,
      stopStart: false,
      storageErrors: false,
      partitions: false,
      oneWayLinks: false,
      snapshotsInstalled: false,
      addPeer: false,
      removePeer: false,
      transfers: false,
      leadershipChanges: false,
      leaseReads: false,
    },
    operations: 0,
    unknownOperations: 0,
    replay: `deno task sim --seed ${seed} --nodes ${config.nodes}` +
      (options.scenario !== undefined ? ` --scenario ${options.scenario}` : ""),
    config,
  };
}
