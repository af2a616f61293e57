import assert from "node:assert/strict";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { type LogEntry, StorageCorruptionError } from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import { parseHeader, RECORD_HEADER_BYTES } from "./_format.ts";
import { segmentName } from "./_segment.ts";
import { FileStorage } from "./file_storage.ts";

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-file-test-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function entry(index: number, term: number, random?: SeededRandom): LogEntry {
  const length = random ? 1 + random.int(300) : 8;
  // Bytes 1..255: zeroing any part of a record is guaranteed to change it.
  const command = new Uint8Array(length).map((_, i) => 1 + ((index * 31 + i * 7) % 255));
  return { index, term, commandName: `cmd-${index % 3}`, command };
}

function range(first: number, count: number, term: number, random?: SeededRandom): LogEntry[] {
  return Array.from({ length: count }, (_, i) => entry(first + i, term, random));
}

/** One record as found in a segment file. */
interface Layout {
  index: number;
  offset: number;
  size: number;
  batchStart: number;
}

/** Parses a healthy segment file into its records. */
function layoutOf(bytes: Uint8Array): Layout[] {
  const out: Layout[] = [];
  for (let at = 0; at < bytes.length;) {
    const info = parseHeader(bytes, at);
    assert.ok(typeof info !== "string", `record at ${at}: ${info}`);
    out.push({ index: info.index, offset: at, size: info.size, batchStart: info.batchStart });
    at += info.size;
  }
  return out;
}

/** Builds a one-segment store of 40 entries saved in batches of 1..5; returns its pristine bytes. */
async function buildStore(dir: string, seed: number) {
  const random = new SeededRandom(seed);
  const storage = new FileStorage(dir, { fsync: false });
  await storage.open();
  const all: LogEntry[] = [];
  while (all.length < 40) {
    const batch = range(all.length + 1, 1 + random.int(5), 1, random);
    await storage.save({ entries: batch });
    all.push(...batch);
  }
  await storage.close();
  const path = join(dir, "log", segmentName(1));
  const bytes = new Uint8Array(await readFile(path));
  return { all, path, bytes, layout: layoutOf(bytes) };
}

/** Opens the store; if it opens, checks its log is exactly `expected` and that it is writable. */
async function reopenExpecting(dir: string, expected: readonly LogEntry[]): Promise<void> {
  const storage = new FileStorage(dir, { fsync: false });
  const state = await storage.open();
  try {
    assert.equal(state.firstIndex, 1);
    assert.equal(state.lastIndex, expected.length);
    assert.deepStrictEqual(await storage.entries(1, expected.length + 1), expected);
    const next = entry(expected.length + 1, 2);
    await storage.save({ entries: [next] });
  } finally {
    await storage.close();
  }
  const again = new FileStorage(dir, { fsync: false });
  const state2 = await again.open();
  assert.equal(state2.lastIndex, expected.length + 1);
  assert.deepStrictEqual(
    (await again.entries(expected.length + 1, expected.length + 2))[0],
    entry(expected.length + 1, 2),
  );
  await again.close();
}

async function assertCorrupt(dir: string, offsetHint?: number): Promise<void> {
  const storage = new FileStorage(dir, { fsync: false });
  await assert.rejects(storage.open(), (error: unknown) => {
    assert.ok(error instanceof StorageCorruptionError, String(error));
    assert.equal(error.code, "STORAGE_CORRUPTION");
    assert.match(error.message, /log\/\d{20}\.seg at offset \d+/);
    if (offsetHint !== undefined) assert.match(error.message, new RegExp(`offset ${offsetHint}:`));
    return true;
  });
  await storage.close();
}

/**
 * What damage to `[from, to)` of a healthy single-segment log must do at open. Let D be the
 * first damaged record. If an intact record after the damage belongs to a write that began
 * after D, D had been acknowledged before that write: corruption. Otherwise every damaged or
 * later byte may belong to the unfinished last write: a torn tail, and the log is the records
 * before D.
 */
