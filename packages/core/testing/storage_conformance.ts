import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Storage, StorageState } from "../storage.ts";
import type { LogEntry, SnapshotMeta } from "../types.ts";

/** What {@link storageConformance} needs to exercise one {@link Storage} implementation. */
export interface StorageHarness {
  /**
   * Returns a new, unopened `Storage` over the same underlying location on every call,
   * so that closing one and opening the next simulates a process restart.
   */
  open(): Storage | Promise<Storage>;
  /** Removes whatever the storages created (files, databases). */
  cleanup(): Promise<void>;
}

/**
 * Registers a `node:test` suite that checks a {@link Storage} implementation against the
 * contract in `@tsraft/core`'s `storage.ts`: recovery after reopen, suffix truncation,
 * exact binary round trips, large and many entries, snapshots (bytes and streams), and
 * compaction. Each test gets a fresh harness from `makeHarness` and cleans it up.
 *
 * @param name the `describe` label, usually the class name
 * @param makeHarness creates an empty location and a way to open storages over it
 * @example
 * ```ts ignore
 * // memory_storage_test.ts
 * import { MemoryDisk, MemoryStorage, storageConformance } from "@tsraft/core/testing";
 * storageConformance("MemoryStorage", () => {
 *   const disk = new MemoryDisk();
 *   return Promise.resolve({ open: () => new MemoryStorage(disk), cleanup: async () => {} });
 * });
 * ```
 */
