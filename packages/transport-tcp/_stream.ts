/**
 * The stream layer of the TCP transport: dialing and listening over `node:net`,
 * `node:tls` or Deno's own TCP API, each handing back a {@link SocketLike}. Nothing here
 * knows about frames, the handshake or RPCs; everything above works the same on all three.
 * @module
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import * as tls from "node:tls";
import { type Clock, TransportError } from "@tsraft/core";
import { connectNative, listenNative, type NativeNet } from "./_native_socket.ts";
import type { SocketLike } from "./timeout_conn.ts";

/** TLS material of a `TcpTransporter`, as PEM strings. */
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

/** How sockets are made: TLS material, or the native API, or plain `node:net`. */
export interface StreamOptions {
  /** TLS for listening and dialing; `undefined` for plain TCP. */
  tls: TcpTlsOptions | undefined;
  /** Deno's TCP API, used for plain TCP when set (never together with `tls`). */
  native: NativeNet | undefined;
}

/** A host and port to dial. */
export interface DialAddress {
  /** Host name or IP address (without brackets). */
  host: string;
  /** TCP port. */
  port: number;
}

/** A bound listener. */
export interface Listener {
  /** Bound interface. */
  hostname: string;
  /** Bound port. */
  port: number;
  /** Stops accepting connections; resolves once the listener is closed. */
  close(): Promise<void>;
}

/**
 * Parses `"host:port"` or `"[ipv6]:port"`.
 * @returns the host and port, or `undefined` when malformed
 */
export function parseConnectionString(value: string): DialAddress | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\s/]+)):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

/**
 * Opens a connection to `address`, TLS-secured when `options.tls` is set.
 * @param address where to connect
 * @param options socket kind, the connect timeout, the clock it runs on, and `key` (the
 * connection string, for messages)
 * @returns a connected socket (after the TLS handshake, with TLS)
 * @throws {TransportError} when the connection fails or does not complete in `timeoutMs`
 */
export async function dial(
  address: DialAddress,
  options: StreamOptions & { timeoutMs: number; clock: Clock; key: string },
): Promise<SocketLike> {
  const { tls: tlsOptions, native, timeoutMs, clock, key } = options;
  if (native !== undefined) {
    try {
      return await connectNative(native, { hostname: address.host, port: address.port }, {
        timeoutMs,
        clock,
      });
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
      const connectOptions: tls.ConnectionOptions = { host, port };
      if (tlsOptions.ca !== undefined) connectOptions.ca = tlsOptions.ca;
      if (tlsOptions.key !== undefined) connectOptions.key = tlsOptions.key;
      if (tlsOptions.cert !== undefined) connectOptions.cert = tlsOptions.cert;
      // SNI must not be an IP address; certificate checks still use the host.
      const serverName = tlsOptions.serverName ?? (/^[\d.]+$|:/.test(host) ? undefined : host);
      if (serverName !== undefined) connectOptions.servername = serverName;
      socket = tls.connect(connectOptions);
    }
    const timer = clock.setTimeout(() => {
      socket.destroy();
      reject(new TransportError(`Cannot connect to ${key}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(readyEvent, () => {
      clock.clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (error: Error) => {
      clock.clearTimeout(timer);
      socket.destroy();
      reject(new TransportError(`Cannot connect to ${key}: ${error.message}`, { cause: error }));
    };
    socket.once("error", onError);
  });
}

/**
 * Binds `address` and hands every accepted socket (after the TLS handshake, with TLS) to
 * `onSocket`.
 * @param address interface and port (`0` for any free port)
 * @param options socket kind, the accept callback and where listener errors are logged
 * @returns the bound listener
 * @throws {TypeError} when listening with TLS without `tls.key` and `tls.cert`
 * @throws {Error} when the port cannot be bound (e.g. `EADDRINUSE`)
 */
export async function listen(
  address: { hostname: string; port: number },
  options: StreamOptions & {
    onSocket: (socket: SocketLike) => void;
    logger: (message: string) => void;
  },
): Promise<Listener> {
  const { hostname, port } = address;
  const { tls: tlsOptions, native, onSocket, logger } = options;
  if (native !== undefined) {
    return listenNative(native, { hostname, port }, {
      onSocket,
      onError: (error) => logger(`Listener error: ${describe(error)}`),
    });
  }
  let server: Server;
  if (tlsOptions !== undefined) {
    if (tlsOptions.key === undefined || tlsOptions.cert === undefined) {
      throw new TypeError("Listening with TLS needs tls.key and tls.cert");
    }
    server = tls.createServer({ key: tlsOptions.key, cert: tlsOptions.cert });
    server.on("secureConnection", (socket: tls.TLSSocket) => onSocket(socket));
    server.on("tlsClientError", (error: Error, socket: Socket) => {
      logger(`TLS handshake with ${describeSocket(socket)} failed: ${error.message}`);
    });
  } else {
    server = createServer((socket) => onSocket(socket));
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => logger(`Listener error: ${error.message}`));
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  const bound = server.address();
  if (bound === null || typeof bound === "string") {
    await close();
    throw new TypeError(`Unexpected listening address ${String(bound)}`);
  }
  return { hostname: bound.address, port: bound.port, close };
}

/** @returns the message of `error`, or its string form */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeSocket(socket: Socket): string {
  return `${socket.remoteAddress ?? "unknown"}:${socket.remotePort ?? "?"}`;
}
