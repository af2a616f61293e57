import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TransportError } from "../errors.ts";
import type { RaftHandler, Transporter, TransportSender } from "../transporter.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  PeerInfo,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "../types.ts";

/** What {@link transporterConformance} needs to exercise one {@link Transporter}. */
export interface TransporterHarness {
  /** Starts serving `handler` (e.g. on a fresh port) and says how to reach it. */
  serve(handler: RaftHandler): Promise<PeerInfo>;
  /** The transporter under test, used to send to served handlers. */
  transporter: Transporter;
  /** A peer nothing listens on (e.g. a closed port), to check failures are prompt. */
  unreachablePeer(): PeerInfo | Promise<PeerInfo>;
  /** Stops every server and releases every connection the harness opened. */
  close(): Promise<void>;
}

/** How long a send may take before the suite calls it hanging. */
const DEADLINE_MS = 10_000;
const SENDER: TransportSender = { name: "sender-ü" };
const MAX = Number.MAX_SAFE_INTEGER;

/**
 * Registers a `node:test` suite that checks a {@link Transporter} (and the serving side
 * that goes with it): every field of the five RPCs round-trips exactly, concurrent calls
 * get their own responses, and every failure (unreachable peer, failing handler, abort)
 * rejects promptly with `TransportError`. Each test gets a fresh harness and closes it.
 *
 * @param name the `describe` label, usually the class name
 * @param makeHarness creates a transporter and a way to serve handlers for it
 * @example
 * ```ts ignore
 * import { MemoryNetwork, transporterConformance } from "@tsraft/core/testing";
 * transporterConformance("MemoryNetwork", () => {
 *   const network = new MemoryNetwork();
 *   return Promise.resolve({
 *     serve: (handler) => Promise.resolve(network.register(handler)),
 *     transporter: network.transporter(),
 *     unreachablePeer: () => ({ name: "nobody", connectionString: "memory://nobody" }),
 *     close: () => Promise.resolve(),
 *   });
 * });
 * ```
 */
