import { timingSafeEqual } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import * as tls from "node:tls";
import {
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  decodeMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeMessage,
  type MessageKind,
  type MessageMap,
  type PeerInfo,
  type RaftHandler,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type SendOptions,
  type SnapshotRecoveryRequest,
  type SnapshotRecoveryResponse,
  type SnapshotRequest,
  type SnapshotResponse,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
  type Transporter,
  TransportError,
  type TransportSender,
  WireError,
} from "@tsraft/core";
import {
  CODE_HELLO,
  CODE_HELLO_ACCEPT,
  CODE_HELLO_REJECT,
  codeKind,
  decodeHello,
  decodeText,
  encodeFrame,
  encodeHello,
  encodeText,
  FLAG_ERROR,
  type Frame,
  FrameDecoder,
  kindCode,
  MAX_HELLO_BYTES,
  PROTOCOL,
} from "./_frame.ts";
import { type SocketLike, TimeoutConn } from "./timeout_conn.ts";
import { Deadlines, type Expiring } from "./_deadlines.ts";
import { connectNative, listenNative, type NativeNet, nativeNet } from "./_native_socket.ts";

/** TLS material of a {@link TcpTransporter}, as PEM strings. */
export interface TcpTlsOptions {
  /** Private key of this node's certificate (required to listen). */
  key?: string;
  /** This node's certificate chain (required to listen). */
  cert?: string;
  /** Certificate authorities trusted when connecting to peers (e.g. a self-signed cert). */
  ca?: string;
  /**
   * Name checked against the peer's certificate instead of the host of its connection
   * string.
   */
  serverName?: string;
}

/** Options of {@link TcpTransporter}; every one has a default. */
export interface TcpTransporterOptions {
  /**
   * Time a request (connecting included) may take before it rejects with `TransportError`.
   * Also bounds the handshake and each write.
   * @default {2000}
   */
  timeoutMs?: number;
  /**
   * Time a snapshot chunk (`sendSnapshotRecoveryRequest`) may take; chunks are large.
   * @default {30000}
   */
  snapshotTimeoutMs?: number;
  /**
   * Largest frame payload sent or accepted; a peer sending more is disconnected.
   * @default {DEFAULT_MAX_MESSAGE_BYTES} (64 MiB)
   */
  maxFrameBytes?: number;
  /**
   * Cluster this node belongs to; connections between different clusters are refused.
   * @default {"tsraft"}
   */
  clusterId?: string;
  /**
   * Shared secret every peer must present; `undefined` accepts peers without one. It is
   * sent in clear text unless `tls` is set.
   */
  token?: string;
  /** Enables TLS for listening and connecting. */
  tls?: TcpTlsOptions;
  /**
   * Whether sockets use the runtime's own TCP API (`Deno.connect`/`Deno.listen`) instead
   * of `node:net`. The wire protocol is the same either way; on Deno the native path
   * makes fewer syscalls and runs less JavaScript per message (Deno's `node:net` is an
   * emulation). `true` fails where that API is missing or with `tls`; `false` forces
   * `node:net`.
   * @default {true on Deno without `tls`, otherwise false}
   */
  native?: boolean;
  /**
   * First delay before reconnecting after a failed connection attempt; it doubles with
   * each further failure.
   * @default {50}
   */
  minReconnectDelayMs?: number;
  /**
   * Longest delay between connection attempts.
   * @default {2000}
   */
  maxReconnectDelayMs?: number;
  /**
   * Requests handled concurrently per incoming connection before reading pauses.
   * @default {256}
   */
  maxInFlightPerConnection?: number;
  /**
   * Receives one line per noteworthy event (refused or dropped connections).
   * @default {a function writing to console.warn}
   */
  logger?: (message: string) => void;
}

/** Where to listen. */
export interface TcpListenOptions {
  /**
   * Interface to bind.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * Port to bind; `0` picks a free one.
   * @default {0}
   */
  port?: number;
}

