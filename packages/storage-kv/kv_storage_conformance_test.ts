import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageConformance } from "@tsraft/core/testing";
import { openKvAt } from "./_open_kv.ts";
import { KvStorage } from "./mod.ts";

storageConformance("KvStorage (path)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-"));
  const path = join(dir, "raft.sqlite");
  return {
    open: () => new KvStorage({ path }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

storageConformance("KvStorage (shared handle, prefix)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-"));
  const kv = await openKvAt(join(dir, "shared.sqlite"));
  // Another server's data under a neighbouring prefix must never show up or disappear.
  await kv.atomic().set(["node-2", "log", 1], new Uint8Array([1])).commit();
  return {
    open: () => new KvStorage({ kv, prefix: ["node-1"] }),
    cleanup: async () => {
      const other = await kv.get(["node-2", "log", 1]);
      kv.close();
      await rm(dir, { recursive: true, force: true });
      if (!(other.value instanceof Uint8Array)) throw new Error("neighbouring prefix was touched");
    },
  };
});
