import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { test } from "node:test";
import { SeededRandom } from "@tsraft/core/testing";
import { commandFor } from "./_crash_workload.ts";
import { KvStorage } from "./mod.ts";

const ITERATIONS = 6;
const WRITER = fileURLToPath(new URL("./_crash_writer.ts", import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL(".", import.meta.url));
const denoGlobal = (globalThis as { Deno?: { execPath(): string } }).Deno;
/**
 * The writer runs on the runtime running this test: Deno KV in Deno, @deno/kv in Bun and in
 * Node (through tsx, whose loader flags execArgv carries to the child).
 */
const WRITER_COMMAND = denoGlobal
  ? [denoGlobal.execPath(), "run", "-A", "--unstable-kv", WRITER]
  : "Bun" in globalThis || process.execArgv.some((arg) => arg.includes("tsx"))
  ? [process.execPath, ...process.execArgv, WRITER]
  : undefined;

interface Save {
  from: number;
  to: number;
  term: number;
}

/**
 * Runs the writer until it has acknowledged at least one save, lets it go on for a random
 * while, kills it with SIGKILL and returns the saves it acknowledged and the one in flight.
 */
function runAndKill(
  path: string,
  seed: number,
  extraMs: number,
): Promise<{ acked: Save[]; pending: Save | undefined }> {
  const [command, ...args] = WRITER_COMMAND!;
  const child = spawn(command!, [...args, path, String(seed)], {
    cwd: PACKAGE_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const acked: Save[] = [];
  let pending: Save | undefined;
  let buffered = "";
  let stderr = "";
  return new Promise((resolve, reject) => {
    const giveUp = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`writer acknowledged nothing within 60 s; stderr: ${stderr}`));
    }, 60_000);
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    child.stderr.on("data", (data: Uint8Array) => stderr += new TextDecoder().decode(data));
    child.stdout.on("data", (data: Uint8Array) => {
      buffered += new TextDecoder().decode(data);
      const lines = buffered.split("\n");
      buffered = lines.pop()!; // a line cut by the kill has no newline and is ignored
      for (const line of lines) {
        const [kind, from, to, term] = line.split(" ");
        const save = { from: Number(from), to: Number(to), term: Number(term) };
        if (kind === "begin") pending = save;
        else if (kind === "ack") {
          acked.push(save);
          pending = undefined;
        }
      }
      if (acked.length > 0 && killTimer === undefined) {
        killTimer = setTimeout(() => child.kill("SIGKILL"), extraMs);
      }
    });
    child.on("exit", (code, signal) => {
      clearTimeout(giveUp);
      clearTimeout(killTimer);
      if (signal !== "SIGKILL") reject(new Error(`writer exited (${code}): ${stderr}`));
      else resolve({ acked, pending });
    });
  });
}

test(
  "KvStorage keeps every acknowledged entry and a valid log across kill -9",
  {
    skip: WRITER_COMMAND ? false : "runs the TypeScript writer only on Deno, Bun and Node with tsx",
    timeout: 180_000,
  },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-crash-"));
    const path = join(dir, "raft.sqlite");
    const random = new SeededRandom(20240611);
    // Terms of the log as last verified on disk, index i at terms[i - 1].
    let terms: number[] = [];
    let hardTerm = 0;
    try {
      for (let iteration = 0; iteration < ITERATIONS; iteration++) {
        const { acked, pending } = await runAndKill(path, 1 + iteration, random.int(300));
        const model = [...terms];
        for (const save of acked) {
          model.length = save.from - 1;
          for (let i = save.from; i <= save.to; i++) model.push(save.term);
        }
        const storage = new KvStorage({ path });
        const state = await storage.open();
        const entries = await storage.entries(1, state.lastIndex + 1);
        const stored = entries.map((e) => e.term);
        entries.forEach((e, i) => {
          assert.equal(e.index, i + 1);
          assert.deepStrictEqual(e.command, commandFor(e.index, e.term), `entry ${e.index}`);
        });
        for (let i = 1; i < stored.length; i++) {
          assert.ok(stored[i]! >= stored[i - 1]!, `terms decrease at index ${i + 1}`);
        }
        const unchanged = isDeepStrictEqual(stored, model);
        if (pending === undefined) {
          assert.deepStrictEqual(stored, model, `iteration ${iteration}: log differs from acks`);
        } else if (!unchanged) {
          // The save in flight landed in part: the old entries before its start, then a
          // prefix of its entries, and nothing else.
          const keep = pending.from - 1;
          assert.deepStrictEqual(stored.slice(0, keep), model.slice(0, keep));
          assert.ok(stored.length >= keep && stored.length <= pending.to, `${stored.length}`);
          assert.ok(stored.slice(keep).every((t) => t === pending.term));
          if (stored.length > keep) {
            assert.ok(state.hardState.term >= pending.term, "term must precede its entries");
          }
        }
        assert.ok(state.hardState.term >= (stored.at(-1) ?? 0));
        assert.ok(state.hardState.term >= hardTerm, "term went backwards");
        hardTerm = state.hardState.term;
        terms = stored;
        await storage.close();
      }
      assert.ok(terms.length > 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
