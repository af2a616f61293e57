/**
 * Runs `deno test` with the given arguments, streams its output, and ends with one plain line
 * `N passed, N failed, N skipped` (CI reads `N passed, N failed`).
 *
 * Honest counts:
 * - The counts come from the JUnit report Deno writes (`--junit-path`), checked against Deno's
 *   own last summary line (`ok | 105 passed (428 steps) | 0 failed | 1 ignored`); a test that
 *   prints `... ok` lines or a fake summary changes neither.
 * - Deno runs node:test's `describe` as a test and each test inside it as a step, so its summary
 *   counts a block of 10 tests as 1 test + 10 steps. Here only leaf tests count (a block is not
 *   one more test, as under Bun and Node): tests + steps − blocks. A block that fails with no
 *   failed test inside (a hook threw) still counts as one failure.
 * - Deno reports node:test's `t.skip()` as a pass; scripts/_skip_recorder.ts (preloaded) records
 *   each call, and such a test counts as skipped. Every skipped test is listed with its reason.
 *
 * The run fails when Deno exits non-zero, prints no summary, its summary disagrees with its
 * report, fewer tests are reported than scripts/expected_min_tests.json expects, a test file
 * runs longer than --file-timeout seconds (default 180) or the run longer than
 * --total-timeout seconds (default 600); with --ci, also when more tests are skipped than the
 * file allows (a machine set up by .ci/run runs the Chromium and chaos tests). `--no-minimum`
 * is for a run of some files only.
 *
 * Usage: `deno run -A scripts/run_tests.ts [--ci] [--no-minimum] [--file-timeout S]
 * [--total-timeout S] <deno test arguments>`
 * @module
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkExpected,
  type Counts,
  fillFiles,
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

const args = [...Deno.args];
const ci = takeFlag(args, "ci");
// A run of some files only (`--no-minimum`) is not held to the full suite's minimum.
const minimum = !takeFlag(args, "no-minimum");
const fileMs = Number(takeOption(args, "file-timeout") ?? 180) * 1000;
const totalMs = Number(takeOption(args, "total-timeout") ?? 600) * 1000;
if (!(fileMs > 0) || !(totalMs > 0)) {
  throw new RangeError("--file-timeout and --total-timeout take a positive number of seconds");
}

const work = mkdtempSync(join(tmpdir(), "tsraft-test-run-"));
const junitPath = join(work, "junit.xml");
const skipLog = join(work, "skips.jsonl");
const preload = new URL("./_skip_recorder.ts", import.meta.url).pathname;
const testArgs = ["test", `--junit-path=${junitPath}`, `--preload=${preload}`, ...args];

// Its own session and process group, so a timeout kills the nodes tests spawned as well.
const hasSetsid = (() => {
  try {
    return new Deno.Command("setsid", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false; // Not installed: the child runs in this process group.
  }
})();
const child = new Deno.Command(hasSetsid ? "setsid" : Deno.execPath(), {
  args: hasSetsid ? [Deno.execPath(), ...testArgs] : testArgs,
  stdout: "piped",
  stderr: "inherit",
  env: { TSRAFT_SKIP_LOG: skipLog },
}).spawn();

function kill(): void {
  try {
    Deno.kill(hasSetsid ? -child.pid : child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

const watchdog = new Watchdog({ fileMs, totalMs, kill });
// deno-lint-ignore no-control-regex
const ansi = /\x1b\[[0-9;]*m/g;
const decoder = new TextDecoder();
let output = "";
let pending = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  const text = decoder.decode(chunk, { stream: true });
  output += text;
  pending += text;
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    const running = /^running \d+ tests? from (\S+)/.exec(line.replace(ansi, ""));
    if (running !== null) watchdog.file(running[1]!);
  }
}
const status = await child.status;
watchdog.stop();

const problems: string[] = [];
if (watchdog.expired !== undefined) problems.push(`killed: ${watchdog.expired}`);

const summary = lastMatch(
  output.replace(ansi, ""),
  /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored(?: \((\d+) steps?\))?)?/,
);
const cases = existsSync(junitPath) ? parseJUnit(readFileSync(junitPath, "utf8")) : [];
fillFiles(cases);

// t.skip() calls, by full test name.
const tSkips = new Map<string, string>();
if (existsSync(skipLog)) {
  for (const line of readFileSync(skipLog, "utf8").split("\n")) {
    if (line === "") continue;
    const entry = JSON.parse(line) as { name: string; reason: string };
    tSkips.set(entry.name, entry.reason);
  }
}

const { leaves, parentFailures, ambiguous } = leafTests(cases);
if (ambiguous.length > 0) {
  console.log(
    `note: top-level tests or blocks share the names ${ambiguous.join(", ")}; Deno's report ` +
      "does not say which holds the tests, so a plain test among them would go uncounted",
  );
}
const counts: Counts = { passed: 0, failed: parentFailures.length, skipped: 0 };
const skips: Skip[] = [];
for (const leaf of leaves) {
  const tReason = tSkips.get(leaf.name);
  if (leaf.status === "failed") counts.failed++;
  else if (leaf.status === "skipped" || tReason !== undefined) {
    counts.skipped++;
    skips.push({
      name: leaf.name,
      file: leaf.file,
      reason: tReason !== undefined ? `t.skip("${tReason}")` : reasonFromSource(leaf),
    });
  } else counts.passed++;
}
for (const failure of parentFailures) problems.push(`block failed: ${failure.name}`);

if (summary === undefined) {
  problems.push("deno test printed no summary line");
} else {
  const n = (i: number) => Number(summary[i] ?? 0);
  const reported = n(2) + n(3) + n(4) + n(5) + n(6) + n(7);
  if (reported !== cases.length) {
    problems.push(
      `Deno's summary counts ${reported} tests and steps, its JUnit report ${cases.length}`,
    );
  }
  if (summary[1] === "FAILED" && counts.failed === 0) {
    problems.push("Deno's summary says FAILED but its report has no failed test");
  }
}
if (!status.success && counts.failed === 0 && problems.length === 0) {
  problems.push(`deno test exited with code ${status.code}`);
}
problems.push(...checkExpected("deno", counts, { ci, minimum }));

report("deno", counts, skips, problems);
rmSync(work, { recursive: true, force: true });
Deno.exit(counts.failed + problems.length > 0 ? 1 : 0);
