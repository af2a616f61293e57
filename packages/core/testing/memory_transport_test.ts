import assert from "node:assert/strict";
import { test } from "node:test";
import { TransportError } from "../errors.ts";
import type { RaftHandler } from "../transporter.ts";
import type { AppendEntriesRequest, AppendEntriesResponse, PeerInfo } from "../types.ts";
import { ManualClock } from "./manual_clock.ts";
import { MemoryNetwork } from "./memory_transport.ts";
import { SeededRandom } from "./seeded_random.ts";
import { transporterConformance } from "./transporter_conformance.ts";

transporterConformance("MemoryNetwork", () => {
  const network = new MemoryNetwork();
  return Promise.resolve({
    serve: (handler) => Promise.resolve(network.register(handler)),
    transporter: network.transporter(),
    unreachablePeer: () => ({ name: "nobody", connectionString: "memory://nobody" }),
    close: () => Promise.resolve(network.close()),
  });
});

/** A handler whose AppendEntries records each request and echoes `heartbeatSeq`. */
function echoServer(name: string, options: { hold?: Promise<void> } = {}) {
  const received: AppendEntriesRequest[] = [];
  const handler: RaftHandler = {
    name,
    async appendEntries(req): Promise<AppendEntriesResponse> {
      received.push(req);
      await options.hold;
      return {
        term: req.term,
        index: req.prevLogIndex,
        commitIndex: 0,
        success: true,
        conflictTerm: 0,
        heartbeatSeq: req.heartbeatSeq,
      };
    },
    requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: false }),
    requestSnapshot: (req) => Promise.resolve({ term: req.term, success: true, nextOffset: 0 }),
    snapshotRecoveryRequest: (req) =>
      Promise.resolve({ term: req.term, success: true, commitIndex: 0, nextOffset: 0 }),
    timeoutNow: (req) => Promise.resolve({ term: req.term, success: true }),
  };
  return { handler, received };
}

function append(seq: number, entries: AppendEntriesRequest["entries"] = []): AppendEntriesRequest {
  return {
    term: 1,
    prevLogIndex: 0,
    prevLogTerm: 0,
    commitIndex: 0,
    leaderName: "a",
    entries,
    heartbeatSeq: seq,
  };
}

/** Settles `promise` into a value, so tests can check state before and after it settles. */
function track<T>(promise: Promise<T>) {
  const state: { done: boolean; value?: T; error?: unknown } = { done: false };
  promise.then(
    (value) => Object.assign(state, { done: true, value }),
    (error: unknown) => Object.assign(state, { done: true, error }),
  );
  return state;
}

/** Lets every queued microtask (and the ones they queue) run. */
async function drainMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function threeNodes(network: MemoryNetwork) {
  const servers = ["a", "b", "c"].map((name) => echoServer(name));
  const peers: Record<string, PeerInfo> = {};
  for (const server of servers) peers[server.handler.name] = network.register(server.handler);
  const transporter = network.transporter();
  const send = (from: string, to: string, seq = 0) =>
    transporter.sendAppendEntriesRequest({ name: from }, peers[to]!, append(seq));
  return { servers, peers, send };
}

test("MemoryNetwork.register() returns a memory:// peer and rejects a duplicate name", () => {
  const network = new MemoryNetwork();
  const peer = network.register(echoServer("a").handler);
  assert.deepStrictEqual(peer, { name: "a", connectionString: "memory://a" });
  assert.throws(() => network.register(echoServer("a").handler), TypeError);
});

test("MemoryNetwork delivers asynchronously and deep-copies requests and responses", async () => {
  const network = new MemoryNetwork();
  const { handler, received } = echoServer("b");
  const peer = network.register(handler);
  const request = append(5, [{
    index: 1,
    term: 1,
    commandName: "c",
    command: new Uint8Array([1]),
  }]);
  const pending = network.transporter().sendAppendEntriesRequest({ name: "a" }, peer, request);
  assert.equal(received.length, 0, "the handler must not run inside send()");
  request.entries[0]!.command[0] = 99;
  const response = await pending;
  assert.equal(received[0]!.entries[0]!.command[0], 1);
  assert.notEqual(received[0], request);
  assert.equal(response.heartbeatSeq, 5);
});

test("MemoryNetwork.unregister() makes a name unreachable; re-registering reaches the new handler", async () => {
  const network = new MemoryNetwork();
  const { send } = threeNodes(network);
  network.unregister("b");
  await assert.rejects(send("a", "b"), TransportError);
  const restarted = echoServer("b");
  network.register(restarted.handler);
  await send("a", "b", 3);
  assert.equal(restarted.received.length, 1);
});

