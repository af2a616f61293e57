// Fixtures shared by this package's tests and the benchmark.
import type { Hono } from "hono";
import type {
  AppendEntriesRequest,
  LogEntry,
  RaftHandler,
  RequestVoteRequest,
  SnapshotRecoveryRequest,
  SnapshotRequest,
  TimeoutNowRequest,
} from "@tsraft/core";
import type { HttpClient } from "./http_client.ts";

/** A handler that answers every request from its fields, and records what it saw. */
export class EchoHandler implements RaftHandler {
  readonly name: string;
  /** Requests received, as `[method, request]`. */
  readonly seen: [string, unknown][] = [];
  /** When set, every method rejects with it. */
  failWith: Error | undefined;

  constructor(name = "echo") {
    this.name = name;
  }

  #record(method: string, request: unknown): void {
    if (this.failWith !== undefined) throw this.failWith;
    this.seen.push([method, request]);
  }

  appendEntries(req: AppendEntriesRequest) {
    this.#record("appendEntries", req);
    return Promise.resolve({
      term: req.term,
      index: req.prevLogIndex + req.entries.length,
      commitIndex: req.commitIndex,
      success: true,
      conflictTerm: 0,
      heartbeatSeq: req.heartbeatSeq,
    });
  }

  requestVote(req: RequestVoteRequest) {
    this.#record("requestVote", req);
    return Promise.resolve({ term: req.term, voteGranted: !req.transfer, preVote: req.preVote });
  }

  requestSnapshot(req: SnapshotRequest) {
    this.#record("requestSnapshot", req);
    return Promise.resolve({ term: req.term, success: true, nextOffset: req.size % 7 });
  }

  snapshotRecoveryRequest(req: SnapshotRecoveryRequest) {
    this.#record("snapshotRecoveryRequest", req);
    return Promise.resolve({
      term: req.term,
      success: req.done,
      commitIndex: req.lastIndex,
      nextOffset: req.offset + req.data.byteLength,
    });
  }

  timeoutNow(req: TimeoutNowRequest) {
    this.#record("timeoutNow", req);
    return Promise.resolve({ term: req.term + 1, success: true });
  }
}

/** `count` entries starting after `prevLogIndex`, each with a `size`-byte command. */
export function makeEntries(count: number, size = 16, prevLogIndex = 0): LogEntry[] {
  const entries: LogEntry[] = [];
  for (let i = 1; i <= count; i++) {
    entries.push({
      index: prevLogIndex + i,
      term: 2,
      commandName: "kv:set",
      command: new Uint8Array(size).fill(i & 0xff),
    });
  }
  return entries;
}

/** One valid request of each RPC. */
export const SAMPLE = {
  appendEntries: {
    term: 2,
    prevLogIndex: 10,
    prevLogTerm: 1,
    commitIndex: 9,
    leaderName: "leader",
    entries: makeEntries(3, 8, 10),
    heartbeatSeq: 42,
  } satisfies AppendEntriesRequest,
  requestVote: {
    term: 5,
    lastLogIndex: 12,
    lastLogTerm: 4,
    candidateName: "cand",
    preVote: true,
    transfer: false,
  } satisfies RequestVoteRequest,
  snapshot: {
    term: 3,
    leaderName: "leader",
    lastIndex: 100,
    lastTerm: 3,
    size: 1000,
  } satisfies SnapshotRequest,
  snapshotRecovery: {
    term: 3,
    leaderName: "leader",
    lastIndex: 100,
    lastTerm: 3,
    peers: [{ name: "a", connectionString: "127.0.0.1:1" }],
    offset: 64,
    data: new Uint8Array([1, 2, 3, 4, 5]),
    done: true,
    checksum: 123456,
  } satisfies SnapshotRecoveryRequest,
  timeoutNow: { term: 7, leaderName: "leader" } satisfies TimeoutNowRequest,
};

/** An {@link HttpClient} that delivers requests to a Hono app in-process. */
export function appClient(app: Hono): HttpClient & { urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    async post(url, body, headers, signal) {
      urls.push(url);
      const response = await app.request(url, {
        method: "POST",
        body: body as Uint8Array<ArrayBuffer>,
        headers,
        ...(signal === undefined ? {} : { signal }),
      });
      return { status: response.status, body: new Uint8Array(await response.arrayBuffer()) };
    },
  };
}
