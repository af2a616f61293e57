import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WireError } from "./errors.ts";
import { SeededRandom } from "./testing/seeded_random.ts";
import type { RaftHandler } from "./transporter.ts";
import {
  decodeMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeMessage,
  isRequestKind,
  MESSAGE_KINDS,
  type MessageKind,
  type MessageMap,
  REQUEST_KINDS,
  rpcOfMethod,
  RPCS,
} from "./wire.ts";

const MAX = Number.MAX_SAFE_INTEGER;

/** Two samples per kind: all-zero/empty and all-maximum/non-ASCII. */
const SAMPLES: { [K in MessageKind]: MessageMap[K][] } = {
  appendEntriesRequest: [
    {
      term: 0,
      prevLogIndex: 0,
      prevLogTerm: 0,
      commitIndex: 0,
      leaderName: "",
      entries: [],
      heartbeatSeq: 0,
    },
    {
      term: MAX,
      prevLogIndex: MAX - 3,
      prevLogTerm: 2 ** 32,
      commitIndex: 2 ** 32 - 1,
      leaderName: "leader-é-🚀",
      entries: [
        { index: 1, term: 1, commandName: "raft:nop", command: new Uint8Array() },
        { index: MAX, term: MAX, commandName: "x".repeat(4096), command: bytes(70_000, 9) },
      ],
      heartbeatSeq: MAX,
    },
  ],
  appendEntriesResponse: [
    { term: 0, index: 0, commitIndex: 0, success: false, conflictTerm: 0, heartbeatSeq: 0 },
    { term: MAX, index: MAX, commitIndex: MAX, success: true, conflictTerm: MAX, heartbeatSeq: 1 },
  ],
  requestVoteRequest: [
    {
      term: 0,
      lastLogIndex: 0,
      lastLogTerm: 0,
      candidateName: "",
      preVote: false,
      transfer: false,
    },
    {
      term: MAX,
      lastLogIndex: MAX,
      lastLogTerm: MAX,
      candidateName: "c\u0000d",
      preVote: true,
      transfer: true,
    },
  ],
  requestVoteResponse: [
    { term: 0, voteGranted: false, preVote: false },
    { term: MAX, voteGranted: true, preVote: true },
  ],
  snapshotRequest: [
    { term: 0, leaderName: "", lastIndex: 0, lastTerm: 0, size: 0 },
    { term: MAX, leaderName: "ü", lastIndex: MAX, lastTerm: MAX, size: MAX },
  ],
  snapshotResponse: [
    { term: 0, success: false, nextOffset: 0 },
    { term: MAX, success: true, nextOffset: MAX },
  ],
  snapshotRecoveryRequest: [
    {
      term: 0,
      leaderName: "",
      lastIndex: 0,
      lastTerm: 0,
      peers: [],
      offset: 0,
      data: new Uint8Array(),
      done: false,
      checksum: 0,
    },
    {
      term: MAX,
      leaderName: "l",
      lastIndex: MAX,
      lastTerm: MAX,
      peers: [
        { name: "a", connectionString: "" },
        { name: "b", connectionString: "http://127.0.0.1:4001/raft" },
      ],
      offset: MAX,
      data: bytes(1 << 20, 3),
      done: true,
      checksum: 0xffff_ffff,
    },
  ],
  snapshotRecoveryResponse: [
    { term: 0, success: false, commitIndex: 0, nextOffset: 0 },
    { term: MAX, success: true, commitIndex: MAX, nextOffset: MAX },
  ],
  timeoutNowRequest: [
    { term: 0, leaderName: "" },
    { term: MAX, leaderName: "leader" },
  ],
  timeoutNowResponse: [
    { term: 0, success: false },
    { term: MAX, success: true },
  ],
};

