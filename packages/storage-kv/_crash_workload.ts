// The workload of the kill -9 test, shared by the writer process and the checking test.
import type { LogEntry } from "@tsraft/core";

function mix(index: number, term: number): number {
  let x = Math.imul(index ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(term + 1, 0xc2b2ae35);
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d);
  return (x ^ (x >>> 13)) >>> 0;
}

/** Size of the command at `index` written in `term`: mostly small, 1 in 150 over 64 KiB. */
export function sizeFor(index: number, term: number): number {
  const h = mix(index, term);
  return h % 150 === 0 ? 100_000 + (h % 50_000) : 16 + (h % 300);
}

/** The command at `index` written in `term`, so a reader can check any entry on its own. */
export function commandFor(index: number, term: number): Uint8Array {
  const bytes = new Uint8Array(sizeFor(index, term));
  let x = mix(index, term) | 1;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Entries `from .. from + count - 1`, all in `term`. */
export function workloadEntries(from: number, count: number, term: number): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: from + i,
    term,
    commandName: "crash:test",
    command: commandFor(from + i, term),
  }));
}
