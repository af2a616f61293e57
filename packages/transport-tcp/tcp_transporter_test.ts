import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  type AppendEntriesRequest,
  DEFAULT_MAX_RECONNECT_DELAY_MS,
  DEFAULT_MIN_RECONNECT_DELAY_MS,
  DEFAULT_RPC_TIMEOUT_MS,
  encodeMessage,
  type PeerInfo,
  type RaftHandler,
  TransportError,
} from "@tsraft/core";
import { ManualClock, transporterConformance } from "@tsraft/core/testing";
import { TcpTransporter, type TcpTransporterOptions } from "./tcp_transporter.ts";
import { nativeNet } from "./_native_socket.ts";
import {
  CODE_HELLO,
  CODE_HELLO_ACCEPT,
  encodeFrame,
  encodeHello,
  FrameDecoder,
  kindCode,
  PROTOCOL,
} from "./_frame.ts";

const SENDER = { name: "a" };

/**
 * Socket paths under test: `node:net` everywhere, and Deno's own TCP API where it exists.
 * Every behavioural test below runs once per path, so both stay equivalent.
 */
const PATHS = nativeNet() === undefined ? [false] : [true, false];

function label(native: boolean): string {
  return native ? "native" : "node:net";
}

/** A transporter on the chosen socket path (TLS always uses node:tls). */
function make(native: boolean, options: TcpTransporterOptions = {}): TcpTransporter {
  return new TcpTransporter({ native: native && options.tls === undefined, ...options });
}

function heartbeat(seq: number, entries: AppendEntriesRequest["entries"] = []) {
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

/** A handler answering AppendEntries by echoing `heartbeatSeq`; `delayFor` may stall one. */
function echoHandler(delayFor: (seq: number) => Promise<void> = () => Promise.resolve()) {
  const handler: Partial<RaftHandler> = {
    name: "b",
    async appendEntries(req) {
      await delayFor(req.heartbeatSeq);
      return {
        term: req.term,
        index: req.prevLogIndex + req.entries.length,
        commitIndex: req.commitIndex,
        success: true,
        conflictTerm: 0,
        heartbeatSeq: req.heartbeatSeq,
      };
    },
    requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: false }),
  };
  return handler as RaftHandler;
}

