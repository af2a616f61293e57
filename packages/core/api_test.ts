import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ApplyContext, CommandRegistry, defineCommand } from "./command.ts";
import { LEADER } from "./constants.ts";
import type { Logger } from "./logger.ts";
import { createServer, type StateMachine } from "./server.ts";
import { ManualClock } from "./testing/manual_clock.ts";
import { MemoryStorage } from "./testing/memory_storage.ts";
import { MemoryNetwork } from "./testing/memory_transport.ts";
import { KvSetCommand, TestCluster } from "./testing/test_cluster.ts";

class Tally implements StateMachine {
  total = 0;
  history: number[] = [];
  save(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ total: this.total }));
  }
  recovery(data: Uint8Array): void {
    this.total = (JSON.parse(new TextDecoder().decode(data)) as { total: number }).total;
  }
}

const Add = defineCommand({
  name: "tally:add",
  parse: (value) => {
    const amount = (value as { amount?: unknown }).amount;
    if (typeof amount !== "number") throw new TypeError("amount must be a number");
    return { amount };
  },
  apply: ({ amount }: { amount: number }, { stateMachine, currentIndex }: ApplyContext<Tally>) => {
    stateMachine.history.push(currentIndex);
    return stateMachine.total += amount;
  },
});

async function singleServer(stateMachine: Tally, registry: CommandRegistry, logger?: Logger) {
  const clock = new ManualClock();
  const network = new MemoryNetwork({ clock });
  const server = createServer({
    name: "solo",
    transporter: network.transporter(),
    storage: new MemoryStorage(),
    stateMachine,
    registry,
    clock,
    random: { next: () => 0 },
    ...(logger ? { logger } : {}),
  });
  network.register(server);
  await server.start();
  for (let i = 0; i < 100 && server.state !== LEADER; i++) {
    clock.advance(50);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.equal(server.state, LEADER);
  return { server, clock };
}

describe("defineCommand()", () => {
  test("defineCommand() commands apply to the typed state machine and resolve do() with the result", async () => {
    const registry = new CommandRegistry();
    registry.register(Add);
    const tally = new Tally();
    const { server } = await singleServer(tally, registry);
    assert.equal(server.stateMachine, tally, "createServer() keeps the state machine's type");
    assert.equal(await server.do(Add({ amount: 2 })), 2);
    assert.equal(await server.do(Add({ amount: 5 })), 7);
    assert.equal(tally.total, 7);
    assert.equal(tally.history.length, 2);
    await server.stop();
  });

  test("defineCommand() refuses inputs JSON would not round-trip, before proposing", () => {
    const registry = new CommandRegistry();
    const Put = defineCommand({
      name: "any:put",
      apply: (input: unknown) => input,
    });
    registry.register(Put);
    for (
      const [input, where] of [
        [{ when: new Date(0) }, "input.when is a Date"],
        [{ tags: new Set(["a"]) }, "input.tags is a Set"],
        [{ index: new Map() }, "input.index is a Map"],
        [{ big: 1n }, "input.big is a bigint"],
        [{ list: [1, undefined] }, "input.list[1] is undefined"],
        [{ ratio: Number.NaN }, "input.ratio is NaN"],
        [{ bytes: new Uint8Array(2) }, "input.bytes is a Uint8Array"],
      ] as const
    ) {
      assert.throws(() => registry.encode(Put(input)), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(where.replace(/[[\]]/g, "\\$&")));
        return true;
      });
    }
    const decoded = registry.decode(
      "any:put",
      registry.encode(Put({ a: [1, "x", null, { b: true }], gone: undefined })),
    );
    assert.deepEqual((decoded as unknown as { input: unknown }).input, {
      a: [1, "x", null, { b: true }],
    });
  });

  test("CommandRegistry.encode() refuses a class command whose properties JSON would change", () => {
    class Schedule {
      static readonly commandName = "schedule";
      readonly commandName = Schedule.commandName;
      constructor(readonly at: Date) {}
      static fromJSON(): Schedule {
        return new Schedule(new Date(0));
      }
      apply(): null {
        return null;
      }
    }
    const registry = new CommandRegistry();
    registry.register(Schedule);
    assert.throws(() => registry.encode(new Schedule(new Date(0))), /\.at is a Date/);
  });

  test("defineCommand() parse() rejects a malformed stored input with InvalidMessageError", () => {
    const registry = new CommandRegistry();
    registry.register(Add);
    assert.throws(
      () => registry.decode("tally:add", new TextEncoder().encode('{"amount":"2"}')),
      /amount must be a number/,
    );
  });
});

