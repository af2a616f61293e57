// Small measuring helpers shared by the micro-benchmarks.
import process from "node:process";
import type { LogEntry } from "@tsraft/core";

/** Median of `values` (upper median for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

/**
 * Keeps `inFlight` loops running `step` back to back for `durationMs`; returns how many
 * steps completed and the time taken.
 */
export async function runFor(
  durationMs: number,
  step: () => Promise<unknown>,
  inFlight = 1,
): Promise<{ count: number; elapsedMs: number }> {
  const started = performance.now();
  const deadline = started + durationMs;
  let count = 0;
  async function worker(): Promise<void> {
    while (performance.now() < deadline) {
      await step();
      count++;
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { count, elapsedMs: performance.now() - started };
}

/** `value` rounded to two decimals. */
export function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The runtime and its version, for report headers. */
export function runtimeName(): string {
  const g = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  if (g.Bun) return `bun ${g.Bun.version}`;
  return `node ${process.version}`;
}

/** One benchmark case: a name and one step of work. */
export interface BenchStep {
  /** Result key. */
  key: string;
  /** One unit of work. */
  step: () => Promise<unknown>;
}

/**
 * Runs every step `rounds` times for `roundMs`, interleaved so that a noisy disk or CPU hurts
 * all cases alike, after one warm-up of `warmupMs` each.
 * @returns the median rate (steps per second) of each key
 */
export async function interleavedRates(
  steps: BenchStep[],
  options: { rounds: number; roundMs: number; warmupMs: number },
): Promise<Map<string, number>> {
  const rates = new Map<string, number[]>(steps.map((s) => [s.key, []]));
  for (const s of steps) await runFor(options.warmupMs, s.step);
  for (let round = 0; round < options.rounds; round++) {
    for (const s of steps) {
      const { count, elapsedMs } = await runFor(options.roundMs, s.step);
      rates.get(s.key)!.push(count / (elapsedMs / 1000));
    }
  }
  return new Map([...rates].map(([key, values]) => [key, median(values)]));
}

/**
 * A step that appends `entriesPerSave` fresh entries to `storage` in one `save`.
 * @param storage anything with the Storage `save` method
 * @param entriesPerSave entries per call
 * @param command the command bytes of every entry
 */
export function appendStep(
  storage: { save(batch: { entries: LogEntry[] }): Promise<void> },
  entriesPerSave: number,
  command: Uint8Array,
): () => Promise<void> {
  let next = 1;
  return async () => {
    const entries: LogEntry[] = [];
    for (let i = 0; i < entriesPerSave; i++) {
      entries.push({ index: next++, term: 1, commandName: "bench:set", command });
    }
    await storage.save({ entries });
  };
}