export function transporterConformance(
  name: string,
  makeHarness: () => Promise<TransporterHarness>,
): void {
  describe(name, () => {
    test("Transporter.sendVoteRequest() round-trips every field", async () => {
      await roundTrip<RequestVoteRequest, RequestVoteResponse>(makeHarness, {
        requests: [
          {
            term: MAX,
            lastLogIndex: MAX - 1,
            lastLogTerm: MAX - 2,
            candidateName: "кандидат-🗳️",
            preVote: true,
            transfer: true,
          },
          {
            term: 0,
            lastLogIndex: 0,
            lastLogTerm: 0,
            candidateName: "",
            preVote: false,
            transfer: false,
          },
        ],
        responses: [
          { term: MAX, voteGranted: true, preVote: true },
          { term: 0, voteGranted: false, preVote: false },
        ],
        method: "requestVote",
        send: (t, peer, req) => t.sendVoteRequest(SENDER, peer, req),
      });
    });

    test("Transporter.sendAppendEntriesRequest() round-trips every field", async () => {
      await roundTrip<AppendEntriesRequest, AppendEntriesResponse>(makeHarness, {
        requests: [
          {
            term: MAX,
            prevLogIndex: MAX - 3,
            prevLogTerm: MAX - 4,
            commitIndex: MAX - 5,
            leaderName: "лидер-☃",
            entries: [
              { index: MAX - 2, term: MAX, commandName: "bytes", command: allBytes() },
              { index: MAX - 1, term: MAX, commandName: "", command: new Uint8Array(0) },
              {
                index: MAX,
                term: MAX,
                commandName: "書く🦕",
                command: new TextEncoder().encode('{"key":"ключ"}'),
              },
            ],
            heartbeatSeq: MAX,
          },
          {
            term: 0,
            prevLogIndex: 0,
            prevLogTerm: 0,
            commitIndex: 0,
            leaderName: "",
            entries: [],
            heartbeatSeq: 0,
          },
        ],
        responses: [
          {
            term: MAX,
            index: MAX - 1,
            commitIndex: MAX - 2,
            success: true,
            conflictTerm: MAX - 3,
            heartbeatSeq: MAX,
          },
          { term: 0, index: 0, commitIndex: 0, success: false, conflictTerm: 0, heartbeatSeq: 0 },
        ],
        method: "appendEntries",
        send: (t, peer, req) => t.sendAppendEntriesRequest(SENDER, peer, req),
      });
    });

    test("Transporter.sendSnapshotRequest() round-trips every field", async () => {
      await roundTrip<SnapshotRequest, SnapshotResponse>(makeHarness, {
        requests: [
          { term: MAX, leaderName: "leader-é", lastIndex: MAX - 1, lastTerm: MAX - 2, size: MAX },
          { term: 0, leaderName: "", lastIndex: 0, lastTerm: 0, size: 0 },
        ],
        responses: [
          { term: MAX, success: true, nextOffset: MAX - 1 },
          { term: 0, success: false, nextOffset: 0 },
        ],
        method: "requestSnapshot",
        send: (t, peer, req) => t.sendSnapshotRequest(SENDER, peer, req),
      });
    });

    test("Transporter.sendSnapshotRecoveryRequest() round-trips every field", async () => {
      await roundTrip<SnapshotRecoveryRequest, SnapshotRecoveryResponse>(makeHarness, {
        requests: [
          {
            term: MAX,
            leaderName: "leader-ñ",
            lastIndex: MAX - 1,
            lastTerm: MAX - 2,
            peers: [
              { name: "node-a", connectionString: "127.0.0.1:4001" },
              { name: "узел-б", connectionString: "http://[::1]:4002/raft" },
              { name: "c", connectionString: "" },
            ],
            offset: MAX - 3,
            data: allBytes(),
            done: true,
            checksum: 0xffff_ffff,
          },
          {
            term: 0,
            leaderName: "",
            lastIndex: 0,
            lastTerm: 0,
            peers: [],
            offset: 0,
            data: new Uint8Array(0),
            done: false,
            checksum: 0,
          },
        ],
        responses: [
          { term: MAX, success: true, commitIndex: MAX - 1, nextOffset: MAX - 2 },
          { term: 0, success: false, commitIndex: 0, nextOffset: 0 },
        ],
        method: "snapshotRecoveryRequest",
        send: (t, peer, req) => t.sendSnapshotRecoveryRequest(SENDER, peer, req),
      });
    });

    test("Transporter.sendTimeoutNow() round-trips every field", async () => {
      await roundTrip<TimeoutNowRequest, TimeoutNowResponse>(makeHarness, {
        requests: [{ term: MAX, leaderName: "leader-ß" }, { term: 0, leaderName: "" }],
        responses: [{ term: MAX, success: true }, { term: 0, success: false }],
        method: "timeoutNow",
        send: (t, peer, req) => t.sendTimeoutNow(SENDER, peer, req),
      });
    });

    test("Transporter answers 200 concurrent requests to one peer, each with its own response", async () => {
      await withHarness(makeHarness, async (harness) => {
        const seen = new Set<number>();
        const handler = fakeHandler("server-1", {
          async appendEntries(req) {
            seen.add(req.heartbeatSeq);
            // Finish in a different order than the requests arrived.
            if (req.heartbeatSeq % 3 === 1) await Promise.resolve();
            if (req.heartbeatSeq % 3 === 2) await nextMacrotask();
            return {
              term: req.term,
              index: req.prevLogIndex,
              commitIndex: req.commitIndex,
              success: true,
              conflictTerm: 0,
              heartbeatSeq: req.heartbeatSeq,
            };
          },
        });
        const peer = await harness.serve(handler);
        const sends = Array.from(
          { length: 200 },
          (_, i) =>
            harness.transporter.sendAppendEntriesRequest(SENDER, peer, {
              term: 1,
              prevLogIndex: i * 1000,
              prevLogTerm: 1,
              commitIndex: i,
              leaderName: "leader",
              entries: [{ index: i * 1000 + 1, term: 1, commandName: "c", command: bytesOf(i) }],
              heartbeatSeq: i,
            }),
        );
        const responses = await withDeadline(Promise.all(sends), "200 concurrent sends");
        responses.forEach((response, i) => {
          assert.equal(response.heartbeatSeq, i, `response ${i} belongs to another request`);
          assert.equal(response.index, i * 1000);
          assert.equal(response.commitIndex, i);
        });
        assert.equal(seen.size, 200);
      });
    });

    test("Transporter rejects with TransportError when the peer is unreachable", async () => {
      await withHarness(makeHarness, async (harness) => {
        const peer = await harness.unreachablePeer();
        await assertTransportError(
          harness.transporter.sendVoteRequest(SENDER, peer, voteRequest("c")),
          "send to an unreachable peer",
        );
        await assertTransportError(
          harness.transporter.sendAppendEntriesRequest(SENDER, peer, heartbeat(1)),
          "second send to an unreachable peer",
        );
      });
    });

    test("Transporter rejects with TransportError when the handler throws or rejects, and keeps serving", async () => {
      await withHarness(makeHarness, async (harness) => {
        const handler = fakeHandler("server-1", {
          requestVote(req) {
            if (req.candidateName === "throw") throw new Error("handler threw");
            if (req.candidateName === "reject") return Promise.reject(new Error("rejected"));
            return Promise.resolve({ term: req.term, voteGranted: true, preVote: false });
          },
        });
        const peer = await harness.serve(handler);
        const send = (candidate: string) =>
          harness.transporter.sendVoteRequest(SENDER, peer, voteRequest(candidate));
        await assertTransportError(send("throw"), "send to a throwing handler");
        await assertTransportError(send("reject"), "send to a rejecting handler");
        const response = await withDeadline(send("ok"), "send after handler failures");
        assert.deepStrictEqual(response, { term: 7, voteGranted: true, preVote: false });
      });
    });

    test("Transporter rejects with TransportError when the signal is already aborted", async () => {
      await withHarness(makeHarness, async (harness) => {
        const peer = await harness.serve(fakeHandler("server-1", {}));
        await assertTransportError(
          harness.transporter.sendAppendEntriesRequest(SENDER, peer, heartbeat(1), {
            signal: AbortSignal.abort(),
          }),
          "send with an aborted signal",
        );
      });
    });

    test("Transporter rejects with TransportError when the signal aborts in flight", async () => {
      await withHarness(makeHarness, async (harness) => {
        let release = (): void => {};
        const released = new Promise<void>((resolve) => release = resolve);
        let arrived = (): void => {};
        const arrival = new Promise<void>((resolve) => arrived = resolve);
        const peer = await harness.serve(fakeHandler("server-1", {
          async timeoutNow(req) {
            arrived();
            await released;
            return { term: req.term, success: true };
          },
        }));
        const controller = new AbortController();
        const pending = harness.transporter.sendTimeoutNow(
          SENDER,
          peer,
          { term: 3, leaderName: "l" },
          { signal: controller.signal },
        );
        try {
          await withDeadline(arrival, "request reaching the handler");
          controller.abort();
          await assertTransportError(pending, "send aborted in flight");
        } finally {
          release();
        }
      });
    });
  });
}

