/**
 * What scripts/run_tests.ts (Deno) and scripts/run_bun_tests.ts (Bun) share: reading a test
 * runner's JUnit report, reconciling it with the runner's own summary line, finding why a
 * skipped test was skipped, the per-file watchdog, and the result the CI script reads.
 *
 * Counts come from files the runner writes (its JUnit report) and from its last summary line,
 * never from counting `... ok` lines in the output, which any test could print.
 *
 * Only node: APIs, so both runtimes run it.
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const REPO_ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** One test case of a JUnit report. */
export interface TestCase {
  /** Full name: enclosing `describe` blocks and the test, joined by " > ". */
  name: string;
  /** The test file relative to the repository root, when the report says. */
  file: string | undefined;
  /** Line of the declaration, when the report gives a real one. */
  line: number | undefined;
  /** Outcome in the report. */
  status: "passed" | "failed" | "skipped";
}

/** The counts of one runtime, leaf tests only. */
export interface Counts {
  /** Leaf tests that passed. */
  passed: number;
  /** Leaf tests that failed, plus failures the report cannot pin on a leaf. */
  failed: number;
  /** Leaf tests skipped (an option, `test.skip`, `todo`, or `t.skip()`). */
  skipped: number;
}

/** A skipped test and why. */
export interface Skip {
  /** Full test name. */
  name: string;
  /** Test file, when known. */
  file: string | undefined;
  /** The reason given at run time, or the skip clause of the source. */
  reason: string;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_, entity: string) => {
    switch (entity.toLowerCase()) {
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "amp":
        return "&";
      case "quot":
        return '"';
      case "apos":
        return "'";
    }
    return String.fromCodePoint(
      entity[1] === "x" || entity[1] === "X"
        ? parseInt(entity.slice(2), 16)
        : parseInt(entity.slice(1), 10),
    );
  });
}

function attributes(tag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const match of tag.matchAll(/([\w:-]+)="([^"]*)"/g)) {
    result[match[1]!] = decodeEntities(match[2]!);
  }
  return result;
}

/**
 * Reads a JUnit XML report as written by `deno test --junit-path` or `bun test --reporter=junit`.
 * Deno writes every test and step as a flat `<testcase>` whose name already holds the path
 * ("block > test"); Bun nests a `<testsuite>` per `describe` block and names the leaf only, so
 * the enclosing suites (below the per-file one) are prefixed here.
 * @param xml the report
 * @returns every test case in document order
 */
export function parseJUnit(xml: string): TestCase[] {
  const cases: TestCase[] = [];
  // Bun: the per-file suite has a `file` equal to its name; deeper suites are describe blocks.
  const suites: { name: string; describe: boolean }[] = [];
  const token = /<(\/?)(testsuites|testsuite|testcase|failure|error|skipped)\b([^>]*?)(\/?)>/g;
  let current: TestCase | undefined;
  for (const match of xml.matchAll(token)) {
    const [, closing, tag, rest, selfClosing] = match;
    if (tag === "testsuite") {
      if (closing) suites.pop();
      else if (!selfClosing) {
        const attrs = attributes(rest!);
        suites.push({ name: attrs.name ?? "", describe: suites.length > 0 });
      }
    } else if (tag === "testcase") {
      if (closing) {
        current = undefined;
        continue;
      }
      const attrs = attributes(rest!);
      const prefix = suites.filter((s) => s.describe).map((s) => s.name);
      const file = attrs.file ?? attrs.classname;
      const line = Number(attrs.line);
      current = {
        name: [...prefix, attrs.name ?? ""].join(" > "),
        // Deno names steps of `describe` blocks after its own polyfill module, not the test file.
        file: file === undefined || file.startsWith("ext:") || file === ""
          ? undefined
          : file.replace(/^\.\//, ""),
        line: file?.startsWith("ext:") || !Number.isFinite(line) || line < 1 ? undefined : line,
        status: "passed",
      };
      cases.push(current);
      if (selfClosing) current = undefined;
    } else if (current !== undefined && !closing) {
      if (tag === "failure" || tag === "error") current.status = "failed";
      else if (tag === "skipped" && current.status !== "failed") current.status = "skipped";
    }
  }
  return cases;
}

/**
 * Reduces a flat list of tests and steps to leaf tests. A `describe` block (and a test with
 * subtests) is a parent: it holds tests but is not one more test, so it is not counted, except
 * that a parent which failed with no failed test below it (a hook threw, the block body threw)
 * counts as one failure so it cannot disappear.
 * @param cases test cases with full names
 * @returns leaves and the failures pinned on parents
 */
export function leafTests(
  cases: TestCase[],
): { leaves: TestCase[]; parentFailures: TestCase[]; ambiguous: string[] } {
  const names = new Set(cases.map((c) => c.name));
  const parents = new Set<string>();
  for (const c of cases) {
    const parts = c.name.split(" > ");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(" > ");
      if (names.has(parent)) parents.add(parent);
    }
  }
  const leaves = cases.filter((c) => !parents.has(c.name));
  const parentFailures = cases.filter((c) =>
    parents.has(c.name) && c.status === "failed" &&
    !cases.some((d) => d.status === "failed" && d.name.startsWith(`${c.name} > `))
  );
  // Deno's report names a describe block's tests without their file: when two cases share a
  // block's name (two `describe("X")`, or a test "X" beside one), which of them holds the tests
  // is unknown. Two blocks count exactly (neither is a test); a plain test "X" would be missed.
  const seen = new Map<string, number>();
  for (const c of cases) if (parents.has(c.name)) seen.set(c.name, (seen.get(c.name) ?? 0) + 1);
  const ambiguous = [...seen].filter(([, n]) => n > 1).map(([name]) => name);
  return { leaves, parentFailures, ambiguous };
}

