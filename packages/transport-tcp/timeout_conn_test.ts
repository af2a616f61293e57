import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { describe, test } from "node:test";
import { TransportError } from "@tsraft/core";
import { ManualClock, trackPromise } from "@tsraft/core/testing";
import { type SocketLike, TimeoutConn } from "./timeout_conn.ts";
import { nativeNet, NativeSocket } from "./_native_socket.ts";

/** Socket paths under test: `node:net` everywhere, Deno's own TCP API where it exists. */
const PATHS = nativeNet() === undefined ? [false] : [true, false];

/**
 * A connected socket pair over loopback: `client` is ours (a `node:net` Socket, or with
 * `native` a {@link NativeSocket}), `server` the far end (always `node:net`).
 */
async function socketPair(
  native: boolean,
): Promise<{ client: SocketLike; server: Socket; close(): Promise<void> }> {
  let accept: (socket: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => accept = resolve);
  const listener: Server = createServer((socket) => accept(socket));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  let client: SocketLike;
  if (native) {
    client = new NativeSocket(
      await nativeNet()!.connect({ hostname: "127.0.0.1", port, transport: "tcp" }),
    );
  } else {
    const socket = createConnection({ host: "127.0.0.1", port });
    await new Promise((resolve) => socket.once("connect", resolve));
    client = socket;
  }
  const server = await accepted;
  return {
    client,
    server,
    async close() {
      client.destroy();
      server.destroy();
      await new Promise((resolve) => listener.close(resolve));
    },
  };
}

const text = (bytes: Uint8Array | null) => bytes === null ? null : new TextDecoder().decode(bytes);
const bytes = (value: string) => new TextEncoder().encode(value);

/** Lets pending I/O callbacks and every queued promise reaction run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * A {@link SocketLike} that takes writes and never reports them done (a peer that stopped
 * reading, without filling real kernel buffers), and delivers data only when told to.
 */
class StalledSocket extends EventEmitter implements SocketLike {
  destroyed = false;
  writes: Uint8Array[] = [];
  #paused = false;

  write(bytes: Uint8Array, _callback: (error?: Error | null) => void): boolean {
    this.writes.push(bytes);
    return false;
  }
  pause(): this {
    this.#paused = true;
    return this;
  }
  resume(): this {
    this.#paused = false;
    return this;
  }
  isPaused(): boolean {
    return this.#paused;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit("close"));
    }
    return this;
  }
  setNoDelay(): this {
    return this;
  }
}

