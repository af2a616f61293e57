// The MIT 6.824 (2021/2022) Raft lab tests 2A-2D, ported to the simulator of real Servers
// with their pass criteria. Time is simulated, so the lab's sleeps cost nothing; the lab's limits (a leader
// within 5 s, at most 10 heartbeats per second, RPC and byte budgets) are kept. Two
// differences: our log starts with a configuration entry and each new leader appends a
// no-op, so indexes are checked for order rather than exact values; and a crash here also
// loses writes that were not yet durable (the lab's persister is synchronous).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SeededRandom } from "@tsraft/core/testing";
import { type NetworkFaults, Simulator } from "./simulator.ts";

const ELECTION_TIMEOUT_MS = 1000; // the lab's RaftElectionTimeout (a bound, not Raft's timer)
const UNRELIABLE: Partial<NetworkFaults> = { dropRate: 0.1, minDelayMs: 0, maxDelayMs: 27 };
const LONG_REORDERING: Partial<NetworkFaults> = { longDelayRate: 0.66, longDelayMs: 2200 };

class Lab {
  readonly sim: Simulator;
  readonly n: number;
  readonly random: SeededRandom;
  readonly connected: boolean[];

  constructor(
    n: number,
    options: { seed?: number; unreliable?: boolean; snapshotEvery?: number } = {},
  ) {
    const seed = options.seed ?? 1;
    this.n = n;
    this.random = new SeededRandom(seed * 7919);
    this.sim = new Simulator({
      seed,
      nodes: n,
      // The lab allows at most 10 heartbeats per second and a new leader within 5 s.
      electionTimeoutMs: 300,
      heartbeatIntervalMs: 100,
      snapshotThreshold: options.snapshotEvery ?? 0,
      trailingLogEntries: 2,
      network: options.unreliable ? UNRELIABLE : {},
    });
    this.sim.boot();
    this.connected = Array.from({ length: n }, () => true);
  }

  name(i: number): string {
    return this.sim.names[i]!;
  }

  async sleep(ms: number): Promise<void> {
    await this.sim.runFor(ms);
  }

  disconnect(i: number): void {
    this.connected[i] = false;
    this.sim.disconnect(this.name(i));
  }

  connect(i: number): void {
    this.connected[i] = true;
    // The network isolates a node both ways: reconnecting one leaves the others cut off.
    this.sim.connect(this.name(i));
  }

  crash(i: number): void {
    this.sim.crash(this.name(i));
  }

  restart(i: number): void {
    this.sim.restart(this.name(i));
  }

  start(i: number, command: string): { index: number; term: number } | undefined {
    return this.sim.start(this.name(i), command);
  }

  /** The lab's checkOneLeader: exactly one leader among connected servers, within 5 s. */
  async checkOneLeader(): Promise<number> {
    for (let iteration = 0; iteration < 10; iteration++) {
      await this.sleep(450 + this.random.int(100));
      const byTerm = new Map<number, number[]>();
      for (let i = 0; i < this.n; i++) {
        const info = this.sim.info(this.name(i));
        if (this.connected[i] && info.up && info.state === "leader") {
          byTerm.set(info.term, [...(byTerm.get(info.term) ?? []), i]);
        }
      }
      let last = -1;
      for (const [term, leaders] of byTerm) {
        assert.equal(leaders.length, 1, `term ${term} has ${leaders.length} (>1) leaders`);
        last = Math.max(last, term);
      }
      if (last >= 0) return byTerm.get(last)![0]!;
    }
    assert.fail("expected one leader, got none");
  }

