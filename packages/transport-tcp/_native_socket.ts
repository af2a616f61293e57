/**
 * A socket over Deno's own TCP API (`Deno.connect`/`Deno.listen`) that offers the small
 * part of the `node:net` Socket surface {@link TimeoutConn} and the transporter use.
 *
 * Why: Deno's `node:net` emulation costs about 100 µs per socket write (stream machinery
 * in JavaScript), a native `Deno.Conn.write` about 14 µs; on a Raft leader that difference
 * was more CPU than the whole consensus core. Everything above the socket (framing,
 * handshake, pipelining, deadlines) stays shared, so there is one protocol implementation.
 *
 * The Deno API is reached through `globalThis` with structural types, so this file type
 * checks, loads and is simply unused on Bun and Node.
 * @module
 */
import type { Clock } from "@tsraft/core";
import type { SocketLike } from "./timeout_conn.ts";

/** Address of one end of a native connection (a `Deno.NetAddr` is one). */
interface NativeAddr {
  hostname: string;
  port: number;
}

/** The parts of `Deno.TcpConn` used here. */
export interface NativeConn {
  readonly localAddr: NativeAddr;
  readonly remoteAddr: NativeAddr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** The parts of `Deno.TcpListener` used here. */
interface NativeListener {
  readonly addr: NativeAddr;
  accept(): Promise<NativeConn>;
  close(): void;
}

/** The parts of the `Deno` namespace used here. */
export interface NativeNet {
  connect(options: {
    hostname: string;
    port: number;
    transport: "tcp";
    signal?: AbortSignal;
  }): Promise<NativeConn>;
  listen(options: { hostname: string; port: number; transport: "tcp" }): NativeListener;
}

/** @returns Deno's TCP API when running on Deno, else `undefined` */
export function nativeNet(): NativeNet | undefined {
  const deno = (globalThis as { Deno?: Partial<NativeNet> }).Deno;
  return typeof deno?.connect === "function" && typeof deno.listen === "function"
    ? deno as NativeNet
    : undefined;
}

// Listeners take what their event carries (bytes, an error or nothing), as in node:net.
// deno-lint-ignore no-explicit-any
type Listener = (arg?: any) => void;
type SocketEvent = "data" | "end" | "error" | "close";

// Reads start small (most Raft messages are small) and grow while they fill the buffer,
// so a snapshot chunk is not read 16 KiB at a time.
const MIN_READ_BYTES = 16 * 1024;
const MAX_READ_BYTES = 256 * 1024;

/**
 * A `Deno.Conn` behind the `node:net` Socket subset {@link SocketLike}: "data", "end",
 * "error" and "close" events, `write(bytes, callback)`, `pause()`/`resume()`,
 * `destroy()`, `setNoDelay()` and the address properties.
 *
 * Semantics follow `node:net` with `allowHalfOpen: false`: after the peer ends the stream
 * the socket finishes its pending writes and closes. Writes made while one is in progress
 * are queued and then sent together as one `Deno.Conn.write` loop (partial writes are
 * continued), so a busy connection pays one syscall per batch.
 */
export class NativeSocket implements SocketLike {
  #conn: NativeConn;
  #listeners: Record<SocketEvent, Listener[]> = { data: [], end: [], error: [], close: [] };
  #local: NativeAddr;
  #remote: NativeAddr;
  #reading = false;
  #paused = false;
  #wakeReader: (() => void) | undefined;
  #ended = false;
  #destroyed = false;
  #writing = false;
  #queue: Uint8Array[] = [];
  #callbacks: ((error?: Error | null) => void)[] = [];

  /** @param conn a connected `Deno.TcpConn`; the socket takes ownership of it */
  constructor(conn: NativeConn) {
    this.#conn = conn;
    this.#local = conn.localAddr;
    this.#remote = conn.remoteAddr;
  }

  /** Whether {@link NativeSocket.destroy} was called or the connection failed. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** IP address of the local end, `undefined` once destroyed (as in `node:net`). */
  get localAddress(): string | undefined {
    return this.#destroyed ? undefined : this.#local.hostname;
  }

  /** Port of the local end, `undefined` once destroyed. */
  get localPort(): number | undefined {
    return this.#destroyed ? undefined : this.#local.port;
  }

  /** IP address of the remote end, `undefined` once destroyed. */
  get remoteAddress(): string | undefined {
    return this.#destroyed ? undefined : this.#remote.hostname;
  }

  /** Port of the remote end, `undefined` once destroyed. */
  get remotePort(): number | undefined {
    return this.#destroyed ? undefined : this.#remote.port;
  }

  /** Adds a listener; the first "data" listener starts reading, as in `node:net`. */
  on(event: SocketEvent, listener: Listener): this {
    this.#listeners[event].push(listener);
    if (event === "data" && !this.#reading) {
      this.#reading = true;
      this.#readLoop();
    }
    return this;
  }

  /** Adds a listener called at most once. */
  once(event: SocketEvent, listener: Listener): this {
    const wrapper: Listener = (arg) => {
      this.off(event, wrapper);
      listener(arg);
    };
    return this.on(event, wrapper);
  }

  /** Removes a listener. */
  off(event: SocketEvent, listener: Listener): this {
    const list = this.#listeners[event];
    const at = list.indexOf(listener);
    if (at >= 0) list.splice(at, 1);
    return this;
  }

