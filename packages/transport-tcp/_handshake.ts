/**
 * The handshake that opens every connection of the TCP transport: the client sends
 * {@link Hello} (protocol, cluster id, token) as frame code `CODE_HELLO`; the server
 * answers `CODE_HELLO_ACCEPT`, or `CODE_HELLO_REJECT` with the reason and closes. Only
 * after it do frames carry RPCs, and only then may they be as large as `maxFrameBytes`:
 * an unauthenticated peer cannot make us buffer more than `MAX_HELLO_BYTES`.
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { TransportError, WireError } from "@tsraft/core";
import {
  CODE_HELLO,
  CODE_HELLO_ACCEPT,
  CODE_HELLO_REJECT,
  decodeHello,
  decodeText,
  encodeFrame,
  encodeHello,
  encodeText,
  type Frame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  PROTOCOL,
} from "./_frame.ts";
import { describe } from "./_stream.ts";
import type { TimeoutConn } from "./timeout_conn.ts";

/** What the two ends of a connection must agree on. */
export interface Credentials {
  /** Cluster id; peers of another cluster are refused. */
  clusterId: string;
  /** Shared secret; `""` for none (then any token is accepted). */
  token: string;
}

/** A connection past its handshake: the decoder to keep reading with, and frames already read. */
export interface Opened {
  /** Decodes the rest of the stream; its bound is raised to `maxFrameBytes`. */
  decoder: FrameDecoder;
  /** Frames that arrived together with the handshake (pipelined behind it). */
  frames: Frame[];
}

/**
 * Reads until at least one whole frame has arrived.
 * @returns the frames, or `null` once the peer has ended the stream
 * @throws {WireError} on a malformed or oversized frame
 * @throws {TransportError} when the read deadline passes or the connection fails
 */
export async function readFrames(
  conn: TimeoutConn,
  decoder: FrameDecoder,
): Promise<Frame[] | null> {
  for (;;) {
    const chunk = await conn.read();
    if (chunk === null) return null;
    const frames = decoder.push(chunk);
    if (frames.length > 0) return frames;
  }
}

/**
 * The client's half: presents `credentials` and waits (at most `timeoutMs`) for the answer.
 * On failure the connection is closed.
 * @param conn a fresh connection
 * @param options credentials, deadline, the frame bound afterwards, and `key` (the peer's
 * connection string, for messages)
 * @returns the decoder and any frames that followed the answer
 * @throws {TransportError} when the peer refuses (with its reason), closes, answers
 * garbage or not in time
 */
export async function openClient(
  conn: TimeoutConn,
  options: Credentials & { timeoutMs: number; maxFrameBytes: number; key: string },
): Promise<Opened> {
  const { clusterId, token, timeoutMs, maxFrameBytes, key } = options;
  const decoder = new FrameDecoder(MAX_HELLO_BYTES);
  try {
    const hello = encodeHello({ protocol: PROTOCOL, clusterId, token });
    await conn.write(encodeFrame(0, CODE_HELLO, 0, hello));
    conn.setReadDeadline(timeoutMs);
    const frames = await readFrames(conn, decoder);
    if (frames === null) {
      throw new TransportError(`${key} closed the connection during the handshake`);
    }
    const reply = frames[0]!;
    if (reply.code === CODE_HELLO_REJECT) {
      throw new TransportError(`${key} refused the connection: ${decodeText(reply.payload)}`);
    }
    if (reply.code !== CODE_HELLO_ACCEPT) {
      throw new WireError(`Expected a handshake reply, got code ${reply.code}`);
    }
    conn.setReadDeadline(null);
    decoder.maxPayloadBytes = maxFrameBytes;
    return { decoder, frames: frames.slice(1) };
  } catch (error) {
    conn.close();
    if (error instanceof TransportError) throw error;
    throw new TransportError(`Handshake with ${key} failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

/**
 * The server's half: reads the client's {@link Hello} (at most `timeoutMs`) and accepts
 * or refuses it. A refusal is logged and sent to the client with its reason; the caller
 * then closes the connection.
 * @param conn a freshly accepted connection
 * @param options credentials, deadline, the frame bound afterwards, where refusals are
 * logged and `peer` (the remote address, for messages)
 * @returns the decoder and any frames pipelined behind the hello, or `null` when the peer
 * closed before saying hello or was refused
 * @throws {WireError} when the first frame is not a well-formed hello
 * @throws {TransportError} when no hello arrives in time or the connection fails
 */
export async function openServer(
  conn: TimeoutConn,
  options: Credentials & {
    timeoutMs: number;
    maxFrameBytes: number;
    logger: (message: string) => void;
    peer: string;
  },
): Promise<Opened | null> {
  const decoder = new FrameDecoder(MAX_HELLO_BYTES);
  conn.setReadDeadline(options.timeoutMs);
  const frames = await readFrames(conn, decoder);
  if (frames === null) return null;
  const reason = checkHello(frames[0]!, options);
  if (reason !== undefined) {
    options.logger(`Refused connection from ${options.peer}: ${reason}`);
    await conn.write(encodeFrame(0, CODE_HELLO_REJECT, 0, encodeText(reason))).catch(() => {});
    return null;
  }
  await conn.write(encodeFrame(0, CODE_HELLO_ACCEPT, 0, new Uint8Array()));
  conn.setReadDeadline(null);
  decoder.maxPayloadBytes = options.maxFrameBytes;
  return { decoder, frames: frames.slice(1) };
}

/**
 * @returns why `frame` is refused, or `undefined` when it is an acceptable hello
 * @throws {WireError} when it is not a well-formed hello
 */
function checkHello(frame: Frame, expected: Credentials): string | undefined {
  if (frame.code !== CODE_HELLO) {
    throw new WireError(`Expected a handshake, got code ${frame.code}`);
  }
  const hello = decodeHello(frame.payload);
  if (hello.protocol !== PROTOCOL) {
    return `protocol ${JSON.stringify(hello.protocol)} is not ${PROTOCOL}`;
  }
  if (hello.clusterId !== expected.clusterId) {
    return `cluster id ${JSON.stringify(hello.clusterId)} does not match ${
      JSON.stringify(expected.clusterId)
    }`;
  }
  if (expected.token !== "" && !tokensEqual(expected.token, hello.token)) {
    return hello.token === "" ? "missing token" : "wrong token";
  }
  return undefined;
}

function tokensEqual(expected: string, actual: string): boolean {
  const a = new TextEncoder().encode(expected);
  const b = new TextEncoder().encode(actual);
  // Compare equal-length buffers so the time taken does not reveal a matching prefix.
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}