test("MemoryNetwork.partition() passes messages only within a group until heal()", async () => {
  const network = new MemoryNetwork();
  const { send, servers } = threeNodes(network);
  network.partition(["a", "b"], ["c"]);
  await send("a", "b");
  await assert.rejects(send("a", "c"), TransportError);
  await assert.rejects(send("c", "b"), TransportError);
  assert.equal(servers[2]!.received.length, 0);
  network.partition(["a"], ["b", "c"]);
  await assert.rejects(send("a", "b"), TransportError);
  await send("c", "b");
  network.heal();
  await send("a", "c");
  await send("c", "a");
});

test("MemoryNetwork.isolate() cuts a node off both ways until rejoin()", async () => {
  const network = new MemoryNetwork();
  const { send } = threeNodes(network);
  network.isolate("a");
  await assert.rejects(send("a", "b"), TransportError);
  await assert.rejects(send("b", "a"), TransportError);
  await send("b", "c");
  network.rejoin("a");
  await send("a", "b");
  await send("b", "a");
});

test("MemoryNetwork.cutLink() is one-way: it loses requests and responses from `from` to `to`", async () => {
  const network = new MemoryNetwork();
  const { send, servers } = threeNodes(network);
  network.cutLink("a", "b");
  await assert.rejects(send("a", "b"), TransportError);
  assert.equal(servers[1]!.received.length, 0, "the request was lost");
  await assert.rejects(send("b", "a"), TransportError);
  assert.equal(servers[0]!.received.length, 1, "the request arrived; its response was lost");
  await send("c", "b");
  await send("b", "c");
  network.restoreLink("a", "b");
  await send("a", "b");
  await send("b", "a");
});

test("MemoryNetwork.setDropRate(1) fails sends at once without timeoutMs", async () => {
  const network = new MemoryNetwork();
  const { send } = threeNodes(network);
  network.setDropRate(1);
  await assert.rejects(send("a", "b"), TransportError);
  assert.equal(network.stats.dropped, 1);
  network.setDropRate(0);
  await send("a", "b");
});

test("MemoryNetwork with timeoutMs fails a dropped send only after timeoutMs on the clock", async () => {
  const clock = new ManualClock();
  const network = new MemoryNetwork({ clock, timeoutMs: 100 });
  const { send } = threeNodes(network);
  network.setDropRate(1);
  const pending = track(send("a", "b"));
  await drainMicrotasks();
  clock.advance(99);
  await drainMicrotasks();
  assert.equal(pending.done, false);
  clock.advance(1);
  await drainMicrotasks();
  assert.ok(pending.error instanceof TransportError);
  assert.match(pending.error.message, /timed out after 100 ms/);
  assert.equal(clock.pendingTimers, 0);
});

test("MemoryNetwork with timeoutMs times out a handler slower than timeoutMs", async () => {
  const clock = new ManualClock();
  const network = new MemoryNetwork({ clock, timeoutMs: 50 });
  let release = (): void => {};
  const hold = new Promise<void>((resolve) => release = resolve);
  const peer = network.register(echoServer("b", { hold }).handler);
  const pending = track(
    network.transporter().sendAppendEntriesRequest({ name: "a" }, peer, append(1)),
  );
  await drainMicrotasks();
  clock.advance(50);
  await drainMicrotasks();
  assert.ok(pending.error instanceof TransportError);
  release();
});

test("MemoryNetwork drop rate 0.3 loses some sends, and the same seed loses the same ones", async () => {
  async function run(seed: number): Promise<boolean[]> {
    const network = new MemoryNetwork({ random: new SeededRandom(seed) });
    const { send } = threeNodes(network);
    network.setDropRate(0.3);
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => send("a", "b", i)),
    );
    return results.map((result) => result.status === "fulfilled");
  }
  const first = await run(42);
  const delivered = first.filter(Boolean).length;
  // Each send survives two legs: expect about 200 * 0.7 * 0.7 = 98.
  assert.ok(delivered > 60 && delivered < 140, `delivered ${delivered} of 200`);
  assert.deepStrictEqual(await run(42), first);
  assert.notDeepStrictEqual(await run(43), first);
});

test("MemoryNetwork.setDuplicateRate(1) delivers each request twice and resolves once", async () => {
  const network = new MemoryNetwork();
  const { send, servers } = threeNodes(network);
  network.setDuplicateRate(1);
  const response = await send("a", "b", 7);
  await drainMicrotasks();
  assert.equal(response.heartbeatSeq, 7);
  assert.deepStrictEqual(servers[1]!.received.map((r) => r.heartbeatSeq), [7, 7]);
  assert.notEqual(servers[1]!.received[0], servers[1]!.received[1]);
  assert.equal(network.stats.duplicated, 1);
  assert.equal(network.stats.delivered, 2);
});

