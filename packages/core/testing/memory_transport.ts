import { type Clock, systemClock, type TimerHandle } from "../clock.ts";
import { TransportError } from "../errors.ts";
import type { Random } from "../random.ts";
import type { RaftHandler, SendOptions, Transporter, TransportSender } from "../transporter.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  PeerInfo,
  RequestVoteRequest,
  RequestVoteResponse,
  SnapshotRecoveryRequest,
  SnapshotRecoveryResponse,
  SnapshotRequest,
  SnapshotResponse,
  TimeoutNowRequest,
  TimeoutNowResponse,
} from "../types.ts";
import { rpcOfMethod } from "../wire.ts";
import { SeededRandom } from "./seeded_random.ts";

const SCHEME = "memory://";

/** The five RPCs, named after the {@link RaftHandler} method that receives each. */
export type RpcKind =
  | "appendEntries"
  | "requestVote"
  | "requestSnapshot"
  | "snapshotRecoveryRequest"
  | "timeoutNow";

/** Counters kept by a {@link MemoryNetwork} since it was created or last reset. */
export interface NetworkStats {
  /** Sends of each RPC kind, whatever became of them. */
  sent: Record<RpcKind, number>;
  /** All sends. */
  total: number;
  /** Sends addressed to each server name. */
  sentTo: Record<string, number>;
  /** Requests handed to a handler (duplicates included). */
  delivered: number;
  /** Requests or responses lost to a fault (partition, cut link, isolation, drop rate). */
  dropped: number;
  /** Requests delivered a second time by the duplicate rate. */
  duplicated: number;
  /** Bytes of log commands and snapshot chunks carried by sent requests. */
  payloadBytes: number;
}

/** A range of one-way message delays; each message draws its own, so messages reorder. */
export interface DelayRange {
  /** Shortest delay in ms. */
  minMs: number;
  /** Longest delay in ms (inclusive). */
  maxMs: number;
}

/** Occasional long delays on top of {@link DelayRange}: a message held back in a queue. */
export interface LongDelay {
  /** Chance that a message is held back. */
  rate: number;
  /** Longest extra delay in ms (inclusive); each held-back message draws its own. */
  maxMs: number;
}

/** Options of a {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /**
   * Schedules delayed deliveries and timeouts; pass a `ManualClock` to control them.
   * @default systemClock
   */
  clock?: Clock;
  /**
   * Decides drops, duplicates and delays.
   * @default new SeededRandom(1)
   */
  random?: Random;
  /**
   * When set, a send whose request or response was lost rejects only after this long on
   * `clock` (as a real RPC timeout would), and so does one whose handler is slower than
   * this. When unset, a lost message rejects the send at once.
   */
  timeoutMs?: number;
}

/**
 * An in-process network for tests and the simulator: servers {@link MemoryNetwork.register}
 * their handler and share the {@link Transporter} from {@link MemoryNetwork.transporter}.
 * Every request and response is deep-copied (`structuredClone`), so servers never share
 * objects, and delivered asynchronously (on a microtask, or after a delay on the clock).
 *
 * Faults: partitions, isolation, one-way link cuts, random drops, duplicates and delays
 * (hence reordering), all decided by the injected `Random` so a seed replays exactly.
 * A send that cannot be completed rejects with `TransportError`.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "@tsraft/core/testing";
 * import type { RaftHandler } from "@tsraft/core";
 * const network = new MemoryNetwork();
 * const handler = {
 *   name: "b",
 *   requestVote: (req) => Promise.resolve({ term: req.term, voteGranted: true, preVote: false }),
 * } as RaftHandler;
 * const peer = network.register(handler);
 * const transporter = network.transporter();
 * const res = await transporter.sendVoteRequest({ name: "a" }, peer, {
 *   term: 1, lastLogIndex: 0, lastLogTerm: 0, candidateName: "a", preVote: false, transfer: false,
 * });
 * if (!res.voteGranted) throw new Error("vote not granted");
 * network.partition(["a"], ["b"]);
 * await transporter.sendVoteRequest({ name: "a" }, peer, {
 *   term: 2, lastLogIndex: 0, lastLogTerm: 0, candidateName: "a", preVote: false, transfer: false,
 * }).then(() => { throw new Error("should be partitioned"); }, () => {});
 * ```
 */
export class MemoryNetwork {
  #clock: Clock;
  #random: Random;
  #timeoutMs: number | undefined;
  #handlers = new Map<string, RaftHandler>();
  #groups: Map<string, number> | undefined;
  #isolated = new Set<string>();
  #cutLinks = new Set<string>();
  #dropRate = 0;
  #duplicateRate = 0;
  #delay: DelayRange = { minMs: 0, maxMs: 0 };
  #longDelay: LongDelay = { rate: 0, maxMs: 0 };
  #stats: NetworkStats = emptyStats();
  // A Map, so that a server named "__proto__" cannot reach the prototype.
  #sentTo = new Map<string, number>();
  #timers = new Set<TimerHandle>();
  #outstanding = new Set<(error: TransportError) => void>();

