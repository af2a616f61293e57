/**
 * Benchmark of `@tsraft/storage-file`: appends per second and MB/s of 256-byte commands with
 * 1 and 64 entries per `save` (each save is one write and one fdatasync), next to the raw
 * rate of "write 256 bytes + fdatasync" on the same disk, measured in the same run — the
 * ceiling for one-entry saves.
 *
 * Run: `deno run -A bench/storage_file_bench.ts [dir]` (or `bun bench/storage_file_bench.ts`).
 * The temporary files go under `dir`, by default the OS temp directory.
 * @module
 */
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { FileStorage } from "@tsraft/storage-file";
import { appendStep, interleavedRates, round2, runtimeName } from "./_measure.ts";

/**
 * Each case runs ROUNDS times for ROUND_MS, interleaved with the others, and reports its
 * median: shared and virtual disks drift a lot over seconds, so interleaving keeps the
 * raw rate and FileStorage comparable.
 */
const ROUNDS = 5;
const ROUND_MS = 400;
const WARMUP_MS = 200;
const COMMAND_BYTES = 256;

interface Case {
  key: string;
  label: string;
  entriesPerSave: number;
  fsync: boolean;
}

const CASES: Case[] = [
  { key: "file_1", label: "FileStorage, 1 entry/save", entriesPerSave: 1, fsync: true },
  { key: "file_64", label: "FileStorage, 64 entries/save", entriesPerSave: 64, fsync: true },
  {
    key: "file_1_nosync",
    label: "FileStorage, 1/save, fsync off",
    entriesPerSave: 1,
    fsync: false,
  },
];

/**
 * Measures the raw fdatasync rate and FileStorage append throughput.
 * @param parent directory under which to create temporary files
 * @returns `raw_fdatasync_per_s`, and for each case `<key>_appends_per_s`,
 * `<key>_saves_per_s` and `<key>_mb_per_s` (MB of command bytes, 10^6 bytes)
 */
export async function benchFileStorage(parent = tmpdir()): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(parent, "tsraft-bench-"));
  const results: Record<string, number> = {};
  const closers: (() => Promise<void>)[] = [];
  try {
    const raw = await open(join(dir, "raw"), "w");
    closers.push(() => raw.close());
    const block = new Uint8Array(COMMAND_BYTES).fill(0x62);
    let rawPosition = 0;
    const steps: { key: string; perStep: number; step: () => Promise<void> }[] = [{
      key: "raw_fdatasync",
      perStep: 1,
      step: async () => {
        await raw.write(block, 0, block.length, rawPosition);
        rawPosition += block.length;
        await raw.datasync();
      },
    }];
    const command = new Uint8Array(COMMAND_BYTES).fill(0x61);
    for (const spec of CASES) {
      const storage = new FileStorage(join(dir, spec.key), { fsync: spec.fsync });
      await storage.open();
      closers.push(() => storage.close());
      steps.push({
        key: spec.key,
        perStep: spec.entriesPerSave,
        step: appendStep(storage, spec.entriesPerSave, command),
      });
    }
    const rates = await interleavedRates(steps, {
      rounds: ROUNDS,
      roundMs: ROUND_MS,
      warmupMs: WARMUP_MS,
    });
    for (const s of steps) {
      const perSecond = rates.get(s.key)!;
      if (s.key === "raw_fdatasync") {
        results.raw_fdatasync_per_s = Math.round(perSecond);
        continue;
      }
      results[`${s.key}_saves_per_s`] = Math.round(perSecond);
      results[`${s.key}_appends_per_s`] = Math.round(perSecond * s.perStep);
      results[`${s.key}_mb_per_s`] = round2((perSecond * s.perStep * COMMAND_BYTES) / 1e6);
    }
  } finally {
    for (const close of closers) await close();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.main) {
  const parent = process.argv[2] ?? tmpdir();
  const r = await benchFileStorage(parent);
  console.log(
    `FileStorage, ${COMMAND_BYTES}-byte commands, in ${parent}, median of ${ROUNDS} rounds (${runtimeName()})`,
  );
  const row = (label: string, saves: unknown, appends: unknown, mb: unknown) =>
    console.log(
      `${label.padEnd(32)}${String(saves).padStart(10)}${String(appends).padStart(12)}${
        String(mb).padStart(8)
      }`,
    );
  row("case", "saves/s", "appends/s", "MB/s");
  const raw = r.raw_fdatasync_per_s!;
  row("raw write 256 B + fdatasync", raw, raw, round2((raw * COMMAND_BYTES) / 1e6));
  for (const spec of CASES) {
    row(
      spec.label,
      r[`${spec.key}_saves_per_s`],
      r[`${spec.key}_appends_per_s`],
      r[`${spec.key}_mb_per_s`],
    );
  }
}
