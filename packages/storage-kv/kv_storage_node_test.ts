import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { crc32c, type LogEntry } from "@tsraft/core";
import { KvStorage } from "./mod.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHECK = fileURLToPath(new URL("./_node_check.ts", import.meta.url));
const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
const found = (cmd: string) => spawnSync(cmd, ["--version"]).status === 0;
const HAS_NODE = found("node");
const HAS_BUN = found("bun");
const skip = deno === undefined
  ? "bundles the storage with `deno bundle`: run under Deno"
  : !HAS_NODE && !HAS_BUN
  ? "neither node nor bun is on PATH"
  : false;

function run(cmd: string, args: string[], cwd: string): string {
  const result = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 120_000 });
  assert.equal(result.status, 0, `${cmd} ${args.join(" ")} failed:\n${result.stderr}`);
  return result.stdout;
}

test(
  "KvStorage files written by Deno are read and extended by Node and Bun through @deno/kv",
  { skip },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-node-"));
    try {
      // A throwaway Node project holding @deno/kv, installed from Deno's npm cache.
      await writeFile(
        join(dir, "package.json"),
        JSON.stringify({ type: "module", dependencies: { "@deno/kv": "0.14.0" } }),
      );
      run(deno!.execPath(), ["install"], dir);
      run(deno!.execPath(), [
        "bundle",
        "--quiet",
        "--external",
        "@deno/kv",
        "-o",
        join(dir, "check.mjs"),
        CHECK,
      ], ROOT);

      const path = join(dir, "raft.sqlite");
      const storage = new KvStorage({ path });
      await storage.open();
      const big = new Uint8Array(200_000).map((_, i) => i * 31);
      const entries: LogEntry[] = [
        { index: 1, term: 3, commandName: "a", command: new Uint8Array([1, 2, 3]) },
        { index: 2, term: 3, commandName: "big", command: big },
      ];
      await storage.save({ hardState: { term: 3, votedFor: "deno" }, entries });
      const snapshot = new Uint8Array(300_000).map((_, i) => i * 7);
      await storage.saveSnapshot({ lastIndex: 1, lastTerm: 3, peers: [] }, snapshot);
      await storage.close();

      let expectedLast = 2;
      const runtimes = [...(HAS_NODE ? ["node"] : []), ...(HAS_BUN ? ["bun"] : [])];
      for (const runtime of runtimes) {
        const report = JSON.parse(run(runtime, [join(dir, "check.mjs"), path], dir));
        assert.deepStrictEqual(report.hardState, { term: 3, votedFor: "deno" }, runtime);
        assert.equal(report.lastIndex, expectedLast, runtime);
        assert.deepStrictEqual(report.entries.slice(0, 2), [
          [3, "a", 3, crc32c(entries[0]!.command)],
          [3, "big", big.length, crc32c(big)],
        ]);
        assert.deepStrictEqual(report.snapshot, {
          lastIndex: 1,
          lastTerm: 3,
          peers: [],
          bytes: snapshot.length,
          crc: crc32c(snapshot),
        });
        expectedLast++;
      }

      const reopened = new KvStorage({ path });
      const state = await reopened.open();
      assert.equal(state.lastIndex, expectedLast);
      const appended = await reopened.entries(3, expectedLast + 1);
      assert.deepStrictEqual(appended.map((e) => e.commandName), runtimes);
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
