/**
 * Drives an HTTP service with wrk (Debian's `wrk` package, installed on first use when
 * missing): closed-loop keep-alive connections, latency percentiles from wrk's own
 * histogram, and the CPU the load generator itself spent.
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One wrk run. */
export interface WrkResult {
  /** Open connections, each a closed-loop client. */
  clients: number;
  /** Requests completed. */
  requests: number;
  /** Answers that were not 2xx/3xx, plus connect/read/write errors and timeouts. */
  errors: number;
  /** Of those, the answers that were not 2xx/3xx (the rest are socket errors and timeouts). */
  statusErrors: number;
  elapsedMs: number;
  requestsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** CPU (user + system) the load generator spent, in ms. */
  loadCpuMs: number;
}

/** Options of {@link runWrk}. */
export interface WrkOptions {
  /** Base URL, e.g. `http://127.0.0.1:4001`. */
  url: string;
  method: "GET" | "PUT";
  /** Connections (closed-loop clients). */
  clients: number;
  durationMs: number;
  /** Body size of a PUT, in bytes. @default 100 */
  valueBytes?: number;
  /** Requests cycle through the keys `/kv/k0` .. `/kv/k<keys-1>`. @default 1000 */
  keys?: number;
  /** wrk threads. @default min(2, clients) */
  threads?: number;
}

const SCRIPT = `
local method, body, keys, counter = "GET", nil, 1000, 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end
function init(args)
  method = args[1]
  local size = tonumber(args[2])
  keys = tonumber(args[3])
  if size > 0 then body = string.rep("v", size) end
  counter = offset or 0
end
function request()
  counter = counter + 1
  return wrk.format(method, "/kv/k" .. (counter % keys), nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@@wrk {"requests":%d,"durationUs":%d,"errors":%d,"statusErrors":%d,"p50Us":%.1f,' ..
    '"p90Us":%.1f,"p99Us":%.1f,"maxUs":%.1f,"meanUs":%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
`;

let scriptPath: Promise<string> | undefined;

/**
 * Makes sure `wrk` is on the PATH, installing Debian's package when it is missing and we
 * are root.
 * @throws Error when it is missing and cannot be installed
 */
export function ensureWrk(): void {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  const install = spawnSync("apt-get", ["install", "-y", "wrk"], { stdio: "ignore" });
  if (install.status !== 0 || spawnSync("wrk", ["--version"]).error !== undefined) {
    throw new Error("The kv service bench needs wrk: apt-get install -y wrk");
  }
}

/**
 * Runs wrk against the kv API and parses its summary.
 * @param options target, method, connections, duration
 * @returns throughput, latency percentiles and the generator's CPU
 */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  scriptPath ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsraft-wrk-"));
    const path = join(dir, "kv.lua");
    await writeFile(path, SCRIPT);
    return path;
  })();
  const script = await scriptPath;
  const threads = options.threads ?? Math.min(2, options.clients);
  const seconds = Math.max(1, Math.round(options.durationMs / 1000));
  const wrk = [
    "wrk",
    `-t${threads}`,
    `-c${options.clients}`,
    `-d${seconds}s`,
    "--timeout",
    "10s",
    "-s",
    script,
    options.url,
    "--",
    options.method,
    String(options.method === "PUT" ? options.valueBytes ?? 100 : 0),
    String(options.keys ?? 1000),
  ].map((arg) => `'${arg}'`).join(" ");
  // bash's `times` reports the CPU of its finished children: wrk's own cost.
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn("bash", ["-c", `${wrk}; times`], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (chunk: Uint8Array) => text += new TextDecoder().decode(chunk));
    child.stderr.on("data", (chunk: Uint8Array) => text += new TextDecoder().decode(chunk));
    child.once("error", reject);
    child.once("exit", () => resolve(text));
  });
  const line = output.split("\n").find((l) => l.startsWith("@@wrk "));
  if (line === undefined) throw new Error(`wrk printed no summary:\n${output}`);
  const s = JSON.parse(line.slice(6)) as Record<string, number>;
  const times = output.trim().split("\n").slice(-1)[0] ?? "";
  const cpu = [...times.matchAll(/(\d+)m([\d.]+)s/g)]
    .reduce((total, m) => total + Number(m[1]) * 60_000 + Number(m[2]) * 1000, 0);
  const ms = (us: number) => Math.round(us) / 1000;
  const elapsedMs = s.durationUs! / 1000;
  return {
    clients: options.clients,
    requests: s.requests!,
    errors: s.errors!,
    statusErrors: s.statusErrors!,
    elapsedMs: Math.round(elapsedMs),
    requestsPerSec: Math.round(s.requests! / (elapsedMs / 1000)),
    p50Ms: ms(s.p50Us!),
    p90Ms: ms(s.p90Us!),
    p99Ms: ms(s.p99Us!),
    maxMs: ms(s.maxUs!),
    meanMs: ms(s.meanUs!),
    loadCpuMs: Math.round(cpu),
  };
}

/**
 * CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
 * @param pid the process
 * @returns milliseconds, or NaN when unreadable
 */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of proc(5) (utime, stime), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}
