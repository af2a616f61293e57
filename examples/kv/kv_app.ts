import {
  DuplicatePeerError,
  MembershipChangeInProgressError,
  NotLeaderError,
  type Server,
} from "@tsraft/core";
import type { Hono } from "hono";
import { isKvOp, type KvOp, type KvStore, utf8Length } from "./kv_store.ts";
import {
  errorReply,
  FORWARD_PATH,
  type ForwardItem,
  type ForwardReply,
  KvService,
  nodeUrl,
} from "./kv_service.ts";
import type { PartitionableTransporter } from "./partitionable_transporter.ts";

export { nodeUrl, utf8Length };

/** Request header naming the client, for exactly-once writes. */
export const CLIENT_ID_HEADER = "x-client-id";
/** Request header carrying the client's sequence number (a positive integer). */
export const REQUEST_SEQ_HEADER = "x-request-seq";
/** Response header naming the node that answered. */
export const NODE_HEADER = "x-kv-node";
/** Response header of a follower naming the leader that served a forwarded request. */
export const FORWARDED_TO_HEADER = "x-kv-forwarded-to";

/** Largest value accepted by `PUT` and CAS, in UTF-8 bytes (1 MiB). */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Largest key, in UTF-8 bytes after percent-decoding (1 KiB). */
export const MAX_KEY_BYTES = 1024;
/** Largest `x-client-id`, in UTF-8 bytes: every client id is kept in the session table. */
export const MAX_CLIENT_ID_BYTES = 128;
/** Largest CAS body: two values and the JSON around them. */
const MAX_CAS_BODY_BYTES = 2 * MAX_VALUE_BYTES + 1024;
/** Largest body of a forwarded batch (POST fallback). */
const MAX_FORWARD_BODY_BYTES = 64 * MAX_VALUE_BYTES;

/** Options of {@link installKvRoutes}. */
export interface KvRoutesOptions {
  /** The local raft server. */
  server: Server;
  /** Its state machine. */
  store: KvStore;
  /** Its partitionable transporter (reported by `/status`). */
  partition: PartitionableTransporter;
  /** How long a write or a read waits for commit, in ms. @default 5000 */
  requestTimeoutMs?: number;
  /** Extra fields for `GET /status`. */
  statusExtra?: () => Record<string, unknown>;
  /** Scheme of every node's client API. @default "http" */
  scheme?: "http" | "https";
  /** Fetch options for forwarding over https with a private CA (`{ client }` on Deno). */
  forwardInit?: RequestInit;
  /** Log entries of batched writes in flight at once. @default 1 */
  maxInflightBatches?: number;
  /** Reads from the leader lease when it holds (see KvService). @default false */
  leaseReads?: boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A response with a JSON body. */
function json(status: number, body: unknown, node: string, extra?: Record<string, string>) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", [NODE_HEADER]: node, ...extra },
  });
}

/** Why a request is refused before it reaches raft: status, code and reason. */
class Refusal {
  constructor(readonly status: number, readonly error: string, readonly reason: string) {}
}

function tooLarge(what: string, limit: number): Refusal {
  return new Refusal(413, "too_large", `${what} is limited to ${limit} bytes`);
}

/**
 * Reads a request body of at most `limit` bytes, without buffering more than that.
 * @returns the bytes, or a 413 refusal
 */
