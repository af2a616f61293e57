import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Hono } from "hono";
import {
  type AppendEntriesRequest,
  decodeMessage,
  DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS,
  encodeMessage,
  InvalidMessageError,
  type PeerInfo,
  REQUEST_KINDS,
  RPCS,
  type SnapshotRecoveryRequest,
  type SnapshotRequest,
  TransportError,
} from "@tsraft/core";
import { ManualClock, trackPromise } from "@tsraft/core/testing";
import { HttpTransporter } from "./http_transporter.ts";
import { type HttpClient, type HttpPostOptions, makeHttpClient } from "./http_client.ts";
import { serveOnLoopback } from "./_serve.ts";
import { appClient, EchoHandler, makeEntries, SAMPLE } from "./_test_util.ts";

const SENDER = { name: "leader" };
const PEER = { name: "echo", connectionString: "10.0.0.2:4001" };

function setup(options: { clusterId?: string; token?: string; maxBodyBytes?: number } = {}) {
  const handler = new EchoHandler();
  const app = new Hono();
  const client = appClient(app);
  const transporter = new HttpTransporter({ ...options, client });
  transporter.install(handler, app);
  return { handler, app, client, transporter };
}

function post(app: Hono, path: string, body: Uint8Array, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: "POST",
    body: body as Uint8Array<ArrayBuffer>,
    headers: { "content-type": "application/x-protobuf", ...headers },
  });
}

describe("HttpTransporter paths", () => {
  test("default prefix is /raft with one path per RPC", () => {
    const t = new HttpTransporter();
    assert.equal(t.prefix, "/raft");
    assert.equal(t.appendEntriesPath, "/raft/appendEntries");
    assert.equal(t.requestVotePath, "/raft/requestVote");
    assert.equal(t.snapshotPath, "/raft/snapshot");
    assert.equal(t.snapshotRecoveryPath, "/raft/snapshotRecovery");
    assert.equal(t.timeoutNowPath, "/raft/timeoutNow");
    t.close();
  });

  test("a custom prefix drops its trailing slash; an empty prefix mounts at the root", () => {
    const client = appClient(new Hono());
    assert.equal(
      new HttpTransporter({ prefix: "/x/y/", client }).appendEntriesPath,
      "/x/y/appendEntries",
    );
    assert.equal(new HttpTransporter({ prefix: "", client }).requestVotePath, "/requestVote");
  });

  test("constructor rejects a bad prefix, bad sizes and client together with timeoutMs", () => {
    const client = appClient(new Hono());
    assert.throws(() => new HttpTransporter({ prefix: "raft", client }), TypeError);
    assert.throws(() => new HttpTransporter({ maxBodyBytes: 0, client }), RangeError);
    assert.throws(() => new HttpTransporter({ timeoutMs: 10, client }), TypeError);
    assert.throws(() => new HttpTransporter({ timeoutMs: -1 }), RangeError);
    assert.throws(() => new HttpTransporter({ timeoutMs: Infinity }), RangeError);
    assert.throws(() => new HttpTransporter({ clock: new ManualClock(), client }), TypeError);
    for (const snapshotTimeoutMs of [0, -5, Number.NaN, Infinity]) {
      assert.throws(() => new HttpTransporter({ snapshotTimeoutMs, client }), RangeError);
    }
  });

  test("install() mounts POST routes only; other methods and paths are not served", async () => {
    const { app, transporter } = setup();
    const get = await app.request(transporter.appendEntriesPath);
    assert.equal(get.status, 404);
    const other = await post(app, "/raft/nope", new Uint8Array());
    assert.equal(other.status, 404);
  });

  test("install() mounts one POST route per row of core's RPCS table, at the getters' paths", () => {
    const mounted: string[] = [];
    const transporter = new HttpTransporter({ prefix: "/p", client: appClient(new Hono()) });
    transporter.install(new EchoHandler(), { post: (path) => mounted.push(path) });
    assert.deepEqual(mounted, REQUEST_KINDS.map((kind) => `/p/${RPCS[kind].path}`));
    assert.deepEqual(mounted, [
      transporter.appendEntriesPath,
      transporter.requestVotePath,
      transporter.snapshotPath,
      transporter.snapshotRecoveryPath,
      transporter.timeoutNowPath,
    ]);
  });

  test("install() keeps the app's other routes working", async () => {
    const handler = new EchoHandler();
    const app = new Hono();
    app.get("/health", (c) => c.text("ok"));
    new HttpTransporter({ client: appClient(app) }).install(handler, app);
    assert.equal(await (await app.request("/health")).text(), "ok");
  });
});