function bytes(length: number, seed: number): Uint8Array {
  const random = new SeededRandom(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = random.int(256);
  return out;
}

/** Decodes and, on success, checks the result is itself a valid, stable message. */
function decodeOrWireError(kind: MessageKind, input: Uint8Array, context: string): boolean {
  let decoded: unknown;
  try {
    decoded = decodeMessage(kind, input);
  } catch (error) {
    if (error instanceof WireError) return false;
    assert.fail(`${context}: threw ${String(error)} instead of WireError`);
  }
  const again = decodeMessage(
    kind,
    encodeMessage(kind, decoded as MessageMap[typeof kind]),
  );
  assert.deepEqual(again, decoded, `${context}: decoded value does not round-trip`);
  return true;
}

function assertPlain(value: unknown, path: string): void {
  if (value instanceof Uint8Array) {
    assert.equal(value.constructor, Uint8Array, `${path} is a ${value.constructor.name}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertPlain(item, `${path}[${i}]`));
    return;
  }
  if (typeof value === "object" && value !== null) {
    assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} is not a plain object`);
    for (const [key, item] of Object.entries(value)) assertPlain(item, `${path}.${key}`);
  }
}

describe("wire codec", () => {
  test("MESSAGE_KINDS lists every kind once", () => {
    assert.equal(new Set(MESSAGE_KINDS).size, 10);
    assert.deepEqual([...MESSAGE_KINDS].sort(), Object.keys(SAMPLES).sort());
  });

  test("decodeMessage() without maxBytes refuses input over DEFAULT_MAX_MESSAGE_BYTES (64 MiB)", () => {
    // The documented default is what decoding enforces, not only what the constant says.
    const limit = 64 * 1024 * 1024;
    assert.throws(
      () => decodeMessage("appendEntriesRequest", new Uint8Array(limit + 1)),
      (error) =>
        error instanceof WireError && error.message.includes(`exceeds the limit of ${limit}`),
    );
    // At the limit the size passes; these zero bytes then fail as protobuf, not as too large.
    assert.throws(
      () => decodeMessage("appendEntriesRequest", new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES)),
      (error) => error instanceof WireError && !error.message.includes("exceeds the limit"),
    );
  });

  for (const kind of MESSAGE_KINDS) {
    test(`${kind} round-trips with edge values into plain objects`, () => {
      for (const sample of SAMPLES[kind]) {
        const encoded = encodeMessage(kind, sample);
        assert.equal(encoded.constructor, Uint8Array);
        const decoded = decodeMessage(kind, encoded);
        assert.deepEqual(decoded, sample);
        assertPlain(decoded, kind);
      }
    });
  }

  test("decodeMessage() copies byte fields out of the input", () => {
    const entry = { index: 1, term: 1, commandName: "c", command: new Uint8Array([1, 2, 3]) };
    const encoded = encodeMessage("appendEntriesRequest", {
      ...SAMPLES.appendEntriesRequest[0]!,
      entries: [entry],
    });
    const decoded = decodeMessage("appendEntriesRequest", encoded);
    encoded.fill(0);
    assert.deepEqual(decoded.entries[0]!.command, new Uint8Array([1, 2, 3]));
  });

  test("decodeMessage() ignores extra properties and unknown fields", () => {
    const message = { term: 5, leaderName: "a", extra: "dropped" };
    const encoded = encodeMessage("timeoutNowRequest", message);
    assert.deepEqual(decodeMessage("timeoutNowRequest", encoded), { term: 5, leaderName: "a" });
    // Field 15 (varint) and field 16 (bytes) from some future version.
    const future = new Uint8Array([...encoded, 0x78, 0x01, 0x82, 0x01, 0x01, 0x00]);
    assert.deepEqual(decodeMessage("timeoutNowRequest", future), { term: 5, leaderName: "a" });
  });

  test("decodeMessage() accepts 2^53-1 and rejects 2^53 and 2^64-1 with WireError", () => {
    // term (field 1, varint) followed by leaderName (field 2) = "".
    const safe = [0x08, ...new Array(7).fill(0xff), 0x0f, 0x12, 0x00];
    assert.equal(decodeMessage("timeoutNowRequest", new Uint8Array(safe)).term, MAX);
    const unsafe = [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x12, 0x00];
    assert.throws(() => decodeMessage("timeoutNowRequest", new Uint8Array(unsafe)), WireError);
    const max64 = [0x08, ...new Array(9).fill(0xff), 0x01, 0x12, 0x00];
    assert.throws(() => decodeMessage("timeoutNowRequest", new Uint8Array(max64)), WireError);
  });

  test("decodeMessage() rejects missing fields and wrong wire types with WireError", () => {
    assert.throws(() => decodeMessage("timeoutNowRequest", new Uint8Array()), /missing/);
    assert.throws(() => decodeMessage("timeoutNowRequest", new Uint8Array([0x08, 1])), WireError);
    // term sent as a length-delimited field.
    assert.throws(
      () => decodeMessage("timeoutNowRequest", new Uint8Array([0x0a, 1, 5, 0x12, 0])),
      /wire type/,
    );
    // leaderName sent as a varint.
    assert.throws(
      () => decodeMessage("timeoutNowRequest", new Uint8Array([0x08, 1, 0x10, 0])),
      /wire type/,
    );
    // A field number of 0.
    assert.throws(
      () => decodeMessage("timeoutNowRequest", new Uint8Array([0x00, 0x08, 1, 0x12, 0])),
      WireError,
    );
  });

  test("decodeMessage() rejects entries with index 0 and accepts peers with empty names", () => {
    const badEntry = encodeMessage("appendEntriesRequest", {
      ...SAMPLES.appendEntriesRequest[0]!,
      entries: [{ index: 1, term: 1, commandName: "c", command: new Uint8Array() }],
    });
    // Patch the entry's index varint (1) to 0: it is the byte after the entry's first tag.
    const at = badEntry.findIndex((b, i) => b === 0x08 && badEntry[i + 1] === 1 && i > 8);
    const patched = badEntry.slice();
    patched[at + 1] = 0;
    assert.throws(() => decodeMessage("appendEntriesRequest", patched), /index must be at least 1/);

    const peer = encodeMessage("snapshotRecoveryRequest", {
      ...SAMPLES.snapshotRecoveryRequest[0]!,
      peers: [{ name: "a", connectionString: "" }],
    });
    // peers[0] = { name: "a", connectionString: "" } → the same with name "".
    const from = [0x2a, 0x05, 0x0a, 0x01, 0x61, 0x12, 0x00];
    const start = peer.findIndex((_, i) => from.every((b, j) => peer[i + j] === b));
    assert.ok(start >= 0);
    const noName = new Uint8Array([
      ...peer.slice(0, start),
      ...[0x2a, 0x04, 0x0a, 0x00, 0x12, 0x00],
      ...peer.slice(start + from.length),
    ]);
    assert.deepEqual(decodeMessage("snapshotRecoveryRequest", noName).peers, [
      { name: "", connectionString: "" },
    ]);
  });

  test("decodeMessage() rejects strings over 4096 characters with WireError", () => {
    // Hand-built frame: protobuf allows it, the codec must not.
    const long = new TextEncoder().encode("n".repeat(5000));
    const frame = new Uint8Array([0x08, 1, 0x12, 0x88, 0x27, ...long]);
    assert.throws(() => decodeMessage("timeoutNowRequest", frame), /longer than 4096/);
  });

  test("decodeMessage() rejects input over maxBytes with WireError", () => {
    const encoded = encodeMessage("appendEntriesRequest", SAMPLES.appendEntriesRequest[1]!);
    assert.throws(
      () => decodeMessage("appendEntriesRequest", encoded, { maxBytes: encoded.byteLength - 1 }),
      (error: unknown) => error instanceof WireError && /exceeds the limit/.test(error.message),
    );
    assert.ok(decodeMessage("appendEntriesRequest", encoded, { maxBytes: encoded.byteLength }));
  });

  test("encodeMessage() throws TypeError/RangeError for a malformed message", () => {
    const base = SAMPLES.requestVoteResponse[0]!;
    assert.throws(() => encodeMessage("requestVoteResponse", { ...base, term: -1 }), RangeError);
    assert.throws(() => encodeMessage("requestVoteResponse", { ...base, term: 1.5 }), RangeError);
    assert.throws(
      () => encodeMessage("requestVoteResponse", { ...base, term: MAX + 1 }),
      RangeError,
    );
    assert.throws(
      () => encodeMessage("requestVoteResponse", { ...base, term: "1" as unknown as number }),
      TypeError,
    );
    assert.throws(
      () => encodeMessage("requestVoteResponse", { term: 1 } as MessageMap["requestVoteResponse"]),
      TypeError,
    );
    assert.throws(
      () => encodeMessage("nope" as MessageKind, base as never),
      /Unknown message kind/,
    );
    assert.throws(
      () =>
        encodeMessage("snapshotRecoveryRequest", {
          ...SAMPLES.snapshotRecoveryRequest[0]!,
          checksum: 2 ** 32,
        }),
      RangeError,
    );
  });

  test("decodeMessage() throws only WireError for random bytes (seeded fuzz)", () => {
    const random = new SeededRandom(0xc0dec);
    let decoded = 0;
    for (let i = 0; i < 6000; i++) {
      const kind = MESSAGE_KINDS[i % MESSAGE_KINDS.length]!;
      const input = bytes(random.int(64), random.int(2 ** 31));
      if (decodeOrWireError(kind, input, `iteration ${i} (${kind})`)) decoded++;
    }
    assert.ok(decoded < 6000);
  });

  test("decodeMessage() throws only WireError for mutated valid frames (seeded fuzz)", () => {
    const random = new SeededRandom(0xf22);
    const frames = MESSAGE_KINDS.flatMap((kind) =>
      SAMPLES[kind].map((sample) => {
        // Keep the frames small so thousands of iterations stay fast.
        const small = kind === "snapshotRecoveryRequest"
          ? { ...sample, data: new Uint8Array([1, 2, 3]) }
          : kind === "appendEntriesRequest"
          ? {
            ...sample,
            entries: (sample as MessageMap["appendEntriesRequest"]).entries.map((e) => ({
              ...e,
              commandName: e.commandName.slice(0, 8),
              command: e.command.slice(0, 8),
            })),
          }
          : sample;
        return { kind, frame: encodeMessage(kind, small as never) };
      })
    );
    let accepted = 0;
    const iterations = 8000;
    for (let i = 0; i < iterations; i++) {
      const { kind: original, frame } = frames[random.int(frames.length)]!;
      // Sometimes decode as another kind: a frame header bit flip would do exactly that.
      const kind = random.chance(0.2) ? MESSAGE_KINDS[random.int(MESSAGE_KINDS.length)]! : original;
      const mutated = mutate(frame, random);
      if (decodeOrWireError(kind, mutated, `iteration ${i} (${original} as ${kind})`)) accepted++;
    }
    // Both outcomes must occur, or the fuzzer is not exercising the decoder.
    assert.ok(accepted > 0 && accepted < iterations, `accepted ${accepted}`);
  });
});

