import {
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type Clock,
  decodeMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS,
  encodeMessage,
  InvalidMessageError,
  type MessageMap,
  type PeerInfo,
  type RaftHandler,
  REQUEST_KINDS,
  type RequestKind,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type ResponseKind,
  type Rpc,
  RPCS,
  type RpcTimeoutClass,
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
import { readBodyLimited } from "./_body.ts";
import {
  DEFAULT_HTTP_TIMEOUT_MS,
  type HttpClient,
  type HttpPostOptions,
  makeHttpClient,
} from "./http_client.ts";

/** Content type of every request and successful response body. */
export const PROTOBUF_CONTENT_TYPE = "application/x-protobuf";
/** Request header carrying the sending server's name, percent-encoded (`encodeURIComponent`). */
export const SENDER_HEADER = "x-raft-sender";
/** Request header carrying the cluster id (percent-encoded), checked when `clusterId` is set. */
export const CLUSTER_HEADER = "x-raft-cluster";
/** Request header carrying the shared secret (percent-encoded), checked when `token` is set. */
export const TOKEN_HEADER = "x-raft-token";

/** Options of {@link HttpTransporter}. */
export interface HttpTransporterOptions {
  /**
   * Path prefix of the routes: `""` or a path starting with `/` (a trailing `/` is
   * dropped).
   * @default "/raft"
   */
  prefix?: string;
  /**
   * Deadline of each outgoing request whose RPC has the `"default"` timeout class in core's
   * `RPCS` table (every RPC but snapshot chunks), used to build the default client. Leave
   * it unset when passing `client` (the client owns this timeout).
   * @default {DEFAULT_HTTP_TIMEOUT_MS} (2000)
   */
  timeoutMs?: number;
  /**
   * Deadline of each snapshot chunk (`sendSnapshotRecoveryRequest`, the RPC whose timeout
   * class in core's `RPCS` table is `"snapshot"`): chunks are large and the receiver writes
   * each one to storage. Passed to the client with every chunk (`HttpPostOptions`), so it
   * applies to a `client` given in options too.
   * @default {DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS} (30000)
   */
  snapshotTimeoutMs?: number;
  /**
   * Clock of the request deadlines, used to build the default client; pass core's
   * `ManualClock` (from `@tsraft/core/testing`) to drive them in a test. Leave it unset
   * when passing `client` (give the clock to `makeHttpClient` instead).
   * @default {systemClock}
   */
  clock?: Clock;
  /**
   * Largest request body the routes accept (larger ones get 413) and largest response
   * body the sender decodes.
   * @default {DEFAULT_MAX_MESSAGE_BYTES}
   */
  maxBodyBytes?: number;
  /**
   * Identifies the cluster: sent in `x-raft-cluster`, and when set the routes answer 403
   * to requests carrying another (or no) cluster id, so two clusters sharing hosts
   * cannot disturb each other.
   */
  clusterId?: string;
  /**
   * Shared secret: sent in `x-raft-token`, and when set the routes answer 403 to
   * requests without it. Use it over TLS only.
   */
  token?: string;
  /**
   * The client that sends requests.
   * @default makeHttpClient(timeoutMs, { maxResponseBytes: maxBodyBytes, clock })
   */
  client?: HttpClient;
}

const textEncoder = new TextEncoder();

/**
 * The part of a [Hono](https://hono.dev) app that {@link HttpTransporter.install} uses.
 * Every `Hono` instance satisfies it, whatever its environment type or base path; typing
 * it structurally keeps hono out of this package's runtime dependencies.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import type { HonoLike } from "@tsraft/transport-http";
 * const app: HonoLike = new Hono<{ Bindings: { region: string } }>().basePath("/api");
 * ```
 */
export interface HonoLike {
  /** Registers `handler` for POST requests to `path`. */
  post(
    path: string,
    handler: (context: { req: { raw: Request } }) => Promise<Response>,
  ): unknown;
}

/**
 * Raft over HTTP: protobuf bodies POSTed to routes under a prefix (`/raft/appendEntries`,
 * `/raft/requestVote`, `/raft/snapshot`, `/raft/snapshotRecovery`, `/raft/timeoutNow`).
 *
 * The receiving side is {@link HttpTransporter.install}, which mounts the routes on a Hono
 * app served by any runtime; the sending side implements `Transporter` and reaches a peer
 * at `http://<connectionString><path>`, or at `<connectionString><path>` when the
 * connection string is already a URL base such as `https://node1.example:4001/cluster`.
 *
 * Route answers: 200 with the protobuf response; 400 with a plain-text reason for a body
 * that does not decode (or a request the server rejects as invalid); 403 for a wrong
 * cluster id or token; 413 for a body over `maxBodyBytes`; 500 with the reason when the
 * server's handler fails (the app keeps serving).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { HttpTransporter } from "@tsraft/transport-http";
 * import type { RaftHandler } from "@tsraft/core";
 *
 * const server: RaftHandler = {
 *   name: "a",
 *   appendEntries: (req) =>
 *     Promise.resolve({
 *       term: req.term,
 *       index: req.prevLogIndex + req.entries.length,
 *       commitIndex: req.commitIndex,
 *       success: true,
 *       conflictTerm: 0,
 *       heartbeatSeq: req.heartbeatSeq,
 *     }),
 *   requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: req.preVote }),
 *   requestSnapshot: (req) => Promise.resolve({ term: req.term, success: true, nextOffset: 0 }),
 *   snapshotRecoveryRequest: (req) =>
 *     Promise.resolve({ term: req.term, success: true, commitIndex: req.lastIndex, nextOffset: 0 }),
 *   timeoutNow: (req) => Promise.resolve({ term: req.term, success: true }),
 * };
 * const transporter = new HttpTransporter({ clusterId: "demo" });
 * const app = new Hono();
 * transporter.install(server, app);
 * // Serve it with Deno.serve({ port: 4001 }, app.fetch) and peers reach it at "host:4001".
 * if (transporter.appendEntriesPath !== "/raft/appendEntries") throw new Error("bad path");
 * ```
 */
export class HttpTransporter implements Transporter {
  #prefix: string;
  #maxBodyBytes: number;
  #clusterId: string | undefined;
  // Header values are percent-encoded so any name or secret survives HTTP's Latin-1
  // header rule; the routes compare the encoded forms.
  #clusterHeader: string | undefined;
  #tokenHeader: string | undefined;
  #client: HttpClient;
  #ownsClient: boolean;
  // Per-request settings by the RPC's timeout class: `undefined` leaves the client's own
  // timeout in force.
  #postOptions: Record<RpcTimeoutClass, HttpPostOptions | undefined>;
  #baseCache = new Map<string, string>();

  /**
   * Creates a transporter; it sends right away and serves once installed on an app.
   *
   * @param options prefix, timeouts, body bound, cluster id, token, clock and client
   * @throws {TypeError} for a prefix not starting with `/`, or `client` together with
   * `timeoutMs` or `clock`
   * @throws {RangeError} for a `timeoutMs` or `snapshotTimeoutMs` that is not a positive
   * finite number, or a `maxBodyBytes` that is not a positive integer
   */
  constructor(options: HttpTransporterOptions = {}) {
    this.#prefix = normalizePrefix(options.prefix ?? "/raft");
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isSafeInteger(this.#maxBodyBytes) || this.#maxBodyBytes <= 0) {
      throw new RangeError(
        `Cannot create HttpTransporter: maxBodyBytes must be a positive integer, got ${this.#maxBodyBytes}`,
      );
    }
    this.#clusterId = options.clusterId;
    this.#clusterHeader = options.clusterId === undefined
      ? undefined
      : encodeURIComponent(options.clusterId);
    this.#tokenHeader = options.token === undefined ? undefined : encodeURIComponent(options.token);
    const snapshotTimeoutMs = positiveMs(
      "snapshotTimeoutMs",
      options.snapshotTimeoutMs ?? DEFAULT_SNAPSHOT_RPC_TIMEOUT_MS,
    );
    if (options.client !== undefined) {
      for (const name of ["timeoutMs", "clock"] as const) {
        if (options[name] !== undefined) {
          throw new TypeError(
            `Cannot create HttpTransporter with both client and ${name}: pass it to makeHttpClient()`,
          );
        }
      }
      this.#client = options.client;
      this.#ownsClient = false;
      this.#postOptions = { default: undefined, snapshot: { timeoutMs: snapshotTimeoutMs } };
    } else {
      const timeoutMs = positiveMs("timeoutMs", options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS);
      this.#client = makeHttpClient(timeoutMs, {
        maxResponseBytes: this.#maxBodyBytes,
        ...(options.clock === undefined ? {} : { clock: options.clock }),
      });
      this.#ownsClient = true;
      this.#postOptions = { default: { timeoutMs }, snapshot: { timeoutMs: snapshotTimeoutMs } };
    }
  }

  /** The path prefix of every route, e.g. `"/raft"`. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Path of the AppendEntries route, e.g. `"/raft/appendEntries"`. */
  get appendEntriesPath(): string {
    return this.#pathOf(RPCS.appendEntriesRequest);
  }

  /** Path of the RequestVote route, e.g. `"/raft/requestVote"`. */
  get requestVotePath(): string {
    return this.#pathOf(RPCS.requestVoteRequest);
  }

  /** Path of the snapshot announcement route, e.g. `"/raft/snapshot"`. */
  get snapshotPath(): string {
    return this.#pathOf(RPCS.snapshotRequest);
  }

  /** Path of the snapshot chunk route, e.g. `"/raft/snapshotRecovery"`. */
  get snapshotRecoveryPath(): string {
    return this.#pathOf(RPCS.snapshotRecoveryRequest);
  }

  /** Path of the TimeoutNow route, e.g. `"/raft/timeoutNow"`. */
  get timeoutNowPath(): string {
    return this.#pathOf(RPCS.timeoutNowRequest);
  }

  /**
   * Mounts the five POST routes on `app`, delivering decoded requests to `server`.
   * Call it once per app; the app may carry other routes too.
   *
   * @param server receives the requests (usually a tsraft `Server`)
   * @param app the Hono app to mount the routes on
   */
  install(server: RaftHandler, app: HonoLike): void {
    for (const kind of REQUEST_KINDS) this.#mount(app, server, RPCS[kind]);
  }

  /**
   * Releases the keep-alive connections of the client this transporter created (a
   * `client` passed in options is left to its owner). Sends fail afterwards.
   */
  close(): void {
    if (this.#ownsClient) this.#client.close?.();
  }

  /** Sends RequestVote to `peer`. @throws {TransportError} when no valid answer arrives */
  sendVoteRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: RequestVoteRequest,
    options?: SendOptions,
  ): Promise<RequestVoteResponse> {
    return this.#send(sender, peer, RPCS.requestVoteRequest, req, options);
  }

  /** Sends AppendEntries to `peer`. @throws {TransportError} when no valid answer arrives */
  sendAppendEntriesRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: AppendEntriesRequest,
    options?: SendOptions,
  ): Promise<AppendEntriesResponse> {
    return this.#send(sender, peer, RPCS.appendEntriesRequest, req, options);
  }

  /** Sends a snapshot announcement. @throws {TransportError} when no valid answer arrives */
  sendSnapshotRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRequest,
    options?: SendOptions,
  ): Promise<SnapshotResponse> {
    return this.#send(sender, peer, RPCS.snapshotRequest, req, options);
  }

  /**
   * Sends one snapshot chunk; it may take `snapshotTimeoutMs`.
   * @throws {TransportError} when no valid answer arrives
   */
  sendSnapshotRecoveryRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRecoveryRequest,
    options?: SendOptions,
  ): Promise<SnapshotRecoveryResponse> {
    return this.#send(sender, peer, RPCS.snapshotRecoveryRequest, req, options);
  }

  /** Sends TimeoutNow to `peer`. @throws {TransportError} when no valid answer arrives */
  sendTimeoutNow(
    sender: TransportSender,
    peer: PeerInfo,
    req: TimeoutNowRequest,
    options?: SendOptions,
  ): Promise<TimeoutNowResponse> {
    return this.#send(sender, peer, RPCS.timeoutNowRequest, req, options);
  }

  // Each request's deadline follows its RPC's timeout class in core's RPCS table, as in
  // every transport: a snapshot chunk gets snapshotTimeoutMs, the rest timeoutMs.
  async #send<K extends RequestKind>(
    sender: TransportSender,
    peer: PeerInfo,
    rpc: Rpc<K>,
    request: MessageMap[K],
    options: SendOptions | undefined,
  ): Promise<MessageMap[ResponseKind<K>]> {
    const url = this.#baseUrl(peer) + this.#pathOf(rpc);
    // A request that does not encode is the caller's bug, not the network's: its
    // TypeError/RangeError propagates as is.
    const body = encodeMessage(rpc.request, request);
    const headers: Record<string, string> = {
      "content-type": PROTOBUF_CONTENT_TYPE,
      [SENDER_HEADER]: encodeURIComponent(sender.name),
    };
    if (this.#clusterHeader !== undefined) headers[CLUSTER_HEADER] = this.#clusterHeader;
    if (this.#tokenHeader !== undefined) headers[TOKEN_HEADER] = this.#tokenHeader;
    let response;
    try {
      response = await this.#client.post(
        url,
        body,
        headers,
        options?.signal,
        this.#postOptions[rpc.timeout],
      );
    } catch (error) {
      if (error instanceof TransportError) throw error;
      throw new TransportError(`POST ${url} failed: ${errorMessage(error)}`, { cause: error });
    }
    if (response.status !== 200) {
      const reason = new TextDecoder().decode(response.body.subarray(0, 200));
      throw new TransportError(
        `Peer ${peer.name} answered ${rpc.request} with HTTP ${response.status}: ${reason}`,
      );
    }
    try {
      return decodeMessage(rpc.response, response.body, { maxBytes: this.#maxBodyBytes });
    } catch (error) {
      throw new TransportError(
        `Peer ${peer.name} sent an undecodable ${rpc.response}: ${errorMessage(error)}`,
        { cause: error },
      );
    }
  }

  #baseUrl(peer: PeerInfo): string {
    let base = this.#baseCache.get(peer.connectionString);
    if (base === undefined) {
      base = baseUrlOf(peer.connectionString);
      // Bounded so a churn of peers cannot grow the cache without limit.
      if (this.#baseCache.size >= 1024) this.#baseCache.clear();
      this.#baseCache.set(peer.connectionString, base);
    }
    return base;
  }

  #pathOf(rpc: Rpc): string {
    return `${this.#prefix}/${rpc.path}`;
  }

  #mount<K extends RequestKind>(app: HonoLike, server: RaftHandler, rpc: Rpc<K>): void {
    app.post(this.#pathOf(rpc), (c) => this.#serve(server, rpc, c.req.raw));
  }

  async #serve<K extends RequestKind>(
    server: RaftHandler,
    rpc: Rpc<K>,
    request: Request,
  ): Promise<Response> {
    const refusal = this.#checkCredentials(request.headers);
    if (refusal !== undefined) {
      await request.body?.cancel().catch(() => {});
      return plainText(403, refusal);
    }
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readBodyLimited(request, this.#maxBodyBytes);
    } catch (error) {
      return plainText(400, `Cannot read ${rpc.request} body: ${errorMessage(error)}`);
    }
    if (bytes === undefined) {
      return plainText(413, `${rpc.request} body exceeds ${this.#maxBodyBytes} bytes`);
    }
    let message: MessageMap[K];
    try {
      message = decodeMessage(rpc.request, bytes, { maxBytes: this.#maxBodyBytes });
    } catch (error) {
      // Any decode failure is the sender's fault; the codec's contract is to throw
      // WireError, and other errors are reported the same way rather than as a 500.
      const what = error instanceof WireError ? "Malformed" : "Undecodable";
      return plainText(400, `${what} ${rpc.request}: ${errorMessage(error)}`);
    }
    let answer: MessageMap[ResponseKind<K>];
    try {
      answer = await rpc.serve(server, message);
    } catch (error) {
      const status = error instanceof InvalidMessageError ? 400 : 500;
      return plainText(
        status,
        `${server.name} failed ${rpc.request}: ${errorMessage(error)}`,
      );
    }
    let out: Uint8Array;
    try {
      out = encodeMessage(rpc.response, answer);
    } catch (error) {
      return plainText(
        500,
        `${server.name} produced an invalid ${rpc.response}: ${errorMessage(error)}`,
      );
    }
    return new Response(out as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: { "content-type": PROTOBUF_CONTENT_TYPE },
    });
  }

  #checkCredentials(headers: Headers): string | undefined {
    if (this.#clusterHeader !== undefined && headers.get(CLUSTER_HEADER) !== this.#clusterHeader) {
      const got = headers.get(CLUSTER_HEADER);
      return got === null
        ? `Missing ${CLUSTER_HEADER} header: this server belongs to cluster ${this.#clusterId}`
        : `Wrong cluster: this server belongs to cluster ${this.#clusterId}`;
    }
    if (
      this.#tokenHeader !== undefined &&
      !constantTimeEqual(headers.get(TOKEN_HEADER), this.#tokenHeader)
    ) {
      return `Missing or wrong ${TOKEN_HEADER} header`;
    }
    return undefined;
  }
}

function positiveMs(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot create HttpTransporter: ${name} must be a positive number of ms, got ${value}`,
    );
  }
  return value;
}

function normalizePrefix(prefix: string): string {
  if (typeof prefix !== "string" || (prefix !== "" && !prefix.startsWith("/"))) {
    throw new TypeError(`Cannot use HTTP prefix "${prefix}": it must be "" or start with "/"`);
  }
  return prefix.replace(/\/+$/, "");
}

/**
 * Turns a connection string into a URL base without a trailing slash: `"host:port"`
 * becomes `"http://host:port"`; an `http(s)://` URL keeps its scheme and path.
 */
function baseUrlOf(connectionString: string): string {
  const trimmed = connectionString.trim();
  if (/^https?:\/\//i.test(trimmed)) return trimmed.replace(/\/+$/, "");
  if (trimmed.includes("://")) {
    throw new TransportError(
      `Cannot reach "${connectionString}": only http:// and https:// URLs are supported`,
    );
  }
  return `http://${trimmed.replace(/\/+$/, "")}`;
}

function constantTimeEqual(got: string | null, expected: string): boolean {
  if (got === null) return false;
  const a = textEncoder.encode(got);
  const b = textEncoder.encode(expected);
  // Compare every byte regardless of where the first difference is, so response
  // timing does not reveal how much of a guessed token was right.
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i]!;
  return diff === 0;
}

function plainText(status: number, text: string): Response {
  return new Response(text, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
