/**
 * The client side of the TCP transport: one {@link PeerChannel} per peer keeps one
 * connection at a time (dialed lazily, reconnecting with exponential backoff) on which
 * many requests are in flight at once, matched to their responses by frame id. Every
 * request has a deadline by its RPC's timeout class; deadlines and backoff run on the
 * injected clock.
 * @module
 */
import {
  decodeMessage,
  encodeMessage,
  type MessageKind,
  type MessageMap,
  type PeerInfo,
  type RequestKind,
  type ResponseKind,
  type Rpc,
  TransportError,
  type TransportSender,
  WireError,
} from "@tsraft/core";
import { Deadlines, type Expiring } from "./_deadlines.ts";
import { codeKind, decodeText, encodeFrame, FLAG_ERROR, type Frame, kindCode } from "./_frame.ts";
import { openClient, type Opened, readFrames } from "./_handshake.ts";
import type { Settings } from "./_settings.ts";
import { describe, dial, type DialAddress, parseConnectionString } from "./_stream.ts";
import { TimeoutConn } from "./timeout_conn.ts";

/** The sending half of a `TcpTransporter`: a channel per peer connection string. */
export class TcpClient {
  #settings: Settings;
  #channels = new Map<string, PeerChannel>();
  #closed = false;

  /** @param settings the transporter's resolved options */
  constructor(settings: Settings) {
    this.#settings = settings;
  }