/** Finds the file of a describe step from its top-level block. */
export function fillFiles(cases: TestCase[]): void {
  const fileOfTop = new Map<string, string>();
  for (const c of cases) {
    if (c.file !== undefined && !c.name.includes(" > ")) fileOfTop.set(c.name, c.file);
  }
  for (const c of cases) {
    if (c.file === undefined) c.file = fileOfTop.get(c.name.split(" > ")[0]!);
  }
}

/** Text of a JavaScript expression starting at `start`, up to a `,` `}` or `)` at depth 0. */
function expressionAt(source: string, start: number): string {
  let depth = 0;
  let quote: string | undefined;
  let i = start;
  for (; i < source.length; i++) {
    const ch = source[i]!;
    if (quote !== undefined) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === "`") quote = ch;
    else if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") {
      if (depth === 0) break;
      depth--;
    } else if ((ch === "," || ch === ";") && depth === 0) break;
  }
  return source.slice(start, i).replace(/\s+/g, " ").trim();
}

/**
 * Why a skipped test was skipped, read from its source: the `skip` option's expression or a
 * `t.skip(...)` call in the first lines after the test's name. Runners do not report skip
 * reasons, and most are computed (`skip: hasChromium ? false : "…"`); the clause says both the
 * condition and the message.
 * @param skip the test (file relative to the repository root)
 * @returns the clause, or a note that it was not found
 */
export function reasonFromSource(skip: { name: string; file: string | undefined }): string {
  if (skip.file === undefined) return "(file unknown)";
  const path = `${REPO_ROOT}${skip.file}`;
  if (!existsSync(path)) return "(source not found)";
  const source = readFileSync(path, "utf8");
  const leaf = skip.name.split(" > ").pop()!;
  let at = -1;
  let nameLength = leaf.length + 2;
  for (const quote of ['"', "'", "`"]) {
    at = source.indexOf(`${quote}${leaf}${quote}`);
    if (at >= 0) break;
  }
  if (at < 0) {
    // A name built from a template (`${kind} server`) is not in the source literally.
    const head = leaf.slice(0, 20);
    at = source.indexOf(head);
    nameLength = head.length;
  }
  if (at < 0) return "(declaration not found)";
  const from = at + nameLength;
  const window = source.slice(from, from + 800);
  const clause = /\b(skip|todo)\b\s*(:|\(|[,}])/.exec(window);
  if (clause === null) return "(no skip clause in the source)";
  const after = clause.index + clause[0].length;
  if (clause[2] === ":") return `${clause[1]}: ${expressionAt(window, after)}`;
  if (clause[2] === "(") {
    const callee = /([\w.]*)$/.exec(window.slice(0, clause.index))![1];
    return `${callee}${clause[1]}(${expressionAt(window, after)})`;
  }
  // `{ skip }` names a variable of the module.
  const variable = new RegExp(`(?:const|let)\\s+${clause[1]}\\s*=`).exec(source);
  return variable === null
    ? clause[1]!
    : `${clause[1]} = ${expressionAt(source, variable.index + variable[0].length)}`;
}

/**
 * Reads the last summary line matching `pattern` in `output`: the runner prints its summary
 * after every test, so the last match is the runner's and an imitation printed by a test comes
 * before it.
 */
export function lastMatch(output: string, pattern: RegExp): RegExpExecArray | undefined {
  let last: RegExpExecArray | undefined;
  for (const line of output.split("\n")) {
    const match = pattern.exec(line);
    if (match !== null) last = match;
  }
  return last;
}

/** What scripts/expected_min_tests.json expects of one runtime's full run. */
export interface Expected {
  /** Fewest tests (passed + failed + skipped) a full run may report. */
  min: number;
  /** Most tests a CI run (`--ci`, on a machine set up by .ci/run) may skip. */
  maxSkipped: number;
}