for (const native of PATHS) {
  describe(`TimeoutConn (${native ? "native" : "node:net"})`, () => {
    test("TimeoutConn.read() returns bytes as they arrive and null at end of stream", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client, { timeoutMs: 2000 });
        pair.server.write("hello");
        assert.equal(text(await conn.read()), "hello");
        pair.server.end("bye");
        let rest = "";
        for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
          rest += text(chunk);
        }
        assert.equal(rest, "bye");
        assert.equal(await conn.read(), null);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.read() rejects with TransportError at the read deadline and stays usable", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client);
        conn.setReadDeadline(50);
        const started = Date.now();
        await assert.rejects(
          conn.read(),
          (error: unknown) =>
            error instanceof TransportError && /Read deadline/.test(error.message),
        );
        assert.ok(Date.now() - started >= 40, "rejected before the deadline");
        // Go semantics: after a read timeout the connection still works once the deadline moves.
        conn.setReadDeadline(null);
        pair.server.write("late");
        assert.equal(text(await conn.read()), "late");
        // A Date in the past fails the next read at once.
        conn.setDeadline(new Date(Date.now() - 1));
        await assert.rejects(conn.read(), TransportError);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.setReadDeadline() re-arms a pending read", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client);
        conn.setReadDeadline(10_000);
        const pending = conn.read();
        conn.setReadDeadline(20);
        await assert.rejects(pending, /Read deadline/);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn uses timeoutMs as the default deadline of every read", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client, { timeoutMs: 30 });
        await assert.rejects(conn.read(), /Read deadline/);
        await assert.rejects(conn.read(), /Read deadline/);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.write() resolves with the byte count once written", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client, { timeoutMs: 2000 });
        const received = new Promise<string>((resolve) =>
          pair.server.once("data", (d) => resolve(String(d)))
        );
        assert.equal(await conn.write(bytes("ping")), 4);
        assert.equal(await received, "ping");
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.write() rejects at the write deadline when the peer does not read, and closes", async () => {
      const pair = await socketPair(native);
      try {
        pair.server.pause(); // the far end stops reading, so kernel buffers fill up
        const conn = new TimeoutConn(pair.client, { writeTimeoutMs: 200 });
        const chunk = new Uint8Array(1 << 20);
        let error: unknown;
        // Keep writing until one write cannot be flushed before its deadline.
        for (let i = 0; i < 256 && error === undefined; i++) {
          await conn.write(chunk).catch((e) => error = e);
        }
        assert.ok(error instanceof TransportError, `expected TransportError, got ${error}`);
        assert.match((error as Error).message, /Write deadline exceeded|closed/);
        await assert.rejects(conn.write(bytes("x")), TransportError);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.close() rejects a pending read and reports addresses before that", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client);
        assert.equal(conn.localAddr?.hostname, "127.0.0.1");
        assert.equal(conn.remoteAddr?.port, pair.server.localPort);
        assert.equal(conn.localAddr?.port, pair.server.remotePort);
        const pending = assert.rejects(conn.read(), TransportError);
        await conn.close();
        await pending;
        await assert.rejects(conn.write(bytes("x")), TransportError);
        await assert.rejects(conn.read(), TransportError);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn pauses the socket at highWaterMarkBytes and loses nothing across resumes", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client, { timeoutMs: 5000, highWaterMarkBytes: 1 });
        const sent = new Uint8Array(4 << 20);
        for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff;
        pair.server.end(sent);
        const received = new Uint8Array(sent.length);
        let at = 0;
        for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
          received.set(chunk, at);
          at += chunk.byteLength;
        }
        assert.equal(at, sent.length);
        assert.ok(received.every((byte, i) => byte === sent[i]), "bytes differ");
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.write() keeps order across many writes in flight", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client, { timeoutMs: 5000 });
        const chunks: Buffer[] = [];
        const total = 2000 * 1024;
        const received = new Promise<Uint8Array>((resolve) => {
          let length = 0;
          pair.server.on("data", (chunk: Buffer) => {
            chunks.push(chunk);
            length += chunk.byteLength;
            if (length >= total) resolve(Buffer.concat(chunks));
          });
        });
        // Written across turns, so some go out while earlier ones are still being written.
        const writes: Promise<number>[] = [];
        for (let i = 0; i < 2000; i++) {
          writes.push(conn.write(new Uint8Array(1024).fill(i & 0xff)));
          if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
        }
        assert.equal((await Promise.all(writes)).length, 2000);
        const bytes = await received;
        for (let i = 0; i < 2000; i++) {
          assert.equal(bytes[i * 1024], i & 0xff, `write ${i} out of order`);
        }
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn.read() rejects when its injected clock reaches the read deadline, not before", async () => {
      const pair = await socketPair(native);
      try {
        const clock = new ManualClock(5000);
        const conn = new TimeoutConn(pair.client, { clock, readTimeoutMs: 300 });
        conn.setReadDeadline(10_000); // due at 15_000 on the manual clock, instead of 300
        const read = trackPromise(conn.read());
        clock.advance(9_999);
        await settle();
        assert.equal(read.outcome(), undefined, "rejected before the deadline");
        clock.advance(1);
        await settle(); // no real time needs to pass: the manual clock fired it
        const error = read.outcome();
        assert.ok(error instanceof TransportError, `got ${error}`);
        assert.match(error.message, /Read deadline exceeded/);
        assert.equal(clock.pendingTimers, 0);

        // A Date is taken at its distance from the wall clock, then runs on the manual one.
        conn.setReadDeadline(new Date(Date.now() + 60_000));
        const dated = trackPromise(conn.read());
        clock.advance(59_000);
        await settle();
        assert.equal(dated.outcome(), undefined, "a Date deadline fired early");
        clock.advance(1_000);
        await settle();
        assert.match(String(dated.outcome()), /Read deadline exceeded/);

        // Without a deadline each read gets readTimeoutMs, on the same clock; data before
        // the deadline settles the read and cancels its timer.
        conn.setReadDeadline(null);
        const answered = trackPromise(conn.read());
        pair.server.write("in time");
        await answered.done;
        assert.deepEqual(text((answered.outcome() as { value: Uint8Array }).value), "in time");
        assert.equal(clock.pendingTimers, 0, "the answered read left its timer behind");
        const idle = trackPromise(conn.read());
        clock.advance(299);
        await settle();
        assert.equal(idle.outcome(), undefined);
        clock.advance(1);
        await settle();
        assert.match(String(idle.outcome()), /Read deadline exceeded/);
      } finally {
        await pair.close();
      }
    });

    test("TimeoutConn refuses concurrent reads and invalid deadlines", async () => {
      const pair = await socketPair(native);
      try {
        const conn = new TimeoutConn(pair.client);
        const first = conn.read();
        await assert.rejects(conn.read(), TypeError);
        assert.throws(() => conn.setDeadline(Number.NaN), RangeError);
        assert.throws(() => conn.setDeadline(new Date("nope")), RangeError);
        assert.throws(() => new TimeoutConn(pair.client, { timeoutMs: -1 }), RangeError);
        pair.server.write("x");
        assert.equal(text(await first), "x");
      } finally {
        await pair.close();
      }
    });
  });
}

