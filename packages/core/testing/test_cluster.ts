import { type Command, CommandRegistry, type Context } from "../command.ts";
import { LEADER } from "../constants.ts";
import { createServer, type Server, type ServerOptions, type StateMachine } from "../server.ts";
import type { Storage } from "../storage.ts";
import type { PeerInfo } from "../types.ts";
import { ManualClock } from "./manual_clock.ts";
import { MemoryDisk, MemoryStorage } from "./memory_storage.ts";
import { MemoryNetwork } from "./memory_transport.ts";
import { SeededRandom } from "./seeded_random.ts";

/** The map a {@link KvStateMachine} holds, and its snapshot format (JSON). */
export class KvStateMachine implements StateMachine {
  /** Current values. */
  readonly data: Map<string, string> = new Map();
  /** Every applied command index, in order: lets tests check exactly-once application. */
  readonly appliedIndexes: number[] = [];

  /** Serializes the map and the applied indexes. @returns the state as JSON bytes */
  save(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ data: [...this.data], applied: this.appliedIndexes }),
    );
  }

  /** Replaces the state from {@link save}'s bytes. */
  recovery(bytes: Uint8Array): void {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as {
      data: [string, string][];
      applied: number[];
    };
    this.data.clear();
    for (const [key, value] of parsed.data) this.data.set(key, value);
    this.appliedIndexes.length = 0;
    this.appliedIndexes.push(...parsed.applied);
  }
}

/** Sets a key in the {@link KvStateMachine} of the applying server; returns the old value. */
export class KvSetCommand implements Command<string | null> {
  /** Name in the log. */
  static readonly commandName: string = "kv:set";
  /** Name in the log. */
  readonly commandName: string = KvSetCommand.commandName;
  /** Creates an instance. @param key the key @param value the new value */
  constructor(readonly key: string, readonly value: string) {}
  /** Decodes from JSON. @returns the command decoded from JSON */
  static fromJSON(json: unknown): KvSetCommand {
    const { key, value } = json as { key: unknown; value: unknown };
    if (typeof key !== "string" || typeof value !== "string") {
      throw new TypeError("kv:set needs string key and value");
    }
    return new KvSetCommand(key, value);
  }
  /** Sets the key. @returns the previous value or null */
  apply(context: Context): string | null {
    const machine = (context.server as Server).stateMachine as KvStateMachine;
    const previous = machine.data.get(this.key) ?? null;
    machine.data.set(this.key, this.value);
    machine.appliedIndexes.push(context.currentIndex);
    return previous;
  }
}

/** Options of {@link TestCluster}. */
export interface TestClusterOptions {
  /** Seed for elections and network faults. @default 1 */
  seed?: number;
  /** Extra server options applied to every server. */
  serverOptions?: Partial<Omit<ServerOptions, "name" | "transporter" | "storage">>;
  /**
   * Makes each server's storage over its disk, e.g. to inject faults.
   * @default a MemoryStorage over the disk
   */
  storage?: (name: string, disk: MemoryDisk) => Storage;
}

/**
 * A cluster of real {@link Server}s on a {@link MemoryNetwork}, with memory disks that
 * survive crashes and a {@link ManualClock}: tests move time and wait on conditions.
 * @example
 * ```ts
 * import { KvSetCommand, TestCluster } from "@tsraft/core/testing";
 * const cluster = new TestCluster(["a", "b", "c"]);
 * await cluster.start();
 * const leader = await cluster.waitForLeader();
 * await cluster.run(leader.do(new KvSetCommand("x", "1")));
 * await cluster.stop();
 * ```
 */
export class TestCluster {
  /** Drives every timer. */
  readonly clock: ManualClock = new ManualClock();
  /** The network between servers. */
  readonly network: MemoryNetwork;
  /** Command types known to the servers. */
  readonly registry: CommandRegistry = new CommandRegistry();
  /** Disks by server name; they outlive crashes. */
  readonly disks: Map<string, MemoryDisk> = new Map();
  /** State machines by server name (replaced on restart, rebuilt from snapshot + log). */
  readonly machines: Map<string, KvStateMachine> = new Map();
  /** Live servers by name. */
  readonly servers: Map<string, Server> = new Map();
  readonly #random: SeededRandom;
  readonly #options: TestClusterOptions;
  #members: PeerInfo[];