describe("HttpTransporter round trips through app.request()", () => {
  test("sendAppendEntriesRequest() delivers the entries and returns the decoded response", async () => {
    const { handler, client, transporter } = setup();
    const response = await transporter.sendAppendEntriesRequest(SENDER, PEER, SAMPLE.appendEntries);
    assert.deepEqual(response, {
      term: 2,
      index: 13,
      commitIndex: 9,
      success: true,
      conflictTerm: 0,
      heartbeatSeq: 42,
    });
    assert.deepEqual(handler.seen, [["appendEntries", SAMPLE.appendEntries]]);
    assert.deepEqual(client.urls, ["http://10.0.0.2:4001/raft/appendEntries"]);
  });

  test("sendVoteRequest() round trips", async () => {
    const { handler, transporter } = setup();
    const response = await transporter.sendVoteRequest(SENDER, PEER, SAMPLE.requestVote);
    assert.deepEqual(response, { term: 5, voteGranted: true, preVote: true });
    assert.deepEqual(handler.seen, [["requestVote", SAMPLE.requestVote]]);
  });

  test("sendSnapshotRequest() round trips", async () => {
    const { handler, transporter } = setup();
    const response = await transporter.sendSnapshotRequest(SENDER, PEER, SAMPLE.snapshot);
    assert.deepEqual(response, { term: 3, success: true, nextOffset: 1000 % 7 });
    assert.deepEqual(handler.seen, [["requestSnapshot", SAMPLE.snapshot]]);
  });

  test("sendSnapshotRecoveryRequest() round trips, bytes included", async () => {
    const { handler, transporter } = setup();
    const response = await transporter.sendSnapshotRecoveryRequest(
      SENDER,
      PEER,
      SAMPLE.snapshotRecovery,
    );
    assert.deepEqual(response, { term: 3, success: true, commitIndex: 100, nextOffset: 69 });
    assert.deepEqual(handler.seen, [["snapshotRecoveryRequest", SAMPLE.snapshotRecovery]]);
  });

  test("sendTimeoutNow() round trips", async () => {
    const { handler, transporter } = setup();
    const response = await transporter.sendTimeoutNow(SENDER, PEER, SAMPLE.timeoutNow);
    assert.deepEqual(response, { term: 8, success: true });
    assert.deepEqual(handler.seen, [["timeoutNow", SAMPLE.timeoutNow]]);
  });

  test("the sender's name, cluster id and token travel percent-encoded in headers", async () => {
    const app = new Hono();
    const seen: Headers[] = [];
    app.use(async (c, next) => {
      seen.push(c.req.raw.headers);
      await next();
    });
    const handler = new EchoHandler();
    const transporter = new HttpTransporter({
      clusterId: "кластер 1",
      token: "s3cret/é",
      client: appClient(app),
    });
    transporter.install(handler, app);
    await transporter.sendTimeoutNow({ name: "лидер" }, PEER, SAMPLE.timeoutNow);
    assert.equal(handler.seen.length, 1);
    const headers = seen[0]!;
    assert.equal(decodeURIComponent(headers.get("x-raft-sender")!), "лидер");
    assert.equal(decodeURIComponent(headers.get("x-raft-cluster")!), "кластер 1");
    assert.equal(decodeURIComponent(headers.get("x-raft-token")!), "s3cret/é");
    assert.equal(headers.get("content-type"), "application/x-protobuf");
  });

  test("a connection string may be host:port or an http(s) URL base with a path", async () => {
    const urls: string[] = [];
    const recording: HttpClient = {
      post(url) {
        urls.push(url);
        return Promise.resolve({
          status: 200,
          body: encodeMessage("timeoutNowResponse", { term: 1, success: true }),
        });
      },
    };
    const t = new HttpTransporter({ client: recording });
    for (
      const connectionString of [
        "127.0.0.1:4001",
        "[::1]:4001",
        "http://n1:80/",
        "https://n2.example:8443/cluster/a",
      ]
    ) {
      await t.sendTimeoutNow(SENDER, { name: "p", connectionString }, SAMPLE.timeoutNow);
    }
    assert.deepEqual(urls, [
      "http://127.0.0.1:4001/raft/timeoutNow",
      "http://[::1]:4001/raft/timeoutNow",
      "http://n1:80/raft/timeoutNow",
      "https://n2.example:8443/cluster/a/raft/timeoutNow",
    ]);
    await assert.rejects(
      t.sendTimeoutNow(SENDER, { name: "p", connectionString: "ftp://x" }, SAMPLE.timeoutNow),
      TransportError,
    );
  });
});

