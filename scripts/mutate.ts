/**
 * Mutation testing: `deno task mutate` applies each deliberate bug of scripts/mutations.ts,
 * one at a time, to a copy of the repository and runs the commands that should catch it,
 * cheapest first (the package's tests, then `deno task sim --seeds 1000`). It prints a line per
 * mutation as it goes and a markdown table at the end (mutation → the test that caught it),
 * and exits 1 when a mutation survives or no longer applies.
 *
 * ```sh
 * deno task mutate                       # every mutation, on a copy of HEAD
 * deno task mutate --list                # the table of mutations, without running anything
 * deno task mutate --only figure8        # one mutation (repeat --only, or a comma list)
 * deno task mutate --working-tree        # copy the working tree (uncommitted changes) instead
 * deno task mutate --rev a604431^        # copy another commit (did its tests catch these?)
 * deno task mutate --no-baseline         # skip checking that each command passes unmutated
 * deno task mutate --thorough            # a survivor also gets the whole suite (deno task test)
 * deno task mutate --every               # run every command, not only up to the first catch
 * deno task mutate --sim-only 2000 --only figure8  # only the simulator: its first failing seed
 * deno task mutate --check --working-tree # only check that every mutation still applies
 * deno task mutate --timeout 300         # per command, in seconds; a hang counts as caught
 * ```
 *
 * The copy is a `git archive` of HEAD (or of --rev; with --working-tree, the tracked and untracked
 * files that git does not ignore) in a temporary directory; the repository itself is never
 * modified. Before the mutations, each command is run once on the unmutated copy: a command
 * that fails there cannot tell anything; it is left out, and the run exits 1.
 * @module
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fillFiles, leafTests, parseJUnit, REPO_ROOT } from "./_test_report.ts";
import { type Catcher, type Mutation, MUTATIONS } from "./mutations.ts";

interface Args {
  list: boolean;
  only: string[];
  workingTree: boolean;
  rev: string;
  baseline: boolean;
  timeoutMs: number;
  keep: boolean;
  thorough: boolean;
  every: boolean;
  check: boolean;
  simOnly: number | undefined;
}

const USAGE =
  "usage: deno task mutate [--list] [--only id[,id]] [--working-tree | --rev R] [--no-baseline] [--thorough] [--every] [--check] [--sim-only N] [--timeout S] [--keep]";

/** What `deno task test` runs: with --thorough, the last word on a mutation nothing else caught. */
const FULL_SUITE: Catcher = { test: ["packages", "examples", "bench"] };

function parseArgs(argv: string[]): Args {
  const args: Args = {
    list: false,
    only: [],
    workingTree: false,
    rev: "HEAD",
    baseline: true,
    timeoutMs: 300_000,
    keep: false,
    thorough: false,
    every: false,
    check: false,
    simOnly: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new RangeError(`${flag} needs a value (${USAGE})`);
      return next;
    };
    if (flag === "--list") args.list = true;
    else if (flag === "--only") args.only.push(...value().split(","));
    else if (flag.startsWith("--only=")) args.only.push(...flag.slice(7).split(","));
    else if (flag === "--working-tree") args.workingTree = true;
    else if (flag === "--rev") args.rev = value();
    else if (flag === "--no-baseline") args.baseline = false;
    else if (flag === "--keep") args.keep = true;
    else if (flag === "--thorough") args.thorough = true;
    else if (flag === "--every") args.every = true;
    else if (flag === "--check") args.check = true;
    else if (flag === "--sim-only") args.simOnly = Number(value());
    else if (flag === "--timeout") args.timeoutMs = Number(value()) * 1000;
    else throw new RangeError(`Unknown flag ${flag} (${USAGE})`);
  }
  if (!(args.timeoutMs > 0)) throw new RangeError("--timeout needs a positive number of seconds");
  if (args.simOnly !== undefined && !(Number.isSafeInteger(args.simOnly) && args.simOnly > 0)) {
    throw new RangeError("--sim-only needs a positive number of seeds");
  }
  return args;
}

function catcherName(catcher: Catcher): string {
  return "test" in catcher
    ? `deno test ${catcher.test.join(" ")}`
    : `deno task sim --seeds ${catcher.sim}`;
}

/** Outcome of running one catcher. */
interface Outcome {
  /** Whether the command failed, i.e. caught the mutation. */
  failed: boolean;
  /** What failed: test names, a simulator seed, a type error, a timeout. */
  detail: string;
  /** Seconds it took. */
  seconds: number;
}

