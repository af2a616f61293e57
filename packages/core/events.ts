import type { ServerState } from "./constants.ts";
import type { LogEntry, PeerInfo } from "./types.ts";

/** Value and previous value carried by each event type. */
export interface RaftEventMap {
  /** The server's state changed. */
  stateChange: { value: ServerState; prevValue: ServerState };
  /** The known leader changed (`""` when none is known). */
  leaderChange: { value: string; prevValue: string };
  /** The current term changed. */
  termChange: { value: number; prevValue: number };
  /** An entry was committed and applied; `prevValue` is the previous applied index. */
  commit: { value: LogEntry; prevValue: number };
  /** A member was added to the configuration. */
  addPeer: { value: PeerInfo; prevValue: undefined };
  /** A member was removed from the configuration. */
  removePeer: { value: PeerInfo; prevValue: undefined };
  /** A heartbeat round trip to a peer completed; value is the round trip in ms. */
  heartbeat: { value: { peer: string; roundTripMs: number }; prevValue: undefined };
  /** The heartbeat interval was changed. */
  heartbeatInterval: { value: number; prevValue: number };
  /** A heartbeat round trip exceeded 80% of the election timeout. */
  electionTimeoutThreshold: { value: { peer: string; roundTripMs: number }; prevValue: number };
}

/** Every event type name. */
export type RaftEventType = keyof RaftEventMap;

/** An event delivered to listeners registered with `server.addEventListener`. */
export interface RaftEvent<K extends RaftEventType = RaftEventType, S = unknown> {
  /** The event type. */
  readonly type: K;
  /** The server that dispatched it. */
  readonly source: S;
  /** New value. */
  readonly value: RaftEventMap[K]["value"];
  /** Previous value. */
  readonly prevValue: RaftEventMap[K]["prevValue"];
}

/** A listener for one event type. */
export type RaftEventListener<K extends RaftEventType = RaftEventType, S = unknown> = (
  event: RaftEvent<K, S>,
) => void;