describe("HttpTransporter route errors", () => {
  test("a malformed body gets 400 with a plain-text reason and never reaches the server", async () => {
    const { app, handler, transporter } = setup();
    const response = await post(app, transporter.appendEntriesPath, new Uint8Array([0xff, 0xff]));
    assert.equal(response.status, 400);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(await response.text(), /appendEntriesRequest/);
    assert.equal(handler.seen.length, 0);
  });

  test("a body of another message kind is refused with 400 when it does not fit", async () => {
    const { app, transporter } = setup();
    const vote = encodeMessage("requestVoteRequest", SAMPLE.requestVote);
    const response = await post(app, transporter.snapshotRecoveryPath, vote);
    assert.equal(response.status, 400);
  });

  test("a body over maxBodyBytes gets 413, whether or not content-length declares it", async () => {
    const { app, handler, transporter } = setup({ maxBodyBytes: 256 });
    const big = encodeMessage("appendEntriesRequest", {
      ...SAMPLE.appendEntries,
      entries: makeEntries(10, 64, 10),
    });
    assert.ok(big.byteLength > 256);
    const declared = await post(app, transporter.appendEntriesPath, big);
    assert.equal(declared.status, 413);
    assert.match(await declared.text(), /exceeds 256 bytes/);
    // A streamed body carries no content-length: the bound must hold while reading.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < big.byteLength; i += 50) controller.enqueue(big.slice(i, i + 50));
        controller.close();
      },
    });
    const streamed = await app.request(transporter.appendEntriesPath, {
      method: "POST",
      body: stream,
      // @ts-expect-error: duplex is required by fetch for stream bodies but not typed everywhere
      duplex: "half",
    });
    assert.equal(streamed.status, 413);
    assert.equal(handler.seen.length, 0);
    const small = encodeMessage("appendEntriesRequest", { ...SAMPLE.appendEntries, entries: [] });
    assert.equal((await post(app, transporter.appendEntriesPath, small)).status, 200);
  });

  test("a wrong or missing cluster id gets 403", async () => {
    const { app, handler, transporter } = setup({ clusterId: "c1" });
    const body = encodeMessage("timeoutNowRequest", SAMPLE.timeoutNow);
    const wrong = await post(app, transporter.timeoutNowPath, body, { "x-raft-cluster": "c2" });
    assert.equal(wrong.status, 403);
    assert.match(await wrong.text(), /cluster/);
    const missing = await post(app, transporter.timeoutNowPath, body);
    assert.equal(missing.status, 403);
    const right = await post(app, transporter.timeoutNowPath, body, { "x-raft-cluster": "c1" });
    assert.equal(right.status, 200);
    assert.equal(handler.seen.length, 1);
  });

  test("a wrong or missing token gets 403", async () => {
    const { app, transporter } = setup({ token: "s3cret" });
    const body = encodeMessage("timeoutNowRequest", SAMPLE.timeoutNow);
    const path = transporter.timeoutNowPath;
    assert.equal((await post(app, path, body)).status, 403);
    assert.equal((await post(app, path, body, { "x-raft-token": "s3cre" })).status, 403);
    assert.equal((await post(app, path, body, { "x-raft-token": "s3cret!" })).status, 403);
    assert.equal((await post(app, path, body, { "x-raft-token": "s3cret" })).status, 200);
  });

  test("a sender from another cluster is refused: the send rejects with TransportError", async () => {
    const handler = new EchoHandler();
    const app = new Hono();
    new HttpTransporter({ clusterId: "c1", client: appClient(app) }).install(handler, app);
    const stranger = new HttpTransporter({ clusterId: "c2", client: appClient(app) });
    await assert.rejects(
      stranger.sendVoteRequest(SENDER, PEER, SAMPLE.requestVote),
      (error: unknown) =>
        error instanceof TransportError && /HTTP 403/.test(error.message) &&
        /cluster/.test(error.message),
    );
    assert.equal(handler.seen.length, 0);
  });

  test("a handler that throws gets 500 with the reason, and the app keeps serving", async () => {
    const { app, handler, transporter } = setup();
    handler.failWith = new Error("disk on fire");
    const body = encodeMessage("requestVoteRequest", SAMPLE.requestVote);
    const failed = await post(app, transporter.requestVotePath, body);
    assert.equal(failed.status, 500);
    assert.match(await failed.text(), /disk on fire/);
    handler.failWith = undefined;
    const ok = await post(app, transporter.requestVotePath, body);
    assert.equal(ok.status, 200);
    assert.deepEqual(decodeMessage("requestVoteResponse", new Uint8Array(await ok.arrayBuffer())), {
      term: 5,
      voteGranted: true,
      preVote: true,
    });
  });

  test("a handler rejecting with InvalidMessageError gets 400", async () => {
    const { app, handler, transporter } = setup();
    handler.failWith = new InvalidMessageError("unknown peer zed");
    const body = encodeMessage("requestVoteRequest", SAMPLE.requestVote);
    const response = await post(app, transporter.requestVotePath, body);
    assert.equal(response.status, 400);
    assert.match(await response.text(), /unknown peer zed/);
  });
});

