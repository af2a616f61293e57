// The clients of examples/chaos.ts: each one sends get/put/cas/delete requests over HTTP to
// the nodes and records what it invoked and what it saw in a shared HistoryRecorder.
import type { SeededRandom } from "@tsraft/core/testing";
import type { HistoryRecorder, KvInput, KvOutput } from "@tsraft/sim";
import { CLIENT_ID_HEADER, REQUEST_SEQ_HEADER } from "./kv/kv_app.ts";

/** What the clients counted, for the report. */
export interface ClientStats {
  /** Operations answered (in the history with their output). */
  ok: number;
  /** Operations that certainly did not happen (reads out of time, writes refused with 4xx). */
  failed: number;
  /** Writes whose outcome is unknown (in the history as possibly applied). */
  unknown: number;
  /** HTTP attempts, including retries. */
  attempts: number;
  /** Writes answered as a duplicate of an earlier attempt of the same request. */
  duplicates: number;
  /** Failed attempts by cause (`503 no_leader`, `timeout`, `refused`, ...). */
  failures: Map<string, number>;
  /** Answers that should never happen (4xx on a well-formed request, bad bodies). */
  errors: string[];
}

/** Creates empty {@link ClientStats}. @returns the stats */
export function newClientStats(): ClientStats {
  return {
    ok: 0,
    failed: 0,
    unknown: 0,
    attempts: 0,
    duplicates: 0,
    failures: new Map(),
    errors: [],
  };
}

/** Options of {@link runClient}. */
export interface ClientOptions {
  /** Client name in the history and in the `x-client-id` header. */
  name: string;
  /** Base URLs of the nodes (the caller may change the array in place). */
  urls: string[];
  /** The keys to use. */
  keys: string[];
  /** This client's random source. */
  random: SeededRandom;
  /** The shared history. */
  recorder: HistoryRecorder<KvInput, KvOutput>;
  /** Shared counters. */
  stats: ClientStats;
  /** Whether to start another operation. */
  keepGoing: () => boolean;
  /** Limit of one HTTP attempt. */
  attemptTimeoutMs: number;
  /** Limit of one operation over all its attempts; a write still unanswered is unknown. */
  opTimeoutMs: number;
  /** Longest pause between two operations. */
  thinkMs: number;
  /** Reads use `?local` (each node's own, possibly stale copy): a deliberate bug. @default false */
  localReads?: boolean;
  /** Only read (the final reads). @default false */
  readOnly?: boolean;
  /** Called after every HTTP attempt (for the attempt log kept when a check fails). */
  onAttempt?: (attempt: AttemptRecord) => void;
}

/** One HTTP attempt, as the attempt log keeps it. */
export interface AttemptRecord {
  /** Client name. */
  client: string;
  /** The request's sequence number (writes) or 0 (reads). */
  seq: number;
  /** Method and path. */
  request: string;
  /** The node the client sent it to. */
  node: string;
  /** HTTP status, or `timeout` / `unreachable`. */
  status: number | string;
  /** The node that answered after forwarding, if any. */
  forwardedTo?: string;
  /** Body of the answer (first 200 characters). */
  body?: string;
  /** When the attempt started and ended (performance.now()). */
  start: number;
  /** When the attempt ended. */
  end: number;
}

