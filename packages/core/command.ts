import { InvalidMessageError, UnknownCommandError } from "./errors.ts";
import {
  JOIN_COMMAND_NAME,
  LEAVE_COMMAND_NAME,
  NOP_COMMAND_NAME,
  peerFromJson,
} from "./membership.ts";
import type { PeerInfo } from "./types.ts";
import type { Server } from "./server.ts";

/** What a command sees while it is applied. */
export interface Context<S = Server> {
  /** The applying server. */
  readonly server: S;
  /** The applying server's state machine (the `stateMachine` option), if it has one. */
  readonly stateMachine?: unknown;
  /** The server's term at apply time. */
  readonly currentTerm: number;
  /** Index of the entry being applied. */
  readonly currentIndex: number;
  /** The server's commit index. */
  readonly commitIndex: number;
}

/**
 * An action on the replicated state machine. By default it is encoded as the JSON of its
 * own enumerable properties; a command that defines `encode()` is stored as those bytes.
 */
export interface Command<R = unknown> {
  /** Registered name, the same on every server. */
  readonly commandName: string;
  /** Applies the command once it is committed; the result resolves `server.do()`. */
  apply(context: Context): R | Promise<R>;
  /** Custom encoding, decoded by the registered type's `decode`. */
  encode?(): Uint8Array;
}

/** How to rebuild a command from the log: a custom `decode`, or `fromJSON` on its JSON. */
export type CommandType<C extends Command = Command> =
  | { readonly commandName: string; decode(data: Uint8Array): C }
  | { readonly commandName: string; fromJSON(value: unknown): C };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A set of command types, keyed by name. Servers use `defaultRegistry` unless given one. */
export class CommandRegistry {
  #types = new Map<string, CommandType>();

  /** Creates a registry holding the built-in membership and no-op commands. */
  constructor() {
    for (const type of [JoinCommand, LeaveCommand, NopCommand]) {
      this.#types.set(type.commandName, type);
    }
  }

  /**
   * Registers a command type. Registering the same name again replaces it.
   * @param type the command's name and decoder
   */
  register(type: CommandType): void {
    if (typeof type.commandName !== "string" || type.commandName === "") {
      throw new TypeError("A command type needs a non-empty commandName");
    }
    this.#types.set(type.commandName, type);
  }

  /**
   * Whether a command name is registered.
   * @param commandName name to look up
   * @returns true when registered
   */
  has(commandName: string): boolean {
    return this.#types.has(commandName);
  }

