import {
  type AppendEntriesRequest,
  type AppendEntriesResponse,
  type PeerInfo,
  type RaftHandler,
  type RequestVoteRequest,
  type RequestVoteResponse,
  type SendOptions,
  type SnapshotRecoveryRequest,
  type SnapshotRecoveryResponse,
  type SnapshotRequest,
  type SnapshotResponse,
  type TimeoutNowRequest,
  type TimeoutNowResponse,
  type Transporter,
  TransportError,
  type TransportSender,
} from "@tsraft/core";

/** Options of {@link PartitionableTransporter}. */
export interface PartitionableTransporterOptions {
  /**
   * Maps a member's connection string to the address the inner transporter dials. The
   * KV example advertises its client HTTP address and runs TCP raft traffic on another port.
   * @default the identity
   */
  resolve?: ((peer: PeerInfo) => PeerInfo) | undefined;
}

/**
 * Wraps a Transporter (outgoing RPCs) and a RaftHandler (incoming RPCs) so a node can be
 * cut off from some or all peers at run time: a demonstration of a network partition that
 * needs no firewall. Blocked sends reject with `TransportError`, as an unreachable peer
 * would; blocked incoming requests are refused, so the sender sees a failed RPC.
 * @example
 * ```ts
 * import { MemoryNetwork } from "@tsraft/core/testing";
 * import { PartitionableTransporter } from "./partitionable_transporter.ts";
 * const transporter = new PartitionableTransporter(new MemoryNetwork().transporter());
 * transporter.isolate();
 * transporter.heal();
 * ```
 */
export class PartitionableTransporter implements Transporter {
  readonly #inner: Transporter;
  readonly #resolve: (peer: PeerInfo) => PeerInfo;
  #isolated = false;
  #blocked = new Set<string>();

  /** @param inner the real transporter @param options address mapping */
  constructor(inner: Transporter, options: PartitionableTransporterOptions = {}) {
    this.#inner = inner;
    this.#resolve = options.resolve ?? ((peer) => peer);
  }

  /** Whether traffic to or from any peer is currently dropped. */
  get partitioned(): boolean {
    return this.#isolated || this.#blocked.size > 0;
  }

  /** Names blocked individually (empty when isolated from everyone). */
  get blocked(): string[] {
    return [...this.#blocked];
  }

  /** Drops traffic to and from every peer. */
  isolate(): void {
    this.#isolated = true;
  }

  /** Drops traffic to and from the named peers only. @param names peer names */
  block(names: Iterable<string>): void {
    for (const name of names) this.#blocked.add(name);
  }

  /** Restores all traffic. */
  heal(): void {
    this.#isolated = false;
    this.#blocked.clear();
  }

  /** Whether traffic with a peer is dropped. @param name the peer's name @returns true when dropped */
  isBlocked(name: string): boolean {
    return this.#isolated || this.#blocked.has(name);
  }

  /**
   * Wraps the local server so requests from blocked peers are refused.
   * @param handler the local server
   * @returns a handler to give to the inner transport's listener
   */
  guard(handler: RaftHandler): RaftHandler {
    const check = (from: string) => {
      if (this.isBlocked(from)) {
        throw new TransportError(`${handler.name} is partitioned from ${from}`);
      }
    };
    return {
      get name() {
        return handler.name;
      },
      appendEntries: async (req: AppendEntriesRequest): Promise<AppendEntriesResponse> => {
        check(req.leaderName);
        return await handler.appendEntries(req);
      },
      requestVote: async (req: RequestVoteRequest): Promise<RequestVoteResponse> => {
        check(req.candidateName);
        return await handler.requestVote(req);
      },
      requestSnapshot: async (req: SnapshotRequest): Promise<SnapshotResponse> => {
        check(req.leaderName);
        return await handler.requestSnapshot(req);
      },
      snapshotRecoveryRequest: async (
        req: SnapshotRecoveryRequest,
      ): Promise<SnapshotRecoveryResponse> => {
        check(req.leaderName);
        return await handler.snapshotRecoveryRequest(req);
      },
      timeoutNow: async (req: TimeoutNowRequest): Promise<TimeoutNowResponse> => {
        check(req.leaderName);
        return await handler.timeoutNow(req);
      },
    };
  }

  #target(sender: TransportSender, peer: PeerInfo): PeerInfo {
    if (this.isBlocked(peer.name)) {
      throw new TransportError(`${sender.name} is partitioned from ${peer.name}`);
    }
    return this.#resolve(peer);
  }

  /** Sends RequestVote unless blocked. */
  async sendVoteRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: RequestVoteRequest,
    options?: SendOptions,
  ): Promise<RequestVoteResponse> {
    return await this.#inner.sendVoteRequest(sender, this.#target(sender, peer), req, options);
  }

  /** Sends AppendEntries unless blocked. */
  async sendAppendEntriesRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: AppendEntriesRequest,
    options?: SendOptions,
  ): Promise<AppendEntriesResponse> {
    return await this.#inner.sendAppendEntriesRequest(
      sender,
      this.#target(sender, peer),
      req,
      options,
    );
  }

  /** Sends a snapshot announcement unless blocked. */
  async sendSnapshotRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRequest,
    options?: SendOptions,
  ): Promise<SnapshotResponse> {
    return await this.#inner.sendSnapshotRequest(sender, this.#target(sender, peer), req, options);
  }

  /** Sends a snapshot chunk unless blocked. */
  async sendSnapshotRecoveryRequest(
    sender: TransportSender,
    peer: PeerInfo,
    req: SnapshotRecoveryRequest,
    options?: SendOptions,
  ): Promise<SnapshotRecoveryResponse> {
    return await this.#inner.sendSnapshotRecoveryRequest(
      sender,
      this.#target(sender, peer),
      req,
      options,
    );
  }

  /** Sends TimeoutNow unless blocked. */
  async sendTimeoutNow(
    sender: TransportSender,
    peer: PeerInfo,
    req: TimeoutNowRequest,
    options?: SendOptions,
  ): Promise<TimeoutNowResponse> {
    return await this.#inner.sendTimeoutNow(sender, this.#target(sender, peer), req, options);
  }
}