  /** The lab's checkTerms: connected servers agree on the term. */
  checkTerms(): number {
    let term = -1;
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i]) continue;
      const t = this.sim.info(this.name(i)).term;
      if (term === -1) term = t;
      else assert.equal(t, term, "servers disagree on term");
    }
    return term;
  }

  checkNoLeader(): void {
    for (let i = 0; i < this.n; i++) {
      const info = this.sim.info(this.name(i));
      if (this.connected[i] && info.up) {
        assert.notEqual(info.state, "leader", `expected no leader, but ${i} claims to be leader`);
      }
    }
  }

  nCommitted(index: number): { count: number; content: string | undefined } {
    return this.sim.nCommitted(index);
  }

  /**
   * The lab's `one`: submit on whichever server is leader, wait until `expectedServers`
   * applied it; retry (with `retry`) for 10 s.
   */
  async one(command: string, expectedServers: number, retry: boolean): Promise<number> {
    const deadline = this.sim.nowMs + 10_000;
    let starts = 0;
    while (this.sim.nowMs < deadline) {
      let index = -1;
      for (let s = 0; s < this.n; s++) {
        starts = (starts + 1) % this.n;
        if (!this.connected[starts]) continue;
        const started = this.start(starts, command);
        if (started) {
          index = started.index;
          break;
        }
      }
      if (index !== -1) {
        const committed = await this.sim.runUntil(() => {
          const { count, content } = this.nCommitted(index);
          return count >= expectedServers && content === `test|${command}`;
        }, 2000);
        if (committed) return index;
        if (!retry) assert.fail(`one(${command}) failed to reach agreement`);
      } else await this.sleep(50);
    }
    assert.fail(`one(${command}) failed to reach agreement in 10 s`);
  }

  /** The lab's wait: until `n` servers committed `index` (or the term moved on). */
  async wait(index: number, n: number, startTerm: number): Promise<string | undefined> {
    let to = 10;
    for (let iteration = 0; iteration < 30; iteration++) {
      if (this.nCommitted(index).count >= n) break;
      await this.sleep(to);
      if (to < 1000) to *= 2;
      if (
        startTerm > -1 && this.sim.names.some((name) => this.sim.info(name).term > startTerm)
      ) {
        return undefined;
      }
    }
    const { count, content } = this.nCommitted(index);
    assert.ok(count >= n, `only ${count} decided for index ${index}; wanted ${n}`);
    return content;
  }

  /** Every test ends with the simulator's own checkers. */
  async finish(): Promise<void> {
    this.sim.checkSafety();
    assert.deepEqual(this.sim.violations, []);
    // End every process so that nothing of the test lingers.
    for (const name of this.sim.allNames) this.sim.crash(name);
    await this.sim.runFor(1);
  }

  randomCommand(): string {
    return String(this.random.int(1_000_000_000));
  }
}

describe("MIT 6.824 2A: leader election", () => {
  test("6.824 2A: initial election", async () => {
    const lab = new Lab(3);
    await lab.checkOneLeader();
    await lab.sleep(50);
    const term1 = lab.checkTerms();
    assert.ok(term1 >= 1, `term is ${term1}, but should be at least 1`);
    // Without failures the leader and term stay the same.
    await lab.sleep(2 * ELECTION_TIMEOUT_MS);
    assert.equal(lab.checkTerms(), term1, "term changed even though there were no failures");
    await lab.checkOneLeader();
    await lab.finish();
  });

  test("6.824 2A: election after network failure (re-election)", async () => {
    const lab = new Lab(3);
    const leader1 = await lab.checkOneLeader();
    lab.disconnect(leader1);
    await lab.checkOneLeader();
    // The old leader rejoining must not disturb the new one.
    lab.connect(leader1);
    const leader2 = await lab.checkOneLeader();
    // No quorum: no leader.
    lab.disconnect(leader2);
    lab.disconnect((leader2 + 1) % 3);
    await lab.sleep(2 * ELECTION_TIMEOUT_MS);
    lab.checkNoLeader();
    lab.connect((leader2 + 1) % 3);
    await lab.checkOneLeader();
    lab.connect(leader2);
    await lab.checkOneLeader();
    await lab.finish();
  });

  test("6.824 2A: multiple elections", async () => {
    const lab = new Lab(7, { seed: 3 });
    await lab.checkOneLeader();
    for (let iteration = 1; iteration < 10; iteration++) {
      const i1 = lab.random.int(7), i2 = lab.random.int(7), i3 = lab.random.int(7);
      lab.disconnect(i1);
      lab.disconnect(i2);
      lab.disconnect(i3);
      // Either the current leader is still alive or the remaining four elect one.
      await lab.checkOneLeader();
      lab.connect(i1);
      lab.connect(i2);
      lab.connect(i3);
    }
    await lab.checkOneLeader();
    await lab.finish();
  });
});