describe("Server options", () => {
  const base = () => {
    const network = new MemoryNetwork();
    return { name: "a", transporter: network.transporter(), storage: new MemoryStorage() };
  };

  test("createServer() rejects options out of range with an error naming the option", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { electionTimeoutMs: 100, heartbeatIntervalMs: 50 },
        /electionTimeoutMs \(100\) must exceed twice heartbeatIntervalMs \(50\)/,
      ],
      [{ heartbeatIntervalMs: 0 }, /heartbeatIntervalMs must be a positive number/],
      [{ maxInflightMessages: 0 }, /maxInflightMessages must be a positive integer/],
      [{ maxEntriesPerMessage: 0 }, /maxEntriesPerMessage must be a positive integer/],
      [{ maxBytesPerMessage: 2.5 }, /maxBytesPerMessage must be a positive integer/],
      [{ snapshotChunkBytes: 1.5 }, /snapshotChunkBytes must be a positive integer/],
      [{ snapshotThreshold: -1 }, /snapshotThreshold must be a non-negative integer/],
      [{ leaseClockDrift: 1 }, /leaseClockDrift must be in \[0, 1\)/],
      [
        { peers: [{ name: "b", connectionString: "" }, { name: "b", connectionString: "x" }] },
        /peers names b twice/,
      ],
      [{ peers: [{ name: "", connectionString: "" }] }, /non-empty name/],
      [{ name: "" }, /name must be a non-empty string/],
    ];
    for (const [overrides, message] of cases) {
      assert.throws(
        () => createServer({ ...base(), ...overrides } as Parameters<typeof createServer>[0]),
        message,
        JSON.stringify(overrides),
      );
    }
  });

  test("Server.electionTimeout setter refuses a value at or below twice the heartbeat", () => {
    const server = createServer(base());
    assert.throws(() => server.electionTimeout = 100, /must exceed twice heartbeatIntervalMs/);
    server.electionTimeout = 101;
    assert.equal(server.electionTimeout, 101);
  });

  test("Server.stop() closes the transporter when closeTransporterOnStop is set", async () => {
    const network = new MemoryNetwork();
    let closed = 0;
    const transporter = Object.assign(network.transporter(), { close: () => void closed++ });
    const server = createServer({
      name: "a",
      transporter,
      storage: new MemoryStorage(),
      closeTransporterOnStop: true,
    });
    await server.start();
    await server.stop();
    assert.equal(closed, 1);
    const keeps = createServer({ name: "b", transporter, storage: new MemoryStorage() });
    await keeps.start();
    await keeps.stop();
    assert.equal(closed, 1, "without the option the transporter stays open");
  });
});

describe("Server.stats() and the logger", () => {
  test("Server.stats() reports a leader's followers, proposals, applies, messages and storage writes", async () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 5 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const before = leader.stats();
    for (let i = 0; i < 4; i++) await cluster.run(leader.do(new KvSetCommand(`k${i}`, "v")));
    await cluster.waitFor(() =>
      leader.stats().followers.every((f) => f.matchIndex === leader.lastIndex)
    );
    const stats = leader.stats();
    assert.equal(stats.state, LEADER);
    assert.equal(stats.leader, leader.name);
    assert.deepEqual(stats.members, ["a", "b", "c"]);
    assert.equal(stats.counters.proposals - before.counters.proposals, 4);
    assert.equal(stats.counters.entriesApplied - before.counters.entriesApplied, 4);
    assert.equal(stats.counters.leadershipsWon, 1);
    assert.ok(stats.counters.electionsStarted >= 1);
    assert.deepEqual(stats.followers.map((f) => f.name).sort(), [...leader.peers.keys()].sort());
    for (const follower of stats.followers) {
      assert.equal(follower.matchIndex, leader.lastIndex);
      assert.equal(follower.mode, "replicate");
    }
    const commandBytes = leader.logEntries.slice(-4).reduce((n, e) => n + e.command.length, 0);
    assert.ok(
      stats.sent.appendEntries.bytes - before.sent.appendEntries.bytes >= 2 * commandBytes,
      "each follower was sent the four commands",
    );
    assert.ok(stats.counters.storageWrites > before.counters.storageWrites);
    const latency = stats.storageWriteLatency;
    assert.equal(latency.counts.reduce((a, b) => a + b, 0), latency.count);
    assert.equal(latency.count, stats.counters.storageWrites);
    assert.equal(stats.commitLatency.count - before.commitLatency.count, 4);
    assert.equal(stats.commitLatency.counts.reduce((a, b) => a + b, 0), stats.commitLatency.count);
    assert.equal(stats.leaderContactMsAgo, 0);
    const follower = cluster.server(stats.followers[0]!.name).stats();
    assert.deepEqual(follower.followers, []);
    assert.ok(follower.leaderContactMsAgo < 150, "a follower hears its leader every heartbeat");
    assert.equal(follower.commitLatency.count, 0, "it proposed nothing");
    assert.ok(follower.received.appendEntries.bytes >= commandBytes);
    await cluster.stop();
  });

  test("Server logs state changes at debug level to the injected logger", async () => {
    const lines: { level: string; message: string; properties?: Record<string, unknown> }[] = [];
    const record = (level: string) => (message: string, properties?: Record<string, unknown>) =>
      void lines.push({ level, message, ...(properties ? { properties } : {}) });
    const logger: Logger = {
      debug: record("debug"),
      info: record("info"),
      warn: record("warn"),
      error: record("error"),
    };
    const { server } = await singleServer(new Tally(), new CommandRegistry(), logger);
    const stateChanges = lines.filter((line) => line.message === "solo: stateChange");
    assert.deepEqual(stateChanges.map((line) => line.properties?.to), ["candidate", "leader"]);
    assert.ok(lines.some((line) => line.message === "solo: termChange"));
    await server.stop();
  });
});
