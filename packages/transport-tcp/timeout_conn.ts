import { type Clock, systemClock, type TimerHandle, TransportError } from "@tsraft/core";
import { Watchdog } from "./_deadlines.ts";

/** Address of one end of a TCP connection. */
export interface NetAddr {
  /** IP address (or host name) of this end. */
  hostname: string;
  /** TCP port of this end. */
  port: number;
}

/**
 * The parts of a `node:net` (or `node:tls`) Socket that a {@link TimeoutConn} uses; such
 * a Socket is one. On Deno the transporter passes a thinner socket over `Deno.Conn` with
 * the same surface.
 */
export interface SocketLike {
  /** Whether the socket was destroyed (locally, or after a failure). */
  readonly destroyed: boolean;
  /** IP address of the local end, `undefined` once the socket is gone. */
  readonly localAddress?: string | undefined;
  /** Port of the local end. */
  readonly localPort?: number | undefined;
  /** IP address of the remote end, `undefined` when not connected. */
  readonly remoteAddress?: string | undefined;
  /** Port of the remote end. */
  readonly remotePort?: number | undefined;
  /** Adds a listener for received bytes. */
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  /** Adds a listener for the peer ending the stream. */
  on(event: "end", listener: () => void): unknown;
  /** Adds a listener for a failure. */
  on(event: "error", listener: (error: Error) => void): unknown;
  /** Adds a listener for the socket being closed. */
  on(event: "close", listener: () => void): unknown;
  /** Adds a listener for the socket being closed, called once. */
  once(event: "close", listener: () => void): unknown;
  /** Writes `bytes`; `callback` runs once they were handed to the OS, or with the error. */
  write(bytes: Uint8Array, callback: (error?: Error | null) => void): boolean;
  /** Stops delivering received bytes. */
  pause(): unknown;
  /** Resumes delivering received bytes. */
  resume(): unknown;
  /** Whether delivering is paused. */
  isPaused(): boolean;
  /** Closes the socket at once. */
  destroy(): unknown;
  /** Turns Nagle's algorithm off (`true`) or on. */
  setNoDelay(noDelay?: boolean): unknown;
}

/**
 * A deadline: an absolute `Date`, a number of milliseconds from now, or `null` for none.
 * A `Date` is taken at its distance from `Date.now()` when it is set, and from then on
 * measured on the conn's `clock` like a number of milliseconds.
 */
export type Deadline = Date | number | null;

/** Options of {@link TimeoutConn}. */
export interface TimeoutConnOptions {
  /**
   * Time each `read()`/`write()` may take when no explicit deadline is set (goraft's
   * `NewTimeoutConn(conn, timeout)`); `0` means no limit.
   * @default {0}
   */
  timeoutMs?: number;
  /**
   * Overrides `timeoutMs` for reads (e.g. `0` on a connection that may sit idle).
   * @default {timeoutMs}
   */
  readTimeoutMs?: number;
  /**
   * Overrides `timeoutMs` for writes.
   * @default {timeoutMs}
   */
  writeTimeoutMs?: number;
  /**
   * Received bytes buffered before the socket is paused until `read()` catches up.
   * @default {1048576}
   */
  highWaterMarkBytes?: number;
  /**
   * Clock of the read and write deadlines: they are measured on it and fired by its
   * timers. Pass core's `ManualClock` (from `@tsraft/core/testing`) to drive them in a
   * test; a `TcpTransporter` passes its own `clock`.
   * @default {systemClock}
   */
  clock?: Clock;
}

/** One socket write of a batch of `write()` calls, until the socket reports it done. */
interface Flush {
  /** Time (on the conn's clock) by which the socket must have taken it; `Infinity` for none. */
  deadlineMs: number;
  byteLength: number;
  fail(error: Error): void;
}

interface PendingRead {
  resolve(chunk: Uint8Array | null): void;
  reject(error: Error): void;
  timer: TimerHandle | undefined;
}

