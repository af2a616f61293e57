/**
 * Raft consensus for TypeScript, on Deno, Bun and Node: the runtime-agnostic core of tsraft.
 *
 * {@link createServer} makes a {@link Server}: give it a name, its peers, a `Transporter`
 * (`@tsraft/transport-tcp`, `@tsraft/transport-http`), a `Storage` (`@tsraft/storage-file`,
 * `@tsraft/storage-kv`) and your {@link StateMachine}. `server.do(command)` on the leader
 * resolves with the command's `apply` result once a majority has it durably and it has been
 * applied; every server applies the same commands in the same order, exactly once.
 * `server.readIndex()` makes a following read of local state linearizable. A follower's
 * `do()` rejects with {@link NotLeaderError} naming the leader.
 *
 * Inside, {@link Consensus} is the whole protocol as a pure, synchronous state machine
 * (no I/O, timers or randomness of its own) and `Server` is the async shell, a façade
 * (options, lifecycle, client API) over the ready loop (every {@link ServerInput} reaches
 * the core through one `step`, which then persists, sends, applies and re-arms the timer;
 * `onStep` observes it; the loop also restores the core from storage at startup), the applier (apply chain,
 * waiters, snapshot policy), snapshot transfer and learner catch-up before a join (woken by
 * the core's `Ready.progressChanged`, not a timer). Memory storage and transport, a manual
 * clock and the adapters' conformance suites are in `@tsraft/core/testing`.
 *
 * @example A 3-node cluster in one process: one write, one linearizable read
 * ```ts
 * import {
 *   type ApplyContext,
 *   createServer,
 *   defineCommand,
 *   NotLeaderError,
 *   registerCommand,
 *   type Server,
 * } from "@tsraft/core";
 * import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
 *
 * // Each server's own state. save() and recovery() are its snapshot format.
 * class Counter {
 *   value = 0;
 *   save(): Uint8Array {
 *     return new TextEncoder().encode(String(this.value));
 *   }
 *   recovery(data: Uint8Array): void {
 *     this.value = Number(new TextDecoder().decode(data));
 *   }
 * }
 *
 * // A command is written to the log (as JSON) and applied, in log order, on every server.
 * const Add = defineCommand({
 *   name: "counter:add",
 *   parse: (value) => value as { amount: number },
 *   apply: ({ amount }: { amount: number }, { stateMachine }: ApplyContext<Counter>) =>
 *     stateMachine.value += amount,
 * });
 * registerCommand(Add);
 *
 * const network = new MemoryNetwork(); // or TcpTransporter, HttpTransporter
 * const names = ["a", "b", "c"];
 * const servers: Server<Counter>[] = names.map((name) =>
 *   createServer({
 *     name,
 *     connectionString: `memory://${name}`,
 *     peers: names.filter((peer) => peer !== name)
 *       .map((peer) => ({ name: peer, connectionString: `memory://${peer}` })),
 *     transporter: network.transporter(),
 *     storage: new MemoryStorage(), // or FileStorage, KvStorage
 *     stateMachine: new Counter(),
 *   })
 * );
 * for (const server of servers) network.register(server);
 * await Promise.all(servers.map((server) => server.start()));
 *
 * // Runs `action` on the leader. A leader that loses its role before a proposal commits
 * // rejects with NotLeaderError, and the proposal is then certainly not applied: retry
 * // once the leadership changes (listening first, so a change while we look is not missed).
 * async function onLeader<T>(action: (leader: Server<Counter>) => Promise<T>): Promise<T> {
 *   for (;;) {
 *     let onChange = () => {};
 *     const changed = new Promise<void>((resolve) => onChange = resolve);
 *     for (const server of servers) server.addEventListener("leaderChange", onChange);
 *     try {
 *       const leader = servers.find((server) => server.state === "leader");
 *       if (leader !== undefined) {
 *         try {
 *           return await action(leader);
 *         } catch (error) {
 *           if (!(error instanceof NotLeaderError)) throw error;
 *         }
 *       }
 *       await changed;
 *     } finally {
 *       for (const server of servers) server.removeEventListener("leaderChange", onChange);
 *     }
 *   }
 * }
 * // do() resolves once a majority has the entry durably and the leader has applied it.
 * const total = await onLeader((leader) =>
 *   leader.do(Add({ amount: 5 }), { signal: AbortSignal.timeout(5000) })
 * );
 * // ReadIndex: everything committed before the call is applied here, so the read is linearizable.
 * const read = await onLeader(async (leader) => {
 *   await leader.readIndex();
 *   return leader.stateMachine?.value;
 * });
 * if (total !== 5 || read !== 5) throw new Error(`wrote ${total}, read ${read}`);
 * for (const server of servers) await server.stop();
 * ```
 * @module
 */
export * from "./constants.ts";
export * from "./errors.ts";
export type * from "./types.ts";
export type * from "./storage.ts";
export type * from "./transporter.ts";
export { type Clock, systemClock, type TimerHandle } from "./clock.ts";
export { cryptoRandom, type Random } from "./random.ts";
export { DEBUG, logLevel, NONE, setLogLevel, TRACE } from "./log_level.ts";
export { consoleLogger, type Logger } from "./logger.ts";
export type {
  FollowerStats,
  LatencyHistogram,
  RpcCounts,
  ServerCounters,
  ServerStats,
  StatsRpcKind,
} from "./stats.ts";
export {
  type ApplyContext,
  type Command,
  type CommandDefinition,
  type CommandFactory,
  CommandRegistry,
  type CommandType,
  type Context,
  defaultRegistry,
  defineCommand,
  type DefinedCommand,
  JoinCommand,
  LeaveCommand,
  NopCommand,
  registerCommand,
} from "./command.ts";
export { crc32c } from "./crc32c.ts";
export * from "./wire.ts";
export * from "./events.ts";
export {
  CONFIG_COMMAND_NAME,
  Consensus,
  type ConsensusOptions,
  type CoreEvent,
  type FollowerProgress,
  JOIN_COMMAND_NAME,
  LEAVE_COMMAND_NAME,
  NOP_COMMAND_NAME,
  type OutboundMessage,
  type Ready,
  type RestoredState,
  type Role,
} from "./consensus.ts";
export {
  createServer,
  type DoOptions,
  type ReadIndexOptions,
  Server,
  type ServerInput,
  type ServerOptions,
  type StateMachine,
} from "./server.ts";
