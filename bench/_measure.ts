// Small measuring helpers shared by the micro-benchmarks.
import process from "node:process";

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
