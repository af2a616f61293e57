/** Source of randomness for the core (election timeouts). Injected for determinism. */
export interface Random {
  /** A number in `[0, 1)`. */
  next(): number;
}

/** Randomness from `crypto.getRandomValues`, for production servers. */
export const cryptoRandom: Random = {
  next(): number {
    const buffer = new Uint32Array(1);
    crypto.getRandomValues(buffer);
    return buffer[0]! / 0x1_0000_0000;
  },
};
