/**
 * The resolved options of a `TcpTransporter`, shared by its client and server sides.
 * @module
 */
import type { Clock } from "@tsraft/core";
import type { NativeNet } from "./_native_socket.ts";
import type { TcpTlsOptions } from "./_stream.ts";
import type { TimeoutConn } from "./timeout_conn.ts";

/** Every option with its default applied and checked (see `TcpTransporterOptions`). */
export interface Settings {
  /** Deadline of a request (connecting included), of the handshake and of each write. */
  timeoutMs: number;
  /** Deadline of a request whose RPC has the `"snapshot"` timeout class. */
  snapshotTimeoutMs: number;
  /** Largest frame payload sent or accepted. */
  maxFrameBytes: number;
  /** Cluster id presented and required in the handshake. */
  clusterId: string;
  /** Shared secret presented and required in the handshake; `""` for none. */
  token: string;
  /** TLS material, or `undefined` for plain TCP. */
  tls: TcpTlsOptions | undefined;
  /** Deno's TCP API when plain TCP uses it, else `undefined` (`node:net`). */
  native: NativeNet | undefined;
  /** First reconnect delay; it doubles per failure. */
  minReconnectDelayMs: number;
  /** Longest reconnect delay. */
  maxReconnectDelayMs: number;
  /** Requests served at once per incoming connection. */
  maxInFlightPerConnection: number;
  /** Receives one line per noteworthy event. */
  logger: (message: string) => void;
  /** Clock of request deadlines, connect timeouts, socket deadlines and reconnect backoff. */
  clock: Clock;
}

/** @returns `"host:port"` of the remote end, for log lines */
export function describeAddr(conn: TimeoutConn): string {
  const addr = conn.remoteAddr;
  return addr === null ? "unknown peer" : `${addr.hostname}:${addr.port}`;
}
