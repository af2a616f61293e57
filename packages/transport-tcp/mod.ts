/**
 * The Raft RPCs of tsraft over TCP (optionally TLS), built on `node:net` so it runs on
 * Deno, Bun and Node (on Deno, plain TCP uses the faster `Deno.connect`/`Deno.listen`): {@link TcpTransporter} keeps one pipelined connection per peer, with
 * a cluster-id/token handshake, per-request timeouts, bounded frames and reconnection with
 * backoff. {@link TimeoutConn} is goraft's deadline-carrying connection.
 *
 * @example
 * ```ts
 * import { TcpTransporter } from "@tsraft/transport-tcp";
 * import type { RaftHandler } from "@tsraft/core";
 *
 * // Normally the handler is a tsraft Server; here, a stub that grants every vote.
 * const handler = {
 *   name: "b",
 *   requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: req.preVote }),
 * } as RaftHandler;
 * const b = new TcpTransporter({ clusterId: "example", token: "s3cret" });
 * const { port } = await b.listen(handler, { hostname: "127.0.0.1", port: 0 });
 *
 * const a = new TcpTransporter({ clusterId: "example", token: "s3cret", timeoutMs: 1000 });
 * const vote = await a.sendVoteRequest(
 *   { name: "a" },
 *   { name: "b", connectionString: `127.0.0.1:${port}` },
 *   { term: 2, lastLogIndex: 0, lastLogTerm: 0, candidateName: "a", preVote: false, transfer: false },
 * );
 * if (!vote.voteGranted) throw new Error("vote refused");
 * await a.close();
 * await b.close();
 * ```
 * @module
 */
export {
  type TcpAddress,
  type TcpListenOptions,
  type TcpTlsOptions,
  TcpTransporter,
  type TcpTransporterOptions,
} from "./tcp_transporter.ts";
export {
  type Deadline,
  type NetAddr,
  type SocketLike,
  TimeoutConn,
  type TimeoutConnOptions,
} from "./timeout_conn.ts";
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