function expectedAfterDamage(layout: readonly Layout[], from: number, to: number) {
  const damaged = layout.filter((r) => r.offset < to && r.offset + r.size > from);
  if (damaged.length === 0) return { corrupt: false, keep: layout.length };
  const d = damaged[0]!;
  const corrupt = layout.some((r) => r.offset >= to && r.batchStart > d.offset);
  return { corrupt, keep: d.index - 1, offset: d.offset };
}

describe("FileStorage recovery", () => {
  test("open() cuts a segment truncated at every record boundary back to a prefix", async () => {
    await withDir(async (dir) => {
      const { all, path, bytes, layout } = await buildStore(dir, 1);
      for (const [i, record] of [...layout, undefined].entries()) {
        const cut = record?.offset ?? bytes.length;
        await writeFile(path, bytes.subarray(0, cut));
        await rm(join(dir, "meta"), { force: true });
        await reopenExpecting(dir, all.slice(0, i));
      }
    });
  });

  test("open() cuts a segment truncated at random offsets back to whole records", async () => {
    await withDir(async (dir) => {
      const { all, path, bytes, layout } = await buildStore(dir, 2);
      const random = new SeededRandom(2);
      for (let n = 0; n < 60; n++) {
        const cut = random.int(bytes.length);
        await writeFile(path, bytes.subarray(0, cut));
        const keep = layout.filter((r) => r.offset + r.size <= cut).length;
        await reopenExpecting(dir, all.slice(0, keep));
        assert.ok((await stat(path)).size <= cut + RECORD_HEADER_BYTES + 400);
      }
    });
  });

  test("open() treats a zeroed 4 KiB block as torn only when no later write follows it", async () => {
    await withDir(async (dir) => {
      const { all, path, bytes, layout } = await buildStore(dir, 3);
      let corruptCases = 0;
      let tornCases = 0;
      for (let from = 0; from < bytes.length; from += 512) {
        const to = Math.min(bytes.length, from + 4096);
        const damaged = bytes.slice();
        damaged.fill(0, from, to);
        await writeFile(path, damaged);
        const expected = expectedAfterDamage(layout, from, to);
        if (expected.corrupt) {
          corruptCases++;
          await assertCorrupt(dir, expected.offset);
        } else {
          tornCases++;
          await reopenExpecting(dir, all.slice(0, expected.keep));
        }
      }
      assert.ok(corruptCases > 0 && tornCases > 0, `${corruptCases} corrupt, ${tornCases} torn`);
    });
  });

  test("open() rejects a flipped bit before the last write and cuts one inside it", async () => {
    await withDir(async (dir) => {
      const { all, path, bytes, layout } = await buildStore(dir, 4);
      const random = new SeededRandom(4);
      const lastBatch = layout.at(-1)!.batchStart;
      for (const record of layout) {
        const bit = random.int(record.size * 8);
        const damaged = bytes.slice();
        damaged[record.offset + (bit >> 3)]! ^= 1 << (bit & 7);
        await writeFile(path, damaged);
        if (record.offset < lastBatch) {
          await assertCorrupt(dir, record.offset);
        } else {
          // Inside the last save's write a flipped bit looks exactly like a torn write.
          await reopenExpecting(dir, all.slice(0, record.index - 1));
        }
      }
    });
  });

  test("open() cuts zeros appended to the last segment", async () => {
    await withDir(async (dir) => {
      const { all, path, bytes } = await buildStore(dir, 5);
      for (const extra of [1, 39, 40, 41, 4096, 100_000]) {
        const extended = new Uint8Array(bytes.length + extra);
        extended.set(bytes);
        await writeFile(path, extended);
        await reopenExpecting(dir, all);
        assert.equal((await stat(path)).size > bytes.length, true); // reopenExpecting appended
      }
    });
  });

  test("open() rejects a valid record that skips an index", async () => {
    await withDir(async (dir) => {
      const { path, bytes } = await buildStore(dir, 6);
      // A second store whose only record is entry 42 at offset 0: batchStart 0.
      await withDir(async (other) => {
        const storage = new FileStorage(other, { fsync: false });
        await storage.open();
        await storage.compact(41);
        await storage.save({ entries: [entry(42, 1)] });
        await storage.close();
        const stray = await readFile(join(other, "log", segmentName(42)));
        await writeFile(path, new Uint8Array([...bytes, ...stray]));
        await assertCorrupt(dir, bytes.length);
      });
    });
  });

  test("open() rejects damage in a segment that is not the last, naming it", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      await storage.open();
      for (let i = 1; i <= 60; i += 3) await storage.save({ entries: range(i, 3, 1) });
      await storage.close();
      const names = (await readdir(join(dir, "log"))).sort();
      assert.ok(names.length >= 3);
      const victim = join(dir, "log", names[1]!);
      const bytes = new Uint8Array(await readFile(victim));
      // Its last record is damaged: in the last segment this would be a torn tail.
      bytes[bytes.length - 1]! ^= 0x10;
      await writeFile(victim, bytes);
      const reopened = new FileStorage(dir, { fsync: false });
      await assert.rejects(reopened.open(), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptionError);
        assert.ok(error.message.includes(`log/${names[1]}`), error.message);
        return true;
      });
      // Truncating a non-last segment, too.
      await writeFile(victim, bytes.subarray(0, bytes.length - 5));
      await assertCorrupt(dir);
    });
  });

  test("open() rejects a missing middle or first segment (a gap)", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      await storage.open();
      for (let i = 1; i <= 60; i += 3) await storage.save({ entries: range(i, 3, 1) });
      await storage.close();
      const names = (await readdir(join(dir, "log"))).sort();
      const saved = await readFile(join(dir, "log", names[1]!));
      await rm(join(dir, "log", names[1]!));
      // A torn tail too: it must not be cut while the log is found corrupt elsewhere.
      const tail = join(dir, "log", names.at(-1)!);
      await writeFile(tail, new Uint8Array(100), { flag: "a" });
      const tailSize = (await stat(tail)).size;
      await assertCorrupt(dir);
      assert.equal((await stat(tail)).size, tailSize);
      await writeFile(join(dir, "log", names[1]!), saved);
      await rm(join(dir, "log", names[0]!));
      await assertCorrupt(dir);
    });
  });

  test("open() ignores a half-written meta.tmp left by a crash", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { fsync: false });
      await storage.open();
      await storage.save({ hardState: { term: 3, votedFor: "b" } });
      await storage.close();
      await writeFile(join(dir, "meta.tmp"), new Uint8Array([1, 2, 3]));
      const again = new FileStorage(dir, { fsync: false });
      assert.deepStrictEqual((await again.open()).hardState, { term: 3, votedFor: "b" });
      await again.close();
      assert.ok(!(await readdir(dir)).includes("meta.tmp"));
    });
  });

  test("open() rejects a corrupt meta file", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { fsync: false });
      await storage.open();
      await storage.save({ hardState: { term: 3, votedFor: "b" } });
      await storage.close();
      const meta = new Uint8Array(await readFile(join(dir, "meta")));
      meta[meta.length - 2]! ^= 1;
      await writeFile(join(dir, "meta"), meta);
      await assert.rejects(new FileStorage(dir).open(), StorageCorruptionError);
    });
  });

  test("entries() reads from disk and reports a record damaged after open", async () => {
    await withDir(async (dir) => {
      const { path, bytes, layout } = await buildStore(dir, 7);
      const storage = new FileStorage(dir, { fsync: false });
      await storage.open();
      const damaged = bytes.slice();
      damaged[layout[5]!.offset + RECORD_HEADER_BYTES]! ^= 0xff;
      await writeFile(path, damaged);
      assert.equal((await storage.entries(1, 6)).length, 5);
      await assert.rejects(storage.entries(1, 7), StorageCorruptionError);
      await storage.close();
    });
  });
});

