import * as http from "node:http";
import * as https from "node:https";
import {
  type Clock,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_RPC_TIMEOUT_MS,
  systemClock,
  TransportError,
} from "@tsraft/core";
import { concatChunks, readBodyLimited } from "./_body.ts";

/**
 * Default per-request timeout of {@link makeHttpClient} and `HttpTransporter`: core's
 * `DEFAULT_RPC_TIMEOUT_MS` (2000 ms), the default of every transport.
 */
export const DEFAULT_HTTP_TIMEOUT_MS: number = DEFAULT_RPC_TIMEOUT_MS;

/** Default bound on a response body read by {@link makeHttpClient}: the wire codec's bound. */
export const DEFAULT_MAX_RESPONSE_BYTES: number = DEFAULT_MAX_MESSAGE_BYTES;

/** Per-request settings of {@link HttpClient.post}. */
export interface HttpPostOptions {
  /**
   * Deadline of this request in milliseconds, instead of the client's own. A positive,
   * finite number. `HttpTransporter` passes its `snapshotTimeoutMs` here for snapshot
   * chunks (the `"snapshot"` timeout class of core's `RPCS` table).
   * @default {the timeoutMs the client was made with}
   */
  timeoutMs?: number;
}

/** What {@link HttpClient.post} resolves with: the status and the whole body. */
export interface HttpResponse {
  /** HTTP status code. */
  status: number;
  /** The whole response body. */
  body: Uint8Array;
}

/**
 * The minimal HTTP client `HttpTransporter` needs. Implement it to plug in another
 * client (a proxy, a test double); {@link makeHttpClient} returns the default one.
 *
 * @example
 * ```ts
 * import type { HttpClient } from "@tsraft/transport-http";
 * const refuseAll: HttpClient = {
 *   post: () => Promise.resolve({ status: 503, body: new Uint8Array() }),
 * };
 * ```
 */
export interface HttpClient {
  /**
   * POSTs `body` to `url` and resolves with the response, whatever its status.
   * Rejects with `TransportError` when no response arrives: network error, timeout,
   * `signal` aborted, or a response body over the client's bound.
   *
   * A client should honour `options.timeoutMs`: without it, snapshot chunks sent by
   * `HttpTransporter` get the client's own (usually shorter) deadline. (The options come
   * last, after the original four parameters, so clients written before they existed
   * still fit the interface.)
   */
  post(
    url: string,
    body: Uint8Array,
    headers: Record<string, string>,
    signal?: AbortSignal,
    options?: HttpPostOptions,
  ): Promise<HttpResponse>;
  /** Releases pooled connections; the client must not be used afterwards. Optional. */
  close?(): void;
}

/** TLS settings for https URLs. */
export interface HttpClientTlsOptions {
  /**
   * PEM certificate(s) of the authority that signed the peers' certificates, for clusters
   * using a private CA. Deno uses `Deno.createHttpClient({ caCerts })`, Bun
   * `fetch(url, { tls: { ca } })`, the node implementation an `https.Agent({ ca })`; the fetch
   * implementation on Node cannot take TLS options and throws `TypeError`.
   */
  ca?: string | string[];
  /** PEM client certificate, for mutual TLS. Requires `key`. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /**
   * Set to `false` to accept any server certificate (tests only). Honoured on Node and
   * Bun; Deno has no per-client switch (run with `--unsafely-ignore-certificate-errors`).
   * @default true
   */
  rejectUnauthorized?: boolean;
}

/** Options of {@link makeHttpClient}. */
export interface HttpClientOptions {
  /** TLS settings used for https URLs. */
  tls?: HttpClientTlsOptions;
  /**
   * Largest response body accepted; a larger one rejects with `TransportError`.
   * @default {DEFAULT_MAX_RESPONSE_BYTES}
   */
  maxResponseBytes?: number;
  /**
   * Which implementation to use: `"fetch"` (the runtime's pooled `fetch`, default on Deno
   * and Bun) or `"node"` (`node:http`/`node:https` with a keep-alive `Agent`, default
   * elsewhere). `"auto"` picks by runtime.
   * @default "auto"
   */
  implementation?: "auto" | "fetch" | "node";
  /**
   * Most sockets per peer kept by the node implementation's keep-alive agent.
   * @default 64
   */
  maxSockets?: number;
  /**
   * Clock of the request deadlines: each request's timer is set on it. Pass core's
   * `ManualClock` (from `@tsraft/core/testing`) to drive deadlines in a test.
   * @default {systemClock}
   */
  clock?: Clock;
}

