const TABLE = buildTable();

function buildTable(): Uint32Array {
  // Castagnoli polynomial, reflected: better error detection than CRC-32 for short records.
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/**
 * CRC-32C (Castagnoli) of `bytes`. Pass a previous result as `seed` to checksum data that
 * arrives in pieces.
 * @param bytes data to checksum
 * @param seed the CRC of the preceding bytes @default 0
 * @returns the checksum as an unsigned 32-bit integer
 * @example
 * ```ts
 * import { crc32c } from "@tsraft/core";
 * const whole = crc32c(new TextEncoder().encode("123456789"));
 * if (whole !== 0xe3069283) throw new Error("wrong CRC");
 * ```
 */
export function crc32c(bytes: Uint8Array, seed = 0): number {
  let crc = (seed ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
