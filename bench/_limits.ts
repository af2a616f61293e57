/**
 * The machine's limits that a replicated commit cannot beat, measured in the same run as
 * the clusters: the disk's "write 256 B + fdatasync" rate and a loopback TCP round trip
 * between two processes.
 * @module
 */
import { createConnection } from "node:net";
import { type FileHandle, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { percentile, round } from "./_load.ts";
import { NodeProcess } from "./_node_process.ts";

/** Rate and latency of a sequential operation. */
export interface Limit {
  perSec: number;
  p50Ms: number;
  p99Ms: number;
}

function limitOf(latenciesMs: number[], elapsedMs: number): Limit {
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    perSec: Math.round(sorted.length / (elapsedMs / 1000)),
    p50Ms: round(percentile(sorted, 0.5), 4),
    p99Ms: round(percentile(sorted, 0.99), 4),
  };
}

/**
 * Appends 256 bytes and fdatasyncs, in a loop, through `node:fs/promises` (what
 * FileStorage uses); with `writers > 1`, that many loops run at once on their own files, as
 * the three nodes of a cluster on one disk do.
 * @param parentDir where the files go (the disk the clusters use)
 * @param durationMs how long to measure
 * @param writers concurrent loops
 * @returns the total rate, and the latency of one write + fdatasync
 */
export async function measureFdatasync(
  parentDir: string,
  durationMs: number,
  writers = 1,
): Promise<Limit> {
  const dir = await mkdtemp(join(parentDir, "tsraft-fsync-"));
  const files = await Promise.all(
    Array.from({ length: writers }, (_, i) => open(join(dir, `probe${i}`), "w")),
  );
  const chunk = new Uint8Array(256).fill(7);
  const latencies: number[] = [];
  const warmupEnd = performance.now() + Math.min(200, durationMs / 4);
  const start = warmupEnd;
  const end = start + durationMs;
  async function loop(file: FileHandle): Promise<void> {
    let position = 0;
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      await file.write(chunk, 0, chunk.length, position);
      position += chunk.length;
      await file.datasync();
      if (t0 >= start) latencies.push(performance.now() - t0);
    }
  }
  try {
    await Promise.all(files.map(loop));
    return limitOf(latencies, performance.now() - start);
  } finally {
    await Promise.all(files.map((file) => file.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Ping-pongs 64-byte messages with an echo server in another process over loopback
 * `node:net`, one at a time.
 * @param durationMs how long to measure
 * @returns round trips per second and the round-trip latency
 */
export async function measureLoopbackRtt(durationMs: number): Promise<Limit> {
  const echo = NodeProcess.spawn({
    mode: "echo",
    name: "echo",
    transport: "tcp",
    storage: "file",
    dir: tmpdir(),
    electionTimeoutMs: 0,
    heartbeatIntervalMs: 0,
  });
  try {
    const port = await echo.port();
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const message = new Uint8Array(64).fill(1);
    let received = 0;
    let onEcho: () => void = () => {};
    socket.on("data", (chunk: Uint8Array) => {
      received += chunk.length;
      if (received >= message.length) {
        received -= message.length;
        onEcho();
      }
    });
    const roundTrip = () =>
      new Promise<void>((resolve) => {
        onEcho = resolve;
        socket.write(message);
      });
    const warmupEnd = performance.now() + Math.min(200, durationMs / 4);
    while (performance.now() < warmupEnd) await roundTrip();
    const latencies: number[] = [];
    const start = performance.now();
    const end = start + durationMs;
    while (performance.now() < end) {
      const t0 = performance.now();
      await roundTrip();
      latencies.push(performance.now() - t0);
    }
    socket.destroy();
    return limitOf(latencies, performance.now() - start);
  } finally {
    await echo.close();
  }
}
