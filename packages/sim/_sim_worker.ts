// Runs seeds for sim_main in a worker, so that the main thread can stop a run that never
// yields again (a busy loop in a server's microtasks cannot be interrupted from inside).
import { runSimulation, type RunSimulationOptions } from "./run_simulation.ts";

interface Job {
  seed: number;
  options: RunSimulationOptions;
  /** Send every trace line back. */
  verbose: boolean;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async (event) => {
  const { seed, options, verbose } = event.data;
  const result = await runSimulation(seed, {
    ...options,
    ...(verbose ? { log: (line: string) => scope.postMessage({ line }) } : {}),
    onProgress: () => scope.postMessage({ progress: true }),
  });
  scope.postMessage(result);
};

// Loading (and type-checking) this module can take seconds: the watchdog starts after this.
scope.postMessage({ ready: true });