describe("FileStorage log", () => {
  test("save() rolls over segments and entries() reads across them", async () => {
    await withDir(async (dir) => {
      const random = new SeededRandom(8);
      const storage = new FileStorage(dir, { segmentBytes: 4096, fsync: false });
      await storage.open();
      const all: LogEntry[] = [];
      while (all.length < 500) {
        const batch = range(all.length + 1, 1 + random.int(8), 1, random);
        await storage.save({ entries: batch });
        all.push(...batch);
      }
      const names = (await readdir(join(dir, "log"))).sort();
      assert.ok(names.length > 10, `${names.length} segments`);
      for (let n = 0; n < 50; n++) {
        const from = 1 + random.int(all.length);
        const to = from + random.int(all.length + 2 - from);
        assert.deepStrictEqual(await storage.entries(from, to), all.slice(from - 1, to - 1));
      }
      await storage.close();
      const again = new FileStorage(dir, { segmentBytes: 4096, fsync: false });
      assert.equal((await again.open()).lastIndex, all.length);
      assert.deepStrictEqual(await again.entries(1, all.length + 1), all);
      await again.close();
    });
  });

  test("save() truncating into an earlier segment deletes later segments", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      await storage.open();
      for (let i = 1; i <= 90; i += 3) await storage.save({ entries: range(i, 3, 1) });
      const before = (await readdir(join(dir, "log"))).sort();
      const replacement = range(20, 2, 2);
      await storage.save({ entries: replacement });
      const after = (await readdir(join(dir, "log"))).sort();
      assert.ok(after.length < before.length);
      assert.ok(after.every((name) => Number(name.slice(0, 20)) <= 20));
      await storage.close();
      const again = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      assert.equal((await again.open()).lastIndex, 21);
      assert.deepStrictEqual(await again.entries(1, 22), [...range(1, 19, 1), ...replacement]);
      await again.close();
    });
  });

  test("save() rejects gaps, entries before the first index and use before open()", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { fsync: false });
      await assert.rejects(storage.save({ entries: [entry(1, 1)] }), TypeError);
      await storage.open();
      await assert.rejects(storage.save({ entries: [entry(2, 1)] }), RangeError);
      await assert.rejects(storage.save({ entries: [entry(1, 1), entry(3, 1)] }), RangeError);
      await storage.save({ entries: range(1, 5, 1) });
      await storage.compact(3);
      await assert.rejects(storage.save({ entries: [entry(3, 2)] }), RangeError);
      await assert.rejects(storage.entries(3, 5), RangeError);
      // Misuse does not poison the store.
      await storage.save({ entries: [entry(4, 2)] });
      assert.deepStrictEqual(await storage.entries(4, 5), [entry(4, 2)]);
      await storage.close();
      assert.throws(() => new FileStorage(dir, { segmentBytes: 0 }), RangeError);
    });
  });

  test("compact() deletes covered segments and keeps the partial one", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      await storage.open();
      for (let i = 1; i <= 90; i += 3) await storage.save({ entries: range(i, 3, 1) });
      const before = (await readdir(join(dir, "log"))).sort();
      const firsts = before.map((name) => Number(name.slice(0, 20)));
      const through = firsts[3]! + 1; // inside the fourth segment
      await storage.compact(through);
      const after = (await readdir(join(dir, "log"))).sort();
      assert.deepStrictEqual(after, before.slice(3));
      assert.deepStrictEqual(
        await storage.entries(through + 1, 91),
        range(through + 1, 90 - through, 1),
      );
      await storage.close();
      const again = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      const state = await again.open();
      assert.equal(state.firstIndex, through + 1);
      assert.equal(state.lastIndex, 90);
      await again.close();
    });
  });

  test("open() finishes a compaction that crashed before deleting segments", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      await storage.open();
      for (let i = 1; i <= 90; i += 3) await storage.save({ entries: range(i, 3, 1) });
      const names = (await readdir(join(dir, "log"))).sort();
      const copies = await Promise.all(names.map((n) => readFile(join(dir, "log", n))));
      await storage.compact(200); // past the end: everything goes
      assert.deepStrictEqual(await readdir(join(dir, "log")), []);
      await storage.close();
      // As if the crash came after the meta file was replaced but before any unlink.
      await Promise.all(names.map((n, i) => writeFile(join(dir, "log", n), copies[i]!)));
      const again = new FileStorage(dir, { segmentBytes: 1024, fsync: false });
      const state = await again.open();
      assert.equal(state.firstIndex, 201);
      assert.equal(state.lastIndex, 200);
      assert.deepStrictEqual(await readdir(join(dir, "log")), []);
      await again.save({ entries: [entry(201, 3)] });
      assert.deepStrictEqual(await readdir(join(dir, "log")), [segmentName(201)]);
      await again.close();
    });
  });
});

