import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fillFiles, lastMatch, leafTests, parseJUnit, reasonFromSource } from "./_test_report.ts";

// Shapes as Deno 2.9 and Bun 1.4 write them (trimmed).
const DENO = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="7" failures="2" errors="0" time="0.010">
  <testsuite name="./a_test.ts" tests="3" disabled="1" errors="0" failures="1">
    <testcase name="plain" classname="./a_test.ts" time="0.001" line="3" col="1">
    </testcase>
    <testcase name="opt &gt; skip" classname="./a_test.ts" time="0.000" line="4" col="1">
      <skipped/>
    </testcase>
    <testcase name="block" classname="./a_test.ts" time="0.001" line="6" col="1">
      <failure message="1 test step failed">1 test step failed.</failure>
    </testcase>
  </testsuite>
  <testsuite name="ext:deno_node/testing.ts" tests="4" disabled="0" errors="0" failures="1">
    <testcase name="block &gt; inner" classname="ext:deno_node/testing.ts" line="1" col="9">
    </testcase>
    <testcase name="block &gt; bad" classname="ext:deno_node/testing.ts" line="1" col="9">
      <failure message="x &lt; y">AssertionError</failure>
    </testcase>
    <testcase name="block &gt; nested" classname="ext:deno_node/testing.ts" line="1" col="9">
    </testcase>
    <testcase name="block &gt; nested &gt; deep" classname="ext:deno_node/testing.ts" line="1" col="9">
    </testcase>
  </testsuite>
</testsuites>`;

const BUN = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="bun test" tests="4" assertions="0" failures="0" skipped="1" time="0.02">
  <testsuite name="a_test.ts" file="a_test.ts" tests="4" failures="0" skipped="1" time="0.01">
    <testcase name="plain" classname="" time="0.0007" file="a_test.ts" line="3" assertions="0" />
    <testsuite name="block" file="a_test.ts" line="6" tests="3" failures="0" skipped="1" time="0">
      <testcase name="inner" classname="block" time="0.00002" file="a_test.ts" line="7" assertions="0" />
      <testcase name="skipped one" classname="block" time="0" file="a_test.ts" line="8" assertions="0">
        <skipped />
      </testcase>
      <testsuite name="nested" file="a_test.ts" line="10" tests="1" failures="0" skipped="0" time="0">
        <testcase name="deep" classname="nested &gt; block" time="0" file="a_test.ts" line="10" assertions="0" />
      </testsuite>
    </testsuite>
  </testsuite>
</testsuites>`;

describe("scripts/_test_report.ts", () => {
  test("parseJUnit() reads Deno's flat report with full names, statuses and entities", () => {
    const cases = parseJUnit(DENO);
    assert.deepEqual(cases.map((c) => [c.name, c.status]), [
      ["plain", "passed"],
      ["opt > skip", "skipped"],
      ["block", "failed"],
      ["block > inner", "passed"],
      ["block > bad", "failed"],
      ["block > nested", "passed"],
      ["block > nested > deep", "passed"],
    ]);
    // Steps of describe blocks name Deno's polyfill, not the file; fillFiles() finds it.
    assert.equal(cases[3]!.file, undefined);
    fillFiles(cases);
    assert.deepEqual(new Set(cases.map((c) => c.file)), new Set(["a_test.ts"]));
    assert.equal(cases[0]!.line, 3);
    assert.equal(cases[3]!.line, undefined);
  });

  test("leafTests() counts tests, not describe blocks, and keeps a block's own failure", () => {
    const { leaves, parentFailures } = leafTests(parseJUnit(DENO));
    // "opt > skip" has no parent in the report: a leaf whose name holds " > ".
    assert.deepEqual(leaves.map((c) => c.name), [
      "plain",
      "opt > skip",
      "block > inner",
      "block > bad",
      "block > nested > deep",
    ]);
    // "block" failed because "block > bad" did: not a second failure.
    assert.deepEqual(parentFailures, []);
    const hookFailed = parseJUnit(DENO.replace(
      '<failure message="x &lt; y">AssertionError</failure>',
      "",
    ));
    assert.deepEqual(leafTests(hookFailed).parentFailures.map((c) => c.name), ["block"]);
    assert.deepEqual(leafTests(parseJUnit(DENO)).ambiguous, []);
    const twice = parseJUnit(DENO.replace('name="plain"', 'name="block"'));
    assert.deepEqual(leafTests(twice).ambiguous, ["block"]);
  });

  test("parseJUnit() prefixes Bun's nested describe suites, not the file suite", () => {
    const cases = parseJUnit(BUN);
    assert.deepEqual(cases.map((c) => [c.name, c.status, c.file, c.line]), [
      ["plain", "passed", "a_test.ts", 3],
      ["block > inner", "passed", "a_test.ts", 7],
      ["block > skipped one", "skipped", "a_test.ts", 8],
      ["block > nested > deep", "passed", "a_test.ts", 10],
    ]);
    assert.equal(leafTests(cases).leaves.length, 4);
  });

  test("lastMatch() takes the runner's final summary over an imitation printed earlier", () => {
    const output = [
      "ok | 999 passed | 0 failed",
      "some test output",
      "FAILED | 3 passed | 1 failed",
    ].join("\n");
    assert.equal(lastMatch(output, /^(ok|FAILED) \| (\d+) passed/)?.[2], "3");
    assert.equal(lastMatch("nothing here", /^ok/), undefined);
  });

  test("reasonFromSource() quotes a test's skip clause and resolves a { skip } shorthand", () => {
    const tls = reasonFromSource({
      name: "makeHttpClient() refuses TLS options its fetch cannot honour (Node)",
      file: "packages/transport-http/tls_test.ts",
    });
    assert.match(tls, /^skip: fetchTakesCa \? "this runtime's fetch takes a CA" : false$/);
    const shorthand = reasonFromSource({
      name:
        "KvStorage files written by Deno are read and extended by Node and Bun through @deno/kv",
      file: "packages/storage-kv/kv_storage_node_test.ts",
    });
    assert.match(shorthand, /^skip = deno === undefined \? "bundles the storage/);
    assert.equal(reasonFromSource({ name: "x", file: undefined }), "(file unknown)");
  });
});