/** Reads the expectations of one runtime from scripts/expected_min_tests.json. */
export function expected(runtime: "deno" | "bun"): Expected {
  const json = JSON.parse(
    readFileSync(new URL("./expected_min_tests.json", import.meta.url), "utf8"),
  ) as Record<string, Partial<Expected>>;
  const entry = json[runtime];
  if (typeof entry?.min !== "number" || typeof entry.maxSkipped !== "number") {
    throw new TypeError(
      `scripts/expected_min_tests.json has no "${runtime}": { "min": N, "maxSkipped": N }`,
    );
  }
  return { min: entry.min, maxSkipped: entry.maxSkipped };
}

/**
 * The checks both runners make of a finished run's counts.
 * @param runtime "deno" or "bun"
 * @param counts leaf counts
 * @param options `ci`: enforce maxSkipped; `minimum`: false for a partial run
 * @returns problems, empty when none
 */
export function checkExpected(
  runtime: "deno" | "bun",
  counts: Counts,
  options: { ci: boolean; minimum: boolean },
): string[] {
  const problems: string[] = [];
  const limits = expected(runtime);
  const total = counts.passed + counts.failed + counts.skipped;
  if (options.minimum && total < limits.min) {
    problems.push(
      `only ${total} tests reported; scripts/expected_min_tests.json expects at least ${limits.min}`,
    );
  }
  if (options.ci && counts.skipped > limits.maxSkipped) {
    problems.push(
      `${counts.skipped} tests skipped; at most ${limits.maxSkipped} may be on CI (scripts/expected_min_tests.json)`,
    );
  }
  return problems;
}

/**
 * Prints the skipped tests, the problems, and the final `N passed, N failed, N skipped` line,
 * and writes the same to the file named by TSRAFT_TEST_RESULT (for .ci/run).
 * @param runtime "deno" or "bun"
 * @param counts leaf counts
 * @param skips skipped tests with reasons
 * @param problems reasons the run fails beyond failed tests
 */
export function report(
  runtime: string,
  counts: Counts,
  skips: Skip[],
  problems: string[],
): void {
  const failed = counts.failed + problems.length;
  const lines: string[] = [];
  if (skips.length > 0) {
    lines.push(`${runtime}: ${skips.length} skipped:`);
    for (const s of skips) {
      lines.push(`  ${s.file ?? "?"}: ${s.name}\n      reason: ${s.reason}`);
    }
  }
  for (const problem of problems) lines.push(`${runtime}: FAILED: ${problem}`);
  const summary = `${counts.passed} passed, ${failed} failed, ${counts.skipped} skipped`;
  // The last line is the plain `N passed, N failed` that CI reads; skips are on the line before.
  console.log(
    `\n${lines.join("\n")}${lines.length > 0 ? "\n" : ""}${summary}\n` +
      `${counts.passed} passed, ${failed} failed`,
  );
  const resultPath = process.env.TSRAFT_TEST_RESULT;
  if (resultPath) {
    writeFileSync(resultPath, `${summary}\n${lines.join("\n")}\n`);
  }
}

/**
 * Kills a test run whose current file has run longer than `fileMs`, or which has run longer
 * than `totalMs` in all. The current file is read from the runner's progress lines; a test
 * that printed such a line could only restart its own file's clock, never hide the total limit.
 */
export class Watchdog {
  #file = "(startup)";
  #fileStart = Date.now();
  #start = Date.now();
  #timer: ReturnType<typeof setInterval>;
  /** Set when the watchdog killed the run: what ran too long. */
  expired: string | undefined;

  constructor(
    options: { fileMs: number; totalMs: number; kill: () => void },
  ) {
    this.#timer = setInterval(() => {
      const now = Date.now();
      if (now - this.#start > options.totalMs) {
        this.expired = `the whole run exceeded ${options.totalMs / 1000} s (in ${this.#file})`;
      } else if (now - this.#fileStart > options.fileMs) {
        this.expired = `${this.#file} ran longer than ${options.fileMs / 1000} s`;
      }
      if (this.expired !== undefined) {
        clearInterval(this.#timer);
        options.kill();
      }
    }, 1000);
  }

  /** A new test file started. */
  file(name: string): void {
    this.#file = name;
    this.#fileStart = Date.now();
  }

  /** The run ended. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Reads `--name=value` / `--name value` numeric options out of `args` (in place). */
export function takeOption(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === `--${name}`) {
      const value = args[i + 1];
      args.splice(i, 2);
      return value;
    }
    if (arg.startsWith(`--${name}=`)) {
      args.splice(i, 1);
      return arg.slice(name.length + 3);
    }
  }
  return undefined;
}

/** Removes a boolean `--name` flag from `args`; true when it was there. */
export function takeFlag(args: string[], name: string): boolean {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return false;
  args.splice(at, 1);
  return true;
}
