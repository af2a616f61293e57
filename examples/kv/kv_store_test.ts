import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  createServer,
  type PeerInfo,
  type RaftHandler,
  type Transporter,
  TransportError,
} from "@tsraft/core";
import { MemoryDisk, MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
import { Hono } from "hono";
import {
  installAdminRoutes,
  installKvRoutes,
  MAX_CLIENT_ID_BYTES,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  utf8Length,
} from "./kv_app.ts";
import {
  BatchCommand,
  CasCommand,
  DeleteCommand,
  isKvOp,
  kvRegistry,
  KvStore,
  PutCommand,
} from "./kv_store.ts";

const ADMIN_TOKEN = "test-token";
import { PartitionableTransporter } from "./partitionable_transporter.ts";

describe("KvStore", () => {
  test("applyOnce() applies a client's request once and remembers its latest result", () => {
    const store = new KvStore();
    const request = { client: "c", seq: 1 };
    assert.deepEqual(store.applyOnce(request, () => store.put("k", "a")), {
      ok: true,
      previous: null,
    });
    assert.deepEqual(store.applyOnce(request, () => store.put("k", "b")), {
      ok: true,
      previous: null,
      duplicate: true,
    });
    assert.equal(store.get("k"), "a");
    store.applyOnce({ client: "c", seq: 2 }, () => store.delete("k"));
    assert.deepEqual(store.applyOnce(request, () => store.put("k", "c")), {
      ok: false,
      previous: null,
      duplicate: true,
      stale: true,
    });
    assert.equal(store.get("k"), undefined);
    // Requests without a client id are never deduplicated.
    store.applyOnce({ client: "", seq: 0 }, () => store.put("n", "1"));
    store.applyOnce({ client: "", seq: 0 }, () => store.put("n", "2"));
    assert.equal(store.get("n"), "2");
  });

  test("save() and recovery() carry the data and the session table", () => {
    const store = new KvStore();
    store.applyOnce({ client: "c", seq: 5 }, () => store.cas("k", null, "v"));
    const copy = new KvStore();
    copy.put("stale", "x");
    copy.recovery(store.save());
    assert.equal(copy.get("k"), "v");
    assert.equal(copy.get("stale"), undefined);
    assert.equal(copy.sessionCount, 1);
    const again = copy.applyOnce({ client: "c", seq: 5 }, () => copy.put("k", "other"));
    assert.deepEqual(again, { ok: true, previous: null, duplicate: true });
    assert.equal(copy.get("k"), "v");
    assert.throws(() => copy.recovery(new TextEncoder().encode('{"version":9}')), TypeError);
  });

  test("commands round-trip through the registry", () => {
    const registry = kvRegistry();
    for (
      const command of [
        new PutCommand("k", "v", "c", 3),
        new DeleteCommand("k"),
        new CasCommand("k", null, "v", "c", 4),
      ]
    ) {
      const decoded = registry.decode(command.commandName, registry.encode(command));
      assert.deepEqual(decoded, command);
    }
    assert.throws(() => registry.decode("kv:put", new TextEncoder().encode('{"key":1}')));
  });

  test("BatchCommand round-trips through the registry and applies each write once", () => {
    const registry = kvRegistry();
    const batch = new BatchCommand([
      ["put", "a", "1", "c", 1],
      ["cas", "a", "1", "2", "", 0],
      ["delete", "b", "", 0],
      ["put", "a", "x", "c", 1], // a retry of the first write: remembered, not applied
    ]);
    const decoded = registry.decode(batch.commandName, registry.encode(batch)) as BatchCommand;
    assert.deepEqual(decoded.ops, batch.ops);
    const store = new KvStore();
    const results = decoded.apply({ server: { stateMachine: store } } as never);
    assert.deepEqual(results, [
      { ok: true, previous: null },
      { ok: true, previous: "1" },
      { ok: true, previous: null },
      { ok: true, previous: null, duplicate: true },
    ]);
    assert.equal(store.get("a"), "2");
    for (const bad of ['{"ops":[]}', '[["put","k"]]', '[["drop","k","",0]]', "[1]", "x"]) {
      assert.throws(
        () => registry.decode("kv:batch", new TextEncoder().encode(bad)),
        `decoding ${bad}`,
      );
    }
  });

  test("isKvOp() accepts the three write shapes only", () => {
    assert.ok(isKvOp(["put", "k", "v", "", 0]));
    assert.ok(isKvOp(["cas", "k", null, "v", "c", 2]));
    assert.ok(isKvOp(["delete", "k", "c", 9]));
    for (
      const bad of [
        ["put", "k", 1, "", 0],
        ["put", "k", "v", "", -1],
        ["put", "k", "v", "", 1.5],
        ["delete", 3, "", 0],
        ["cas", "k", 1, "v", "", 0],
        { 0: "put" },
        null,
      ]
    ) {
      assert.equal(isKvOp(bad), false, JSON.stringify(bad));
    }
  });

  test("utf8Length() matches TextEncoder, lone surrogates as U+FFFD", () => {
    for (const text of ["", "abc", "é", "€", "😀", "a😀b", "\ud800", "\udc00x", "\ud800\ud800"]) {
      assert.equal(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
    }
  });
});

describe("KV routes on a single in-process node", () => {
  async function singleNode(disk = new MemoryDisk(), routes: { leaseReads?: boolean } = {}) {
    const network = new MemoryNetwork();
    const store = new KvStore();
    const partition = new PartitionableTransporter(network.transporter());
    const server = createServer({
      name: "solo",
      connectionString: "127.0.0.1:1",
      transporter: partition,
      storage: new MemoryStorage(disk),
      stateMachine: store,
      registry: kvRegistry(),
    });
    network.register(server);
    const app = new Hono();
    const handler = installKvRoutes(app, { server, store, partition, ...routes });
    const admin = new Hono();
    installAdminRoutes(admin, { server, partition, token: ADMIN_TOKEN });
    await server.start();
    for (let i = 0; i < 100 && server.state !== "leader"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(server.state, "leader");
    return { app, admin, server, store, disk, service: handler.service };
  }

  test("PUT, GET, CAS, DELETE and /status", async () => {
    const { app, server } = await singleNode();
    try {
      assert.equal((await app.request("/kv/a", { method: "PUT", body: "1" })).status, 200);
      const got = await app.request("/kv/a");
      assert.equal(await got.text(), "1");
      assert.equal(got.headers.get("x-kv-node"), "solo");
      const cas = await app.request("/kv/a/cas", {
        method: "POST",
        body: JSON.stringify({ expect: "1", value: "2" }),
      });
      assert.deepEqual(await cas.json(), { ok: true, previous: "1" });
      const badCas = await app.request("/kv/a/cas", {
        method: "POST",
        body: JSON.stringify({ expect: 1, value: "2" }),
      });
      assert.equal(badCas.status, 400);
      assert.equal((await app.request("/kv/a", { method: "DELETE" })).status, 200);
      const missing = await app.request("/kv/a");
      assert.equal(missing.status, 404);
      assert.deepEqual(await missing.json(), { error: "not_found", key: "a" });
      const status = await (await app.request("/status")).json();
      assert.equal(status.id, "solo");
      assert.equal(status.state, "leader");
      assert.equal(status.leader, "solo");
      assert.equal(status.commitIndex, status.appliedIndex);
      assert.deepEqual(status.peers, []);
    } finally {
      await server.stop();
    }
  });

  test("without a leader, reads and writes answer 503 with a JSON reason", async () => {
    const network = new MemoryNetwork();
    const store = new KvStore();
    const partition = new PartitionableTransporter(network.transporter());
    const server = createServer({
      name: "lonely",
      connectionString: "127.0.0.1:1",
      // The other member never answers, so no leader can be elected.
      peers: [{ name: "absent", connectionString: "127.0.0.1:2" }],
      transporter: partition,
      storage: new MemoryStorage(),
      stateMachine: store,
      registry: kvRegistry(),
    });
    network.register(server);
    const app = new Hono();
    installKvRoutes(app, { server, store, partition });
    await server.start();
    try {
      for (const init of [{}, { method: "PUT", body: "v" }]) {
        const response = await app.request("/kv/k", init);
        assert.equal(response.status, 503);
        const body = await response.json();
        assert.equal(body.error, "no_leader");
        assert.equal(typeof body.reason, "string");
      }
    } finally {
      await server.stop();
    }
  });

  test("requests over the limits or malformed are refused and change nothing", async () => {
    const { app, server, store } = await singleNode();
    try {
      assert.equal((await app.request("/kv/k", { method: "PUT", body: "v" })).status, 200);
      const before = new TextDecoder().decode(store.save());
      const big = "x".repeat(MAX_VALUE_BYTES + 1);
      const cases: [string, RequestInit, number, string][] = [
        [`/kv/${"k".repeat(MAX_KEY_BYTES + 1)}`, { method: "PUT", body: "v" }, 413, "too_large"],
        ["/kv/k", { method: "PUT", body: big }, 413, "too_large"],
        [
          "/kv/k",
          { method: "PUT", body: big, headers: { "content-length": "5" } },
          413,
          "too_large",
        ],
        [
          "/kv/k",
          { method: "PUT", body: "v", headers: { "content-length": "99999999" } },
          413,
          "too_large",
        ],
        ["/kv/%FF", { method: "PUT", body: "v" }, 400, "bad_key"],
        ["/kv/%E0%A4", { method: "GET" }, 400, "bad_key"],
        ["/kv/%ED%A0%80", { method: "PUT", body: "v" }, 400, "bad_key"], // a surrogate in UTF-8
        ["/kv/%zz", { method: "PUT", body: "v" }, 400, "bad_key"],
        ["/kv/k", { method: "PUT", body: new Uint8Array([0x61, 0xff]) }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: "{" }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: "null" }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: "[]" }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: '{"value":"v"}' }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: '{"expect":null}' }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: '{"expect":1,"value":"v"}' }, 400, "bad_request"],
        ["/kv/k/cas", { method: "POST", body: '{"expect":"v","value":{}}' }, 400, "bad_request"],
        [
          "/kv/k/cas",
          { method: "POST", body: '{"expect":null,"value":"a\\ud800"}' },
          400,
          "bad_request",
        ],
        [
          "/kv/k/cas",
          { method: "POST", body: JSON.stringify({ expect: null, value: big }) },
          413,
          "too_large",
        ],
        ["/kv/k/cas", { method: "PUT", body: "{}" }, 405, "method_not_allowed"],
        ["/kv/k", { method: "POST", body: "v" }, 405, "method_not_allowed"],
        ["/kv/k/other", { method: "GET" }, 404, "not_found"],
        ["/kv/", { method: "PUT", body: "v" }, 400, "bad_key"],
      ];
      for (const seq of ["0", "-1", "0x10", "1e3", "+5", "99999999999999999", "", "1.5"]) {
        cases.push([
          "/kv/k",
          { method: "PUT", body: "v", headers: { "x-client-id": "c", "x-request-seq": seq } },
          400,
          "bad_request",
        ]);
      }
      cases.push([
        "/kv/k",
        {
          method: "DELETE",
          headers: { "x-client-id": "c".repeat(MAX_CLIENT_ID_BYTES + 1), "x-request-seq": "1" },
        },
        413,
        "too_large",
      ]);
      for (const [path, init, status, error] of cases) {
        const response = await app.request(path, init);
        const what = `${init.method} ${path.slice(0, 40)} ${JSON.stringify(init.headers ?? {})}`;
        assert.equal(response.status, status, what);
        assert.equal(response.headers.get("content-type"), "application/json", what);
        const body = await response.json();
        assert.equal(body.error, error, what);
        assert.equal(typeof body.reason, "string", what);
      }
      assert.equal(new TextDecoder().decode(store.save()), before);
      // The node still serves.
      assert.equal(await (await app.request("/kv/k")).text(), "v");
      // Limits are inclusive: the largest key and value are accepted.
      const key = "k".repeat(MAX_KEY_BYTES);
      const put = await app.request(`/kv/${key}`, { method: "PUT", body: big.slice(1) });
      assert.equal(put.status, 200);
      assert.equal(store.get(key)?.length, MAX_VALUE_BYTES);
      // A key with an encoded slash and non-ASCII characters is one key.
      const odd = "a/b é😀";
      assert.equal(
        (await app.request(`/kv/${encodeURIComponent(odd)}`, { method: "PUT", body: "1" })).status,
        200,
      );
      assert.equal(store.get(odd), "1");
    } finally {
      await server.stop();
    }
  });

  test("concurrent writes share log entries and concurrent reads share ReadIndex rounds", async () => {
    const { app, server, store, service } = await singleNode();
    try {
      const writes = await Promise.all(
        Array.from(
          { length: 50 },
          (_, i) => app.request(`/kv/k${i}`, { method: "PUT", body: `v${i}` }),
        ),
      );
      assert.ok(writes.every((response) => response.status === 200));
      assert.equal(store.size, 50);
      assert.equal(service.stats.writes, 50);
      assert.ok(service.stats.batches < 50, `${service.stats.batches} entries for 50 writes`);
      const reads = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => await (await app.request(`/kv/k${i}`)).text()),
      );
      assert.deepEqual(reads, Array.from({ length: 50 }, (_, i) => `v${i}`));
      assert.equal(service.stats.reads, 50);
      assert.ok(service.stats.readRounds < 50, `${service.stats.readRounds} rounds for 50 reads`);
    } finally {
      await server.stop();
    }
  });

  test("with leaseReads, reads are served (from the lease when it holds)", async () => {
    const { app, server } = await singleNode(new MemoryDisk(), { leaseReads: true });
    try {
      assert.equal((await app.request("/kv/l", { method: "PUT", body: "1" })).status, 200);
      const reads = await Promise.all(
        Array.from({ length: 10 }, async () => await (await app.request("/kv/l")).text()),
      );
      assert.deepEqual(reads, Array(10).fill("1"));
    } finally {
      await server.stop();
    }
  });

  test("the admin routes need the bearer token", async () => {
    const { admin, server } = await singleNode();
    try {
      for (
        const authorization of [undefined, "Bearer wrong", ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`]
      ) {
        const response = await admin.request("/admin/partition", {
          method: "POST",
          ...(authorization === undefined ? {} : { headers: { authorization } }),
        });
        assert.equal(response.status, 401, String(authorization));
      }
      const ok = await admin.request("/admin/heal", {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(ok.status, 200);
      assert.throws(() => installAdminRoutes(new Hono(), { server, partition: null!, token: "" }));
    } finally {
      await server.stop();
    }
  });

  test("a snapshot restores data and sessions after a restart", async () => {
    const first = await singleNode();
    const headers = { "x-client-id": "c", "x-request-seq": "7" };
    await first.app.request("/kv/k", { method: "PUT", body: "v", headers });
    assert.equal((await first.app.request("/admin/snapshot", { method: "POST" })).status, 404);
    const snapshot = await first.admin.request("/admin/snapshot", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(snapshot.status, 200);
    await first.server.stop();

    const second = await singleNode(first.disk);
    try {
      assert.equal(second.store.get("k"), "v");
      assert.equal(second.store.sessionCount, 1);
      const retry = await second.app.request("/kv/k", { method: "PUT", body: "w", headers });
      assert.deepEqual(await retry.json(), { ok: true, previous: null, duplicate: true });
      assert.equal(await (await second.app.request("/kv/k")).text(), "v");
    } finally {
      await second.server.stop();
    }
  });
});

describe("PartitionableTransporter", () => {
  const vote = {
    term: 1,
    lastLogIndex: 0,
    lastLogTerm: 0,
    candidateName: "a",
    preVote: false,
    transfer: false,
  };

  test("maps addresses, and drops traffic to and from blocked peers", async () => {
    const dialed: PeerInfo[] = [];
    const inner = {
      sendVoteRequest: (_sender: unknown, peer: PeerInfo) => {
        dialed.push(peer);
        return Promise.resolve({ term: 1, voteGranted: true, preVote: false });
      },
    } as unknown as Transporter;
    const transporter = new PartitionableTransporter(inner, {
      resolve: (peer) => ({ ...peer, connectionString: `raft-${peer.connectionString}` }),
    });
    const b = { name: "b", connectionString: "b:1" };
    await transporter.sendVoteRequest({ name: "a" }, b, vote);
    assert.deepEqual(dialed, [{ name: "b", connectionString: "raft-b:1" }]);

    transporter.block(["b"]);
    assert.equal(transporter.partitioned, true);
    await assert.rejects(transporter.sendVoteRequest({ name: "a" }, b, vote), TransportError);
    await transporter.sendVoteRequest({ name: "a" }, { name: "c", connectionString: "c:1" }, vote);

    const handler = {
      name: "me",
      requestVote: () => Promise.resolve({ term: 1, voteGranted: true, preVote: false }),
    } as unknown as RaftHandler;
    const guarded = transporter.guard(handler);
    assert.equal(guarded.name, "me");
    await assert.rejects(guarded.requestVote({ ...vote, candidateName: "b" }), TransportError);
    assert.equal((await guarded.requestVote({ ...vote, candidateName: "c" })).voteGranted, true);

    transporter.isolate();
    await assert.rejects(guarded.requestVote({ ...vote, candidateName: "c" }), TransportError);
    transporter.heal();
    assert.equal(transporter.partitioned, false);
    assert.equal((await guarded.requestVote({ ...vote, candidateName: "b" })).voteGranted, true);
  });
});

test("errorReply() maps retryable and unknown-outcome errors to 503 and 504, not 500", async () => {
  const { errorReply } = await import("./kv_service.ts");
  const { CommandOutcomeUnknownError, LeadershipTransferError } = await import("@tsraft/core");
  const transfer = errorReply(new LeadershipTransferError("moving to n2"), false);
  assert.ok("status" in transfer);
  assert.deepEqual([transfer.status, transfer.error], [503, "transferring"]);
  const unknown = errorReply(new CommandOutcomeUnknownError(7), true);
  assert.ok("status" in unknown);
  assert.deepEqual([unknown.status, unknown.error], [504, "outcome_unknown"]);
});
