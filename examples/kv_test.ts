// End-to-end tests of examples/kv: every node is a real `deno run examples/kv/main.ts` process.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ADMIN_PORT_OFFSET,
  fetchStatus,
  freePorts,
  type LocalClusterSpec,
  NodeProcess,
  type NodeStatus,
  waitFor,
  waitForLeader,
} from "./kv/node_process.ts";

const ELECTION_TIMEOUT_MS = 200;
/** The admin token of the test clusters (nodes run with --admin). */
const ADMIN_TOKEN = `test-${crypto.randomUUID()}`;

interface Reply {
  status: number;
  text: string;
  headers: Headers;
}

/** Like {@link call}, but undefined while the node is unreachable (e.g. restarting). */
async function tryCall(url: string, init: RequestInit = {}): Promise<Reply | undefined> {
  try {
    return await call(url, init);
  } catch {
    return undefined;
  }
}

async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const response = await fetch(url, {
    redirect: "manual",
    signal: AbortSignal.timeout(8000),
    ...init,
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

class LocalCluster {
  readonly nodes: NodeProcess[];
  readonly dataRoot: string;

  constructor(spec: LocalClusterSpec) {
    this.dataRoot = spec.dataRoot;
    this.nodes = spec.nodes.map((node) => new NodeProcess(spec, node.id));
  }

  static async start(
    options: Pick<LocalClusterSpec, "transport" | "storage"> & { extraArgs?: string[] },
  ): Promise<LocalCluster> {
    const ports = await freePorts(3, options.transport === "http" ? 0 : 1000, ADMIN_PORT_OFFSET);
    const cluster = new LocalCluster({
      ...options,
      nodes: ports.map((port, i) => ({ id: `n${i + 1}`, port })),
      dataRoot: await mkdtemp(join(tmpdir(), "tsraft-kv-test-")),
      extraArgs: [
        "--election-timeout-ms",
        String(ELECTION_TIMEOUT_MS),
        "--admin",
        ...options.extraArgs ?? [],
      ],
      env: { TSRAFT_KV_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    for (const node of cluster.nodes) node.start();
    try {
      await cluster.leader();
    } catch (error) {
      await cluster.dispose();
      throw error;
    }
    return cluster;
  }

  node(id: string): NodeProcess {
    const node = this.nodes.find((candidate) => candidate.id === id);
    assert.ok(node, `no node ${id}`);
    return node;
  }

  /** The leader all running, unpartitioned nodes agree on. */
  async leader(options: { exclude?: string; timeoutMs?: number } = {}): Promise<NodeStatus> {
    const urls = this.nodes.filter((node) => node.running && node.id !== options.exclude)
      .map((node) => node.url);
    try {
      return await waitForLeader(urls, { timeoutMs: options.timeoutMs ?? 10_000 });
    } catch (error) {
      throw new Error(`${String(error)}\n${this.logs()}`);
    }
  }

  async follower(): Promise<{ leader: NodeProcess; follower: NodeProcess }> {
    const status = await this.leader();
    const leader = this.node(status.id);
    const follower = this.nodes.find((node) => node.running && node.id !== status.id);
    assert.ok(follower);
    return { leader, follower };
  }

  /** POSTs to a node's admin API with the token. */
  async admin(node: NodeProcess, action: string, body?: string): Promise<Reply> {
    return await call(`${node.adminUrl}/admin/${action}`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      ...(body === undefined ? {} : { body }),
    });
  }

  logs(): string {
    return this.nodes.map((node) => `--- ${node.id}\n${node.output}`).join("\n");
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill("SIGKILL")));
    await rm(this.dataRoot, { recursive: true, force: true });
  }
}

/** Writes through any running node until one acknowledges; the client id makes retries safe. */
async function put(
  cluster: LocalCluster,
  key: string,
  value: string,
  session: { client: string; seq: number },
): Promise<void> {
  const seq = ++session.seq;
  await waitFor(async () => {
    for (const node of cluster.nodes.filter((candidate) => candidate.running)) {
      try {
        const reply = await call(`${node.url}/kv/${key}`, {
          method: "PUT",
          body: value,
          headers: { "x-client-id": session.client, "x-request-seq": String(seq) },
        });
        if (reply.status === 200) return true;
      } catch {
        // The node died or timed out; try another.
      }
    }
    return false;
  }, { timeoutMs: 10_000, message: `PUT ${key}` });
}

describe("examples/kv over tcp + file (3 processes)", () => {
  let cluster: LocalCluster;

  before(async () => {
    cluster = await LocalCluster.start({
      transport: "tcp",
      storage: "file",
      // Small snapshot settings so a restarted node has to catch up from a snapshot.
      extraArgs: ["--snapshot-threshold", "40", "--trailing-log-entries", "10"],
    });
  });

  after(async () => {
    await cluster?.dispose();
  });

  test("GET /status reports the cluster on every node", async () => {
    const leader = await cluster.leader();
    for (const node of cluster.nodes) {
      const status = await fetchStatus(node.url);
      assert.ok(status, `${node.id} answers /status`);
      assert.equal(status.id, node.id);
      assert.equal(status.leader, leader.id);
      assert.equal(status.term, leader.term);
      assert.deepEqual(
        status.peers.map((peer) => peer.id).sort(),
        cluster.nodes.map((other) => other.id).filter((id) => id !== node.id),
      );
      for (const field of ["commitIndex", "lastIndex", "appliedIndex"] as const) {
        assert.equal(typeof status[field], "number");
      }
    }
  });

  test("the admin API is on its own loopback port, behind the token", async () => {
    const node = cluster.nodes[0]!;
    // Not on the client port at all.
    assert.equal((await call(`${node.url}/admin/heal`, { method: "POST" })).status, 404);
    const anonymous = await call(`${node.adminUrl}/admin/heal`, { method: "POST" });
    assert.equal(anonymous.status, 401);
    assert.equal(JSON.parse(anonymous.text).error, "unauthorized");
    const wrong = await call(`${node.adminUrl}/admin/heal`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}x` },
    });
    assert.equal(wrong.status, 401);
    const healed = await cluster.admin(node, "heal");
    assert.equal(healed.status, 200);
    assert.deepEqual(JSON.parse(healed.text), { partitioned: false });
    assert.equal((await cluster.admin(node, "partition", "{")).status, 400);
    assert.equal((await cluster.admin(node, "snapshot")).status, 200);
  });

  test("a follower forwards writes and reads to the leader", async () => {
    const { leader, follower } = await cluster.follower();
    const written = await call(`${follower.url}/kv/forwarded`, { method: "PUT", body: "v1" });
    assert.equal(written.status, 200, written.text);
    assert.equal(written.headers.get("x-kv-forwarded-to"), leader.id);
    assert.deepEqual(JSON.parse(written.text), { ok: true, previous: null });
    const read = await call(`${follower.url}/kv/forwarded`);
    assert.equal(read.status, 200);
    assert.equal(read.text, "v1");
    assert.equal(read.headers.get("x-kv-forwarded-to"), leader.id);
    // A read through a follower right after a write acknowledged by the leader sees it: the
    // follower serves it from its own copy only after applying the leader's read index.
    for (let i = 0; i < 20; i++) {
      const key = `read-your-write-${i}`;
      assert.equal(
        (await call(`${leader.url}/kv/${key}`, { method: "PUT", body: `w${i}` })).status,
        200,
      );
      assert.equal((await call(`${follower.url}/kv/${key}`)).text, `w${i}`);
    }
    // Larger values take the POST path of the forwarding link (see kv_service.ts).
    for (const size of [999, 5000, 300_000]) {
      const value = "é".repeat(size);
      const big = await call(`${follower.url}/kv/big-${size}`, { method: "PUT", body: value });
      assert.equal(big.status, 200, big.text);
      assert.equal(big.headers.get("x-kv-forwarded-to"), leader.id);
      assert.equal((await call(`${leader.url}/kv/big-${size}`)).text, value);
    }
    const deleted = await call(`${follower.url}/kv/forwarded`, { method: "DELETE" });
    assert.equal(deleted.status, 200);
    assert.equal((await call(`${leader.url}/kv/forwarded`)).status, 404);
  });

  test("?noforward on a follower answers 307 with the leader's URL", async () => {
    const { leader, follower } = await cluster.follower();
    const read = await call(`${follower.url}/kv/anything?noforward`);
    assert.equal(read.status, 307);
    assert.equal(read.headers.get("location"), `${leader.url}/kv/anything?noforward`);
    const write = await call(`${follower.url}/kv/anything?noforward`, {
      method: "PUT",
      body: "x",
    });
    assert.equal(write.status, 307);
    assert.equal(write.headers.get("location"), `${leader.url}/kv/anything?noforward`);
    // Following the redirect reaches the leader, which serves the request itself.
    const followed = await call(write.headers.get("location")!, { method: "PUT", body: "x" });
    assert.equal(followed.status, 200);
  });

  test("POST /kv/{key}/cas swaps only when the value matches", async () => {
    const { leader } = await cluster.follower();
    const cas = (expect: string | null, value: string) =>
      call(`${leader.url}/kv/cas-key/cas`, {
        method: "POST",
        body: JSON.stringify({ expect, value }),
        headers: { "content-type": "application/json" },
      });
    assert.deepEqual(JSON.parse((await cas(null, "a")).text), { ok: true, previous: null });
    assert.deepEqual(JSON.parse((await cas(null, "b")).text), { ok: false, previous: "a" });
    assert.deepEqual(JSON.parse((await cas("x", "b")).text), { ok: false, previous: "a" });
    assert.deepEqual(JSON.parse((await cas("a", "b")).text), { ok: true, previous: "a" });
    assert.equal((await call(`${leader.url}/kv/cas-key`)).text, "b");
    const bad = await call(`${leader.url}/kv/cas-key/cas`, { method: "POST", body: "{" });
    assert.equal(bad.status, 400);
  });

  test("a duplicate request (same client id and sequence) is applied once", async () => {
    const { leader, follower } = await cluster.follower();
    const send = (url: string, value: string, seq: number) =>
      call(`${url}/kv/dedup`, {
        method: "PUT",
        body: value,
        headers: { "x-client-id": "client-a", "x-request-seq": String(seq) },
      });
    const first = await send(leader.url, "one", 1);
    assert.deepEqual(JSON.parse(first.text), { ok: true, previous: null });
    assert.equal((await send(leader.url, "two", 2)).status, 200);
    // A retry of the latest request (through a follower this time) gets the remembered
    // result and changes nothing.
    const retry = await send(follower.url, "two", 2);
    assert.equal(retry.status, 200);
    assert.deepEqual(JSON.parse(retry.text), { ok: true, previous: "one", duplicate: true });
    // A late retry of an older request must not overwrite "two" either; its result is gone.
    const late = await send(leader.url, "one", 1);
    assert.deepEqual(JSON.parse(late.text), {
      ok: false,
      previous: null,
      duplicate: true,
      stale: true,
    });
    assert.equal((await call(`${leader.url}/kv/dedup`)).text, "two");
    const noSeq = await call(`${leader.url}/kv/dedup`, {
      method: "PUT",
      body: "x",
      headers: { "x-client-id": "client-a" },
    });
    assert.equal(noSeq.status, 400);
  });

  test("a partitioned leader steps down and serves no stale read", async () => {
    const old = await cluster.leader();
    const oldNode = cluster.node(old.id);
    assert.equal(
      (await call(`${oldNode.url}/kv/fenced`, { method: "PUT", body: "old" })).status,
      200,
    );
    const cut = await cluster.admin(oldNode, "partition");
    assert.equal(cut.status, 200);
    const fresh = await cluster.leader({ exclude: old.id });
    assert.notEqual(fresh.id, old.id);
    const updated = await call(`${fresh.leaderUrl}/kv/fenced`, { method: "PUT", body: "new" });
    assert.equal(updated.status, 200);
    // The old leader may still believe it leads for a moment; ReadIndex needs a quorum, so it
    // must never answer "old" now that "new" is committed.
    const stale = await call(`${oldNode.url}/kv/fenced?noforward`);
    assert.notEqual(stale.text, "old");
    assert.notEqual(stale.status, 200);
    await cluster.admin(oldNode, "heal");
    await waitFor(async () => {
      const status = await fetchStatus(oldNode.url);
      return status !== undefined && status.leader !== "" && status.state === "follower" &&
        status.partitioned === false;
    }, { message: `${old.id} rejoins as a follower` });
    await cluster.leader();
    const local = await waitFor(async () => {
      const reply = await tryCall(`${oldNode.url}/kv/fenced?local`);
      return reply?.text === "new" ? reply : undefined;
    }, { message: `${old.id} catches up` });
    assert.equal(local.status, 200);
  });

  test("a request a follower forwarded to a leader that froze fails once another leads", async () => {
    const { leader, follower } = await cluster.follower();
    assert.equal(
      (await call(`${follower.url}/kv/frozen`, { method: "PUT", body: "0" })).status,
      200,
    );
    process.kill(leader.pid!, "SIGSTOP");
    try {
      // Forwarded to the frozen leader, it waits until the follower sees a new leader, which
      // closes the link: a 503 to retry, not a 504 after the request timeout.
      const pending = call(`${follower.url}/kv/frozen`, { method: "PUT", body: "1" });
      const fresh = await cluster.leader({ exclude: leader.id });
      assert.notEqual(fresh.id, leader.id);
      const reply = await pending;
      assert.ok(reply.status === 503 || reply.status === 200, `${reply.status} ${reply.text}`);
    } finally {
      process.kill(leader.pid!, "SIGCONT");
    }
    await waitFor(async () => {
      const status = await fetchStatus(leader.url);
      return status !== undefined && status.state === "follower" && status.leader !== "";
    }, { message: `${leader.id} rejoins as a follower` });
  });

  test("kill -9 of the leader: a new leader, no acknowledged write lost, the node catches up", async () => {
    const session = { client: "writer", seq: 0 };
    const acked = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      await put(cluster, `before-${i}`, `v${i}`, session);
      acked.set(`before-${i}`, `v${i}`);
    }
    const old = await cluster.leader();
    const victim = cluster.node(old.id);
    const killedAt = Date.now();
    await victim.kill("SIGKILL");
    const fresh = await cluster.leader({ exclude: old.id });
    const failoverMs = Date.now() - killedAt;
    assert.notEqual(fresh.id, old.id);
    // Election timeouts are randomized in [t, 2t); pre-vote adds a round trip.
    assert.ok(failoverMs < 10 * ELECTION_TIMEOUT_MS, `failover took ${failoverMs} ms`);
    console.log(
      `failover after kill -9: ${failoverMs} ms (election timeout ${ELECTION_TIMEOUT_MS} ms)`,
    );
    for (const [key, value] of acked) {
      const reply = await call(`${fresh.leaderUrl}/kv/${key}`);
      assert.equal(reply.text, value, `${key} after failover`);
    }
    // Enough writes while the node is down that the leader snapshots and compacts past it.
    for (let i = 0; i < 60; i++) {
      await put(cluster, `after-${i}`, `w${i}`, session);
      acked.set(`after-${i}`, `w${i}`);
    }
    const compacted = await fetchStatus(cluster.node((await cluster.leader()).id).url);
    assert.ok(compacted);
    assert.ok(
      compacted.lastIndex - compacted.logEntries > old.lastIndex,
      `the leader compacted past the victim's log (${JSON.stringify(compacted)})`,
    );
    const restartedAt = Date.now();
    victim.start();
    const leader = await cluster.leader();
    await waitFor(async () => {
      const status = await fetchStatus(victim.url);
      return status !== undefined && status.appliedIndex >= leader.commitIndex;
    }, { message: `${old.id} applies up to ${leader.commitIndex}` });
    console.log(`restarted node caught up in ${Date.now() - restartedAt} ms`);
    for (const [key, value] of acked) {
      const reply = await call(`${victim.url}/kv/${key}?local`);
      assert.equal(reply.text, value, `${key} on the restarted node`);
    }
    // Linearizable reads through the restarted node (forwarded) see the same data.
    assert.equal((await call(`${victim.url}/kv/after-59`)).text, "w59");
  });
});

describe("examples/kv over http + kv storage (3 processes)", () => {
  let cluster: LocalCluster;

  before(async () => {
    cluster = await LocalCluster.start({ transport: "http", storage: "kv" });
  });

  after(async () => {
    await cluster?.dispose();
  });

  test("writes through a follower survive kill -9 of the leader", async () => {
    const { follower } = await cluster.follower();
    const session = { client: "http-writer", seq: 0 };
    for (let i = 0; i < 10; i++) {
      const reply = await call(`${follower.url}/kv/h${i}`, {
        method: "PUT",
        body: `x${i}`,
        headers: { "x-client-id": session.client, "x-request-seq": String(++session.seq) },
      });
      assert.equal(reply.status, 200, reply.text);
    }
    const old = await cluster.leader();
    const victim = cluster.node(old.id);
    await victim.kill("SIGKILL");
    const fresh = await cluster.leader({ exclude: old.id });
    for (let i = 0; i < 10; i++) {
      assert.equal((await call(`${fresh.leaderUrl}/kv/h${i}`)).text, `x${i}`);
    }
    await put(cluster, "h-after", "y", session);
    victim.start();
    await waitFor(async () => (await tryCall(`${victim.url}/kv/h-after?local`))?.text === "y", {
      message: `${old.id} catches up`,
    });
  });
});

for (const transport of ["tcp", "http"] as const) {
  describe(`examples/kv over TLS, ${transport} transport (3 processes)`, () => {
    // Test-only material of packages/transport-http: a throwaway CA and a certificate for
    // 127.0.0.1 signed by it.
    const testdata = fileURLToPath(
      new URL("../packages/transport-http/testdata/", import.meta.url),
    );
    const ca = readFileSync(join(testdata, "ca.pem"), "utf8");
    const tlsArgs = [
      "--tls-cert",
      join(testdata, "server.pem"),
      "--tls-key",
      join(testdata, "server.key"),
      "--tls-ca",
      join(testdata, "ca.pem"),
    ];
    let client: Deno.HttpClient;
    let nodes: NodeProcess[] = [];
    let dataRoot = "";

    before(async () => {
      client = Deno.createHttpClient({ caCerts: [ca] });
      const ports = await freePorts(3, transport === "tcp" ? 1000 : 0);
      dataRoot = await mkdtemp(join(tmpdir(), "tsraft-kv-tls-test-"));
      const spec: LocalClusterSpec = {
        nodes: ports.map((port, i) => ({ id: `n${i + 1}`, port })),
        dataRoot,
        scheme: "https",
        transport,
        extraArgs: ["--election-timeout-ms", String(ELECTION_TIMEOUT_MS), ...tlsArgs],
      };
      nodes = spec.nodes.map((node) => new NodeProcess(spec, node.id));
      for (const node of nodes) node.start();
    });

    after(async () => {
      await Promise.all(nodes.map((node) => node.kill("SIGKILL")));
      client?.close();
      if (dataRoot !== "") await rm(dataRoot, { recursive: true, force: true });
    });

    test("the client API, forwarding and raft traffic run over TLS", async () => {
      // Electing a leader needs raft traffic, which is TLS between the nodes too.
      const leader = await waitForLeader(nodes.map((node) => node.url), {
        timeoutMs: 15_000,
        init: { client } as RequestInit,
      }).catch((error) => {
        throw new Error(`${error}\n${nodes.map((node) => node.output).join("\n")}`);
      });
      assert.equal(leader.leaderUrl?.startsWith("https://"), true);
      const follower = nodes.find((node) => node.id !== leader.id)!;
      const init = (extra: RequestInit = {}) => ({ client, ...extra }) as RequestInit;
      const put = await fetch(`${follower.url}/kv/secret`, init({ method: "PUT", body: "s3cr3t" }));
      assert.equal(put.status, 200, await put.clone().text());
      assert.equal(put.headers.get("x-kv-forwarded-to"), leader.id);
      await put.body?.cancel();
      const got = await fetch(`${follower.url}/kv/secret`, init());
      assert.equal(await got.text(), "s3cr3t");
      // Plain http to a TLS port gets no answer from the API.
      const plain = await fetch(follower.url.replace("https:", "http:") + "/kv/secret", {
        signal: AbortSignal.timeout(5000),
      }).then(async (response) => `${response.status} ${await response.text()}`, String);
      assert.notEqual(plain, "200 s3cr3t");
    });
  });
}
