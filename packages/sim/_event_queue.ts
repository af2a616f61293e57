// The simulator's event queue and the trace hash. Events at the same time run in the order
// they were scheduled (a sequence number breaks ties), so a run depends on nothing but its
// seed.

/** A scheduled event; `cancelled` events are skipped when they come due. */
export interface QueuedEvent {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
  cancelled: boolean;
}

/** A min-heap of events ordered by (time, scheduling order). */
export class EventQueue {
  #heap: QueuedEvent[] = [];
  #seq = 0;
  #nowMs = 0;
  #live = 0;

  get nowMs(): number {
    return this.#nowMs;
  }

  /** Events scheduled and not cancelled. */
  get size(): number {
    return this.#live;
  }

  /** Schedules `run` at `atMs` (never in the past). */
  at(atMs: number, run: () => void): QueuedEvent {
    const event: QueuedEvent = {
      atMs: Math.max(atMs, this.#nowMs),
      seq: this.#seq++,
      run,
      cancelled: false,
    };
    const heap = this.#heap;
    heap.push(event);
    this.#live++;
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
    return event;
  }

  /** Cancels an event; a no-op for one that ran or was cancelled. */
  cancel(event: QueuedEvent): void {
    if (event.cancelled) return;
    event.cancelled = true;
    this.#live--;
  }

  /** Time of the next live event, or Infinity. */
  peekMs(): number {
    this.#dropCancelled();
    return this.#heap[0]?.atMs ?? Infinity;
  }

  /**
   * Takes the next live event if it is due at or before `untilMs`, moving the clock to its
   * time; the caller runs it.
   */
  take(untilMs: number): QueuedEvent | undefined {
    this.#dropCancelled();
    const top = this.#heap[0];
    if (top === undefined || top.atMs > untilMs) return undefined;
    this.#pop();
    this.#live--;
    top.cancelled = true; // ran: a later cancel() is a no-op
    this.#nowMs = top.atMs;
    return top;
  }

  /** Moves the clock forward to `ms` (never backwards). Call only with no event due before. */
  advanceTo(ms: number): void {
    if (ms > this.#nowMs) this.#nowMs = ms;
  }

  #dropCancelled(): void {
    while (this.#heap[0]?.cancelled) this.#pop();
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** 32-bit FNV-1a over strings, chained: a cheap fingerprint of a whole run. */
export class TraceHash {
  #hash = 0x811c9dc5;
  count = 0;

  add(text: string): void {
    let h = this.#hash;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    this.#hash = h >>> 0;
    this.count++;
  }

  get hex(): string {
    return this.#hash.toString(16).padStart(8, "0");
  }
}