  /** Creates an instance. @param names founding members @param options seed and server options */
  constructor(names: string[], options: TestClusterOptions = {}) {
    this.#options = options;
    this.#random = new SeededRandom(options.seed ?? 1);
    this.network = new MemoryNetwork({
      clock: this.clock,
      random: new SeededRandom((options.seed ?? 1) + 7919),
    });
    this.registry.register(KvSetCommand);
    this.#members = names.map((name) => ({ name, connectionString: `memory://${name}` }));
    for (const name of names) this.#create(name, false);
  }

  #create(name: string, joinExisting: boolean): Server {
    let disk = this.disks.get(name);
    if (disk === undefined) this.disks.set(name, disk = new MemoryDisk());
    const machine = new KvStateMachine();
    this.machines.set(name, machine);
    const server = createServer({
      electionTimeoutMs: 150,
      heartbeatIntervalMs: 50,
      ...this.#options.serverOptions,
      name,
      connectionString: `memory://${name}`,
      transporter: this.network.transporter(),
      storage: this.#options.storage?.(name, disk) ?? new MemoryStorage(disk),
      stateMachine: machine,
      peers: this.#members.filter((member) => member.name !== name),
      joinExisting,
      registry: this.registry,
      clock: this.clock,
      random: { next: () => this.#random.next() },
    });
    this.servers.set(name, server);
    this.network.register(server);
    return server;
  }

  /** Server by name. @throws RangeError when unknown */
  server(name: string): Server {
    const server = this.servers.get(name);
    if (server === undefined) throw new RangeError(`No server ${name}`);
    return server;
  }

  /** Starts every server. */
  async start(): Promise<void> {
    for (const server of this.servers.values()) await server.start();
  }

  /** Stops every server. */
  async stop(): Promise<void> {
    for (const server of this.servers.values()) await server.stop();
    this.network.close();
  }

  /** The running leaders (normally zero or one). */
  leaders(): Server[] {
    return [...this.servers.values()].filter((server) =>
      server.running() && server.state === LEADER
    );
  }

  /** Lets every pending promise settle without moving the clock. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }

  /**
   * Advances time in steps until `condition` holds.
   * @param condition checked after each step
   * @param options `maxMs` of simulated time before failing, `stepMs` per step
   * @throws Error naming `what` when the deadline passes
   */
  async waitFor(
    condition: () => boolean,
    options: { maxMs?: number; stepMs?: number; what?: string } = {},
  ): Promise<void> {
    const maxMs = options.maxMs ?? 10_000;
    const stepMs = options.stepMs ?? 10;
    await this.settle();
    for (let elapsed = 0; !condition(); elapsed += stepMs) {
      if (elapsed >= maxMs) {
        throw new Error(
          `Timed out after ${maxMs} simulated ms waiting for ${options.what ?? "condition"}`,
        );
      }
      this.clock.advance(stepMs);
      await this.settle();
    }
  }

  /**
   * Advances time until `promise` settles.
   * @returns its value
   */
  async run<T>(promise: Promise<T>, maxMs = 10_000): Promise<T> {
    let settled = false;
    const tracked = promise.finally(() => settled = true);
    tracked.catch(() => {});
    await this.waitFor(() => settled, { maxMs, what: "promise to settle" });
    return await tracked;
  }

  /** Waits until exactly one running leader exists. @returns it */
  async waitForLeader(maxMs = 10_000): Promise<Server> {
    await this.waitFor(() => this.leaders().length === 1, { maxMs, what: "a single leader" });
    return this.leaders()[0]!;
  }

  /** Stops a server as a crash would: unsynced writes are lost, the disk stays. */
  async crash(name: string): Promise<void> {
    const server = this.server(name);
    this.network.unregister(name);
    this.disks.get(name)!.crash();
    await server.stop();
  }

  /** Starts a fresh server process on a crashed server's disk. */
  async restart(name: string): Promise<Server> {
    const server = this.#create(name, false);
    await server.start();
    return server;
  }

  /** Creates and starts a new, empty server that waits to be added by the leader. */
  async addServer(name: string): Promise<Server> {
    const server = this.#create(name, true);
    await server.start();
    return server;
  }
}
