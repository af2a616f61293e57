import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const found = (cmd: string) => spawnSync(cmd, ["--version"]).status === 0;
const runtimes = deno === undefined ? [] : ["node", "bun"].filter(found);

function run(cmd: string, args: string[], cwd: string): void {
  const result = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000 });
  assert.equal(
    result.status,
    0,
    `${cmd} ${args.join(" ")} failed:\n${result.stdout.slice(-3000)}\n${result.stderr}`,
  );
}

test("FileStorage's own and conformance tests pass under Node and Bun (bundled)", {
  skip: deno === undefined
    ? "bundles the tests with `deno bundle`: run under Deno"
    : runtimes.length === 0
    ? "neither node nor bun is on PATH"
    : false,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-file-node-"));
  try {
    const files = ["file_storage_test", "conformance_test"];
    for (const name of files) {
      const source = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
      run(deno!.execPath(), ["bundle", "--quiet", "-o", join(dir, `${name}.mjs`), source], ROOT);
    }
    const bundles = files.map((name) => `./${name}.mjs`);
    for (const runtime of runtimes) {
      run(runtime, runtime === "node" ? ["--test", ...bundles] : ["test", ...bundles], dir);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