/** The address a {@link TcpTransporter} listens on. */
export interface TcpAddress {
  /** Bound interface. */
  hostname: string;
  /** Bound port. */
  port: number;
}

type RequestKind =
  | "appendEntriesRequest"
  | "requestVoteRequest"
  | "snapshotRequest"
  | "snapshotRecoveryRequest"
  | "timeoutNowRequest";

const ROUTES = {
  appendEntriesRequest: { method: "appendEntries", response: "appendEntriesResponse" },
  requestVoteRequest: { method: "requestVote", response: "requestVoteResponse" },
  snapshotRequest: { method: "requestSnapshot", response: "snapshotResponse" },
  snapshotRecoveryRequest: {
    method: "snapshotRecoveryRequest",
    response: "snapshotRecoveryResponse",
  },
  timeoutNowRequest: { method: "timeoutNow", response: "timeoutNowResponse" },
} as const satisfies Record<RequestKind, { method: keyof RaftHandler; response: MessageKind }>;

type ResponseOf<K extends RequestKind> = MessageMap[(typeof ROUTES)[K]["response"]];

function isRequestKind(kind: MessageKind): kind is RequestKind {
  return Object.hasOwn(ROUTES, kind);
}

interface Settings {
  timeoutMs: number;
  snapshotTimeoutMs: number;
  maxFrameBytes: number;
  clusterId: string;
  token: string;
  tls: TcpTlsOptions | undefined;
  native: NativeNet | undefined;
  minReconnectDelayMs: number;
  maxReconnectDelayMs: number;
  maxInFlightPerConnection: number;
  logger: (message: string) => void;
}

function defaultLogger(message: string): void {
  console.warn(`[tsraft tcp] ${message}`);
}

