import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type KvNode, startKvNode } from "./kv_node.ts";
import { freePorts, waitFor } from "./node_process.ts";

const TOKEN = `test-${crypto.randomUUID()}`;

describe("admin API: transfer, add-peer, remove-peer (nodes in one process, http transport)", () => {
  const nodes: KvNode[] = [];
  let dataRoot = "";

  async function start(id: string, port: number, adminPort: number, peers: string[][]) {
    const node = await startKvNode({
      id,
      port,
      peers: peers.map(([name, address]) => ({ name: name!, connectionString: address! })),
      dataDir: join(dataRoot, id),
      transport: "http",
      electionTimeoutMs: 300,
      admin: { port: adminPort, token: TOKEN },
      ...(peers.length === 0 ? { join: true } : {}),
    });
    nodes.push(node);
    return node;
  }

  async function admin(node: KvNode, action: string, body: unknown, token = TOKEN) {
    const response = await fetch(`${node.adminUrl}/admin/${action}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() as Record<string, unknown> };
  }

  async function leader(): Promise<KvNode> {
    return await waitFor(
      () => {
        const leaders = nodes.filter((node) => node.server.state === "leader");
        return leaders.length === 1 && leaders[0];
      },
      { timeoutMs: 10_000, message: "one leader" },
    );
  }

  before(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), "tsraft-admin-test-"));
    const ports = await freePorts(3);
    const admins = await freePorts(4);
    await Promise.all(ports.map((port, i) =>
      start(
        `n${i + 1}`,
        port,
        admins[i]!,
        ports.flatMap((other, j) => j === i ? [] : [[`n${j + 1}`, `127.0.0.1:${other}`]]),
      )
    ));
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.close()));
    await rm(dataRoot, { recursive: true, force: true });
  });

  test("POST /admin/transfer needs the token and hands leadership to the named node", async () => {
    const from = await leader();
    const to = nodes.find((node) => node !== from)!;
    assert.equal((await admin(from, "transfer", { to: to.server.name }, "wrong")).status, 401);
    const reply = await admin(from, "transfer", { to: to.server.name });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.leader, to.server.name);
    assert.equal(await leader(), to);
    // A follower refuses and names the leader.
    const refused = await admin(from, "transfer", {});
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, "not_leader");
    assert.equal(refused.body.leader, to.server.name);
  });

  test("POST /admin/add-peer adds a node started with join; remove-peer removes it", async () => {
    const [port] = await freePorts(1);
    const [adminPort] = await freePorts(1);
    const newcomer = await start("n4", port!, adminPort!, []);
    assert.deepEqual(newcomer.server.members, [], "a joining node starts with no membership");
    const lead = await leader();
    assert.equal((await admin(lead, "add-peer", { name: "n4" })).status, 400);
    const added = await admin(lead, "add-peer", {
      name: "n4",
      connectionString: `127.0.0.1:${port}`,
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.deepEqual((added.body.members as string[]).sort(), ["n1", "n2", "n3", "n4"]);
    const again = await admin(lead, "add-peer", {
      name: "n4",
      connectionString: `127.0.0.1:${port}`,
    });
    assert.equal(again.status, 409);
    await waitFor(() => newcomer.server.members.length === 4, {
      message: "n4 learns the membership",
    });

    const removed = await admin(lead, "remove-peer", { name: "n4" });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual((removed.body.members as string[]).sort(), ["n1", "n2", "n3"]);
    assert.equal((await admin(lead, "remove-peer", { name: "n4" })).status, 409);
  });
});
