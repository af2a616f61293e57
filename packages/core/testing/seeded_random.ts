import type { Random } from "../random.ts";

/**
 * A deterministic random source (mulberry32): the same seed gives the same sequence on
 * every runtime.
 * @example
 * ```ts
 * import { SeededRandom } from "@tsraft/core/testing";
 * const a = new SeededRandom(7), b = new SeededRandom(7);
 * if (a.next() !== b.next()) throw new Error("not deterministic");
 * ```
 */
export class SeededRandom implements Random {
  #state: number;

  /** Creates an instance. @param seed any 32-bit integer */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Next number of the sequence. @returns a number in [0, 1) */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  }

  /** Next integer below n. @returns an integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A biased coin flip. @returns true with probability p */
  chance(p: number): boolean {
    return this.next() < p;
  }
}
