/**
 * Runs `bun test` with the given arguments under the Bun running this script, streams its
 * output, and ends with one plain line `N passed, N failed, N skipped` (what CI and
 * scripts/run_tests.ts print for Deno).
 *
 * Before testing it checks that the workspace package.json files agree with the deno.json
 * files: Deno reads the import map, Bun reads package.json, and a drift between the two
 * would test different code on each runtime.
 *
 * Usage (see the root package.json): `bun scripts/run_bun_tests.ts packages bench`
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";

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
  console.log("\n0 passed, 1 failed");
  process.exit(1);
}

// Bun's default 5 s per-test timeout is shorter than some cluster tests take on 2 cores.
const child = spawn(process.execPath, ["test", "--timeout", "120000", ...process.argv.slice(2)], {
  stdio: ["ignore", "pipe", "pipe"],
});

// Bun prints its summary (" 392 pass", " 0 fail", " 2 skip") to stderr.
const counts = { pass: 0, fail: 0, skip: 0 };
let pending = "";
const decoder = new TextDecoder();

function countLine(line: string): void {
  const match = /^\s*(\d+) (pass|fail|skip)$/.exec(line);
  if (match !== null) counts[match[2] as keyof typeof counts] = Number(match[1]);
}

child.stdout.on("data", (chunk: Uint8Array) => process.stdout.write(chunk));
child.stderr.on("data", (chunk: Uint8Array) => {
  process.stderr.write(chunk);
  pending += decoder.decode(chunk, { stream: true });
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) countLine(line);
});
child.on("close", (code) => {
  countLine(pending);
  // A run that failed without reporting a failed test (bad arguments, a crash) still fails.
  if (code !== 0 && counts.fail === 0) counts.fail = 1;
  console.log(`\n${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped`);
  process.exit(code ?? 1);
});
