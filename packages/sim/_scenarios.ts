/**
 * Targeted nemeses. A random nemesis rarely opens the narrow windows that classic Raft bugs
 * need (a leader re-elected with old-term entries, a membership change in the first moments of
 * a term, a voter restarted while a lease it promised is live), so some seeds run one of these
 * instead: a fault sequence aimed at such a window, made only of the simulator's faults
 * (partitions, cuts, crash-restarts) and calls of the public API, reacting to the servers'
 * events the way Jepsen's targeted nemeses react to the system. They assert nothing: the
 * simulator's general checkers judge the run, so a correct Server passes them.
 * @module
 */
import type { RaftEvent, Server } from "@tsraft/core";
import type { SeededRandom } from "@tsraft/core/testing";
import type { Simulator } from "./simulator.ts";

/** The targeted nemeses a seed may run. */
export const SCENARIOS = [
  "stale-leader",
  "membership-race",
  "voter-restart",
  "late-timeout-now",
] as const;

/** One of {@link SCENARIOS}. */
export type ScenarioName = typeof SCENARIOS[number];

/** What a scenario may do, given by the simulation run. */
export interface ScenarioContext {
  /** The simulator. */
  sim: Simulator;
  /** The scenario's randomness (derived from the seed). */
  random: SeededRandom;
  /** The cluster's base election timeout. */
  electionTimeoutMs: number;
  /** A key the clients use. */
  key: string;
  /** Whether the fault phase goes on; a scenario stops when it ends. */
  active(): boolean;
  /** A client write through `target`'s `do()`, recorded in the history. */
  write(target: string, key: string, value: string): Promise<void>;
  /** Stops (`true`) or resumes the random clients' new operations. */
  pauseClients(paused: boolean): void;
  /** A client lease read (`readIndex({ lease: true })`) on `target`, recorded in the history. */
  leaseRead(target: string, key: string): Promise<void>;
  /** `leader.addPeer(name)`, tracked like the random nemesis's; resolves whether it succeeded. */
  addPeer(leader: Server, name: string): Promise<boolean>;
  /** `leader.removePeer(name)`, tracked like the random nemesis's; resolves whether it succeeded. */
  removePeer(leader: Server, name: string): Promise<boolean>;
}

/**
 * Runs the named scenario over and over, with a pause between rounds, until the fault phase
 * ends.
 * @param name the scenario
 * @param ctx what it may do
 */
export async function runScenario(name: ScenarioName, ctx: ScenarioContext): Promise<void> {
  const round = ROUNDS[name];
  let rounds = 0;
  try {
    while (ctx.active() && rounds < 4) {
      rounds++;
      ctx.sim.trace(`scenario ${name}: round ${rounds}`);
      await round(ctx);
      await sleep(ctx, ctx.electionTimeoutMs * (1 + ctx.random.int(3)));
    }
  } catch (error) {
    if (!(error instanceof ScenarioOver)) throw error;
  }
}

const ROUNDS: Record<ScenarioName, (ctx: ScenarioContext) => Promise<void>> = {
  "stale-leader": staleLeader,
  "membership-race": membershipRace,
  "voter-restart": voterRestart,
  "late-timeout-now": lateTimeoutNow,
};

/**
 * Raft's Figure 8. A leader L takes writes while cut off, so they reach nobody; the others
 * elect L2, which is cut off the moment it wins, so its own first entry also stays local. L
 * comes back and wins again (its log is the longest of the last term), and the moment it
 * commits anything it is cut off, and L2 comes back. A leader that committed L's old-term
 * entries by counting replicas (without an entry of its own term above them) has now
 * committed entries that L2, whose last term is newer, wins and overwrites.
 * Runs with one entry per AppendEntries, so an old entry can be acknowledged before the new
 * leader's own.
 */