export function storageConformance(
  name: string,
  makeHarness: () => Promise<StorageHarness>,
): void {
  describe(name, () => {
    test("Storage.open() reports an empty state for a new store", async () => {
      await withHarness(makeHarness, async (session) => {
        const state = await session.reopen();
        assert.deepStrictEqual(state, {
          hardState: { term: 0, votedFor: "" },
          snapshot: undefined,
          firstIndex: 1,
          lastIndex: 0,
        });
        assert.deepStrictEqual(await session.storage.entries(1, 1), []);
        assert.equal(await session.storage.loadSnapshot(), undefined);
      });
    });

    test("Storage.save() makes hard state and entries durable across reopen", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const entries = makeEntries(1, 3, 2);
        await session.storage.save({ hardState: { term: 2, votedFor: "node-b" }, entries });
        const state = await session.reopen();
        assert.deepStrictEqual(state.hardState, { term: 2, votedFor: "node-b" });
        assert.equal(state.firstIndex, 1);
        assert.equal(state.lastIndex, 3);
        assertEntries(await session.storage.entries(1, 4), entries);
      });
    });

    test("Storage.save() with only a hard state or only entries keeps the other", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const entries = makeEntries(1, 2, 1);
        await session.storage.save({ entries });
        await session.storage.save({ hardState: { term: 5, votedFor: "" } });
        let state = await session.reopen();
        assert.deepStrictEqual(state.hardState, { term: 5, votedFor: "" });
        assert.equal(state.lastIndex, 2);
        const more = makeEntries(3, 1, 5);
        await session.storage.save({ entries: more });
        await session.storage.save({ hardState: { term: 6, votedFor: "node-c" } });
        await session.storage.save({});
        state = await session.reopen();
        assert.deepStrictEqual(state.hardState, { term: 6, votedFor: "node-c" });
        assert.equal(state.lastIndex, 3);
        assertEntries(await session.storage.entries(1, 4), [...entries, ...more]);
      });
    });

    test("Storage.save() replaces a conflicting suffix, leaving no stale entries", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        await session.storage.save({ entries: makeEntries(1, 10, 1) });
        const replacement = makeEntries(6, 2, 2);
        await session.storage.save({ entries: replacement });
        const expected = [...makeEntries(1, 5, 1), ...replacement];
        assertEntries(await session.storage.entries(1, 8), expected);
        const state = await session.reopen();
        assert.equal(state.lastIndex, 7);
        assertEntries(await session.storage.entries(1, 8), expected);
        await assert.rejects(session.storage.entries(1, 9), RangeError);
        // Appending after a truncation must land right after the new suffix.
        const tail = makeEntries(8, 1, 3);
        await session.storage.save({ entries: tail });
        await session.reopen();
        assertEntries(await session.storage.entries(1, 9), [...expected, ...tail]);
      });
    });

    test("Storage.entries() reads ranges and rejects ranges outside the log", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const entries = makeEntries(1, 5, 1);
        await session.storage.save({ entries });
        assertEntries(await session.storage.entries(1, 6), entries);
        assertEntries(await session.storage.entries(2, 4), entries.slice(1, 3));
        assertEntries(await session.storage.entries(5, 6), entries.slice(4));
        assert.deepStrictEqual(await session.storage.entries(6, 6), []);
        assert.deepStrictEqual(await session.storage.entries(3, 3), []);
        await assert.rejects(session.storage.entries(0, 2), RangeError);
        await assert.rejects(session.storage.entries(1, 7), RangeError);
        await assert.rejects(session.storage.entries(7, 8), RangeError);
        await assert.rejects(session.storage.entries(4, 2), RangeError);
      });
    });

    test("Storage.save() round-trips binary commands and unicode names exactly", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const allBytes = new Uint8Array(256).map((_, i) => i);
        const entries: LogEntry[] = [
          { index: 1, term: 1, commandName: "bytes", command: allBytes },
          { index: 2, term: 1, commandName: "empty", command: new Uint8Array(0) },
          {
            index: 3,
            term: Number.MAX_SAFE_INTEGER,
            commandName: "записать 🗳️ 書く",
            command: new TextEncoder().encode("ünïcödé \u0000 \uffff 🦕"),
          },
          { index: 4, term: 2 ** 32 + 1, commandName: "", command: allBytes.slice().reverse() },
        ];
        await session.storage.save({ entries });
        assertEntries(await session.storage.entries(1, 5), entries);
        await session.reopen();
        assertEntries(await session.storage.entries(1, 5), entries);
      });
    });

    test("Storage copies entries: mutating saved or returned bytes changes nothing", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const command = new Uint8Array([1, 2, 3]);
        await session.storage.save({ entries: [{ index: 1, term: 1, commandName: "c", command }] });
        command[0] = 99;
        const [first] = await session.storage.entries(1, 2);
        assert.deepStrictEqual(Array.from(first!.command), [1, 2, 3]);
        first!.command[1] = 99;
        const [again] = await session.storage.entries(1, 2);
        assert.deepStrictEqual(Array.from(again!.command), [1, 2, 3]);
      });
    });

    test("Storage.save() stores a 1 MiB entry", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const command = patternBytes(1024 * 1024, 7);
        const entries = [{ index: 1, term: 1, commandName: "big", command }];
        await session.storage.save({ entries, hardState: { term: 1, votedFor: "node-a" } });
        await session.reopen();
        assertEntries(await session.storage.entries(1, 2), entries);
      });
    });

    test("Storage.save() stores 5,000 entries written in 50 batches", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const all: LogEntry[] = [];
        for (let batch = 0; batch < 50; batch++) {
          const entries = makeEntries(batch * 100 + 1, 100, batch + 1);
          all.push(...entries);
          await session.storage.save({ entries, hardState: { term: batch + 1, votedFor: "" } });
        }
        const state = await session.reopen();
        assert.deepStrictEqual(state.hardState, { term: 50, votedFor: "" });
        assert.equal(state.firstIndex, 1);
        assert.equal(state.lastIndex, 5000);
        assertEntries(await session.storage.entries(1, 5001), all);
        assertEntries(await session.storage.entries(2500, 2502), all.slice(2499, 2501));
      });
    });

    test("Storage.saveSnapshot() round-trips bytes given as a Uint8Array", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const meta = makeMeta(4, 2);
        const data = patternBytes(1000, 3);
        await session.storage.saveSnapshot(meta, data);
        data[0] = (data[0]! + 1) & 0xff; // must not reach the store
        await assertSnapshot(session.storage, meta, patternBytes(1000, 3));
        const state = await session.reopen();
        assert.deepStrictEqual(state.snapshot, meta);
        await assertSnapshot(session.storage, meta, patternBytes(1000, 3));
      });
    });

    test("Storage.saveSnapshot() stores a multi-chunk stream larger than 1 MiB", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const meta = makeMeta(20, 3);
        const data = patternBytes(1024 * 1024 + 12345, 11);
        await session.storage.saveSnapshot(meta, streamInChunks(data, 100_000));
        await assertSnapshot(session.storage, meta, data);
        const state = await session.reopen();
        assert.deepStrictEqual(state.snapshot, meta);
        await assertSnapshot(session.storage, meta, data);
      });
    });

    test("Storage.saveSnapshot() stores an empty snapshot", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const meta = makeMeta(0, 0);
        await session.storage.saveSnapshot(meta, streamInChunks(new Uint8Array(0), 1));
        await session.reopen();
        await assertSnapshot(session.storage, meta, new Uint8Array(0));
      });
    });

    test("Storage.saveSnapshot() replaces an older snapshot, compared numerically", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        // Index and term 9 sort after 10 as strings; the store must compare numbers.
        await session.storage.saveSnapshot(makeMeta(9, 9), patternBytes(100, 9));
        const newer = makeMeta(10, 10);
        await session.storage.saveSnapshot(newer, patternBytes(200, 10));
        await assertSnapshot(session.storage, newer, patternBytes(200, 10));
        const state = await session.reopen();
        assert.deepStrictEqual(state.snapshot, newer);
        await assertSnapshot(session.storage, newer, patternBytes(200, 10));
        const newest = makeMeta(100, 10);
        await session.storage.saveSnapshot(newest, patternBytes(50, 100));
        assert.deepStrictEqual((await session.reopen()).snapshot, newest);
        await assertSnapshot(session.storage, newest, patternBytes(50, 100));
      });
    });

    test("Storage.compact() discards a prefix that stays discarded after reopen", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        const entries = makeEntries(1, 20, 1);
        await session.storage.save({ entries });
        await session.storage.saveSnapshot(makeMeta(12, 1), patternBytes(10, 1));
        await session.storage.compact(12);
        let state = await session.reopen();
        assert.equal(state.firstIndex, 13);
        assert.equal(state.lastIndex, 20);
        assertEntries(await session.storage.entries(13, 21), entries.slice(12));
        await assert.rejects(session.storage.entries(12, 14), RangeError);
        const more = makeEntries(21, 5, 2);
        await session.storage.save({ entries: more });
        state = await session.reopen();
        assert.equal(state.firstIndex, 13);
        assert.equal(state.lastIndex, 25);
        assertEntries(await session.storage.entries(13, 26), [...entries.slice(12), ...more]);
      });
    });

    test("Storage.compact() past the last entry empties the log", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        await session.storage.save({ entries: makeEntries(1, 5, 1) });
        await session.storage.saveSnapshot(makeMeta(30, 4), patternBytes(10, 30));
        await session.storage.compact(30);
        let state = await session.reopen();
        assert.equal(state.firstIndex, 31);
        assert.equal(state.lastIndex, 30);
        assert.deepStrictEqual(await session.storage.entries(31, 31), []);
        const next = makeEntries(31, 3, 4);
        await session.storage.save({ entries: next });
        state = await session.reopen();
        assert.equal(state.firstIndex, 31);
        assert.equal(state.lastIndex, 33);
        assertEntries(await session.storage.entries(31, 34), next);
      });
    });

    test("Storage.close() is safe to call twice", async () => {
      await withHarness(makeHarness, async (session) => {
        await session.reopen();
        await session.storage.save({ hardState: { term: 1, votedFor: "x" } });
        await session.storage.close();
        await session.storage.close();
        const state = await session.reopen();
        assert.deepStrictEqual(state.hardState, { term: 1, votedFor: "x" });
      });
    });
  });
}

