/**
 * `deno task cluster`: starts a local cluster of examples/kv nodes as separate processes
 * and serves a live dashboard. Run with `--help` for the options.
 * @module
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import {
  ADMIN_PORT_OFFSET,
  fetchStatus,
  freePorts,
  type LocalClusterSpec,
  NodeProcess,
  type NodeStatus,
  waitFor,
  waitForLeader,
} from "./kv/node_process.ts";
import type { NodeStats } from "./kv/metrics.ts";

const HELP = `Usage: deno task cluster [options] [-- extra node options]

Starts a local tsraft key-value cluster (one process per node, on 127.0.0.1) and a live
dashboard: each node's indexes, the leader's view of its followers, throughput and commit
latency, the log tails; from the page, kill/restart/partition nodes, add a node (a new
process that joins through the leader), remove one, transfer leadership. Ctrl-C stops
everything.

  --nodes N              number of nodes (default 3)
  --transport tcp|http   raft transport (default tcp)
  --storage file|kv      storage (default file)
  --data DIR             keep data in DIR/<id> (default: a temporary directory, removed
                         on exit)
  --base-port P          client port of the first node; node i uses P+i, and with tcp the
                         raft port is +1000; the admin API (loopback, token known only
                         to this launcher) is +2000 (default 4001, or free ports when
                         those are taken; 0 picks free ports)
  --dashboard-port P     dashboard port (default 8080, or a free one when taken; 0 picks a free port)
  -h, --help             this text

Anything after -- is passed to every node (e.g. -- --election-timeout-ms 500).`;

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    nodes: { type: "string", default: "3" },
    transport: { type: "string", default: "tcp" },
    storage: { type: "string", default: "file" },
    data: { type: "string" },
    "base-port": { type: "string" },
    "dashboard-port": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const count = Number(values.nodes);
const raftOffsets = [values.transport === "tcp" ? 1000 : 0, ADMIN_PORT_OFFSET];
// The default ports are used when they are free; when another run holds them, free ports
// are picked instead (an explicit --base-port or --dashboard-port is used as given).
const basePort = values["base-port"] !== undefined
  ? Number(values["base-port"])
  : await portsFree([4001, 4002, 4003].slice(0, Number(values.nodes)), raftOffsets)
  ? 4001
  : 0;
const dashboardPort = values["dashboard-port"] !== undefined
  ? Number(values["dashboard-port"])
  : await portsFree([8080], [])
  ? 8080
  : 0;
if (!Number.isInteger(count) || count < 1 || count > 9) fail("--nodes must be 1..9");
if (!Number.isInteger(basePort) || basePort < 0) fail("--base-port must be a port");
if (!Number.isInteger(dashboardPort) || dashboardPort < 0) fail("--dashboard-port must be a port");
if (values.transport !== "tcp" && values.transport !== "http") fail("--transport is tcp or http");
if (values.storage !== "file" && values.storage !== "kv") fail("--storage is file or kv");
const transport = values.transport;
const storage = values.storage;

/** Whether every port, and every port plus each offset, can be bound on 127.0.0.1 now. */
async function portsFree(ports: number[], offsets: number[]): Promise<boolean> {
  const wanted = ports.flatMap((
    port,
  ) => [port, ...offsets.filter((o) => o !== 0).map((o) => port + o)]);
  for (const port of wanted) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

function fail(message: string): never {
  console.error(`${message}\n\n${HELP}`);
  process.exit(2);
}

const ownsData = values.data === undefined;
const dataRoot = values.data !== undefined
  ? resolve(values.data)
  : await mkdtemp(join(tmpdir(), "tsraft-cluster-"));
const ports = basePort === 0
  ? await freePorts(count, transport === "tcp" ? 1000 : 0, ADMIN_PORT_OFFSET)
  : Array.from({ length: count }, (_, i) => basePort + i);

// The nodes serve their admin API (partition, heal) on loopback behind this token; only the
// launcher knows it, and the dashboard goes through the launcher.
const adminToken = crypto.randomUUID();
const spec: LocalClusterSpec = {
  nodes: ports.map((port, i) => ({ id: `n${i + 1}`, port })),
  dataRoot,
  transport,
  storage,
  extraArgs: ["--admin", ...positionals],
  env: { TSRAFT_KV_ADMIN_TOKEN: adminToken },
  onOutput: (id, line) => console.log(`[${id}] ${line}`),
};
const nodes = spec.nodes.map((node) => new NodeProcess(spec, node.id));
for (const node of nodes) node.start();

const dashboard = await serveDashboard(dashboardPort);
console.log(`Dashboard listening on ${dashboard.url}`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping ${nodes.length} nodes`);
  await Promise.all(nodes.map(async (node) => {
    await Promise.race([
      node.kill("SIGTERM"),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    await node.kill("SIGKILL");
  }));
  await dashboard.close();
  if (ownsData) await rm(dataRoot, { recursive: true, force: true });
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

try {
  const leader = await waitForLeader(nodes.map((node) => node.url), { timeoutMs: 20_000 });
  const follower = nodes.find((node) => node.id !== leader.id) ?? nodes[0]!;
  console.log(`
tsraft KV cluster: ${count} nodes, ${transport} transport, ${storage} storage
data: ${dataRoot}${ownsData ? " (temporary)" : ""}
${
    nodes.map((node) => `  ${node.id}  ${node.url}${node.id === leader.id ? "  (leader)" : ""}`)
      .join("\n")
  }

Dashboard: ${dashboard.url}

Try:
  curl -X PUT ${follower.url}/kv/greeting -d hello
  curl ${follower.url}/kv/greeting
  curl -i '${follower.url}/kv/greeting?noforward'
  curl -X POST ${leader.leaderUrl}/kv/greeting/cas -d '{"expect":"hello","value":"hi"}'
  curl -X PUT -H 'x-client-id: me' -H 'x-request-seq: 1' ${follower.url}/kv/once -d 1
  curl ${leader.leaderUrl}/status
  curl ${leader.leaderUrl}/metrics

Ctrl-C stops the cluster.`);
} catch (error) {
  console.error(String(error));
}

async function serveDashboard(port: number): Promise<{ url: string; close(): Promise<void> }> {
  const page = await readFile(new URL("./dashboard.html", import.meta.url), "utf8");
  const app = new Hono();
  const byId = (id: string) => nodes.find((node) => node.id === id);
  /** Names given to nodes added from the page; never reused (a name is a data directory). */
  let nextId = nodes.length + 1;
  const changing = { busy: false };

  /** POSTs to a node's admin API (loopback, with the launcher's token). */
  async function admin(node: NodeProcess, action: string, body: unknown, timeoutMs = 2000) {
    const response = await fetch(`${node.adminUrl}/admin/${action}`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, body: await response.json() as Record<string, unknown> };
  }

  /** The running node that says it leads, in the highest term. */
  async function leaderNode(): Promise<NodeProcess | undefined> {
    const running = nodes.filter((node) => node.running);
    const statuses = await Promise.all(running.map((node) => fetchStatus(node.url, 400)));
    let best: { node: NodeProcess; status: NodeStatus } | undefined;
    statuses.forEach((status, i) => {
      if (status?.state === "leader" && (best === undefined || status.term > best.status.term)) {
        best = { node: running[i]!, status };
      }
    });
    return best?.node;
  }

  /** Runs one membership change at a time against the leader; answers its admin reply. */
  async function onLeader(
    action: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const leader = await leaderNode();
    if (leader === undefined) return { status: 503, body: { error: "no leader" } };
    return await admin(leader, action, body, timeoutMs);
  }

  async function exclusive(
    work: () => Promise<{ status: number; body: Record<string, unknown> }>,
  ) {
    if (changing.busy) return { status: 409, body: { error: "another change is running" } };
    changing.busy = true;
    try {
      return await work();
    } catch (error) {
      return { status: 502, body: { error: String(error) } };
    } finally {
      changing.busy = false;
    }
  }

  /** Starts a node with --join on free ports, then asks the leader to add it. */
  async function addNode() {
    const id = `n${nextId++}`;
    const [port] = await freePorts(1, transport === "tcp" ? 1000 : 0, ADMIN_PORT_OFFSET);
    // A fresh name, but --data may hold a directory of that name from an earlier run.
    await rm(join(dataRoot, id), { recursive: true, force: true });
    const node = new NodeProcess({
      ...spec,
      nodes: [...spec.nodes, { id, port: port! }],
      extraArgs: [...spec.extraArgs ?? [], "--join"],
    }, id);
    nodes.push(node);
    node.start();
    await waitFor(async () => !node.running || await fetchStatus(node.url, 400) !== undefined, {
      timeoutMs: 20_000,
      message: `${id} answers`,
    });
    if (!node.running) return { status: 502, body: { error: `${id} exited`, id } };
    const reply = await onLeader("add-peer", {
      name: id,
      connectionString: `127.0.0.1:${port}`,
    }, 35_000);
    return { status: reply.status, body: { ...reply.body, id } };
  }

  /**
   * Asks the leader to remove a node, then stops its process and forgets it. A node that is
   * no member (its join failed) is only stopped.
   */
  async function removeNode(node: NodeProcess) {
    const leader = await leaderNode();
    if (leader === undefined) return { status: 503, body: { error: "no leader" } };
    const members = (await fetchStats(leader.url, 1000))?.raft.members;
    const reply = members !== undefined && !members.includes(node.id)
      ? { status: 200, body: { ok: true, members } }
      : await admin(leader, "remove-peer", { name: node.id }, 35_000);
    if (reply.status !== 200) return reply;
    await Promise.race([
      node.kill("SIGTERM"),
      new Promise((resolve) => setTimeout(resolve, 3000)),
    ]);
    await node.kill("SIGKILL");
    nodes.splice(nodes.indexOf(node), 1);
    return reply;
  }

  app.get("/", (c) => c.html(page));

  app.get("/api/cluster", async (c) => {
    const states = await Promise.all(nodes.map(async (node) => {
      const [status, stats] = node.running
        ? await Promise.all([fetchStatus(node.url, 400), fetchStats(node.url, 400)])
        : [undefined, undefined];
      return {
        id: node.id,
        url: node.url,
        running: node.running,
        pid: node.pid ?? null,
        status: status ?? null,
        stats: stats ?? null,
      };
    }));
    return c.json({ transport, storage, dataRoot, nodes: states });
  });

  // Membership: a new process joins through the leader; removal goes through the leader too.
  app.post("/api/nodes", async (c) => {
    const reply = await exclusive(addNode);
    return c.json(reply.body, reply.status as 200);
  });

  app.post("/api/nodes/:id/:action", async (c) => {
    const node = byId(c.req.param("id"));
    if (node === undefined) return c.json({ error: "no such node" }, 404);
    switch (c.req.param("action")) {
      case "remove": {
        const reply = await exclusive(() => removeNode(node));
        return c.json(reply.body, reply.status as 200);
      }
      case "transfer": {
        const reply = await exclusive(() => onLeader("transfer", { to: node.id }, 5000));
        return c.json(reply.body, reply.status as 200);
      }
      case "kill":
        await node.kill("SIGKILL");
        return c.json({ ok: true });
      case "restart":
        if (!node.running) node.start();
        return c.json({ ok: true });
      case "partition":
      case "heal": {
        try {
          const response = await fetch(`${node.adminUrl}/admin/${c.req.param("action")}`, {
            method: "POST",
            headers: { authorization: `Bearer ${adminToken}` },
            signal: AbortSignal.timeout(2000),
          });
          return c.json(await response.json(), response.status as 200);
        } catch (error) {
          return c.json({ error: String(error) }, 502);
        }
      }
      default:
        return c.json({ error: "unknown action" }, 404);
    }
  });

  // Client requests go to a chosen node (any node serves them; followers forward).
  app.all("/api/kv/:key{.+}", async (c) => {
    const node = byId(c.req.query("node") ?? "") ??
      nodes.find((candidate) => candidate.running);
    if (node === undefined) return c.json({ error: "no node is running" }, 503);
    const path = c.req.param("key");
    try {
      const response = await fetch(`${node.url}/kv/${path}`, {
        method: c.req.method,
        ...(c.req.method === "GET" ? {} : { body: await c.req.text() }),
        redirect: "manual",
        signal: AbortSignal.timeout(6000),
      });
      return c.json({
        node: node.id,
        status: response.status,
        answeredBy: response.headers.get("x-kv-forwarded-to") || response.headers.get("x-kv-node"),
        body: await response.text(),
      });
    } catch (error) {
      return c.json({ node: node.id, status: 0, body: String(error) });
    }
  });

  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, app.fetch);
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** A node's `GET /stats`, or undefined when it does not answer. */
async function fetchStats(url: string, timeoutMs: number): Promise<NodeStats | undefined> {
  try {
    const response = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json() as NodeStats;
  } catch {
    return undefined;
  }
}