  /**
   * Creates a network with no servers and no faults.
   * @param options clock, randomness and RPC timeout
   */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? new SeededRandom(1);
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined && !(timeoutMs >= 0)) {
      throw new RangeError(`Invalid timeoutMs ${timeoutMs}: must be >= 0`);
    }
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Makes `handler` reachable under `handler.name`.
   * @returns its peer info, with connection string `memory://<name>`
   * @throws TypeError when the name is empty or already registered
   */
  register(handler: RaftHandler): PeerInfo {
    const name = handler.name;
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Cannot register a handler without a name");
    }
    if (this.#handlers.has(name)) {
      throw new TypeError(`Cannot register ${name}: a handler of that name is registered`);
    }
    this.#handlers.set(name, handler);
    return { name, connectionString: SCHEME + name };
  }

  /** Makes `name` unreachable (a crashed server); requests in flight to it are lost. */
  unregister(name: string): void {
    this.#handlers.delete(name);
  }

  /** A transporter for any server on this network; the sender is named in each call. */
  transporter(): Transporter {
    return new MemoryTransporter((kind, sender, peer, request, options) =>
      this.#send(kind, sender, peer, request, options)
    );
  }

  /**
   * Splits the network: messages pass only between names in the same group. Names in no
   * group reach nobody. Replaces any earlier partition.
   */
  partition(...groups: string[][]): void {
    const map = new Map<string, number>();
    groups.forEach((group, i) => {
      for (const name of group) {
        if (map.has(name)) throw new RangeError(`Cannot put ${name} in two partition groups`);
        map.set(name, i);
      }
    });
    this.#groups = map;
  }

  /** Cuts `name` off from everyone, in both directions, until {@link rejoin} or {@link heal}. */
  isolate(name: string): void {
    this.#isolated.add(name);
  }

  /** Undoes {@link isolate} for `name`. */
  rejoin(name: string): void {
    this.#isolated.delete(name);
  }

  /** Loses every message from `from` to `to` (one way). */
  cutLink(from: string, to: string): void {
    this.#cutLinks.add(linkKey(from, to));
  }

  /** Undoes {@link cutLink}. */
  restoreLink(from: string, to: string): void {
    this.#cutLinks.delete(linkKey(from, to));
  }

  /** Removes every partition, isolation and cut link (rates and delays stay). */
  heal(): void {
    this.#groups = undefined;
    this.#isolated.clear();
    this.#cutLinks.clear();
  }

  /**
   * Loses each request, and each response, with probability `p`.
   * @throws RangeError unless `0 <= p <= 1`
   */
  setDropRate(p: number): void {
    this.#dropRate = checkProbability(p, "drop rate");
  }

  /**
   * Delivers each request a second time with probability `p`; the sender gets whichever
   * response arrives first.
   * @throws RangeError unless `0 <= p <= 1`
   */
  setDuplicateRate(p: number): void {
    this.#duplicateRate = checkProbability(p, "duplicate rate");
  }

  /**
   * Delays each request and each response by a whole number of ms drawn uniformly from
   * the range; `{ minMs: 0, maxMs: 0 }` delivers on a microtask.
   * @throws RangeError unless `0 <= minMs <= maxMs`
   */
  setDelay(range: DelayRange): void {
    const { minMs, maxMs } = range;
    if (!(minMs >= 0 && maxMs >= minMs && Number.isFinite(maxMs))) {
      throw new RangeError(`Invalid delay range [${minMs}, ${maxMs}] ms`);
    }
    this.#delay = { minMs, maxMs };
  }

  /**
   * Holds back each request and each response, with probability `rate`, by an extra delay
   * drawn uniformly from `[0, maxMs]` ms (a long queue, a retransmission): such a message
   * overtakes nothing but is overtaken by many.
   * @throws RangeError unless `0 <= rate <= 1` and `maxMs >= 0`
   */
  setLongDelay(longDelay: LongDelay): void {
    const rate = checkProbability(longDelay.rate, "long delay rate");
    if (!(longDelay.maxMs >= 0 && Number.isFinite(longDelay.maxMs))) {
      throw new RangeError(`Invalid long delay ${longDelay.maxMs} ms`);
    }
    this.#longDelay = { rate, maxMs: longDelay.maxMs };
  }

  /** A copy of the counters. */
  get stats(): NetworkStats {
    return { ...structuredClone(this.#stats), sentTo: Object.fromEntries(this.#sentTo) };
  }

  /** Sets every counter back to zero. */
  resetStats(): void {
    this.#stats = emptyStats();
    this.#sentTo.clear();
  }

  /** Whether a message from `from` to `to` would pass the partition, isolation and cuts. */
  canReach(from: string, to: string): boolean {
    if (this.#cutLinks.has(linkKey(from, to))) return false;
    if (this.#isolated.has(from) || this.#isolated.has(to)) return false;
    if (this.#groups !== undefined && from !== to) {
      const group = this.#groups.get(from);
      if (group === undefined || group !== this.#groups.get(to)) return false;
    }
    return true;
  }

  /**
   * Cancels every scheduled delivery and rejects every send still waiting, with
   * `TransportError`. The network stays usable.
   */
  close(): void {
    for (const timer of this.#timers) this.#clock.clearTimeout(timer);
    this.#timers.clear();
    const outstanding = [...this.#outstanding];
    this.#outstanding.clear();
    for (const fail of outstanding) fail(new TransportError("MemoryNetwork was closed"));
  }

  #send(
    kind: RpcKind,
    sender: TransportSender,
    peer: PeerInfo,
    request: unknown,
    options: SendOptions | undefined,
  ): Promise<unknown> {
    const from = sender.name;
    const to = addressOf(peer);
    const stats = this.#stats;
    stats.sent[kind]++;
    stats.total++;
    this.#sentTo.set(to, (this.#sentTo.get(to) ?? 0) + 1);
    stats.payloadBytes += payloadBytesOf(kind, request);
    return new Promise((resolve, reject) => {
      const signal = options?.signal;
      let settled = false;
      let timer: TimerHandle | undefined;
      const finish = () => {
        settled = true;
        this.#outstanding.delete(fail);
        if (timer !== undefined) this.#clearTimer(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const fail = (error: TransportError) => {
        if (settled) return;
        finish();
        reject(error);
      };
      const succeed = (response: unknown) => {
        if (settled) return;
        finish();
        resolve(response);
      };
      const onAbort = () => fail(new TransportError(`${kind} to ${to} was aborted`));
      if (signal?.aborted) return onAbort();
      if (!this.#handlers.has(to)) {
        return fail(new TransportError(`Cannot reach ${to}: no server of that name is registered`));
      }
      signal?.addEventListener("abort", onAbort);
      this.#outstanding.add(fail);
      if (this.#timeoutMs !== undefined) {
        const timeoutMs = this.#timeoutMs;
        timer = this.#setTimer(
          () => fail(new TransportError(`${kind} to ${to} timed out after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }
      const copies = this.#chance(this.#duplicateRate) ? 2 : 1;
      if (copies === 2) stats.duplicated++;
      let lostCopies = 0;
      const lost = (why: string) => {
        stats.dropped++;
        if (++lostCopies < copies || this.#timeoutMs !== undefined) return;
        fail(new TransportError(`${kind} from ${from} to ${to}: ${why}`));
      };
      let message: unknown;
      try {
        message = structuredClone(request);
      } catch (error) {
        return fail(
          new TransportError(`Cannot send ${kind}: request is not cloneable`, { cause: error }),
        );
      }
      for (let copy = 0; copy < copies; copy++) {
        this.#deliver(kind, from, to, copy === 0 ? message : structuredClone(message), {
          succeed,
          fail,
          lost,
        });
      }
    });
  }

  #deliver(
    kind: RpcKind,
    from: string,
    to: string,
    request: unknown,
    outcome: {
      succeed(response: unknown): void;
      fail(error: TransportError): void;
      lost(why: string): void;
    },
  ): void {
    if (!this.canReach(from, to)) return outcome.lost("request lost: no link");
    if (this.#chance(this.#dropRate)) return outcome.lost("request dropped");
    this.#schedule(() => {
      const handler = this.#handlers.get(to);
      if (handler === undefined) return outcome.lost("request lost: receiver is gone");
      // A partition or cut made while the message was in flight loses it too.
      if (!this.canReach(from, to)) return outcome.lost("request lost: link cut in flight");
      this.#stats.delivered++;
      let handled: Promise<unknown>;
      try {
        // Dispatched through core's RPC table, as the TCP and HTTP transports do.
        handled = rpcOfMethod(kind).serve(handler, request as never);
      } catch (error) {
        handled = Promise.reject(error);
      }
      handled.then(
        (response) => {
          // A reply from a process that has since crashed (unregistered) never arrives.
          if (this.#handlers.get(to) !== handler) {
            return outcome.lost("response lost: receiver is gone");
          }
          let copy: unknown;
          try {
            copy = structuredClone(response);
          } catch (error) {
            return this.#respond(to, from, outcome, () =>
              outcome.fail(
                new TransportError(`${to} returned an uncloneable ${kind} response`, {
                  cause: error,
                }),
              ));
          }
          this.#respond(to, from, outcome, () => outcome.succeed(copy));
        },
        (error: unknown) => {
          if (this.#handlers.get(to) !== handler) {
            return outcome.lost("response lost: receiver is gone");
          }
          this.#respond(to, from, outcome, () =>
            outcome.fail(
              new TransportError(`${to} failed to handle ${kind}: ${describe(error)}`, {
                cause: error,
              }),
            ));
        },
      );
    });
  }

  #respond(
    from: string,
    to: string,
    outcome: { lost(why: string): void },
    arrive: () => void,
  ): void {
    if (!this.canReach(from, to)) return outcome.lost("response lost: no link");
    if (this.#chance(this.#dropRate)) return outcome.lost("response dropped");
    this.#schedule(() => {
      if (!this.canReach(from, to)) return outcome.lost("response lost: link cut in flight");
      arrive();
    });
  }

  #schedule(callback: () => void): void {
    const { minMs, maxMs } = this.#delay;
    let delayMs = maxMs === 0 ? 0 : minMs + Math.floor(this.#random.next() * (maxMs - minMs + 1));
    if (this.#chance(this.#longDelay.rate)) {
      delayMs += Math.floor(this.#random.next() * (this.#longDelay.maxMs + 1));
    }
    if (delayMs === 0) {
      queueMicrotask(callback);
      return;
    }
    this.#setTimer(callback, delayMs);
  }

  #setTimer(callback: () => void, delayMs: number): TimerHandle {
    const timer: TimerHandle = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      callback();
    }, delayMs);
    this.#timers.add(timer);
    return timer;
  }

  #clearTimer(timer: TimerHandle): void {
    this.#timers.delete(timer);
    this.#clock.clearTimeout(timer);
  }

  /** Draws only when `p` is set, so a fault-free network consumes no randomness. */
  #chance(p: number): boolean {
    return p > 0 && this.#random.next() < p;
  }
}

type Send = (
  kind: RpcKind,
  sender: TransportSender,
  peer: PeerInfo,
  request: unknown,
  options: SendOptions | undefined,
) => Promise<unknown>;

class MemoryTransporter implements Transporter {
  #send: Send;

  constructor(send: Send) {
    this.#send = send;
  }

  sendVoteRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: RequestVoteRequest,
    options?: SendOptions,
  ): Promise<RequestVoteResponse> {
    return this.#send("requestVote", sender, peer, req, options) as Promise<RequestVoteResponse>;
  }

  sendAppendEntriesRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: AppendEntriesRequest,
    options?: SendOptions,
  ): Promise<AppendEntriesResponse> {
    return this.#send("appendEntries", sender, peer, req, options) as Promise<
      AppendEntriesResponse
    >;
  }

  sendSnapshotRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRequest,
    options?: SendOptions,
  ): Promise<SnapshotResponse> {
    return this.#send("requestSnapshot", sender, peer, req, options) as Promise<SnapshotResponse>;
  }

  sendSnapshotRecoveryRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRecoveryRequest,
    options?: SendOptions,
  ): Promise<SnapshotRecoveryResponse> {
    return this.#send("snapshotRecoveryRequest", sender, peer, req, options) as Promise<
      SnapshotRecoveryResponse
    >;
  }

  sendTimeoutNow(
    sender: TransportSender,
    peer: PeerInfo,
    req: TimeoutNowRequest,
    options?: SendOptions,
  ): Promise<TimeoutNowResponse> {
    return this.#send("timeoutNow", sender, peer, req, options) as Promise<TimeoutNowResponse>;
  }
}

function emptyStats(): NetworkStats {
  return {
    sent: {
      appendEntries: 0,
      requestVote: 0,
      requestSnapshot: 0,
      snapshotRecoveryRequest: 0,
      timeoutNow: 0,
    },
    total: 0,
    sentTo: {},
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    payloadBytes: 0,
  };
}

/** The server name a peer is reached at: its `memory://` address, else its name. */
function addressOf(peer: PeerInfo): string {
  return peer.connectionString.startsWith(SCHEME)
    ? peer.connectionString.slice(SCHEME.length)
    : peer.name;
}

function linkKey(from: string, to: string): string {
  return JSON.stringify([from, to]);
}

function checkProbability(p: number, what: string): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`Invalid ${what} ${p}: must be in [0, 1]`);
  return p;
}

function payloadBytesOf(kind: RpcKind, request: unknown): number {
  if (kind === "appendEntries") {
    let bytes = 0;
    for (const entry of (request as AppendEntriesRequest).entries ?? []) {
      bytes += entry.command?.byteLength ?? 0;
    }
    return bytes;
  }
  if (kind === "snapshotRecoveryRequest") {
    return (request as SnapshotRecoveryRequest).data?.byteLength ?? 0;
  }
  return 0;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