describe("HttpTransporter sending errors", () => {
  const answering = (status: number, body: Uint8Array): HttpClient => ({
    post: () => Promise.resolve({ status, body }),
  });

  test("a non-200 answer rejects with TransportError carrying the status and reason", async () => {
    const t = new HttpTransporter({
      client: answering(503, new TextEncoder().encode("overloaded")),
    });
    await assert.rejects(
      t.sendAppendEntriesRequest(SENDER, PEER, SAMPLE.appendEntries),
      (error: unknown) =>
        error instanceof TransportError && /503/.test(error.message) &&
        /overloaded/.test(error.message),
    );
  });

  test("an undecodable 200 answer rejects with TransportError", async () => {
    const t = new HttpTransporter({ client: answering(200, new Uint8Array([0xff, 0x01])) });
    await assert.rejects(t.sendVoteRequest(SENDER, PEER, SAMPLE.requestVote), TransportError);
  });

  test("an answer over maxBodyBytes rejects with TransportError", async () => {
    const body = encodeMessage("snapshotRecoveryResponse", {
      term: 1,
      success: true,
      commitIndex: 1,
      nextOffset: 1,
    });
    const t = new HttpTransporter({
      maxBodyBytes: body.byteLength - 1,
      client: answering(200, body),
    });
    await assert.rejects(
      t.sendSnapshotRecoveryRequest(SENDER, PEER, SAMPLE.snapshotRecovery),
      TransportError,
    );
  });

  test("a client failing with a non-TransportError is wrapped in TransportError", async () => {
    const t = new HttpTransporter({ client: { post: () => Promise.reject(new Error("boom")) } });
    await assert.rejects(
      t.sendTimeoutNow(SENDER, PEER, SAMPLE.timeoutNow),
      (error: unknown) => error instanceof TransportError && /boom/.test(error.message),
    );
  });

  test("a malformed request is the caller's bug: it rejects with TypeError or RangeError", async () => {
    const t = new HttpTransporter({ client: answering(200, new Uint8Array()) });
    await assert.rejects(
      t.sendTimeoutNow(SENDER, PEER, { term: -1, leaderName: "x" }),
      (error: unknown) => error instanceof TypeError || error instanceof RangeError,
    );
  });

  test("the caller's AbortSignal reaches the client", async () => {
    let got: AbortSignal | undefined;
    const t = new HttpTransporter({
      client: {
        post(_url, _body, _headers, signal) {
          got = signal;
          return Promise.reject(new TransportError("aborted"));
        },
      },
    });
    const controller = new AbortController();
    await assert.rejects(
      t.sendTimeoutNow(SENDER, PEER, SAMPLE.timeoutNow, { signal: controller.signal }),
      TransportError,
    );
    assert.equal(got, controller.signal);
  });
});

