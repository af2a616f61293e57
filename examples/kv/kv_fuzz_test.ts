// Fuzz test of the kv client API on a live node (a real listener, storage and raft server):
// random methods, paths, headers and bodies through fetch, and malformed HTTP through a raw
// socket, for a bounded time. After every request the node must still answer, never with a
// 500, and a refused request (4xx) must leave the state exactly as it was. A well-behaved
// client runs alongside and must see every one of its requests served.
//
// Seeded: KV_FUZZ_SEED=<n> replays a run (the seed is printed); KV_FUZZ_MS bounds its length
// (default 3000 ms).
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./kv_app.ts";
import { type KvNode, startKvNode } from "./kv_node.ts";
import { freePorts, waitFor } from "./node_process.ts";

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly random: () => number) {}
  int(max: number): number {
    return Math.floor(this.random() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  /** Printable Latin-1 text (what a header value may hold). */
  latin1(length: number): string {
    return Array.from({ length }, () => String.fromCharCode(0x20 + this.int(0xdf))).join("")
      .replace(/[\x7f]/g, "x");
  }
  bytes(length: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
  /** A length: mostly small, sometimes around and above the limits. */
  size(): number {
    const r = this.random();
    if (r < 0.7) return this.int(40);
    if (r < 0.9) return this.int(5000);
    return this.pick([MAX_KEY_BYTES, MAX_KEY_BYTES + 1, MAX_VALUE_BYTES, MAX_VALUE_BYTES + 1]) +
      this.int(3) - 1;
  }
}

const GOOD_PREFIX = "good-";

function keySegment(g: Gen): string {
  switch (g.int(8)) {
    case 0:
      return "";
    case 1:
      return "%" + g.pick(["FF", "C0", "E0%A4", "ED%A0%80", "zz", "", "2F", "00"]);
    case 2:
      return encodeURIComponent(g.pick(["é", "😀", "a/b", "..", "\u0000", "k e y"]));
    case 3:
      return "k".repeat(Math.min(g.size(), 3 * MAX_KEY_BYTES));
    case 4:
      return Array.from(
        { length: 1 + g.int(6) },
        () => `%${g.int(256).toString(16).padStart(2, "0")}`,
      )
        .join("");
    default: {
      const key = `f${g.int(20)}`;
      return key.startsWith(GOOD_PREFIX) ? `x${key}` : key;
    }
  }
}

function path(g: Gen): string {
  const query = g.pick(["", "", "", "?local", "?noforward", "?x=%FF", `?${g.latin1(5)}`]);
  switch (g.int(12)) {
    case 0:
      return "/status" + query;
    case 1:
      return "/_forward";
    case 2:
      return g.pick(["/admin/partition", "/admin/heal", "/admin/snapshot", "/raft/appendEntries"]);
    case 3:
      return g.pick(["/", "/kv", "/kv/", "//kv//x", "/KV/x", "/kv/x/cas/y", "/kv/x/other"]);
    case 4:
      return `/kv/${keySegment(g)}/cas${query}`;
    default:
      return `/kv/${keySegment(g)}${query}`;
  }
}

function body(g: Gen): string | Uint8Array<ArrayBuffer> | undefined {
  switch (g.int(9)) {
    case 0:
      return undefined;
    case 1:
      return g.bytes(g.size());
    case 2:
      return new Uint8Array([0x61, 0xff, 0xfe, 0x80]);
    case 3:
      return JSON.stringify({
        expect: g.pick([null, "v", 1, undefined, [], "x".repeat(g.size())]),
        value: g.pick(["v", 2, null, {}, "y".repeat(g.size())]),
      });
    case 4:
      return g.pick(["{", "null", "[]", "1", '"s"', '{"expect":null}', "{}"]);
    case 5:
      return JSON.stringify({
        items: g.pick([
          [{ op: ["put", `f${g.int(5)}`, "fwd", "", 0] }],
          [{ op: ["put", "k".repeat(MAX_KEY_BYTES + 1), "v", "", 0] }],
          [{ op: ["drop", "k"] }, { read: 3 }, null, 7],
          [{ read: `f${g.int(5)}` }, { readIndex: true }],
          "nope",
        ]),
      });
    default:
      return "v".repeat(g.size());
  }
}

function headers(g: Gen): Record<string, string> {
  const out: Record<string, string> = {};
  if (g.chance(0.4)) {
    out["x-client-id"] = g.pick(["fuzz", "", g.latin1(g.size() % 300), "fuzz2"]);
  }
  if (g.chance(0.4)) {
    out["x-request-seq"] = g.pick([
      String(1 + g.int(1000)),
      "0",
      "-1",
      "1e3",
      "0x1f",
      "9".repeat(20),
      g.latin1(4),
    ]);
  }
  if (g.chance(0.3)) out["content-type"] = g.pick(["application/json", "text/plain", g.latin1(8)]);
  if (g.chance(0.1)) out["x-kv-forwarded-by"] = "n9";
  if (g.chance(0.1)) out[`x-${g.int(100)}`] = g.latin1(g.size() % 2000);
  return out;
}

/** Raw HTTP that fetch would never send. */
function rawRequest(g: Gen): Uint8Array {
  const text = g.pick([
    "GARBAGE\r\n\r\n",
    "PUT /kv/r1 HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nshort",
    "PUT /kv/r2 HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\nabcd",
    "PUT /kv/r3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "PUT /kv/r4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    "GET /kv/%FF HTTP/1.1\r\nHost: x\r\n\r\n",
    `GET /${"a".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`,
    "TRACE /kv/r5 HTTP/1.1\r\nHost: x\r\n\r\n",
    "PUT /kv/%FF HTTP/1.0\r\n\r\n",
    "PUT /kv/r7 HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999\r\n\r\nabc",
  ]);
  return g.chance(0.2) ? g.bytes(1 + g.int(200)) : new TextEncoder().encode(text);
}

/** Sends raw bytes and waits until the server answers or closes, then closes. */
function sendRaw(port: number, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let answer = "";
    const done = () => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2000, done);
    socket.on("error", done);
    socket.on("close", done);
    socket.on("data", (chunk: Uint8Array) => {
      answer += new TextDecoder().decode(chunk);
      // The status line is enough; a request with a short body keeps the socket open.
      if (answer.includes("\r\n\r\n")) done();
    });
    socket.on("connect", () => socket.end(bytes));
  });
}