/**
 * Makes the default HTTP client: keep-alive connections and a per-request timeout that
 * covers the whole exchange (connect, send, and reading the response body). `timeoutMs`
 * is the deadline of every request that does not pass its own `options.timeoutMs`.
 *
 * On Deno and Bun it uses the runtime's `fetch`, which pools connections per host; with
 * `tls.ca` it uses `Deno.createHttpClient` (feature-detected, so the module needs no
 * Deno types and still loads on Bun and Node) or Bun's `tls` fetch option. Elsewhere it
 * uses `node:http`/`node:https` with a keep-alive `Agent`.
 *
 * @param timeoutMs default deadline of each request in milliseconds
 * @param options TLS, response bound, implementation choice and the clock of deadlines
 * @returns a client whose `post` rejects with `TransportError` on failure, and with
 * `RangeError` for an `options.timeoutMs` that is not a positive finite number
 * @throws {RangeError} when `timeoutMs` or `maxResponseBytes` is not a positive number
 *
 * @example
 * ```ts
 * import { makeHttpClient } from "@tsraft/transport-http";
 * const client = makeHttpClient(500);
 * try {
 *   // Port 9 (discard) is almost certainly closed: the call rejects with TransportError.
 *   await client.post("http://127.0.0.1:9/raft/appendEntries", new Uint8Array(), {});
 * } catch (error) {
 *   if ((error as Error).name !== "TransportError") throw error;
 * } finally {
 *   client.close?.();
 * }
 * ```
 */
export function makeHttpClient(timeoutMs: number, options: HttpClientOptions = {}): HttpClient {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`Cannot make an HTTP client: timeoutMs must be > 0, got ${timeoutMs}`);
  }
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  if (!(maxResponseBytes > 0)) {
    throw new RangeError(
      `Cannot make an HTTP client: maxResponseBytes must be > 0, got ${maxResponseBytes}`,
    );
  }
  const implementation = options.implementation ?? "auto";
  const useFetch = implementation === "fetch" ||
    (implementation === "auto" && (isDeno() || isBun()));
  const settings = {
    timeoutMs,
    maxResponseBytes,
    tls: options.tls,
    clock: options.clock ?? systemClock,
  };
  return useFetch
    ? makeFetchClient(settings)
    : makeNodeClient({ ...settings, maxSockets: options.maxSockets ?? 64 });
}

interface ClientSettings {
  timeoutMs: number;
  maxResponseBytes: number;
  tls: HttpClientTlsOptions | undefined;
  clock: Clock;
}

