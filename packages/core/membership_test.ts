import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FOLLOWER, LEADER } from "./constants.ts";
import { MembershipChangeInProgressError } from "./errors.ts";
import type { Server } from "./server.ts";
import { KvSetCommand, TestCluster } from "./testing/test_cluster.ts";

/** Keeps `clients` closed-loop writers busy until stopped; records acknowledged keys. */
function startLoad(cluster: TestCluster, clients: number) {
  const acknowledged = new Map<string, string>();
  let running = true;
  let sequence = 0;
  const loops = Array.from({ length: clients }, async (_, client) => {
    while (running) {
      const leader = cluster.leaders()[0];
      if (leader === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        continue;
      }
      const key = `c${client}-${sequence++}`;
      try {
        await leader.do(new KvSetCommand(key, "v"));
        acknowledged.set(key, "v");
      } catch {
        // not acknowledged: the write may or may not have happened
      }
      // Memory delivery is microtask-only: yield so timers and the test body can run.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  });
  return {
    acknowledged,
    async stop() {
      running = false;
      await cluster.run(Promise.all(loops));
    },
  };
}

function assertAllHave(
  cluster: TestCluster,
  names: string[],
  acknowledged: Map<string, string>,
): void {
  for (const name of names) {
    const data = cluster.machines.get(name)!.data;
    for (const [key, value] of acknowledged) {
      assert.equal(data.get(key), value, `${name} lost ${key}`);
    }
  }
}

async function converged(cluster: TestCluster, names: string[]): Promise<void> {
  await cluster.waitFor(() => {
    const leader = cluster.leaders()[0];
    return leader !== undefined &&
      names.every((name) => cluster.server(name).appliedIndex === leader.commitIndex);
  }, { what: `${names.join(",")} to apply everything` });
}

describe("Membership changes", () => {
  test("Server.addPeer() under load: the newcomer catches up as a learner, then votes", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 11 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 150; i++) await cluster.run(leader.do(new KvSetCommand(`pre${i}`, "v")));
    const load = startLoad(cluster, 4);
    await cluster.addServer("d");
    // While catching up, d receives the log but is no member: quorum stays 2 of 3. The load
    // commits on the leader meanwhile; each commit notes how the leader sees d (the join is
    // proposed as soon as d is caught up, so polling on the clock could miss that phase).
    const seen: { voter: boolean; quorumSize: number }[] = [];
    const observe = () => {
      const progress = leader.progress.find((p) => p.name === "d");
      if (progress) seen.push({ voter: progress.voter, quorumSize: leader.quorumSize });
    };
    leader.addEventListener("commit", observe);
    await cluster.run(leader.addPeer("d", "memory://d"));
    leader.removeEventListener("commit", observe);
    assert.deepEqual(seen[0], { voter: false, quorumSize: 2 });
    assert.equal(leader.memberCount, 4);
    assert.equal(leader.quorumSize, 3);
    await load.stop();
    await converged(cluster, ["a", "b", "c", "d"]);
    assert.ok(load.acknowledged.size > 0);
    assertAllHave(cluster, ["a", "b", "c", "d"], load.acknowledged);
    assert.equal(cluster.server("d").memberCount, 4);
    await cluster.stop();
  });

  test("Server resizes 3 → 5 → 3 under load without losing a committed entry", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 12 });
    await cluster.start();
    await cluster.waitForLeader();
    const load = startLoad(cluster, 3);
    for (const name of ["d", "e"]) {
      await cluster.addServer(name);
      const leader = await cluster.waitForLeader();
      await cluster.run(leader.addPeer(name, `memory://${name}`), 20_000);
    }
    assert.equal(cluster.leaders()[0]!.memberCount, 5);
    // Remove two of the founders, the leader among them when it is one of them.
    for (const name of ["a", "b"]) {
      const leader = await cluster.waitForLeader();
      await cluster.run(leader.removePeer(name), 20_000);
      await cluster.waitFor(
        () => cluster.leaders().length === 1 && cluster.leaders()[0]!.name !== name,
        {
          what: `a leader other than ${name}`,
        },
      );
    }
    const leader = await cluster.waitForLeader();
    assert.equal(leader.memberCount, 3);
    assert.deepEqual(leader.members.map((m) => m.name), ["c", "d", "e"]);
    await load.stop();
    await converged(cluster, ["c", "d", "e"]);
    assertAllHave(cluster, ["c", "d", "e"], load.acknowledged);
    await cluster.stop();
  });

  test("Server refuses a second membership change while one is uncommitted", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (const name of ["a", "b", "c"]) if (name !== leader.name) cluster.network.isolate(name);
    const first = leader.removePeer([...leader.peers.keys()][0]!);
    first.catch(() => {});
    await cluster.settle();
    await assert.rejects(leader.addPeer("x", "memory://x"), MembershipChangeInProgressError);
    await cluster.stop();
  });

  test("Server.removePeer() events fire on every member", async () => {
    const cluster = new TestCluster(["a", "b", "c", "d"]);
    const removed = new Map<string, string[]>();
    for (const server of cluster.servers.values()) {
      server.addEventListener("removePeer", (event) => {
        removed.set(server.name, [...(removed.get(server.name) ?? []), event.value.name]);
      });
    }
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const victim = [...leader.peers.keys()][0]!;
    await cluster.run(leader.removePeer(victim));
    const others = [...cluster.servers.values()].filter((s: Server) => s.name !== victim);
    await cluster.waitFor(() => others.every((s) => removed.get(s.name)?.includes(victim)), {
      what: "removePeer events",
    });
    assert.ok(others.every((s) => s.state === LEADER || s.state === FOLLOWER));
    await cluster.stop();
  });
});