describe("MIT 6.824 2B: log replication", () => {
  test("6.824 2B: basic agreement", async () => {
    const lab = new Lab(3);
    let previous = 0;
    for (let index = 1; index <= 3; index++) {
      const { count } = lab.nCommitted(previous + 2);
      assert.equal(count, 0, "some have committed before Start()");
      const got = await lab.one(String(index * 100), 3, false);
      assert.ok(got > previous, `got index ${got}, wanted more than ${previous}`);
      previous = got;
    }
    await lab.finish();
  });

  test("6.824 2B: RPC byte count", async () => {
    const lab = new Lab(3);
    await lab.one("99", 3, false);
    const bytes0 = lab.sim.rpcBytes;
    let sent = 0;
    for (let index = 0; index < 10; index++) {
      const command = String(index).padEnd(5000, "x");
      await lab.one(command, 3, false);
      sent += command.length;
    }
    const got = lab.sim.rpcBytes - bytes0;
    const expected = 3 * sent;
    assert.ok(got <= expected + 50_000, `too many RPC bytes; got ${got}, expected ${expected}`);
    await lab.finish();
  });

  test("6.824 2B: agreement despite follower disconnection", async () => {
    const lab = new Lab(3);
    await lab.one("101", 3, false);
    const leader = await lab.checkOneLeader();
    lab.disconnect((leader + 1) % 3);
    await lab.one("102", 2, false);
    await lab.one("103", 2, false);
    await lab.sleep(ELECTION_TIMEOUT_MS);
    await lab.one("104", 2, false);
    await lab.one("105", 2, false);
    lab.connect((leader + 1) % 3);
    await lab.one("106", 3, true);
    await lab.sleep(ELECTION_TIMEOUT_MS);
    await lab.one("107", 3, true);
    await lab.finish();
  });

  test("6.824 2B: no agreement without a majority", async () => {
    const lab = new Lab(5);
    await lab.one("10", 5, false);
    const leader = await lab.checkOneLeader();
    for (const offset of [1, 2, 3]) lab.disconnect((leader + offset) % 5);
    const started = lab.start(leader, "20");
    assert.ok(started, "leader rejected Start()");
    await lab.sleep(2 * ELECTION_TIMEOUT_MS);
    assert.equal(lab.nCommitted(started.index).count, 0, "committed without a majority");
    for (const offset of [1, 2, 3]) lab.connect((leader + offset) % 5);
    // The disconnected majority may have chosen a leader of its own.
    const leader2 = await lab.checkOneLeader();
    const again = lab.start(leader2, "30");
    assert.ok(again, "leader2 rejected Start()");
    await lab.one("1000", 5, true);
    await lab.finish();
  });

  test("6.824 2B: concurrent Start()s", async () => {
    const lab = new Lab(3);
    let success = false;
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await lab.sleep(3000);
      const leader = await lab.checkOneLeader();
      const first = lab.start(leader, "1");
      if (!first) continue;
      const indexes: number[] = [];
      let lost = false;
      for (let i = 0; i < 5; i++) {
        const started = lab.start(leader, String(100 + i));
        if (!started || started.term !== first.term) lost = true;
        else indexes.push(started.index);
      }
      if (lost) continue;
      for (let j = 0; j < lab.n; j++) {
        if (lab.sim.info(lab.name(j)).term !== first.term) lost = true;
      }
      if (lost) continue;
      const commands = new Set<string>();
      for (const index of indexes) {
        const content = await lab.wait(index, lab.n, first.term);
        if (content === undefined) {
          lost = true;
          break;
        }
        commands.add(content);
      }
      if (lost) continue;
      for (let i = 0; i < 5; i++) assert.ok(commands.has(`test|${100 + i}`), `missing ${100 + i}`);
      success = true;
    }
    assert.ok(success, "term changed too often");
    await lab.finish();
  });

  test("6.824 2B: rejoin of partitioned leader", async () => {
    const lab = new Lab(3);
    await lab.one("101", 3, true);
    const leader1 = await lab.checkOneLeader();
    lab.disconnect(leader1);
    // The old leader accepts entries it can never commit.
    lab.start(leader1, "102");
    lab.start(leader1, "103");
    lab.start(leader1, "104");
    await lab.one("103", 2, true);
    const leader2 = await lab.checkOneLeader();
    lab.disconnect(leader2);
    lab.connect(leader1);
    await lab.one("104", 2, true);
    lab.connect(leader2);
    await lab.one("105", 3, true);
    await lab.finish();
  });

  test("6.824 2B: leader backs up quickly over incorrect follower logs", async () => {
    const lab = new Lab(5, { seed: 2 });
    await lab.one(lab.randomCommand(), 5, true);
    const leader1 = await lab.checkOneLeader();
    for (const offset of [2, 3, 4]) lab.disconnect((leader1 + offset) % 5);
    // Lots of commands that will not commit.
    for (let i = 0; i < 50; i++) lab.start(leader1, lab.randomCommand());
    await lab.sleep(ELECTION_TIMEOUT_MS / 2);
    lab.disconnect(leader1);
    lab.disconnect((leader1 + 1) % 5);
    for (const offset of [2, 3, 4]) lab.connect((leader1 + offset) % 5);
    // Lots of successful commands to the new group.
    for (let i = 0; i < 50; i++) await lab.one(lab.randomCommand(), 3, true);
    const leader2 = await lab.checkOneLeader();
    let other = (leader1 + 2) % 5;
    if (leader2 === other) other = (leader2 + 1) % 5;
    lab.disconnect(other);
    // Lots more commands that will not commit.
    for (let i = 0; i < 50; i++) lab.start(leader2, lab.randomCommand());
    await lab.sleep(ELECTION_TIMEOUT_MS / 2);
    // Bring the original leader back, with its stale log.
    for (let i = 0; i < 5; i++) lab.disconnect(i);
    lab.connect(leader1);
    lab.connect((leader1 + 1) % 5);
    lab.connect(other);
    for (let i = 0; i < 50; i++) await lab.one(lab.randomCommand(), 3, true);
    for (let i = 0; i < 5; i++) lab.connect(i);
    await lab.one(lab.randomCommand(), 5, true);
    await lab.finish();
  });

  test("6.824 2B: RPC counts are not too high", async () => {
    const lab = new Lab(3);
    const leader = await lab.checkOneLeader();
    const total1 = lab.sim.rpcCount();
    assert.ok(
      total1 <= 30 && total1 >= 1,
      `too many or few RPCs (${total1}) to elect initial leader`,
    );
    let success = false;
    let total2 = 0;
    for (let attempt = 0; attempt < 5 && !success; attempt++) {
      if (attempt > 0) await lab.sleep(3000);
      const current = await lab.checkOneLeader();
      total1;
      const before = lab.sim.rpcCount();
      const first = lab.start(current, "1");
      if (!first) continue;
      const iters = 10;
      const commands: { index: number; command: string }[] = [];
      let lost = false;
      for (let i = 1; i < iters + 2; i++) {
        const command = lab.randomCommand();
        const started = lab.start(current, command);
        if (!started || started.term !== first.term) {
          lost = true;
          break;
        }
        commands.push({ index: started.index, command });
      }
      if (lost) continue;
      for (const { index, command } of commands) {
        const content = await lab.wait(index, lab.n, first.term);
        if (content === undefined) {
          lost = true;
          break;
        }
        assert.equal(content, `test|${command}`);
      }
      if (lost) continue;
      total2 = lab.sim.rpcCount();
      assert.ok(
        total2 - before <= (iters + 1 + 3) * 3,
        `too many RPCs (${total2 - before}) for ${iters} entries`,
      );
      success = true;
    }
    assert.ok(success, "term changed too often");
    assert.ok(leader >= 0);
    await lab.sleep(ELECTION_TIMEOUT_MS);
    const total3 = lab.sim.rpcCount();
    assert.ok(
      total3 - total2 <= 3 * 20,
      `too many RPCs (${total3 - total2}) for 1 second of idleness`,
    );
    await lab.finish();
  });
});

