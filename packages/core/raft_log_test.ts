import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Progress } from "./progress.ts";
import { InvariantError, RaftLog } from "./raft_log.ts";
import type { LogEntry } from "./types.ts";

function entries(from: number, terms: number[]): LogEntry[] {
  return terms.map((term, i) => ({
    index: from + i,
    term,
    commandName: "test",
    command: new Uint8Array([from + i]),
  }));
}

describe("RaftLog", () => {
  test("RaftLog.mergeFromLeader() skips matching entries and replaces from the first conflict", () => {
    const log = new RaftLog();
    log.restore(undefined, entries(1, [1, 1, 2, 2]));
    assert.equal(log.mergeFromLeader(entries(2, [1, 2])), undefined, "all match: no change");
    assert.equal(log.mergeFromLeader(entries(3, [2, 3, 3])), 4);
    assert.deepEqual([1, 2, 3, 4, 5].map((i) => log.termAt(i)), [1, 1, 2, 3, 3]);
    assert.equal(log.persistedIndex, 3, "the replaced suffix is no longer durable");
    assert.deepEqual(log.takeUnstable().map((e) => e.index), [4, 5]);
    assert.deepEqual(log.takeUnstable(), []);
  });

  test("RaftLog refuses to truncate a committed entry (Raft §5.4: committed entries are permanent)", () => {
    const log = new RaftLog();
    log.restore(undefined, entries(1, [1, 1, 1]));
    log.commitTo(2);
    assert.throws(() => log.mergeFromLeader(entries(2, [2])), InvariantError);
    assert.throws(() => log.truncateFrom(1), InvariantError);
    log.truncateFrom(3);
    assert.equal(log.lastIndex, 2);
  });

  test("RaftLog refuses a commit index past its last entry and compaction past the commit", () => {
    const log = new RaftLog();
    log.restore(undefined, entries(1, [1, 1]));
    assert.throws(() => log.commitTo(3), InvariantError);
    assert.throws(() => log.compact(1), RangeError);
    log.commitTo(2);
    log.compact(1);
    assert.equal(log.snapshotIndex, 1);
    assert.equal(log.termAt(1), 1);
    assert.equal(log.termAt(0), undefined);
  });

  test("RaftLog.installSnapshot() keeps a suffix that matches the snapshot and drops one that does not", () => {
    const log = new RaftLog();
    log.restore(undefined, entries(1, [1, 1, 2, 2]));
    assert.ok(log.installSnapshot(2, 1));
    assert.equal(log.lastIndex, 4, "entries after a matching snapshot point are kept");
    const other = new RaftLog();
    other.restore(undefined, entries(1, [1, 1, 2, 2]));
    assert.ok(other.installSnapshot(3, 3));
    assert.equal(other.lastIndex, 3, "a conflicting suffix is dropped");
    assert.equal(other.commitIndex, 3);
    assert.equal(other.installSnapshot(2, 1), false, "an older snapshot changes nothing");
  });

  test("RaftLog.persisted() ignores a completion for entries rewritten meanwhile", () => {
    const log = new RaftLog();
    log.restore(undefined, []);
    log.append(entries(1, [1, 1]));
    log.mergeFromLeader(entries(2, [2]));
    assert.equal(log.persisted(2, 1), false);
    assert.equal(log.persisted(2, 2), true);
    assert.equal(log.persistedIndex, 2);
  });
});

describe("Progress", () => {
  const peer = { name: "f", connectionString: "" };

  test("Progress in probe mode allows one message in flight; a success switches it to replicate", () => {
    const progress = new Progress(peer, 11, 0);
    assert.equal(progress.mode, "probe");
    assert.equal(progress.isPaused(4, 1 << 20), false);
    progress.sent(3, 30);
    assert.equal(progress.nextIndex, 11, "a probe does not advance nextIndex");
    assert.equal(progress.isPaused(4, 1 << 20), true);
    progress.freeInflight(30); // the probe's answer
    assert.equal(progress.ack(10), true);
    progress.becomeReplicate();
    assert.equal(progress.nextIndex, 11);
    for (let i = 0; i < 4; i++) progress.sent(1, 10);
    assert.equal(progress.nextIndex, 15, "a stream advances optimistically");
    assert.equal(progress.isPaused(4, 1 << 20), true, "the window is full");
    progress.freeInflight(10);
    assert.equal(progress.isPaused(4, 1 << 20), false);
    assert.equal(progress.isPaused(8, 30), true, "the byte window is full");
  });

  test("Progress.reject() backs off to the hint, never below the match, and ignores stale rejections", () => {
    const progress = new Progress(peer, 21, 0);
    progress.ack(12);
    progress.becomeReplicate();
    progress.sent(5, 0);
    assert.equal(progress.reject(11, 5), false, "a rejection below the match is stale");
    assert.equal(progress.reject(15, 5), true);
    assert.equal(progress.mode, "probe");
    assert.equal(progress.nextIndex, 13, "never below matchIndex + 1");
    assert.equal(progress.inflight, 0);
  });

  test("Progress in snapshot mode is paused until the transfer's outcome", () => {
    const progress = new Progress(peer, 5, 0);
    progress.becomeSnapshot();
    assert.equal(progress.isPaused(32, 1 << 20), true);
    progress.snapshotDone(40, true, 0);
    assert.equal(progress.mode, "probe");
    assert.equal(progress.matchIndex, 40);
    assert.equal(progress.nextIndex, 41);
  });
});
