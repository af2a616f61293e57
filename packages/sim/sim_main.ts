/**
 * Command line of the cluster simulator.
 *
 * ```sh
 * deno task sim --seeds 1000              # seeds 1..1000, cluster size chosen per seed
 * deno task sim --seeds 1000 --nodes 5    # every run with 5 founding nodes
 * deno task sim --seeds 10000 --shard 2/4 # the seeds s with s % 4 === 1 (one CI job of four)
 * deno task sim --seed 156 --nodes 3      # replay one seed, printing its whole trace
 * deno task sim --seeds 500 --start 9000
 * deno task sim --seeds 200 --scenario stale-leader  # every run with one targeted nemesis
 * deno task sim --seeds 2000 --fail-fast  # stop at the first failing seed
 * ```
 * Exits with code 1 when any run finds a violation; each failure prints its replay command
 * and the last events of its trace.
 * @module
 */
import process from "node:process";
import type { SimulationCoverage, SimulationResult } from "./run_simulation.ts";
import { SeedRunner } from "./seed_runner.ts";
import { type ScenarioName, SCENARIOS } from "./_scenarios.ts";

interface Args {
  seeds: number;
  start: number;
  seed: number | undefined;
  nodes: number | undefined;
  shard: { index: number; count: number };
  quiet: boolean;
  ackBeforeDurable: boolean;
  scenario: ScenarioName | "none" | undefined;
  failFast: boolean;
}

const USAGE = "use --seeds N, --seed S, --nodes K, --start S, --shard i/n, --quiet, --fail-fast, " +
  "--ack-before-durable, " +
  `--scenario ${["none", ...SCENARIOS].join("|")}`;

function parseArgs(argv: string[]): Args {
  const args: Args = {
    seeds: 100,
    start: 1,
    seed: undefined,
    nodes: undefined,
    shard: { index: 0, count: 1 },
    quiet: false,
    ackBeforeDurable: false,
    scenario: undefined,
    failFast: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const text = () => {
      const value = argv[++i];
      if (value === undefined) throw new RangeError(`${flag} needs a value (${USAGE})`);
      return value;
    };
    const integer = () => {
      const value = text();
      const number = Number(value);
      if (!Number.isSafeInteger(number)) {
        throw new RangeError(`${flag} needs an integer, got ${value}`);
      }
      return number;
    };
    if (flag === "--seeds") args.seeds = integer();
    else if (flag === "--start") args.start = integer();
    else if (flag === "--seed") args.seed = integer();
    else if (flag === "--nodes") args.nodes = integer();
    else if (flag === "--quiet") args.quiet = true;
    else if (flag === "--ack-before-durable") args.ackBeforeDurable = true;
    else if (flag === "--fail-fast") args.failFast = true;
    else if (flag === "--scenario") {
      const name = text();
      if (name !== "none" && !(SCENARIOS as readonly string[]).includes(name)) {
        throw new RangeError(`--scenario must be none or one of ${SCENARIOS.join(", ")}`);
      }
      args.scenario = name as ScenarioName | "none";
    } else if (flag === "--shard") {
      const value = text();
      const match = /^(\d+)\/(\d+)$/.exec(value);
      const index = Number(match?.[1]);
      const count = Number(match?.[2]);
      if (!match || count < 1 || index < 1 || index > count) {
        throw new RangeError(`--shard needs i/n with 1 <= i <= n, got ${value}`);
      }
      args.shard = { index: index - 1, count };
    } else throw new RangeError(`Unknown flag ${flag} (${USAGE})`);
  }
  if (args.nodes !== undefined && args.nodes < 1) throw new RangeError("--nodes must be >= 1");
  return args;
}

