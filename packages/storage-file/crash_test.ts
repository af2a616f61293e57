import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { SeededRandom } from "@tsraft/core/testing";
import { FileStorage } from "./file_storage.ts";

const here = dirname(fileURLToPath(import.meta.url));
const isDeno = "Deno" in globalThis;

/** What the parent knows to be durable, from the writer's acknowledgements. */
interface Model {
  /** Term of every acknowledged entry, by index. */
  terms: Map<number, number>;
  /** Last acknowledged index. */
  last: number;
  /** A replacing save was started from here and not acknowledged. */
  pendingFrom: number;
  hardTerm: number;
}

/** Runs the writer until it has printed its "opened" line and `killAfterMs` more, then SIGKILLs it. */
function runAndKill(dir: string, seed: number, killAfterMs: number): Promise<string[]> {
  // Under Node or Bun these tests run bundled, with the writer bundled beside them.
  const bundled = import.meta.url.endsWith(".mjs");
  const script = join(here, bundled ? "_crash_writer.mjs" : "_crash_writer.ts");
  // Node running the .ts sources through tsx needs tsx's loader flags (in execArgv) again in
  // the child; Bun and bundled runs have none.
  const args = isDeno
    ? ["run", "-A", script, dir, String(seed)]
    : [...process.execArgv, script, dir, String(seed)];
  const child = spawn(process.execPath, args, { cwd: here, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`writer never opened the store; stderr: ${err}`));
    }, 20_000);
    let armed = false;
    child.stdout.on("data", (chunk: Uint8Array) => {
      out += new TextDecoder().decode(chunk);
      if (!armed && out.startsWith("O ")) {
        armed = true;
        setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      }
    });
    child.stderr.on("data", (chunk: Uint8Array) => (err += new TextDecoder().decode(chunk)));
    child.on("exit", (_code, signal) => {
      clearTimeout(deadline);
      if (signal !== "SIGKILL") reject(new Error(`writer exited on its own: ${err}`));
      // A line cut by the kill is not an acknowledgement.
      else resolve(out.split("\n").slice(0, -1));
    });
  });
}

/** The seed from TSRAFT_CRASH_SEED, else a fresh one. */
function crashSeed(): number {
  const text = process.env.TSRAFT_CRASH_SEED;
  if (text === undefined || text === "") return Date.now() % 1_000_000;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`TSRAFT_CRASH_SEED must be a non-negative integer, got ${text}`);
  }
  return seed;
}

function apply(model: Model, lines: readonly string[]): void {
  for (const line of lines) {
    const [kind, ...rest] = line.split(" ");
    const n = rest.map(Number);
    if (kind === "H") model.hardTerm = Math.max(model.hardTerm, n[0]!);
    if (kind === "T") model.pendingFrom = n[0]!;
    if (kind === "A") {
      const [from, to, term] = n as [number, number, number];
      for (const index of [...model.terms.keys()]) if (index >= from) model.terms.delete(index);
      for (let i = from; i <= to; i++) model.terms.set(i, term);
      model.last = to;
      model.pendingFrom = Infinity;
    }
  }
}

describe("FileStorage under kill -9", () => {
  test("every acknowledged entry survives SIGKILL at random moments", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-crash-"));
    // A new seed each run explores new workloads and kill delays; TSRAFT_CRASH_SEED repeats
    // one. The kill lands at a wall-clock moment, so a replay repeats the workload and the
    // delays, not the exact byte the writer had reached.
    const seed = crashSeed();
    console.log(
      `crash_test: seed ${seed} (replay: TSRAFT_CRASH_SEED=${seed} deno test -A packages/storage-file/crash_test.ts)`,
    );
    const random = new SeededRandom(seed);
    const model: Model = { terms: new Map(), last: 0, pendingFrom: Infinity, hardTerm: 0 };
    try {
      for (let round = 0; round < 5; round++) {
        const lines = await runAndKill(dir, random.int(1e9), 20 + random.int(400));
        assert.ok(lines[0]?.startsWith("O "), lines[0]);
        apply(model, lines);
        const storage = new FileStorage(dir, { segmentBytes: 8 * 1024 });
        const state = await storage.open();
        const safe = Math.min(model.last, model.pendingFrom - 1);
        const where = `(seed ${seed}, round ${round})`;
        assert.ok(state.hardState.term >= model.hardTerm, `hard state went back ${where}`);
        assert.ok(
          state.lastIndex >= safe,
          `lost entries: last ${state.lastIndex} < ${safe} ${where}`,
        );
        const entries = await storage.entries(state.firstIndex, state.lastIndex + 1);
        entries.forEach((entry, i) => {
          assert.equal(entry.index, state.firstIndex + i);
          const [index, term] = new TextDecoder().decode(entry.command).split(":").map(Number);
          assert.equal(index, entry.index);
          assert.equal(term, entry.term, `entry ${entry.index} is mixed up ${where}`);
          if (entry.index <= safe) {
            assert.equal(entry.term, model.terms.get(entry.index), `entry ${entry.index} ${where}`);
          }
        });
        // The recovered log is the truth the next writer continues from.
        model.terms = new Map(entries.map((e) => [e.index, e.term]));
        model.last = state.lastIndex;
        model.pendingFrom = Infinity;
        await storage.close();
      }
      assert.ok(model.last > 0, "the writer never got an append acknowledged");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