describe("RPC table", () => {
  test("RPCS has one row per request kind, pairing it with its response in MESSAGE_KINDS", () => {
    const requests = MESSAGE_KINDS.filter((kind) => kind.endsWith("Request"));
    assert.deepEqual(REQUEST_KINDS, requests);
    assert.deepEqual(Object.keys(RPCS).sort(), [...requests].sort());
    for (const kind of REQUEST_KINDS) {
      const rpc = RPCS[kind];
      assert.equal(rpc.request, kind);
      assert.equal(rpc.response, kind.replace(/Request$/, "Response"));
      // Frame codes are MESSAGE_KINDS positions: each response follows its request.
      assert.equal(MESSAGE_KINDS.indexOf(rpc.response), MESSAGE_KINDS.indexOf(kind) + 1);
      assert.ok(isRequestKind(kind));
      assert.ok(!isRequestKind(rpc.response));
      assert.ok(Object.isFrozen(rpc));
    }
    assert.ok(Object.isFrozen(RPCS));
    assert.ok(!isRequestKind("toString"));
  });

  test("RPCS names distinct handler methods and HTTP paths; only snapshot chunks get the long timeout", () => {
    const rows = REQUEST_KINDS.map((kind) => RPCS[kind]);
    assert.equal(new Set(rows.map((rpc) => rpc.method)).size, rows.length);
    assert.equal(new Set(rows.map((rpc) => rpc.path)).size, rows.length);
    assert.deepEqual(rows.map((rpc) => rpc.path), [
      "appendEntries",
      "requestVote",
      "snapshot",
      "snapshotRecovery",
      "timeoutNow",
    ]);
    assert.deepEqual(
      rows.filter((rpc) => rpc.timeout === "snapshot").map((rpc) => rpc.request),
      ["snapshotRecoveryRequest"],
    );
    for (const rpc of rows) assert.equal(rpcOfMethod(rpc.method), rpc);
    assert.throws(() => rpcOfMethod("name" as never), TypeError);
  });

  test("Rpc.serve() hands the request to its handler method and returns its answer", async () => {
    const calls: string[] = [];
    const handler = { name: "h" } as Record<string, unknown>;
    for (const kind of REQUEST_KINDS) {
      const { method, response } = RPCS[kind];
      handler[method] = function (this: unknown, request: unknown) {
        assert.equal(this, handler, `${method} called without its handler as this`);
        calls.push(method);
        return Promise.resolve({ response, request });
      };
    }
    for (const kind of REQUEST_KINDS) {
      const request = SAMPLES[kind][0]!;
      const rpc = RPCS[kind];
      const answer = await rpc.serve(handler as unknown as RaftHandler, request as never);
      assert.deepEqual(answer, { response: rpc.response, request });
    }
    assert.deepEqual(calls, REQUEST_KINDS.map((kind) => RPCS[kind].method));
  });
});

function mutate(frame: Uint8Array, random: SeededRandom): Uint8Array {
  let out = frame.slice();
  const rounds = 1 + random.int(3);
  for (let r = 0; r < rounds; r++) {
    const at = random.int(Math.max(out.length, 1));
    switch (random.int(5)) {
      case 0: // flip one bit
        if (out.length > 0) out[at] = out[at]! ^ (1 << random.int(8));
        break;
      case 1: // set one byte
        if (out.length > 0) out[at] = random.int(256);
        break;
      case 2: // truncate
        out = out.slice(0, at);
        break;
      case 3: { // insert random bytes
        const extra = bytes(1 + random.int(4), random.int(2 ** 31));
        out = new Uint8Array([...out.slice(0, at), ...extra, ...out.slice(at)]);
        break;
      }
      case 4: // duplicate a slice (repeated fields, overlong frames)
        out = new Uint8Array([...out, ...out.slice(at)]);
        break;
    }
  }
  return out;
}
