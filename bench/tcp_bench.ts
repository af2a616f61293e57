/**
 * Round trips per second of {@link TcpTransporter} over loopback, next to a bare `node:net`
 * echo of frames of the same size measured in the same run, so the figures say how much
 * the transport (codec, framing, handshake-checked connection, promises) costs on top of
 * the socket itself.
 *
 * Run: `deno run -A bench/tcp_bench.ts` (also `bun bench/tcp_bench.ts`).
 * @module
 */
import { createConnection, createServer, type Socket } from "node:net";
import {
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  encodeMessage,
  type RaftHandler,
} from "@tsraft/core";
import { TcpTransporter } from "@tsraft/transport-tcp";

const DURATION_MS = 1000;
const COMMAND_BYTES = 128;
const IN_FLIGHT = 32;

function request(entryCount: number, seq: number): AppendEntriesRequest {
  const entries = Array.from({ length: entryCount }, (_, i) => ({
    index: seq * entryCount + i + 1,
    term: 3,
    commandName: "kv:set",
    command: new Uint8Array(COMMAND_BYTES).fill(i),
  }));
  return {
    term: 3,
    prevLogIndex: seq * entryCount,
    prevLogTerm: 3,
    commitIndex: seq * entryCount,
    leaderName: "leader",
    entries,
    heartbeatSeq: seq,
  };
}

function respond(req: AppendEntriesRequest): Promise<AppendEntriesResponse> {
  return Promise.resolve({
    term: req.term,
    index: req.prevLogIndex + req.entries.length,
    commitIndex: req.commitIndex,
    success: true,
    conflictTerm: 0,
    heartbeatSeq: req.heartbeatSeq,
  });
}

/** Runs `once` with `concurrency` workers for DURATION_MS; returns completed calls per second. */
async function measure(concurrency: number, once: (seq: number) => Promise<void>): Promise<number> {
  let seq = 0;
  let done = 0;
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      await once(seq++);
      done++;
    }
  }));
  return Math.round(done / ((performance.now() - start) / 1000));
}

async function benchTransporter(results: Record<string, number>): Promise<void> {
  const handler = { name: "follower", appendEntries: respond } as unknown as RaftHandler;
  const server = new TcpTransporter();
  const { port } = await server.listen(handler, { port: 0 });
  const client = new TcpTransporter();
  const peer = { name: "follower", connectionString: `127.0.0.1:${port}` };
  const sender = { name: "leader" };
  try {
    for (const entries of [1, 100]) {
      // Requests are built ahead so the figure is the transport, not object construction.
      const prepared = Array.from({ length: 64 }, (_, i) => request(entries, i));
      const once = async (seq: number) => {
        const response = await client.sendAppendEntriesRequest(
          sender,
          peer,
          prepared[seq % prepared.length]!,
        );
        if (!response.success) throw new Error("AppendEntries failed");
      };
      await measure(1, once); // warm up: JIT, connection, handshake
      results[`tcp_ae${entries}_seq_rps`] = await measure(1, once);
      results[`tcp_ae${entries}_inflight${IN_FLIGHT}_rps`] = await measure(IN_FLIGHT, once);
    }
  } finally {
    await client.close();
    await server.close();
  }
}

/** Echo server + client exchanging opaque frames of `frameBytes`; counts echoed frames. */
async function benchBareSocket(results: Record<string, number>): Promise<void> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const socket: Socket = createConnection({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once("connect", resolve));
  let received = 0;
  let waiters: { bytes: number; resolve: () => void }[] = [];
  socket.on("data", (chunk: Uint8Array) => {
    received += chunk.byteLength;
    waiters = waiters.filter((w) => received >= w.bytes ? (w.resolve(), false) : true);
  });
  let sent = 0;
  try {
    for (const entries of [1, 100]) {
      // Same size as the transport's frame: 10-byte header + protobuf payload.
      const frame = new Uint8Array(
        10 + encodeMessage("appendEntriesRequest", request(entries, 1)).byteLength,
      );
      const once = () => {
        sent += frame.byteLength;
        const until = sent;
        socket.write(frame);
        return new Promise<void>((resolve) => waiters.push({ bytes: until, resolve }));
      };
      await measure(1, once);
      results[`net_ae${entries}_seq_rps`] = await measure(1, once);
      results[`net_ae${entries}_inflight${IN_FLIGHT}_rps`] = await measure(IN_FLIGHT, once);
      results[`ae${entries}_frame_bytes`] = frame.byteLength;
    }
  } finally {
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

/**
 * Measures AppendEntries round trips per second over loopback with 1 and 100 entries, one
 * at a time and with 32 in flight, for TcpTransporter and for a bare node:net echo.
 * @returns figures keyed like `tcp_ae100_inflight32_rps`, `net_ae1_seq_rps`, `ae1_frame_bytes`
 */
export async function benchTcp(): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  await benchBareSocket(results);
  await benchTransporter(results);
  return results;
}

if (import.meta.main) {
  const results = await benchTcp();
  const rows = [];
  for (const entries of [1, 100]) {
    for (const mode of ["seq", `inflight${IN_FLIGHT}`]) {
      const tcp = results[`tcp_ae${entries}_${mode}_rps`]!;
      const net = results[`net_ae${entries}_${mode}_rps`]!;
      rows.push({
        entries,
        mode,
        "frame bytes": results[`ae${entries}_frame_bytes`],
        "TcpTransporter rt/s": tcp,
        "bare node:net rt/s": net,
        "transport/bare": Number((tcp / net).toFixed(2)),
      });
    }
  }
  console.table(rows);
}
