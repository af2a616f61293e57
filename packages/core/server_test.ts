import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Command, CommandRegistry, type Context } from "./command.ts";
import { CANDIDATE, FOLLOWER, LEADER, STOPPED } from "./constants.ts";
import {
  CommandTimeoutError,
  DuplicatePeerError,
  InvalidMessageError,
  NotLeaderError,
  StopError,
  UnknownCommandError,
} from "./errors.ts";
import { createServer, type Server, type ServerOptions } from "./server.ts";
import { KvSetCommand, KvStateMachine, TestCluster } from "./testing/test_cluster.ts";
import { ManualClock } from "./testing/manual_clock.ts";
import { MemoryDisk, MemoryStorage } from "./testing/memory_storage.ts";
import { MemoryNetwork } from "./testing/memory_transport.ts";

class FailingCommand implements Command {
  static readonly commandName = "test:fail";
  readonly commandName = FailingCommand.commandName;
  static fromJSON(): FailingCommand {
    return new FailingCommand();
  }
  apply(_context: Context): never {
    throw new RangeError("this command always fails");
  }
}

class UnregisteredCommand implements Command {
  readonly commandName = "test:unregistered";
  apply(): null {
    return null;
  }
}

function followerOf(cluster: TestCluster) {
  return [...cluster.servers.values()].find((server) =>
    server.running() && server.state === FOLLOWER
  )!;
}

