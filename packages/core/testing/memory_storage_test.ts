import assert from "node:assert/strict";
import { test } from "node:test";
import { StopError } from "../errors.ts";
import type { LogEntry } from "../types.ts";
import { MemoryDisk, MemoryStorage } from "./memory_storage.ts";
import { storageConformance } from "./storage_conformance.ts";

storageConformance("MemoryStorage", () => {
  const disk = new MemoryDisk();
  return Promise.resolve({ open: () => new MemoryStorage(disk), cleanup: () => Promise.resolve() });
});

function entry(index: number, term = 1): LogEntry {
  return { index, term, commandName: "c", command: new Uint8Array([index & 0xff]) };
}

function range(first: number, last: number, term = 1): LogEntry[] {
  const entries: LogEntry[] = [];
  for (let index = first; index <= last; index++) entries.push(entry(index, term));
  return entries;
}

test("MemoryStorage.save() rejects a gap after the last entry with RangeError", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.save({ entries: range(1, 5) });
  await assert.rejects(storage.save({ entries: [entry(7)] }), {
    name: "RangeError",
    message: "Cannot append entry at index 7: log ends at index 5",
  });
});

test("MemoryStorage.save() rejects non-consecutive entries and changes nothing", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await assert.rejects(
    storage.save({ hardState: { term: 9, votedFor: "" }, entries: [entry(1), entry(3)] }),
    { name: "RangeError", message: /index 3.*follows index 1/ },
  );
  const state = await storage.open();
  assert.equal(state.lastIndex, 0);
  assert.equal(state.hardState.term, 0);
});

test("MemoryStorage.save() rejects malformed fields with TypeError", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await assert.rejects(storage.save({ hardState: { term: -1, votedFor: "" } }), TypeError);
  await assert.rejects(storage.save({ entries: [{ ...entry(1), index: 1.5 }] }), TypeError);
  const notBytes = { ...entry(1), command: [1] as unknown as Uint8Array };
  await assert.rejects(storage.save({ entries: [notBytes] }), TypeError);
});

test("MemoryStorage.save() rejects overwriting compacted entries", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.save({ entries: range(1, 10) });
  await storage.saveSnapshot({ lastIndex: 8, lastTerm: 1, peers: [] }, new Uint8Array(0));
  await storage.compact(8);
  await assert.rejects(storage.save({ entries: [entry(8, 2)] }), {
    name: "RangeError",
    message: "Cannot overwrite entry at index 8: log is compacted through index 8",
  });
  await storage.save({ entries: [entry(9, 2)] });
  assert.deepStrictEqual((await storage.open()).lastIndex, 9);
});

test("MemoryStorage.compact() rejects compacting beyond the stored snapshot", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.save({ entries: range(1, 10) });
  await assert.rejects(storage.compact(3), {
    name: "RangeError",
    message: "Cannot compact through index 3: no snapshot is stored",
  });
  await storage.saveSnapshot({ lastIndex: 5, lastTerm: 1, peers: [] }, new Uint8Array(0));
  await assert.rejects(storage.compact(6), {
    name: "RangeError",
    message: "Cannot compact through index 6: the stored snapshot covers only through index 5",
  });
  await storage.compact(5);
  await storage.compact(2); // already discarded: a no-op
  assert.equal((await storage.open()).firstIndex, 6);
});

test("MemoryStorage.saveSnapshot() rejects a snapshot older than the stored one", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.saveSnapshot({ lastIndex: 10, lastTerm: 2, peers: [] }, new Uint8Array(1));
  await assert.rejects(
    storage.saveSnapshot({ lastIndex: 9, lastTerm: 2, peers: [] }, new Uint8Array(1)),
    RangeError,
  );
});

test("MemoryStorage.entries() error names the held range", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.save({ entries: range(1, 5) });
  await assert.rejects(storage.entries(3, 9), {
    name: "RangeError",
    message: "Cannot read entries [3, 9): log holds [1, 5]",
  });
});

test("MemoryStorage.loadSnapshot() copies metadata and streams in chunks", async () => {
  const storage = new MemoryStorage();
  await storage.open();
  const peers = [{ name: "a", connectionString: "memory://a" }];
  await storage.saveSnapshot({ lastIndex: 1, lastTerm: 1, peers }, new Uint8Array(200_000));
  peers[0]!.name = "changed";
  const stored = await storage.loadSnapshot();
  assert.equal(stored?.meta.peers[0]?.name, "a");
  let chunks = 0;
  for await (const _ of stored!.data) chunks++;
  assert.ok(chunks > 1, `expected several chunks, got ${chunks}`);
});

test("MemoryStorage calls before open() throw TypeError, after close() StopError", async () => {
  const storage = new MemoryStorage();
  await assert.rejects(storage.save({}), TypeError);
  await storage.open();
  await storage.close();
  await assert.rejects(storage.entries(1, 1), StopError);
});

test("MemoryDisk: opening a second storage detaches the first (a kill -9 restart)", async () => {
  const disk = new MemoryDisk();
  const old = new MemoryStorage(disk);
  await old.open();
  await old.save({ hardState: { term: 4, votedFor: "me" }, entries: range(1, 3) });
  const restarted = new MemoryStorage(disk);
  const state = await restarted.open();
  assert.deepStrictEqual(state.hardState, { term: 4, votedFor: "me" });
  assert.equal(state.lastIndex, 3);
  await assert.rejects(old.save({ entries: [entry(4)] }), StopError);
  await old.close(); // does not detach the new owner
  await restarted.save({ entries: [entry(4)] });
  assert.equal(disk.saveCount, 2);
});

test("MemoryDisk.holdWrites() keeps saves pending until flushed", async () => {
  const disk = new MemoryDisk();
  const storage = new MemoryStorage(disk);
  await storage.open();
  disk.holdWrites();
  let resolved = 0;
  const first = storage.save({ entries: range(1, 2) }).then(() => resolved++);
  const second = storage.save({ entries: range(3, 4) }).then(() => resolved++);
  await Promise.resolve();
  assert.equal(resolved, 0);
  assert.equal(disk.pendingWrites, 2);
  // Pending writes are visible to reads, like the OS page cache.
  assert.equal((await storage.entries(1, 5)).length, 4);
  assert.equal(disk.flushWrites(1), 1);
  await first;
  assert.equal(resolved, 1);
  disk.releaseWrites();
  await second;
  assert.equal(resolved, 2);
  assert.equal(disk.pendingWrites, 0);
});

test("MemoryDisk.crash() loses unflushed writes except the first keepWrites", async () => {
  const disk = new MemoryDisk();
  const storage = new MemoryStorage(disk);
  await storage.open();
  await storage.save({ hardState: { term: 1, votedFor: "" }, entries: range(1, 2) });
  disk.holdWrites();
  const kept = storage.save({ entries: range(3, 4) });
  const lost = storage.save({ hardState: { term: 2, votedFor: "b" }, entries: range(5, 6) });
  const lostCompact = storage.saveSnapshot(
    { lastIndex: 6, lastTerm: 1, peers: [] },
    new Uint8Array(1),
  );
  disk.crash({ keepWrites: 1 });
  await kept;
  await assert.rejects(lost, StopError);
  await assert.rejects(lostCompact, StopError);
  await assert.rejects(storage.entries(1, 2), StopError);
  disk.releaseWrites();
  const recovered = new MemoryStorage(disk);
  const state = await recovered.open();
  assert.deepStrictEqual(state.hardState, { term: 1, votedFor: "" });
  assert.equal(state.lastIndex, 4);
  assert.equal(state.snapshot, undefined);
});