/**
 * A `node:net` (or `node:tls`) socket with Go-style deadlines, the TypeScript form of
 * goraft's `TimeoutConn`: `read()` and `write()` return promises that reject with
 * `TransportError` once their deadline passes.
 *
 * A read that misses its deadline leaves the connection usable (bytes that arrive later
 * are kept for the next read), as in Go. A write that misses its deadline destroys the
 * connection, because half a frame may already be on the wire and cannot be taken back.
 * Deadlines run on the injected `clock` (default: core's `systemClock`).
 *
 * @example
 * ```ts
 * import { createConnection, createServer } from "node:net";
 * import { TimeoutConn } from "@tsraft/transport-tcp";
 *
 * const server = createServer((socket) => socket.pipe(socket)); // echo
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const socket = createConnection({ host: "127.0.0.1", port });
 * await new Promise((resolve) => socket.once("connect", resolve));
 *
 * const conn = new TimeoutConn(socket, { timeoutMs: 1000 });
 * await conn.write(new TextEncoder().encode("ping"));
 * const echoed = await conn.read();
 * if (echoed === null || new TextDecoder().decode(echoed) !== "ping") throw new Error("no echo");
 * await conn.close();
 * await new Promise((resolve) => server.close(resolve));
 * ```
 */
export class TimeoutConn {
  #socket: SocketLike;
  #clock: Clock;
  #readTimeoutMs: number;
  #writeTimeoutMs: number;
  #highWaterMarkBytes: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #closed = false;
  // Set by close(): some runtimes (Bun) emit "end" on a local destroy, which must not
  // read as the peer ending the stream.
  #closedLocally = false;
  #error: Error | undefined;
  #pendingRead: PendingRead | undefined;
  // Both on #clock's scale.
  #readDeadline: number | undefined;
  #writeDeadline: number | undefined;
  #flushes = new Set<Flush>();
  // One timer for the deadlines of all flushes in progress rather than one per flush.
  #writeWatchdog: Watchdog;
  #writeBatch:
    | { bytes: Uint8Array; resolve: (written: number) => void; reject: (error: Error) => void }[]
    | undefined;

