// A short run of `deno task chaos` (examples/chaos.ts): 3 kv node processes in network
// namespaces, every fault kind the seed draws (iptables, kill -9, SIGSTOP, leadership
// transfers, membership changes, a full tmpfs), then the linearizability check. Linux + root.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { chaosUnsupported } from "./_chaos_net.ts";

const CHAOS_PATH = fileURLToPath(new URL("./chaos.ts", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

const unsupported = await chaosUnsupported();
// Test runners show a skipped test without its reason; say it once here.
if (unsupported !== undefined) console.log(`chaos_test: skipped: ${unsupported}`);

function denoExecutable(): string {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno?.execPath() ?? "deno";
}

function runChaos(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(denoExecutable(), ["run", "-A", CHAOS_PATH, ...args], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => output += chunk.toString("utf8"));
    child.stderr.on("data", (chunk: Buffer) => output += chunk.toString("utf8"));
    // chaos.ts cleans up on SIGTERM; a run far past its budget is a failure in itself.
    const timer = setTimeout(() => child.kill("SIGTERM"), 90_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function check(code: number | null, output: string, what: string): void {
  if (code !== 0 || !/^verdict: ok$/m.test(output)) process.stderr.write(output);
  assert.equal(code, 0, `chaos.ts ${what} exited with ${code}`);
  assert.match(output, /^verdict: ok$/m);
  const ops = Number(/ops:\s+(\d+)/.exec(output)?.[1]);
  assert.ok(ops > 50, `only ${ops} operations were checked`);
  assert.match(output, /faults:\s+[1-9]/);
  assert.match(output, /operations: \d+ ok, \d+ failed, \d+ unknown/);
  assert.match(output, /leaders:\s+\d+ leader changes seen/);
}

// Bun's default limit is 5 s; each run takes 10 to 20 s.
const options = unsupported === undefined
  ? { timeout: 120_000 }
  : { skip: `chaos test skipped: ${unsupported}` };

test(
  "chaos.ts: 3 kv processes under partitions, loss, kill -9 and membership changes keep a linearizable history",
  options,
  async () => {
    // A fixed fault schedule; `deno task chaos` (random seeds, longer runs) explores more.
    const seed = process.env.TSRAFT_CHAOS_SEED ?? "1";
    const { code, output } = await runChaos(["--duration", "8", "--nodes", "3", "--seed", seed]);
    check(code, output, `--seed ${seed}`);
  },
);

test(
  "chaos.ts: a node whose disk fills up fail-stops, restarts on disk, and the history stays linearizable",
  options,
  async () => {
    // Seed 4 draws the disk fault first (then leadership transfers).
    const args = ["--duration", "10", "--seed", "4", "--faults", "disk-full,pause-leader,transfer"];
    const { code, output } = await runChaos(args);
    check(code, output, args.join(" "));
    assert.match(output, /disk-full: n\d: fail-stop after [\d.]+ s \(".*No space left on device/);
    assert.match(output, /fault transfer: /);
  },
);
