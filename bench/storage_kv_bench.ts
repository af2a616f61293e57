/**
 * Benchmark of `@tsraft/storage-kv`: appends per second and MB/s of 256-byte commands with 1
 * and 64 entries per `save` (each save is one atomic KV commit, made durable by SQLite), and
 * the MB/s of writing and reading back an 8 MiB snapshot.
 *
 * Run: `deno run -A --unstable-kv bench/storage_kv_bench.ts [dir]`. The database goes under
 * `dir`, by default the OS temp directory.
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { KvStorage } from "@tsraft/storage-kv";
import { appendStep, interleavedRates, median, round2, runtimeName } from "./_measure.ts";

/**
 * Each case runs ROUNDS times for ROUND_MS, interleaved with the others, and reports its
 * median, so that disk drift over seconds affects every case alike.
 */
const ROUNDS = 5;
const ROUND_MS = 400;
const WARMUP_MS = 200;
const COMMAND_BYTES = 256;
const SNAPSHOT_BYTES = 8 * 1024 * 1024;

const CASES = [
  { key: "kv_1", label: "KvStorage, 1 entry/save", entriesPerSave: 1 },
  { key: "kv_64", label: "KvStorage, 64 entries/save", entriesPerSave: 64 },
];

/**
 * Measures KvStorage append and snapshot throughput.
 * @param parent directory under which to create the temporary database
 * @returns for each case `<key>_saves_per_s`, `<key>_appends_per_s` and `<key>_mb_per_s`
 * (MB of command bytes, 10^6 bytes), plus `snapshot_write_mb_per_s` and
 * `snapshot_read_mb_per_s`
 */
export async function benchKvStorage(parent = tmpdir()): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(parent, "tsraft-kv-bench-"));
  const results: Record<string, number> = {};
  const storages: KvStorage[] = [];
  try {
    const command = new Uint8Array(COMMAND_BYTES).fill(0x61);
    const steps = [];
    for (const spec of CASES) {
      const storage = new KvStorage({ path: join(dir, `${spec.key}.sqlite`) });
      await storage.open();
      storages.push(storage);
      steps.push({
        ...spec,
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
      results[`${s.key}_saves_per_s`] = Math.round(perSecond);
      results[`${s.key}_appends_per_s`] = Math.round(perSecond * s.entriesPerSave);
      results[`${s.key}_mb_per_s`] = round2((perSecond * s.entriesPerSave * COMMAND_BYTES) / 1e6);
    }

    const storage = storages[0]!;
    const snapshot = new Uint8Array(SNAPSHOT_BYTES).map((_, i) => i);
    const writes: number[] = [];
    const reads: number[] = [];
    for (let round = 0; round < 3; round++) {
      let started = performance.now();
      await storage.saveSnapshot({ lastIndex: round + 1, lastTerm: 1, peers: [] }, snapshot);
      writes.push(SNAPSHOT_BYTES / 1e6 / ((performance.now() - started) / 1000));
      started = performance.now();
      let size = 0;
      for await (const chunk of (await storage.loadSnapshot())!.data) size += chunk.length;
      if (size !== SNAPSHOT_BYTES) throw new Error(`read ${size} snapshot bytes`);
      reads.push(SNAPSHOT_BYTES / 1e6 / ((performance.now() - started) / 1000));
    }
    results.snapshot_write_mb_per_s = round2(median(writes));
    results.snapshot_read_mb_per_s = round2(median(reads));
  } finally {
    for (const storage of storages) await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.main) {
  const parent = process.argv[2] ?? tmpdir();
  const r = await benchKvStorage(parent);
  console.log(
    `KvStorage, ${COMMAND_BYTES}-byte commands, in ${parent}, median of ${ROUNDS} rounds (${runtimeName()})`,
  );
  const row = (label: string, saves: unknown, appends: unknown, mb: unknown) =>
    console.log(
      `${label.padEnd(32)}${String(saves).padStart(10)}${String(appends).padStart(12)}${
        String(mb).padStart(8)
      }`,
    );
  row("case", "saves/s", "appends/s", "MB/s");
  for (const spec of CASES) {
    row(
      spec.label,
      r[`${spec.key}_saves_per_s`],
      r[`${spec.key}_appends_per_s`],
      r[`${spec.key}_mb_per_s`],
    );
  }
  row("saveSnapshot, 8 MiB", "", "", r.snapshot_write_mb_per_s);
  row("loadSnapshot, 8 MiB", "", "", r.snapshot_read_mb_per_s);
}
