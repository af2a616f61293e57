/** Log level that prints nothing but warnings. */
export const NONE = 0;
/** Log level that prints state changes and errors. */
export const DEBUG = 1;
/** Log level that prints every message. */
export const TRACE = 2;

let currentLevel = NONE;

/**
 * Sets the global log level of tsraft (`0` none, {@link DEBUG} or {@link TRACE}).
 * @param level the new level
 * @example
 * ```ts
 * import { DEBUG, setLogLevel } from "@tsraft/core";
 * setLogLevel(DEBUG);
 * setLogLevel(0);
 * ```
 */
export function setLogLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0) throw new RangeError(`Invalid log level ${level}`);
  currentLevel = level;
}

/**
 * The global log level set by {@link setLogLevel}.
 * @returns the current level
 */
export function logLevel(): number {
  return currentLevel;
}

/** @internal Logs `message` when the level is at least `level`. */
export function log(level: number, message: string): void {
  if (currentLevel >= level) console.error(`[raft] ${message}`);
}

/** @internal Logs a warning regardless of level. */
export function warn(message: string): void {
  console.warn(`[raft] ${message}`);
}