function positive(name: string, value: number, integer = false): number {
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? "integer" : "number"}`);
  }
  return value;
}

/**
 * The Raft RPCs over TCP (optionally TLS) with `node:net`, so it runs on Deno, Bun and
 * Node; on Deno, plain TCP goes through `Deno.connect`/`Deno.listen` instead, which costs
 * less per message (see the `native` option). Each peer gets one persistent connection on
 * which many requests are in flight at once: frames carry a request id (see `_frame.ts` for the layout), payloads are encoded
 * with the core wire codec.
 *
 * A connection opens with a handshake naming the cluster id and token; a peer of another
 * cluster or without the right token is refused and the send rejects with a
 * `TransportError` saying why. A malformed or oversized frame closes only the connection
 * it came on. Failed connection attempts back off exponentially; meanwhile sends to that
 * peer reject at once.
 *
 * @example
 * ```ts
 * import { TcpTransporter } from "@tsraft/transport-tcp";
 * import type { RaftHandler } from "@tsraft/core";
 *
 * const handler = {
 *   name: "b",
 *   appendEntries: (req) =>
 *     Promise.resolve({
 *       term: req.term,
 *       index: req.prevLogIndex + req.entries.length,
 *       commitIndex: req.commitIndex,
 *       success: true,
 *       conflictTerm: 0,
 *       heartbeatSeq: req.heartbeatSeq,
 *     }),
 * } as RaftHandler;
 * const server = new TcpTransporter({ clusterId: "demo" });
 * const { hostname, port } = await server.listen(handler, { port: 0 });
 *
 * const client = new TcpTransporter({ clusterId: "demo" });
 * const response = await client.sendAppendEntriesRequest(
 *   { name: "a" },
 *   { name: "b", connectionString: `${hostname}:${port}` },
 *   { term: 1, prevLogIndex: 0, prevLogTerm: 0, commitIndex: 0, leaderName: "a", entries: [], heartbeatSeq: 1 },
 * );
 * if (!response.success) throw new Error("rejected");
 * await client.close();
 * await server.close();
 * ```
 */
export class TcpTransporter implements Transporter {
  #settings: Settings;
  #channels = new Map<string, PeerChannel>();
  #listener: { close(): Promise<void> } | undefined;
  #serverConns = new Set<TimeoutConn>();
  #closed = false;

  /**
   * Creates a transporter; it connects lazily, on the first send to each peer.
   * @param options timeouts, limits, cluster id, token and TLS
   * @throws {RangeError} when a numeric option is not positive
   * @throws {TypeError} when `tls` lacks `key`/`cert` pairs, `clusterId` is empty, or
   * `native` is `true` with `tls` or on a runtime without a native TCP API
   */
  constructor(options: TcpTransporterOptions = {}) {
    const {
      timeoutMs = 2000,
      snapshotTimeoutMs = 30_000,
      maxFrameBytes = DEFAULT_MAX_MESSAGE_BYTES,
      clusterId = "tsraft",
      token = "",
      tls,
      native,
      minReconnectDelayMs = 50,
      maxReconnectDelayMs = 2000,
      maxInFlightPerConnection = 256,
      logger = defaultLogger,
    } = options;
    if (typeof clusterId !== "string" || clusterId === "") {
      throw new TypeError("clusterId must be a non-empty string");
    }
    if (typeof token !== "string") throw new TypeError("token must be a string");
    if (tls !== undefined && (tls.key === undefined) !== (tls.cert === undefined)) {
      throw new TypeError("tls.key and tls.cert must be given together");
    }
    const runtimeNet = nativeNet();
    if (native === true && tls !== undefined) {
      throw new TypeError("native sockets do not support tls; leave native unset");
    }
    if (native === true && runtimeNet === undefined) {
      throw new TypeError("native sockets need Deno.connect and Deno.listen");
    }
    this.#settings = {
      timeoutMs: positive("timeoutMs", timeoutMs),
      snapshotTimeoutMs: positive("snapshotTimeoutMs", snapshotTimeoutMs),
      maxFrameBytes: positive("maxFrameBytes", maxFrameBytes, true),
      clusterId,
      token,
      tls,
      native: native === false || tls !== undefined ? undefined : runtimeNet,
      minReconnectDelayMs: positive("minReconnectDelayMs", minReconnectDelayMs),
      maxReconnectDelayMs: Math.max(
        minReconnectDelayMs,
        positive("maxReconnectDelayMs", maxReconnectDelayMs),
      ),
      maxInFlightPerConnection: positive(
        "maxInFlightPerConnection",
        maxInFlightPerConnection,
        true,
      ),
      logger,
    };
  }

  /**
   * Sends RequestVote.
   * @param sender the sending server
   * @param peer the receiving peer; `connectionString` is `"host:port"`
   * @param req the request
   * @param options abort signal
   * @returns the peer's response
   * @throws {TransportError} when the peer is unreachable, refuses the handshake, fails
   * to handle the request, answers garbage, or does not answer within `timeoutMs`
   */
  sendVoteRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: RequestVoteRequest,
    options?: SendOptions,
  ): Promise<RequestVoteResponse> {
    return this.#send(sender, peer, "requestVoteRequest", req, options);
  }

  /**
   * Sends AppendEntries.
   * @param sender the sending server
   * @param peer the receiving peer; `connectionString` is `"host:port"`
   * @param req the request
   * @param options abort signal
   * @returns the peer's response
   * @throws {TransportError} see {@link TcpTransporter.sendVoteRequest}
   */
  sendAppendEntriesRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: AppendEntriesRequest,
    options?: SendOptions,
  ): Promise<AppendEntriesResponse> {
    return this.#send(sender, peer, "appendEntriesRequest", req, options);
  }

  /**
   * Sends a snapshot announcement.
   * @param sender the sending server
   * @param peer the receiving peer; `connectionString` is `"host:port"`
   * @param req the request
   * @param options abort signal
   * @returns the peer's response
   * @throws {TransportError} see {@link TcpTransporter.sendVoteRequest}
   */
  sendSnapshotRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRequest,
    options?: SendOptions,
  ): Promise<SnapshotResponse> {
    return this.#send(sender, peer, "snapshotRequest", req, options);
  }

  /**
   * Sends one snapshot chunk; it may take `snapshotTimeoutMs`.
   * @param sender the sending server
   * @param peer the receiving peer; `connectionString` is `"host:port"`
   * @param req the request
   * @param options abort signal
   * @returns the peer's response
   * @throws {TransportError} see {@link TcpTransporter.sendVoteRequest}
   */
  sendSnapshotRecoveryRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRecoveryRequest,
    options?: SendOptions,
  ): Promise<SnapshotRecoveryResponse> {
    return this.#send(sender, peer, "snapshotRecoveryRequest", req, options);
  }

  /**
   * Sends TimeoutNow.
   * @param sender the sending server
   * @param peer the receiving peer; `connectionString` is `"host:port"`
   * @param req the request
   * @param options abort signal
   * @returns the peer's response
   * @throws {TransportError} see {@link TcpTransporter.sendVoteRequest}
   */
  sendTimeoutNow(
    sender: TransportSender,
    peer: PeerInfo,
    req: TimeoutNowRequest,
    options?: SendOptions,
  ): Promise<TimeoutNowResponse> {
    return this.#send(sender, peer, "timeoutNowRequest", req, options);
  }

  /**
   * Accepts connections and delivers their requests to `handler`, several at once.
   * @param handler the receiving server
   * @param options interface and port (`0` for any free port)
   * @returns the bound address
   * @throws {TypeError} when already listening, closed, or TLS lacks `key`/`cert`
   * @throws {Error} when the port cannot be bound (e.g. `EADDRINUSE`)
   */
  async listen(handler: RaftHandler, options: TcpListenOptions = {}): Promise<TcpAddress> {
    if (this.#closed) throw new TypeError("TcpTransporter is closed");
    if (this.#listener !== undefined) {
      throw new TypeError("TcpTransporter is already listening");
    }
    const { hostname = "127.0.0.1", port = 0 } = options;
    const { tls: tlsOptions, native, logger } = this.#settings;
    if (native !== undefined) {
      const server = listenNative(native, { hostname, port }, {
        onSocket: (socket) => this.#accept(socket, handler),
        onError: (error) => logger(`Listener error: ${describe(error)}`),
      });
      this.#listener = server;
      return { hostname: server.hostname, port: server.port };
    }
    let server: Server;
    if (tlsOptions !== undefined) {
      if (tlsOptions.key === undefined || tlsOptions.cert === undefined) {
        throw new TypeError("Listening with TLS needs tls.key and tls.cert");
      }
      server = tls.createServer({ key: tlsOptions.key, cert: tlsOptions.cert });
      server.on("secureConnection", (socket: tls.TLSSocket) => this.#accept(socket, handler));
      server.on("tlsClientError", (error: Error, socket: Socket) => {
        this.#settings.logger(
          `TLS handshake with ${describePeer(socket)} failed: ${error.message}`,
        );
      });
    } else {
      server = createServer((socket) => this.#accept(socket, handler));
    }
    this.#listener = {
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, hostname, () => {
        server.off("error", reject);
        resolve();
      });
    }).catch((error) => {
      this.#listener = undefined;
      throw error;
    });
    server.on("error", (error) => this.#settings.logger(`Listener error: ${error.message}`));
    const address = server.address();
    if (address === null || typeof address === "string") {
      throw new TypeError(`Unexpected listening address ${String(address)}`);
    }
    return { hostname: address.address, port: address.port };
  }

  /**
   * Stops listening, closes every connection and rejects every pending send with
   * `TransportError`. Sends after `close()` reject too.
   * @returns a promise that resolves when the listener is closed
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    const closing = listener?.close();
    await Promise.all([...this.#serverConns].map((conn) => conn.close()));
    await closing;
  }

  #send<K extends RequestKind>(
    _sender: TransportSender,
    peer: PeerInfo,
    kind: K,
    req: MessageMap[K],
    options: SendOptions | undefined,
  ): Promise<ResponseOf<K>> {
    if (this.#closed) return Promise.reject(new TransportError("TcpTransporter is closed"));
    let payload: Uint8Array;
    try {
      payload = encodeMessage(kind, req);
    } catch (error) {
      return Promise.reject(error);
    }
    if (payload.byteLength > this.#settings.maxFrameBytes) {
      return Promise.reject(
        new TransportError(
          `${kind} of ${payload.byteLength} bytes exceeds maxFrameBytes ${this.#settings.maxFrameBytes}`,
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
    const timeoutMs = kind === "snapshotRecoveryRequest"
      ? this.#settings.snapshotTimeoutMs
      : this.#settings.timeoutMs;
    return channel.request(kind, payload, { timeoutMs, signal: options?.signal }) as Promise<
      ResponseOf<K>
    >;
  }

  #accept(socket: SocketLike, handler: RaftHandler): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new TimeoutConn(socket, {
      readTimeoutMs: 0,
      writeTimeoutMs: this.#settings.timeoutMs,
    });
    this.#serverConns.add(conn);
    socket.once("close", () => this.#serverConns.delete(conn));
    serveConnection(conn, handler, this.#settings).catch((error: unknown) => {
      // Reaching here means a bug, not a bad peer: serveConnection handles those.
      this.#settings.logger(`Connection from ${describeAddr(conn)} failed: ${describe(error)}`);
      conn.close();
    });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeAddr(conn: TimeoutConn): string {
  const addr = conn.remoteAddr;
  return addr === null ? "unknown peer" : `${addr.hostname}:${addr.port}`;
}

