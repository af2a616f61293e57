/**
 * The server side of the TCP transport: accepts connections, runs the server's half of
 * the handshake, then decodes request frames and serves each through its row of core's
 * RPC table, many at once per connection (bounded by `maxInFlightPerConnection`), writing
 * each response with the request's id as soon as it is ready.
 * @module
 */
import {
  decodeMessage,
  encodeMessage,
  isRequestKind,
  type RaftHandler,
  type Rpc,
  RPCS,
  TransportError,
  WireError,
} from "@tsraft/core";
import { codeKind, encodeFrame, encodeText, FLAG_ERROR, kindCode } from "./_frame.ts";
import { openServer, readFrames } from "./_handshake.ts";
import { describeAddr, type Settings } from "./_settings.ts";
import { describe, listen, type Listener } from "./_stream.ts";
import { type SocketLike, TimeoutConn } from "./timeout_conn.ts";

/** The listening half of a `TcpTransporter`: one listener and its open connections. */
export class TcpServer {
  #settings: Settings;
  #listener: Listener | "binding" | undefined;
  #conns = new Set<TimeoutConn>();
  #closed = false;

  /** @param settings the transporter's resolved options */
  constructor(settings: Settings) {
    this.#settings = settings;
  }

  /**
   * Binds `address` and serves every connection's requests with `handler`.
   * @returns the bound address
   * @throws {TypeError} when already listening or closed, or TLS lacks `key`/`cert`
   * @throws {Error} when the port cannot be bound
   */
  async listen(
    handler: RaftHandler,
    address: { hostname: string; port: number },
  ): Promise<{ hostname: string; port: number }> {
    if (this.#closed) throw new TypeError("TcpTransporter is closed");
    if (this.#listener !== undefined) throw new TypeError("TcpTransporter is already listening");
    const { tls, native, logger } = this.#settings;
    this.#listener = "binding";
    let listener: Listener;
    try {
      listener = await listen(address, {
        tls,
        native,
        logger,
        onSocket: (socket) => this.#accept(socket, handler),
      });
    } catch (error) {
      this.#listener = undefined;
      throw error;
    }
    if (this.#closed) {
      await listener.close();
      throw new TypeError("TcpTransporter is closed");
    }
    this.#listener = listener;
    return { hostname: listener.hostname, port: listener.port };
  }

  /** Stops listening and closes every connection; requests being served are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    const listener = this.#listener;
    this.#listener = undefined;
    const closing = typeof listener === "object" ? listener.close() : undefined;
    await Promise.all([...this.#conns].map((conn) => conn.close()));
    await closing;
  }

  #accept(socket: SocketLike, handler: RaftHandler): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const settings = this.#settings;
    socket.setNoDelay(true);
    const conn = new TimeoutConn(socket, {
      readTimeoutMs: 0,
      writeTimeoutMs: settings.timeoutMs,
      clock: settings.clock,
    });
    this.#conns.add(conn);
    socket.once("close", () => this.#conns.delete(conn));
    serveConnection(conn, { handler, settings }).catch((error: unknown) => {
      // Reaching here means a bug, not a bad peer: serveConnection handles those.
      settings.logger(`Connection from ${describeAddr(conn)} failed: ${describe(error)}`);
      conn.close();
    });
  }
}

/** Serves one incoming connection until it ends; never rejects for a misbehaving peer. */
async function serveConnection(
  conn: TimeoutConn,
  options: { handler: RaftHandler; settings: Settings },
): Promise<void> {
  const { handler, settings } = options;
  const peer = describeAddr(conn);
  const { maxFrameBytes, maxInFlightPerConnection } = settings;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  try {
    const opened = await openServer(conn, { ...settings, peer });
    if (opened === null) return;
    const { decoder } = opened;
    let frames = opened.frames;
    for (;;) {
      for (const frame of frames) {
        const kind = codeKind(frame.code);
        if (kind === undefined || !isRequestKind(kind) || frame.flags !== 0) {
          throw new WireError(`Unexpected frame code ${frame.code} flags ${frame.flags}`);
        }
        const rpc: Rpc = RPCS[kind];
        const request = decodeMessage(kind, frame.payload, { maxBytes: maxFrameBytes });
        inFlight++;
        serveRequest(conn, { handler, rpc, id: frame.id, request }).finally(() => {
          inFlight--;
          wake?.();
        });
      }
      // Backpressure: a peer pipelining faster than the handler keeps up waits here.
      while (inFlight >= maxInFlightPerConnection) {
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

/** Runs one request through its handler method and writes the response (or the error). */
async function serveRequest(
  conn: TimeoutConn,
  call: { handler: RaftHandler; rpc: Rpc; id: number; request: unknown },
): Promise<void> {
  const { handler, rpc, id, request } = call;
  const code = kindCode(rpc.response);
  let out: Uint8Array;
  try {
    const response = await rpc.serve(handler, request as never);
    out = encodeFrame(id, code, 0, encodeMessage(rpc.response, response as never));
  } catch (error) {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    out = encodeFrame(id, code, FLAG_ERROR, encodeText(text));
  }
  // A failed write means the connection is gone; its reader notices and cleans up.
  await conn.write(out).catch(() => {});
}