/** The state fuzz requests may touch: everything but the well-behaved client's. */
function fuzzVisible(node: KvNode): string {
  const parsed = JSON.parse(new TextDecoder().decode(node.store.save())) as {
    data: [string, string][];
    sessions: [string, unknown][];
  };
  return JSON.stringify({
    data: parsed.data.filter(([key]) => !key.startsWith(GOOD_PREFIX)),
    sessions: parsed.sessions.filter(([client]) => !client.startsWith(GOOD_PREFIX)),
  });
}

test("the kv API keeps serving, and refused requests change nothing, under random input", async () => {
  const seed = Number(process.env.KV_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const budgetMs = Number(process.env.KV_FUZZ_MS ?? 3000);
  console.log(`kv fuzz: seed ${seed} (replay with KV_FUZZ_SEED=${seed}), ${budgetMs} ms`);
  const g = new Gen(prng(seed));
  const [port] = await freePorts(1, 1000);
  const dataDir = await mkdtemp(join(tmpdir(), "tsraft-kv-fuzz-"));
  const node = await startKvNode({ id: "f1", port: port!, peers: [], dataDir });
  const counts = { fetch: 0, raw: 0, refused: 0, accepted: 0, good: 0 };
  let stop = false;
  try {
    await waitFor(() => node.server.state === "leader", { message: "the node leads" });

    // A client that follows the rules, all along: every request must be served.
    const good = (async (): Promise<void> => {
      let seq = 0;
      while (!stop) {
        const key = `${GOOD_PREFIX}${seq % 7}`;
        const value = `v${seq}`;
        const put = await fetch(`${node.url}/kv/${key}`, {
          method: "PUT",
          body: value,
          headers: { "x-client-id": `${GOOD_PREFIX}client`, "x-request-seq": String(++seq) },
        });
        assert.equal(put.status, 200, await put.text());
        const got = await fetch(`${node.url}/kv/${key}`);
        assert.equal(await got.text(), value);
        counts.good++;
      }
    })().then(() => undefined, (error: unknown) => error ?? new Error("good client failed"));

    let expected = fuzzVisible(node);
    const deadline = Date.now() + budgetMs;
    while (Date.now() < deadline) {
      assert.equal(fuzzVisible(node), expected, "state changed between requests");
      if (g.chance(0.1)) {
        counts.raw++;
        const sent = rawRequest(g);
        const answer = await sendRaw(port!, sent);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
        const request = JSON.stringify(new TextDecoder().decode(sent.slice(0, 120)));
        assert.ok(status < 500, `raw ${request} answered ${answer.slice(0, 200)}`);
        if (status >= 200 && status < 300) expected = fuzzVisible(node);
        else {
          assert.equal(fuzzVisible(node), expected, `raw ${request} (${status}) changed the state`);
        }
        continue;
      }
      counts.fetch++;
      const method = g.pick(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]);
      const target = path(g);
      // Bodies only where every runtime's fetch sends them (Bun refuses one on "FOO").
      const payload = ["PUT", "POST", "DELETE", "PATCH"].includes(method) ? body(g) : undefined;
      const what = `${method} ${target.slice(0, 60)}${target.length > 60 ? "..." : ""} (${
        payload === undefined ? "no body" : `${payload.length} bytes`
      })`;
      const response = await fetch(node.url + target, {
        method,
        headers: headers(g),
        ...(payload === undefined ? {} : { body: payload }),
        redirect: "manual",
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      assert.ok(response.status < 500, `${what} answered ${response.status} ${text}`);
      if (response.status >= 400) {
        counts.refused++;
        // Refusals of the kv handler (it names the node) are JSON; the HTTP server's own (an
        // unknown method on Node) and the router's 404s are not.
        if (method !== "HEAD" && response.headers.has("x-kv-node")) {
          assert.equal(response.headers.get("content-type"), "application/json", what);
          assert.equal(typeof JSON.parse(text).error, "string", what);
        }
        assert.equal(fuzzVisible(node), expected, `${what} was refused but changed the state`);
      } else {
        counts.accepted++;
        expected = fuzzVisible(node);
      }
    }
    stop = true;
    const goodError = await good;
    if (goodError !== undefined) throw goodError;
    // Still serving after all that.
    const status = await fetch(`${node.url}/status`);
    assert.equal(status.status, 200);
    await status.body?.cancel();
    console.log(`kv fuzz: ${JSON.stringify(counts)}`);
    assert.ok(counts.good > 0);
  } catch (error) {
    const message = String(error).slice(0, 2000);
    throw new Error(`kv fuzz failed with seed ${seed}: ${message}`, { cause: error });
  } finally {
    stop = true;
    await node.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