async function staleLeader(ctx: ScenarioContext): Promise<void> {
  const { sim } = ctx;
  const first = await settledLeader(ctx);
  if (first === undefined) return;
  const leader = sim.server(first);
  const others = leader.members.map((m) => m.name).filter((n) => n !== first);
  sim.partition([everyoneBut(sim, [first]), [first]]);
  const writes = 1 + ctx.random.int(3);
  for (let i = 0; i < writes; i++) void ctx.write(first, ctx.key, `stale.${sim.nowMs}.${i}`);

  // The others elect a leader; it is cut off before its first AppendEntries leaves.
  let second: string | undefined;
  const wins = onceLeader(ctx, others, (name) => {
    second = name;
    sim.partition([everyoneBut(sim, [first, name]), [first], [name]]);
  });
  const elected = await until(ctx, () => second !== undefined, ctx.electionTimeoutMs * 20);
  wins.cancel();
  if (!elected || !stillUp(sim, first, leader)) return;

  // L rejoins a quorum of the others and, the moment it commits, is cut off again as L2
  // comes back.
  let cut = false;
  const onCommit = () => {
    leader.removeEventListener("commit", onCommit);
    if (cut || !ctx.active()) return;
    cut = true;
    sim.partition([everyoneBut(sim, [first]), [first]]);
  };
  const back = onceLeader(ctx, [first], () => leader.addEventListener("commit", onCommit));
  // With just a quorum, L's log (the longest of the last term) makes it the only electable one.
  const quorum = Math.floor((others.length + 1) / 2) + 1;
  const group = [first, ...shuffle(ctx.random, others.filter((n) => n !== second))]
    .slice(0, quorum);
  sim.partition([everyoneBut(sim, [...group, second!]), group, [second!]]);
  await until(ctx, () => cut, ctx.electionTimeoutMs * 20);
  back.cancel();
  leader.removeEventListener("commit", onCommit);
  // Time for L2 to win and commit over what L committed.
  await sleep(ctx, ctx.electionTimeoutMs * 8);
}

/**
 * Issue 11.1 (Ongaro, raft-dev 2015): with four voters, leader L appends the entry adding J
 * and is cut off with J at once; the other three elect L2, which is left with only one of
 * them and at once removes L; then L, J and the third elect L again. A leader that accepted a
 * configuration change before committing an entry of its own term let L2 commit under
 * {L2, X, Y} what L, under {L, L2, X, Y, J}, overwrites.
 */
async function membershipRace(ctx: ScenarioContext): Promise<void> {
  const { sim } = ctx;
  const first = await settledLeader(ctx);
  if (first === undefined) return;
  const leader = sim.server(first);
  // Four voters: add one to three, remove one of five.
  if (leader.memberCount === 3) {
    if (!await ctx.addPeer(leader, sim.spawnJoiner())) return;
  } else if (leader.memberCount === 5) {
    const victim = pick(ctx.random, leader.members.map((m) => m.name).filter((n) => n !== first));
    if (!await ctx.removePeer(leader, victim)) return;
  }
  if (!ctx.active()) throw new ScenarioOver();
  if (leader.memberCount !== 4 || !stillLeader(sim, first, leader)) return;
  const others = leader.members.map((m) => m.name).filter((n) => n !== first);

  const joiner = sim.spawnJoiner();
  let appended = false;
  const onAdd = (event: RaftEvent<"addPeer">) => {
    if (appended || !ctx.active() || event.value.name !== joiner) return;
    appended = true;
    sim.partition([everyoneBut(sim, [first, joiner]), [first, joiner]]);
  };
  leader.addEventListener("addPeer", onAdd);
  void ctx.addPeer(leader, joiner);
  const added = await until(ctx, () => appended, ctx.electionTimeoutMs * 30);
  leader.removeEventListener("addPeer", onAdd);
  if (!added) return;

  // The other three elect L2, which keeps one of them and at once removes L.
  let second: string | undefined;
  let third: string | undefined;
  const wins = onceLeader(ctx, others, (name) => {
    second = name;
    const rest = others.filter((n) => n !== name);
    const kept = pick(ctx.random, rest);
    third = rest.find((n) => n !== kept);
    sim.partition([everyoneBut(sim, [first, joiner, third!]), [first, joiner], [third!]]);
    sim.after(0, () => {
      if (ctx.active() && sim.isUp(name)) void ctx.removePeer(sim.server(name), first);
    });
  });
  const elected = await until(ctx, () => second !== undefined, ctx.electionTimeoutMs * 20);
  wins.cancel();
  if (!elected) return;
  await sleep(ctx, ctx.electionTimeoutMs * 4);
  // L2 goes away; L, J and the third elect L, which commits J's entry.
  sim.partition([everyoneBut(sim, [first, joiner, third!]), [first, joiner, third!]]);
  await sleep(ctx, ctx.electionTimeoutMs * 10);
}

