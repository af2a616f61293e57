// Snapshot transfer, streamed both ways: the leader reads its stored snapshot chunk by chunk
// and never holds it whole; the follower writes each chunk to storage as it arrives (through
// Storage.createSnapshot) and checks the checksum at the end. Resumable: after a lost chunk
// or a leader change, the follower says where it stands and the sender continues there.
import { crc32c } from "./crc32c.ts";
import type { SnapshotSink, Storage, StoredSnapshot } from "./storage.ts";
import type { Transporter, TransportSender } from "./transporter.ts";
import type { PeerInfo, SnapshotMeta, SnapshotRecoveryRequest, SnapshotRequest } from "./types.ts";

/** Reads a stream in chunks of a chosen size, tracking position and checksum. */
class SnapshotCursor {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffered: Uint8Array[] = [];
  #bufferedBytes = 0;
  #ended = false;
  /** Bytes consumed so far. */
  position = 0;
  /** CRC-32C of the bytes consumed so far. */
  crc = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Whether every byte was consumed. */
  get atEnd(): boolean {
    return this.#ended && this.#bufferedBytes === 0;
  }

  async #fill(bytes: number): Promise<void> {
    while (!this.#ended && this.#bufferedBytes < bytes) {
      const { done, value } = await this.#reader.read();
      if (done) this.#ended = true;
      else if (value.length > 0) {
        this.#buffered.push(value);
        this.#bufferedBytes += value.length;
      }
    }
  }

  /**
   * Consumes up to `maxBytes`; afterwards {@link atEnd} tells whether that was the last
   * piece (one byte of lookahead is read to know).
   */
  async read(maxBytes: number): Promise<Uint8Array> {
    await this.#fill(maxBytes + 1);
    const size = Math.min(maxBytes, this.#bufferedBytes);
    const out = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const head = this.#buffered[0]!;
      const take = Math.min(head.length, size - filled);
      out.set(head.subarray(0, take), filled);
      filled += take;
      if (take === head.length) this.#buffered.shift();
      else this.#buffered[0] = head.subarray(take);
    }
    this.#bufferedBytes -= size;
    this.position += size;
    this.crc = crc32c(out, this.crc);
    return out;
  }

  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** What happened to a snapshot sent to a follower. */
export interface SendOutcome {
  /** Whether the follower installed it. */
  installed: boolean;
  /** The snapshot's last index (0 when none was stored). */
  lastIndex: number;
  /** A higher term the follower answered with, if any. */
  newerTerm?: number;
}

/** What {@link sendSnapshot} needs from the server. */
export interface SnapshotSendOptions {
  storage: Storage;
  transporter: Transporter;
  sender: TransportSender;
  peer: PeerInfo;
  /** The leader's term and name, stamped on every message. */
  term: number;
  leaderName: string;
  chunkBytes: number;
  /** Whether this server still leads in `term`; the transfer stops once it does not. */
  stillLeading: () => boolean;
  /** Called with each chunk's size before it is sent (for stats). */
  onChunk?: (bytes: number) => void;
}

/**
 * Sends the stored snapshot to a follower chunk by chunk, resuming where the follower says
 * it stands; the checksum travels with the last chunk.
 * @throws Error when no snapshot is stored or the transport keeps failing
 */
export async function sendSnapshot(options: SnapshotSendOptions): Promise<SendOutcome> {
  const { storage, transporter, sender, peer, term, leaderName, chunkBytes } = options;
  const first = await storage.loadSnapshot();
  if (first === undefined) throw new Error("no snapshot is stored");
  const meta = first.meta;
  let stored: StoredSnapshot = first;
  let cursor = new SnapshotCursor(stored.data);
  const outcome = (installed: boolean, newerTerm?: number): SendOutcome => ({
    installed,
    lastIndex: meta.lastIndex,
    ...(newerTerm !== undefined ? { newerTerm } : {}),
  });
  /** Moves the cursor to `offset`, reopening the stored snapshot to go back. */
  const seek = async (offset: number) => {
    if (offset < cursor.position) {
      await cursor.close();
      const again = await storage.loadSnapshot();
      if (
        again === undefined || again.meta.lastIndex !== meta.lastIndex ||
        again.meta.lastTerm !== meta.lastTerm
      ) {
        await again?.data.cancel();
        throw new Error("the stored snapshot changed during the transfer");
      }
      stored = again;
      cursor = new SnapshotCursor(stored.data);
    }
    while (cursor.position < offset && !cursor.atEnd) {
      await cursor.read(Math.min(chunkBytes, offset - cursor.position));
    }
  };
  try {
    const base = { term, leaderName, lastIndex: meta.lastIndex, lastTerm: meta.lastTerm };
    const announce = await transporter.sendSnapshotRequest(sender, peer, {
      ...base,
      size: stored.size ?? 0,
    });
    if (announce.term > term) return outcome(false, announce.term);
    if (!announce.success) return outcome(false);
    await seek(announce.nextOffset);
    let offset = cursor.position;
    let data = await cursor.read(chunkBytes);
    let retries = 0;
    for (;;) {
      if (!options.stillLeading()) return outcome(false);
      const done = cursor.atEnd;
      options.onChunk?.(data.length);
      let response;
      try {
        response = await transporter.sendSnapshotRecoveryRequest(sender, peer, {
          ...base,
          peers: meta.peers,
          offset,
          data,
          done,
          checksum: done ? cursor.crc : 0,
        });
      } catch (error) {
        if (++retries > 3) throw error;
        continue; // the same chunk again
      }
      if (response.term > term) return outcome(false, response.term);
      if (!response.success) {
        // The follower lost track (a restart, a timeout) or never started: resume where it is.
        if (response.nextOffset === 0 && offset === 0) return outcome(false);
        if (++retries > 3) return outcome(false);
        await seek(response.nextOffset);
        offset = cursor.position;
        data = await cursor.read(chunkBytes);
        continue;
      }
      if (done) return outcome(true);
      offset = cursor.position;
      data = await cursor.read(chunkBytes);
    }
  } finally {
    await cursor.close();
  }
}