describe("FileStorage snapshots", () => {
  const meta = (lastIndex: number, lastTerm: number) => ({
    lastIndex,
    lastTerm,
    peers: [{ name: "a", connectionString: "a:1" }],
  });

  async function read(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
    const chunks: number[] = [];
    for await (const chunk of stream) chunks.push(...chunk);
    return new Uint8Array(chunks);
  }

  test("loadSnapshot() picks index 10 over index 9 (numeric, not string, order)", async () => {
    await withDir(async (dir) => {
      await withDir(async (other) => {
        // goraft sorted names as strings and picked 1_9 over 1_10.
        const a = new FileStorage(dir, { fsync: false });
        await a.open();
        await a.saveSnapshot(meta(9, 1), new Uint8Array([9]));
        await a.close();
        const b = new FileStorage(other, { fsync: false });
        await b.open();
        // b keeps only its newest snapshot, so copy each one out as it is written.
        for (const [term, byte] of [[1, 10], [2, 102]] as const) {
          await b.saveSnapshot(meta(10, term), new Uint8Array([byte]));
          const name = `${term}-10.snap`;
          await copyFile(join(other, "snapshots", name), join(dir, "snapshots", name));
        }
        await b.close();
        assert.deepStrictEqual(
          (await readdir(join(dir, "snapshots"))).sort(),
          ["1-10.snap", "1-9.snap", "2-10.snap"],
        );
        const storage = new FileStorage(dir, { fsync: false });
        const state = await storage.open();
        assert.equal(state.snapshot?.lastIndex, 10);
        assert.equal(state.snapshot?.lastTerm, 2);
        const loaded = await storage.loadSnapshot();
        assert.deepStrictEqual(await read(loaded!.data), new Uint8Array([102]));
        await rm(join(dir, "snapshots", "2-10.snap"));
        const next = await storage.loadSnapshot();
        assert.equal(next?.meta.lastIndex, 10);
        assert.deepStrictEqual(await read(next!.data), new Uint8Array([10]));
        await storage.close();
      });
    });
  });

  test("loadSnapshot() rejects a snapshot whose state fails its checksum", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { fsync: false });
      await storage.open();
      await storage.saveSnapshot(meta(5, 1), new Uint8Array(10_000).fill(7));
      const path = join(dir, "snapshots", "1-5.snap");
      const bytes = new Uint8Array(await readFile(path));
      bytes[bytes.length - 100]! ^= 4;
      await writeFile(path, bytes);
      await assert.rejects(storage.loadSnapshot(), StorageCorruptionError);
      await writeFile(path, bytes.subarray(0, bytes.length - 1));
      await assert.rejects(storage.loadSnapshot(), StorageCorruptionError);
      await storage.close();
      bytes[10]! ^= 1; // the header
      await writeFile(path, bytes);
      await assert.rejects(new FileStorage(dir).open(), StorageCorruptionError);
    });
  });

  test("saveSnapshot() that fails mid-stream keeps the old snapshot and leaves no temp file", async () => {
    await withDir(async (dir) => {
      const storage = new FileStorage(dir, { fsync: false });
      await storage.open();
      await storage.saveSnapshot(meta(5, 1), new Uint8Array([1, 2, 3]));
      let sent = 0;
      const failing = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 3) controller.enqueue(new Uint8Array(1000));
          else controller.error(new Error("source failed"));
        },
      });
      await assert.rejects(storage.saveSnapshot(meta(8, 1), failing), /source failed/);
      assert.deepStrictEqual(await readdir(join(dir, "snapshots")), ["1-5.snap"]);
      // A failed snapshot does not poison the log.
      await storage.save({ entries: [entry(1, 1)] });
      const loaded = await storage.loadSnapshot();
      assert.deepStrictEqual(await read(loaded!.data), new Uint8Array([1, 2, 3]));
      await storage.close();
    });
  });
});
