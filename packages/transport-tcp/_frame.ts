/**
 * Framing of the TCP transport. A frame is
 *
 * ```
 * u32 length   big-endian, bytes that follow (header rest + payload), at least 6
 * u32 id       request id, echoed by the response; 0 for the handshake
 * u8  code     message kind (position in MESSAGE_KINDS) or a handshake code
 * u8  flags    FLAG_ERROR: the payload is a UTF-8 error text instead of a message
 * ... payload  protobuf bytes from the core wire codec (or handshake JSON)
 * ```
 * @module
 */
import { MESSAGE_KINDS, type MessageKind, WireError } from "@tsraft/core";

/** Bytes of the length prefix. */
export const LENGTH_BYTES = 4;
/** Bytes of id, code and flags after the length prefix. */
export const HEADER_BYTES = 6;
/** Client → server: first frame on a connection (JSON {@link Hello}). */
export const CODE_HELLO = 0x80;
/** Server → client: the handshake was accepted (empty payload). */
export const CODE_HELLO_ACCEPT = 0x81;
/** Server → client: the handshake was refused (payload: UTF-8 reason); then the server closes. */
export const CODE_HELLO_REJECT = 0x82;
/** The payload is a UTF-8 error text: the handler of the request failed. */
export const FLAG_ERROR = 0x01;
/** Identifies this protocol and its version in the handshake. */
export const PROTOCOL = "tsraft-tcp/1";
/** Largest handshake payload: unauthenticated peers must not make us buffer much. */
export const MAX_HELLO_BYTES = 8 * 1024;

/** What a client says about itself when it connects. */
export interface Hello {
  /** Always {@link PROTOCOL}. */
  protocol: string;
  /** Cluster the client belongs to. */
  clusterId: string;
  /** Shared secret, `""` when none is configured. */
  token: string;
}

/** One decoded frame; `payload` is a view the receiver must not keep beyond decoding. */
export interface Frame {
  /** Request id. */
  id: number;
  /** Message kind code or handshake code. */
  code: number;
  /** Flag bits. */
  flags: number;
  /** Payload bytes. */
  payload: Uint8Array;
}

const CODE_OF = new Map<MessageKind, number>(MESSAGE_KINDS.map((kind, i) => [kind, i]));

/** @returns the wire code of `kind` */
export function kindCode(kind: MessageKind): number {
  return CODE_OF.get(kind)!;
}

/** @returns the kind of a message code, or `undefined` for handshake and unknown codes */
export function codeKind(code: number): MessageKind | undefined {
  return MESSAGE_KINDS[code];
}

/** Builds one frame (length prefix, header, payload) as a single buffer. */
export function encodeFrame(id: number, code: number, flags: number, payload: Uint8Array) {
  const out = new Uint8Array(LENGTH_BYTES + HEADER_BYTES + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, HEADER_BYTES + payload.byteLength);
  view.setUint32(4, id);
  out[8] = code;
  out[9] = flags;
  out.set(payload, LENGTH_BYTES + HEADER_BYTES);
  return out;
}

function isKnownCode(code: number): boolean {
  return code < MESSAGE_KINDS.length || (code >= CODE_HELLO && code <= CODE_HELLO_REJECT);
}

/**
 * Splits a byte stream into frames. Copies only when a frame spans several chunks, and
 * then once per frame (never once per chunk), so a 64 MiB frame arriving in 64 KiB reads
 * costs one copy.
 */
export class FrameDecoder {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  // Bytes needed before parsing can make progress: the length prefix, or the whole frame.
  #needed = LENGTH_BYTES;
  /** Largest accepted payload; may be changed between pushes (e.g. after the handshake). */
  maxPayloadBytes: number;

  /** @param maxPayloadBytes largest accepted payload */
  constructor(maxPayloadBytes: number) {
    this.maxPayloadBytes = maxPayloadBytes;
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Adds received bytes and returns the frames they complete.
   * @throws {WireError} on an oversized or malformed frame; the stream is then unusable
   */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.byteLength === 0) return [];
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
    if (this.#buffered < this.#needed) return [];
    const data = this.#chunks.length === 1
      ? this.#chunks[0]!
      : concat(this.#chunks, this.#buffered);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const frames: Frame[] = [];
    let offset = 0;
    this.#needed = LENGTH_BYTES;
    while (data.byteLength - offset >= LENGTH_BYTES) {
      const length = view.getUint32(offset);
      if (length < HEADER_BYTES) throw new WireError(`Frame length ${length} is too short`);
      if (length - HEADER_BYTES > this.maxPayloadBytes) {
        throw new WireError(
          `Frame of ${length - HEADER_BYTES} bytes exceeds the limit of ${this.maxPayloadBytes}`,
        );
      }
      if (data.byteLength - offset < LENGTH_BYTES + length) {
        this.#needed = LENGTH_BYTES + length;
        break;
      }
      const code = data[offset + 8]!;
      const flags = data[offset + 9]!;
      if (!isKnownCode(code)) throw new WireError(`Unknown frame code ${code}`);
      if ((flags & ~FLAG_ERROR) !== 0) throw new WireError(`Unknown frame flags ${flags}`);
      frames.push({
        id: view.getUint32(offset + 4),
        code,
        flags,
        payload: data.subarray(
          offset + LENGTH_BYTES + HEADER_BYTES,
          offset + LENGTH_BYTES + length,
        ),
      });
      offset += LENGTH_BYTES + length;
    }
    const rest = data.subarray(offset);
    this.#chunks = rest.byteLength > 0 ? [rest] : [];
    this.#buffered = rest.byteLength;
    return frames;
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** @returns UTF-8 bytes of `text`, cut to at most `maxBytes` characters' worth */
export function encodeText(text: string, maxChars = 2048): Uint8Array {
  return encoder.encode(text.length > maxChars ? `${text.slice(0, maxChars)}…` : text);
}

/**
 * @returns the text of a UTF-8 payload
 * @throws {WireError} when it is not valid UTF-8
 */
export function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new WireError("Text payload is not valid UTF-8", { cause: error });
  }
}

/** @returns the handshake payload */
export function encodeHello(hello: Hello): Uint8Array {
  return encoder.encode(JSON.stringify(hello));
}

/**
 * @returns the parsed handshake
 * @throws {WireError} when it is not a well-formed {@link Hello}
 */
export function decodeHello(bytes: Uint8Array): Hello {
  let value: unknown;
  try {
    value = JSON.parse(decodeText(bytes));
  } catch (error) {
    throw new WireError("Handshake is not valid JSON", { cause: error });
  }
  const hello = value as Partial<Hello> | null;
  if (
    typeof hello !== "object" || hello === null || typeof hello.protocol !== "string" ||
    typeof hello.clusterId !== "string" || typeof hello.token !== "string"
  ) {
    throw new WireError("Handshake lacks protocol, clusterId or token");
  }
  return { protocol: hello.protocol, clusterId: hello.clusterId, token: hello.token };
}