const hasSetsid = (() => {
  try {
    return new Deno.Command("setsid", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false; // Not installed: the child runs in this process group.
  }
})();

/**
 * Runs a command in its own process group, killing the group after `timeoutMs`, or as soon as
 * `stopWhen` sees a line that already decides the outcome.
 */
async function runCommand(
  cwd: string,
  args: string[],
  options: { timeoutMs: number; stopWhen?: RegExp },
): Promise<{ code: number; output: string; timedOut: boolean }> {
  const child = new Deno.Command(hasSetsid ? "setsid" : Deno.execPath(), {
    args: hasSetsid ? [Deno.execPath(), ...args] : args,
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const kill = () => {
    try {
      Deno.kill(hasSetsid ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, options.timeoutMs);
  let output = "";
  const decoder = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (options.stopWhen?.test(output)) kill();
    }
  };
  await Promise.all([collect(child.stdout), collect(child.stderr)]);
  const status = await child.status;
  clearTimeout(timer);
  return { code: status.code, output, timedOut };
}

async function runCatcher(dir: string, catcher: Catcher, timeoutMs: number): Promise<Outcome> {
  const started = performance.now();
  const seconds = () => Math.round((performance.now() - started) / 1000);
  if ("sim" in catcher) {
    // The simulator goes on after a failing seed; the first one decides.
    const { code, output, timedOut } = await runCommand(
      dir,
      ["task", "sim", "--seeds", String(catcher.sim), "--quiet"],
      { timeoutMs, stopWhen: /^FAIL seed .*\n {2}\S.*\n/m },
    );
    const fail = /^FAIL seed (\d+) \((\d+) nodes\).*\n {2}(.*)/m.exec(output);
    if (fail !== null) {
      return {
        failed: true,
        detail: `sim seed ${fail[1]} (${fail[2]} nodes): ${fail[3]!.slice(0, 140)}`,
        seconds: seconds(),
      };
    }
    if (timedOut) {
      return {
        failed: true,
        detail: `sim hung: killed after ${timeoutMs / 1000} s`,
        seconds: seconds(),
      };
    }
    const passed = /^(\d+) passed, (\d+) failed/m.exec(output);
    if (code !== 0) {
      return {
        failed: true,
        detail: `sim exited ${code}: ${lastLines(output)}`,
        seconds: seconds(),
      };
    }
    if (passed === null) {
      return {
        failed: true,
        detail: `sim printed no result: ${lastLines(output)}`,
        seconds: seconds(),
      };
    }
    return { failed: false, detail: `${passed[1]} seeds passed`, seconds: seconds() };
  }
  const junit = join(dir, ".mutate-junit.xml");
  rmSync(junit, { force: true });
  const { code, output, timedOut } = await runCommand(
    dir,
    ["test", "-A", "--unstable-kv", "--fail-fast", `--junit-path=${junit}`, ...catcher.test],
    { timeoutMs },
  );
  if (timedOut) {
    return {
      failed: true,
      detail: `${catcher.test.join(" ")} hung: killed after ${timeoutMs / 1000} s`,
      seconds: seconds(),
    };
  }
  if (code === 0) return { failed: false, detail: "passed", seconds: seconds() };
  if (/Type checking failed/.test(output)) {
    const error = /^(TS\d+ \[ERROR\]: .*)$/m.exec(output)?.[1] ?? "type error";
    return { failed: true, detail: `type check: ${error}`, seconds: seconds() };
  }
  const cases = existsSync(junit) ? parseJUnit(readFileSync(junit, "utf8")) : [];
  fillFiles(cases);
  const { leaves, parentFailures } = leafTests(cases);
  const failures = [...leaves, ...parentFailures].filter((c) => c.status === "failed");
  if (failures.length === 0) {
    return { failed: true, detail: `exit ${code}: ${lastLines(output)}`, seconds: seconds() };
  }
  const first = failures[0]!;
  const more = failures.length > 1 ? ` (+${failures.length - 1} more)` : "";
  return {
    failed: true,
    detail: `${first.file ?? "?"}: "${first.name}"${more}`,
    seconds: seconds(),
  };
}

function lastLines(output: string): string {
  return output.trim().split("\n").slice(-2).join(" / ").slice(0, 200);
}

function copyRepository(workingTree: boolean, rev: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tsraft-mutate-"));
  const script = workingTree
    // Tracked and untracked files git does not ignore; a file deleted in the working tree is
    // skipped (--ignore-failed-read).
    ? `git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "${dir}"`
    : `git archive --format=tar "${rev.replaceAll('"', "")}" | tar -xf - -C "${dir}"`;
  const result = new Deno.Command("sh", { args: ["-c", script], cwd: REPO_ROOT }).outputSync();
  if (!result.success) {
    throw new Error(`Cannot copy the repository: ${new TextDecoder().decode(result.stderr)}`);
  }
  return dir;
}

function countOccurrences(text: string, find: string): number {
  let count = 0;
  for (let at = text.indexOf(find); at >= 0; at = text.indexOf(find, at + 1)) count++;
  return count;
}

/** Applies a mutation's edits; returns a function that undoes them, or why it cannot apply. */
function apply(dir: string, mutation: Mutation): (() => void) | string {
  const originals = new Map<string, string>();
  const texts = new Map<string, string>();
  for (const edit of mutation.edits) {
    const path = join(dir, edit.file);
    if (!existsSync(path)) return `${edit.file} does not exist`;
    if (!originals.has(edit.file)) originals.set(edit.file, readFileSync(path, "utf8"));
    const text = texts.get(edit.file) ?? originals.get(edit.file)!;
    const count = countOccurrences(text, edit.find);
    if (count !== 1) {
      const found = count === 0 ? "not found" : `found ${count} times`;
      return `find text ${found} in ${edit.file}: ${JSON.stringify(edit.find.slice(0, 80))}`;
    }
    texts.set(edit.file, text.replace(edit.find, () => edit.replace));
  }
  for (const [file, text] of texts) writeFileSync(join(dir, file), text);
  return () => {
    for (const [file, text] of originals) writeFileSync(join(dir, file), text);
  };
}

interface Row {
  mutation: Mutation;
  result: "caught" | "SURVIVED" | "STALE";
  by: string;
}

function printTable(rows: Row[]): void {
  const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
  console.log("\n| mutation | what it breaks | result | caught by |");
  console.log("| --- | --- | --- | --- |");
  for (const row of rows) {
    console.log(
      `| \`${row.mutation.id}\` | ${cell(row.mutation.description)} | ${row.result} | ${
        cell(row.by)
      } |`,
    );
  }
}

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  const unknown = args.only.filter((id) => !MUTATIONS.some((m) => m.id === id));
  if (unknown.length > 0) {
    console.error(`Unknown mutation ${unknown.join(", ")}; --list shows them`);
    return 2;
  }
  const selected = args.only.length === 0
    ? MUTATIONS
    : MUTATIONS.filter((m) => args.only.includes(m.id));
  const catchersOf = (m: Mutation): Catcher[] =>
    args.simOnly !== undefined
      ? [{ sim: args.simOnly }]
      : args.thorough
      ? [...m.catchers, FULL_SUITE]
      : m.catchers;

  if (args.list) {
    console.log("| mutation | what it breaks | file | catching commands |");
    console.log("| --- | --- | --- | --- |");
    for (const m of selected) {
      const files = [...new Set(m.edits.map((e) => e.file))].join(", ");
      console.log(
        `| \`${m.id}\` | ${m.description} | ${files} | ${m.catchers.map(catcherName).join("; ")} |`,
      );
    }
    return 0;
  }

  const dir = copyRepository(args.workingTree, args.rev);
  console.log(`mutate: copy of ${args.workingTree ? "the working tree" : args.rev} in ${dir}`);
  try {
    if (args.check) {
      let stale = 0;
      for (const mutation of selected) {
        const undo = apply(dir, mutation);
        if (typeof undo === "string") stale++;
        else undo();
        console.log(`${mutation.id}: ${typeof undo === "string" ? `STALE: ${undo}` : "applies"}`);
      }
      return stale === 0 ? 0 : 1;
    }
    // A command that fails without any mutation cannot judge one: it is left out (and the run
    // fails at the end), so the other commands still say what they catch.
    const broken = new Map<string, string>();
    if (args.baseline) {
      const distinct = new Map<string, Catcher>();
      for (const m of selected) for (const c of catchersOf(m)) distinct.set(catcherName(c), c);
      for (const [name, catcher] of distinct) {
        const outcome = await runCatcher(dir, catcher, args.timeoutMs);
        console.log(`baseline: ${name}: ${outcome.failed ? "FAILS" : "ok"} (${outcome.seconds} s)`);
        if (outcome.failed) {
          broken.set(name, outcome.detail);
          console.error(
            `mutate: ${name} fails without any mutation (${outcome.detail}); it is left out`,
          );
        }
      }
    }
    const usable = (m: Mutation) => catchersOf(m).filter((c) => !broken.has(catcherName(c)));
    const rows: Row[] = [];
    for (const [i, mutation] of selected.entries()) {
      const prefix = `[${i + 1}/${selected.length}] ${mutation.id}`;
      const undo = apply(dir, mutation);
      if (typeof undo === "string") {
        console.log(`${prefix}: STALE: ${undo}`);
        rows.push({ mutation, result: "STALE", by: `does not apply: ${undo}` });
        continue;
      }
      try {
        let row: Row | undefined;
        for (const catcher of usable(mutation)) {
          const outcome = await runCatcher(dir, catcher, args.timeoutMs);
          console.log(
            `${prefix}: ${catcherName(catcher)}: ${
              outcome.failed ? "caught" : "passed"
            } (${outcome.seconds} s) ${outcome.failed ? outcome.detail : ""}`,
          );
          if (outcome.failed) {
            const by = `${catcherName(catcher)}: ${outcome.detail}`;
            row = row === undefined
              ? { mutation, result: "caught", by }
              : { ...row, by: `${row.by}; ${by}` };
            if (!args.every) break;
          }
        }
        rows.push(
          row ??
            {
              mutation,
              result: "SURVIVED",
              by: `nothing (${usable(mutation).map(catcherName).join("; ")} pass)`,
            },
        );
      } finally {
        undo();
      }
    }
    printTable(rows);
    const caught = rows.filter((r) => r.result === "caught").length;
    console.log(
      `\n${caught} caught, ${rows.filter((r) => r.result === "SURVIVED").length} survived, ${
        rows.filter((r) => r.result === "STALE").length
      } stale`,
    );
    for (const [name, detail] of broken) {
      console.log(`baseline FAILED (left out): ${name}: ${detail}`);
    }
    return caught === rows.length && broken.size === 0 ? 0 : 1;
  } finally {
    if (args.keep) console.log(`mutate: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

Deno.exit(await main());