function printFailure(result: SimulationResult, traceLines: number): void {
  console.log(`FAIL seed ${result.seed} (${result.nodes} nodes): replay with ${result.replay}`);
  for (const violation of result.violations) console.log(`  ${violation.split("\n").join("\n  ")}`);
  if (traceLines > 0) {
    console.log(`  last events:`);
    for (const line of result.trace.slice(-traceLines)) console.log(`    ${line}`);
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const extra = {
    ...(args.ackBeforeDurable ? { ackBeforeDurable: true } : {}),
    ...(args.scenario !== undefined ? { scenario: args.scenario } : {}),
  };
  if (args.seed !== undefined) {
    // In the worker too: a replay of a seed that hangs ends at the watchdog, trace printed.
    const replayRunner = new SeedRunner();
    const result = await replayRunner.run(args.seed, {
      ...(args.nodes !== undefined ? { nodes: args.nodes } : {}),
      ...extra,
      log: (line) => console.log(line),
    });
    replayRunner.close();
    console.log(JSON.stringify({ config: result.config, stats: result.stats }, null, 1));
    console.log(`trace ${result.traceHash}, ${result.operations} client operations`);
    for (const warning of result.warnings) console.log(`warning: ${warning}`);
    if (!result.ok) {
      printFailure(result, 0);
      return 1;
    }
    console.log(`seed ${args.seed}: ok`);
    return 0;
  }

  const seeds: number[] = [];
  for (let seed = args.start; seed < args.start + args.seeds; seed++) {
    if ((seed - args.start) % args.shard.count === args.shard.index) seeds.push(seed);
  }
  const coverage = {} as Record<keyof SimulationCoverage, number>;
  const failures: SimulationResult[] = [];
  let operations = 0;
  let unknown = 0;
  let undecided = 0;
  let simulatedMs = 0;
  let events = 0;
  const started = performance.now();
  let lastReport = started;
  const runner = new SeedRunner();
  for (const [i, seed] of seeds.entries()) {
    const result = await runner.run(seed, {
      ...(args.nodes !== undefined ? { nodes: args.nodes } : {}),
      ...extra,
    });
    operations += result.operations;
    unknown += result.unknownOperations;
    simulatedMs += result.simulatedMs;
    events += result.stats.events;
    if (result.warnings.some((w) => w.startsWith("linearizability check gave up"))) undecided++;
    for (const [key, hit] of Object.entries(result.coverage)) {
      const name = key as keyof SimulationCoverage;
      coverage[name] = (coverage[name] ?? 0) + (hit ? 1 : 0);
    }
    if (!result.ok) {
      failures.push(result);
      printFailure(result, 25);
      if (args.failFast) {
        seeds.length = i + 1;
        break;
      }
    }
    const now = performance.now();
    if (!args.quiet && (now - lastReport > 10_000 || i + 1 === seeds.length)) {
      lastReport = now;
      const rate = (i + 1) / ((now - started) / 1000);
      console.log(
        `${i + 1}/${seeds.length} runs, ${failures.length} failed, ${rate.toFixed(2)} seeds/s`,
      );
    }
  }
  runner.close();
  const seconds = (performance.now() - started) / 1000;
  const shard = args.shard.count > 1 ? ` shard ${args.shard.index + 1}/${args.shard.count}` : "";
  console.log(
    `${seeds.length} runs (seeds ${args.start}..${args.start + args.seeds - 1}${shard}) in ` +
      `${seconds.toFixed(1)} s: ${(seeds.length / seconds).toFixed(2)} seeds/s, ` +
      `${(simulatedMs / 1000).toFixed(0)} simulated s, ${events} events`,
  );
  console.log(
    `client operations: ${operations}, unknown outcomes: ${unknown} (warnings, not failures)` +
      (undecided > 0 ? `; linearizability undecided (time budget) in ${undecided} runs` : ""),
  );
  console.log("coverage (runs that exercised each):");
  for (const [key, count] of Object.entries(coverage)) {
    console.log(`  ${key.padEnd(20)} ${String(count).padStart(6)}`);
  }
  for (const failure of failures) console.log(`  replay: ${failure.replay}`);
  console.log(`${seeds.length - failures.length} passed, ${failures.length} failed`);
  return failures.length > 0 ? 1 : 0;
}

process.exit(await main());