/** @returns the deadline of one request: its own `timeoutMs`, else the client's */
function requestTimeoutMs(options: HttpPostOptions | undefined, clientTimeoutMs: number): number {
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs === undefined) return clientTimeoutMs;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`Cannot POST: timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  return timeoutMs;
}

// Runtime detection goes through globalThis so this module type-checks and loads on
// every runtime without Deno or Bun type declarations.
function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno === "object";
}

function isBun(): boolean {
  return typeof (globalThis as { Bun?: unknown }).Bun === "object";
}

interface DenoHttpClientApi {
  createHttpClient?: (
    options: { caCerts?: string[]; cert?: string; key?: string },
  ) => { close(): void };
}

function makeFetchClient(settings: ClientSettings): HttpClient {
  const { maxResponseBytes, tls, clock } = settings;
  // Extra fetch init fields for TLS: unknown keys are ignored by runtimes that do not
  // understand them, which is why both are set through one untyped object.
  const extraInit: Record<string, unknown> = {};
  let denoClient: { close(): void } | undefined;
  if (tls !== undefined) {
    const deno = (globalThis as { Deno?: DenoHttpClientApi }).Deno;
    if (deno?.createHttpClient !== undefined) {
      const caCerts = tls.ca === undefined ? undefined : [tls.ca].flat();
      denoClient = deno.createHttpClient({
        ...(caCerts === undefined ? {} : { caCerts }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
      });
      extraInit.client = denoClient;
    } else if ((globalThis as { Bun?: unknown }).Bun !== undefined) {
      extraInit.tls = { ...tls };
    } else {
      // Node's fetch has no per-request TLS settings; silently ignoring them would fail
      // every request with an opaque "fetch failed".
      throw new TypeError(
        'TLS options need implementation "node" on this runtime: its fetch cannot take a CA',
      );
    }
  }
  let closed = false;
  return {
    async post(url, body, headers, signal, options) {
      const timeoutMs = requestTimeoutMs(options, settings.timeoutMs);
      if (closed) throw new TransportError(`Cannot POST ${url}: the HTTP client is closed`);
      if (signal?.aborted) {
        throw new TransportError(`POST ${url} aborted`, { cause: signal.reason });
      }
      // The deadline is a timer on the injected clock rather than AbortSignal.timeout(),
      // which only knows real time.
      const timeout = new AbortController();
      const timer = clock.setTimeout(() => timeout.abort(), timeoutMs);
      const combined = signal === undefined
        ? timeout.signal
        : AbortSignal.any([signal, timeout.signal]);
      try {
        const response = await fetch(url, {
          method: "POST",
          body: body as Uint8Array<ArrayBuffer>,
          headers,
          signal: combined,
          ...extraInit,
        });
        const bytes = await readBodyLimited(response, maxResponseBytes);
        if (bytes === undefined) {
          throw new TransportError(
            `POST ${url}: response body exceeds ${maxResponseBytes} bytes`,
          );
        }
        return { status: response.status, body: bytes };
      } catch (error) {
        throw toTransportError(error, url, { timeoutMs, timedOut: timeout.signal.aborted, signal });
      } finally {
        clock.clearTimeout(timer);
      }
    },
    close() {
      closed = true;
      denoClient?.close();
    },
  };
}

function toTransportError(
  error: unknown,
  url: string,
  context: { timeoutMs: number; timedOut: boolean; signal: AbortSignal | undefined },
): TransportError {
  if (error instanceof TransportError) return error;
  if (context.signal?.aborted) {
    return new TransportError(`POST ${url} aborted`, { cause: context.signal.reason });
  }
  if (context.timedOut) {
    return new TransportError(`POST ${url} timed out after ${context.timeoutMs} ms`, {
      cause: error,
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new TransportError(`POST ${url} failed: ${reason}`, { cause: error });
}

function makeNodeClient(settings: ClientSettings & { maxSockets: number }): HttpClient {
  const { maxResponseBytes, tls, clock } = settings;
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: settings.maxSockets });
  const httpsAgent = new https.Agent({
    keepAlive: true,
    maxSockets: settings.maxSockets,
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls?.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls?.key === undefined ? {} : { key: tls.key }),
    ...(tls?.rejectUnauthorized === undefined
      ? {}
      : { rejectUnauthorized: tls.rejectUnauthorized }),
  });
  let closed = false;
  return {
    post(url, body, headers, signal, options) {
      return new Promise<HttpResponse>((resolve, reject) => {
        const timeoutMs = requestTimeoutMs(options, settings.timeoutMs);
        if (closed) {
          reject(new TransportError(`Cannot POST ${url}: the HTTP client is closed`));
          return;
        }
        if (signal?.aborted) {
          reject(new TransportError(`POST ${url} aborted`, { cause: signal.reason }));
          return;
        }
        let target: URL;
        try {
          target = new URL(url);
        } catch (error) {
          reject(new TransportError(`Cannot POST ${url}: invalid URL`, { cause: error }));
          return;
        }
        const secure = target.protocol === "https:";
        let settled = false;
        const cleanup = () => {
          clock.clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        };
        const fail = (error: TransportError) => {
          if (settled) return;
          settled = true;
          cleanup();
          request.destroy();
          reject(error);
        };
        const onAbort = () => {
          fail(new TransportError(`POST ${url} aborted`, { cause: signal?.reason }));
        };
        const timer = clock.setTimeout(() => {
          fail(new TransportError(`POST ${url} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        signal?.addEventListener("abort", onAbort, { once: true });
        const request = (secure ? https : http).request(target, {
          method: "POST",
          agent: secure ? httpsAgent : httpAgent,
          headers: { ...headers, "content-length": String(body.byteLength) },
        });
        request.on("error", (error: Error) => {
          fail(new TransportError(`POST ${url} failed: ${error.message}`, { cause: error }));
        });
        request.on("response", (response: http.IncomingMessage) => {
          const declared = Number(response.headers["content-length"]);
          if (Number.isFinite(declared) && declared > maxResponseBytes) {
            fail(tooLarge(url, maxResponseBytes));
            return;
          }
          const chunks: Uint8Array[] = [];
          let total = 0;
          response.on("data", (chunk: Uint8Array) => {
            total += chunk.byteLength;
            if (total > maxResponseBytes) {
              fail(tooLarge(url, maxResponseBytes));
              return;
            }
            chunks.push(chunk);
          });
          response.on("end", () => {
            if (settled) return;
            settled = true;
            cleanup();
            const joined = concatChunks(chunks, total);
            // Buffers are views into a shared pool; hand out a plain Uint8Array view.
            const bytes = new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
            resolve({ status: response.statusCode ?? 0, body: bytes });
          });
          response.on("error", (error: Error) => {
            fail(new TransportError(`POST ${url} failed: ${error.message}`, { cause: error }));
          });
          response.on("close", () => {
            if (!response.complete) {
              fail(new TransportError(`POST ${url} failed: connection closed mid-response`));
            }
          });
        });
        request.end(body);
      });
    },
    close() {
      closed = true;
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

function tooLarge(url: string, maxResponseBytes: number): TransportError {
  return new TransportError(`POST ${url}: response body exceeds ${maxResponseBytes} bytes`);
}
