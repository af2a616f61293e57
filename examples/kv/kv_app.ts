import {
  type Command,
  CommandTimeoutError,
  NotLeaderError,
  type Server,
  StopError,
} from "@tsraft/core";
import type { Context, Hono } from "hono";
import {
  CasCommand,
  type ClientRequest,
  DeleteCommand,
  type KvResult,
  type KvStore,
  PutCommand,
} from "./kv_store.ts";
import type { PartitionableTransporter } from "./partitionable_transporter.ts";

/** Request header naming the client, for exactly-once writes. */
export const CLIENT_ID_HEADER = "x-client-id";
/** Request header carrying the client's sequence number (a positive integer). */
export const REQUEST_SEQ_HEADER = "x-request-seq";
/** Set on a request one node forwards to the leader, so it is never forwarded twice. */
export const FORWARDED_HEADER = "x-kv-forwarded-by";
/** Response header naming the node that answered. */
export const NODE_HEADER = "x-kv-node";

/** Largest value accepted by `PUT`, in bytes. */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** Options of {@link installKvRoutes}. */
export interface KvRoutesOptions {
  /** The local raft server. */
  server: Server;
  /** Its state machine. */
  store: KvStore;
  /** Its partitionable transporter (for `/admin/partition`). */
  partition: PartitionableTransporter;
  /** How long a write or a read waits for commit, in ms. @default 5000 */
  requestTimeoutMs?: number;
  /** Extra fields for `GET /status`. */
  statusExtra?: () => Record<string, unknown>;
}

/**
 * Turns a member's connection string (its client address) into a URL base.
 * @param connectionString `host:port` or an `http(s)://` URL
 * @returns e.g. `http://127.0.0.1:4001`
 */
export function nodeUrl(connectionString: string): string {
  return /^https?:\/\//.test(connectionString)
    ? connectionString.replace(/\/+$/, "")
    : `http://${connectionString}`;
}

/**
 * Mounts the client API (`/kv/*`, `/status`) and the demo admin API (`/admin/*`) on a
 * Hono app. Every node serves the same API; a follower forwards to the leader.
 * @param app the Hono app
 * @param options the node's server, store and partition switch
 */
