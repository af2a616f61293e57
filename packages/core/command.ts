import { InvalidMessageError, UnknownCommandError } from "./errors.ts";
import type { PeerInfo } from "./types.ts";
import type { Server } from "./server.ts";

/** What a command sees while it is applied. */
export interface Context<S = Server> {
  /** The applying server. */
  readonly server: S;
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
  const record = value as Record<string, unknown> | null;
  if (
    typeof record !== "object" || record === null || typeof record.name !== "string" ||
    record.name === "" ||
    (record.connectionString !== undefined && typeof record.connectionString !== "string")
  ) {
    throw new InvalidMessageError(`${commandName} needs a string name`);
  }
  return { name: record.name, connectionString: (record.connectionString as string) ?? "" };
}

/**
 * Adds a server to the cluster; applied through the log. The Server applies membership
 * commands itself, so `apply` only reports the joined name.
 */
export class JoinCommand implements Command<string> {
  /** Name in the log. */
  static readonly commandName: string = "raft:join";
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
  static readonly commandName: string = "raft:leave";
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
  static readonly commandName: string = "raft:nop";
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
