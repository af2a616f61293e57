/**
 * Runs `bun test` with the given arguments under the Bun running this script, streams its
 * output, and ends with one plain line `N passed, N failed, N skipped` (as scripts/run_tests.ts
 * does for Deno; CI reads `N passed, N failed`).
 *
 * Each test file runs in its own `bun test` process (as under Node and Deno, one file's globals
 * cannot break another's tests), with a timeout of its own.
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
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
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
  type TestCase,
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
const started = Date.now();

/** Test files as Bun finds them: `*_test`, `*.test`, `*_spec`, `*.spec` scripts. */
const TEST_FILE = /(?:_test|\.test|_spec|\.spec)\.(?:[cm]?[jt]sx?)$/;

function testFiles(paths: string[]): string[] {
  const files: string[] = [];
  const walk = (path: string) => {
    if (statSync(path).isFile()) {
      if (TEST_FILE.test(path)) files.push(path);
      return;
    }
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      walk(join(path, entry.name));
    }
  };
  for (const path of paths) walk(path.replace(/\/$/, ""));
  return [...new Set(files)].sort();
}

/** One `bun test` of one file. */
interface FileRun {
  cases: TestCase[];
  /** Bun's summary: tests ran and failed, or undefined when it printed none. */
  ran: number | undefined;
  fail: number;
  code: number | null;
  expired: string | undefined;
}

/**
 * Runs one test file in its own `bun test` process, as Node's runner runs each file in its
 * own process and Deno each in its own isolate: Bun's single process for all files would let
 * one file's globals (a polyfilled Response, say) break another's tests.
 */
function runFile(file: string, options: string[]): Promise<FileRun> {
  const junitPath = join(work, `${file.replaceAll("/", "_")}.xml`);
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
      ...options,
      `./${file}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const watchdog = new Watchdog({
    fileMs,
    totalMs: Math.max(1000, totalMs - (Date.now() - started)),
    kill: () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // Already gone.
      }
    },
  });
  watchdog.file(file);
  // Bun prints its summary (` 4 pass`, `Ran 4 tests across 1 file.`) to stderr.
  let errorOutput = "";
  const decoder = new TextDecoder();
  child.stdout.on("data", (chunk: Uint8Array) => process.stdout.write(chunk));
  child.stderr.on("data", (chunk: Uint8Array) => {
    process.stderr.write(chunk);
    errorOutput += decoder.decode(chunk, { stream: true });
  });
  return new Promise((resolve) => {
    child.on("close", (code) => {
      watchdog.stop();
      const ran = lastMatch(errorOutput, /^Ran (\d+) tests? across (\d+) files?\./);
      resolve({
        cases: existsSync(junitPath) ? parseJUnit(readFileSync(junitPath, "utf8")) : [],
        ran: ran === undefined ? undefined : Number(ran[1]),
        fail: Number(lastMatch(errorOutput, /^\s*(\d+) fail$/)?.[1] ?? 0),
        code,
        expired: watchdog.expired,
      });
    });
  });
}

const options = args.filter((arg) => arg.startsWith("-"));
const files = testFiles(args.filter((arg) => !arg.startsWith("-")));
const problems: string[] = [];
const counts: Counts = { passed: 0, failed: 0, skipped: 0 };
const skips: Skip[] = [];
if (files.length === 0) problems.push(`no test files under ${args.join(" ")}`);
for (const file of files) {
  if (Date.now() - started > totalMs) {
    problems.push(`the whole run exceeded ${totalMs / 1000} s before ${file}`);
    break;
  }
  const run = await runFile(file, options);
  if (run.expired !== undefined) problems.push(`killed: ${run.expired}`);
  const { leaves, parentFailures } = leafTests(run.cases);
  let failed = parentFailures.length;
  for (const leaf of leaves) {
    if (leaf.status === "failed") failed++;
    else if (leaf.status === "skipped") {
      counts.skipped++;
      skips.push({ name: leaf.name, file: leaf.file, reason: reasonFromSource(leaf) });
    } else counts.passed++;
  }
  // Bun counts a file that fails to load, or an error between tests, as a failed test that
  // its report does not list; those count as failures here too.
  const unlisted = Math.max(0, run.fail - failed);
  failed += unlisted;
  counts.failed += failed;
  if (run.ran === undefined) {
    if (run.expired === undefined) problems.push(`${file}: bun test printed no summary line`);
  } else if (run.ran !== leaves.length + unlisted) {
    problems.push(
      `${file}: Bun's summary counts ${run.ran} tests, its JUnit report ${leaves.length}`,
    );
  }
  if (run.code !== 0 && failed === 0 && run.expired === undefined && run.ran !== undefined) {
    problems.push(`${file}: bun test exited with code ${run.code}`);
  }
}
problems.push(...checkExpected("bun", counts, { ci, minimum }));
report("bun", counts, skips, problems);
rmSync(work, { recursive: true, force: true });
process.exit(counts.failed + problems.length > 0 ? 1 : 0);