test("MemoryNetwork.setDelay() holds messages until the clock passes and reorders them", async () => {
  const clock = new ManualClock();
  const network = new MemoryNetwork({ clock, random: new SeededRandom(3) });
  const { send, servers } = threeNodes(network);
  network.setDelay({ minMs: 10, maxMs: 50 });
  const pending = Array.from({ length: 30 }, (_, i) => track(send("a", "b", i)));
  await drainMicrotasks();
  clock.advance(9);
  await drainMicrotasks();
  assert.equal(servers[1]!.received.length, 0, "nothing arrives before minMs");
  clock.advance(41);
  await drainMicrotasks();
  const order = servers[1]!.received.map((r) => r.heartbeatSeq);
  assert.equal(order.length, 30, "every request arrives by maxMs");
  assert.notDeepStrictEqual(order, [...order].sort((x, y) => x - y), "requests were reordered");
  clock.advance(50);
  await drainMicrotasks();
  pending.forEach((state, i) => assert.equal(state.value?.heartbeatSeq, i));
  assert.equal(clock.pendingTimers, 0);
});

test("MemoryNetwork rejects in-flight sends when their signal aborts or the network closes", async () => {
  const clock = new ManualClock();
  const network = new MemoryNetwork({ clock });
  const { peers } = threeNodes(network);
  network.setDelay({ minMs: 100, maxMs: 100 });
  const transporter = network.transporter();
  const controller = new AbortController();
  const aborted = track(
    transporter.sendAppendEntriesRequest({ name: "a" }, peers.b!, append(1), {
      signal: controller.signal,
    }),
  );
  const closed = track(transporter.sendAppendEntriesRequest({ name: "a" }, peers.b!, append(2)));
  controller.abort();
  await drainMicrotasks();
  assert.ok(aborted.error instanceof TransportError);
  assert.equal(closed.done, false);
  network.close();
  await drainMicrotasks();
  assert.ok(closed.error instanceof TransportError);
  assert.equal(clock.pendingTimers, 0);
});

test("MemoryNetwork.stats counts sends per RPC kind, receiver and payload", async () => {
  const network = new MemoryNetwork();
  const { peers, send } = threeNodes(network);
  const transporter = network.transporter();
  await send("a", "b");
  await transporter.sendAppendEntriesRequest(
    { name: "a" },
    peers.c!,
    append(1, [{ index: 1, term: 1, commandName: "c", command: new Uint8Array(10) }]),
  );
  await transporter.sendVoteRequest({ name: "a" }, peers.b!, {
    term: 1,
    lastLogIndex: 0,
    lastLogTerm: 0,
    candidateName: "a",
    preVote: false,
    transfer: false,
  });
  await transporter.sendTimeoutNow({ name: "a" }, peers.b!, { term: 1, leaderName: "a" });
  await transporter.sendSnapshotRequest({ name: "a" }, peers.b!, {
    term: 1,
    leaderName: "a",
    lastIndex: 1,
    lastTerm: 1,
    size: 3,
  });
  await transporter.sendSnapshotRecoveryRequest({ name: "a" }, peers.b!, {
    term: 1,
    leaderName: "a",
    lastIndex: 1,
    lastTerm: 1,
    peers: [],
    offset: 0,
    data: new Uint8Array(3),
    done: true,
    checksum: 0,
  });
  await assert.rejects(
    transporter.sendVoteRequest({ name: "a" }, { name: "x", connectionString: "memory://x" }, {
      term: 1,
      lastLogIndex: 0,
      lastLogTerm: 0,
      candidateName: "a",
      preVote: false,
      transfer: false,
    }),
    TransportError,
  );
  assert.deepStrictEqual(network.stats, {
    sent: {
      appendEntries: 2,
      requestVote: 2,
      requestSnapshot: 1,
      snapshotRecoveryRequest: 1,
      timeoutNow: 1,
    },
    total: 7,
    sentTo: { b: 5, c: 1, x: 1 },
    delivered: 6,
    dropped: 0,
    duplicated: 0,
    payloadBytes: 13,
  });
  network.resetStats();
  assert.equal(network.stats.total, 0);
});

test("MemoryNetwork rejects invalid fault settings with RangeError", () => {
  const network = new MemoryNetwork();
  assert.throws(() => network.setDropRate(1.5), RangeError);
  assert.throws(() => network.setDuplicateRate(-0.1), RangeError);
  assert.throws(() => network.setDelay({ minMs: 10, maxMs: 5 }), RangeError);
  assert.throws(() => network.partition(["a"], ["a", "b"]), RangeError);
  assert.throws(() => new MemoryNetwork({ timeoutMs: -1 }), RangeError);
});
