import assert from "node:assert/strict";
import { test } from "node:test";
import { AtomicBatch, MAX_MUTATIONS } from "./_atomic_batch.ts";
import { openKvAt } from "./_open_kv.ts";
import type { KvKey } from "./kv_like.ts";

test("AtomicBatch fills a commit to Deno KV's limits without exceeding them", async () => {
  const kv = await openKvAt(":memory:");
  const cases: { name: string; prefix: KvKey; valueBytes: number }[] = [
    { name: "largest values", prefix: ["p"], valueBytes: 65_536 },
    { name: "odd-sized values", prefix: ["p", "q"], valueBytes: 47_111 },
    { name: "many tiny values", prefix: ["p"], valueBytes: 3 },
    { name: "long keys", prefix: ["k".repeat(150), new Uint8Array(20)], valueBytes: 10 },
    { name: "deletes", prefix: ["p"], valueBytes: -1 },
  ];
  for (const { name, prefix, valueBytes } of cases) {
    const check: KvKey = [...prefix, "meta"];
    const batch = new AtomicBatch().reserveCheck(check);
    let i = 0;
    const value = valueBytes >= 0 ? new Uint8Array(valueBytes) : undefined;
    while (batch.fits([...prefix, i], value?.length ?? 0)) batch.add([...prefix, i++], value);
    assert.ok(batch.mutations.length <= MAX_MUTATIONS);
    const op = kv.atomic().check({ key: check, versionstamp: null });
    for (const m of batch.mutations) m.value ? op.set(m.key, m.value) : op.delete(m.key);
    const result = await op.commit();
    assert.ok(result.ok, name);
  }
  kv.close();
});