describe("MIT 6.824 2C: persistence", () => {
  test("6.824 2C: basic persistence", async () => {
    const lab = new Lab(3);
    await lab.one("11", 3, true);
    for (let i = 0; i < 3; i++) lab.crash(i);
    for (let i = 0; i < 3; i++) lab.restart(i);
    await lab.one("12", 3, true);
    const leader1 = await lab.checkOneLeader();
    lab.crash(leader1);
    lab.restart(leader1);
    await lab.one("13", 3, true);
    const leader2 = await lab.checkOneLeader();
    lab.disconnect(leader2);
    await lab.one("14", 2, true);
    lab.crash(leader2);
    lab.restart(leader2);
    lab.connect(leader2);
    const last = await lab.one("14b", 3, true);
    const i3 = (await lab.checkOneLeader() + 1) % 3;
    lab.disconnect(i3);
    await lab.one("15", 2, true);
    lab.crash(i3);
    lab.restart(i3);
    lab.connect(i3);
    await lab.one("16", 3, true);
    assert.ok(last > 0);
    await lab.finish();
  });

  test("6.824 2C: more persistence", async () => {
    const lab = new Lab(5);
    let index = 1;
    for (let iteration = 0; iteration < 5; iteration++) {
      await lab.one(String(10 + index++), 5, true);
      const leader1 = await lab.checkOneLeader();
      lab.disconnect((leader1 + 1) % 5);
      lab.disconnect((leader1 + 2) % 5);
      await lab.one(String(10 + index++), 3, true);
      for (const offset of [0, 3, 4]) lab.disconnect((leader1 + offset) % 5);
      for (const offset of [1, 2]) {
        lab.crash((leader1 + offset) % 5);
        lab.restart((leader1 + offset) % 5);
        lab.connect((leader1 + offset) % 5);
      }
      await lab.sleep(ELECTION_TIMEOUT_MS);
      lab.crash((leader1 + 3) % 5);
      lab.restart((leader1 + 3) % 5);
      lab.connect((leader1 + 3) % 5);
      await lab.one(String(10 + index++), 3, true);
      lab.connect((leader1 + 4) % 5);
      lab.connect(leader1);
    }
    await lab.one("1000", 5, true);
    await lab.finish();
  });

  test("6.824 2C: partitioned leader and one follower crash, leader restarts", async () => {
    const lab = new Lab(3);
    await lab.one("101", 3, true);
    const leader = await lab.checkOneLeader();
    lab.disconnect((leader + 2) % 3);
    await lab.one("102", 2, true);
    lab.crash(leader % 3);
    lab.crash((leader + 1) % 3);
    lab.connect((leader + 2) % 3);
    lab.restart(leader % 3);
    await lab.one("103", 2, true);
    lab.restart((leader + 1) % 3);
    await lab.one("104", 3, true);
    await lab.finish();
  });

  test("6.824 2C: Figure 8", async () => {
    const lab = new Lab(5, { seed: 8 });
    await lab.one(lab.randomCommand(), 1, true);
    let nup = 5;
    for (let iteration = 0; iteration < 1000; iteration++) {
      let leader = -1;
      for (let i = 0; i < 5; i++) {
        if (lab.sim.isUp(lab.name(i)) && lab.start(i, lab.randomCommand())) leader = i;
      }
      if (lab.random.int(1000) < 100) await lab.sleep(lab.random.int(ELECTION_TIMEOUT_MS / 2));
      else await lab.sleep(lab.random.int(13));
      if (leader !== -1) {
        lab.crash(leader);
        nup--;
      }
      if (nup < 3) {
        const s = lab.random.int(5);
        if (!lab.sim.isUp(lab.name(s))) {
          lab.restart(s);
          nup++;
        }
      }
    }
    for (let i = 0; i < 5; i++) lab.restart(i);
    await lab.one(lab.randomCommand(), 5, true);
    await lab.finish();
  });

  test("6.824 2C: unreliable agreement", async () => {
    const lab = new Lab(5, { unreliable: true });
    for (let iteration = 1; iteration < 50; iteration++) {
      for (let j = 0; j < 4; j++) {
        // The lab's concurrent one() calls: started on the leader without waiting.
        const leader = lab.sim.leaders()[0];
        if (leader !== undefined) lab.sim.start(leader, `${100 * iteration + j}`);
      }
      await lab.one(String(iteration), 1, true);
    }
    lab.sim.setNetwork({ dropRate: 0, maxDelayMs: 5 });
    await lab.one("100", 5, true);
    await lab.finish();
  });

  test("6.824 2C: Figure 8 (unreliable)", async () => {
    const lab = new Lab(5, { seed: 9, unreliable: true });
    await lab.one(String(lab.random.int(10_000)), 1, true);
    let nup = 5;
    for (let iteration = 0; iteration < 1000; iteration++) {
      if (iteration === 200) lab.sim.setNetwork(LONG_REORDERING);
      let leader = -1;
      for (let i = 0; i < 5; i++) {
        if (lab.connected[i] && lab.start(i, String(lab.random.int(10_000)))) leader = i;
      }
      if (lab.random.int(1000) < 100) await lab.sleep(lab.random.int(ELECTION_TIMEOUT_MS / 2));
      else await lab.sleep(lab.random.int(13));
      if (leader !== -1 && lab.random.int(1000) < ELECTION_TIMEOUT_MS / 2) {
        lab.disconnect(leader);
        nup--;
      }
      if (nup < 3) {
        const s = lab.random.int(5);
        if (!lab.connected[s]) {
          lab.connect(s);
          nup++;
        }
      }
    }
    for (let i = 0; i < 5; i++) lab.connect(i);
    lab.sim.setNetwork({ dropRate: 0, longDelayRate: 0, maxDelayMs: 5 });
    await lab.one(String(lab.random.int(10_000)), 5, true);
    await lab.finish();
  });

  for (const unreliable of [false, true]) {
    test(`6.824 2C: ${unreliable ? "unreliable churn" : "churn"}`, async () => {
      const lab = new Lab(5, { seed: unreliable ? 12 : 11, unreliable });
      const started: { index: number; command: string }[] = [];
      const end = lab.sim.nowMs + 5000;
      while (lab.sim.nowMs < end) {
        // Clients: Start() on every server, again and again; non-leaders refuse.
        for (let round = 0; round < 7; round++) {
          for (let i = 0; i < 5; i++) {
            const command = lab.randomCommand();
            const proposal = lab.start(i, command);
            if (proposal) started.push({ index: proposal.index, command });
          }
          await lab.sleep(ELECTION_TIMEOUT_MS / 100);
        }
        if (lab.random.int(1000) < 200) lab.disconnect(lab.random.int(5));
        if (lab.random.int(1000) < 500) {
          const s = lab.random.int(5);
          lab.restart(s);
          lab.connect(s);
        }
        if (lab.random.int(1000) < 200) lab.crash(lab.random.int(5));
      }
      await lab.sleep(ELECTION_TIMEOUT_MS);
      lab.sim.setNetwork({ dropRate: 0, maxDelayMs: 5 });
      for (let i = 0; i < 5; i++) {
        lab.restart(i);
        lab.connect(i);
      }
      const last = await lab.one(lab.randomCommand(), 5, true);
      // Every command that committed is applied by every server, identically.
      let committed = 0;
      for (const { index, command } of started) {
        if (index > last) continue;
        const { count, content } = lab.nCommitted(index);
        assert.equal(count, 5, `index ${index} applied by ${count} servers`);
        if (content === `test|${command}`) committed++;
      }
      assert.ok(committed > 0, "nothing committed during churn");
      await lab.finish();
    });
  }
});