async function readBody(request: Request, limit: number, what: string) {
  const declared = request.headers.get("content-length");
  if (declared !== null && !(Number(declared) <= limit)) return tooLarge(what, limit);
  if (request.body === null) return new Uint8Array(0);
  if (declared !== null) {
    // HTTP servers hold the body to its declared length: one read, no stream loop. (The
    // check after it is for a Request built by hand, which nothing holds to its header.)
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await request.arrayBuffer());
    } catch {
      return new Refusal(400, "bad_request", `Cannot read ${what.toLowerCase()}`);
    }
    return bytes.byteLength > limit ? tooLarge(what, limit) : bytes;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      // Malformed chunked encoding, a connection cut mid-body: the client's fault.
      return new Refusal(400, "bad_request", `Cannot read ${what.toLowerCase()}`);
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return tooLarge(what, limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

async function readText(request: Request, limit: number, what: string) {
  const bytes = await readBody(request, limit, what);
  if (bytes instanceof Refusal) return bytes;
  try {
    return utf8.decode(bytes);
  } catch {
    return new Refusal(400, "bad_request", `${what} must be UTF-8`);
  }
}

function parseKey(segment: string): string | Refusal {
  let key: string;
  try {
    // Throws URIError on malformed escapes and on bytes that are not UTF-8.
    key = decodeURIComponent(segment);
  } catch {
    return new Refusal(400, "bad_key", "The key must be percent-encoded UTF-8");
  }
  if (key === "") return new Refusal(400, "bad_key", "The key must not be empty");
  if (utf8Length(key) > MAX_KEY_BYTES) return tooLarge("A key", MAX_KEY_BYTES);
  return key;
}

const SEQ = /^[1-9][0-9]{0,15}$/;

function clientRequest(headers: Headers): { client: string; seq: number } | Refusal {
  const client = headers.get(CLIENT_ID_HEADER);
  if (client === null || client === "") return { client: "", seq: 0 };
  if (utf8Length(client) > MAX_CLIENT_ID_BYTES) {
    return tooLarge(`${CLIENT_ID_HEADER}`, MAX_CLIENT_ID_BYTES);
  }
  const text = headers.get(REQUEST_SEQ_HEADER) ?? "";
  const seq = Number(text);
  if (!SEQ.test(text) || !Number.isSafeInteger(seq)) {
    return new Refusal(
      400,
      "bad_request",
      `${CLIENT_ID_HEADER} needs a positive integer ${REQUEST_SEQ_HEADER}`,
    );
  }
  return { client, seq };
}

/**
 * Checks a write against the service's limits (also for forwarded writes, which may come
 * from anyone who can reach the client port).
 * @param op the write
 * @returns undefined when acceptable, else the refusal
 */
function checkOp(op: KvOp): Refusal | undefined {
  if (op[1] === "") return new Refusal(400, "bad_key", "The key must not be empty");
  if (utf8Length(op[1]) > MAX_KEY_BYTES) return tooLarge("A key", MAX_KEY_BYTES);
  const values = op[0] === "put" ? [op[2]] : op[0] === "cas" ? [op[2] ?? "", op[3]] : [];
  if (values.some((value) => utf8Length(value) > MAX_VALUE_BYTES)) {
    return tooLarge("A value", MAX_VALUE_BYTES);
  }
  const client = op[0] === "put" ? op[3] : op[0] === "delete" ? op[2] : op[4];
  if (utf8Length(client) > MAX_CLIENT_ID_BYTES) {
    return tooLarge(CLIENT_ID_HEADER, MAX_CLIENT_ID_BYTES);
  }
  // JSON (a CAS body, a forwarded write) can spell a lone surrogate ("\ud800"): not UTF-8.
  if (![op[1], client, ...values].every(wellFormed)) {
    return new Refusal(400, "bad_request", "Keys and values must be valid Unicode (UTF-8)");
  }
  return undefined;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether a string has no lone surrogate, i.e. encodes to UTF-8 without replacement. */
function wellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** The client API as one fetch handler, plus the service behind it. */
export interface KvHandler {
  /** Answers `/kv/*`, `/status` and the forwarding endpoint. */
  fetch(request: Request): Promise<Response>;
  /** The batching and forwarding layer. */
  readonly service: KvService;
}

/**
 * Builds the client API: `/kv/*`, `/status`, and the endpoint followers forward to.
 * @param options the node's server, store and partition switch
 * @returns the handler
 */
export function createKvHandler(options: KvRoutesOptions): KvHandler {
  const { server, store, partition } = options;
  const scheme = options.scheme ?? "http";
  const service = new KvService({
    server,
    store,
    ...(options.requestTimeoutMs === undefined
      ? {}
      : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.maxInflightBatches === undefined
      ? {}
      : { maxInflightBatches: options.maxInflightBatches }),
    ...(options.forwardInit === undefined ? {} : { forwardInit: options.forwardInit }),
    ...(options.leaseReads === undefined ? {} : { leaseReads: options.leaseReads }),
    scheme,
  });
  const node = server.name;
  const refuse = (refusal: Refusal) =>
    json(refusal.status, { error: refusal.error, reason: refusal.reason }, node);

  function render(reply: ForwardReply, key: string, extra?: Record<string, string>): Response {
    if ("result" in reply) return json(200, reply.result, node, extra);
    if ("value" in reply) {
      if (reply.value === null) return json(404, { error: "not_found", key }, node, extra);
      return new Response(reply.value, {
        status: 200,
        headers: { "content-type": "text/plain; charset=UTF-8", [NODE_HEADER]: node, ...extra },
      });
    }
    if ("index" in reply) {
      // Only the follower's own read path asks for an index; it never renders one.
      return json(500, { error: "internal", reason: "Unexpected read index" }, node, extra);
    }
    return json(reply.status, { error: reply.error, reason: reply.reason }, node, extra);
  }

  /** A request this node could not serve itself: forward, redirect or fail. */
  async function notServed(
    error: unknown,
    request: Request,
    query: URLSearchParams | undefined,
    item: ForwardItem,
    key: string,
  ): Promise<Response> {
    if (
      !(error instanceof NotLeaderError) || error.leader === "" || error.connectionString === ""
    ) {
      return render(errorReply(error, false), key);
    }
    return await toLeader(error, request, query, item, key);
  }

  /** Forwards to the leader, or redirects there with `?noforward`. */
  async function toLeader(
    leader: { leader: string; connectionString: string },
    request: Request,
    query: URLSearchParams | undefined,
    item: ForwardItem,
    key: string,
  ): Promise<Response> {
    const leaderUrl = nodeUrl(leader.connectionString, scheme);
    if (query?.has("noforward")) {
      const url = new URL(request.url);
      const location = leaderUrl + url.pathname + url.search;
      return json(307, { error: "not_leader", leader: leader.leader, location }, node, {
        location,
      });
    }
    const forwardedTo = { [FORWARDED_TO_HEADER]: leader.leader };
    if ("read" in item) {
      // Raft thesis §6.4: ask the leader for a read index (one request shared by every read
      // waiting for it), wait until this node has applied it, then read the local copy.
      const reply = await service.remoteReadIndex(leaderUrl);
      if (!("index" in reply)) return render(reply, key, forwardedTo);
      try {
        await service.waitApplied(reply.index);
      } catch (error) {
        return render(errorReply(error, true), key, forwardedTo);
      }
      return render({ value: store.get(key) ?? null }, key, forwardedTo);
    }
    const reply = "op" in item
      ? await service.forwardWrite(leaderUrl, item.op)
      : await service.forward(leaderUrl, item);
    return render(reply, key, forwardedTo);
  }

  /**
   * Serves `item` here when this node leads; otherwise forwards it, or answers 503 when no
   * leader is known (checked up front: a follower builds no NotLeaderError per request).
   */
  async function serve(
    item: ForwardItem,
    key: string,
    request: Request,
    query: URLSearchParams | undefined,
    local: () => Promise<Response>,
  ): Promise<Response> {
    const leader = service.leader();
    if (leader === undefined) return render(errorReply(new NotLeaderError("", ""), false), key);
    if (leader !== "self") {
      return await toLeader(
        { leader: leader.name, connectionString: leader.connectionString },
        request,
        query,
        item,
        key,
      );
    }
    try {
      return await local();
    } catch (error) {
      return await notServed(error, request, query, item, key);
    }
  }

  async function write(
    op: KvOp,
    request: Request,
    query: URLSearchParams | undefined,
  ): Promise<Response> {
    return await serve(
      { op },
      op[1],
      request,
      query,
      async () => json(200, await service.write(op), node),
    );
  }

  async function kv(request: Request, path: string, query: URLSearchParams | undefined) {
    // path is "/kv/<key>" or "/kv/<key>/cas"
    const rest = path.slice(4);
    const slash = rest.indexOf("/");
    const segment = slash < 0 ? rest : rest.slice(0, slash);
    const action = slash < 0 ? "" : rest.slice(slash + 1);
    if (action !== "" && action !== "cas") {
      return json(404, { error: "not_found", reason: `No route ${path}` }, node);
    }
    const method = request.method;
    const allowed = action === "cas" ? method === "POST" : /^(GET|PUT|DELETE)$/.test(method);
    if (!allowed) {
      return json(405, { error: "method_not_allowed", reason: `${method} ${path}` }, node, {
        allow: action === "cas" ? "POST" : "GET, PUT, DELETE",
      });
    }
    const key = parseKey(segment);
    if (key instanceof Refusal) return refuse(key);

    if (method === "GET") {
      if (query?.has("local")) {
        return render({ value: store.get(key) ?? null }, key);
      }
      // ReadIndex (shared by every read queued behind it): confirms leadership with a
      // quorum and waits until everything committed before the read is applied here, so a
      // deposed leader cannot answer stale data.
      return await serve({ read: key }, key, request, query, async () => {
        await service.readBarrier();
        return render({ value: store.get(key) ?? null }, key);
      });
    }

    const session = clientRequest(request.headers);
    if (session instanceof Refusal) return refuse(session);
    if (method === "DELETE") {
      return await write(["delete", key, session.client, session.seq], request, query);
    }
    if (method === "PUT") {
      const value = await readText(request, MAX_VALUE_BYTES, "A value");
      if (value instanceof Refusal) return refuse(value);
      return await write(["put", key, value, session.client, session.seq], request, query);
    }
    const body = await readText(request, MAX_CAS_BODY_BYTES, "A CAS body");
    if (body instanceof Refusal) return refuse(body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return refuse(new Refusal(400, "bad_request", "The body must be JSON"));
    }
    const { expect, value } =
      (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? parsed : {}) as {
        expect?: unknown;
        value?: unknown;
      };
    if ((expect !== null && typeof expect !== "string") || typeof value !== "string") {
      return refuse(
        new Refusal(
          400,
          "bad_request",
          'The body must be {"expect": string | null, "value": string}',
        ),
      );
    }
    const op: KvOp = ["cas", key, expect, value, session.client, session.seq];
    const refusal = checkOp(op);
    if (refusal !== undefined) return refuse(refusal);
    return await write(op, request, query);
  }

  async function forwarded(request: Request): Promise<Response> {
    const deno = (globalThis as {
      Deno?: { upgradeWebSocket(r: Request): { socket: WebSocket; response: Response } };
    }).Deno;
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket" && deno !== undefined) {
      const { socket, response } = deno.upgradeWebSocket(request);
      socket.onmessage = (event) => {
        let message: { id?: unknown; items?: unknown };
        try {
          message = JSON.parse(String(event.data));
        } catch {
          socket.close(1003, "Malformed message");
          return;
        }
        void serveItems(message.items).then((replies) => {
          if (socket.readyState === WebSocket.OPEN) {
            socket.send(JSON.stringify({ id: message.id, replies }));
          }
        });
      };
      return response;
    }
    if (request.method !== "POST") {
      return json(405, { error: "method_not_allowed", reason: "POST or WebSocket" }, node);
    }
    const body = await readText(request, MAX_FORWARD_BODY_BYTES, "A forwarded batch");
    if (body instanceof Refusal) return refuse(body);
    let items: unknown;
    try {
      items = (JSON.parse(body) as { items?: unknown }).items;
    } catch {
      return refuse(new Refusal(400, "bad_request", "The body must be JSON"));
    }
    return json(200, { replies: await serveItems(items) }, node);
  }

  async function serveItems(items: unknown): Promise<ForwardReply[]> {
    if (!Array.isArray(items)) return [];
    // Items over the limits are refused one by one; the rest are served as one batch.
    const refusals = items.map((item: unknown) => {
      const op = (item as { op?: unknown } | null)?.op;
      if (op === undefined) return undefined;
      // A malformed op is refused by serveForwarded; only well-formed ones have sizes.
      return isKvOp(op) ? checkOp(op) : undefined;
    });
    const served = await service.serveForwarded(
      items.map((item, i) => refusals[i] === undefined ? item : null),
    );
    return served.map((reply, i) => {
      const refusal = refusals[i];
      return refusal === undefined
        ? reply
        : { error: refusal.error, status: refusal.status, reason: refusal.reason };
    });
  }

  async function handle(request: Request): Promise<Response> {
    const url = request.url;
    // Avoid a URL parse per request: the path starts after "scheme://host".
    const start = url.indexOf("/", url.indexOf("//") + 2);
    const mark = url.indexOf("?", start);
    const path = mark < 0 ? url.slice(start) : url.slice(start, mark);
    const query = mark < 0 ? undefined : new URLSearchParams(url.slice(mark + 1));
    if (path.startsWith("/kv/")) return await kv(request, path, query);
    if (path === "/status" && request.method === "GET") {
      const extra = { ...options.statusExtra?.(), service: service.stats };
      return json(200, status(server, partition, scheme, extra), node);
    }
    if (path === FORWARD_PATH) return await forwarded(request);
    return json(404, { error: "not_found", reason: `No route ${path}` }, node);
  }

  return {
    service,
    fetch: async (request) => {
      try {
        return await handle(request);
      } catch (error) {
        return json(500, { error: "internal", reason: String(error) }, node);
      }
    },
  };
}

/**
 * Mounts the client API (`/kv/*`, `/status`, and the endpoint followers forward to) on a
 * Hono app. Every node serves the same API; a follower forwards to the leader.
 * @param app the Hono app
 * @param options the node's server, store and partition switch
 * @returns the handler (its `fetch` may also be called directly, bypassing Hono's router)
 */
export function installKvRoutes(app: Hono, options: KvRoutesOptions): KvHandler {
  const handler = createKvHandler(options);
  app.all("/kv/*", (c) => handler.fetch(c.req.raw));
  app.all("/status", (c) => handler.fetch(c.req.raw));
  app.all(FORWARD_PATH, (c) => handler.fetch(c.req.raw));
  return handler;
}

/** Options of {@link installAdminRoutes}. */
export interface AdminRoutesOptions {
  /** The local raft server. */
  server: Server;
  /** Its partition switch. */
  partition: PartitionableTransporter;
  /** Every request must carry `Authorization: Bearer <token>`. */
  token: string;
}

/** Header value comparison in time independent of where the strings differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i]!;
  return diff === 0;
}

/**
 * Mounts the demo admin API (`/admin/partition`, `/admin/heal`, `/admin/snapshot`, and on the
 * leader `/admin/transfer`, `/admin/add-peer`, `/admin/remove-peer`), every route behind a
 * bearer token. The node serves it on its own listener, on loopback unless
 * told otherwise, and only with `--admin`.
 * @param app the admin listener's Hono app
 * @param options the server, partition switch and token
 */
export function installAdminRoutes(app: Hono, options: AdminRoutesOptions): void {
  const { server, partition, token } = options;
  if (token === "") throw new TypeError("The admin API needs a non-empty token");
  app.use("/admin/*", async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    if (!header.startsWith("Bearer ") || !sameSecret(header.slice(7), token)) {
      c.header("www-authenticate", 'Bearer realm="tsraft-kv admin"');
      return c.json({ error: "unauthorized", reason: "Admin token missing or wrong" }, 401);
    }
    await next();
  });

  app.post("/admin/partition", async (c) => {
    const text = await c.req.text();
    let peers: unknown;
    try {
      peers = text.trim() === "" ? undefined : (JSON.parse(text) as { peers?: unknown })?.peers;
    } catch {
      return c.json({ error: "bad_request", reason: 'The body must be {"peers": [...]}' }, 400);
    }
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

  // Membership and leadership, on the leader (a follower answers 409 naming the leader).
  app.post("/admin/transfer", async (c) => {
    const body = await adminBody(c.req.raw);
    const to = body?.to;
    if (body === undefined || (to !== undefined && typeof to !== "string")) {
      return c.json({ error: "bad_request", reason: 'The body must be {"to"?: name}' }, 400);
    }
    return await membership(() => server.transferLeadership(to), server);
  });

  app.post("/admin/add-peer", async (c) => {
    const body = await adminBody(c.req.raw);
    const { name, connectionString } = body ?? {};
    if (typeof name !== "string" || typeof connectionString !== "string") {
      return c.json({
        error: "bad_request",
        reason: 'The body must be {"name": string, "connectionString": "host:port"}',
      }, 400);
    }
    return await membership(
      () => server.addPeer(name, connectionString, { signal: AbortSignal.timeout(MEMBERSHIP_MS) }),
      server,
    );
  });

  app.post("/admin/remove-peer", async (c) => {
    const name = (await adminBody(c.req.raw))?.name;
    if (typeof name !== "string") {
      return c.json({ error: "bad_request", reason: 'The body must be {"name": string}' }, 400);
    }
    return await membership(
      () => server.removePeer(name, { signal: AbortSignal.timeout(MEMBERSHIP_MS) }),
      server,
    );
  });
}

/** How long an admin membership change may take (a newcomer catching up included). */
const MEMBERSHIP_MS = 30_000;

/** An admin request's JSON object body (`{}` when empty), or undefined when malformed. */
async function adminBody(request: Request): Promise<Record<string, unknown> | undefined> {
  const text = await request.text();
  if (text.trim() === "") return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? parsed as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a membership or leadership change and answers with the members and the leader. */
async function membership(change: () => Promise<void>, server: Server): Promise<Response> {
  const answer = (status: number, body: Record<string, unknown>) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  if (server.state !== "leader") {
    // Checked first: a follower's transferLeadership() without a target finds no follower.
    const reason = `${server.name} is not the leader`;
    return answer(409, { error: "not_leader", leader: server.leader, reason });
  }
  try {
    await change();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof NotLeaderError) {
      return answer(409, { error: "not_leader", leader: error.leader, reason });
    }
    if (
      error instanceof DuplicatePeerError || error instanceof MembershipChangeInProgressError ||
      error instanceof RangeError || error instanceof TypeError
    ) {
      return answer(409, { error: "conflict", reason });
    }
    return answer(503, { error: "unavailable", reason });
  }
  return answer(200, {
    ok: true,
    leader: server.leader,
    members: server.members.map((member) => member.name),
  });
}

function status(
  server: Server,
  partition: PartitionableTransporter,
  scheme: "http" | "https",
  extra: Record<string, unknown>,
) {
  const leaderInfo = server.members.find((member) => member.name === server.leader);
  return {
    id: server.name,
    state: server.state,
    term: server.term,
    leader: server.leader,
    leaderUrl: leaderInfo ? nodeUrl(leaderInfo.connectionString, scheme) : null,
    commitIndex: server.commitIndex,
    lastIndex: server.lastIndex,
    appliedIndex: server.appliedIndex,
    logEntries: server.logEntries.length,
    peers: [...server.peers.values()].map((peer) => ({
      id: peer.name,
      url: nodeUrl(peer.connectionString, scheme),
    })),
    partitioned: partition.partitioned,
    blocked: partition.blocked,
    ...extra,
  };
}
