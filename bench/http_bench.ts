/**
 * Benchmark of `@tsraft/transport-http`: AppendEntries round trips per second over a real
 * loopback server (Deno.serve, Bun.serve or @hono/node-server, whichever runtime runs
 * it), with 1 and 100 entries per request, one at a time and 32 in flight.
 *
 * Run: `deno run -A bench/http_bench.ts` (or `bun bench/http_bench.ts`).
 * @module
 */
import { Hono } from "hono";
import { HttpTransporter, makeHttpClient } from "@tsraft/transport-http";
import type { AppendEntriesRequest, PeerInfo } from "@tsraft/core";
import { serveOnLoopback } from "../packages/transport-http/_serve.ts";
import { EchoHandler, makeEntries } from "../packages/transport-http/_test_util.ts";
import { runFor, runtimeName } from "./_measure.ts";

/** How long each case runs, after a short warm-up. */
const CASE_MS = 1500;
const WARMUP_MS = 300;
const COMMAND_BYTES = 64;

interface Case {
  key: string;
  label: string;
  entries: number;
  inFlight: number;
}

const CASES: Case[] = [
  { key: "http_append1_seq_rps", label: "1 entry, sequential", entries: 1, inFlight: 1 },
  { key: "http_append1_c32_rps", label: "1 entry, 32 in flight", entries: 1, inFlight: 32 },
  { key: "http_append100_seq_rps", label: "100 entries, sequential", entries: 100, inFlight: 1 },
  {
    key: "http_append100_c32_rps",
    label: "100 entries, 32 in flight",
    entries: 100,
    inFlight: 32,
  },
];

/**
 * Measures AppendEntries round trips per second for each case.
 * @returns round trips per second, keyed by case (e.g. `http_append1_seq_rps`)
 */
export async function benchHttp(): Promise<Record<string, number>> {
  const handler = new EchoHandler("follower");
  const app = new Hono();
  const transporter = new HttpTransporter({ client: makeHttpClient(10_000) });
  transporter.install(handler, app);
  const server = await serveOnLoopback(app.fetch);
  const peer: PeerInfo = { name: "follower", connectionString: `127.0.0.1:${server.port}` };
  const results: Record<string, number> = {};
  try {
    for (const spec of CASES) {
      const request: AppendEntriesRequest = {
        term: 3,
        prevLogIndex: 1000,
        prevLogTerm: 3,
        commitIndex: 990,
        leaderName: "leader",
        entries: makeEntries(spec.entries, COMMAND_BYTES, 1000),
        heartbeatSeq: 0,
      };
      const send = () => transporter.sendAppendEntriesRequest({ name: "leader" }, peer, request);
      await runFor(WARMUP_MS, send, spec.inFlight);
      // The handler records requests; drop them so memory stays flat across cases.
      handler.seen.length = 0;
      const { count, elapsedMs } = await runFor(CASE_MS, send, spec.inFlight);
      handler.seen.length = 0;
      results[spec.key] = Math.round(count / (elapsedMs / 1000));
    }
  } finally {
    transporter.close();
    await server.close();
  }
  return results;
}

if (import.meta.main) {
  const results = await benchHttp();
  console.log(`HTTP transport, AppendEntries round trips/s over loopback (${runtimeName()})`);
  console.log(`${"case".padEnd(28)}${"round trips/s".padStart(14)}`);
  for (const spec of CASES) {
    console.log(`${spec.label.padEnd(28)}${String(results[spec.key]).padStart(14)}`);
  }
}