/** One request held at the server until the test opens its gate. */
class Gate {
  arrived: Promise<void>;
  #arrive!: () => void;
  opened: Promise<void>;
  open!: () => void;

  constructor() {
    this.arrived = new Promise((resolve) => this.#arrive = resolve);
    this.opened = new Promise((resolve) => this.open = resolve);
  }

  /** Called by the handler: marks the arrival, then waits for the gate. */
  pass(): Promise<void> {
    this.#arrive();
    return this.opened;
  }
}

/** An EchoHandler that holds AppendEntries, snapshot announcements and chunks at gates. */
class HoldingHandler extends EchoHandler {
  readonly gates = {
    appendEntries: new Gate(),
    requestSnapshot: new Gate(),
    snapshotRecoveryRequest: new Gate(),
  };

  override async appendEntries(req: AppendEntriesRequest) {
    await this.gates.appendEntries.pass();
    return super.appendEntries(req);
  }

  override async requestSnapshot(req: SnapshotRequest) {
    await this.gates.requestSnapshot.pass();
    return super.requestSnapshot(req);
  }

  override async snapshotRecoveryRequest(req: SnapshotRecoveryRequest) {
    await this.gates.snapshotRecoveryRequest.pass();
    return super.snapshotRecoveryRequest(req);
  }

