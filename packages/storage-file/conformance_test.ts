import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storageConformance } from "@tsraft/core/testing";
import { FileStorage } from "./file_storage.ts";

storageConformance("FileStorage", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-file-"));
  return {
    // Small segments so the suite also crosses segment boundaries.
    open: () => new FileStorage(dir, { segmentBytes: 64 * 1024 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

storageConformance("FileStorage (fsync off, 1-byte segments)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-file-"));
  return {
    open: () => new FileStorage(dir, { segmentBytes: 1, fsync: false }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
