import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WireError } from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import {
  CODE_HELLO,
  decodeHello,
  encodeFrame,
  encodeHello,
  FLAG_ERROR,
  FrameDecoder,
  kindCode,
  PROTOCOL,
} from "./_frame.ts";

function frames(count: number, random: SeededRandom) {
  return Array.from({ length: count }, (_, i) => {
    const payload = new Uint8Array(random.int(300));
    for (let j = 0; j < payload.length; j++) payload[j] = random.int(256);
    return {
      id: i + 1,
      code: kindCode("appendEntriesRequest"),
      flags: i % 2 ? FLAG_ERROR : 0,
      payload,
    };
  });
}

describe("FrameDecoder", () => {
  test("FrameDecoder.push() reassembles frames split at arbitrary points", () => {
    const random = new SeededRandom(42);
    const expected = frames(50, random);
    const stream = new Uint8Array(
      expected.flatMap((f) => [...encodeFrame(f.id, f.code, f.flags, f.payload)]),
    );
    for (let round = 0; round < 20; round++) {
      const decoder = new FrameDecoder(1024);
      const got = [];
      for (let at = 0; at < stream.length;) {
        const size = round === 0 ? 1 : 1 + random.int(700);
        got.push(...decoder.push(stream.subarray(at, at + size)));
        at += size;
      }
      assert.equal(decoder.buffered, 0);
      assert.deepEqual(
        got.map((f) => ({ ...f, payload: [...f.payload] })),
        expected.map((f) => ({ ...f, payload: [...f.payload] })),
      );
    }
  });

  test("FrameDecoder.push() rejects oversized, short and unknown frames with WireError", () => {
    const big = new Uint8Array(10);
    new DataView(big.buffer).setUint32(0, 6 + 101);
    assert.throws(() => new FrameDecoder(100).push(big), /exceeds the limit of 100/);
    assert.throws(() => new FrameDecoder(100).push(new Uint8Array([0, 0, 0, 5])), /too short/);
    assert.throws(
      () => new FrameDecoder(100).push(encodeFrame(1, 0x7f, 0, new Uint8Array())),
      /Unknown frame code/,
    );
    assert.throws(
      () => new FrameDecoder(100).push(encodeFrame(1, 0, 0x80, new Uint8Array())),
      /Unknown frame flags/,
    );
  });

  test("decodeHello() accepts what encodeHello() writes and rejects anything else", () => {
    const hello = { protocol: PROTOCOL, clusterId: "c", token: "t" };
    assert.deepEqual(decodeHello(encodeHello(hello)), hello);
    for (const bad of ["", "{", "null", '{"protocol":1}', '{"protocol":"x","clusterId":"c"}']) {
      assert.throws(() => decodeHello(new TextEncoder().encode(bad)), WireError);
    }
    assert.throws(() => decodeHello(new Uint8Array([0xff, 0xfe])), WireError);
    assert.equal(CODE_HELLO, 0x80);
  });
});