describe("Server on the memory transport", () => {
  test("Server.do() resolves with the apply result after commit on a 3-node cluster", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    assert.equal(await cluster.run(leader.do(new KvSetCommand("x", "1"))), null);
    assert.equal(await cluster.run(leader.do(new KvSetCommand("x", "2"))), "1");
    await cluster.waitFor(
      () => [...cluster.machines.values()].every((m) => m.data.get("x") === "2"),
      {
        what: "every server to apply x=2",
      },
    );
    assert.equal(leader.lastCommandName, "kv:set");
    await cluster.stop();
  });

  test("Server.do() rejects with NotLeaderError naming the leader on a follower", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.waitFor(() => followerOf(cluster)?.leader === leader.name, {
      what: "followers to learn the leader",
    });
    const follower = followerOf(cluster);
    await assert.rejects(follower.do(new KvSetCommand("x", "1")), (error: unknown) => {
      assert.ok(error instanceof NotLeaderError);
      assert.equal(error.leader, leader.name);
      assert.equal(error.connectionString, `memory://${leader.name}`);
      return true;
    });
    await cluster.stop();
  });

  test("Server.do() rejects with StopError when the server stops first", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (const name of cluster.servers.keys()) {
      if (name !== leader.name) cluster.network.isolate(name);
    }
    const pending = leader.do(new KvSetCommand("x", "1"));
    await cluster.settle();
    await leader.stop();
    await assert.rejects(pending, StopError);
    assert.equal(leader.state, STOPPED);
    await assert.rejects(leader.do(new KvSetCommand("y", "1")), StopError);
    await cluster.stop();
  });

  test("Server.do() rejects with CommandTimeoutError when its signal aborts before commit", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (const name of cluster.servers.keys()) {
      if (name !== leader.name) cluster.network.isolate(name);
    }
    const controller = new AbortController();
    const pending = leader.do(new KvSetCommand("x", "1"), { signal: controller.signal });
    controller.abort();
    await assert.rejects(pending, CommandTimeoutError);
    await cluster.stop();
  });

  test("Server.do() rejects an unregistered command with UnknownCommandError", async () => {
    const cluster = new TestCluster(["a"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await assert.rejects(leader.do(new UnregisteredCommand()), UnknownCommandError);
    await cluster.stop();
  });

  test("Server keeps running when a command throws in apply; the error reaches the caller", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    cluster.registry.register(FailingCommand);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await assert.rejects(cluster.run(leader.do(new FailingCommand())), RangeError);
    assert.equal(await cluster.run(leader.do(new KvSetCommand("after", "ok"))), null);
    await cluster.stop();
  });

  test("Server handlers reject malformed requests with InvalidMessageError and keep serving", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster);
    const bad = [
      {
        term: "1",
        prevLogIndex: 0,
        prevLogTerm: 0,
        commitIndex: 0,
        leaderName: "a",
        entries: [],
        heartbeatSeq: 0,
      },
      {
        term: 1,
        prevLogIndex: 0,
        prevLogTerm: 0,
        commitIndex: 0,
        leaderName: "a",
        heartbeatSeq: 0,
      },
      {
        term: 1,
        prevLogIndex: 0,
        prevLogTerm: 0,
        commitIndex: 0,
        leaderName: "",
        entries: [],
        heartbeatSeq: 0,
      },
      {
        term: 1,
        prevLogIndex: 0,
        prevLogTerm: 0,
        commitIndex: 0,
        leaderName: "a",
        entries: [{ index: 5, term: 1, commandName: "x", command: new Uint8Array() }],
        heartbeatSeq: 0,
      },
      null,
    ];
    for (const request of bad) {
      // deno-lint-ignore no-explicit-any
      await assert.rejects(follower.appendEntries(request as any), InvalidMessageError);
    }
    // deno-lint-ignore no-explicit-any
    await assert.rejects(follower.requestVote({ term: -1 } as any), InvalidMessageError);
    assert.equal(await cluster.run(leader.do(new KvSetCommand("still", "works"))), null);
    await cluster.stop();
  });

  test("Server.appendEntries() never acknowledges entries whose write was lost in a crash", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster);
    const disk = cluster.disks.get(follower.name)!;
    disk.holdWrites();
    const reply = follower.appendEntries({
      term: leader.term,
      prevLogIndex: follower.lastIndex,
      prevLogTerm: follower.logEntries.at(-1)?.term ?? 0,
      commitIndex: 0,
      leaderName: leader.name,
      entries: [{
        index: follower.lastIndex + 1,
        term: leader.term,
        commandName: "kv:set",
        command: new TextEncoder().encode('{"key":"k","value":"v"}'),
      }],
      heartbeatSeq: 0,
    });
    await cluster.settle();
    disk.crash();
    await assert.rejects(reply, StopError);
    await cluster.stop();
  });

  test("Server: a vote request from a server outside the configuration is refused", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = followerOf(cluster);
    const response = await follower.requestVote({
      term: leader.term + 10,
      lastLogIndex: 1_000,
      lastLogTerm: leader.term + 9,
      candidateName: "intruder",
      preVote: false,
      transfer: false,
    });
    assert.equal(response.voteGranted, false);
    assert.equal(follower.term, leader.term, "a stranger's term is not adopted");
    await cluster.stop();
  });

  test("Server: exactly one leader per term and re-election after the leader crashes", async () => {
    const cluster = new TestCluster(["a", "b", "c", "d", "e"], { seed: 3 });
    const leadersByTerm = new Map<number, Set<string>>();
    for (const server of cluster.servers.values()) {
      server.addEventListener("stateChange", (event) => {
        if (event.value !== LEADER) return;
        const set = leadersByTerm.get(event.source.term) ?? new Set();
        set.add(event.source.name);
        leadersByTerm.set(event.source.term, set);
      });
    }
    await cluster.start();
    let leader = await cluster.waitForLeader();
    for (let round = 0; round < 3; round++) {
      await cluster.run(leader.do(new KvSetCommand(`k${round}`, "v")));
      const old = leader.name;
      await cluster.crash(old);
      leader = await cluster.waitForLeader(5_000);
      assert.notEqual(leader.name, old);
      await cluster.restart(old);
    }
    for (const [term, names] of leadersByTerm) {
      assert.equal(names.size, 1, `term ${term}: ${[...names]}`);
    }
    await cluster.stop();
  });

  test("Server: no commit without a majority, then logs converge after the partition heals", async () => {
    const cluster = new TestCluster(["a", "b", "c", "d", "e"], { seed: 5 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("before", "1")));
    const others = [...cluster.servers.keys()].filter((name) => name !== leader.name);
    const minority = [leader.name, others[0]!];
    const majority = others.slice(1);
    cluster.network.partition(minority, majority);
    const stuck = leader.do(new KvSetCommand("lost", "x"));
    stuck.catch(() => {});
    const commitBefore = leader.commitIndex;
    await cluster.waitFor(
      () => cluster.leaders().some((server) => majority.includes(server.name)),
      {
        what: "a leader in the majority",
      },
    );
    assert.equal(leader.commitIndex, commitBefore, "the minority leader commits nothing");
    const newLeader = cluster.leaders().find((server) => majority.includes(server.name))!;
    await cluster.run(newLeader.do(new KvSetCommand("during", "2")));
    cluster.network.heal();
    await cluster.waitFor(() => {
      const logs = [...cluster.servers.values()].map((s) =>
        `${s.lastIndex}/${s.commitIndex}/${s.appliedIndex}`
      );
      return new Set(logs).size === 1 && cluster.leaders().length === 1;
    }, { what: "logs to converge" });
    await assert.rejects(stuck, NotLeaderError);
    for (const machine of cluster.machines.values()) {
      assert.equal(machine.data.get("before"), "1");
      assert.equal(machine.data.get("during"), "2");
      assert.equal(machine.data.has("lost"), false);
    }
    const logs = [...cluster.servers.values()].map((s) =>
      JSON.stringify(s.logEntries.map((e) => [e.index, e.term]))
    );
    assert.equal(new Set(logs).size, 1);
    await cluster.stop();
  });

  test("Server restart from storage keeps term, vote and log, and re-applies committed entries once", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 9 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 5; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, `${i}`)));
    const follower = followerOf(cluster);
    await cluster.waitFor(() => follower.appliedIndex === leader.commitIndex, {
      what: "follower to apply",
    });
    const before = {
      term: follower.term,
      votedFor: follower.votedFor,
      lastIndex: follower.lastIndex,
    };
    await cluster.crash(follower.name);
    const restarted = await cluster.restart(follower.name);
    assert.deepEqual({
      term: restarted.term,
      votedFor: restarted.votedFor,
      lastIndex: restarted.lastIndex,
    }, before);
    await cluster.waitFor(() => restarted.appliedIndex === leader.commitIndex, {
      what: "restarted follower to re-apply",
    });
    const machine = cluster.machines.get(follower.name)!;
    assert.equal(machine.data.get("k4"), "4");
    assert.deepEqual(
      machine.appliedIndexes,
      [...new Set(machine.appliedIndexes)],
      "each entry applied once",
    );
    await cluster.stop();
  });

  test("Server persists a batch of concurrent proposals with few storage writes (group commit)", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const disk = cluster.disks.get(leader.name)!;
    const before = disk.saveCount;
    const results = await cluster.run(
      Promise.all(Array.from({ length: 100 }, (_, i) => leader.do(new KvSetCommand(`g${i}`, "v")))),
    );
    assert.equal(results.length, 100);
    const writes = disk.saveCount - before;
    assert.ok(writes <= 5, `100 concurrent proposals took ${writes} storage writes`);
    await cluster.stop();
  });

  test("Server emits the spec's events: stateChange, leaderChange, termChange, commit, heartbeat", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const events = new Map<string, { type: string; value: unknown; prevValue: unknown }[]>();
    for (const server of cluster.servers.values()) {
      events.set(server.name, []);
      for (
        const type of ["stateChange", "leaderChange", "termChange", "commit", "heartbeat"] as const
      ) {
        server.addEventListener(type, (event) => {
          assert.equal(event.source, server);
          events.get(server.name)!.push({ type, value: event.value, prevValue: event.prevValue });
        });
      }
    }
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("e", "1")));
    const mine = events.get(leader.name)!;
    // Time moves in small steps: a single 200 ms jump fires the quorum check before the
    // heartbeat answers are processed, and the leader (rightly) steps down.
    await cluster.waitFor(() =>
      mine.filter((e) => e.type === "heartbeat").length >= 2 &&
      [...cluster.servers.values()].every((s) => s.appliedIndex === leader.commitIndex)
    );
    const states = mine.filter((e) => e.type === "stateChange").map((e) => e.value);
    assert.deepEqual(states.slice(-3), ["follower", "candidate", "leader"]);
    const terms = mine.filter((e) => e.type === "termChange");
    assert.equal(terms[terms.length - 1]!.value, leader.term);
    for (const server of cluster.servers.values()) {
      const own = events.get(server.name)!;
      const leaders = own.filter((e) => e.type === "leaderChange").map((e) => e.value);
      assert.equal(leaders[leaders.length - 1], leader.name, `${server.name} learned the leader`);
      const commits = own.filter((e) => e.type === "commit");
      const last = commits[commits.length - 1]!;
      assert.equal((last.value as { index: number }).index, leader.commitIndex);
      assert.equal(
        last.prevValue,
        leader.commitIndex - 1,
        "prevValue is the previous applied index",
      );
    }
    const heartbeats = mine.filter((e) => e.type === "heartbeat");
    assert.ok(heartbeats.length >= 2, "the leader timed heartbeat round trips");
    for (const heartbeat of heartbeats) {
      const { peer, roundTripMs } = heartbeat.value as { peer: string; roundTripMs: number };
      assert.ok(leader.peers.has(peer));
      assert.ok(roundTripMs >= 0);
    }
    await cluster.stop();
  });

  test("Server.addPeer() adds a member through the log and rejects a duplicate", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const added: string[] = [];
    leader.addEventListener("addPeer", (event) => added.push(event.value.name));
    await cluster.run(leader.do(new KvSetCommand("pre", "1")));
    const newcomer = await cluster.addServer("d");
    await cluster.run(leader.addPeer("d", "memory://d"));
    assert.equal(leader.memberCount, 4);
    assert.deepEqual(added, ["d"]);
    await assert.rejects(leader.addPeer("d", "memory://d"), DuplicatePeerError);
    await cluster.waitFor(() => cluster.machines.get("d")!.data.get("pre") === "1", {
      what: "d to catch up",
    });
    assert.equal(newcomer.memberCount, 4);
    await cluster.stop();
  });

  test("Server.removePeer() of the leader: it steps down once the change commits", async () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.removePeer(leader.name));
    await cluster.waitFor(() => leader.state !== LEADER, { what: "removed leader to step down" });
    const next = await cluster.waitForLeader();
    assert.notEqual(next.name, leader.name);
    assert.equal(next.memberCount, 2);
    await cluster.run(next.do(new KvSetCommand("after", "removal")));
    await cluster.stop();
  });

  test("Server.readIndex() on a deposed leader never returns stale data", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 4 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await cluster.run(leader.do(new KvSetCommand("r", "old")));
    const index = await cluster.run(leader.readIndex());
    assert.equal(index, leader.commitIndex, "the read index is the leader's commit index");
    const others = [...cluster.servers.keys()].filter((name) => name !== leader.name);
    cluster.network.partition([leader.name], others);
    const read = leader.readIndex();
    read.catch(() => {});
    await cluster.waitFor(() => cluster.leaders().some((s) => s.name !== leader.name), {
      what: "new leader",
    });
    const next = cluster.leaders().find((s) => s.name !== leader.name)!;
    await cluster.run(next.do(new KvSetCommand("r", "new")));
    await cluster.waitFor(() => leader.state !== LEADER, {
      what: "old leader to step down (check-quorum)",
    });
    await assert.rejects(read, NotLeaderError);
    await cluster.stop();
  });

  test("Server.takeSnapshot() compacts the log; a restarted server recovers from snapshot + log", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      serverOptions: { trailingLogEntries: 5, snapshotThreshold: 0 },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 30; i++) await cluster.run(leader.do(new KvSetCommand(`s${i}`, `${i}`)));
    await cluster.run(leader.takeSnapshot());
    assert.ok(
      leader.logEntries.length <= 6,
      `log holds ${leader.logEntries.length} entries after compaction`,
    );
    await cluster.crash(leader.name);
    const restarted = await cluster.restart(leader.name);
    await cluster.waitForLeader();
    await cluster.waitFor(() => cluster.machines.get(restarted.name)!.data.get("s29") === "29", {
      what: "restarted server to recover",
    });
    await cluster.stop();
  });

  test("Server installs a snapshot on a follower that was partitioned past compaction", async () => {
    const cluster = new TestCluster(["a", "b", "c"], {
      serverOptions: { trailingLogEntries: 2, snapshotThreshold: 0, snapshotChunkBytes: 64 },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const lagging = followerOf(cluster);
    cluster.network.isolate(lagging.name);
    for (let i = 0; i < 40; i++) await cluster.run(leader.do(new KvSetCommand(`p${i}`, `${i}`)));
    await cluster.run(leader.takeSnapshot());
    cluster.network.heal();
    const states: string[] = [];
    lagging.addEventListener("stateChange", (event) => states.push(event.value));
    await cluster.waitFor(() => cluster.machines.get(lagging.name)!.data.get("p39") === "39", {
      what: "lagging follower to install the snapshot",
    });
    assert.ok(states.includes("snapshotting"));
    assert.equal(lagging.state, FOLLOWER);
    await cluster.run(leader.do(new KvSetCommand("after", "snapshot")));
    await cluster.waitFor(() =>
      cluster.machines.get(lagging.name)!.data.get("after") === "snapshot"
    );
    await cluster.stop();
  });

  /** A single-node cluster on a manual clock, started and advanced until it leads. */
  async function soloLeader(extra: Partial<ServerOptions> = {}): Promise<Server> {
    const clock = new ManualClock();
    const network = new MemoryNetwork({ clock });
    const registry = new CommandRegistry();
    registry.register(KvSetCommand);
    const server = createServer({
      name: "solo",
      transporter: network.transporter(),
      storage: new MemoryStorage(new MemoryDisk()),
      registry,
      clock,
      random: { next: () => 0.5 },
      ...extra,
    });
    network.register(server);
    await server.start();
    clock.advance(400);
    await new Promise((resolve) => setTimeout(resolve, 0));
    return server;
  }

  test("Server single-node cluster elects itself and commits", async () => {
    const server = await soloLeader();
    assert.equal(server.state, LEADER);
    assert.notEqual(server.state, CANDIDATE);
    await server.stop();
  });

  test("Server reports every input to the core through ServerOptions.onStep", async () => {
    const kinds: string[] = [];
    const server = await soloLeader({
      stateMachine: new KvStateMachine(),
      onStep: (input) => kinds.push(input.kind),
    });
    assert.equal(server.state, LEADER);
    assert.equal(await server.do(new KvSetCommand("x", "1")), null);
    // The timer elected it, the proposal went in, and its write completed.
    assert.ok(kinds.includes("timer"));
    const proposed = kinds.indexOf("propose");
    assert.ok(proposed >= 0 && kinds.indexOf("written", proposed) > proposed);
    await server.stop();
  });
});