export function installKvRoutes(app: Hono, options: KvRoutesOptions): void {
  const { server, store, partition } = options;
  const timeoutMs = options.requestTimeoutMs ?? 5000;

  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set(NODE_HEADER, server.name);
  });

  app.get("/status", (c) => c.json(status(server, partition, options.statusExtra?.() ?? {})));

  app.get("/kv/:key", async (c) => {
    const key = c.req.param("key");
    if (c.req.query("local") === undefined) {
      try {
        // ReadIndex: confirms leadership with a quorum and waits until everything committed
        // before the read is applied here, so a deposed leader cannot answer stale data.
        await server.readIndex({ signal: AbortSignal.timeout(timeoutMs) });
      } catch (error) {
        return await notServed(c, error, undefined);
      }
    }
    const value = store.get(key);
    if (value === undefined) return c.json({ error: "not_found", key }, 404);
    return c.text(value, 200);
  });

  app.put("/kv/:key", async (c) => {
    const value = await c.req.text();
    if (new TextEncoder().encode(value).length > MAX_VALUE_BYTES) {
      return c.json({
        error: "too_large",
        reason: `Values are limited to ${MAX_VALUE_BYTES} bytes`,
      }, 413);
    }
    const request = clientRequest(c);
    if (typeof request === "string") return c.json({ error: "bad_request", reason: request }, 400);
    const key = c.req.param("key");
    return await write(c, new PutCommand(key, value, request.client, request.seq), value);
  });

  app.delete("/kv/:key", async (c) => {
    const request = clientRequest(c);
    if (typeof request === "string") return c.json({ error: "bad_request", reason: request }, 400);
    return await write(c, new DeleteCommand(c.req.param("key"), request.client, request.seq));
  });

  app.post("/kv/:key/cas", async (c) => {
    const body = await c.req.text();
    let parsed: { expect?: unknown; value?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      return c.json({ error: "bad_request", reason: "Body must be JSON" }, 400);
    }
    const { expect, value } = parsed ?? {};
    if ((expect !== null && typeof expect !== "string") || typeof value !== "string") {
      return c.json({
        error: "bad_request",
        reason: 'Body must be {"expect": string | null, "value": string}',
      }, 400);
    }
    const request = clientRequest(c);
    if (typeof request === "string") return c.json({ error: "bad_request", reason: request }, 400);
    const key = c.req.param("key");
    return await write(c, new CasCommand(key, expect, value, request.client, request.seq), body);
  });

  app.post("/admin/partition", async (c) => {
    const text = await c.req.text();
    const peers = text.trim() === "" ? undefined : (JSON.parse(text) as { peers?: unknown }).peers;
    if (Array.isArray(peers) && peers.every((peer) => typeof peer === "string")) {
      partition.block(peers);
    } else {
      partition.isolate();
    }
    return c.json({ partitioned: partition.partitioned, blocked: partition.blocked });
  });

  app.post("/admin/heal", (c) => {
    partition.heal();
    return c.json({ partitioned: partition.partitioned });
  });

  app.post("/admin/snapshot", async (c) => {
    await server.takeSnapshot();
    return c.json({ ok: true, appliedIndex: server.appliedIndex });
  });

  async function write(c: Context, command: Command<KvResult>, body?: string) {
    try {
      const result = await server.do(command, { signal: AbortSignal.timeout(timeoutMs) });
      return c.json(result, 200);
    } catch (error) {
      return await notServed(c, error, body);
    }
  }

  /** Answers a request this node could not serve itself: forward, redirect or fail. */
  async function notServed(c: Context, error: unknown, body: string | undefined) {
    if (error instanceof NotLeaderError) {
      if (error.leader === "" || error.connectionString === "") {
        return c.json({ error: "no_leader", reason: "No leader is known; retry shortly" }, 503);
      }
      const url = nodeUrl(error.connectionString) + new URL(c.req.url).pathname +
        new URL(c.req.url).search;
      if (c.req.query("noforward") !== undefined) {
        c.header("location", url);
        return c.json({ error: "not_leader", leader: error.leader, location: url }, 307);
      }
      if (c.req.header(FORWARDED_HEADER) !== undefined) {
        return c.json({
          error: "not_leader",
          leader: error.leader,
          reason: "Leadership moved while the request was forwarded; retry",
        }, 503);
      }
      return await forward(c, url, body);
    }
    if (error instanceof CommandTimeoutError) {
      return c.json({ error: "timeout", reason: error.message }, 504);
    }
    if (error instanceof StopError) {
      return c.json({ error: "stopped", reason: error.message }, 503);
    }
    return c.json({ error: "internal", reason: String(error) }, 500);
  }

  async function forward(c: Context, url: string, body: string | undefined) {
    const headers = new Headers({ [FORWARDED_HEADER]: server.name });
    for (const name of [CLIENT_ID_HEADER, REQUEST_SEQ_HEADER, "content-type"]) {
      const value = c.req.header(name);
      if (value !== undefined) headers.set(name, value);
    }
    try {
      const response = await fetch(url, {
        method: c.req.method,
        headers,
        ...(body === undefined ? {} : { body }),
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      const out = new Headers();
      const type = response.headers.get("content-type");
      if (type !== null) out.set("content-type", type);
      out.set("x-kv-forwarded-to", response.headers.get(NODE_HEADER) ?? "");
      return new Response(await response.arrayBuffer(), { status: response.status, headers: out });
    } catch (error) {
      return c.json({
        error: "leader_unreachable",
        reason: `Cannot forward to ${url}: ${String(error)}`,
      }, 503);
    }
  }
}

function clientRequest(c: Context): ClientRequest | string {
  const client = c.req.header(CLIENT_ID_HEADER);
  if (client === undefined || client === "") return { client: "", seq: 0 };
  const seq = Number(c.req.header(REQUEST_SEQ_HEADER));
  if (!Number.isSafeInteger(seq) || seq < 1) {
    return `${CLIENT_ID_HEADER} needs a positive integer ${REQUEST_SEQ_HEADER}`;
  }
  return { client, seq };
}

function status(
  server: Server,
  partition: PartitionableTransporter,
  extra: Record<string, unknown>,
) {
  const leaderInfo = server.members.find((member) => member.name === server.leader);
  return {
    id: server.name,
    state: server.state,
    term: server.term,
    leader: server.leader,
    leaderUrl: leaderInfo ? nodeUrl(leaderInfo.connectionString) : null,
    commitIndex: server.commitIndex,
    lastIndex: server.lastIndex,
    appliedIndex: server.appliedIndex,
    logEntries: server.logEntries.length,
    peers: [...server.peers.values()].map((peer) => ({
      id: peer.name,
      url: nodeUrl(peer.connectionString),
    })),
    partitioned: partition.partitioned,
    blocked: partition.blocked,
    ...extra,
  };
}
