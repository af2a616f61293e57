import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { TransportError } from "@tsraft/core";
import { ManualClock } from "@tsraft/core/testing";
import { makeHttpClient } from "./http_client.ts";
import { serveOnLoopback } from "./_serve.ts";

/** A node:http server (it runs on every runtime) that counts the connections it accepts. */
async function countingServer(
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = http.createServer(handle);
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function echo(request: Request): Promise<Response> {
  return request.arrayBuffer().then((body) =>
    new Response(body, {
      status: Number(request.headers.get("x-status") ?? 200),
      headers: { "x-got-sender": request.headers.get("x-raft-sender") ?? "" },
    })
  );
}

for (const implementation of ["fetch", "node"] as const) {
  describe(`makeHttpClient() with implementation "${implementation}"`, () => {
    test("post() sends body and headers and resolves with any status and the whole body", async () => {
      const server = await serveOnLoopback(echo);
      const client = makeHttpClient(2000, { implementation });
      try {
        const url = `http://127.0.0.1:${server.port}/raft/x`;
        const body = new Uint8Array(100_000).map((_, i) => i * 7);
        const ok = await client.post(url, body, { "x-raft-sender": "a" });
        assert.equal(ok.status, 200);
        assert.deepEqual(ok.body, body);
        const teapot = await client.post(url, new Uint8Array([1]), { "x-status": "418" });
        assert.equal(teapot.status, 418);
        assert.deepEqual(teapot.body, new Uint8Array([1]));
        const empty = await client.post(url, new Uint8Array(), {});
        assert.equal(empty.body.byteLength, 0);
      } finally {
        client.close?.();
        await server.close();
      }
    });

    test("post() reuses kept-alive connections for sequential requests", async () => {
      const server = await countingServer((req, res) => {
        req.resume();
        req.on("end", () => res.end("ok"));
      });
      const client = makeHttpClient(2000, { implementation });
      try {
        for (let i = 0; i < 20; i++) {
          const response = await client.post(`${server.url}/p`, new Uint8Array([i]), {});
          assert.equal(response.status, 200);
        }
        assert.ok(server.connections() <= 2, `${server.connections()} connections for 20 requests`);
      } finally {
        client.close?.();
        await server.close();
      }
    });

    test("post() rejects with TransportError when the peer does not answer in time", async () => {
      let release!: () => void;
      const stalled = new Promise<void>((resolve) => release = resolve);
      const server = await serveOnLoopback(async () => {
        await stalled;
        return new Response("late");
      });
      const client = makeHttpClient(150, { implementation });
      try {
        const started = performance.now();
        await assert.rejects(
          client.post(`http://127.0.0.1:${server.port}/`, new Uint8Array([1]), {}),
          (error: unknown) => error instanceof TransportError && /timed out/.test(error.message),
        );
        const elapsedMs = performance.now() - started;
        assert.ok(elapsedMs >= 140 && elapsedMs < 2000, `rejected after ${elapsedMs} ms`);
      } finally {
        release();
        client.close?.();
        await server.close();
      }
    });

    test("post() times out on its injected clock, at options.timeoutMs over the client's own", async () => {
      let arrivals = 0;
      let arrived = () => {};
      let release!: () => void;
      const stalled = new Promise<void>((resolve) => release = resolve);
      const server = await serveOnLoopback(async () => {
        arrivals++;
        arrived();
        await stalled;
        return new Response("late");
      });
      const clock = new ManualClock();
      const client = makeHttpClient(100, { implementation, clock });
      const url = `http://127.0.0.1:${server.port}/`;
      const outcomes: unknown[] = [];
      const track = (sent: Promise<unknown>) =>
        sent.then((value) => outcomes.push(value), (error) => outcomes.push(error));
      try {
        const both = new Promise<void>((resolve) => arrived = () => arrivals === 2 && resolve());
        const long = track(
          client.post(url, new Uint8Array([1]), {}, undefined, { timeoutMs: 900 }),
        );
        const short = track(client.post(url, new Uint8Array([2]), {}));
        await both; // both requests wait at the server: only the clock can end them now
        clock.advance(100);
        await short;
        assert.equal(
          outcomes.length,
          1,
          "only the request on the client's timeout ended at 100 ms",
        );
        assert.match(String(outcomes[0]), /timed out after 100 ms/);
        clock.advance(799);
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(outcomes.length, 1, "timed out before its own deadline");
        clock.advance(1);
        await long;
        assert.ok(outcomes[1] instanceof TransportError, `got ${outcomes[1]}`);
        assert.match(outcomes[1].message, /timed out after 900 ms/);
        assert.equal(clock.pendingTimers, 0);
      } finally {
        release();
        client.close?.();
        await server.close();
      }
    });

    test("post() rejects a per-request timeoutMs that is not a positive number with RangeError", async () => {
      const client = makeHttpClient(1000, { implementation });
      try {
        for (const timeoutMs of [0, -1, Number.NaN, Infinity]) {
          await assert.rejects(
            client.post("http://127.0.0.1:1/", new Uint8Array(), {}, undefined, { timeoutMs }),
            RangeError,
          );
        }
      } finally {
        client.close?.();
      }
    });

    test("post() rejects with TransportError when the signal aborts, before or during", async () => {
      let release!: () => void;
      const stalled = new Promise<void>((resolve) => release = resolve);
      const server = await serveOnLoopback(async () => {
        await stalled;
        return new Response("late");
      });
      const client = makeHttpClient(5000, { implementation });
      const url = `http://127.0.0.1:${server.port}/`;
      try {
        await assert.rejects(
          client.post(url, new Uint8Array(), {}, AbortSignal.abort()),
          (error: unknown) => error instanceof TransportError && /aborted/.test(error.message),
        );
        const controller = new AbortController();
        const pending = client.post(url, new Uint8Array([1]), {}, controller.signal);
        setTimeout(() => controller.abort(), 20);
        await assert.rejects(
          pending,
          (error: unknown) => error instanceof TransportError && /aborted/.test(error.message),
        );
      } finally {
        release();
        client.close?.();
        await server.close();
      }
    });

    test("post() rejects with TransportError when nothing listens", async () => {
      const client = makeHttpClient(2000, { implementation });
      try {
        await assert.rejects(
          client.post(`http://127.0.0.1:${await closedPort()}/`, new Uint8Array(), {}),
          TransportError,
        );
      } finally {
        client.close?.();
      }
    });

    test("post() rejects with TransportError for a response over maxResponseBytes", async () => {
      const server = await serveOnLoopback(echo);
      const client = makeHttpClient(2000, { implementation, maxResponseBytes: 1000 });
      try {
        const url = `http://127.0.0.1:${server.port}/`;
        assert.equal((await client.post(url, new Uint8Array(1000), {})).body.byteLength, 1000);
        await assert.rejects(
          client.post(url, new Uint8Array(1001), {}),
          (error: unknown) => error instanceof TransportError && /exceeds/.test(error.message),
        );
      } finally {
        client.close?.();
        await server.close();
      }
    });

    test("post() after close() rejects with TransportError", async () => {
      const client = makeHttpClient(2000, { implementation });
      client.close?.();
      await assert.rejects(
        client.post("http://127.0.0.1:1/", new Uint8Array(), {}),
        (error: unknown) => error instanceof TransportError && /closed/.test(error.message),
      );
    });
  });
}

test("makeHttpClient() rejects a non-positive timeout or bound with RangeError", () => {
  assert.throws(() => makeHttpClient(0), RangeError);
  assert.throws(() => makeHttpClient(Number.NaN), RangeError);
  assert.throws(() => makeHttpClient(100, { maxResponseBytes: 0 }), RangeError);
});