interface Answer {
  status: number;
  text: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function count(stats: ClientStats, cause: string): void {
  stats.failures.set(cause, (stats.failures.get(cause) ?? 0) + 1);
}

/** One client: operations one after another until `keepGoing()` says stop. */
export async function runClient(options: ClientOptions): Promise<void> {
  const { random, keys, recorder, stats } = options;
  // The value this client last saw per key, so that its CAS requests often succeed.
  const known = new Map<string, string | null>();
  let seq = 0;
  let writes = 0;
  let home = random.int(options.urls.length);

  async function attempt(path: string, init: RequestInit, timeoutMs: number, seqNo: number) {
    stats.attempts++;
    // The list may shrink or grow while the run changes the membership.
    const url = options.urls[home % options.urls.length]!;
    const start = performance.now();
    const record = (status: number | string, forwardedTo?: string | null, body?: string) =>
      options.onAttempt?.({
        client: options.name,
        seq: seqNo,
        request: `${init.method ?? "GET"} ${path}`,
        node: url,
        status,
        ...(forwardedTo ? { forwardedTo } : {}),
        ...(body === undefined ? {} : { body: body.slice(0, 200) }),
        start,
        end: performance.now(),
      });
    try {
      const response = await fetch(url + path, {
        ...init,
        redirect: "manual",
        signal: AbortSignal.timeout(Math.max(1, timeoutMs)),
      });
      const answer: Answer = { status: response.status, text: await response.text() };
      record(answer.status, response.headers.get("x-kv-forwarded-to"), answer.text);
      if (answer.status !== 200 && answer.status !== 404) {
        count(stats, `${answer.status} ${errorCode(answer.text)}`);
        home = random.int(options.urls.length);
      }
      return answer;
    } catch (error) {
      const name = (error as { name?: string }).name;
      const cause = name === "TimeoutError" || name === "AbortError" ? "timeout" : "unreachable";
      count(stats, cause);
      record(cause);
      // Like a real client, try another node after a failure.
      home = random.int(options.urls.length);
      return undefined;
    }
  }

  async function read(key: string): Promise<void> {
    const deadline = performance.now() + options.opTimeoutMs;
    while (performance.now() < deadline) {
      // A read changes nothing, so a failed attempt is left out of the history and each
      // attempt is its own operation, which keeps the checked intervals short.
      const handle = recorder.invoke(options.name, { op: "get", key });
      const answer = await attempt(
        options.localReads ? `/kv/${key}?local` : `/kv/${key}`,
        {},
        Math.min(options.attemptTimeoutMs, deadline - performance.now()),
        0,
      );
      if (answer?.status === 200) {
        recorder.ok(handle, answer.text);
        known.set(key, answer.text);
        stats.ok++;
        return;
      }
      if (answer?.status === 404 && errorCode(answer.text) === "not_found") {
        recorder.ok(handle, null);
        known.set(key, null);
        stats.ok++;
        return;
      }
      recorder.fail(handle);
      if (answer !== undefined && answer.status >= 400 && answer.status < 500) {
        stats.errors.push(`GET ${key}: ${answer.status} ${answer.text}`);
        break;
      }
      await sleep(20 + random.int(80));
    }
    stats.failed++;
  }

  async function write(input: KvInput & { op: "put" | "delete" | "cas" }): Promise<void> {
    const handle = recorder.invoke(options.name, input);
    const headers = { [CLIENT_ID_HEADER]: options.name, [REQUEST_SEQ_HEADER]: String(++seq) };
    const init: RequestInit = input.op === "put"
      ? { method: "PUT", body: input.value, headers }
      : input.op === "delete"
      ? { method: "DELETE", headers }
      : {
        method: "POST",
        body: JSON.stringify({ expect: input.expect, value: input.value }),
        headers: { ...headers, "content-type": "application/json" },
      };
    const path = input.op === "cas" ? `/kv/${input.key}/cas` : `/kv/${input.key}`;
    const deadline = performance.now() + options.opTimeoutMs;
    // Every attempt carries the same client id and sequence number, so the state machine
    // applies the request at most once however many attempts reach a leader.
    while (performance.now() < deadline) {
      const answer = await attempt(
        path,
        init,
        Math.min(options.attemptTimeoutMs, deadline - performance.now()),
        seq,
      );
      if (answer?.status === 200) {
        let body: { ok?: unknown; previous?: unknown; duplicate?: unknown; stale?: unknown };
        try {
          body = JSON.parse(answer.text);
        } catch {
          stats.errors.push(`${input.op} ${input.key}: 200 with body ${answer.text}`);
          break;
        }
        if (body.stale === true) {
          // Cannot happen while this request is the client's latest; leave it unknown.
          stats.errors.push(`${input.op} ${input.key} seq ${seq}: answered stale`);
          break;
        }
        if (body.duplicate === true) stats.duplicates++;
        const ok = body.ok === true;
        recorder.ok(handle, input.op === "cas" ? ok : "ok");
        stats.ok++;
        if (input.op === "delete") known.set(input.key, null);
        else if (ok) known.set(input.key, input.value);
        else if (typeof body.previous === "string" || body.previous === null) {
          known.set(input.key, body.previous);
        }
        return;
      }
      if (answer !== undefined && answer.status >= 400 && answer.status < 500) {
        // A malformed request never reaches the log.
        stats.errors.push(`${input.op} ${input.key}: ${answer.status} ${answer.text}`);
        recorder.fail(handle);
        stats.failed++;
        return;
      }
      // 503/504, a timeout or a dead node: the request may or may not be in some log.
      await sleep(20 + random.int(80));
    }
    recorder.unknown(handle);
    stats.unknown++;
  }

  while (options.keepGoing()) {
    const key = keys[random.int(keys.length)]!;
    const roll = random.next();
    const value = `${options.name}-${++writes}`;
    if (roll < 0.4 || options.readOnly) await read(key);
    else if (roll < 0.65) await write({ op: "put", key, value });
    else if (roll < 0.95) {
      const expect = random.chance(0.8)
        ? known.get(key) ?? null
        : random.chance(0.5)
        ? null
        : `c${random.int(8)}-${random.int(writes + 1)}`;
      await write({ op: "cas", key, expect, value });
    } else await write({ op: "delete", key });
    await sleep(random.int(options.thinkMs + 1));
  }
}

function errorCode(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    return typeof parsed.error === "string" ? parsed.error : "?";
  } catch {
    return "?";
  }
}
