/**
 * What every cluster benchmark shares: a trivial counter state machine and command, a
 * closed-loop load generator around `Server.do`, and latency statistics.
 * @module
 */
import {
  type Command,
  CommandRegistry,
  type Context,
  LEADER,
  type Server,
  type StateMachine,
} from "@tsraft/core";

/** Bytes of payload each benchmark command carries (a small key/value write). */
export const COMMAND_BYTES = 16;

/** The state every node keeps: one counter. */
export class CounterStateMachine implements StateMachine {
  /** Sum of every applied increment. */
  value = 0;

  /** @returns the counter as 8 bytes */
  save(): Uint8Array {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, this.value);
    return bytes;
  }

  /** Restores the counter from {@link save}'s bytes. */
  recovery(data: Uint8Array): void {
    this.value = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0);
  }
}

/** Adds its first payload byte to the counter; the rest is padding of {@link COMMAND_BYTES}. */
export class IncrementCommand implements Command<number> {
  /** Name in the log. */
  static readonly commandName = "bench:inc";
  /** Name in the log. */
  readonly commandName = IncrementCommand.commandName;
  readonly #payload: Uint8Array;

  /** @param payload the bytes stored in the log */
  constructor(payload: Uint8Array = makePayload(1)) {
    this.#payload = payload;
  }

  /** @returns the command read back from the log */
  static decode(data: Uint8Array): IncrementCommand {
    return new IncrementCommand(data);
  }

  /** @returns the bytes stored in the log */
  encode(): Uint8Array {
    return this.#payload;
  }

  /** @returns the counter after the increment */
  apply(context: Context): number {
    const machine = (context.server as Server).stateMachine as CounterStateMachine;
    machine.value += this.#payload[0] ?? 0;
    return machine.value;
  }
}

function makePayload(by: number): Uint8Array {
  const payload = new Uint8Array(COMMAND_BYTES);
  payload[0] = by;
  return payload;
}

/** @returns a registry that knows {@link IncrementCommand} */
export function benchRegistry(): CommandRegistry {
  const registry = new CommandRegistry();
  registry.register(IncrementCommand);
  return registry;
}

/** Summary of one closed-loop run. */
export interface LoadResult {
  clients: number;
  /** Commands committed and applied inside the measured window. */
  commits: number;
  /** Commands that failed (lost leadership, timeouts). */
  errors: number;
  elapsedMs: number;
  commitsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Options of {@link runClients}. */
export interface RunClientsOptions {
  /** Concurrent clients, each awaiting its previous command. */
  clients: number;
  /** Length of the measured window. */
  durationMs: number;
  /** Load before the window starts (JIT, connection and batch warm-up), not counted. */
  warmupMs: number;
  /**
   * Stop once this many commands have committed (warm-up included), even if the window has
   * not ended; `durationMs` is then a deadline. A failed command is retried while the
   * server leads; once it does not, the run ends (the caller goes on on the new leader).
   * @default no limit
   */
  commands?: number;
}

/**
 * Runs `options.clients` closed-loop clients against `server.do` and measures the commands
 * that start inside the window after the warm-up.
 * @param server the leader
 * @param options clients, window, warm-up and an optional number of commands
 * @returns throughput and latency percentiles
 */
export async function runClients(server: Server, options: RunClientsOptions): Promise<LoadResult> {
  const command = new IncrementCommand();
  const latencies: number[] = [];
  let errors = 0;
  // Commands not yet started; a failed one is handed back so exactly `commands` commit.
  let unclaimed = options.commands ?? Infinity;
  const startMs = performance.now() + options.warmupMs;
  const endMs = startMs + options.durationMs;
  async function client(): Promise<void> {
    for (;;) {
      const sentMs = performance.now();
      if (sentMs >= endMs || unclaimed <= 0) return;
      unclaimed--;
      try {
        await server.do(command);
      } catch {
        errors++;
        unclaimed++;
        if (options.commands !== undefined && server.state !== LEADER) return;
        // A failed command (no leader) must not spin: the run reports the errors.
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      if (sentMs >= startMs) latencies.push(performance.now() - sentMs);
    }
  }
  await Promise.all(Array.from({ length: options.clients }, client));
  const finishedMs = performance.now();
  // A run of a number of commands ends when its last command does, not at endMs.
  const elapsedMs = (options.commands !== undefined ? finishedMs : Math.max(finishedMs, endMs)) -
    startMs;
  return summarize(options.clients, latencies, errors, elapsedMs);
}

/**
 * @param clients concurrent clients
 * @param latenciesMs one latency per completed command
 * @param errors failed commands
 * @param elapsedMs length of the window
 * @returns the figures of a {@link LoadResult}
 */
export function summarize(
  clients: number,
  latenciesMs: number[],
  errors: number,
  elapsedMs: number,
): LoadResult {
  const sorted = Float64Array.from(latenciesMs).sort();
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    clients,
    commits: sorted.length,
    errors,
    elapsedMs: round(elapsedMs, 1),
    commitsPerSec: Math.round(sorted.length / (elapsedMs / 1000)),
    p50Ms: round(percentile(sorted, 0.5), 3),
    p90Ms: round(percentile(sorted, 0.9), 3),
    p99Ms: round(percentile(sorted, 0.99), 3),
    maxMs: round(sorted[sorted.length - 1] ?? NaN, 3),
    meanMs: round(sorted.length > 0 ? sum / sorted.length : NaN, 3),
  };
}

/** @returns the q-quantile of sorted values (nearest rank), NaN when empty */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** @returns value rounded to `digits` decimals */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