  openAll(): void {
    for (const gate of Object.values(this.gates)) gate.open();
  }
}

/** Rejects when `promise` has not settled within `ms` of real time: a hang guard only. */
async function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `make`'s transporter sending to a served {@link HoldingHandler}, on a fresh ManualClock. */
async function served(make: (clock: ManualClock) => HttpTransporter) {
  const clock = new ManualClock();
  const transporter = make(clock);
  const handler = new HoldingHandler("held");
  const app = new Hono();
  transporter.install(handler, app);
  const server = await serveOnLoopback(app.fetch);
  const peer: PeerInfo = { name: "held", connectionString: `127.0.0.1:${server.port}` };
  return {
    clock,
    transporter,
    handler,
    peer,
    async [Symbol.asyncDispose]() {
      handler.openAll();
      transporter.close();
      await server.close();
    },
  };
}

describe("HttpTransporter timeouts by RPC class (core's RPCS table)", () => {
  test("each RPC reaches the client with its timeout class's deadline", async () => {
    const seen = new Map<string, HttpPostOptions | undefined>();
    const recording = (snapshotTimeoutMs?: number) => {
      seen.clear();
      const client: HttpClient = {
        post(url, _body, _headers, _signal, options) {
          seen.set(url.slice(url.lastIndexOf("/") + 1), options);
          return Promise.resolve({ status: 503, body: new Uint8Array() });
        },
      };
      return new HttpTransporter({
        client,
        ...(snapshotTimeoutMs === undefined ? {} : { snapshotTimeoutMs }),
      });
    };
    for (const snapshotTimeoutMs of [undefined, 45_000]) {
      const t = recording(snapshotTimeoutMs);
      await Promise.allSettled([
        t.sendAppendEntriesRequest(SENDER, PEER, SAMPLE.appendEntries),
        t.sendVoteRequest(SENDER, PEER, SAMPLE.requestVote),
        t.sendSnapshotRequest(SENDER, PEER, SAMPLE.snapshot),
        t.sendSnapshotRecoveryRequest(SENDER, PEER, SAMPLE.snapshotRecovery),
        t.sendTimeoutNow(SENDER, PEER, SAMPLE.timeoutNow),
      ]);
      assert.equal(seen.size, REQUEST_KINDS.length);
      for (const kind of REQUEST_KINDS) {
        const rpc = RPCS[kind];
        // With a client of its own making the default class would get timeoutMs; a client
        // passed in keeps its own timeout for it.
        const expected = rpc.timeout === "snapshot"
          ? { timeoutMs: snapshotTimeoutMs ?? DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS }
          : undefined;
        assert.deepEqual(seen.get(rpc.path), expected, `${kind} (${rpc.timeout})`);
      }
    }
  });

  // Three ways to send, each with timeoutMs 100 and snapshotTimeoutMs 5000 on the test's clock.
  const clients = {
    "the default client (timeoutMs and clock options)": (clock: ManualClock) =>
      new HttpTransporter({ timeoutMs: 100, snapshotTimeoutMs: 5000, clock }),
    'makeHttpClient({ implementation: "fetch" })': (clock: ManualClock) =>
      new HttpTransporter({
        client: makeHttpClient(100, { implementation: "fetch", clock }),
        snapshotTimeoutMs: 5000,
      }),
    'makeHttpClient({ implementation: "node" })': (clock: ManualClock) =>
      new HttpTransporter({
        client: makeHttpClient(100, { implementation: "node", clock }),
        snapshotTimeoutMs: 5000,
      }),
  };

  for (const [label, make] of Object.entries(clients)) {
    test(`${label}: a snapshot chunk answered after timeoutMs but before snapshotTimeoutMs succeeds`, async () => {
      await using s = await served(make);
      const { clock, handler, peer, transporter } = s;
      const chunk = trackPromise(
        transporter.sendSnapshotRecoveryRequest(SENDER, peer, SAMPLE.snapshotRecovery),
      );
      const heartbeat = trackPromise(
        transporter.sendAppendEntriesRequest(SENDER, peer, SAMPLE.appendEntries),
      );
      const announcement = trackPromise(
        transporter.sendSnapshotRequest(SENDER, peer, SAMPLE.snapshot),
      );
      // Every request waits at the server: from here only the clock ends them.
      await within(
        Promise.all(Object.values(handler.gates).map((gate) => gate.arrived)),
        "the requests to reach the server",
      );
      clock.advance(100);
      await within(Promise.all([heartbeat.done, announcement.done]), "the 100 ms timeouts");
      for (const other of [heartbeat, announcement]) {
        const error = other.outcome();
        assert.ok(error instanceof TransportError, `got ${error}`);
        assert.match(error.message, /timed out after 100 ms/);
      }
      clock.advance(4899); // 4999 ms held: past timeoutMs, within snapshotTimeoutMs
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(chunk.outcome(), undefined, "the chunk got the short timeout");
      handler.gates.snapshotRecoveryRequest.open();
      await within(chunk.done, "the chunk's answer");
      assert.deepEqual(chunk.outcome(), {
        value: { term: 3, success: true, commitIndex: 100, nextOffset: 69 },
      });
      assert.equal(clock.pendingTimers, 0, "the answered chunk left its timer behind");
    });

    test(`${label}: a snapshot chunk not answered within snapshotTimeoutMs rejects with TransportError`, async () => {
      await using s = await served(make);
      const { clock, handler, peer, transporter } = s;
      const chunk = trackPromise(
        transporter.sendSnapshotRecoveryRequest(SENDER, peer, SAMPLE.snapshotRecovery),
      );
      await within(handler.gates.snapshotRecoveryRequest.arrived, "the chunk to reach the server");
      clock.advance(4999);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(chunk.outcome(), undefined, "rejected before snapshotTimeoutMs");
      clock.advance(1);
      await within(chunk.done, "the chunk to time out");
      const error = chunk.outcome();
      assert.ok(error instanceof TransportError, `got ${error}`);
      assert.equal(error.code, "TRANSPORT");
      assert.match(error.message, /\/raft\/snapshotRecovery timed out after 5000 ms/);
    });
  }
});