  /**
   * Encodes a command for the log.
   * @param command the command
   * @returns its bytes
   * @throws UnknownCommandError when its name is not registered
   */
  encode(command: Command): Uint8Array {
    if (!this.#types.has(command.commandName)) throw new UnknownCommandError(command.commandName);
    if (typeof command.encode === "function") return command.encode();
    // JSON.stringify silently turns a Map into {}, a Date into a string and undefined array
    // items into null: a command must reach every server as it was proposed, or not at all.
    assertJsonSafe(command, command.commandName, "");
    return encoder.encode(JSON.stringify(command));
  }

  /**
   * Decodes a command read from the log.
   * @param commandName the name stored in the entry
   * @param data the stored bytes
   * @returns the command
   * @throws UnknownCommandError when the name is not registered
   * @throws InvalidMessageError when the bytes cannot be decoded
   */
  decode(commandName: string, data: Uint8Array): Command {
    const type = this.#types.get(commandName);
    if (type === undefined) throw new UnknownCommandError(commandName);
    try {
      if ("decode" in type) return type.decode(data);
      return type.fromJSON(JSON.parse(decoder.decode(data)));
    } catch (error) {
      throw new InvalidMessageError(`Cannot decode command "${commandName}": ${String(error)}`);
    }
  }
}

function parsePeer(value: unknown, commandName: string): PeerInfo {
  // The core reads membership entries with the same parser (membership.ts).
  const peer = peerFromJson(value);
  if (peer === undefined) throw new InvalidMessageError(`${commandName} needs a string name`);
  return peer;
}

/**
 * Adds a server to the cluster; applied through the log. The Server applies membership
 * commands itself, so `apply` only reports the joined name.
 */
export class JoinCommand implements Command<string> {
  /** Name in the log. */
  static readonly commandName: string = JOIN_COMMAND_NAME;
  /** Name in the log. */
  readonly commandName: string = JoinCommand.commandName;
  /**
   * Creates an instance.
   * @param name the joining server's name
   * @param connectionString where it can be reached
   */
  constructor(readonly name: string, readonly connectionString: string) {}
  /** Decodes from JSON. @param value parsed JSON @returns the command */
  static fromJSON(value: unknown): JoinCommand {
    const peer = parsePeer(value, JoinCommand.commandName);
    return new JoinCommand(peer.name, peer.connectionString);
  }
  /** The name of the node that joins. @returns its name */
  nodeName(): string {
    return this.name;
  }
  /** Membership changes apply in the core; this reports the name. @returns the joined name */
  apply(): string {
    return this.name;
  }
}

/** Removes a server from the cluster; applied through the log. */
export class LeaveCommand implements Command<string> {
  /** Name in the log. */
  static readonly commandName: string = LEAVE_COMMAND_NAME;
  /** Name in the log. */
  readonly commandName: string = LeaveCommand.commandName;
  /** Creates an instance. @param name the leaving server's name */
  constructor(readonly name: string) {}
  /** Decodes from JSON. @param value parsed JSON @returns the command */
  static fromJSON(value: unknown): LeaveCommand {
    return new LeaveCommand(parsePeer(value, LeaveCommand.commandName).name);
  }
  /** The name of the node that leaves. @returns its name */
  nodeName(): string {
    return this.name;
  }
  /** Membership changes apply in the core; this reports the name. @returns the removed name */
  apply(): string {
    return this.name;
  }
}

/** Appended by every new leader at the start of its term (Raft §5.4.2, §8). */
export class NopCommand implements Command<null> {
  /** Name in the log. */
  static readonly commandName: string = NOP_COMMAND_NAME;
  /** Name in the log. */
  readonly commandName: string = NopCommand.commandName;
  /** Decodes a no-op. @returns a NopCommand */
  static fromJSON(): NopCommand {
    return new NopCommand();
  }
  /** A no-op changes nothing. @returns null */
  apply(): null {
    return null;
  }
}

/**
 * Throws a TypeError naming the first value below `value` that JSON does not round-trip.
 * @param value the value to check
 * @param commandName for the message
 * @param path where `value` sits in the command
 */
function assertJsonSafe(value: unknown, commandName: string, path: string): void {
  const fail = (what: string): never => {
    throw new TypeError(
      `Command "${commandName}" cannot be encoded as JSON: ${
        path || "the command"
      } is ${what}; convert it, or give the command encode()/decode()`,
    );
  };
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) fail(String(value));
      return;
    case "bigint":
      return fail("a bigint");
    case "undefined":
      return fail("undefined");
    case "function":
    case "symbol":
      return fail(`a ${typeof value}`);
  }
  if (value === null) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertJsonSafe(item, commandName, `${path}[${i}]`));
    return;
  }
  const prototype = Object.getPrototypeOf(value);
  const isPlain = prototype === Object.prototype || prototype === null;
  // A class instance (the command itself, or a nested value object) encodes as its own
  // enumerable properties unless it brings toJSON; Map, Set, Date and typed arrays do not
  // survive that.
  if (!isPlain) {
    if (
      value instanceof Map || value instanceof Set || value instanceof Date ||
      ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof RegExp
    ) {
      fail(`a ${prototype?.constructor?.name ?? "non-plain object"}`);
    }
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") return;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    // An undefined property is dropped by JSON and decodes as missing: it round-trips.
    if (item === undefined) continue;
    assertJsonSafe(item, commandName, `${path}.${key}`);
  }
}

/** What a command made with {@link defineCommand} sees while it is applied. */
export interface ApplyContext<M> extends Context {
  /** The applying server's state machine, typed. */
  readonly stateMachine: M;
}

/** The definition of a command type; see {@link defineCommand}. */
export interface CommandDefinition<I, R, M> {
  /** Name in the log, the same on every server. */
  readonly name: string;
  /**
   * Applies the command to the state machine once it is committed, on every server, in
   * log order, exactly once. Must be deterministic: same state and input, same effect.
   * @param input what the command was created with
   * @param context the state machine and where in the log this is
   * @returns the result that resolves `server.do()` on the server that proposed it
   */
  apply(input: I, context: ApplyContext<M>): R | Promise<R>;
  /**
   * Checks and converts a decoded input (from JSON, or from `decode`). Throwing rejects the
   * entry's application as a malformed command. @default the value as is
   */
  parse?(value: unknown): I;
  /** Custom encoding of the input. @default JSON, refusing values JSON does not round-trip */
  encode?(input: I): Uint8Array;
  /** Decodes what `encode` produced. @default JSON.parse */
  decode?(data: Uint8Array): unknown;
}

