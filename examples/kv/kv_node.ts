import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { createServer, type PeerInfo, type Server, type Storage } from "@tsraft/core";
import { FileStorage } from "@tsraft/storage-file";
import { KvStorage } from "@tsraft/storage-kv";
import { HttpTransporter } from "@tsraft/transport-http";
import { TcpTransporter } from "@tsraft/transport-tcp";
import { Hono } from "hono";
import { installKvRoutes } from "./kv_app.ts";
import { kvRegistry, KvStore } from "./kv_store.ts";
import { PartitionableTransporter } from "./partitionable_transporter.ts";

/** Options of {@link startKvNode}. */
export interface KvNodeOptions {
  /** Unique node name. */
  id: string;
  /** Interface the client API listens on. @default "127.0.0.1" */
  hostname?: string;
  /** Port of the client API (and of raft traffic with the http transport). */
  port: number;
  /** The other founding members; `connectionString` is their client `host:port`. */
  peers: PeerInfo[];
  /** Directory of this node's durable state. */
  dataDir: string;
  /** Raft transport. @default "tcp" */
  transport?: "tcp" | "http";
  /** Durable storage. @default "file" */
  storage?: "file" | "kv";
  /** With the tcp transport, raft traffic uses the client port plus this. @default 1000 */
  raftPortOffset?: number;
  /** Base election timeout. @default 300 */
  electionTimeoutMs?: number;
  /** Heartbeat interval. @default 50 */
  heartbeatIntervalMs?: number;
  /** Applied entries between automatic snapshots. @default 1000 */
  snapshotThreshold?: number;
  /** Entries kept after a snapshot. @default 200 */
  trailingLogEntries?: number;
  /** Identifies the cluster on the wire (raft traffic from another cluster is refused). @default "tsraft-kv" */
  clusterId?: string;
  /** Shared secret for raft traffic. @default none */
  token?: string;
  /** Client request timeout. @default 5000 */
  requestTimeoutMs?: number;
}

/** A running KV node. */
export interface KvNode {
  /** The raft server. */
  readonly server: Server;
  /** The replicated map. */
  readonly store: KvStore;
  /** The partition switch. */
  readonly partition: PartitionableTransporter;
  /** The client API's base URL. */
  readonly url: string;
  /** Stops raft, the listeners and the storage. */
  close(): Promise<void>;
}

/**
 * Starts one KV node: storage, transport, raft server and the HTTP client API.
 * @param options see {@link KvNodeOptions}
 * @returns the running node
 * @example
 * ```ts ignore
 * import { startKvNode } from "./kv_node.ts";
 * const node = await startKvNode({ id: "n1", port: 4001, peers: [], dataDir: "./data/n1" });
 * await node.close();
 * ```
 */
export async function startKvNode(options: KvNodeOptions): Promise<KvNode> {
  const hostname = options.hostname ?? "127.0.0.1";
  const transportKind = options.transport ?? "tcp";
  const storageKind = options.storage ?? "file";
  const offset = options.raftPortOffset ?? 1000;
  const clusterId = options.clusterId ?? "tsraft-kv";
  const secret = options.token === undefined ? {} : { token: options.token };
  await mkdir(options.dataDir, { recursive: true });

  const storage: Storage = storageKind === "file"
    ? new FileStorage(join(options.dataDir, "raft"))
    : new KvStorage({ path: join(options.dataDir, "raft.sqlite") });

  const tcp = transportKind === "tcp"
    ? new TcpTransporter({ clusterId, ...secret, timeoutMs: 1000 })
    : undefined;
  const http = transportKind === "http"
    ? new HttpTransporter({ clusterId, ...secret, timeoutMs: 1000 })
    : undefined;
  const partition = new PartitionableTransporter((tcp ?? http)!, {
    // Members advertise their client address; TCP raft traffic lives `offset` ports higher.
    resolve: tcp === undefined ? undefined : (peer) => ({
      name: peer.name,
      connectionString: shiftPort(peer.connectionString, offset),
    }),
  });

  const store = new KvStore();
  const server = createServer({
    name: options.id,
    connectionString: `${hostname}:${options.port}`,
    transporter: partition,
    storage,
    stateMachine: store,
    peers: options.peers,
    registry: kvRegistry(),
    electionTimeoutMs: options.electionTimeoutMs ?? 300,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 50,
    snapshotThreshold: options.snapshotThreshold ?? 1000,
    trailingLogEntries: options.trailingLogEntries ?? 200,
  });

  const app = new Hono();
  installKvRoutes(app, {
    server,
    store,
    partition,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    statusExtra: () => ({ transport: transportKind, storage: storageKind, pid: process.pid }),
  });
  http?.install(partition.guard(server), app);

  await server.init();
  const listener = await serve(app, hostname, options.port);
  await tcp?.listen(partition.guard(server), { hostname, port: options.port + offset });
  await server.start();

  let closing: Promise<void> | undefined;
  return {
    server,
    store,
    partition,
    url: `http://${hostname}:${options.port}`,
    close() {
      closing ??= (async () => {
        await server.stop();
        await tcp?.close();
        http?.close();
        await listener.close();
      })();
      return closing;
    },
  };
}

/**
 * Adds `offset` to the port of a `host:port` string.
 * @param hostPort e.g. `127.0.0.1:4001`
 * @param offset port difference
 * @returns e.g. `127.0.0.1:5001`
 */
export function shiftPort(hostPort: string, offset: number): string {
  const colon = hostPort.lastIndexOf(":");
  const port = Number(hostPort.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) {
    throw new TypeError(`Cannot find a port in "${hostPort}"`);
  }
  return `${hostPort.slice(0, colon)}:${port + offset}`;
}

interface Listener {
  close(): Promise<void>;
}

/** Serves a Hono app with Deno.serve, or @hono/node-server under Node and Bun. */
async function serve(app: Hono, hostname: string, port: number): Promise<Listener> {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno !== undefined) {
    const server = deno.serve({ hostname, port, onListen() {} }, app.fetch);
    return { close: () => server.shutdown() };
  }
  const { serve: nodeServe } = await import("@hono/node-server");
  return await new Promise((resolve, reject) => {
    const server = nodeServe({ fetch: app.fetch, hostname, port }, () => {
      resolve({
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
    server.once("error", reject);
  });
}