describe("MIT 6.824 2D: log compaction", () => {
  const SNAPSHOT_INTERVAL = 10;
  async function snapshotCommon(
    options: { disconnect: boolean; reliable: boolean; crash: boolean; seed: number },
  ): Promise<void> {
    const lab = new Lab(3, {
      seed: options.seed,
      unreliable: !options.reliable,
      snapshotEvery: SNAPSHOT_INTERVAL,
    });
    await lab.one(lab.randomCommand(), 3, true);
    let leader1 = await lab.checkOneLeader();
    for (let i = 0; i < 30; i++) {
      let victim = (leader1 + 1) % 3;
      let sender = leader1;
      if (i % 3 === 1) {
        sender = (leader1 + 1) % 3;
        victim = leader1;
      }
      if (options.disconnect) {
        lab.disconnect(victim);
        await lab.one(lab.randomCommand(), 2, true);
      }
      if (options.crash) {
        lab.crash(victim);
        await lab.one(lab.randomCommand(), 2, true);
      }
      // Perhaps send enough to get a snapshot.
      const count = SNAPSHOT_INTERVAL / 2 + lab.random.int(SNAPSHOT_INTERVAL);
      for (let j = 0; j < count; j++) lab.start(sender, lab.randomCommand());
      // Let the appliers catch up with the Start()s.
      await lab.one(lab.randomCommand(), 2, true);
      for (const name of lab.sim.names) {
        const info = lab.sim.info(name);
        // The lab's MAXLOGSIZE: the log stays bounded by snapshots.
        assert.ok(info.lastIndex - info.snapshotIndex <= 60, `${name}'s log is too large`);
      }
      if (options.disconnect) {
        lab.connect(victim);
        await lab.one(lab.randomCommand(), 3, true);
        leader1 = await lab.checkOneLeader();
      }
      if (options.crash) {
        lab.restart(victim);
        lab.connect(victim);
        await lab.one(lab.randomCommand(), 3, true);
        leader1 = await lab.checkOneLeader();
      }
    }
    if (options.disconnect || options.crash) {
      assert.ok(lab.sim.stats.snapshotsInstalled > 0, "no snapshot was installed");
    }
    await lab.finish();
  }

  test("6.824 2D: snapshots basic", async () => {
    await snapshotCommon({ disconnect: false, reliable: true, crash: false, seed: 21 });
  });
  test("6.824 2D: install snapshots (disconnect)", async () => {
    await snapshotCommon({ disconnect: true, reliable: true, crash: false, seed: 22 });
  });
  test("6.824 2D: install snapshots (disconnect+unreliable)", async () => {
    await snapshotCommon({ disconnect: true, reliable: false, crash: false, seed: 23 });
  });
  test("6.824 2D: install snapshots (crash)", async () => {
    await snapshotCommon({ disconnect: false, reliable: true, crash: true, seed: 24 });
  });
  test("6.824 2D: install snapshots (unreliable+crash)", async () => {
    await snapshotCommon({ disconnect: false, reliable: false, crash: true, seed: 25 });
  });
});
