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
import { installKvRoutes } from "./kv_app.ts";
import { CasCommand, DeleteCommand, kvRegistry, KvStore, PutCommand } from "./kv_store.ts";
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
});

describe("KV routes on a single in-process node", () => {
  async function singleNode(disk = new MemoryDisk()) {
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
    installKvRoutes(app, { server, store, partition });
    await server.start();
    for (let i = 0; i < 100 && server.state !== "leader"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(server.state, "leader");
    return { app, server, store, disk };
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

  test("a snapshot restores data and sessions after a restart", async () => {
    const first = await singleNode();
    const headers = { "x-client-id": "c", "x-request-seq": "7" };
    await first.app.request("/kv/k", { method: "PUT", body: "v", headers });
    assert.equal((await first.app.request("/admin/snapshot", { method: "POST" })).status, 200);
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
