/**
 * Base class of every error tsraft throws on purpose; `code` is stable and machine-readable.
 */
export class RaftError extends Error {
  /** Stable identifier of the condition, e.g. `"NOT_LEADER"`. */
  readonly code: string;
  /**
   * Creates an instance.
   * @param code stable identifier of the condition
   * @param message human-readable explanation
   * @param options standard error options (`cause`)
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A proposal reached a server that is not the leader. Retry on `leader`. */
export class NotLeaderError extends RaftError {
  /** Name of the leader this server knows of, or `""` when it knows none. */
  readonly leader: string;
  /** Connection string of that leader, or `""`. */
  readonly connectionString: string;
  /**
   * Creates an instance.
   * @param leader name of the known leader, `""` if none
   * @param connectionString where that leader can be reached, `""` if unknown
   */
  constructor(leader: string, connectionString: string) {
    super(
      "NOT_LEADER",
      leader
        ? `Not the current leader; the leader is ${leader}`
        : "Not the current leader; no leader is known",
    );
    this.leader = leader;
    this.connectionString = connectionString;
  }
}

/** A command did not commit before its deadline; it may still commit later. */
export class CommandTimeoutError extends RaftError {
  /** Creates an instance. @param message explanation */
  constructor(message = "Command timed out before it was committed") {
    super("COMMAND_TIMEOUT", message);
  }
}

/**
 * This server can no longer tell whether a command it proposed committed: an installed
 * snapshot replaced the log past the command's entry, a newer leader cut the log short of
 * it, or no leader has contacted this server for a long time (it is cut off, or was removed
 * from the cluster). Another server may still commit it. Retry only if the command is
 * idempotent, or check the state first.
 */
export class CommandOutcomeUnknownError extends RaftError {
  /** Index the command's entry had in this server's log. */
  readonly index: number;
  /**
   * Creates an instance.
   * @param index the entry's index
   * @param message explanation
   */
  constructor(
    index: number,
    message =
      `The outcome of the command at index ${index} is unknown: a snapshot from the leader replaced this log past it`,
  ) {
    super("COMMAND_OUTCOME_UNKNOWN", message);
    this.index = index;
  }
}

/** The server was stopped, or is not running. */
export class StopError extends RaftError {
  /** Creates an instance. @param message explanation */
  constructor(message = "Server has been stopped") {
    super("STOPPED", message);
  }
}

/** A peer with this name is already a member. */
export class DuplicatePeerError extends RaftError {
  /** Creates an instance. @param name the duplicated peer name */
  constructor(name: string) {
    super("DUPLICATE_PEER", `Peer ${name} is already a member`);
  }
}

/** A membership change was requested while another one is not yet committed. */
export class MembershipChangeInProgressError extends RaftError {
  /** Creates an instance. @param message explanation */
  constructor(message = "Another membership change is not yet committed") {
    super("MEMBERSHIP_CHANGE_IN_PROGRESS", message);
  }
}

/** A log entry names a command that was never registered. */
export class UnknownCommandError extends RaftError {
  /** The unregistered command name. */
  readonly commandName: string;
  /** Creates an instance. @param commandName the unregistered command name */
  constructor(commandName: string) {
    super(
      "UNKNOWN_COMMAND",
      `Unknown command "${commandName}": register it with registerCommand()`,
    );
    this.commandName = commandName;
  }
}

/** A message or its fields are malformed (wrong types, missing fields, unknown peer). */
export class InvalidMessageError extends RaftError {
  /** Creates an instance. @param message what is wrong */
  constructor(message: string) {
    super("INVALID_MESSAGE", message);
  }
}

/** Bytes received from the network could not be decoded. */
export class WireError extends RaftError {
  /** Creates an instance. @param message what is wrong @param options cause */
  constructor(message: string, options?: ErrorOptions) {
    super("WIRE", message, options);
  }
}

/** A message could not be delivered to a peer or no response arrived in time. */
export class TransportError extends RaftError {
  /** Creates an instance. @param message what failed @param options cause */
  constructor(message: string, options?: ErrorOptions) {
    super("TRANSPORT", message, options);
  }
}

/** Persisted data failed its integrity check somewhere other than a torn tail. */
export class StorageCorruptionError extends RaftError {
  /** Creates an instance. @param message where and what @param options cause */
  constructor(message: string, options?: ErrorOptions) {
    super("STORAGE_CORRUPTION", message, options);
  }
}

/** Leadership transfer did not complete in time or its target is unknown. */
export class LeadershipTransferError extends RaftError {
  /** Creates an instance. @param message explanation */
  constructor(message: string) {
    super("LEADERSHIP_TRANSFER", message);
  }
}
