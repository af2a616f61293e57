// Random and mutated bodies POSTed to every route: each gets 400 (or 413 when over the
// bound), 200 only when the bytes really decode, and the app keeps answering.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import {
  decodeMessage,
  encodeMessage,
  type MessageKind,
  type RaftHandler,
  WireError,
} from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import { HttpTransporter } from "./http_transporter.ts";
import { appClient, makeEntries, SAMPLE } from "./_test_util.ts";

const SEED = Number(
  (globalThis as { process?: { env: Record<string, string> } }).process?.env
    .FUZZ_SEED ?? 20240611,
);
const ROUNDS = 300;
const MAX_BODY_BYTES = 1024;

// Fixed answers: the fuzz targets decoding, so the handler must never fail on odd values.
const steadyHandler: RaftHandler = {
  name: "steady",
  appendEntries: () =>
    Promise.resolve({
      term: 1,
      index: 1,
      commitIndex: 1,
      success: true,
      conflictTerm: 0,
      heartbeatSeq: 0,
    }),
  requestVote: () => Promise.resolve({ term: 1, voteGranted: false, preVote: false }),
  requestSnapshot: () => Promise.resolve({ term: 1, success: false, nextOffset: 0 }),
  snapshotRecoveryRequest: () =>
    Promise.resolve({ term: 1, success: false, commitIndex: 0, nextOffset: 0 }),
  timeoutNow: () => Promise.resolve({ term: 1, success: false }),
};

const ROUTES: { path: (t: HttpTransporter) => string; kind: MessageKind; valid: Uint8Array }[] = [
  {
    path: (t) => t.appendEntriesPath,
    kind: "appendEntriesRequest",
    valid: encodeMessage("appendEntriesRequest", {
      ...SAMPLE.appendEntries,
      entries: makeEntries(4, 20, 10),
    }),
  },
  {
    path: (t) => t.requestVotePath,
    kind: "requestVoteRequest",
    valid: encodeMessage("requestVoteRequest", SAMPLE.requestVote),
  },
  {
    path: (t) => t.snapshotPath,
    kind: "snapshotRequest",
    valid: encodeMessage("snapshotRequest", SAMPLE.snapshot),
  },
  {
    path: (t) => t.snapshotRecoveryPath,
    kind: "snapshotRecoveryRequest",
    valid: encodeMessage("snapshotRecoveryRequest", SAMPLE.snapshotRecovery),
  },
  {
    path: (t) => t.timeoutNowPath,
    kind: "timeoutNowRequest",
    valid: encodeMessage("timeoutNowRequest", SAMPLE.timeoutNow),
  },
];

function randomBytes(random: SeededRandom, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = random.int(256);
  return bytes;
}

/** One of: flip bytes, truncate, insert garbage, duplicate a slice, or grow past the bound. */
function mutate(random: SeededRandom, valid: Uint8Array): Uint8Array {
  const bytes = valid.slice();
  switch (random.int(5)) {
    case 0: {
      for (let n = 1 + random.int(4); n > 0; n--) {
        bytes[random.int(bytes.length)] = random.int(256);
      }
      return bytes;
    }
    case 1:
      return bytes.subarray(0, random.int(bytes.length));
    case 2: {
      const at = random.int(bytes.length + 1);
      const junk = randomBytes(random, 1 + random.int(8));
      return new Uint8Array([...bytes.subarray(0, at), ...junk, ...bytes.subarray(at)]);
    }
    case 3: {
      const from = random.int(bytes.length);
      const slice = bytes.subarray(from, from + 1 + random.int(16));
      return new Uint8Array([...bytes, ...slice]);
    }
    default: {
      const big = new Uint8Array(MAX_BODY_BYTES + 1 + random.int(200));
      for (let i = 0; i < big.length; i++) big[i] = bytes[i % bytes.length]!;
      return big;
    }
  }
}

/** What the route must answer: derived from the codec itself, which must throw only WireError. */
function expectedStatus(kind: MessageKind, body: Uint8Array): number {
  if (body.byteLength > MAX_BODY_BYTES) return 413;
  try {
    decodeMessage(kind, body, { maxBytes: MAX_BODY_BYTES });
    return 200;
  } catch (error) {
    assert.ok(error instanceof WireError, `decode threw ${String(error)}, not WireError`);
    return 400;
  }
}

test(`HttpTransporter routes answer random and mutated bodies with 400/413 (seed ${SEED})`, async () => {
  const random = new SeededRandom(SEED);
  const app = new Hono();
  const transporter = new HttpTransporter({ maxBodyBytes: MAX_BODY_BYTES, client: appClient(app) });
  transporter.install(steadyHandler, app);
  const counts: Record<number, number> = {};
  for (const route of ROUTES) {
    const path = route.path(transporter);
    for (let round = 0; round < ROUNDS; round++) {
      const body = round % 2 === 0
        ? randomBytes(random, random.int(random.chance(0.05) ? 2 * MAX_BODY_BYTES : 64))
        : mutate(random, route.valid);
      const expected = expectedStatus(route.kind, body);
      const response = await app.request(path, {
        method: "POST",
        body: body as Uint8Array<ArrayBuffer>,
        headers: { "content-type": "application/x-protobuf" },
      });
      const detail = `${path} round ${round} (seed ${SEED}): body ${
        Array.from(body.subarray(0, 32)).join(",")
      }`;
      assert.equal(response.status, expected, `${detail}: ${await response.clone().text()}`);
      if (expected !== 200) {
        assert.match(response.headers.get("content-type") ?? "", /^text\/plain/, detail);
        assert.ok((await response.text()).length > 0, `${detail}: empty reason`);
      } else {
        await response.arrayBuffer();
      }
      counts[expected] = (counts[expected] ?? 0) + 1;
    }
    // The app is still healthy after the barrage.
    const ok = await app.request(path, {
      method: "POST",
      body: route.valid as Uint8Array<ArrayBuffer>,
    });
    assert.equal(ok.status, 200, `${path} after fuzzing`);
  }
  // The generator must actually reach each outcome, or the test proves little.
  assert.ok((counts[400] ?? 0) > ROUNDS, `only ${counts[400]} bodies got 400`);
  assert.ok((counts[413] ?? 0) > 10, `only ${counts[413]} bodies got 413`);
});
