/** Interval at which a leader sends heartbeats to keep its followers. @default 50 */
export const DEFAULT_HEARTBEAT_INTERVAL = 50;
/** Base election timeout; each round picks a random timeout in `[t, 2t)`. @default 150 */
export const DEFAULT_ELECTION_TIMEOUT = 150;
/** Most entries carried by one AppendEntries request. */
export const MAX_LOG_ENTRIES_PER_REQUEST = 2000;
/** Entries kept in the log after a snapshot so that slow followers catch up from the log. */
export const NUMBER_OF_LOG_ENTRIES_AFTER_SNAPSHOT = 200;
/**
 * Fraction of the election timeout that a heartbeat round trip may take before an
 * `electionTimeoutThreshold` event warns that the cluster is close to spurious elections.
 */
export const ELECTION_TIMEOUT_THRESHOLD_PERCENT = 0.8;

/** Server states, as named by the spec. */
export const STOPPED = "stopped";
/** Server has loaded its storage but is not running. */
export const INITIALIZED = "initialized";
/** Server follows a leader. */
export const FOLLOWER = "follower";
/** Server campaigns for leadership. */
export const CANDIDATE = "candidate";
/** Server leads the cluster. */
export const LEADER = "leader";
/** Server is installing a snapshot received from the leader. */
export const SNAPSHOTTING = "snapshotting";

/** Every state a {@link Server} can be in. */
export type ServerState =
  | typeof STOPPED
  | typeof INITIALIZED
  | typeof FOLLOWER
  | typeof CANDIDATE
  | typeof LEADER
  | typeof SNAPSHOTTING;
