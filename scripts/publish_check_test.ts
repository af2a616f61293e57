import assert from "node:assert/strict";
import { test } from "node:test";
import { docLintCheck, parseDryRun, publishCheck, readmeCheck } from "./publish_check.ts";

test("parseDryRun() reads each package's name and file list", () => {
  const output = [
    "Checking for slow types in the public API...",
    "\x1b[1m\x1b[32mSimulating publish\x1b[0m of \x1b[38;5;245m@tsraft/core@0.1.0\x1b[0m with files:",
    "   file:///repo/packages/core/mod.ts (1.11KB)",
    "   file:///repo/packages/core/deno.json (256B)",
    "Simulating publish of @tsraft/examples@0.1.0 with files:",
    "   file:///repo/examples/chaos_test.ts (2.53KB)",
    "Success Dry run complete",
  ].join("\n");
  assert.deepEqual(parseDryRun(output), [
    {
      name: "@tsraft/core",
      files: ["/repo/packages/core/mod.ts", "/repo/packages/core/deno.json"],
    },
    { name: "@tsraft/examples", files: ["/repo/examples/chaos_test.ts"] },
  ]);
});

test("deno publish --dry-run publishes only library files, each package with a README", async () => {
  assert.deepEqual(await publishCheck(), []);
});

test("deno doc --lint passes on each exported entrypoint on its own", async () => {
  assert.deepEqual(await docLintCheck(), []);
});

test("each package README's code blocks type-check and run", async () => {
  assert.deepEqual(await readmeCheck(), []);
});
