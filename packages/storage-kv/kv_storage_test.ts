import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type LogEntry, StorageCorruptionError } from "@tsraft/core";
import { openKvAt } from "./_open_kv.ts";
import type { KvAtomicLike, KvKey, KvLike } from "./kv_like.ts";
import { KvStorage } from "./mod.ts";

/** Command bytes that depend on index, term and size, so any mix-up is visible. */
function commandFor(index: number, term: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

function makeEntries(from: number, count: number, term: number, size = 16): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: from + i,
    term,
    commandName: "test:set",
    command: commandFor(from + i, term, size),
  }));
}

function assertEntry(entry: LogEntry | undefined, index: number, term: number, size = 16): void {
  assert.ok(entry, `entry ${index} is missing`);
  assert.equal(entry.index, index);
  assert.equal(entry.term, term, `term of entry ${index}`);
  assert.equal(entry.commandName, "test:set");
  assert.deepStrictEqual(entry.command, commandFor(index, term, size), `command of ${index}`);
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of stream) {
    parts.push(part);
    size += part.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function countKeys(kv: KvLike, prefix: KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

/** Wraps a KV handle so that the `failAt`-th commit from now throws (a simulated crash). */
class CrashingKv implements KvLike {
  #inner: KvLike;
  commits = 0;
  failAt = Infinity;
  constructor(inner: KvLike) {
    this.#inner = inner;
  }
  get: KvLike["get"] = (key) => this.#inner.get(key);
  getMany: KvLike["getMany"] = (keys) => this.#inner.getMany(keys);
  list: KvLike["list"] = (selector, options) => this.#inner.list(selector, options);
  close(): void {}
  atomic(): KvAtomicLike {
    const op = this.#inner.atomic();
    const wrapper: KvAtomicLike = {
      check: (...checks) => (op.check(...checks), wrapper),
      set: (key, value) => (op.set(key, value), wrapper),
      delete: (key) => (op.delete(key), wrapper),
      commit: () => {
        this.commits++;
        if (this.commits >= this.failAt) return Promise.reject(new Error("simulated crash"));
        return op.commit();
      },
    };
    return wrapper;
  }
}

describe("KvStorage", () => {
  let dir = "";
  let n = 0;
  const freshPath = () => join(dir, `db-${++n}.sqlite`);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsraft-kv-test-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("constructor throws TypeError without path or kv", () => {
    assert.throws(() => new KvStorage({} as { path: string }), TypeError);
  });

  test("methods throw TypeError before open() and after close()", async () => {
    const storage = new KvStorage({ path: freshPath() });
    await assert.rejects(storage.save({ hardState: { term: 1, votedFor: "" } }), TypeError);
    await storage.open();
    await storage.close();
    await storage.close();
    await assert.rejects(storage.entries(1, 1), TypeError);
    await assert.rejects(storage.open(), TypeError);
  });

  test("save() rejects gaps, non-consecutive indexes and overwriting compacted entries", async () => {
    const storage = new KvStorage({ path: freshPath() });
    await storage.open();
    await assert.rejects(storage.save({ entries: makeEntries(2, 1, 1) }), RangeError);
    const broken = [...makeEntries(1, 1, 1), ...makeEntries(3, 1, 1)];
    await assert.rejects(storage.save({ entries: broken }), RangeError);
    await storage.save({ entries: makeEntries(1, 10, 1) });
    await storage.compact(5);
    await assert.rejects(storage.save({ entries: makeEntries(5, 1, 2) }), RangeError);
    await assert.rejects(storage.entries(5, 7), RangeError);
    assert.equal((await storage.entries(6, 11)).length, 5);
    await storage.close();
  });

  test("a truncated suffix leaves no keys beyond the new last index", async () => {
    const kv = await openKvAt(freshPath());
    const storage = new KvStorage({ kv, prefix: ["t"] });
    await storage.open();
    await storage.save({ entries: makeEntries(1, 10, 1) });
    await storage.save({ hardState: { term: 2, votedFor: "b" }, entries: makeEntries(5, 2, 2) });
    assert.equal(await countKeys(kv, ["t", "log"]), 6);
    const reopened = new KvStorage({ kv, prefix: ["t"] });
    const state = await reopened.open();
    assert.equal(state.lastIndex, 6);
    const entries = await reopened.entries(1, 7);
    entries.slice(0, 4).forEach((e, i) => assertEntry(e, i + 1, 1));
    entries.slice(4).forEach((e, i) => assertEntry(e, i + 5, 2));
    await reopened.close();
    kv.close();
  });

  test("an entry larger than 64 KiB is chunked; overwriting it with a small one ignores stale chunks", async () => {
    const kv = await openKvAt(freshPath());
    const storage = new KvStorage({ kv });
    await storage.open();
    const big = 300 * 1024 + 7;
    await storage.save({ entries: [...makeEntries(1, 1, 1), ...makeEntries(2, 2, 1, big)] });
    assert.ok(await countKeys(kv, ["tsraft", "log"]) >= 1 + 2 * 5);
    let entries = await storage.entries(1, 4);
    assertEntry(entries[1], 2, 1, big);
    assertEntry(entries[2], 3, 1, big);
    // Replace index 2 with a small entry: the old chunks [log, 2, n] must not be read back.
    await storage.save({ entries: makeEntries(2, 1, 2) });
    entries = await storage.entries(1, 3);
    assertEntry(entries[1], 2, 2);
    // Grow index 2 again, larger than before.
    await storage.save({ entries: makeEntries(2, 1, 3, big * 2) });
    const reopened = new KvStorage({ kv });
    assert.equal((await reopened.open()).lastIndex, 2);
    assertEntry((await reopened.entries(2, 3))[0], 2, 3, big * 2);
    await reopened.close();
    kv.close();
  });

  test("save() of more than 1000 entries and of more than 800 KiB survives reopen", async () => {
    const path = freshPath();
    const storage = new KvStorage({ path });
    await storage.open();
    await storage.save({ hardState: { term: 3, votedFor: "a" }, entries: makeEntries(1, 2500, 3) });
    // 20 entries of 60 KiB: 1.2 MiB in one save.
    await storage.save({ entries: makeEntries(2501, 20, 3, 60 * 1024) });
    await storage.close();
    const reopened = new KvStorage({ path });
    const state = await reopened.open();
    assert.deepStrictEqual(state.hardState, { term: 3, votedFor: "a" });
    assert.equal(state.lastIndex, 2520);
    const small = await reopened.entries(1, 2501);
    small.forEach((e, i) => assertEntry(e, i + 1, 3));
    const large = await reopened.entries(2501, 2521);
    large.forEach((e, i) => assertEntry(e, i + 2501, 3, 60 * 1024));
    await reopened.close();
  });

  test("a crash between the commits of a large append leaves a prefix with the new term", async () => {
    const inner = await openKvAt(freshPath());
    const kv = new CrashingKv(inner);
    const storage = new KvStorage({ kv });
    await storage.open();
    await storage.save({ hardState: { term: 1, votedFor: "a" }, entries: makeEntries(1, 100, 1) });
    kv.commits = 0;
    kv.failAt = 3; // the first two commits of the next save land, the third "crashes"
    await assert.rejects(
      storage.save({ hardState: { term: 2, votedFor: "b" }, entries: makeEntries(101, 3000, 2) }),
      /simulated crash/,
    );
    const reopened = new KvStorage({ kv: inner });
    const state = await reopened.open();
    // Raft: currentTerm >= the term of every stored entry, so the term went in first.
    assert.deepStrictEqual(state.hardState, { term: 2, votedFor: "b" });
    assert.ok(state.lastIndex > 100 && state.lastIndex < 3100, `lastIndex ${state.lastIndex}`);
    const entries = await reopened.entries(1, state.lastIndex + 1);
    entries.forEach((e, i) => assertEntry(e, i + 1, i < 100 ? 1 : 2));
    // The log continues normally after the crash.
    await reopened.save({ entries: makeEntries(state.lastIndex + 1, 1, 2) });
    await reopened.close();
    inner.close();
  });

  test("a crash while replacing a long suffix never leaves old entries after new ones", async () => {
    const inner = await openKvAt(freshPath());
    for (const failAt of [1, 2, 3]) {
      const prefix = [`case-${failAt}`];
      const kv = new CrashingKv(inner);
      const storage = new KvStorage({ kv, prefix });
      await storage.open();
      await storage.save({ entries: makeEntries(1, 2000, 1) });
      kv.commits = 0;
      kv.failAt = failAt;
      await assert.rejects(
        storage.save({ hardState: { term: 2, votedFor: "" }, entries: makeEntries(5, 2500, 2) }),
        /simulated crash/,
      );
      const reopened = new KvStorage({ kv: inner, prefix });
      const state = await reopened.open();
      const entries = await reopened.entries(1, state.lastIndex + 1);
      if (failAt === 1) {
        // Nothing of the new save landed: the old log is intact.
        assert.equal(state.lastIndex, 2000);
        entries.forEach((e, i) => assertEntry(e, i + 1, 1));
      } else {
        assert.equal(state.hardState.term, 2);
        assert.ok(state.lastIndex >= 4 && state.lastIndex < 2504);
        entries.forEach((e, i) => assertEntry(e, i + 1, i < 4 ? 1 : 2));
      }
      // Keys beyond lastIndex were garbage and open() deleted them.
      let beyond = 0;
      for await (
        const _ of inner.list({
          prefix: [...prefix, "log"],
          start: [...prefix, "log", state.lastIndex + 1],
        })
      ) beyond++;
      assert.equal(beyond, 0);
      await reopened.close();
    }
    inner.close();
  });

  test("a crash during compaction leaves the new first index and open() deletes the rest", async () => {
    const inner = await openKvAt(freshPath());
    const kv = new CrashingKv(inner);
    const storage = new KvStorage({ kv });
    await storage.open();
    await storage.save({ entries: makeEntries(1, 3000, 1) });
    kv.commits = 0;
    kv.failAt = 2; // the metadata commit lands, the first batch of deletes does not
    await assert.rejects(storage.compact(2500), /simulated crash/);
    const reopened = new KvStorage({ kv: inner });
    const state = await reopened.open();
    assert.equal(state.firstIndex, 2501);
    assert.equal(state.lastIndex, 3000);
    assert.equal(await countKeys(inner, ["tsraft", "log"]), 500);
    (await reopened.entries(2501, 3001)).forEach((e, i) => assertEntry(e, i + 2501, 1));
    await reopened.close();
    inner.close();
  });

  test("snapshots of several MiB round-trip from bytes and from a stream", async () => {
    const path = freshPath();
    const storage = new KvStorage({ path });
    await storage.open();
    const data = commandFor(7, 7, 5 * 1024 * 1024 + 123);
    const meta = { lastIndex: 10, lastTerm: 2, peers: [{ name: "a", connectionString: "x:1" }] };
    await storage.saveSnapshot(meta, data);
    let loaded = await storage.loadSnapshot();
    assert.deepStrictEqual(loaded?.meta, meta);
    assert.deepStrictEqual(await collect(loaded!.data), data);
    // A stream in odd-sized pieces.
    const second = commandFor(8, 8, 3 * 1024 * 1024 + 1);
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= second.length) return controller.close();
        const n = 1 + ((at * 7919) % 100_000);
        controller.enqueue(second.slice(at, at + n));
        at += n;
      },
    });
    await storage.saveSnapshot({ ...meta, lastIndex: 20 }, stream);
    await storage.close();
    const reopened = new KvStorage({ path });
    const state = await reopened.open();
    assert.equal(state.snapshot?.lastIndex, 20);
    loaded = await reopened.loadSnapshot();
    assert.deepStrictEqual(await collect(loaded!.data), second);
    await reopened.close();
  });

  test("replacing a snapshot deletes the old chunks, after any open reader is done", async () => {
    const kv = await openKvAt(freshPath());
    const storage = new KvStorage({ kv });
    await storage.open();
    const meta = { lastIndex: 1, lastTerm: 1, peers: [] };
    const first = commandFor(1, 1, 1024 * 1024);
    await storage.saveSnapshot(meta, first);
    const chunks = await countKeys(kv, ["tsraft", "snap"]);
    assert.equal(chunks, 16);
    const reader = (await storage.loadSnapshot())!.data.getReader();
    const firstPiece = await reader.read();
    await storage.saveSnapshot({ ...meta, lastIndex: 2 }, commandFor(2, 2, 100));
    // The old snapshot is still being read: its chunks stay.
    assert.equal(await countKeys(kv, ["tsraft", "snap"]), 17);
    const rest: Uint8Array[] = [firstPiece.value!];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest.push(value);
    }
    assert.equal(rest.reduce((s, p) => s + p.length, 0), first.length);
    await storage.close(); // waits for the deferred deletion
    assert.equal(await countKeys(kv, ["tsraft", "snap"]), 1);
    kv.close();
  });

  test("loadSnapshot() reads lazily and rejects corrupt or missing chunks", async () => {
    const kv = await openKvAt(freshPath());
    const storage = new KvStorage({ kv });
    await storage.open();
    await storage.saveSnapshot({ lastIndex: 1, lastTerm: 1, peers: [] }, commandFor(3, 3, 200_000));
    const [id] = await (async () => {
      for await (const { key } of kv.list({ prefix: ["tsraft", "snap"] })) return [key[2]];
      return [undefined];
    })();
    assert.equal(typeof id, "string");
    const chunkKey: KvKey = ["tsraft", "snap", id as string, 1];
    const good = (await kv.get(chunkKey)).value as Uint8Array;
    const bad = good.slice();
    bad[100] = bad[100]! ^ 1;
    await kv.atomic().set(chunkKey, bad).commit();
    await assert.rejects(
      collect((await storage.loadSnapshot())!.data),
      StorageCorruptionError,
    );
    await kv.atomic().delete(chunkKey).commit();
    await assert.rejects(
      collect((await storage.loadSnapshot())!.data),
      (e) => e instanceof StorageCorruptionError && /missing chunk 1/.test(e.message),
    );
    await storage.close();
    kv.close();
  });

  test("open() and entries() reject corrupt data with StorageCorruptionError", async () => {
    const kv = await openKvAt(freshPath());
    const storage = new KvStorage({ kv });
    await storage.open();
    await storage.save({ entries: makeEntries(1, 5, 1) });
    const key = ["tsraft", "log", 3];
    const value = ((await kv.get(key)).value as Uint8Array).slice();
    value[value.length - 1] = value[value.length - 1]! ^ 0xff;
    await kv.atomic().set(key, value).commit();
    await assert.rejects(storage.entries(1, 6), StorageCorruptionError);
    await kv.atomic().delete(key).commit();
    await assert.rejects(storage.entries(1, 6), /Log entry 3 is missing/);
    await kv.atomic().delete(["tsraft", "log", 5]).commit();
    await assert.rejects(new KvStorage({ kv }).open(), StorageCorruptionError);
    await kv.atomic().set(["tsraft", "meta"], new Uint8Array([9])).commit();
    await assert.rejects(new KvStorage({ kv }).open(), StorageCorruptionError);
    await storage.close();
    kv.close();
  });

  test("a second writer on the same keys is detected instead of interleaving logs", async () => {
    const kv = await openKvAt(freshPath());
    const a = new KvStorage({ kv });
    const b = new KvStorage({ kv });
    await a.open();
    await b.open();
    await a.save({ entries: makeEntries(1, 1, 1) });
    await assert.rejects(b.save({ entries: makeEntries(1, 1, 2) }), StorageCorruptionError);
    await a.close();
    await b.close();
    kv.close();
  });

  test("prefixes isolate servers sharing one database; close() leaves a passed handle open", async () => {
    const kv = await openKvAt(freshPath());
    const a = new KvStorage({ kv, prefix: ["a"] });
    const b = new KvStorage({ kv, prefix: ["b"] });
    await a.open();
    await b.open();
    await a.save({ entries: makeEntries(1, 3, 1) });
    await b.save({ entries: makeEntries(1, 1, 2) });
    await a.close();
    await b.close();
    assert.equal(await countKeys(kv, ["a", "log"]), 3); // kv still usable
    assert.equal((await new KvStorage({ kv, prefix: ["b"] }).open()).lastIndex, 1);
    kv.close();
  });
});