function describePeer(socket: Socket): string {
  return `${socket.remoteAddress ?? "unknown"}:${socket.remotePort ?? "?"}`;
}

/**
 * Parses `"host:port"` or `"[ipv6]:port"`.
 * @returns the host and port, or `undefined` when malformed
 */
function parseConnectionString(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\s/]+)):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

function tokensEqual(expected: string, actual: string): boolean {
  const a = new TextEncoder().encode(expected);
  const b = new TextEncoder().encode(actual);
  // Compare equal-length buffers so the time taken does not reveal a matching prefix.
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

function checkHello(frame: Frame, settings: Settings): string | undefined {
  if (frame.code !== CODE_HELLO) {
    throw new WireError(`Expected a handshake, got code ${frame.code}`);
  }
  const hello = decodeHello(frame.payload);
  if (hello.protocol !== PROTOCOL) {
    return `protocol ${JSON.stringify(hello.protocol)} is not ${PROTOCOL}`;
  }
  if (hello.clusterId !== settings.clusterId) {
    return `cluster id ${JSON.stringify(hello.clusterId)} does not match ${
      JSON.stringify(settings.clusterId)
    }`;
  }
  if (settings.token !== "" && !tokensEqual(settings.token, hello.token)) {
    return hello.token === "" ? "missing token" : "wrong token";
  }
  return undefined;
}

async function readFrames(conn: TimeoutConn, decoder: FrameDecoder): Promise<Frame[] | null> {
  for (;;) {
    const chunk = await conn.read();
    if (chunk === null) return null;
    const frames = decoder.push(chunk);
    if (frames.length > 0) return frames;
  }
}

/** Serves one incoming connection until it ends; never rejects for a misbehaving peer. */
async function serveConnection(
  conn: TimeoutConn,
  handler: RaftHandler,
  settings: Settings,
): Promise<void> {
  const peer = describeAddr(conn);
  const decoder = new FrameDecoder(MAX_HELLO_BYTES);
  let inFlight = 0;
  let wake: (() => void) | undefined;
  try {
    conn.setReadDeadline(settings.timeoutMs);
    let frames = await readFrames(conn, decoder);
    if (frames === null) return;
    const reason = checkHello(frames[0]!, settings);
    if (reason !== undefined) {
      settings.logger(`Refused connection from ${peer}: ${reason}`);
      await conn.write(encodeFrame(0, CODE_HELLO_REJECT, 0, encodeText(reason))).catch(() => {});
      return;
    }
    await conn.write(encodeFrame(0, CODE_HELLO_ACCEPT, 0, new Uint8Array()));
    conn.setReadDeadline(null);
    decoder.maxPayloadBytes = settings.maxFrameBytes;
    frames = frames.slice(1);
    for (;;) {
      for (const frame of frames) {
        const kind = codeKind(frame.code);
        if (kind === undefined || !isRequestKind(kind) || frame.flags !== 0) {
          throw new WireError(`Unexpected frame code ${frame.code} flags ${frame.flags}`);
        }
        const request = decodeMessage(kind, frame.payload, { maxBytes: settings.maxFrameBytes });
        inFlight++;
        handle(conn, handler, kind, frame.id, request).finally(() => {
          inFlight--;
          wake?.();
        });
      }
      // Backpressure: a peer pipelining faster than the handler keeps up waits here.
      while (inFlight >= settings.maxInFlightPerConnection) {
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
      const next = await readFrames(conn, decoder);
      if (next === null) return;
      frames = next;
    }
  } catch (error) {
    if (error instanceof WireError) {
      settings.logger(`Closing connection from ${peer}: ${error.message}`);
    } else if (!(error instanceof TransportError)) {
      throw error;
    } else if (/deadline/i.test(error.message)) {
      settings.logger(
        `Closing connection from ${peer}: no handshake within ${settings.timeoutMs} ms`,
      );
    }
  } finally {
    await conn.close();
  }
}

async function handle(
  conn: TimeoutConn,
  handler: RaftHandler,
  kind: RequestKind,
  id: number,
  request: unknown,
): Promise<void> {
  const route = ROUTES[kind];
  const code = kindCode(route.response);
  let frame: Uint8Array;
  try {
    const method = handler[route.method] as (req: unknown) => Promise<unknown>;
    const response = await method.call(handler, request);
    frame = encodeFrame(id, code, 0, encodeMessage(route.response, response as never));
  } catch (error) {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    frame = encodeFrame(id, code, FLAG_ERROR, encodeText(text));
  }
  // A failed write means the connection is gone; its reader notices and cleans up.
  await conn.write(frame).catch(() => {});
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
    kind: RequestKind,
    peer: string,
    options: {
      timeoutMs: number;
      resolve: (value: unknown) => void;
      reject: (error: Error) => void;
      signal: AbortSignal | undefined;
    },
  ) {
    const { timeoutMs, resolve, reject, signal } = options;
    this.deadlineMs = Date.now() + timeoutMs;
    this.kind = ROUTES[kind].response;
    this.#requestKind = kind;
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
  #address: { host: string; port: number };
  #settings: Settings;
  #current: Promise<ClientConnection> | undefined;
  #currentClient: ClientConnection | undefined;
  #nextId = 1;
  #failures = 0;
  #retryAt = 0;
  #lastError: TransportError | undefined;
  #closed = false;
  // Timeouts of all requests to this peer, connecting included, on one timer.
  #deadlines = new Deadlines<Request>();

  constructor(key: string, address: { host: string; port: number }, settings: Settings) {
    this.#key = key;
    this.#address = address;
    this.#settings = settings;
  }

  request(
    kind: RequestKind,
    payload: Uint8Array,
    options: { timeoutMs: number; signal: AbortSignal | undefined },
  ): Promise<unknown> {
    const { timeoutMs, signal } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new TransportError(`${kind} to ${this.#key} was aborted`, { cause: signal.reason }));
        return;
      }
      const request = new Request(kind, this.#key, { timeoutMs, resolve, reject, signal });
      this.#deadlines.add(timeoutMs, request);
      this.#connection().then((client) => {
        if (request.settled) return;
        const id = this.#allocateId(client);
        request.register(client, id);
        const frame = encodeFrame(id, kindCode(kind), 0, payload);
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
    const waitMs = Math.ceil(this.#retryAt - performance.now());
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
      this.#retryAt = performance.now() + delayMs;
      this.#lastError = failure;
      throw failure;
    });
    this.#current = current;
    return current;
  }

  async #open(): Promise<ClientConnection> {
    const { timeoutMs, maxFrameBytes } = this.#settings;
    const socket = await connect(this.#address, this.#settings, this.#key);
    socket.setNoDelay(true);
    const conn = new TimeoutConn(socket, { readTimeoutMs: 0, writeTimeoutMs: timeoutMs });
    const decoder = new FrameDecoder(MAX_HELLO_BYTES);
    let frames: Frame[] | null;
    try {
      const hello = encodeHello({
        protocol: PROTOCOL,
        clusterId: this.#settings.clusterId,
        token: this.#settings.token,
      });
      await conn.write(encodeFrame(0, CODE_HELLO, 0, hello));
      conn.setReadDeadline(timeoutMs);
      frames = await readFrames(conn, decoder);
      if (frames === null) {
        throw new TransportError(`${this.#key} closed the connection during the handshake`);
      }
      const reply = frames[0]!;
      if (reply.code === CODE_HELLO_REJECT) {
        throw new TransportError(
          `${this.#key} refused the connection: ${decodeText(reply.payload)}`,
        );
      }
      if (reply.code !== CODE_HELLO_ACCEPT) {
        throw new WireError(`Expected a handshake reply, got code ${reply.code}`);
      }
      conn.setReadDeadline(null);
      decoder.maxPayloadBytes = maxFrameBytes;
    } catch (error) {
      conn.close();
      if (error instanceof TransportError) throw error;
      throw new TransportError(`Handshake with ${this.#key} failed: ${describe(error)}`, {
        cause: error,
      });
    }
    const client: ClientConnection = { conn, pending: new Map() };
    if (this.#closed) {
      conn.close();
      throw this.#lastError;
    }
    this.#readResponses(client, decoder, frames.slice(1));
    return client;
  }

  async #readResponses(client: ClientConnection, decoder: FrameDecoder, first: Frame[]) {
    let reason = "closed by peer";
    try {
      let frames: Frame[] | null = first;
      while (frames !== null) {
        for (const frame of frames) this.#deliver(client, frame);
        frames = await readFrames(client.conn, decoder);
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

async function connect(
  address: { host: string; port: number },
  settings: Settings,
  key: string,
): Promise<SocketLike> {
  const { tls: tlsOptions, timeoutMs, native } = settings;
  if (native !== undefined) {
    try {
      return await connectNative(native, { hostname: address.host, port: address.port }, timeoutMs);
    } catch (error) {
      throw new TransportError(`Cannot connect to ${key}: ${describe(error)}`, { cause: error });
    }
  }
  return await new Promise((resolve, reject) => {
    const { host, port } = address;
    let socket: Socket;
    const readyEvent = tlsOptions === undefined ? "connect" : "secureConnect";
    if (tlsOptions === undefined) {
      socket = createConnection({ host, port });
    } else {
      const options: tls.ConnectionOptions = { host, port };
      if (tlsOptions.ca !== undefined) options.ca = tlsOptions.ca;
      if (tlsOptions.key !== undefined) options.key = tlsOptions.key;
      if (tlsOptions.cert !== undefined) options.cert = tlsOptions.cert;
      // SNI must not be an IP address; certificate checks still use the host.
      const serverName = tlsOptions.serverName ?? (/^[\d.]+$|:/.test(host) ? undefined : host);
      if (serverName !== undefined) options.servername = serverName;
      socket = tls.connect(options);
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TransportError(`Cannot connect to ${key}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new TransportError(`Cannot connect to ${key}: ${error.message}`, { cause: error }));
    };
    socket.once("error", onError);
  });
}
