import {
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type Clock,
  DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_RECONNECT_DELAY_MS,
  DEFAULT_MIN_RECONNECT_DELAY_MS,
  DEFAULT_RPC_TIMEOUT_MS,
  DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS,
  type PeerInfo,
  type RaftHandler,
  type RequestVoteRequest,
  type RequestVoteResponse,
  RPCS,
  type SendOptions,
  type SnapshotRecoveryRequest,
  type SnapshotRecoveryResponse,
  type SnapshotRequest,
  type SnapshotResponse,
  systemClock,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
  type Transporter,
  type TransportSender,
} from "@tsraft/core";
import { TcpClient } from "./_client.ts";
import { nativeNet } from "./_native_socket.ts";
import { TcpServer } from "./_server.ts";
import type { Settings } from "./_settings.ts";
import type { TcpTlsOptions } from "./_stream.ts";

export type { TcpTlsOptions } from "./_stream.ts";

/** Options of {@link TcpTransporter}; every one has a default. */
export interface TcpTransporterOptions {
  /**
   * Time a request (connecting included) may take before it rejects with `TransportError`.
   * Also bounds the handshake and each write.
   * @default {DEFAULT_RPC_TIMEOUT_MS} (2000)
   */
  timeoutMs?: number;
  /**
   * Time a snapshot chunk (`sendSnapshotRecoveryRequest`, the RPC whose timeout class in
   * core's `RPCS` table is `"snapshot"`) may take; chunks are large.
   * @default {DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS} (30000)
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
   * @default {DEFAULT_MIN_RECONNECT_DELAY_MS} (50)
   */
  minReconnectDelayMs?: number;
  /**
   * Longest delay between connection attempts.
   * @default {DEFAULT_MAX_RECONNECT_DELAY_MS} (2000)
   */
  maxReconnectDelayMs?: number;
  /**
   * Requests handled concurrently per incoming connection before reading pauses.
   * @default {DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION} (256)
   */
  maxInFlightPerConnection?: number;
  /**
   * Receives one line per noteworthy event (refused or dropped connections).
   * @default {a function writing to console.warn}
   */
  logger?: (message: string) => void;
  /**
   * Clock of every deadline and delay of the transport: request deadlines, connect
   * timeouts, the handshake's read deadline, write deadlines (each `TimeoutConn` gets
   * it) and reconnect backoff. Pass core's `ManualClock` (from `@tsraft/core/testing`)
   * to drive them in a test.
   * @default {systemClock}
   */
  clock?: Clock;
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
  // A façade: the client side (_client.ts) sends, the server side (_server.ts) listens;
  // both share the resolved settings and frame RPCs by core's RPCS table.
  #client: TcpClient;
  #server: TcpServer;

  /**
   * Creates a transporter; it connects lazily, on the first send to each peer.
   * @param options timeouts, limits, cluster id, token and TLS
   * @throws {RangeError} when a numeric option is not positive
   * @throws {TypeError} when `tls` lacks `key`/`cert` pairs, `clusterId` is empty, or
   * `native` is `true` with `tls` or on a runtime without a native TCP API
   */
  constructor(options: TcpTransporterOptions = {}) {
    const {
      timeoutMs = DEFAULT_RPC_TIMEOUT_MS,
      snapshotTimeoutMs = DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS,
      maxFrameBytes = DEFAULT_MAX_MESSAGE_BYTES,
      clusterId = "tsraft",
      token = "",
      tls,
      native,
      minReconnectDelayMs = DEFAULT_MIN_RECONNECT_DELAY_MS,
      maxReconnectDelayMs = DEFAULT_MAX_RECONNECT_DELAY_MS,
      maxInFlightPerConnection = DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
      logger = defaultLogger,
      clock = systemClock,
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
    const settings: Settings = {
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
      clock,
    };
    this.#client = new TcpClient(settings);
    this.#server = new TcpServer(settings);
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
    return this.#client.send(RPCS.requestVoteRequest, req, {
      sender,
      peer,
      signal: options?.signal,
    });
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
    return this.#client.send(RPCS.appendEntriesRequest, req, {
      sender,
      peer,
      signal: options?.signal,
    });
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
    return this.#client.send(RPCS.snapshotRequest, req, { sender, peer, signal: options?.signal });
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
    return this.#client.send(RPCS.snapshotRecoveryRequest, req, {
      sender,
      peer,
      signal: options?.signal,
    });
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
    return this.#client.send(RPCS.timeoutNowRequest, req, {
      sender,
      peer,
      signal: options?.signal,
    });
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
    const { hostname = "127.0.0.1", port = 0 } = options;
    return await this.#server.listen(handler, { hostname, port });
  }

  /**
   * Stops listening, closes every connection and rejects every pending send with
   * `TransportError`. Sends after `close()` reject too.
   * @returns a promise that resolves when the listener is closed
   */
  async close(): Promise<void> {
    this.#client.close();
    await this.#server.close();
  }
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
