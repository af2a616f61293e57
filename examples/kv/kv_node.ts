import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { createServer, type PeerInfo, type Server, type Storage } from "@tsraft/core";
import { FileStorage } from "@tsraft/storage-file";
import { KvStorage } from "@tsraft/storage-kv";
import { HttpTransporter, makeHttpClient } from "@tsraft/transport-http";
import { TcpTransporter } from "@tsraft/transport-tcp";
import { Hono } from "hono";
import { installAdminRoutes, installKvRoutes, nodeUrl } from "./kv_app.ts";
import { kvRegistry, KvStore } from "./kv_store.ts";
import { installMetricsRoutes } from "./metrics.ts";
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
  /**
   * Serve the demo admin API (`/admin/*`) on its own listener, behind a bearer token.
   * @default off
   */
  admin?: AdminListenOptions;
  /**
   * Serve the client API over https. Every node of a cluster must then use TLS: followers
   * forward to `https://<leader>`, trusting `ca` when given (a private CA).
   * @default plain http
   */
  tls?: { cert: string; key: string; ca?: string };
  /** Batched log entries in flight (see KvService). @default 1 */
  maxInflightBatches?: number;
  /** Serve reads from the leader lease when it holds. @default false */
  leaseReads?: boolean;
  /**
   * Start with no membership and wait for an existing cluster's leader to add this node
   * (`POST /admin/add-peer` there); `peers` is ignored. @default false
   */
  join?: boolean;
}

/** Where and how the admin API listens. */
export interface AdminListenOptions {
  /** Interface. @default "127.0.0.1" (loopback only) */
  hostname?: string;
  /** Port (0 picks one; see {@link KvNode.adminUrl}). */
  port: number;
  /** The bearer token every admin request must carry. */
  token: string;
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
  /** The admin API's base URL, when enabled. */
  readonly adminUrl: string | undefined;
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

  const tls = options.tls;
  // With TLS, raft traffic is encrypted too: the tcp transport dials and listens with TLS,
  // the http transport shares the https client port.
  const tcp = transportKind === "tcp"
    ? new TcpTransporter({
      clusterId,
      ...secret,
      timeoutMs: 1000,
      ...(tls === undefined ? {} : {
        tls: { cert: tls.cert, key: tls.key, ...(tls.ca === undefined ? {} : { ca: tls.ca }) },
      }),
    })
    : undefined;
  const http = transportKind === "http"
    ? new HttpTransporter({
      clusterId,
      ...secret,
      ...(tls?.ca === undefined
        ? { timeoutMs: 1000 }
        : { client: makeHttpClient(1000, { tls: { ca: tls.ca } }) }),
    })
    : undefined;
  const raftAddresses = new Map<string, PeerInfo>();
  const raftAddress = (peer: PeerInfo): string => {
    if (tcp !== undefined) return shiftPort(peer.connectionString, offset);
    return tls === undefined ? peer.connectionString : nodeUrl(peer.connectionString, "https");
  };
  const partition = new PartitionableTransporter((tcp ?? http)!, {
    // Members advertise their client address; TCP raft traffic lives `offset` ports higher,
    // and http raft traffic over TLS needs an https URL. Cached: this runs for every message.
    resolve: (peer) => {
      const key = `${peer.name}\n${peer.connectionString}`;
      let resolved = raftAddresses.get(key);
      if (resolved === undefined) {
        resolved = { name: peer.name, connectionString: raftAddress(peer) };
        raftAddresses.set(key, resolved);
      }
      return resolved;
    },
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
    ...(options.join ? { joinExisting: true } : {}),
  });

  const app = new Hono();
  const kv = installKvRoutes(app, {
    server,
    store,
    partition,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    statusExtra: () => ({
      transport: transportKind,
      storage: storageKind,
      pid: process.pid,
      tls: tls !== undefined,
    }),
    scheme: tls === undefined ? "http" : "https",
    ...(tls?.ca === undefined ? {} : { forwardInit: forwardInit(tls.ca) }),
    ...(options.maxInflightBatches === undefined
      ? {}
      : { maxInflightBatches: options.maxInflightBatches }),
    ...(options.leaseReads === undefined ? {} : { leaseReads: options.leaseReads }),
  });
  installMetricsRoutes(app, { server, service: kv.service.stats });
  http?.install(partition.guard(server), app);
  // The client API's hot path skips Hono's router; raft (http transport) and /status use it.
  const fetch = (request: Request) => {
    const url = request.url;
    return url.startsWith("/kv/", url.indexOf("/", url.indexOf("//") + 2))
      ? kv.fetch(request)
      : app.fetch(request);
  };

  let adminApp: Hono | undefined;
  if (options.admin !== undefined) {
    adminApp = new Hono();
    installAdminRoutes(adminApp, { server, partition, token: options.admin.token });
  }

  await server.init();
  const listener = await serve(fetch, hostname, options.port, tls);
  const adminHost = options.admin?.hostname ?? "127.0.0.1";
  const admin = adminApp === undefined
    ? undefined
    : await serve(adminApp.fetch, adminHost, options.admin!.port, undefined);
  await tcp?.listen(partition.guard(server), { hostname, port: options.port + offset });
  await server.start();

  let closing: Promise<void> | undefined;
  return {
    server,
    store,
    partition,
    url: `${tls === undefined ? "http" : "https"}://${hostname}:${options.port}`,
    adminUrl: admin === undefined ? undefined : `http://${adminHost}:${admin.port}`,
    close() {
      closing ??= (async () => {
        kv.service.close();
        await server.stop();
        await tcp?.close();
        http?.close();
        await admin?.close();
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
  port: number;
  close(): Promise<void>;
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Fetch options that trust a private CA when forwarding over https (Deno). */
function forwardInit(ca: string): RequestInit {
  const deno = (globalThis as {
    Deno?: { createHttpClient?(options: { caCerts: string[] }): unknown };
  }).Deno;
  if (deno?.createHttpClient === undefined) {
    throw new TypeError(
      "--tls-ca needs Deno (Deno.createHttpClient); elsewhere use NODE_EXTRA_CA_CERTS",
    );
  }
  return { client: deno.createHttpClient({ caCerts: [ca] }) } as RequestInit;
}

/** Serves a fetch handler with Deno.serve, or @hono/node-server under Node and Bun. */
async function serve(
  fetch: FetchHandler,
  hostname: string,
  port: number,
  tls: { cert: string; key: string } | undefined,
): Promise<Listener> {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  const pem = tls === undefined ? {} : { cert: tls.cert, key: tls.key };
  if (deno !== undefined) {
    const server = deno.serve({ hostname, port, onListen() {}, ...pem }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const { serve: nodeServe } = await import("@hono/node-server");
  const secure = tls === undefined
    ? {}
    : { createServer: (await import("node:https")).createServer, serverOptions: pem };
  return await new Promise((resolve, reject) => {
    const server = nodeServe({ fetch, hostname, port, ...secure }, (info) => {
      resolve({
        port: info.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
    server.once("error", reject);
  });
}
