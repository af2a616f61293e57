/**
 * Raft over HTTP for tsraft: {@link HttpTransporter} mounts the RPC routes on a
 * [Hono](https://hono.dev) app and sends RPCs to peers as protobuf bodies, and
 * {@link makeHttpClient} makes the keep-alive HTTP client it sends them with.
 *
 * The app is a plain Hono app, so any runtime serves it:
 *
 * - Deno: `Deno.serve({ port: 4001 }, app.fetch)`
 * - Bun: `Bun.serve({ port: 4001, fetch: app.fetch })`
 * - Node: `import { serve } from "@hono/node-server"; serve({ fetch: app.fetch, port: 4001 })`
 *
 * A peer's `connectionString` is `"host:port"` (reached over plain http) or a URL base
 * such as `"https://node1.example:4001"` (TLS; pass `tls.ca` to {@link makeHttpClient} for
 * a private CA). Set the same `clusterId` (and optionally `token`) on every member so
 * that stray traffic from another cluster is refused with 403.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import type { RaftHandler } from "@tsraft/core";
 * import { HttpTransporter } from "@tsraft/transport-http";
 *
 * // Any RaftHandler works; a tsraft Server is one.
 * const server: RaftHandler = {
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
 *   requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: req.preVote }),
 *   requestSnapshot: (req) => Promise.resolve({ term: req.term, success: true, nextOffset: 0 }),
 *   snapshotRecoveryRequest: (req) =>
 *     Promise.resolve({ term: req.term, success: true, commitIndex: req.lastIndex, nextOffset: 0 }),
 *   timeoutNow: (req) => Promise.resolve({ term: req.term, success: true }),
 * };
 *
 * const transporter = new HttpTransporter({ clusterId: "demo", timeoutMs: 1000 });
 * const app = new Hono();
 * transporter.install(server, app);
 * const listener = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
 * try {
 *   const peer = { name: "b", connectionString: `127.0.0.1:${listener.addr.port}` };
 *   const vote = await transporter.sendVoteRequest({ name: "a" }, peer, {
 *     term: 3,
 *     lastLogIndex: 0,
 *     lastLogTerm: 0,
 *     candidateName: "a",
 *     preVote: false,
 *     transfer: false,
 *   });
 *   if (!vote.voteGranted) throw new Error("vote refused");
 * } finally {
 *   transporter.close();
 *   await listener.shutdown();
 * }
 * ```
 * @module
 */
export {
  CLUSTER_HEADER,
  type HonoLike,
  HttpTransporter,
  type HttpTransporterOptions,
  PROTOBUF_CONTENT_TYPE,
  SENDER_HEADER,
  TOKEN_HEADER,
} from "./http_transporter.ts";
export {
  DEFAULT_HTTP_TIMEOUT_MS,
  DEFAULT_MAX_RESPONSE_BYTES,
  type HttpClient,
  type HttpClientOptions,
  type HttpClientTlsOptions,
  type HttpPostOptions,
  type HttpResponse,
  makeHttpClient,
} from "./http_client.ts";
// Re-exported so the documentation of this package's signatures is self-contained.
export type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  Clock,
  LogEntry,
  PeerInfo,
  RaftHandler,
  RequestVoteRequest,
  RequestVoteResponse,
  SendOptions,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
  TimerHandle,
  Transporter,
  TransportSender,
} from "@tsraft/core";
