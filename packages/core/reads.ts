/**
 * Linearizable reads without log writes (Raft thesis §6.4): ReadIndex, which confirms
 * leadership with a heartbeat round after the read arrives, and leases, which skip the
 * round while a quorum's recent acknowledgements guarantee no other leader can exist.
 * @module
 */

interface PendingRead {
  id: number;
  /** The commit index to serve at; -1 until this leader has committed in its term. */
  index: number;
  /** The heartbeat round whose quorum confirms the read. */
  heartbeatSeq: number;
}

/** A read confirmed by a quorum: apply through `index`, then serve it. */
export interface ReadyRead {
  /** The id `request` returned. */
  id: number;
  /** The read index. */
  index: number;
}

/** ReadIndex requests waiting for a heartbeat quorum. */
export class ReadIndexQueue {
  #pending: PendingRead[] = [];
  #nextId = 1;

  /** Whether any read waits. */
  get isEmpty(): boolean {
    return this.#pending.length === 0;
  }

  /**
   * Queues a read.
   * @param commitIndex the index to serve at, or `undefined` while the leader's commit index
   *   is not yet known to be current (no entry of its term committed)
   * @param heartbeatSeq the heartbeat round that will confirm it
   * @returns the read's id
   */
  request(commitIndex: number | undefined, heartbeatSeq: number): number {
    const id = this.#nextId++;
    this.#pending.push(
      commitIndex === undefined
        ? { id, index: -1, heartbeatSeq: Infinity }
        : { id, index: commitIndex, heartbeatSeq },
    );
    return id;
  }

  /**
   * Gives reads that waited for the leader's first commit their index and round.
   * @returns whether any read was waiting (a heartbeat round must then be sent)
   */
  commitKnown(commitIndex: number, heartbeatSeq: number): boolean {
    let changed = false;
    for (const read of this.#pending) {
      if (read.index !== -1) continue;
      read.index = commitIndex;
      read.heartbeatSeq = heartbeatSeq;
      changed = true;
    }
    return changed;
  }

  /**
   * Removes and returns the reads a quorum has confirmed.
   * @param confirmed whether a quorum acknowledged heartbeat round `seq` or a later one
   */
  takeConfirmed(confirmed: (seq: number) => boolean): ReadyRead[] {
    if (this.#pending.length === 0) return [];
    const ready: ReadyRead[] = [];
    const remaining: PendingRead[] = [];
    for (const read of this.#pending) {
      if (read.index >= 0 && confirmed(read.heartbeatSeq)) {
        ready.push({ id: read.id, index: read.index });
      } else remaining.push(read);
    }
    this.#pending = remaining;
    return ready;
  }

  /** Drops every waiting read (leadership was lost; the caller fails them). */
  clear(): void {
    this.#pending = [];
  }
}

/**
 * Whether a lease holds: a quorum acknowledged heartbeats sent recently enough that no
 * other leader can have been elected since (followers refuse to vote for an election
 * timeout after hearing from the leader), with a margin for clock drift.
 * @param ackedSentAtMs for each member, when the newest heartbeat it acknowledged was sent
 *   (now for the leader itself)
 * @param quorumSize acknowledgements needed
 * @param options the clock, the lease length and the earliest heartbeat that counts
 */
export function leaseHolds(
  ackedSentAtMs: number[],
  quorumSize: number,
  options: { nowMs: number; electionTimeoutMs: number; clockDrift: number; notBeforeMs: number },
): boolean {
  const sorted = [...ackedSentAtMs].sort((a, b) => b - a);
  const quorumSentAtMs = sorted[quorumSize - 1] ?? -Infinity;
  if (quorumSentAtMs < options.notBeforeMs) return false;
  const leaseMs = options.electionTimeoutMs * (1 - options.clockDrift);
  return options.nowMs < quorumSentAtMs + leaseMs;
}
