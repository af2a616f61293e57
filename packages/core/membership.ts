/**
 * Cluster membership: the commands that change it, and the history of configurations the
 * log holds (Raft §6, thesis §4.1). The latest configuration in the log is in effect as
 * soon as it is appended, committed or not.
 * @module
 */
import type { LogEntry, PeerInfo } from "./types.ts";

/** Name of the command that adds a member. */
export const JOIN_COMMAND_NAME = "raft:join";
/** Name of the command that removes a member. */
export const LEAVE_COMMAND_NAME = "raft:leave";
/** Name of the entry holding a whole membership (written when a cluster bootstraps). */
export const CONFIG_COMMAND_NAME = "raft:config";
/** Name of the no-op a new leader appends. */
export const NOP_COMMAND_NAME = "raft:nop";

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/**
 * Whether an entry changes the membership.
 * @param commandName the entry's command name
 * @returns true for join, leave and whole-configuration entries
 */
export function isMembershipCommand(commandName: string): boolean {
  return commandName === JOIN_COMMAND_NAME || commandName === LEAVE_COMMAND_NAME ||
    commandName === CONFIG_COMMAND_NAME;
}

/**
 * Encodes the bootstrap configuration entry's command.
 * @param members the founding members
 * @returns the command bytes
 */
export function encodeConfigCommand(members: PeerInfo[]): Uint8Array {
  return textEncoder.encode(JSON.stringify({ peers: members }));
}

/**
 * Reads a join or leave command's peer.
 * @param value the parsed JSON
 * @returns the peer, or `undefined` when malformed
 */
export function peerFromJson(value: unknown): PeerInfo | undefined {
  const record = value as { name?: unknown; connectionString?: unknown } | null;
  if (typeof record !== "object" || record === null) return undefined;
  if (typeof record.name !== "string" || record.name === "") return undefined;
  if (record.connectionString !== undefined && typeof record.connectionString !== "string") {
    return undefined;
  }
  return { name: record.name, connectionString: record.connectionString ?? "" };
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(textDecoder.decode(bytes));
  } catch {
    return undefined;
  }
}

function parseConfigCommand(bytes: Uint8Array): PeerInfo[] | undefined {
  const value = parseJson(bytes) as { peers?: unknown } | undefined;
  if (!Array.isArray(value?.peers)) return undefined;
  const peers: PeerInfo[] = [];
  for (const item of value.peers) {
    const peer = peerFromJson(item);
    if (peer === undefined) return undefined;
    peers.push(peer);
  }
  return dedupe(peers);
}

/**
 * Members sorted by name, one per name (the last one given wins), copied.
 * @param peers members, possibly repeated
 * @returns the normalized list
 */
export function dedupe(peers: PeerInfo[]): PeerInfo[] {
  const byName = new Map<string, PeerInfo>();
  for (const peer of peers) {
    byName.set(peer.name, { name: peer.name, connectionString: peer.connectionString });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

interface ConfigVersion {
  index: number;
  members: PeerInfo[];
}

/** A change of members: who joined and who left. */
export interface MembershipDiff {
  /** Members before. */
  before: PeerInfo[];
  /** Members after. */
  after: PeerInfo[];
}

/**
 * Every configuration the log holds, oldest first: the base (from the snapshot or the
 * bootstrap options) at the snapshot point, then one per membership entry after it.
 */
export class ConfigurationHistory {
  #versions: ConfigVersion[] = [];

  /** The configuration in effect: the latest one in the log. */
  get members(): PeerInfo[] {
    return this.#versions[this.#versions.length - 1]?.members ?? [];
  }
  /** Index of the entry that made the latest configuration. */
  get latestIndex(): number {
    return this.#versions[this.#versions.length - 1]?.index ?? 0;
  }
  /** Votes (or acknowledgements) that make a majority of the members. */
  get quorumSize(): number {
    return Math.floor(this.members.length / 2) + 1;
  }

  /**
   * Whether `name` is a voting member.
   * @param name a server's name
   */
  isVoter(name: string): boolean {
    return this.members.some((member) => member.name === name);
  }

  /**
   * Membership as of `index`.
   * @param index a log index at or after the base
   */
  membersAt(index: number): PeerInfo[] {
    let found: PeerInfo[] = [];
    for (const version of this.#versions) {
      if (version.index <= index) found = version.members;
    }
    return found;
  }

  /**
   * Starts over from a base configuration.
   * @param index the base's index (the snapshot point)
   * @param members its members
   */
  reset(index: number, members: PeerInfo[]): void {
    this.#versions = [{ index, members: dedupe(members) }];
  }

  /**
   * Applies a log entry appended after the latest one, if it changes the membership.
   * @returns the change, or `undefined` for other entries (and malformed ones)
   */
  noteEntry(entry: LogEntry): MembershipDiff | undefined {
    const before = this.members;
    let after: PeerInfo[];
    if (entry.commandName === CONFIG_COMMAND_NAME) {
      const members = parseConfigCommand(entry.command);
      if (members === undefined) return undefined;
      after = members;
    } else if (
      entry.commandName === JOIN_COMMAND_NAME || entry.commandName === LEAVE_COMMAND_NAME
    ) {
      const peer = peerFromJson(parseJson(entry.command));
      if (peer === undefined) return undefined;
      after = entry.commandName === JOIN_COMMAND_NAME
        ? dedupe([...before.filter((member) => member.name !== peer.name), peer])
        : before.filter((member) => member.name !== peer.name);
    } else {
      return undefined;
    }
    this.#versions.push({ index: entry.index, members: after });
    return { before, after };
  }

  /**
   * Forgets configurations of entries from `index` on (they were truncated).
   * @returns the change of the configuration in effect
   */
  truncateFrom(index: number): MembershipDiff {
    const before = this.members;
    this.#versions = this.#versions.filter((version, i) => i === 0 || version.index < index);
    return { before, after: this.members };
  }

  /** Makes the configuration as of `index` the base (the log was compacted through it). */
  compact(index: number): void {
    this.#versions = [
      { index, members: this.membersAt(index) },
      ...this.#versions.filter((version) => version.index > index),
    ];
  }

  /**
   * Makes an installed snapshot's configuration the base, keeping later configurations
   * whose entries the log kept.
   * @param index the snapshot point
   * @param members the snapshot's members
   * @param kept whether the log still holds the entry at an index
   */
  install(index: number, members: PeerInfo[], kept: (index: number) => boolean): void {
    const later = this.#versions.filter((version) => version.index > index && kept(version.index));
    this.#versions = [{ index, members: dedupe(members) }, ...later];
  }
}