type Method = Exclude<keyof RaftHandler, "name">;

interface RoundTripCase<Req, Res> {
  requests: Req[];
  responses: Res[];
  method: Method;
  send(transporter: Transporter, peer: PeerInfo, req: Req): Promise<Res>;
}

async function roundTrip<Req, Res>(
  makeHarness: () => Promise<TransporterHarness>,
  spec: RoundTripCase<Req, Res>,
): Promise<void> {
  await withHarness(makeHarness, async (harness) => {
    const received: unknown[] = [];
    const handler = fakeHandler("server-ü", {
      [spec.method]: (req: unknown) => {
        received.push(req);
        return Promise.resolve(structuredClone(spec.responses[received.length - 1]));
      },
    });
    const peer = await harness.serve(handler);
    for (let i = 0; i < spec.requests.length; i++) {
      const request = spec.requests[i]!;
      const response = await withDeadline(
        spec.send(harness.transporter, peer, structuredClone(request)),
        `${spec.method} #${i}`,
      );
      assert.equal(received.length, i + 1, `${spec.method} reached the handler once`);
      assert.deepStrictEqual(plain(received[i]), plain(request), `${spec.method} request #${i}`);
      assert.deepStrictEqual(plain(response), plain(spec.responses[i]), `response #${i}`);
    }
  });
}

async function withHarness(
  makeHarness: () => Promise<TransporterHarness>,
  body: (harness: TransporterHarness) => Promise<void>,
): Promise<void> {
  const harness = await makeHarness();
  try {
    await body(harness);
  } finally {
    await harness.close();
  }
}

function fakeHandler(name: string, methods: Partial<Omit<RaftHandler, "name">>): RaftHandler {
  const missing = (method: string) => () =>
    Promise.reject(new Error(`Unexpected ${method} in this test`));
  return {
    name,
    appendEntries: methods.appendEntries ?? missing("appendEntries"),
    requestVote: methods.requestVote ?? missing("requestVote"),
    requestSnapshot: methods.requestSnapshot ?? missing("requestSnapshot"),
    snapshotRecoveryRequest: methods.snapshotRecoveryRequest ??
      missing("snapshotRecoveryRequest"),
    timeoutNow: methods.timeoutNow ?? missing("timeoutNow"),
  };
}

/** Resolves with `promise` or rejects once {@link DEADLINE_MS} pass, leaving no timer behind. */
async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle within ${DEADLINE_MS} ms`)),
      DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function assertTransportError(promise: Promise<unknown>, what: string): Promise<void> {
  const settled = await withDeadline(
    promise.then((value) => ({ value }), (error: unknown) => ({ error })),
    what,
  );
  if (!("error" in settled)) assert.fail(`${what} resolved; expected a TransportError`);
  assert.ok(
    settled.error instanceof TransportError,
    `${what} rejected with ${String(settled.error)}; expected a TransportError`,
  );
}

/**
 * Copies Uint8Array subclasses (e.g. a decoder's Node Buffer) into plain Uint8Arrays, so
 * bytes compare by content; everything else must match exactly.
 */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]));
  }
  return value;
}

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function allBytes(): Uint8Array {
  return new Uint8Array(256).map((_, i) => i);
}

function bytesOf(i: number): Uint8Array {
  return new Uint8Array([i & 0xff, (i >> 8) & 0xff, 0, 255]);
}

function voteRequest(candidateName: string): RequestVoteRequest {
  return {
    term: 7,
    lastLogIndex: 3,
    lastLogTerm: 2,
    candidateName,
    preVote: false,
    transfer: false,
  };
}

function heartbeat(term: number): AppendEntriesRequest {
  return {
    term,
    prevLogIndex: 0,
    prevLogTerm: 0,
    commitIndex: 0,
    leaderName: "leader",
    entries: [],
    heartbeatSeq: 0,
  };
}
