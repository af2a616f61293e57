/**
 * Command line of the cluster simulator.
 *
 * ```sh
 * deno task sim --seeds 1000            # seeds 1..1000, cluster size varies by seed
 * deno task sim --seeds 1000 --nodes 5  # every run with 5 nodes
 * deno task sim --seed 156 --nodes 3    # replay one seed, printing every event
 * deno task sim --seeds 500 --start 9000
 * ```
 * Exits with code 1 when any run finds a violation; each failure prints its replay command.
 * @module
 */
import process from "node:process";
import { runSimulation, type SimulationCoverage, type SimulationResult } from "./simulator.ts";

interface Args {
  seeds: number;
  start: number;
  seed: number | undefined;
  nodes: number | undefined;
  quiet: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: 100, start: 1, seed: undefined, nodes: undefined, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const text = argv[++i];
      const number = Number(text);
      if (text === undefined || !Number.isSafeInteger(number)) {
        throw new RangeError(`${flag} needs an integer, got ${text}`);
      }
      return number;
    };
    if (flag === "--seeds") args.seeds = value();
    else if (flag === "--start") args.start = value();
    else if (flag === "--seed") args.seed = value();
    else if (flag === "--nodes") args.nodes = value();
    else if (flag === "--quiet") args.quiet = true;
    else {throw new RangeError(
        `Unknown flag ${flag} (use --seeds N, --seed S, --nodes K, --start S)`,
      );}
  }
  if (args.nodes !== undefined && ![1, 3, 5, 7].includes(args.nodes) && args.nodes < 1) {
    throw new RangeError("--nodes must be positive");
  }
  return args;
}

function printFailure(result: SimulationResult): void {
  console.log(`FAIL seed ${result.seed} (${result.nodes} nodes): replay with ${result.replay}`);
  for (const violation of result.violations) console.log(`  ${violation.split("\n").join("\n  ")}`);
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  if (args.seed !== undefined) {
    const result = runSimulation(args.seed, {
      ...(args.nodes !== undefined ? { nodes: args.nodes } : {}),
      log: (line) => console.log(line),
    });
    console.log(JSON.stringify({ config: result.config, stats: result.stats }, null, 1));
    console.log(`trace ${result.traceHash}, ${result.operations} client operations`);
    for (const warning of result.warnings) console.log(`warning: ${warning}`);
    if (!result.ok) {
      printFailure(result);
      return 1;
    }
    console.log(`seed ${args.seed}: ok`);
    return 0;
  }

  const coverage: Record<keyof SimulationCoverage, number> = {
    drops: 0,
    duplicates: 0,
    reordering: 0,
    partitions: 0,
    oneWayLinks: 0,
    crashes: 0,
    crashLostWrites: 0,
    snapshotsInstalled: 0,
    leadershipChanges: 0,
  };
  const failures: SimulationResult[] = [];
  let operations = 0;
  let unknown = 0;
  let undecided = 0;
  let simulatedMs = 0;
  const started = performance.now();
  for (let seed = args.start; seed < args.start + args.seeds; seed++) {
    const result = runSimulation(seed, args.nodes !== undefined ? { nodes: args.nodes } : {});
    operations += result.operations;
    unknown += result.unknownOperations;
    simulatedMs += result.simulatedMs;
    if (result.warnings.some((w) => w.startsWith("linearizability check gave up"))) undecided++;
    for (const key of Object.keys(coverage) as (keyof SimulationCoverage)[]) {
      if (result.coverage[key]) coverage[key]++;
    }
    if (!result.ok) {
      failures.push(result);
      printFailure(result);
    }
    const done = seed - args.start + 1;
    if (!args.quiet && done % 500 === 0) {
      const rate = done / ((performance.now() - started) / 1000);
      console.log(
        `${done}/${args.seeds} runs, ${failures.length} failed, ${rate.toFixed(1)} runs/s`,
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${args.seeds} runs (seeds ${args.start}..${args.start + args.seeds - 1}) in ` +
      `${seconds.toFixed(1)} s: ${(args.seeds / seconds).toFixed(1)} runs/s, ` +
      `${(simulatedMs / 1000).toFixed(0)} simulated s`,
  );
  console.log(
    `client operations: ${operations}, unknown outcomes: ${unknown} (warnings, not failures)` +
      (undecided > 0 ? `; linearizability undecided (time budget) in ${undecided} runs` : ""),
  );
  console.log("coverage (runs that exercised each fault kind):");
  for (const [key, count] of Object.entries(coverage)) {
    console.log(`  ${key.padEnd(20)} ${String(count).padStart(6)}`);
  }
  console.log(`${args.seeds - failures.length} passed, ${failures.length} failed`);
  for (const failure of failures) console.log(`  replay: ${failure.replay}`);
  return failures.length > 0 ? 1 : 0;
}

process.exit(main());