interface Session {
  /** The storage opened last. */
  readonly storage: Storage;
  /** Closes the current storage (if any), opens a new one over the same location. */
  reopen(): Promise<StorageState>;
}

async function withHarness(
  makeHarness: () => Promise<StorageHarness>,
  body: (session: Session) => Promise<void>,
): Promise<void> {
  const harness = await makeHarness();
  let current: Storage | undefined;
  const session: Session = {
    get storage(): Storage {
      if (current === undefined) throw new Error("reopen() first");
      return current;
    },
    async reopen(): Promise<StorageState> {
      await current?.close();
      current = undefined;
      const storage = await harness.open();
      const state = await storage.open();
      current = storage;
      return state;
    },
  };
  try {
    await body(session);
  } finally {
    try {
      await current?.close();
    } finally {
      await harness.cleanup();
    }
  }
}

function makeEntries(firstIndex: number, count: number, term: number): LogEntry[] {
  const encoder = new TextEncoder();
  return Array.from({ length: count }, (_, i) => ({
    index: firstIndex + i,
    term,
    commandName: "test:set",
    command: encoder.encode(JSON.stringify({ key: `k${firstIndex + i}`, term })),
  }));
}

function makeMeta(lastIndex: number, lastTerm: number): SnapshotMeta {
  return {
    lastIndex,
    lastTerm,
    peers: [
      { name: "node-a", connectionString: "memory://node-a" },
      { name: "узел-б", connectionString: "http://127.0.0.1:4002/raft" },
    ],
  };
}

function patternBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function streamInChunks(bytes: Uint8Array, chunkBytes: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + chunkBytes));
      offset += chunkBytes;
    },
  });
}

async function readStream(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    assert.ok(value instanceof Uint8Array, "snapshot stream chunks must be Uint8Arrays");
    chunks.push(value);
  }
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

async function assertSnapshot(
  storage: Storage,
  meta: SnapshotMeta,
  data: Uint8Array,
): Promise<void> {
  const stored = await storage.loadSnapshot();
  assert.ok(stored !== undefined, "expected a stored snapshot");
  assert.deepStrictEqual(stored.meta, meta);
  assertBytes(await readStream(stored.data), data, "snapshot data");
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.ok(actual instanceof Uint8Array, `${what} must be a Uint8Array`);
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length differs`);
  for (let i = 0; i < expected.byteLength; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/**
 * Compares entries field by field. Commands may come back as a Uint8Array subclass
 * (e.g. a Node Buffer), so they are compared by content; any extra field fails.
 */
function assertEntries(actual: LogEntry[], expected: LogEntry[]): void {
  assert.equal(actual.length, expected.length, "number of entries");
  for (let i = 0; i < expected.length; i++) {
    const got = actual[i]!;
    const want = expected[i]!;
    assertBytes(got.command, want.command, `command of entry ${want.index}`);
    assert.deepStrictEqual(
      { ...got, command: undefined },
      { ...want, command: undefined },
      `entry ${want.index}`,
    );
  }
}
