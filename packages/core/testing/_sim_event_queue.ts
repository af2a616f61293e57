// The simulator's clock and event queue, and the trace hash. Events at the same time run in
// the order they were scheduled (a sequence number breaks ties), so a run depends on nothing
// but its seed.

interface QueuedEvent {
  atMs: number;
  seq: number;
  run: () => void;
}

/** A min-heap of events ordered by (time, scheduling order). */
export class EventQueue {
  #heap: QueuedEvent[] = [];
  #seq = 0;
  #nowMs = 0;

  get nowMs(): number {
    return this.#nowMs;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** Schedules `run` at `atMs` (never in the past). */
  at(atMs: number, run: () => void): void {
    const event = { atMs: Math.max(Math.floor(atMs), this.#nowMs), seq: this.#seq++, run };
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  /** Time of the next event, or Infinity. */
  peekMs(): number {
    return this.#heap[0]?.atMs ?? Infinity;
  }

  /** Runs the next event if it is due at or before `untilMs`; returns whether one ran. */
  step(untilMs: number): boolean {
    const heap = this.#heap;
    const top = heap[0];
    if (top === undefined || top.atMs > untilMs) return false;
    const last = heap.pop()!;
    if (heap.length > 0) {
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
    this.#nowMs = top.atMs;
    top.run();
    return true;
  }

  /** Moves the clock to `untilMs` after running every event due by then. */
  advanceTo(untilMs: number): void {
    while (this.step(untilMs));
    if (untilMs > this.#nowMs) this.#nowMs = untilMs;
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

/** FNV-1a of bytes, as 8 hex digits (identifies a command's content). */
export function hashBytes(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
