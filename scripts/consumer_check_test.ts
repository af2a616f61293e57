import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { BuiltPackage } from "./build_npm.ts";
import { CONSUMER_KINDS, prepare, runConsumer } from "./consumer_check.ts";

// Fresh apps outside the repository install the packages with one command each and run a
// 3-node cluster: see consumer_check.ts. Needs npm and the npm registry.
/** Node 20 or later. */
const NODE = /^node v(2[0-9]|[3-9][0-9])\./;

describe("packages installed into fresh apps", () => {
  let work = "";
  let built: BuiltPackage[] = [];
  before(async () => {
    work = await Deno.makeTempDir({ prefix: "tsraft-consumers-" });
    built = await prepare(work);
  });
  after(async () => {
    if (work !== "") await Deno.remove(work, { recursive: true });
  });

  for (const kind of CONSUMER_KINDS) {
    test(`${kind}: 3-node TCP + FileStorage cluster, one write, one linearizable read`, async () => {
      const result = await runConsumer(kind, work, built);
      assert.equal(result.wrote, 5);
      assert.equal(result.read, 5);
      const runtime = { deno: /^deno$/, bun: /^bun$/, "node-tsx": NODE, node: NODE }[kind];
      assert.match(result.runtime, runtime);
    });
  }
});