/** Collects log lines and lets a test wait for one matching a pattern. */
class LogSink {
  lines: string[] = [];
  #waiters: { pattern: RegExp; resolve: () => void }[] = [];
  logger = (line: string): void => {
    this.lines.push(line);
    this.#waiters = this.#waiters.filter((w) => !(w.pattern.test(line) && (w.resolve(), true)));
  };
  waitFor(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    if (this.lines.some((line) => pattern.test(line))) return Promise.resolve();
    return withDeadline(
      new Promise<void>((resolve) => this.#waiters.push({ pattern, resolve })),
      timeoutMs,
      `log line ${pattern}; got ${JSON.stringify(this.lines)}`,
    );
  }
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Retries `attempt` until it resolves or `ms` pass (reconnection is asynchronous). */
async function eventually<T>(attempt: () => Promise<T>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > end) throw new Error(`${what} never succeeded`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function connectRaw(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

function closedOf(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once("close", () => resolve());
  });
}

/** Opens a raw socket that has passed the handshake, for sending hand-made frames. */
async function rawSession(port: number, clusterId = "tsraft"): Promise<Socket> {
  const socket = await connectRaw(port);
  const accepted = new Promise<void>((resolve, reject) => {
    const decoder = new FrameDecoder(1024);
    socket.on("data", function onData(chunk: Uint8Array) {
      const frame = decoder.push(chunk)[0];
      if (frame === undefined) return;
      socket.off("data", onData);
      if (frame.code === CODE_HELLO_ACCEPT) resolve();
      else reject(new Error(`handshake answered with code ${frame.code}`));
    });
  });
  socket.write(
    encodeFrame(0, CODE_HELLO, 0, encodeHello({ protocol: PROTOCOL, clusterId, token: "" })),
  );
  await withDeadline(accepted, 5000, "handshake");
  return socket;
}

async function pair(
  native: boolean,
  serverOptions: TcpTransporterOptions = {},
  clientOptions: TcpTransporterOptions = {},
  handler: RaftHandler = echoHandler(),
) {
  const server = make(native, serverOptions);
  const { port } = await server.listen(handler, { hostname: "127.0.0.1", port: 0 });
  const client = make(native, clientOptions);
  const peer: PeerInfo = { name: "b", connectionString: `127.0.0.1:${port}` };
  return {
    server,
    client,
    peer,
    port,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
    },
  };
}

for (const native of PATHS) {
  transporterConformance(`TcpTransporter (${label(native)})`, () => {
    const servers: TcpTransporter[] = [];
    const transporter = make(native, { timeoutMs: 5000 });
    return Promise.resolve({
      transporter,
      async serve(handler) {
        const server = make(native);
        servers.push(server);
        const { port } = await server.listen(handler, { port: 0 });
        return { name: handler.name, connectionString: `127.0.0.1:${port}` };
      },
      async unreachablePeer() {
        return { name: "nobody", connectionString: `127.0.0.1:${await freePort()}` };
      },
      async close() {
        await transporter.close();
        await Promise.all(servers.map((server) => server.close()));
      },
    });
  });

  describe(`TcpTransporter (${label(native)})`, () => {
    test("TcpTransporter pipelines requests on one connection and matches responses by id", async () => {
      const releases = new Map<number, () => void>();
      const arrived = new Set<number>();
      let allArrived = () => {};
      const everyoneArrived = new Promise<void>((resolve) => allArrived = resolve);
      const handler = echoHandler((seq) => {
        arrived.add(seq);
        if (arrived.size === 64) allArrived();
        return new Promise((resolve) => releases.set(seq, resolve));
      });
      await using p = await pair(native, {}, {}, handler);
      const sends = Array.from(
        { length: 64 },
        (_, i) => p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(i)),
      );
      // All 64 reach the handler while none has been answered: they are in flight together.
      await withDeadline(everyoneArrived, 5000, "64 requests in flight");
      // Answer in reverse order; each response must still reach its own request.
      for (let i = 63; i >= 0; i--) releases.get(i)!();
      const responses = await withDeadline(Promise.all(sends), 5000, "responses");
      responses.forEach((response, i) => assert.equal(response.heartbeatSeq, i));
      assert.equal(await countConnections(p.port), 1, "all requests must share one connection");
    });

    test("TcpTransporter rejects a peer with another cluster id and says why", async () => {
      const log = new LogSink();
      await using p = await pair(native, { clusterId: "blue", logger: log.logger }, {
        clusterId: "green",
      });
      await assert.rejects(
        p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(1)),
        (error: unknown) =>
          error instanceof TransportError &&
          /refused.*cluster id "green" does not match "blue"/.test(error.message),
      );
      await log.waitFor(/Refused connection from 127\.0\.0\.1:\d+: cluster id/);
    });

    test("TcpTransporter rejects a peer with a missing or wrong token", async () => {
      const log = new LogSink();
      const server = make(native, { token: "s3cret", logger: log.logger });
      const { port } = await server.listen(echoHandler(), { port: 0 });
      const peer = { name: "b", connectionString: `127.0.0.1:${port}` };
      const none = make(native);
      const wrong = make(native, { token: "guess" });
      const right = make(native, { token: "s3cret" });
      try {
        await assert.rejects(
          none.sendAppendEntriesRequest(SENDER, peer, heartbeat(1)),
          /missing token/,
        );
        await assert.rejects(
          wrong.sendAppendEntriesRequest(SENDER, peer, heartbeat(1)),
          /wrong token/,
        );
        const ok = await right.sendAppendEntriesRequest(SENDER, peer, heartbeat(7));
        assert.equal(ok.heartbeatSeq, 7);
        await log.waitFor(/missing token/);
        await log.waitFor(/wrong token/);
        // While backing off, a refused client fails fast with the same reason.
        await assert.rejects(
          wrong.sendAppendEntriesRequest(SENDER, peer, heartbeat(2)),
          /wrong token/,
        );
      } finally {
        await Promise.all([none.close(), wrong.close(), right.close(), server.close()]);
      }
    });

    test("TcpTransporter closes only the connection that sent a garbage frame", async () => {
      const log = new LogSink();
      await using p = await pair(native, { logger: log.logger });
      const good = await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(1));
      assert.equal(good.heartbeatSeq, 1);

      // Before the handshake: an HTTP request is not a frame.
      const http = await connectRaw(p.port);
      http.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await withDeadline(closedOf(http), 5000, "HTTP client to be dropped");

      // After the handshake: a frame with an unknown code, then one whose payload is garbage.
      const unknownCode = await rawSession(p.port);
      unknownCode.write(encodeFrame(1, 0x55, 0, new Uint8Array([1, 2, 3])));
      await withDeadline(closedOf(unknownCode), 5000, "unknown code to close the connection");
      await log.waitFor(/Unknown frame code 85/);

      const badPayload = await rawSession(p.port);
      badPayload.write(
        encodeFrame(1, kindCode("appendEntriesRequest"), 0, new Uint8Array([0xff, 0xff])),
      );
      await withDeadline(closedOf(badPayload), 5000, "garbage payload to close the connection");
      await log.waitFor(/Closing connection from .*Cannot decode appendEntriesRequest/);

      // A response kind sent as a request is a protocol violation too.
      const wrongDirection = await rawSession(p.port);
      const payload = encodeMessage("requestVoteResponse", {
        term: 1,
        voteGranted: true,
        preVote: false,
      });
      wrongDirection.write(encodeFrame(1, kindCode("requestVoteResponse"), 0, payload));
      await withDeadline(closedOf(wrongDirection), 5000, "response-as-request to close");

      // The well-behaved client's connection survived all of it.
      const after = await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(2));
      assert.equal(after.heartbeatSeq, 2);
      assert.equal(await countConnections(p.port), 1);
    });

    test("TcpTransporter closes a connection announcing a frame over maxFrameBytes", async () => {
      const log = new LogSink();
      await using p = await pair(native, { logger: log.logger, maxFrameBytes: 1024 });
      const raw = await rawSession(p.port);
      // Only the header is sent: the server must not wait for (or buffer) the 1 MiB body.
      const header = new Uint8Array(10);
      new DataView(header.buffer).setUint32(0, 6 + (1 << 20));
      header[8] = kindCode("appendEntriesRequest");
      raw.write(header);
      await withDeadline(closedOf(raw), 5000, "oversized frame to close the connection");
      await log.waitFor(/Frame of 1048576 bytes exceeds the limit of 1024/);
      // A normal request still works, and a too-large request is refused before sending.
      assert.equal(
        (await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(3))).heartbeatSeq,
        3,
      );
      const small = make(native, { maxFrameBytes: 1024 });
      try {
        const big = heartbeat(4, [{
          index: 1,
          term: 1,
          commandName: "c",
          command: new Uint8Array(4096),
        }]);
        await assert.rejects(
          small.sendAppendEntriesRequest(SENDER, p.peer, big),
          /exceeds maxFrameBytes/,
        );
      } finally {
        await small.close();
      }
    });

    test("TcpTransporter drops a connection that never completes the handshake", async () => {
      const log = new LogSink();
      await using p = await pair(native, { logger: log.logger, timeoutMs: 100 });
      const silent = await connectRaw(p.port);
      await withDeadline(closedOf(silent), 5000, "silent client to be dropped");
      await log.waitFor(/no handshake within 100 ms/);
    });

    test("TcpTransporter rejects pending requests when the connection drops and reconnects after a restart", async () => {
      let stall = true;
      let arrived = () => {};
      const arrival = new Promise<void>((resolve) => arrived = resolve);
      const handler = echoHandler((seq) => {
        if (seq !== 99 || !stall) return Promise.resolve();
        arrived();
        return new Promise(() => {}); // never answers
      });
      const first = make(native);
      const { port } = await first.listen(handler, { port: 0 });
      const client = make(native, { minReconnectDelayMs: 10, maxReconnectDelayMs: 40 });
      const peer = { name: "b", connectionString: `127.0.0.1:${port}` };
      try {
        assert.equal(
          (await client.sendAppendEntriesRequest(SENDER, peer, heartbeat(1))).heartbeatSeq,
          1,
        );
        const stuck = client.sendAppendEntriesRequest(SENDER, peer, heartbeat(99));
        await withDeadline(arrival, 5000, "stalled request to arrive");
        const stuckFails = assert.rejects(
          stuck,
          (error: unknown) => error instanceof TransportError && /lost/.test(error.message),
        );
        await first.close();
        await stuckFails;
        // While the port is closed, sends fail (and back off) rather than hang.
        await assert.rejects(
          client.sendAppendEntriesRequest(SENDER, peer, heartbeat(2)),
          TransportError,
        );

        stall = false;
        const second = make(native);
        await second.listen(handler, { port });
        try {
          const response = await eventually(
            () => client.sendAppendEntriesRequest(SENDER, peer, heartbeat(3)),
            5000,
            "a send after the restart",
          );
          assert.equal(response.heartbeatSeq, 3);
        } finally {
          await second.close();
        }
      } finally {
        await client.close();
        await first.close();
      }
    });

    test("TcpTransporter times out a request the peer does not answer, keeping the connection", async () => {
      const handler = echoHandler((seq) => seq === 1 ? new Promise(() => {}) : Promise.resolve());
      await using p = await pair(native, {}, { timeoutMs: 150 }, handler);
      const started = Date.now();
      await assert.rejects(
        p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(1)),
        /timed out after 150 ms/,
      );
      assert.ok(Date.now() - started < 2000);
      assert.equal(
        (await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(2))).heartbeatSeq,
        2,
      );
      assert.equal(await countConnections(p.port), 1);
    });

    test("TcpTransporter times out a request on its injected clock, and only then", async () => {
      const clock = new ManualClock();
      const handler = echoHandler((seq) => seq === 1 ? new Promise(() => {}) : Promise.resolve());
      await using p = await pair(native, {}, { clock, timeoutMs: 1000 }, handler);
      // Connected and handshaken first, so the only deadline left is the request's.
      assert.equal(
        (await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(0))).heartbeatSeq,
        0,
      );
      let outcome: unknown;
      const stuck = p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(1)).then(
        () => outcome = "answered",
        (error: unknown) => outcome = error,
      );
      clock.advance(999);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(outcome, undefined, "rejected before its deadline");
      clock.advance(1);
      await stuck;
      // (outcome was narrowed to undefined by the assertion above; the callback set it since.)
      const error = outcome as unknown;
      assert.ok(error instanceof TransportError);
      assert.match(error.message, /appendEntriesRequest to .* timed out after 1000 ms/);
      assert.equal(
        (await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(2))).heartbeatSeq,
        2,
      );
      assert.equal(await countConnections(p.port), 1);
    });

    test("TcpTransporter gives snapshot chunks snapshotTimeoutMs and other RPCs timeoutMs (RPCS timeout class)", async () => {
      const clock = new ManualClock();
      const handler = echoHandler();
      handler.requestSnapshot = () => new Promise(() => {});
      handler.snapshotRecoveryRequest = () => new Promise(() => {});
      await using p = await pair(
        native,
        {},
        { clock, timeoutMs: 100, snapshotTimeoutMs: 5000 },
        handler,
      );
      await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(0)); // connected
      const outcomes = new Map<string, unknown>();
      const track = (name: string, sent: Promise<unknown>) =>
        sent.then(() => outcomes.set(name, "answered"), (error) => outcomes.set(name, error));
      const announcement = track(
        "snapshot",
        p.client.sendSnapshotRequest(SENDER, p.peer, {
          term: 1,
          leaderName: "a",
          lastIndex: 5,
          lastTerm: 1,
          size: 3,
        }),
      );
      const chunk = track(
        "chunk",
        p.client.sendSnapshotRecoveryRequest(SENDER, p.peer, {
          term: 1,
          leaderName: "a",
          lastIndex: 5,
          lastTerm: 1,
          peers: [],
          offset: 0,
          data: new Uint8Array([1, 2, 3]),
          done: true,
          checksum: 0,
        }),
      );
      clock.advance(100);
      await announcement;
      assert.match(String(outcomes.get("snapshot")), /snapshotRequest .* timed out after 100 ms/);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(outcomes.has("chunk"), false, "the chunk got the short timeout");
      clock.advance(4900);
      await chunk;
      assert.match(
        String(outcomes.get("chunk")),
        /snapshotRecoveryRequest .* timed out after 5000 ms/,
      );
    });

    test("TcpTransporter backs off reconnects on its injected clock, doubling up to the maximum", async () => {
      const clock = new ManualClock();
      const port = await freePort(); // nothing listens there
      const client = make(native, { clock, minReconnectDelayMs: 50, maxReconnectDelayMs: 120 });
      const peer = { name: "b", connectionString: `127.0.0.1:${port}` };
      const send = () => client.sendAppendEntriesRequest(SENDER, peer, heartbeat(1));
      const attempted = (error: unknown) =>
        error instanceof TransportError && /Cannot connect/.test(error.message) &&
        !/next attempt/.test(error.message);
      const waiting = (ms: number) => (error: unknown) =>
        error instanceof TransportError && error.message.endsWith(`(next attempt in ${ms} ms)`);
      try {
        await assert.rejects(send(), attempted);
        await assert.rejects(send(), waiting(50));
        clock.advance(49);
        await assert.rejects(send(), waiting(1));
        clock.advance(1);
        await assert.rejects(send(), attempted);
        await assert.rejects(send(), waiting(100));
        clock.advance(100);
        await assert.rejects(send(), attempted);
        await assert.rejects(send(), waiting(120));
      } finally {
        await client.close();
      }
    });

    test("TcpTransporter's reconnect backoff waits for its injected clock, not for real time", async () => {
      const clock = new ManualClock();
      const client = make(native, { clock, minReconnectDelayMs: 1, maxReconnectDelayMs: 1 });
      const peer = { name: "b", connectionString: `127.0.0.1:${await freePort()}` };
      const send = () => client.sendAppendEntriesRequest(SENDER, peer, heartbeat(1));
      try {
        await assert.rejects(send(), (error: Error) => !/next attempt/.test(error.message));
        // Far longer than the 1 ms delay in real time: a wall-clock backoff would be over.
        await new Promise((resolve) => setTimeout(resolve, 30));
        await assert.rejects(send(), /\(next attempt in 1 ms\)$/);
        clock.advance(1);
        await assert.rejects(send(), (error: Error) => !/next attempt/.test(error.message));
      } finally {
        await client.close();
      }
    });

    test("TcpTransporter drops a peer that sends no handshake when its injected clock reaches timeoutMs", async () => {
      const clock = new ManualClock();
      const log = new LogSink();
      await using p = await pair(native, { clock, logger: log.logger, timeoutMs: 1000 });
      const silent = await connectRaw(p.port);
      // The accepted connection's handshake read deadline is the only timer on the clock.
      await eventually(
        () => clock.pendingTimers === 1 ? Promise.resolve() : Promise.reject(new Error("none")),
        5000,
        "the server's handshake deadline to be armed on the injected clock",
      );
      clock.advance(999);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(log.lines.filter((line) => /no handshake/.test(line)).length, 0);
      assert.equal(silent.destroyed, false);
      clock.advance(1);
      await log.waitFor(/no handshake within 1000 ms/);
      await withDeadline(closedOf(silent), 5000, "silent client to be dropped");
    });

    test("TcpTransporter gives up a handshake the peer never answers on its injected clock", async () => {
      // A listener that accepts and never answers the hello.
      const accepted: Socket[] = [];
      let hello = () => {};
      const helloReceived = new Promise<void>((resolve) => hello = resolve);
      const silent = createServer((socket) => {
        accepted.push(socket);
        socket.once("data", () => hello());
      });
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const { port } = silent.address() as { port: number };
      const clock = new ManualClock();
      // The chunk may take 10 timeouts: only the handshake's deadline can end it sooner.
      const client = make(native, { clock, timeoutMs: 60_000, snapshotTimeoutMs: 600_000 });
      try {
        let outcome: unknown;
        const chunk = client.sendSnapshotRecoveryRequest(
          SENDER,
          { name: "b", connectionString: `127.0.0.1:${port}` },
          {
            term: 1,
            leaderName: "a",
            lastIndex: 5,
            lastTerm: 1,
            peers: [],
            offset: 0,
            data: new Uint8Array([1]),
            done: true,
            checksum: 0,
          },
        ).then(() => outcome = "answered", (error: unknown) => outcome = error);
        await withDeadline(helloReceived, 5000, "the client's hello");
        // The read deadline is set once the hello is written; a step of the clock before
        // that only moves it later, so step until the handshake fails (at most 9 steps).
        for (let step = 0; step < 9 && outcome === undefined; step++) {
          clock.advance(60_000);
          for (let turn = 0; turn < 10 && outcome === undefined; turn++) {
            await new Promise((resolve) => setImmediate(resolve));
          }
        }
        await withDeadline(chunk, 5000, "the chunk to fail");
        assert.ok(outcome instanceof TransportError, `got ${outcome}`);
        // A TimeoutConn deadline (read, or the hello's write), not the chunk's own.
        assert.match(outcome.message, /deadline exceeded/);
      } finally {
        await client.close();
        for (const socket of accepted) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    test("TcpTransporter defaults to core's request timeout and reconnect backoff constants", async () => {
      const clock = new ManualClock();
      const handler = echoHandler((seq) => seq === 1 ? new Promise(() => {}) : Promise.resolve());
      await using p = await pair(native, {}, { clock }, handler);
      await p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(0)); // connected
      let outcome: unknown;
      const stuck = p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(1)).then(
        () => outcome = "answered",
        (error: unknown) => outcome = error,
      );
      clock.advance(DEFAULT_RPC_TIMEOUT_MS - 1);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(outcome, undefined, "rejected before DEFAULT_RPC_TIMEOUT_MS");
      clock.advance(1);
      await stuck;
      assert.match(String(outcome), new RegExp(`timed out after ${DEFAULT_RPC_TIMEOUT_MS} ms`));

      const peer = { name: "gone", connectionString: `127.0.0.1:${await freePort()}` };
      const send = () => p.client.sendAppendEntriesRequest(SENDER, peer, heartbeat(2));
      const delays: number[] = [];
      for (let attempt = 0; attempt < 8; attempt++) {
        await assert.rejects(send(), (error: Error) => !/next attempt/.test(error.message));
        const error = await send().then(() => assert.fail("sent"), (error: Error) => error);
        const delayMs = Number(/next attempt in (\d+) ms/.exec(error.message)?.[1]);
        delays.push(delayMs);
        clock.advance(delayMs);
      }
      // Doubling from the minimum, capped at the maximum.
      assert.equal(delays[0], DEFAULT_MIN_RECONNECT_DELAY_MS);
      assert.equal(delays[1], 2 * DEFAULT_MIN_RECONNECT_DELAY_MS);
      assert.equal(delays.at(-1), DEFAULT_MAX_RECONNECT_DELAY_MS);
      assert.ok(delays.every((ms, i) => i === 0 || ms >= delays[i - 1]!));
    });

    test("TcpTransporter rejects malformed connection strings and sends after close()", async () => {
      const client = make(native);
      for (const connectionString of ["localhost", "http://127.0.0.1:80", "h:0", "h:70000", ":1"]) {
        await assert.rejects(
          client.sendVoteRequest(SENDER, { name: "x", connectionString }, {
            term: 1,
            lastLogIndex: 0,
            lastLogTerm: 0,
            candidateName: "a",
            preVote: false,
            transfer: false,
          }),
          /Invalid connection string/,
        );
      }
      await client.close();
      await assert.rejects(
        client.sendAppendEntriesRequest(
          SENDER,
          { name: "x", connectionString: "[::1]:1" },
          heartbeat(1),
        ),
        /closed/,
      );
      assert.throws(() => make(native, { timeoutMs: 0 }), RangeError);
      assert.throws(() => make(native, { clusterId: "" }), TypeError);
    });

    test("TcpTransporter works over TLS with a self-signed certificate", async (t) => {
      const material = selfSignedCert();
      if (material === undefined) {
        t.skip("openssl is not available to make a self-signed certificate");
        return;
      }
      const tls = { key: material.key, cert: material.cert, ca: material.cert };
      const log = new LogSink();
      await using p = await pair(native, { tls, logger: log.logger }, {
        tls: { ca: material.cert },
      });
      const peer = { name: "b", connectionString: `localhost:${p.port}` };
      const response = await p.client.sendAppendEntriesRequest(SENDER, peer, heartbeat(5));
      assert.equal(response.heartbeatSeq, 5);
      // A client that does not trust the certificate cannot connect.
      const untrusting = make(native, { tls: {} });
      try {
        await assert.rejects(
          untrusting.sendAppendEntriesRequest(SENDER, peer, heartbeat(6)),
          TransportError,
        );
      } finally {
        await untrusting.close();
      }
      // Nor can a plain-TCP client: its handshake is not a TLS ClientHello.
      const plain = make(native, { timeoutMs: 500 });
      try {
        await assert.rejects(
          plain.sendAppendEntriesRequest(SENDER, peer, heartbeat(7)),
          TransportError,
        );
      } finally {
        await plain.close();
      }
      await log.waitFor(/TLS handshake with .* failed/);
    });

    test("TcpTransporter.close() rejects a send still waiting for the handshake", async () => {
      // A listener that accepts and never answers: the send waits in the handshake.
      const accepted: Socket[] = [];
      const silent = createServer((socket) => accepted.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const { port } = silent.address() as { port: number };
      const client = make(native, { timeoutMs: 10_000 });
      try {
        const send = client.sendAppendEntriesRequest(
          SENDER,
          { name: "b", connectionString: `127.0.0.1:${port}` },
          heartbeat(1),
        );
        const rejected = assert.rejects(send, /closed/);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const started = Date.now();
        await client.close();
        await withDeadline(rejected, 2000, "the pending send to reject");
        assert.ok(Date.now() - started < 2000);
      } finally {
        await client.close();
        for (const socket of accepted) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    test("TcpTransporter carries multi-megabyte frames intact between small pipelined ones", async () => {
      // Large frames cross many partial reads and writes; small ones sent meanwhile must
      // neither be reordered into them nor corrupt them.
      const sizes = [8 << 20, 3 << 20, 1, 0, 5 << 20];
      const chunk = (size: number, seed: number) => {
        const out = new Uint8Array(size);
        for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
        return out;
      };
      const handler = echoHandler();
      handler.snapshotRecoveryRequest = (req) => {
        const expected = chunk(req.data.byteLength, req.offset);
        return Promise.resolve({
          term: req.term,
          success: sameBytes(req.data, expected),
          commitIndex: 0,
          nextOffset: req.data.byteLength,
        });
      };
      await using p = await pair(native, {}, { snapshotTimeoutMs: 20_000 }, handler);
      const big = sizes.map((size, seed) =>
        p.client.sendSnapshotRecoveryRequest(SENDER, p.peer, {
          term: 1,
          leaderName: "a",
          lastIndex: 1,
          lastTerm: 1,
          peers: [],
          offset: seed,
          data: chunk(size, seed),
          done: false,
          checksum: 0,
        })
      );
      const small = Array.from(
        { length: 50 },
        (_, i) => p.client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(i)),
      );
      const responses = await withDeadline(Promise.all(big), 20_000, "large frames");
      responses.forEach((response, i) => {
        assert.ok(response.success, `frame ${i} of ${sizes[i]} bytes arrived corrupted`);
        assert.equal(response.nextOffset, sizes[i]);
      });
      (await Promise.all(small)).forEach((response, i) => assert.equal(response.heartbeatSeq, i));
    });
  });
}

describe("TcpTransporter native option", () => {
  test("TcpTransporter speaks the same protocol over native sockets and node:net", async (t) => {
    if (nativeNet() === undefined) {
      t.skip("no native TCP API on this runtime");
      return;
    }
    for (const [serverNative, clientNative] of [[true, false], [false, true]] as const) {
      await using p = await pair(serverNative, {}, {}, echoHandler());
      const client = make(clientNative);
      try {
        const response = await client.sendAppendEntriesRequest(SENDER, p.peer, heartbeat(42));
        assert.equal(response.heartbeatSeq, 42);
      } finally {
        await client.close();
      }
    }
  });

  test("TcpTransporter refuses native: true with TLS or without a native TCP API", () => {
    assert.throws(
      () => new TcpTransporter({ native: true, tls: { ca: "x" } }),
      /native sockets do not support tls/,
    );
    if (nativeNet() === undefined) {
      assert.throws(() => new TcpTransporter({ native: true }), /need Deno\.connect/);
    }
  });
});

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Counts established connections to `port` in the kernel's table (tests own the port). */
async function countConnections(port: number): Promise<number> {
  // Let closes in progress settle in the kernel table before counting.
  await new Promise((resolve) => setTimeout(resolve, 50));
  try {
    const out = execFileSync("ss", ["-Htn", "state", "established", `( sport = :${port} )`], {
      encoding: "utf8",
    });
    return out.split("\n").filter((line) => line.trim() !== "").length;
  } catch {
    return 1; // ss unavailable: the assertion degrades to a no-op
  }
}

function selfSignedCert(): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), "tsraft-tls-"));
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ], { stdio: "ignore" });
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
