/**
 * One Raft node process of the cluster benchmarks, driven by `bench/main.ts` through
 * JSON lines: instructions on stdin, answers on stdout prefixed with {@link REPLY_PREFIX}
 * (anything else on stdout is a log line). The load generator runs inside the leader, so a
 * measured commit is `server.do()` itself, not an HTTP client's overhead.
 *
 * Usage: `deno run -A --unstable-kv bench/_bench_node.ts '<NodeConfig as JSON>'`.
 *
 * Lifecycle: the node listens on a free loopback port with a handler that forwards to a
 * server created later and prints `{"event":"listening","port":N}`; `start` (with the
 * peers' addresses) creates and starts the server; `status`, `bench`, `stats`, `trace`,
 * `memory` (the process's memory use and the server's snapshot counters) and `stop`
 * follow. The node exits when stdin closes, so a dying parent leaves no orphans.
 * With `"mode":"echo"` it is instead a bare node:net echo server (the loopback RTT limit).
 * @module
 */
import { createServer as createNetServer } from "node:net";
import { createInterface } from "node:readline";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import { createServer, LEADER, type Server, type Storage, type Transporter } from "@tsraft/core";
import { TcpTransporter } from "@tsraft/transport-tcp";
import { HttpTransporter } from "@tsraft/transport-http";
import { FileStorage } from "@tsraft/storage-file";
import { KvStorage } from "@tsraft/storage-kv";
import { serveOnLoopback } from "../packages/transport-http/_serve.ts";
import {
  forwardingHandler,
  instrumentStorage,
  instrumentTransporter,
  NodeStats,
} from "./_instrument.ts";
import { benchRegistry, CounterStateMachine, runClients } from "./_load.ts";
import { type Instruction, type NodeConfig, REPLY_PREFIX } from "./_protocol.ts";

function reply(message: Record<string, unknown>): void {
  process.stdout.write(REPLY_PREFIX + JSON.stringify(message) + "\n");
}

async function runEcho(): Promise<void> {
  const server = createNetServer((socket) => {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => socket.write(chunk));
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  reply({ event: "listening", port: address.port });
  const lines = createInterface({ input: process.stdin });
  for await (const _ of lines) { /* the parent only closes stdin */ }
  server.close();
  process.exit(0);
}

async function runNode(config: NodeConfig): Promise<void> {
  const stats = new NodeStats();
  const instrument = config.instrument ?? true;
  let server: Server | undefined;
  const handler = forwardingHandler(config.name, () => server, instrument ? stats : undefined);

  let transporter: Transporter;
  let port: number;
  let closeTransport: () => Promise<void>;
  if (config.transport === "tcp") {
    const tcp = new TcpTransporter({ clusterId: "bench", logger: () => {} });
    port = (await tcp.listen(handler, { hostname: "127.0.0.1", port: 0 })).port;
    transporter = tcp;
    closeTransport = () => tcp.close();
  } else {
    const http = new HttpTransporter({ clusterId: "bench" });
    const app = new Hono();
    http.install(handler, app);
    const listener = await serveOnLoopback(app.fetch);
    port = listener.port;
    transporter = http;
    closeTransport = async () => {
      http.close();
      await listener.close();
    };
  }
  reply({ event: "listening", port });

  async function stop(): Promise<void> {
    await server?.stop();
    await closeTransport();
  }

  async function handle(instruction: Instruction): Promise<Record<string, unknown>> {
    switch (instruction.op) {
      case "start": {
        const storage: Storage = config.storage === "file"
          ? new FileStorage(join(config.dir, "raft"), { fsync: config.fsync ?? true })
          : new KvStorage({ path: join(config.dir, "raft.sqlite") });
        server = createServer({
          name: config.name,
          connectionString: instruction.connectionString,
          peers: instruction.peers,
          transporter: instrument ? instrumentTransporter(transporter, stats) : transporter,
          storage: instrument ? instrumentStorage(storage, stats) : storage,
          stateMachine: new CounterStateMachine(),
          registry: benchRegistry(),
          electionTimeoutMs: config.electionTimeoutMs,
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          ...(config.maxInflightMessages === undefined
            ? {}
            : { maxInflightMessages: config.maxInflightMessages }),
          ...(config.snapshotThreshold === undefined
            ? {}
            : { snapshotThreshold: config.snapshotThreshold }),
        });
        server.addEventListener("leaderChange", () => stats.leaderChanges++);
        await server.start();
        return { ok: true };
      }
      case "status":
        return {
          ok: true,
          state: server?.state ?? "none",
          leader: server?.leader ?? "",
          term: server?.term ?? 0,
          commitIndex: server?.commitIndex ?? 0,
        };
      case "bench": {
        if (server === undefined || server.state !== LEADER) {
          return { ok: false, error: `${config.name} is not the leader` };
        }
        const leaderChangesBefore = stats.leaderChanges;
        setTimeout(() => stats.reset(), instruction.warmupMs);
        const result = await runClients(server, instruction);
        return {
          ok: true,
          result,
          stats: stats.summary(),
          leaderChanges: stats.leaderChanges - leaderChangesBefore,
        };
      }
      case "stats": {
        const summary = stats.summary();
        if (instruction.reset) stats.reset();
        return { ok: true, stats: summary };
      }
      case "trace":
        return { ok: true, trace: Object.fromEntries(stats.trace) };
      case "memory": {
        // From inside the process, so it reads the same on Linux, macOS, Node and Bun.
        const usage = process.memoryUsage();
        const serverStats = server?.stats();
        return {
          ok: true,
          rssBytes: usage.rss,
          heapUsedBytes: usage.heapUsed,
          state: server?.state ?? "none",
          snapshotsTaken: serverStats?.counters.snapshotsTaken ?? 0,
          logEntries: serverStats === undefined
            ? 0
            : serverStats.lastIndex - serverStats.snapshotIndex,
        };
      }
      case "stop":
        await stop();
        return { ok: true };
    }
  }

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    const instruction = JSON.parse(line) as Instruction;
    // Instructions run concurrently: `status` must answer while a `bench` runs.
    handle(instruction).then(
      (answer) => reply({ id: instruction.id, ...answer }),
      (error) => reply({ id: instruction.id, ok: false, error: String(error) }),
    ).finally(() => {
      if (instruction.op === "stop") process.exit(0);
    });
  }
  // stdin closed: the parent is gone or done.
  await stop().catch(() => {});
  process.exit(0);
}

// Node before 24.2 has no import.meta.main: compare the script path instead.
if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  const config = JSON.parse(process.argv[2] ?? "{}") as NodeConfig;
  if (config.mode === "echo") await runEcho();
  else await runNode(config);
}
