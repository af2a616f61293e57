/**
 * The logger a {@link Server} reports to. Its shape matches LogTape's `Logger` (and most
 * structured loggers): a message and, optionally, properties. Pass one as the server's
 * `logger` option; without it, messages go to the console as {@link setLogLevel} allows.
 * @module
 */
import { DEBUG, log, logLevel, TRACE } from "./log_level.ts";

/** A structured logger. */
export interface Logger {
  /** Per-message detail: RPCs sent and received. Optional. */
  trace?(message: string, properties?: Record<string, unknown>): void;
  /** State changes, elections, snapshots, failed RPCs. */
  debug(message: string, properties?: Record<string, unknown>): void;
  /** Rare, noteworthy events. */
  info(message: string, properties?: Record<string, unknown>): void;
  /** Something went wrong and the server carries on. */
  warn(message: string, properties?: Record<string, unknown>): void;
  /** Something went wrong and the server stops. */
  error(message: string, properties?: Record<string, unknown>): void;
}

function format(message: string, properties: Record<string, unknown> | undefined): string {
  if (properties === undefined) return message;
  const fields = Object.entries(properties).map(([key, value]) =>
    `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`
  );
  return fields.length === 0 ? message : `${message} ${fields.join(" ")}`;
}

/**
 * Logs to the console: `trace` and `debug` only at the levels set by {@link setLogLevel},
 * `info`, `warn` and `error` always.
 * @example
 * ```ts
 * import { consoleLogger, setLogLevel, DEBUG } from "@tsraft/core";
 * setLogLevel(DEBUG);
 * consoleLogger.debug("elected", { term: 3 });
 * ```
 */
export const consoleLogger: Logger = {
  trace: (message, properties) => {
    if (logLevel() >= TRACE) log(TRACE, format(message, properties));
  },
  debug: (message, properties) => {
    if (logLevel() >= DEBUG) log(DEBUG, format(message, properties));
  },
  info: (message, properties) => console.info(`[raft] ${format(message, properties)}`),
  warn: (message, properties) => console.warn(`[raft] ${format(message, properties)}`),
  error: (message, properties) => console.error(`[raft] ${format(message, properties)}`),
};
