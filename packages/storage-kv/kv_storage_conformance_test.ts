import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageConformance } from "@tsraft/core/testing";
import { KvStorage } from "./mod.ts";

storageConformance("KvStorage (path)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-"));
  const path = join(dir, "raft.sqlite");
  return {
    open: () => new KvStorage({ path }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
