/**
 * The JSON-lines protocol between `bench/main.ts` and `bench/_bench_node.ts`.
 * @module
 */
import type { PeerInfo } from "@tsraft/core";

/** Marks the lines of stdout that are protocol answers. */
export const REPLY_PREFIX = "@@bench ";

/** What a node is. */
export interface NodeConfig {
  mode?: "raft" | "echo";
  name: string;
  transport: "tcp" | "http";
  storage: "file" | "kv";
  /** Data directory, created by the parent. */
  dir: string;
  /** fsync in FileStorage. @default true */
  fsync?: boolean;
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Passed to the server. @default the server's default */
  maxInflightMessages?: number;
  /** `snapshotThreshold` of the server. @default the server's default */
  snapshotThreshold?: number;
  /**
   * Wrap storage and transport in the counting wrappers of `_instrument.ts`. Off for the
   * memory bench: their bounded sample buffers would be counted as the library's memory.
   * @default true
   */
  instrument?: boolean;
}

/** An instruction from the parent. */
export type Instruction =
  | { id: number; op: "start"; peers: PeerInfo[]; connectionString: string }
  | { id: number; op: "status" }
  | {
    id: number;
    op: "bench";
    clients: number;
    durationMs: number;
    warmupMs: number;
    /** Stop once this many commands have committed (before `durationMs` ends). */
    commands?: number;
  }
  | { id: number; op: "memory" }
  | { id: number; op: "stats"; reset: boolean }
  | { id: number; op: "trace" }
  | { id: number; op: "stop" };