  /**
   * Sends one request to `to.peer` and resolves with its response. `to.sender` is not
   * sent: the peer knows it by its connection.
   * @throws {TypeError|RangeError} when `request` does not encode (the caller's bug)
   * @throws {TransportError} when closed, the request is over `maxFrameBytes`, the
   * connection string is malformed, or the peer cannot answer in time
   */
  send<K extends RequestKind>(
    rpc: Rpc<K>,
    request: MessageMap[K],
    to: { sender: TransportSender; peer: PeerInfo; signal: AbortSignal | undefined },
  ): Promise<MessageMap[ResponseKind<K>]> {
    const { peer, signal } = to;
    if (this.#closed) return Promise.reject(new TransportError("TcpTransporter is closed"));
    const { maxFrameBytes, timeoutMs, snapshotTimeoutMs } = this.#settings;
    let payload: Uint8Array;
    try {
      payload = encodeMessage(rpc.request, request);
    } catch (error) {
      return Promise.reject(error);
    }
    if (payload.byteLength > maxFrameBytes) {
      return Promise.reject(
        new TransportError(
          `${rpc.request} of ${payload.byteLength} bytes exceeds maxFrameBytes ${maxFrameBytes}`,
        ),
      );
    }
    const key = peer.connectionString;
    let channel = this.#channels.get(key);
    if (channel === undefined) {
      const address = parseConnectionString(key);
      if (address === undefined) {
        return Promise.reject(
          new TransportError(
            `Invalid connection string ${JSON.stringify(key)}: expected host:port`,
          ),
        );
      }
      channel = new PeerChannel(key, address, this.#settings);
      this.#channels.set(key, channel);
    }
    const requestTimeoutMs = rpc.timeout === "snapshot" ? snapshotTimeoutMs : timeoutMs;
    return channel.request(rpc, payload, { timeoutMs: requestTimeoutMs, signal }) as Promise<
      MessageMap[ResponseKind<K>]
    >;
  }

  /** Closes every connection and rejects every pending and future send. */
  close(): void {
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
  }
}

interface Pending {
  kind: MessageKind;
  finish(error: Error | undefined, value?: unknown): void;
}

/** The client side of one connection; `pending` holds its requests awaiting a response. */
interface ClientConnection {
  conn: TimeoutConn;
  pending: Map<number, Pending>;
}

/** One request from sending until it settles: answered, failed, aborted or timed out. */
class Request implements Pending, Expiring {
  readonly deadlineMs: number;
  /** The kind of response expected. */
  readonly kind: MessageKind;
  settled = false;
  #requestKind: RequestKind;
  #peer: string;
  #timeoutMs: number;
  #resolve: (value: unknown) => void;
  #reject: (error: Error) => void;
  #signal: AbortSignal | undefined;
  #registered: { client: ClientConnection; id: number } | undefined;

  constructor(
    rpc: Rpc,
    peer: string,
    options: {
      nowMs: number;
      timeoutMs: number;
      resolve: (value: unknown) => void;
      reject: (error: Error) => void;
      signal: AbortSignal | undefined;
    },
  ) {
    const { nowMs, timeoutMs, resolve, reject, signal } = options;
    this.deadlineMs = nowMs + timeoutMs;
    this.kind = rpc.response;
    this.#requestKind = rpc.request;
    this.#peer = peer;
    this.#timeoutMs = timeoutMs;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Records the connection and id the request was sent with, to forget it when settled. */
  register(client: ClientConnection, id: number): void {
    this.#registered = { client, id };
    client.pending.set(id, this);
  }

  finish(error: Error | undefined, value?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const registered = this.#registered;
    if (registered !== undefined) registered.client.pending.delete(registered.id);
    if (error) this.#reject(error);
    else this.#resolve(value);
  }

  expire(): void {
    this.finish(
      new TransportError(
        `${this.#requestKind} to ${this.#peer} timed out after ${this.#timeoutMs} ms`,
      ),
    );
  }

  #onAbort = (): void => {
    this.finish(
      new TransportError(`${this.#requestKind} to ${this.#peer} was aborted`, {
        cause: this.#signal?.reason,
      }),
    );
  };
}

/** All requests to one peer: one connection at a time, reconnecting with backoff. */
class PeerChannel {
  #key: string;
  #address: DialAddress;
  #settings: Settings;
  #current: Promise<ClientConnection> | undefined;
  #currentClient: ClientConnection | undefined;
  #nextId = 1;
  #failures = 0;
  #retryAtMs = 0;
  #lastError: TransportError | undefined;
  #closed = false;
  // Timeouts of all requests to this peer, connecting included, on one timer.
  #deadlines: Deadlines<Request>;

  constructor(key: string, address: DialAddress, settings: Settings) {
    this.#key = key;
    this.#address = address;
    this.#settings = settings;
    this.#deadlines = new Deadlines<Request>(settings.clock);
  }

  request(
    rpc: Rpc,
    payload: Uint8Array,
    options: { timeoutMs: number; signal: AbortSignal | undefined },
  ): Promise<unknown> {
    const { timeoutMs, signal } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(
          new TransportError(`${rpc.request} to ${this.#key} was aborted`, {
            cause: signal.reason,
          }),
        );
        return;
      }
      const nowMs = this.#settings.clock.now();
      const request = new Request(rpc, this.#key, { nowMs, timeoutMs, resolve, reject, signal });
      this.#deadlines.add(timeoutMs, request);
      this.#connection().then((client) => {
        if (request.settled) return;
        const id = this.#allocateId(client);
        request.register(client, id);
        const frame = encodeFrame(id, kindCode(rpc.request), 0, payload);
        // A failed write destroys the connection, which fails every pending request.
        client.conn.write(frame).catch(() => {});
      }, (error: Error) => request.finish(error));
    });
  }

  close(): void {
    this.#closed = true;
    this.#lastError = new TransportError("TcpTransporter is closed");
    this.#current?.then((client) => client.conn.close(), () => {});
    for (const request of this.#deadlines.drain()) request.finish(this.#lastError);
  }

  #allocateId(client: ClientConnection): number {
    let id = this.#nextId;
    while (client.pending.has(id)) id = id === 0xffff_ffff ? 1 : id + 1;
    this.#nextId = id === 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  #connection(): Promise<ClientConnection> {
    if (this.#closed) return Promise.reject(this.#lastError);
    if (this.#current !== undefined) return this.#current;
    const { clock } = this.#settings;
    const waitMs = Math.ceil(this.#retryAtMs - clock.now());
    if (waitMs > 0 && this.#lastError !== undefined) {
      return Promise.reject(
        new TransportError(`${this.#lastError.message} (next attempt in ${waitMs} ms)`, {
          cause: this.#lastError,
        }),
      );
    }
    const current = this.#open().then((client) => {
      this.#failures = 0;
      this.#currentClient = client;
      return client;
    }, (error: unknown) => {
      if (this.#current === current) this.#current = undefined;
      const failure = error instanceof TransportError
        ? error
        : new TransportError(`Cannot connect to ${this.#key}: ${describe(error)}`, {
          cause: error,
        });
      const { minReconnectDelayMs, maxReconnectDelayMs } = this.#settings;
      const delayMs = Math.min(maxReconnectDelayMs, minReconnectDelayMs * 2 ** this.#failures);
      this.#failures++;
      this.#retryAtMs = clock.now() + delayMs;
      this.#lastError = failure;
      throw failure;
    });
    this.#current = current;
    return current;
  }

  async #open(): Promise<ClientConnection> {
    const settings = this.#settings;
    const key = this.#key;
    const socket = await dial(this.#address, { ...settings, key });
    socket.setNoDelay(true);
    const conn = new TimeoutConn(socket, {
      readTimeoutMs: 0,
      writeTimeoutMs: settings.timeoutMs,
      clock: settings.clock,
    });
    const opened = await openClient(conn, { ...settings, key });
    const client: ClientConnection = { conn, pending: new Map() };
    if (this.#closed) {
      conn.close();
      throw this.#lastError;
    }
    this.#readResponses(client, opened);
    return client;
  }

  async #readResponses(client: ClientConnection, opened: Opened) {
    let reason = "closed by peer";
    try {
      let frames: Frame[] | null = opened.frames;
      while (frames !== null) {
        for (const frame of frames) this.#deliver(client, frame);
        frames = await readFrames(client.conn, opened.decoder);
      }
    } catch (error) {
      reason = describe(error);
      if (error instanceof WireError) {
        this.#settings.logger(`Closing connection to ${this.#key}: ${reason}`);
      }
    }
    // Forget this connection first so requests failing below can already reconnect.
    if (this.#currentClient === client) {
      this.#current = undefined;
      this.#currentClient = undefined;
    }
    await client.conn.close();
    const error = new TransportError(`Connection to ${this.#key} lost: ${reason}`);
    for (const pending of [...client.pending.values()]) pending.finish(error);
    client.pending.clear();
  }

  #deliver(client: ClientConnection, frame: Frame): void {
    const kind = codeKind(frame.code);
    if (kind === undefined) throw new WireError(`Unexpected frame code ${frame.code}`);
    const pending = client.pending.get(frame.id);
    // Unknown id: the request timed out or was aborted; its late answer is dropped.
    if (pending === undefined) return;
    if (kind !== pending.kind) {
      throw new WireError(`Request ${frame.id} expected ${pending.kind}, got ${kind}`);
    }
    if ((frame.flags & FLAG_ERROR) !== 0) {
      pending.finish(
        new TransportError(
          `${this.#key} failed to handle the request: ${decodeText(frame.payload)}`,
        ),
      );
      return;
    }
    const response = decodeMessage(kind, frame.payload, {
      maxBytes: this.#settings.maxFrameBytes,
    });
    pending.finish(undefined, response);
  }
}
