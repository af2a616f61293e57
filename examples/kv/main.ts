/**
 * One node of the replicated key-value store. See `--help` and examples/README.md.
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import type { PeerInfo } from "@tsraft/core";
import { startKvNode } from "./kv_node.ts";

const HELP =
  `Usage: deno run -A --unstable-kv examples/kv/main.ts --id n1 --listen 127.0.0.1:4001 \\
         --peers n2=127.0.0.1:4002,n3=127.0.0.1:4003 --data ./data/n1 [options]

One node of a replicated key-value store built on tsraft.

  --id NAME                 unique node name (required)
  --listen HOST:PORT        client HTTP API address; also this node's identity in the
                            cluster (required)
  --peers N=HOST:PORT,...   the other founding members, by their --listen address
  --join                    start with no membership and wait to be added by the leader of
                            a running cluster (POST /admin/add-peer there); --peers is ignored
  --data DIR                durable state (default ./data/<id>)
  --transport tcp|http      raft transport (default tcp). http shares the client port
                            (routes under /raft/*); tcp listens on PORT + --raft-port-offset
  --raft-port-offset N      offset of the tcp raft port (default 1000: 4001 -> 5001)
  --storage file|kv         file: segmented log under DIR/raft/ (default);
                            kv: Deno KV (SQLite) at DIR/raft.sqlite
  --election-timeout-ms N   base election timeout (default 300)
  --heartbeat-ms N          heartbeat interval (default 50)
  --snapshot-threshold N    applied entries between snapshots (default 1000)
  --trailing-log-entries N  entries kept after a snapshot (default 200)
  --cluster-id ID           refuse raft traffic from other clusters (default tsraft-kv)
  --token SECRET            shared secret for raft traffic
  --tls-cert FILE           serve the client API over https with this PEM certificate
  --tls-key FILE            ...and this PEM key (every node of the cluster uses TLS then)
  --tls-ca FILE             PEM CA that signed the other nodes' certificates (forwarding)
  --admin                   serve the demo admin API (off by default) on --admin-listen,
                            every request with "Authorization: Bearer <token>"; the token
                            is read from $TSRAFT_KV_ADMIN_TOKEN or --admin-token-file
  --admin-listen HOST:PORT  admin API address (default 127.0.0.1:<listen port + 2000>)
  --admin-token-file FILE   file holding the admin token
  --batch-inflight N        batched log entries of writes in flight (default 1)
  --lease-reads             serve linearizable reads from the leader lease while it holds
                            (no heartbeat round; safe only while clocks drift less than
                            the server's leaseClockDrift, 10%)
  -h, --help                this text

Client API (the same on every node; followers forward to the leader):
  PUT    /kv/KEY            body = value         -> 200 {"ok":true,"previous":...}
  DELETE /kv/KEY                                 -> 200
  POST   /kv/KEY/cas        {"expect":s|null,"value":s} -> 200 {"ok":true|false,...}
  GET    /kv/KEY            linearizable read    -> 200 value | 404
         ?noforward         307 to the leader instead of forwarding
         ?local             this node's possibly stale copy (no leader round trip)
  GET    /status            {id,state,term,leader,commitIndex,lastIndex,appliedIndex,peers,...}
  GET    /metrics           Prometheus text: tsraft_* gauges, counters, storage-write histogram
  GET    /stats             JSON: server.stats(), the service's counters, the log tail
  Headers x-client-id + x-request-seq make a write exactly-once across retries.
  503 {"error":"no_leader"} while no leader is known.
  Limits: keys 1 KiB, values 1 MiB (413 {"error":"too_large"}), x-client-id 128 bytes.
Demo admin API (with --admin): POST /admin/partition [{"peers":[...]}], POST /admin/heal,
  POST /admin/snapshot; on the leader: POST /admin/transfer [{"to":NAME}],
  POST /admin/add-peer {"name":NAME,"connectionString":"HOST:PORT"},
  POST /admin/remove-peer {"name":NAME}`;

function fail(message: string): never {
  console.error(`${message}\n\nRun with --help for usage.`);
  process.exit(2);
}

function integer(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) fail(`${name} must be a non-negative integer`);
  return parsed;
}

function parsePeers(text: string): PeerInfo[] {
  if (text.trim() === "") return [];
  return text.split(",").map((part) => {
    const [name, address] = part.split("=");
    if (!name || !address || !/:\d+$/.test(address)) {
      fail(`Cannot parse peer "${part}": expected NAME=HOST:PORT`);
    }
    return { name, connectionString: address };
  });
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    id: { type: "string" },
    listen: { type: "string" },
    peers: { type: "string", default: "" },
    data: { type: "string" },
    transport: { type: "string", default: "tcp" },
    storage: { type: "string", default: "file" },
    "raft-port-offset": { type: "string" },
    "election-timeout-ms": { type: "string" },
    "heartbeat-ms": { type: "string" },
    "snapshot-threshold": { type: "string" },
    "trailing-log-entries": { type: "string" },
    "cluster-id": { type: "string", default: "tsraft-kv" },
    token: { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "tls-ca": { type: "string" },
    admin: { type: "boolean", default: false },
    "admin-listen": { type: "string" },
    "admin-token-file": { type: "string" },
    "batch-inflight": { type: "string" },
    "lease-reads": { type: "boolean", default: false },
    join: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});

if (values.help) {
  console.log(HELP);
  process.exit(0);
}
if (!values.id) fail("--id is required");
if (!values.listen) fail("--listen is required");
const match = /^(.+):(\d+)$/.exec(values.listen);
if (!match) fail(`Cannot parse --listen "${values.listen}": expected HOST:PORT`);
if (values.transport !== "tcp" && values.transport !== "http") fail("--transport is tcp or http");
if (values.storage !== "file" && values.storage !== "kv") fail("--storage is file or kv");

if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
  fail("--tls-cert and --tls-key go together");
}
const tls = values["tls-cert"] === undefined ? undefined : {
  cert: readFileSync(values["tls-cert"], "utf8"),
  key: readFileSync(values["tls-key"]!, "utf8"),
  ...(values["tls-ca"] === undefined ? {} : { ca: readFileSync(values["tls-ca"], "utf8") }),
};

let admin: { hostname: string; port: number; token: string } | undefined;
if (values.admin) {
  const token = values["admin-token-file"] !== undefined
    ? readFileSync(values["admin-token-file"], "utf8").trim()
    : process.env.TSRAFT_KV_ADMIN_TOKEN ?? "";
  if (token === "") {
    fail("--admin needs a token: set TSRAFT_KV_ADMIN_TOKEN or pass --admin-token-file");
  }
  const where = values["admin-listen"] ?? `127.0.0.1:${Number(match[2]) + 2000}`;
  const parts = /^(.+):(\d+)$/.exec(where);
  if (!parts) fail(`Cannot parse --admin-listen "${where}": expected HOST:PORT`);
  admin = { hostname: parts[1]!, port: Number(parts[2]), token };
}

const node = await startKvNode({
  id: values.id,
  hostname: match[1]!,
  port: Number(match[2]),
  peers: parsePeers(values.peers),
  dataDir: values.data ?? `./data/${values.id}`,
  transport: values.transport,
  storage: values.storage,
  raftPortOffset: integer(values["raft-port-offset"], "--raft-port-offset", 1000),
  electionTimeoutMs: integer(values["election-timeout-ms"], "--election-timeout-ms", 300),
  heartbeatIntervalMs: integer(values["heartbeat-ms"], "--heartbeat-ms", 50),
  snapshotThreshold: integer(values["snapshot-threshold"], "--snapshot-threshold", 1000),
  trailingLogEntries: integer(values["trailing-log-entries"], "--trailing-log-entries", 200),
  clusterId: values["cluster-id"],
  ...(values.token === undefined ? {} : { token: values.token }),
  ...(tls === undefined ? {} : { tls }),
  ...(admin === undefined ? {} : { admin }),
  ...(values["lease-reads"] ? { leaseReads: true } : {}),
  ...(values.join ? { join: true } : {}),
  ...(values["batch-inflight"] === undefined
    ? {}
    : { maxInflightBatches: integer(values["batch-inflight"], "--batch-inflight", 1) || 1 }),
});
console.log(`${values.id}: listening on ${node.url} (${values.transport}, ${values.storage})`);
if (node.adminUrl !== undefined) console.log(`${values.id}: admin API on ${node.adminUrl}`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${values.id}: ${signal}, stopping`);
  await node.close();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
