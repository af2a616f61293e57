import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32c } from "./crc32c.ts";

test("crc32c() matches the standard check value and chains across pieces", () => {
  const bytes = new TextEncoder().encode("123456789");
  assert.equal(crc32c(bytes), 0xe3069283);
  assert.equal(crc32c(bytes.subarray(4), crc32c(bytes.subarray(0, 4))), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});