/**
 * Issue 11.4: with the clients paused, a candidate C is cut off from leader L, so it will
 * campaign an election timeout later. Before then L is cut off and enough voters crash and
 * restart at once for C to reach a quorum; while L's lease (promised by those voters' last
 * acknowledgements) is live, C campaigns, wins and commits a write, and L serves lease reads.
 * A voter that forgot its promise on restart lets L read stale data.
 */
async function voterRestart(ctx: ScenarioContext): Promise<void> {
  const { sim } = ctx;
  const first = await settledLeader(ctx);
  if (first === undefined) return;
  const leader = sim.server(first);
  const members = leader.members.map((m) => m.name);
  const others = members.filter((n) => n !== first && sim.isUp(n));
  if (others.length < 2) return;
  const candidate = pick(ctx.random, others);
  const voters = shuffle(ctx.random, others.filter((n) => n !== candidate))
    .slice(0, Math.floor(members.length / 2));
  // No writes from here on: C must stay as up to date as the voters to be electable.
  ctx.pauseClients(true);
  try {
    await sleep(ctx, ctx.electionTimeoutMs);
    sim.cutOneWay(first, candidate);
    sim.cutOneWay(candidate, first);
    // C campaigns an election timeout or more after it last heard from L; L is cut off
    // before, so that its lease outlasts C's first campaign.
    await sleep(ctx, Math.floor(ctx.electionTimeoutMs * (0.3 + 0.6 * ctx.random.next())));
    if (!stillLeader(sim, first, leader)) return;
    await restartVotersWithinLease(ctx, first, leader, candidate, voters);
  } finally {
    ctx.pauseClients(false);
  }
}

async function restartVotersWithinLease(
  ctx: ScenarioContext,
  first: string,
  leader: Server,
  candidate: string,
  voters: string[],
): Promise<void> {
  const { sim } = ctx;
  sim.partition([everyoneBut(sim, [first]), [first]]);
  for (const voter of voters) {
    if (!sim.isAlive(voter)) continue;
    sim.crash(voter, { keepWrites: sim.disk(voter).pendingWrites });
    sim.restart(voter);
  }
  const wins = onceLeader(ctx, [candidate], (name) => {
    sim.after(0, () => {
      if (ctx.active()) void ctx.write(name, ctx.key, `lease.${sim.nowMs}`);
    });
  });
  const endMs = sim.nowMs + ctx.electionTimeoutMs * 2;
  while (ctx.active() && sim.nowMs < endMs) {
    if (stillLeader(sim, first, leader)) void ctx.leaseRead(first, ctx.key);
    await sleep(ctx, 2 + ctx.random.int(4));
  }
  wins.cancel();
}

/**
 * Issue 11.3: with the clients paused, leader L transfers leadership to T, but its TimeoutNow
 * messages are lost until shortly before the transfer's deadline (an election timeout, when
 * the leader forgets it); from then on they are held
 * back (less than an election timeout, the assumed longest message delay), so one arrives
 * after the deadline, when L serves lease reads again, and T's messages to L are cut from that
 * moment. T campaigns with votes that bypass the voters' lease, wins and writes while L reads.
 * A leader that re-sends TimeoutNow and resumes lease reads at the deadline reads stale data.
 */
async function lateTimeoutNow(ctx: ScenarioContext): Promise<void> {
  const { sim } = ctx;
  const electionMs = ctx.electionTimeoutMs;
  const first = await settledLeader(ctx);
  if (first === undefined) return;
  const leader = sim.server(first);
  const others = leader.members.map((m) => m.name).filter((n) => n !== first && sim.isUp(n));
  if (others.length === 0) return;
  const target = pick(ctx.random, others);
  ctx.pauseClients(true);
  try {
    await sleep(ctx, electionMs); // T holds every entry: the transfer may start at once
    if (!stillLeader(sim, first, leader)) return;
    // The leader forgets a transfer after an election timeout (Consensus.transferLeadership).
    const releaseMs = sim.nowMs + electionMs - Math.floor(electionMs / 4);
    const holdMs = Math.floor(electionMs / 3 + ctx.random.int(Math.floor(electionMs / 2)));
    let released = false;
    sim.filterSends((from, kind, to) => {
      if (from !== first || to !== target || kind !== "TimeoutNow") return undefined;
      if (sim.nowMs < releaseMs) return "drop";
      if (!released) {
        released = true;
        sim.after(holdMs, () => sim.cutOneWay(target, first));
      }
      return holdMs;
    });
    sim.trace(`${first}.transferLeadership(${target}) with TimeoutNow held until late`);
    leader.transferLeadership(target).catch((error) =>
      sim.trace(`${first}.transferLeadership failed: ${error}`)
    );
    const wins = onceLeader(ctx, [target], (name) => {
      sim.after(0, () => {
        if (ctx.active()) void ctx.write(name, ctx.key, `late.${sim.nowMs}`);
      });
    });
    const endMs = releaseMs + 3 * electionMs;
    while (sim.nowMs < endMs) {
      if (stillLeader(sim, first, leader)) void ctx.leaseRead(first, ctx.key);
      await sleep(ctx, 2 + ctx.random.int(4));
    }
    wins.cancel();
  } finally {
    sim.filterSends(undefined);
    ctx.pauseClients(false);
  }
}

