import assert from "node:assert/strict";
import { test } from "node:test";
import { Segment } from "./_segment.ts";

test("Segment keeps one checkpoint per 16 KiB at most, and locates the nearest one", () => {
  const segment = new Segment(1, "/nowhere", "log/x");
  const recordBytes = 100;
  const count = 100_000; // ~10 MB of records
  for (let i = 0; i < count; i++) segment.noteRecord(1 + i, i * recordBytes);
  const bytes = count * recordBytes;
  assert.ok(segment.checkpointCount <= Math.ceil(bytes / (16 * 1024)) + 1);
  assert.ok(segment.checkpointCount >= bytes / (16 * 1024) - 1);
  for (const index of [1, 2, 164, 165, 50_000, count]) {
    const { index: at, offset } = segment.locate(index);
    assert.ok(at <= index && index - at <= 16 * 1024 / recordBytes + 1);
    assert.equal(offset, (at - 1) * recordBytes);
  }
  segment.cut(50_000, 49_999 * recordBytes);
  assert.equal(segment.lastIndex, 49_999);
  assert.ok(segment.locate(60_000).index < 50_000);
});