  /**
   * Wraps `socket`, which from now on must only be used through this conn.
   * @param socket a connected (or connecting) `node:net`/`node:tls` socket, or anything
   * with the same {@link SocketLike} surface; the conn takes ownership of it
   * @param options default per-operation timeout, buffering and the clock of deadlines
   * @throws {RangeError} when an option is negative or not finite
   */
  constructor(socket: SocketLike, options: TimeoutConnOptions = {}) {
    const { timeoutMs = 0, highWaterMarkBytes = 1 << 20, clock = systemClock } = options;
    const { readTimeoutMs = timeoutMs, writeTimeoutMs = timeoutMs } = options;
    for (
      const [name, value] of [["timeoutMs", timeoutMs], ["readTimeoutMs", readTimeoutMs], [
        "writeTimeoutMs",
        writeTimeoutMs,
      ]] as const
    ) {
      if (!(value >= 0) || !Number.isFinite(value)) {
        throw new RangeError(`${name} must be a non-negative number, got ${value}`);
      }
    }
    if (!(highWaterMarkBytes > 0)) {
      throw new RangeError(`highWaterMarkBytes must be positive, got ${highWaterMarkBytes}`);
    }
    this.#socket = socket;
    this.#clock = clock;
    this.#writeWatchdog = new Watchdog(() => this.#checkWriteDeadlines(), clock);
    this.#readTimeoutMs = readTimeoutMs;
    this.#writeTimeoutMs = writeTimeoutMs;
    this.#highWaterMarkBytes = highWaterMarkBytes;
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("end", () => {
      this.#ended = true;
      this.#settleRead();
    });
    socket.on("error", (error: Error) => {
      this.#error ??= new TransportError(`Connection failed: ${error.message}`, { cause: error });
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#error ??= new TransportError("Connection closed");
      this.#settleRead();
      this.#writeWatchdog.stop();
      const flushes = [...this.#flushes];
      this.#flushes.clear();
      for (const flush of flushes) flush.fail(this.#error);
    });
  }

  /** The underlying socket (for options such as `setNoDelay`). */
  get socket(): SocketLike {
    return this.#socket;
  }

  /** Address of the local end, or `null` once the socket is gone. */
  get localAddr(): NetAddr | null {
    const { localAddress, localPort } = this.#socket;
    return localAddress && localPort ? { hostname: localAddress, port: localPort } : null;
  }

  /** Address of the remote end, or `null` when not connected. */
  get remoteAddr(): NetAddr | null {
    const { remoteAddress, remotePort } = this.#socket;
    return remoteAddress && remotePort ? { hostname: remoteAddress, port: remotePort } : null;
  }

  /**
   * Sets both the read and the write deadline.
   * @param deadline a `Date`, milliseconds from now, or `null` to remove the deadline
   * @throws {RangeError} when `deadline` is an invalid date or not a finite number
   */
  setDeadline(deadline: Deadline): void {
    this.setReadDeadline(deadline);
    this.setWriteDeadline(deadline);
  }

  /**
   * Sets the deadline of pending and future reads; a pending read is re-armed.
   * @param deadline a `Date`, milliseconds from now, or `null` to fall back to the
   * per-read `readTimeoutMs`
   * @throws {RangeError} when `deadline` is an invalid date or not a finite number
   */
  setReadDeadline(deadline: Deadline): void {
    this.#readDeadline = this.#toClockMs(deadline);
    const pending = this.#pendingRead;
    if (pending !== undefined) {
      this.#clearReadTimer(pending);
      pending.timer = this.#armReadTimer(pending);
    }
  }

  /**
   * Sets the deadline of future writes.
   * @param deadline a `Date`, milliseconds from now, or `null` to remove the deadline
   * @throws {RangeError} when `deadline` is an invalid date or not a finite number
   */
  setWriteDeadline(deadline: Deadline): void {
    this.#writeDeadline = this.#toClockMs(deadline);
  }

  /**
   * Reads the next chunk of bytes.
   * @returns the bytes received since the last read, or `null` once the peer has ended the
   * stream and everything was read
   * @throws {TransportError} when the deadline passes, the connection fails or was closed
   * @throws {TypeError} when another read is still pending
   */
  read(): Promise<Uint8Array | null> {
    if (this.#pendingRead !== undefined) {
      return Promise.reject(new TypeError("Another read() is still pending"));
    }
    if (this.#closedLocally) return Promise.reject(this.#error);
    if (this.#chunks.length > 0) return Promise.resolve(this.#take());
    if (this.#ended) return Promise.resolve(null);
    if (this.#closed) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const pending: PendingRead = { resolve, reject, timer: undefined };
      pending.timer = this.#armReadTimer(pending);
      this.#pendingRead = pending;
    });
  }

  /**
   * Writes all of `bytes`.
   * @param bytes data to send (not copied: do not modify it until the promise settles)
   * @returns the number of bytes written, once they were handed to the operating system
   * @throws {TransportError} when the deadline passes (the connection is then destroyed),
   * the connection fails or was closed
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed || this.#socket.destroyed) {
      return Promise.reject(this.#error ?? new TransportError("Connection closed"));
    }
    return new Promise((resolve, reject) => {
      // Writes made in one turn of the event loop go out as one socket write with one
      // deadline: pipelined frames then cost one syscall, not one each.
      if (this.#writeBatch === undefined) {
        this.#writeBatch = [];
        queueMicrotask(() => this.#flushWrites());
      }
      this.#writeBatch.push({ bytes, resolve, reject });
    });
  }

  #flushWrites(): void {
    const batch = this.#writeBatch ?? [];
    this.#writeBatch = undefined;
    if (batch.length === 0) return;
    const rejectAll = (error: Error) => {
      for (const write of batch) write.reject(error);
    };
    if (this.#closed || this.#socket.destroyed) {
      rejectAll(this.#error ?? new TransportError("Connection closed"));
      return;
    }
    let payload: Uint8Array;
    if (batch.length === 1) {
      payload = batch[0]!.bytes;
    } else {
      const total = batch.reduce((sum, write) => sum + write.bytes.byteLength, 0);
      payload = new Uint8Array(total);
      let offset = 0;
      for (const write of batch) {
        payload.set(write.bytes, offset);
        offset += write.bytes.byteLength;
      }
    }
    const deadlineMs = this.#writeDeadline ??
      (this.#writeTimeoutMs > 0 ? this.#clock.now() + this.#writeTimeoutMs : Infinity);
    const flush: Flush = { deadlineMs, byteLength: payload.byteLength, fail: rejectAll };
    this.#flushes.add(flush);
    if (deadlineMs < Infinity) this.#writeWatchdog.arm(deadlineMs);
    this.#socket.write(payload, (error) => {
      if (!this.#flushes.delete(flush)) return;
      if (error) {
        rejectAll(new TransportError(`Write failed: ${error.message}`, { cause: error }));
      } else {
        for (const write of batch) write.resolve(write.bytes.byteLength);
      }
    });
  }

  #checkWriteDeadlines(): void {
    const nowMs = this.#clock.now();
    let nextMs = Infinity;
    for (const flush of this.#flushes) {
      if (flush.deadlineMs <= nowMs) {
        const error = new TransportError(`Write deadline exceeded (${flush.byteLength} bytes)`);
        this.#error ??= error;
        this.#flushes.delete(flush);
        flush.fail(error);
        // Part of the batch may be on the wire: the stream cannot be continued.
        this.#socket.destroy();
        return;
      }
      nextMs = Math.min(nextMs, flush.deadlineMs);
    }
    if (nextMs < Infinity) this.#writeWatchdog.arm(nextMs);
  }

  /**
   * Closes the connection at once; pending reads and writes reject with `TransportError`.
   * @returns a promise that resolves when the socket is closed
   */
  close(): Promise<void> {
    this.#error ??= new TransportError("Connection closed");
    this.#closedLocally = true;
    this.#settleRead();
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.once("close", () => resolve());
      this.#socket.destroy();
    });
  }

  #onData(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
    // Backpressure: stop reading from the kernel until the consumer catches up.
    if (this.#buffered >= this.#highWaterMarkBytes) this.#socket.pause();
    this.#settleRead();
  }

  #take(): Uint8Array {
    const chunk = this.#chunks.length === 1 ? this.#chunks[0]! : concatAll(this.#chunks);
    this.#chunks = [];
    this.#buffered = 0;
    if (this.#socket.isPaused()) this.#socket.resume();
    return chunk;
  }

  #settleRead(): void {
    const pending = this.#pendingRead;
    if (pending === undefined) return;
    if (this.#closedLocally) {
      this.#finishRead(pending);
      pending.reject(this.#error!);
    } else if (this.#chunks.length > 0) {
      this.#finishRead(pending);
      pending.resolve(this.#take());
    } else if (this.#ended) {
      this.#finishRead(pending);
      pending.resolve(null);
    } else if (this.#closed) {
      this.#finishRead(pending);
      pending.reject(this.#error!);
    }
  }

  #finishRead(pending: PendingRead): void {
    this.#clearReadTimer(pending);
    this.#pendingRead = undefined;
  }

  #clearReadTimer(pending: PendingRead): void {
    if (pending.timer !== undefined) this.#clock.clearTimeout(pending.timer);
    pending.timer = undefined;
  }

  #armReadTimer(pending: PendingRead): TimerHandle | undefined {
    const clock = this.#clock;
    const deadline = this.#readDeadline ??
      (this.#readTimeoutMs > 0 ? clock.now() + this.#readTimeoutMs : undefined);
    if (deadline === undefined) return undefined;
    return clock.setTimeout(() => {
      if (this.#pendingRead !== pending) return;
      this.#pendingRead = undefined;
      pending.timer = undefined;
      pending.reject(new TransportError("Read deadline exceeded"));
    }, Math.max(0, deadline - clock.now()));
  }

  /** @returns `deadline` as a time on the conn's clock, or `undefined` for none */
  #toClockMs(deadline: Deadline): number | undefined {
    if (deadline === null) return undefined;
    if (deadline instanceof Date) {
      const ms = deadline.getTime();
      if (Number.isNaN(ms)) throw new RangeError("Deadline is an invalid Date");
      // A Date is on the wall clock, which the injected clock need not share (the
      // system clock is monotonic, a manual one is anywhere): keep its distance from now.
      return this.#clock.now() + (ms - Date.now());
    }
    if (typeof deadline !== "number" || !Number.isFinite(deadline)) {
      throw new RangeError(`Deadline must be a Date, a finite number of ms or null`);
    }
    return this.#clock.now() + deadline;
  }
}

function concatAll(chunks: Uint8Array[]): Uint8Array {
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