// ---------------------------------------------------------------- helpers

/** Heals everything, brings every node back and waits for a leader that keeps leading. */
async function settledLeader(ctx: ScenarioContext): Promise<string | undefined> {
  const { sim } = ctx;
  sim.heal();
  for (const name of sim.allNames) {
    if (!sim.isAlive(name)) sim.restart(name);
    else if (!sim.isUp(name)) sim.startInPlace(name);
  }
  for (let attempt = 0; attempt < 5 && ctx.active(); attempt++) {
    if (!await until(ctx, () => leaderOf(sim) !== undefined, ctx.electionTimeoutMs * 20)) {
      return undefined;
    }
    const name = leaderOf(sim)!;
    const server = sim.server(name);
    await sleep(ctx, ctx.electionTimeoutMs);
    if (stillLeader(sim, name, server)) return name;
  }
  return undefined;
}

/** The running leader of the highest term. */
function leaderOf(sim: Simulator): string | undefined {
  let best: string | undefined;
  for (const name of sim.leaders()) {
    if (best === undefined || sim.server(name).term > sim.server(best).term) best = name;
  }
  return best;
}

function stillUp(sim: Simulator, name: string, server: Server): boolean {
  return sim.isUp(name) && sim.server(name) === server;
}

function stillLeader(sim: Simulator, name: string, server: Server): boolean {
  return stillUp(sim, name, server) && server.state === "leader";
}

/**
 * Calls `won(name)` inside the event that makes one of `names` leader (before the new
 * leader's first messages leave), once.
 */
function onceLeader(
  ctx: ScenarioContext,
  names: string[],
  won: (name: string) => void,
): { cancel(): void } {
  const { sim } = ctx;
  let fired = false;
  const offs: (() => void)[] = [];
  const cancel = () => {
    for (const off of offs.splice(0)) off();
  };
  for (const name of names) {
    if (!sim.isUp(name)) continue;
    const server = sim.server(name);
    const onState = (event: RaftEvent<"stateChange">) => {
      if (fired || !ctx.active() || event.value !== "leader") return;
      fired = true;
      cancel();
      won(name);
    };
    server.addEventListener("stateChange", onState);
    offs.push(() => server.removeEventListener("stateChange", onState));
  }
  return { cancel };
}

function everyoneBut(sim: Simulator, excluded: string[]): string[] {
  return sim.allNames.filter((name) => !excluded.includes(name));
}

/** Thrown out of a scenario's waits once the fault phase is over. */
class ScenarioOver extends Error {}

/**
 * Waits `ms` of simulated time; throws {@link ScenarioOver} when the fault phase ended
 * meanwhile, so that no scenario step runs during the liveness phase.
 */
function sleep(ctx: ScenarioContext, ms: number): Promise<void> {
  return new Promise((resolve, reject) =>
    ctx.sim.after(ms, () => ctx.active() ? resolve() : reject(new ScenarioOver()))
  );
}

/** Waits, in 1 ms steps of simulated time, until `done()` holds or `maxMs` passes. */
async function until(ctx: ScenarioContext, done: () => boolean, maxMs: number): Promise<boolean> {
  const endMs = ctx.sim.nowMs + maxMs;
  while (ctx.sim.nowMs < endMs) {
    if (done()) return true;
    await sleep(ctx, 1);
  }
  return done();
}

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[random.int(items.length)]!;
}

function shuffle<T>(random: SeededRandom, items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
