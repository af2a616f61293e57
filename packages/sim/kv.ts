import type { Clock, Command, CommandRegistry, Context, StateMachine } from "@tsraft/core";
import type { KvInput, KvOutput } from "./linearizability.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a KV command resolves `server.do()` with: the model's output and the entry's index. */
export interface KvResult {
  /** The output, as `kvModel` of the linearizability checker defines it. */
  output: KvOutput;
  /** Log index of the entry that carried the command. */
  index: number;
}

/**
 * The simulated servers' state machine: a string map whose operations match `kvModel`, with
 * snapshots (`save`/`recovery`), that checks it applies each log index at most once and in
 * increasing order (exactly-once apply).
 *
 * @example
 * ```ts
 * import { SimKv } from "@tsraft/sim";
 * const kv = new SimKv();
 * kv.apply(3, { op: "put", key: "x", value: "1" });
 * const copy = new SimKv();
 * copy.recovery(kv.save());
 * if (copy.get("x") !== "1" || copy.lastApplied !== 3) throw new Error("not restored");
 * ```
 */
export class SimKv implements StateMachine {
  #data = new Map<string, string>();
  #lastApplied = 0;
  /** Set by the simulator: reports a command applied twice or out of order. */
  onViolation: ((text: string) => void) | undefined;
  /** Set by the simulator: the clock async commands wait on. */
  clock: Clock | undefined;

  /** Highest log index applied (restored from snapshots). */
  get lastApplied(): number {
    return this.#lastApplied;
  }

  /**
   * Applies an operation carried by log entry `index`.
   * @returns the output
   */
  apply(index: number, input: KvInput): KvOutput {
    if (index <= this.#lastApplied) {
      this.onViolation?.(
        `exactly-once apply: entry ${index} applied after entry ${this.#lastApplied} ` +
          `(${JSON.stringify(input)})`,
      );
    }
    this.#lastApplied = Math.max(this.#lastApplied, index);
    const current = this.#data.get(input.key) ?? null;
    switch (input.op) {
      case "get":
        return current;
      case "put":
        this.#data.set(input.key, input.value);
        return "ok";
      case "delete":
        this.#data.delete(input.key);
        return "ok";
      case "cas":
        if (current !== input.expect) return false;
        this.#data.set(input.key, input.value);
        return true;
    }
  }

  /** A key's value. @returns it, or null */
  get(key: string): string | null {
    return this.#data.get(key) ?? null;
  }

  /** Serializes the map and the applied index. @returns JSON bytes */
  save(): Uint8Array {
    const sorted = [...this.#data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encoder.encode(JSON.stringify({ lastApplied: this.#lastApplied, data: sorted }));
  }

  /** Replaces the state with {@link SimKv.save}'s bytes. */
  recovery(bytes: Uint8Array): void {
    const parsed = JSON.parse(decoder.decode(bytes)) as {
      lastApplied: number;
      data: [string, string][];
    };
    this.#data = new Map(parsed.data);
    this.#lastApplied = parsed.lastApplied;
  }
}

/** A KV operation applied synchronously. */
export class KvCommand implements Command<KvResult> {
  /** Name in the log. */
  static readonly commandName: string = "sim:kv";
  /** Name in the log. */
  readonly commandName: string = KvCommand.commandName;
  /** Creates an instance. @param input the operation */
  constructor(readonly input: KvInput) {}
  /** Decodes from the log. @returns the command */
  static fromJSON(json: unknown): KvCommand {
    return new KvCommand((json as { input: KvInput }).input);
  }
  /** Applies to the server's {@link SimKv}. @returns the output and index */
  apply(context: Context): KvResult {
    const kv = context.server.stateMachine as SimKv;
    return { output: kv.apply(context.currentIndex, this.input), index: context.currentIndex };
  }
}

/**
 * A KV operation applied asynchronously: `apply` returns a promise that settles after a
 * little simulated time, so the server's apply loop must wait for it.
 */
export class AsyncKvCommand implements Command<KvResult> {
  /** Name in the log. */
  static readonly commandName: string = "sim:kv-async";
  /** Name in the log. */
  readonly commandName: string = AsyncKvCommand.commandName;
  /** Creates an instance. @param input the operation @param delayMs how long apply takes */
  constructor(readonly input: KvInput, readonly delayMs: number) {}
  /** Decodes from the log. @returns the command */
  static fromJSON(json: unknown): AsyncKvCommand {
    const { input, delayMs } = json as { input: KvInput; delayMs: number };
    return new AsyncKvCommand(input, delayMs);
  }
  /** Waits `delayMs` on the state machine's clock, then applies. @returns the output and index */
  async apply(context: Context): Promise<KvResult> {
    const kv = context.server.stateMachine as SimKv;
    const index = context.currentIndex;
    const clock = kv.clock;
    await new Promise<void>((resolve) =>
      clock === undefined || this.delayMs === 0
        ? queueMicrotask(resolve)
        : clock.setTimeout(resolve, this.delayMs)
    );
    return { output: kv.apply(index, this.input), index };
  }
}

/**
 * Registers the simulator's commands.
 * @param registry where to register them
 */
export function registerKvCommands(registry: CommandRegistry): void {
  registry.register(KvCommand);
  registry.register(AsyncKvCommand);
}
