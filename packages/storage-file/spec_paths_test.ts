// The spec's Path(), LogPath() and SnapshotPath() on a Server answer from the storage when it
// has files (FileStorage), and are empty for a storage without (MemoryStorage).
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { test } from "node:test";
import { createServer } from "@tsraft/core";
import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
import { FileStorage } from "./mod.ts";

const stateMachine = {
  save: () => new TextEncoder().encode("{}"),
  recovery: () => {},
};

test("Server.path(), logPath() and snapshotPath() name FileStorage's files, and are empty for MemoryStorage", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-paths-"));
  const network = new MemoryNetwork();
  const onFiles = createServer({
    name: "a",
    transporter: network.transporter(),
    storage: new FileStorage(dir),
    stateMachine,
  });
  try {
    await onFiles.start();
    assert.equal(onFiles.path(), dir);
    assert.equal(onFiles.logPath(), join(dir, "log"));
    const segments = await readdir(onFiles.logPath());
    assert.ok(segments.length > 0, "the log path holds the segments");
    await onFiles.takeSnapshot();
    const snapshots = await readdir(join(dir, "snapshots"));
    const path = onFiles.snapshotPath(onFiles.appliedIndex, onFiles.term);
    assert.deepEqual(snapshots, [basename(path)], "snapshotPath() names the stored snapshot");
  } finally {
    await onFiles.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const inMemory = createServer({
    name: "b",
    transporter: network.transporter(),
    storage: new MemoryStorage(),
  });
  assert.equal(inMemory.path(), "");
  assert.equal(inMemory.logPath(), "");
  assert.equal(inMemory.snapshotPath(1, 1), "");
});
