// The simulated nodes' state machine: a string key-value store whose commands and outputs
// match kvModel of the linearizability checker, so client histories check against it.
import type { KvInput, KvOutput } from "./linearizability.ts";

/** Command name of KV operations in the log. */
export const KV_COMMAND_NAME = "sim:kv";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeKv(input: KvInput): Uint8Array {
  return encoder.encode(JSON.stringify(input));
}

export function decodeKv(bytes: Uint8Array): KvInput {
  return JSON.parse(decoder.decode(bytes)) as KvInput;
}

/** A KV map with snapshot and restore. */
export class SimKv {
  #data = new Map<string, string>();

  apply(input: KvInput): KvOutput {
    const current = this.#data.get(input.key) ?? null;
    switch (input.op) {
      case "get":
        return current;
      case "put":
        this.#data.set(input.key, input.value);
        return "ok";
      case "delete":
        this.#data.delete(input.key);
        return "ok";
      case "cas": {
        if (current !== input.expect) return false;
        this.#data.set(input.key, input.value);
        return true;
      }
    }
  }

  get(key: string): string | null {
    return this.#data.get(key) ?? null;
  }

  save(): Uint8Array {
    const sorted = [...this.#data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encoder.encode(JSON.stringify(sorted));
  }

  restore(bytes: Uint8Array): void {
    this.#data = new Map(JSON.parse(decoder.decode(bytes)) as [string, string][]);
  }

  /** A canonical string of the whole state. */
  fingerprint(): string {
    return decoder.decode(this.save());
  }
}