/** Collects a snapshot in memory for a storage without {@link Storage.createSnapshot}. */
class BufferedSink implements SnapshotSink {
  #chunks: Uint8Array[] = [];
  constructor(readonly storage: Storage, readonly meta: SnapshotMeta) {}
  write(chunk: Uint8Array): Promise<void> {
    this.#chunks.push(chunk);
    return Promise.resolve();
  }
  commit(): Promise<void> {
    const total = this.#chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const data = new Uint8Array(total);
    let at = 0;
    for (const chunk of this.#chunks) {
      data.set(chunk, at);
      at += chunk.length;
    }
    this.#chunks = [];
    return this.storage.saveSnapshot(this.meta, data);
  }
  cancel(): Promise<void> {
    this.#chunks = [];
    return Promise.resolve();
  }
}

/** The outcome of one received chunk. */
export type ReceiveResult =
  /** Not the expected snapshot or offset: the reply carries where this server stands. */
  | { kind: "rejected" }
  /** Written; more chunks follow. */
  | { kind: "accepted" }
  /** The last chunk; the checksum matched. The caller commits `sink` or cancels it. */
  | { kind: "complete"; meta: SnapshotMeta; sink: SnapshotSink }
  /** The last chunk, but the checksum did not match: everything was discarded. */
  | { kind: "corrupt" };

interface Incoming {
  lastIndex: number;
  lastTerm: number;
  /** Bytes accepted so far (also counts a chunk whose write is still under way). */
  received: number;
  crc: number;
  sink: Promise<SnapshotSink> | undefined;
}

/** A follower's side of a snapshot transfer. */
export class SnapshotReceiver {
  readonly #storage: Storage;
  #incoming: Incoming | undefined;

  /** Creates an instance. @param storage where received snapshots are written */
  constructor(storage: Storage) {
    this.#storage = storage;
  }

  /** Bytes received of the snapshot under way (0 when none). */
  get received(): number {
    return this.#incoming?.received ?? 0;
  }

  /**
   * Handles the announcement of a snapshot.
   * @returns the offset to continue from (0 for a snapshot not seen before)
   */
  async begin(req: SnapshotRequest): Promise<number> {
    const incoming = this.#incoming;
    if (incoming?.lastIndex === req.lastIndex && incoming.lastTerm === req.lastTerm) {
      return incoming.received;
    }
    await this.abort();
    this.#incoming = {
      lastIndex: req.lastIndex,
      lastTerm: req.lastTerm,
      received: 0,
      crc: 0,
      sink: undefined,
    };
    return 0;
  }

  /** Writes one chunk; see {@link ReceiveResult}. */
  async receive(req: SnapshotRecoveryRequest): Promise<ReceiveResult> {
    const incoming = this.#incoming;
    if (
      incoming === undefined || incoming.lastIndex !== req.lastIndex ||
      incoming.lastTerm !== req.lastTerm || req.offset !== incoming.received
    ) {
      return { kind: "rejected" };
    }
    const meta: SnapshotMeta = {
      lastIndex: req.lastIndex,
      lastTerm: req.lastTerm,
      peers: req.peers,
    };
    // Claimed before the write is awaited, so a duplicate of this chunk is rejected.
    incoming.received += req.data.length;
    incoming.crc = crc32c(req.data, incoming.crc);
    incoming.sink ??= this.#storage.createSnapshot
      ? this.#storage.createSnapshot(meta)
      : Promise.resolve(new BufferedSink(this.#storage, meta));
    try {
      const sink = await incoming.sink;
      await sink.write(req.data.slice());
      if (!req.done) return { kind: "accepted" };
      if (this.#incoming !== incoming) return { kind: "rejected" };
      this.#incoming = undefined;
      if (incoming.crc !== req.checksum) {
        await sink.cancel();
        return { kind: "corrupt" };
      }
      return { kind: "complete", meta, sink };
    } catch (error) {
      if (this.#incoming === incoming) await this.abort();
      throw error;
    }
  }

  /** Discards the snapshot under way, if any. */
  async abort(): Promise<void> {
    const incoming = this.#incoming;
    this.#incoming = undefined;
    if (incoming?.sink === undefined) return;
    try {
      await (await incoming.sink).cancel();
    } catch {
      // The sink never opened, or discarding failed: nothing more to undo here.
    }
  }
}
