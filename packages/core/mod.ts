/**
 * The runtime-agnostic Raft core of tsraft.
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
export {
  type Command,
  CommandRegistry,
  type CommandType,
  type Context,
  defaultRegistry,
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