describe("TimeoutConn on an injected clock", () => {
  test("TimeoutConn.write() fails when its injected clock reaches the write deadline, and destroys the socket", async () => {
    const clock = new ManualClock();
    const socket = new StalledSocket();
    const conn = new TimeoutConn(socket, { clock, writeTimeoutMs: 500 });
    const write = trackPromise(conn.write(bytes("frame")));
    await settle();
    assert.equal(socket.writes.length, 1, "the write reached the socket");
    clock.advance(499);
    await settle();
    assert.equal(write.outcome(), undefined, "failed before the deadline");
    assert.equal(socket.destroyed, false);
    clock.advance(1);
    await settle();
    const error = write.outcome();
    assert.ok(error instanceof TransportError, `got ${error}`);
    assert.match(error.message, /Write deadline exceeded \(5 bytes\)/);
    assert.equal(socket.destroyed, true, "a half-written stream cannot be continued");
    await assert.rejects(conn.write(bytes("x")), TransportError);
  });

  test("TimeoutConn.setWriteDeadline() sets a deadline on the injected clock for later writes", async () => {
    const clock = new ManualClock(1000);
    const socket = new StalledSocket();
    const conn = new TimeoutConn(socket, { clock }); // no per-write timeout
    conn.setWriteDeadline(200); // due at 1200
    clock.advance(150);
    const write = trackPromise(conn.write(bytes("late")));
    await settle();
    clock.advance(49);
    await settle();
    assert.equal(write.outcome(), undefined);
    clock.advance(1);
    await settle();
    assert.match(String(write.outcome()), /Write deadline exceeded/);
  });

  test("TimeoutConn without deadlines sets no timers on its clock", async () => {
    const clock = new ManualClock();
    const socket = new StalledSocket();
    const conn = new TimeoutConn(socket, { clock });
    const read = trackPromise(conn.read());
    const write = trackPromise(conn.write(bytes("x")));
    await settle();
    assert.equal(clock.pendingTimers, 0);
    clock.advance(1_000_000);
    await settle();
    assert.equal(read.outcome(), undefined);
    assert.equal(write.outcome(), undefined);
    await conn.close();
    await read.done;
    assert.ok(read.outcome() instanceof TransportError);
  });
});
