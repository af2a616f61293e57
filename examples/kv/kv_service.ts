import {
  CommandOutcomeUnknownError,
  CommandTimeoutError,
  LEADER,
  LeadershipTransferError,
  NotLeaderError,
  type Server,
  StopError,
} from "@tsraft/core";
import {
  BatchCommand,
  isKvOp,
  type KvOp,
  type KvResult,
  type KvStore,
  utf8Length,
} from "./kv_store.ts";

/** Options of {@link KvService}. */
export interface KvServiceOptions {
  /** The local raft server. */
  server: Server;
  /** Its state machine. */
  store: KvStore;
  /** How long a write or read waits for commit, in ms. @default 5000 */
  requestTimeoutMs?: number;
  /**
   * Log entries (batches of writes) proposed and not yet applied at once. Requests that
   * arrive meanwhile wait and go out together as the next batch: more in flight means less
   * waiting at low load, fewer means larger batches (fewer entries, messages and fsyncs
   * per write) at high load. Measured on a 2-core machine with fsync on (bench case e, 32
   * clients): one in flight 8,032 PUT/s at 95 µs of CPU each, two 6,734/s at 118 µs, four
   * 6,277/s at 140 µs: a second entry only splits the waiting writes across two entries,
   * each needing its own fsync on every node. So one is the default (group commit).
   * @default 1
   */
  maxInflightBatches?: number;
  /** Most writes in one log entry. @default 256 */
  maxBatchOps?: number;
  /**
   * Most characters of keys and values in one log entry (a single larger write still goes
   * alone): keeps an entry well under the transports' 64 MiB message bound.
   * @default 4 MiB
   */
  maxBatchChars?: number;
  /** Fetch options for forwarding over https with a private CA (e.g. `{ client }` on Deno). */
  forwardInit?: RequestInit;
  /** Scheme of every node's client API (to recognize the leader's URL). @default "http" */
  scheme?: "http" | "https";
  /**
   * Serve reads from the leader lease while it holds (no heartbeat round; `server.readIndex`
   * falls back to a round otherwise). Correct only while clocks drift less than the server's
   * `leaseClockDrift`.
   * @default false
   */
  leaseReads?: boolean;
}

/**
 * What a follower sends the leader: a write, a linearizable read of a key, or a request for
 * a read index (the follower then serves the reads waiting for it itself, Raft thesis §6.4).
 */
export type ForwardItem = { op: KvOp } | { read: string } | { readIndex: true };

/** The leader's answer to one {@link ForwardItem}. */
export type ForwardReply =
  | { result: KvResult }
  | { value: string | null }
  | { index: number }
  | { error: string; status: number; reason: string };

/**
 * Turns a member's connection string (its client address) into a URL base.
 * @param connectionString `host:port` or an `http(s)://` URL
 * @param scheme the scheme for a bare `host:port` @default "http"
 * @returns e.g. `http://127.0.0.1:4001`
 */
export function nodeUrl(connectionString: string, scheme: "http" | "https" = "http"): string {
  return /^https?:\/\//.test(connectionString)
    ? connectionString.replace(/\/+$/, "")
    : `${scheme}://${connectionString}`;
}

/** Path of the leader's endpoint for forwarded requests (POST, or a WebSocket on Deno). */
export const FORWARD_PATH = "/_forward";

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs `body` with a signal that aborts after `ms`, and clears the timer when it settles.
 * (`AbortSignal.timeout` would leave a timer behind that fires, builds a DOMException and
 * dispatches an event seconds after every request, costing more than the request itself.)
 */
function withTimeout<T>(ms: number, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return body(controller.signal).finally(() => clearTimeout(timer));
}

/** Counters of a {@link KvService}, reported by `GET /status`. */
export interface KvServiceStats {
  /** Log entries of writes proposed. */
  batches: number;
  /** Writes in them. */
  writes: number;
  /** Sum of the time from proposing a batch to its result, in ms. */
  batchMs: number;
  /** ReadIndex rounds. */
  readRounds: number;
  /** Reads they served. */
  reads: number;
  /** Requests forwarded to the leader. */
  forwarded: number;
  /** Messages they went in. */
  forwardMessages: number;
}

