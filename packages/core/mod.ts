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
 * (no I/O, timers or randomness of its own) and `Server` is the async shell that persists,
 * sends and applies its outputs. Memory storage and transport, a manual clock and the
 * adapters' conformance suites are in `@tsraft/core/testing`.
 *
 * @example A 3-node cluster in one process: one write, one linearizable read
 * ```ts
 * import { type Context, createServer, registerCommand, type Server } from "@tsraft/core";
 * import { MemoryNetwork, MemoryStorage } from "@tsraft/core/testing";
 *
 * // Each server's own state; snapshots are its bytes.
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
 * // A command is encoded as JSON in the log and applied on every server.
 * class AddCommand {
 *   static readonly commandName = "example:add";
 *   readonly commandName = AddCommand.commandName;
 *   constructor(readonly amount: number) {}
 *   static fromJSON(json: unknown): AddCommand {
 *     return new AddCommand((json as { amount: number }).amount);
 *   }
 *   apply(context: Context): number {
 *     return (context.server.stateMachine as Counter).value += this.amount;
 *   }
 * }
 * registerCommand(AddCommand);
 *
 * const network = new MemoryNetwork(); // swap for TcpTransporter or HttpTransporter
 * const names = ["a", "b", "c"];
 * const servers: Server[] = names.map((name) =>
 *   createServer({
 *     name,
 *     connectionString: `memory://${name}`,
 *     peers: names.filter((peer) => peer !== name)
 *       .map((peer) => ({ name: peer, connectionString: `memory://${peer}` })),
 *     transporter: network.transporter(),
 *     storage: new MemoryStorage(), // swap for FileStorage or KvStorage
 *     stateMachine: new Counter(),
 *   })
 * );
 * for (const server of servers) network.register(server);
 * await Promise.all(servers.map((server) => server.start()));
 *
 * let leader: Server | undefined;
 * while ((leader = servers.find((server) => server.state === "leader")) === undefined) {
 *   await new Promise((resolve) => setTimeout(resolve, 10));
 * }
 * const total = await leader.do(new AddCommand(5), { signal: AbortSignal.timeout(5000) });
 * await leader.readIndex(); // everything committed before this call is now applied here
 * const read = (leader.stateMachine as Counter).value;
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
  type ServerOptions,
  type StateMachine,
} from "./server.ts";
