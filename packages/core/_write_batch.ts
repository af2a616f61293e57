// The write batch the Server (and the simulator's model of it) builds between storage
// writes: one place decides how outputs of several turns merge into one save.
import type { OutboundMessage } from "./consensus.ts";
import type { HardState, LogEntry } from "./types.ts";

/** What the next storage write will make durable, and what waits on it. */
export interface WriteBatch<Waiter> {
  hardState: HardState | undefined;
  entries: LogEntry[];
  /** Messages that may only be sent once the batch is durable (vote requests). */
  afterPersist: OutboundMessage[];
  waiters: Waiter[];
}

/**
 * Adds one turn's outputs to `batch` (creating it when undefined): the newest hard state
 * wins, and entries from a later turn replace any pending ones at or after their first
 * index, exactly as storage would truncate a conflicting suffix.
 * @returns the batch
 */
export function mergeIntoBatch<Waiter>(
  batch: WriteBatch<Waiter> | undefined,
  hardState: HardState | undefined,
  entries: LogEntry[],
  afterPersist: OutboundMessage[],
): WriteBatch<Waiter> {
  const pending = batch ?? { hardState: undefined, entries: [], afterPersist: [], waiters: [] };
  if (hardState) pending.hardState = hardState;
  if (entries.length > 0) {
    const first = entries[0]!.index;
    const keep = pending.entries.findIndex((entry) => entry.index >= first);
    if (keep >= 0) pending.entries.length = keep;
    pending.entries.push(...entries);
  }
  pending.afterPersist.push(...afterPersist);
  return pending;
}