/** A command created by a {@link CommandFactory}. */
export interface DefinedCommand<I, R> extends Command<R> {
  /** The input it was created with. */
  readonly input: I;
}

/**
 * Creates commands of one type; register it (`registerCommand(factory)` or
 * `registry.register(factory)`) so servers can decode it from the log.
 */
export interface CommandFactory<I, R> {
  /** Creates a command carrying `input`. */
  (input: I): DefinedCommand<I, R>;
  /** Name in the log. */
  readonly commandName: string;
  /** Rebuilds a command from its stored bytes. */
  decode(data: Uint8Array): DefinedCommand<I, R>;
}

/**
 * Defines a command type without a class: a name, how to apply it to a typed state
 * machine, and optionally how to check and encode its input. Inputs are stored as JSON
 * unless `encode`/`decode` are given; values JSON does not round-trip (Map, Set, Date,
 * bigint, typed arrays, NaN) are refused when the command is proposed.
 * @param definition the name, `apply` and optional codec
 * @returns a factory; call it with an input to get a command for `server.do()`
 * @example
 * ```ts
 * import { type ApplyContext, CommandRegistry, defineCommand } from "@tsraft/core";
 *
 * class Counter {
 *   value = 0;
 *   save() { return new TextEncoder().encode(String(this.value)); }
 *   recovery(data: Uint8Array) { this.value = Number(new TextDecoder().decode(data)); }
 * }
 * const Add = defineCommand({
 *   name: "counter:add",
 *   parse: (value) => value as { amount: number },
 *   apply: ({ amount }: { amount: number }, { stateMachine }: ApplyContext<Counter>) =>
 *     stateMachine.value += amount,
 * });
 * const registry = new CommandRegistry();
 * registry.register(Add);
 * const command = registry.decode("counter:add", registry.encode(Add({ amount: 2 })));
 * const counter = new Counter();
 * command.apply({ server: undefined as never, stateMachine: counter, currentTerm: 1, currentIndex: 1, commitIndex: 1 });
 * if (counter.value !== 2) throw new Error("expected 2");
 * ```
 */
export function defineCommand<I, R, M = unknown>(
  definition: CommandDefinition<I, R, M>,
): CommandFactory<I, R> {
  const commandName = definition.name;
  if (typeof commandName !== "string" || commandName === "") {
    throw new TypeError("defineCommand() needs a non-empty name");
  }
  const create = (input: I): DefinedCommand<I, R> => ({
    commandName,
    input,
    apply: (context: Context) => definition.apply(input, context as ApplyContext<M>),
    encode: () => {
      if (definition.encode) return definition.encode(input);
      assertJsonSafe(input, commandName, "input");
      return encoder.encode(JSON.stringify(input));
    },
  });
  const factory = (input: I) => create(input);
  Object.defineProperty(factory, "commandName", { value: commandName, enumerable: true });
  Object.defineProperty(factory, "decode", {
    value: (data: Uint8Array): DefinedCommand<I, R> => {
      const raw = definition.decode ? definition.decode(data) : JSON.parse(decoder.decode(data));
      return create(definition.parse ? definition.parse(raw) : raw as I);
    },
  });
  return factory as CommandFactory<I, R>;
}

/** The registry used by {@link registerCommand} and by servers not given their own. */
export const defaultRegistry: CommandRegistry = new CommandRegistry();

/**
 * Registers a command type in the default registry so servers can decode it from the log.
 * @param type the command's name and decoder
 * @example
 * ```ts
 * import { type Context, registerCommand } from "@tsraft/core";
 * class SetCommand {
 *   static readonly commandName = "kv:set";
 *   readonly commandName = SetCommand.commandName;
 *   constructor(readonly key: string, readonly value: string) {}
 *   static fromJSON(json: unknown): SetCommand {
 *     const { key, value } = json as { key: string; value: string };
 *     return new SetCommand(key, value);
 *   }
 *   apply(_context: Context): string {
 *     return this.value;
 *   }
 * }
 * registerCommand(SetCommand);
 * ```
 */
export function registerCommand(type: CommandType): void {
  defaultRegistry.register(type);
}