  /** Stops reading from the kernel until {@link NativeSocket.resume}. */
  pause(): this {
    this.#paused = true;
    return this;
  }

  /** Resumes reading. */
  resume(): this {
    this.#paused = false;
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
    return this;
  }

  /** @returns whether reading is paused */
  isPaused(): boolean {
    return this.#paused;
  }

  /** Disables Nagle's algorithm (the default of `Deno.connect` differs by version). */
  setNoDelay(noDelay = true): this {
    this.#conn.setNoDelay?.(noDelay);
    return this;
  }

  /**
   * Queues `bytes`; `callback` runs once they were handed to the kernel, or with the error.
   * @returns `true`, or `false` when the socket is destroyed (the callback then gets an error)
   */
  write(bytes: Uint8Array, callback: (error?: Error | null) => void): boolean {
    if (this.#destroyed) {
      queueMicrotask(() => callback(new Error("Socket is destroyed")));
      return false;
    }
    this.#queue.push(bytes);
    this.#callbacks.push(callback);
    if (!this.#writing) this.#writeLoop();
    return true;
  }

  /** Closes the connection at once; queued writes fail and "close" follows. */
  destroy(): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime: nothing left to release.
    }
    const callbacks = this.#callbacks;
    this.#queue = [];
    this.#callbacks = [];
    this.resume();
    queueMicrotask(() => {
      const error = new Error("Socket is destroyed");
      for (const callback of callbacks) callback(error);
      this.#emit("close");
    });
    return this;
  }

  #emit(event: SocketEvent, arg?: unknown): void {
    const list = this.#listeners[event];
    if (list.length === 1) list[0]!(arg);
    else for (const listener of [...list]) listener(arg);
  }

  async #readLoop(): Promise<void> {
    let buffer = new Uint8Array(MIN_READ_BYTES);
    try {
      for (;;) {
        if (this.#paused) await new Promise<void>((resolve) => this.#wakeReader = resolve);
        if (this.#destroyed) return;
        const count = await this.#conn.read(buffer);
        if (this.#destroyed) return;
        if (count === null) break;
        // Copied out because the buffer is reused; the copy is cheap next to the syscall.
        this.#emit("data", buffer.slice(0, count));
        if (count === buffer.byteLength && buffer.byteLength < MAX_READ_BYTES) {
          buffer = new Uint8Array(buffer.byteLength * 2);
        }
      }
    } catch (error) {
      if (this.#destroyed) return;
      this.#emit("error", error);
      this.destroy();
      return;
    }
    this.#ended = true;
    this.#emit("end");
    if (!this.#writing) this.destroy();
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0 && !this.#destroyed) {
      const chunks = this.#queue;
      const callbacks = this.#callbacks;
      this.#queue = [];
      this.#callbacks = [];
      const payload = chunks.length === 1 ? chunks[0]! : concat(chunks);
      let failure: Error | undefined;
      try {
        for (let offset = 0; offset < payload.byteLength;) {
          offset += await this.#conn.write(payload.subarray(offset));
        }
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      for (const callback of callbacks) callback(failure);
      if (failure !== undefined) {
        if (!this.#destroyed) this.#emit("error", failure);
        this.destroy();
      }
    }
    this.#writing = false;
    // Half-open connections are not kept (node:net's allowHalfOpen: false).
    if (this.#ended) this.destroy();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const chunk of chunks) total += chunk.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** A listening native socket. */
export interface NativeServer {
  /** Bound interface. */
  hostname: string;
  /** Bound port. */
  port: number;
  /** Stops accepting; resolves once the accept loop has ended. */
  close(): Promise<void>;
}

/**
 * Listens with `Deno.listen` and hands each accepted connection to `onSocket`.
 * @throws {Error} when the address cannot be bound (e.g. `AddrInUse`)
 */
export function listenNative(
  net: NativeNet,
  address: { hostname: string; port: number },
  options: { onSocket: (socket: NativeSocket) => void; onError: (error: unknown) => void },
): NativeServer {
  const listener = net.listen({ ...address, transport: "tcp" });
  let closed = false;
  const accepting = (async () => {
    while (!closed) {
      let conn: NativeConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed) return;
        options.onError(error);
        // e.g. out of file descriptors: retry later rather than spin. On real time even
        // when the transporter has an injected clock: a manual clock that a test never
        // advances would otherwise stop the listener for good.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (closed) {
        conn.close();
        return;
      }
      options.onSocket(new NativeSocket(conn));
    }
  })();
  return {
    hostname: listener.addr.hostname,
    port: listener.addr.port,
    close() {
      if (!closed) {
        closed = true;
        listener.close();
      }
      return accepting;
    },
  };
}

/**
 * Connects with `Deno.connect`, giving up after `timeoutMs` on `clock`.
 * @throws {Error} when the connection fails; a timeout rejects with a message saying so
 */
export async function connectNative(
  net: NativeNet,
  address: { hostname: string; port: number },
  options: { timeoutMs: number; clock: Clock },
): Promise<NativeSocket> {
  const { timeoutMs, clock } = options;
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(), timeoutMs);
  try {
    const conn = await net.connect({ ...address, transport: "tcp", signal: controller.signal });
    return new NativeSocket(conn);
  } catch (error) {
    if (controller.signal.aborted) throw new Error(`timed out after ${timeoutMs} ms`);
    throw error;
  } finally {
    clock.clearTimeout(timer);
  }
}
