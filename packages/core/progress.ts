/**
 * A leader's view of one follower: how much of the log it holds and how entries flow to it
 * (etcd-raft's `tracker.Progress`).
 * @module
 */
import { InvariantError } from "./raft_log.ts";
import type { PeerInfo } from "./types.ts";

/**
 * - `probe`: where the follower's log matches is unknown; one AppendEntries at a time finds it.
 * - `replicate`: the match is known; entries stream, several messages in flight.
 * - `snapshot`: the follower needs entries the leader compacted; a snapshot is on its way.
 */
export type ProgressMode = "probe" | "replicate" | "snapshot";

/**
 * Replication state of one follower or learner.
 *
 * Invariant: matchIndex < nextIndex (everything below nextIndex is either known to match
 * or in flight).
 */
export class Progress {
  /** The follower. */
  readonly peer: PeerInfo;
  #mode: ProgressMode = "probe";
  #matchIndex = 0;
  #nextIndex: number;
  /** AppendEntries carrying entries not yet answered. */
  #inflight = 0;
  /** Command bytes in those messages. */
  #inflightBytes = 0;
  /** Clock time of its last answer. */
  lastResponseAtMs: number;
  /** Sequence number of the newest heartbeat round it answered. */
  ackedHeartbeatSeq = 0;
  /** When the newest heartbeat round it answered was sent. */
  ackedHeartbeatSentAtMs = -Infinity;
  /** Called after the match index or the mode changed (the leader reports it in `Ready`). */
  onChange: (() => void) | undefined;

  /**
   * Creates an instance in `probe` mode.
   * @param peer the follower
   * @param nextIndex where probing starts (the leader's last index + 1)
   * @param nowMs counts as its last contact
   */
  constructor(peer: PeerInfo, nextIndex: number, nowMs: number) {
    this.peer = peer;
    this.#nextIndex = nextIndex;
    this.lastResponseAtMs = nowMs;
  }

  /** Current mode. */
  get mode(): ProgressMode {
    return this.#mode;
  }
  /** Highest index known replicated on the follower. */
  get matchIndex(): number {
    return this.#matchIndex;
  }
  /** Next index to send. */
  get nextIndex(): number {
    return this.#nextIndex;
  }
  /** AppendEntries with entries in flight. */
  get inflight(): number {
    return this.#inflight;
  }
  /** Command bytes in flight. */
  get inflightBytes(): number {
    return this.#inflightBytes;
  }

  /** Starts probing at `nextIndex` (default: right after the match), forgetting what is in flight. */
  becomeProbe(nextIndex: number = this.#matchIndex + 1): void {
    this.#setMode("probe");
    this.#nextIndex = Math.max(nextIndex, this.#matchIndex + 1);
    this.#resetInflight();
  }

  /**
   * Streams from the match on, with an empty window: a probe succeeded.
   *
   * A probe's slot counts any message, heartbeats too, while a stream frees a slot only for
   * answers that carry entries: a probe slot carried over would never be freed, and with a
   * window of one nothing more would be sent (simulator seed 420). Probes still in flight
   * answer as a stream message would, and freeing below zero is clamped (etcd-raft's
   * BecomeReplicate also resets its inflights).
   */
  becomeReplicate(): void {
    this.#setMode("replicate");
    this.#nextIndex = this.#matchIndex + 1;
    this.#resetInflight();
  }

  /** Waits for a snapshot; nothing else is sent but heartbeats. */
  becomeSnapshot(): void {
    this.#setMode("snapshot");
    this.#resetInflight();
  }

  /**
   * Whether no more entries may be sent now: a probe waits for its answer, a stream for
   * room in the window, a snapshot for its outcome.
   */
  isPaused(maxInflightMessages: number, maxInflightBytes: number): boolean {
    switch (this.#mode) {
      case "probe":
        return this.#inflight > 0;
      case "replicate":
        return this.#inflight >= maxInflightMessages || this.#inflightBytes >= maxInflightBytes;
      case "snapshot":
        return true;
    }
  }

  /**
   * Notes an AppendEntries sent with `count` entries (`bytes` of commands) starting at
   * nextIndex: a stream advances nextIndex optimistically, a probe does not.
   */
  sent(count: number, bytes: number): void {
    if (this.#mode === "replicate") {
      this.#inflight++;
      this.#inflightBytes += bytes;
      this.#nextIndex += count;
    } else if (this.#mode === "probe") {
      this.#inflight = 1;
    }
  }

  /** Frees the window slot of an answered (or lost) message carrying `bytes` of commands. */
  freeInflight(bytes: number): void {
    if (this.#mode === "probe") {
      this.#resetInflight();
    } else if (this.#inflight > 0) {
      this.#inflight--;
      this.#inflightBytes = Math.max(0, this.#inflightBytes - bytes);
    }
  }

  /**
   * Notes that the follower holds everything through `index`.
   * @returns whether the match index moved
   */
  ack(index: number): boolean {
    if (index <= this.#matchIndex) return false;
    this.#matchIndex = index;
    if (this.#nextIndex <= index) this.#nextIndex = index + 1;
    this.#check();
    this.onChange?.();
    return true;
  }

  /**
   * Handles a rejection at `rejectedPrevIndex`: back off to `hint` (never below the match)
   * and probe from there.
   * @returns false for a stale rejection of a position already known to match
   */
  reject(rejectedPrevIndex: number, hint: number): boolean {
    if (rejectedPrevIndex < this.#matchIndex) return false;
    this.becomeProbe(Math.min(hint, rejectedPrevIndex));
    return true;
  }

  /** After a snapshot through `index` was installed, or refused, probe from `nextIndex`. */
  snapshotDone(index: number, installed: boolean, nextIndex: number): void {
    if (installed) this.ack(index);
    this.becomeProbe(Math.max(nextIndex, this.#matchIndex + 1));
  }

  #setMode(mode: ProgressMode): void {
    if (this.#mode === mode) return;
    this.#mode = mode;
    this.onChange?.();
  }

  #resetInflight(): void {
    this.#inflight = 0;
    this.#inflightBytes = 0;
  }

  #check(): void {
    if (this.#matchIndex >= this.#nextIndex) {
      throw new InvariantError(
        `${this.peer.name}: matchIndex ${this.#matchIndex} >= nextIndex ${this.#nextIndex}`,
      );
    }
  }
}
