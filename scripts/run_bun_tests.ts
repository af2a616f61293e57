/**
 * Runs `bun test` with the given arguments under the Bun running this script, streams its
 * output, and ends with one plain line `N passed, N failed, N skipped` (as scripts/run_tests.ts
 * does for Deno; CI reads `N passed, N failed`).
 *
 * Counts come from the JUnit report Bun writes (`--reporter=junit`), checked against Bun's own
 * last summary (` 413 pass`, ` 6 skip`, ` 0 fail`, `Ran 419 tests across 37 files.`), never from
 * output lines a test could print. Bun counts leaf tests only (a `describe` block is not a
 * test) and reports node:test's `t.skip()` as a skip. Every skipped test is listed with its
 * reason.
 *
 * The run fails when Bun exits non-zero, prints no summary, its summary disagrees with its
 * report, fewer tests are reported than scripts/expected_min_tests.json expects, a test file
 * runs longer than --file-timeout seconds (default 180) or the run longer than
 * --total-timeout seconds (default 600); with --ci, also when more tests are skipped than the
 * file allows. `--no-minimum` is for a run of some files only.
 *
 * Before testing it checks that the workspace package.json files agree with the deno.json
 * files: Deno reads the import map, Bun reads package.json, and a drift between the two
 * would test different code on each runtime.
 *
 * Usage (see the root package.json): `bun scripts/run_bun_tests.ts [--ci] packages bench`
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  checkExpected,
  type Counts,
  lastMatch,
  leafTests,
  parseJUnit,
  reasonFromSource,
  report,
  type Skip,
  takeFlag,
  takeOption,
  Watchdog,
} from "./_test_report.ts";

const root = new URL("../", import.meta.url);

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(path, root), "utf8"));
}

/**
 * Every workspace member (of deno.json or package.json) needs a package.json, with the name
 * and version of its deno.json when it has one, and each npm dependency it pins must be the
 * version the import map gives.
 */
function versionDrift(): string[] {
  const denoJson = readJson("deno.json");
  const imports = (denoJson.imports ?? {}) as Record<string, string>;
  const members = new Set<string>();
  for (const member of (denoJson.workspace ?? []) as string[]) {
    members.add(member.replace(/^\.\//, ""));
  }
  for (const member of (readJson("package.json").workspaces ?? []) as string[]) {
    if (!member.includes("*")) members.add(member);
  }
  const problems: string[] = [];
  for (const dir of members) {
    if (!existsSync(new URL(`${dir}/package.json`, root))) {
      problems.push(`${dir} has no package.json: Bun cannot resolve it`);
      continue;
    }
    const npm = readJson(`${dir}/package.json`);
    if (existsSync(new URL(`${dir}/deno.json`, root))) {
      const deno = readJson(`${dir}/deno.json`);
      if (npm.name !== deno.name || npm.version !== deno.version) {
        problems.push(
          `${dir}: package.json is ${npm.name}@${npm.version}, deno.json is ${deno.name}@${deno.version}`,
        );
      }
    }
    const dependencies = (npm.dependencies ?? {}) as Record<string, string>;
    for (const [name, version] of Object.entries(dependencies)) {
      const mapped = imports[name];
      if (mapped !== undefined && mapped !== `npm:${name}@${version}`) {
        problems.push(`${dir}/package.json has ${name}@${version}, deno.json has ${mapped}`);
      }
    }
  }
  return problems;
}

const drift = versionDrift();
if (drift.length > 0) {
  console.error(`package.json and deno.json disagree:\n  ${drift.join("\n  ")}`);
  report("bun", { passed: 0, failed: 0, skipped: 0 }, [], ["package.json and deno.json disagree"]);
  process.exit(1);
}

const args = process.argv.slice(2);
const ci = takeFlag(args, "ci");
const minimum = !takeFlag(args, "no-minimum");
const fileMs = Number(takeOption(args, "file-timeout") ?? 180) * 1000;
const totalMs = Number(takeOption(args, "total-timeout") ?? 600) * 1000;
if (!(fileMs > 0) || !(totalMs > 0)) {
  throw new RangeError("--file-timeout and --total-timeout take a positive number of seconds");
}
const work = mkdtempSync(join(tmpdir(), "tsraft-bun-run-"));
const junitPath = join(work, "junit.xml");

// Bun's default 5 s per-test timeout is shorter than some cluster tests take on 2 cores.
// `detached`: its own process group, so a timeout kills the nodes tests spawned as well.
const child = spawn(
  process.execPath,
  [
    "test",
    "--timeout",
    "120000",
    "--reporter=junit",
    `--reporter-outfile=${junitPath}`,
    ...args,
  ],
  { stdio: ["ignore", "pipe", "pipe"], detached: true },
);

const watchdog = new Watchdog({
  fileMs,
  totalMs,
  kill: () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // Already gone.
    }
  },
});

// Bun prints progress (`path/to/file_test.ts:`) and its summary to stderr.
let errorOutput = "";
let pending = "";
const decoder = new TextDecoder();
child.stdout.on("data", (chunk: Uint8Array) => process.stdout.write(chunk));
child.stderr.on("data", (chunk: Uint8Array) => {
  process.stderr.write(chunk);
  const text = decoder.decode(chunk, { stream: true });
  errorOutput += text;
  pending += text;
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    const file = /^(\S+_test\.[cm]?[jt]sx?):$/.exec(line);
    if (file !== null) watchdog.file(file[1]!);
  }
});

child.on("close", (code) => {
  watchdog.stop();
  const problems: string[] = [];
  if (watchdog.expired !== undefined) problems.push(`killed: ${watchdog.expired}`);
  const cases = existsSync(junitPath) ? parseJUnit(readFileSync(junitPath, "utf8")) : [];
  const { leaves, parentFailures } = leafTests(cases);
  const counts: Counts = { passed: 0, failed: parentFailures.length, skipped: 0 };
  const skips: Skip[] = [];
  for (const leaf of leaves) {
    if (leaf.status === "failed") counts.failed++;
    else if (leaf.status === "skipped") {
      counts.skipped++;
      skips.push({ name: leaf.name, file: leaf.file, reason: reasonFromSource(leaf) });
    } else counts.passed++;
  }
  const ran = lastMatch(errorOutput, /^Ran (\d+) tests? across (\d+) files?\./);
  const fail = lastMatch(errorOutput, /^\s*(\d+) fail$/);
  // Bun counts a file that fails to load, or an error between tests, as a failed test that
  // its report does not list; those count as failures here too.
  const unlisted = Math.max(0, Number(fail?.[1] ?? 0) - counts.failed);
  counts.failed += unlisted;
  if (ran === undefined) {
    problems.push("bun test printed no summary line");
  } else if (Number(ran[1]) !== leaves.length + unlisted) {
    problems.push(`Bun's summary counts ${ran[1]} tests, its JUnit report ${leaves.length}`);
  }
  if (code !== 0 && counts.failed === 0 && problems.length === 0) {
    problems.push(`bun test exited with code ${code}`);
  }
  problems.push(...checkExpected("bun", counts, { ci, minimum }));
  report("bun", counts, skips, problems);
  rmSync(work, { recursive: true, force: true });
  process.exit(counts.failed + problems.length > 0 ? 1 : 0);
});