/** Characters of a write's key and values: the bulk of its size in the log. */
function opChars(op: KvOp): number {
  switch (op[0]) {
    case "put":
      return op[1].length + op[2].length;
    case "delete":
      return op[1].length;
    case "cas":
      return op[1].length + (op[2]?.length ?? 0) + op[3].length;
  }
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The request path of the kv service, below HTTP: writes grouped into batch log entries,
 * linearizable reads sharing ReadIndex rounds, and forwarding to the leader over one
 * persistent connection per leader.
 */
export class KvService {
  readonly server: Server;
  readonly store: KvStore;
  readonly timeoutMs: number;
  readonly #maxInflight: number;
  readonly #maxOps: number;
  readonly #maxChars: number;
  readonly #forwardInit: RequestInit;
  readonly #lease: boolean;
  readonly #scheme: "http" | "https";
  #queue: { op: KvOp; done: Deferred<KvResult> }[] = [];
  #inflight = 0;
  #flushScheduled = false;
  #readRunning = false;
  #readWaiting: Deferred<number> | undefined;
  #remoteRunning = false;
  #remoteWaiting: { url: string; done: Deferred<ForwardReply> } | undefined;
  #appliedWaiters: { index: number; done: Deferred<void> }[] = [];
  #appliedPoll: ReturnType<typeof setInterval> | undefined;
  #link: LeaderLink | undefined;
  #readGroupSize = 0;
  #forwardQueue: { url: string; op: KvOp; done: Deferred<ForwardReply> }[] = [];
  /** Leader URL of the group of forwarded writes in flight. */
  #forwardInflight: string | undefined;
  #forwardScheduled = false;
  /** Counters since start. */
  readonly stats: KvServiceStats = {
    batches: 0,
    writes: 0,
    batchMs: 0,
    readRounds: 0,
    reads: 0,
    forwarded: 0,
    forwardMessages: 0,
  };

  /** @param options server, store and batching limits */
  constructor(options: KvServiceOptions) {
    this.server = options.server;
    this.store = options.store;
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
    this.#maxInflight = options.maxInflightBatches ?? 1;
    this.#maxOps = options.maxBatchOps ?? 256;
    this.#maxChars = options.maxBatchChars ?? 4 * 1024 * 1024;
    this.#forwardInit = options.forwardInit ?? {};
    this.#lease = options.leaseReads ?? false;
    this.#scheme = options.scheme ?? "http";
    // When another node becomes leader, requests still waiting on the old one (frozen,
    // partitioned, or deposed) fail now with 503 so their clients retry, instead of waiting
    // out the request timeout.
    this.server.addEventListener("leaderChange", () => {
      const leader = this.leader();
      const url = leader === "self" || leader === undefined
        ? undefined
        : nodeUrl(leader.connectionString, this.#scheme);
      if (this.#link !== undefined && this.#link.url !== url) {
        this.#link.close();
        this.#link = undefined;
      }
    });
  }

  /**
   * Replicates one write, in a batch with the writes that arrive meanwhile.
   * @param op the write
   * @returns its result once committed and applied here
   * @throws NotLeaderError, CommandTimeoutError, StopError as `server.do` does
   */
  write(op: KvOp): Promise<KvResult> {
    const done = deferred<KvResult>();
    this.#queue.push({ op, done });
    this.#scheduleFlush();
    return done.promise;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#inflight >= this.#maxInflight || this.#queue.length === 0) {
      return;
    }
    this.#flushScheduled = true;
    // A microtask: every request handled in this turn of the event loop joins the batch.
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#inflight < this.#maxInflight && this.#queue.length > 0) {
      let count = 0;
      let chars = 0;
      while (count < this.#queue.length && count < this.#maxOps) {
        chars += opChars(this.#queue[count]!.op);
        if (count > 0 && chars > this.#maxChars) break;
        count++;
      }
      const batch = this.#queue.splice(0, count);
      this.#inflight++;
      this.stats.batches++;
      this.stats.writes += batch.length;
      const started = performance.now();
      const command = new BatchCommand(batch.map((item) => item.op));
      withTimeout(this.timeoutMs, (signal) => this.server.do(command, { signal })).then(
        (results) => batch.forEach((item, i) => item.done.resolve(results[i]!)),
        (error) => batch.forEach((item) => item.done.reject(error)),
      ).finally(() => {
        this.stats.batchMs += performance.now() - started;
        this.#inflight--;
        this.#scheduleFlush();
      });
    }
  }

  /**
   * Waits until a read of local state is linearizable: one `server.readIndex()` round serves
   * every read that arrived before it started. A read arriving while a round is in flight
   * waits for the next one, whose read index is taken after the read arrived (one round in
   * flight at a time).
   * @throws NotLeaderError, CommandTimeoutError, StopError as `server.readIndex` does
   */
  readBarrier(): Promise<number> {
    this.#readGroupSize++;
    if (this.#readWaiting === undefined) {
      this.#readWaiting = deferred<number>();
      if (!this.#readRunning) queueMicrotask(() => this.#startRead());
    }
    return this.#readWaiting.promise;
  }

  #startRead(): void {
    const group = this.#readWaiting;
    if (group === undefined || this.#readRunning) return;
    this.#readWaiting = undefined;
    this.#readRunning = true;
    this.stats.readRounds++;
    this.stats.reads += this.#readGroupSize;
    this.#readGroupSize = 0;
    const lease = this.#lease;
    withTimeout(this.timeoutMs, (signal) => this.server.readIndex({ signal, lease })).then(
      (index) => group.resolve(index),
      (error) => group.reject(error),
    ).finally(() => {
      this.#readRunning = false;
      this.#startRead();
    });
  }

  /**
   * On a follower: a read index from the leader, one request in flight at a time shared by
   * every read waiting for it (a read arriving meanwhile waits for the next request, whose
   * index the leader takes after the read arrived).
   * @param leaderUrl the leader's client URL
   * @returns `{ index }`, or the error reply
   */
  remoteReadIndex(leaderUrl: string): Promise<ForwardReply> {
    this.#readGroupSize++;
    if (this.#remoteWaiting === undefined) {
      this.#remoteWaiting = { url: leaderUrl, done: deferred<ForwardReply>() };
      if (!this.#remoteRunning) queueMicrotask(() => this.#startRemoteRead());
    }
    return this.#remoteWaiting.done.promise;
  }

  #startRemoteRead(): void {
    const group = this.#remoteWaiting;
    if (group === undefined || this.#remoteRunning) return;
    this.#remoteWaiting = undefined;
    this.#remoteRunning = true;
    this.stats.readRounds++;
    this.stats.reads += this.#readGroupSize;
    this.#readGroupSize = 0;
    this.forward(group.url, { readIndex: true }).then((reply) => group.done.resolve(reply))
      .finally(() => {
        this.#remoteRunning = false;
        this.#startRemoteRead();
      });
  }

  /**
   * Waits until this node has applied `index`.
   * @param index a read index
   * @throws CommandTimeoutError after the request timeout
   */
  waitApplied(index: number): Promise<void> {
    if (this.server.appliedIndex >= index) return Promise.resolve();
    const done = deferred<void>();
    this.#appliedWaiters.push({ index, done });
    if (this.#appliedWaiters.length === 1) {
      this.server.addEventListener("commit", this.#onApplied);
      // A snapshot installed from the leader moves the applied index without commit events.
      this.#appliedPoll = setInterval(this.#onApplied, 20);
    }
    return withTimeout(this.timeoutMs, (signal) =>
      new Promise<void>((resolve, reject) => {
        signal.addEventListener("abort", () => {
          this.#appliedWaiters = this.#appliedWaiters.filter((waiter) => waiter.done !== done);
          this.#onApplied();
          reject(new CommandTimeoutError(`Index ${index} was not applied in time`));
        }, { once: true });
        done.promise.then(resolve, reject);
      }));
  }

  readonly #onApplied = (): void => {
    const applied = this.server.appliedIndex;
    const ready = this.#appliedWaiters.filter((waiter) => waiter.index <= applied);
    if (ready.length > 0) {
      this.#appliedWaiters = this.#appliedWaiters.filter((waiter) => waiter.index > applied);
      for (const waiter of ready) waiter.done.resolve();
    }
    if (this.#appliedWaiters.length === 0 && this.#appliedPoll !== undefined) {
      this.server.removeEventListener("commit", this.#onApplied);
      clearInterval(this.#appliedPoll);
      this.#appliedPoll = undefined;
    }
  };

  /**
   * Serves requests a follower forwarded: never forwards them again.
   * @param items writes and reads, each validated here as well
   * @returns one reply per item
   */
  async serveForwarded(items: unknown): Promise<ForwardReply[]> {
    if (!Array.isArray(items)) return [];
    return await Promise.all(items.map(async (item: unknown): Promise<ForwardReply> => {
      try {
        const record = item as Record<string, unknown> | null;
        if (typeof record === "object" && record !== null && isKvOp(record.op)) {
          return { result: await this.write(record.op) };
        }
        if (typeof record === "object" && record !== null && typeof record.read === "string") {
          await this.readBarrier();
          return { value: this.store.get(record.read) ?? null };
        }
        if (typeof record === "object" && record !== null && record.readIndex === true) {
          return { index: await this.readBarrier() };
        }
        return { error: "bad_request", status: 400, reason: "Malformed forwarded request" };
      } catch (error) {
        return errorReply(error, true);
      }
    }));
  }

  /**
   * Sends a request to the leader over the persistent link, batched with the others sent
   * in the same turn of the event loop.
   * @param leaderUrl the leader's client URL
   * @param item the request
   * @returns the leader's reply (errors included, as replies)
   */
  forward(leaderUrl: string, item: ForwardItem): Promise<ForwardReply> {
    if (this.#link?.url !== leaderUrl) {
      this.#link?.close();
      this.#link = new LeaderLink(leaderUrl, this.timeoutMs, this.#forwardInit, this.stats);
    }
    this.stats.forwarded++;
    return this.#link.send(item);
  }

  /**
   * On a follower: sends a write to the leader, grouped like the leader groups its log
   * entries. One message of writes is in flight at a time; writes arriving meanwhile go
   * together in the next, so they reach the leader as one group and share its next entry.
   * @param leaderUrl the leader's client URL
   * @param op the write
   * @returns the leader's reply
   */
  forwardWrite(leaderUrl: string, op: KvOp): Promise<ForwardReply> {
    const done = deferred<ForwardReply>();
    this.#forwardQueue.push({ url: leaderUrl, op, done });
    this.#scheduleForward();
    return done.promise;
  }

  #scheduleForward(): void {
    if (this.#forwardScheduled || this.#forwardQueue.length === 0) return;
    // One group in flight, unless the leader changed: then the old group must not hold the
    // new leader's writes back until it times out (sending to the new leader closes the old
    // link, which fails the old group at once).
    if (this.#forwardInflight === this.#newestForwardUrl()) return;
    this.#forwardScheduled = true;
    queueMicrotask(() => {
      this.#forwardScheduled = false;
      const url = this.#newestForwardUrl();
      if (url === undefined || url === this.#forwardInflight) return;
      // Everything queued goes to the leader the newest request knew of: leaders only move
      // forward, so an older request's idea of the leader is no better.
      const group = this.#forwardQueue;
      this.#forwardQueue = [];
      this.#forwardInflight = url;
      // Sent in one turn of the event loop: the link puts them in one message.
      Promise.all(group.map(async (item) => {
        item.done.resolve(await this.forward(url, { op: item.op }));
      })).finally(() => {
        if (this.#forwardInflight === url) this.#forwardInflight = undefined;
        this.#scheduleForward();
      });
    });
  }

  #newestForwardUrl(): string | undefined {
    return this.#forwardQueue[this.#forwardQueue.length - 1]?.url;
  }

  /**
   * Who serves requests now, without building an error per request on a follower.
   * @returns `"self"` on the leader, the leader's name and connection string when another
   * node leads, undefined when no leader is known
   */
  leader(): "self" | { name: string; connectionString: string } | undefined {
    const server = this.server;
    if (server.state === LEADER) return "self";
    const name = server.leader;
    if (name === "") return undefined;
    const member = server.members.find((candidate) => candidate.name === name);
    if (member === undefined || member.connectionString === "") return undefined;
    return { name, connectionString: member.connectionString };
  }

  /** Closes the forwarding link and fails reads waiting to be applied. */
  close(): void {
    this.#link?.close();
    this.#link = undefined;
    for (const waiter of this.#appliedWaiters) waiter.done.reject(new StopError());
    this.#appliedWaiters = [];
    if (this.#appliedPoll !== undefined) clearInterval(this.#appliedPoll);
    this.#appliedPoll = undefined;
  }
}

/**
 * Maps an error of `server.do`/`readIndex` to a reply.
 * @param error the error
 * @param forwarded whether the request was already forwarded once
 * @returns the reply
 */
export function errorReply(error: unknown, forwarded: boolean): ForwardReply {
  if (error instanceof NotLeaderError) {
    if (forwarded) {
      return {
        error: "not_leader",
        status: 503,
        reason: "Leadership moved while the request was forwarded; retry",
      };
    }
    return { error: "no_leader", status: 503, reason: "No leader is known; retry shortly" };
  }
  if (error instanceof CommandTimeoutError) {
    return { error: "timeout", status: 504, reason: error.message };
  }
  if (error instanceof StopError) return { error: "stopped", status: 503, reason: error.message };
  if (error instanceof LeadershipTransferError) {
    // Proposals are refused while leadership moves; the new leader takes them shortly.
    return { error: "transferring", status: 503, reason: error.message };
  }
  if (error instanceof CommandOutcomeUnknownError) {
    // The write may or may not have been applied: the client must not assume either.
    return { error: "outcome_unknown", status: 504, reason: error.message };
  }
  return { error: "internal", status: 500, reason: String(error) };
}

/**
 * Largest message sent over the WebSocket; larger ones go by POST. Deno's WebSocket client
 * writes a frame of more than about 1 KiB as two writes, and with Nagle's algorithm the second
 * waits for the peer's delayed ACK: measured here, a 1,200-byte message took 44 ms each way
 * where a 1,000-byte one took 0.03 ms (Deno 2.9.6; there is no TCP_NODELAY switch for it).
 * `fetch` sets TCP_NODELAY, so larger requests go by POST on a keep-alive connection.
 */
const MAX_WEBSOCKET_MESSAGE_BYTES = 1000;

/** Characters of keys and values in one forwarded message, beyond its first request. */
const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;

interface Pending {
  items: ForwardItem[];
  replies: Deferred<ForwardReply>[];
}

/**
 * One persistent connection to the leader: a WebSocket on Deno (one message per batch of
 * requests each way, no per-request HTTP), or keep-alive POSTs elsewhere and over https.
 */
class LeaderLink {
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #init: RequestInit;
  #socket: WebSocket | undefined;
  #open: Promise<WebSocket | undefined> | undefined;
  #queue: Pending = { items: [], replies: [] };
  #queueChars = 0;
  #scheduled = false;
  #nextId = 1;
  #waiting = new Map<number, { pending: Pending; timer: ReturnType<typeof setTimeout> }>();
  #closed = false;

  readonly #stats: KvServiceStats;

  constructor(url: string, timeoutMs: number, init: RequestInit, stats: KvServiceStats) {
    this.url = url;
    this.#timeoutMs = timeoutMs;
    this.#init = init;
    this.#stats = stats;
  }

  send(item: ForwardItem): Promise<ForwardReply> {
    const reply = deferred<ForwardReply>();
    const chars = "op" in item ? opChars(item.op) : 0;
    if (this.#queueChars + chars > MAX_MESSAGE_CHARS && this.#queue.items.length > 0) {
      // Large values: send what is queued now rather than build one huge message.
      void this.#flush();
    }
    this.#queueChars += chars;
    this.#queue.items.push(item);
    this.#queue.replies.push(reply);
    if (!this.#scheduled) {
      this.#scheduled = true;
      // A microtask: requests handled in the same turn share a message. (A timer would gather
      // more, 30 a message at 32 clients, but Deno's setTimeout(0) costs about a millisecond:
      // four times the latency at one client, an eighth of the throughput at 32.)
      queueMicrotask(() => void this.#flush());
    }
    return reply.promise;
  }

  close(): void {
    this.#closed = true;
    this.#socket?.close();
    this.#fail("Forwarding link closed");
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const pending = this.#queue;
    if (pending.items.length === 0) return;
    this.#queue = { items: [], replies: [] };
    this.#queueChars = 0;
    this.#stats.forwardMessages++;
    const socket = await this.#connect();
    if (socket === undefined) {
      await this.#post(pending);
      return;
    }
    if (socket.readyState !== WebSocket.OPEN) {
      settle(pending, unreachable(this.url, "connection closed"));
      return;
    }
    const id = this.#nextId++;
    const text = JSON.stringify({ id, items: pending.items });
    if (utf8Length(text) > MAX_WEBSOCKET_MESSAGE_BYTES) {
      await this.#post(pending);
      return;
    }
    const timer = setTimeout(() => {
      if (!this.#waiting.delete(id)) return;
      settle(pending, unreachable(this.url, "no answer in time", "timeout", 504));
    }, this.#timeoutMs);
    this.#waiting.set(id, { pending, timer });
    socket.send(text);
  }

  #connect(): Promise<WebSocket | undefined> {
    const socket = this.#socket;
    if (socket !== undefined && socket.readyState === WebSocket.OPEN) {
      return Promise.resolve(socket);
    }
    if (this.#open !== undefined) return this.#open;
    const usable = !this.url.startsWith("https:") && typeof WebSocket === "function" &&
      (globalThis as { Deno?: unknown }).Deno !== undefined && !this.#closed;
    if (!usable) return Promise.resolve(undefined);
    this.#open = new Promise<WebSocket | undefined>((resolve) => {
      const ws = new WebSocket(this.url.replace(/^http/, "ws") + FORWARD_PATH);
      ws.onopen = () => {
        this.#socket = ws;
        this.#open = undefined;
        resolve(ws);
      };
      ws.onmessage = (event) => this.#onMessage(String(event.data));
      ws.onerror = () => {};
      ws.onclose = () => {
        if (this.#socket === ws) this.#socket = undefined;
        if (this.#open !== undefined) {
          this.#open = undefined;
          resolve(undefined); // The leader does not speak WebSocket: POST instead.
        }
        this.#fail(`Connection to ${this.url} closed`);
      };
    });
    return this.#open;
  }

  #onMessage(data: string): void {
    let message: { id?: unknown; replies?: unknown };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const waiting = this.#waiting.get(message.id as number);
    if (waiting === undefined) return;
    this.#waiting.delete(message.id as number);
    clearTimeout(waiting.timer);
    const replies = Array.isArray(message.replies) ? message.replies as ForwardReply[] : [];
    waiting.pending.replies.forEach((reply, i) =>
      reply.resolve(replies[i] ?? unreachable(this.url, "short answer"))
    );
  }

  async #post(pending: Pending): Promise<void> {
    try {
      const { response, body } = await withTimeout(this.#timeoutMs, async (signal) => {
        const response = await fetch(this.url + FORWARD_PATH, {
          ...this.#init,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ items: pending.items }),
          signal,
        });
        return { response, body: await response.json() as { replies?: ForwardReply[] } };
      });
      pending.replies.forEach((reply, i) =>
        reply.resolve(body.replies?.[i] ?? unreachable(this.url, `status ${response.status}`))
      );
    } catch (error) {
      settle(pending, unreachable(this.url, String(error)));
    }
  }

  #fail(reason: string): void {
    for (const [id, { pending, timer }] of this.#waiting) {
      clearTimeout(timer);
      this.#waiting.delete(id);
      settle(pending, unreachable(this.url, reason));
    }
  }
}

function settle(pending: Pending, reply: ForwardReply): void {
  for (const deferredReply of pending.replies) deferredReply.resolve(reply);
}

function unreachable(url: string, why: string, error = "leader_unreachable", status = 503) {
  return { error, status, reason: `Cannot forward to ${url}: ${why}` };
}
