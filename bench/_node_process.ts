/**
 * The parent's side of `bench/_bench_node.ts`: spawns a node process, sends it instructions
 * and matches its answers by id.
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type NodeConfig, REPLY_PREFIX } from "./_protocol.ts";

const NODE_SCRIPT = fileURLToPath(new URL("./_bench_node.ts", import.meta.url));

/** Options of {@link NodeProcess.spawn}. */
export interface SpawnOptions {
  /** Open the V8 inspector on this port (for CPU profiles). */
  inspectPort?: number;
}

/** A running `_bench_node.ts` child. */
export class NodeProcess {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (answer: Record<string, unknown>) => void>();
  #nextId = 1;
  #stderr = "";
  #exited = false;
  #listening: Promise<number>;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.#child = child;
    let onListening: (port: number) => void = () => {};
    let onFailed: (error: Error) => void = () => {};
    this.#listening = new Promise<number>((resolve, reject) => {
      onListening = resolve;
      onFailed = reject;
    });
    this.#listening.catch(() => {});
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      if (!line.startsWith(REPLY_PREFIX)) {
        this.#keepLog(line + "\n");
        return;
      }
      const answer = JSON.parse(line.slice(REPLY_PREFIX.length)) as Record<string, unknown>;
      if (answer.event === "listening") onListening(answer.port as number);
      const id = answer.id as number | undefined;
      if (id === undefined) return;
      const resolve = this.#pending.get(id);
      this.#pending.delete(id);
      resolve?.(answer);
    });
    child.stderr!.on("data", (chunk: Uint8Array) => this.#keepLog(new TextDecoder().decode(chunk)));
    child.on("exit", (code, signal) => {
      this.#exited = true;
      const error = new Error(
        `node ${name} exited (code ${code}, signal ${signal}); its log ends with:\n${this.#stderr}`,
      );
      onFailed(error);
      for (const resolve of this.#pending.values()) resolve({ ok: false, error: error.message });
      this.#pending.clear();
    });
  }

  /**
   * Starts a node process.
   * @param config what the node is
   * @param options inspector port
   * @returns the process (listening is awaited with {@link NodeProcess.port})
   */
  static spawn(config: NodeConfig, options: SpawnOptions = {}): NodeProcess {
    const inspect = options.inspectPort === undefined
      ? []
      : [`--inspect=127.0.0.1:${options.inspectPort}`];
    const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
    // execArgv carries tsx's loader flags when Node runs the .ts sources through tsx.
    const command = deno !== undefined
      ? [deno.execPath(), "run", "-A", "--unstable-kv", ...inspect, NODE_SCRIPT]
      : [process.execPath, ...process.execArgv, ...inspect, NODE_SCRIPT];
    const child = spawn(command[0]!, [...command.slice(1), JSON.stringify(config)], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    return new NodeProcess(config.name, child);
  }

  #keepLog(text: string): void {
    this.#stderr = (this.#stderr + text).slice(-4000);
  }

  /** The recent log lines of the child (stderr and stray stdout). */
  get log(): string {
    return this.#stderr;
  }

  /** @returns the port the node listens on, once it does */
  port(): Promise<number> {
    return this.#listening;
  }

  /**
   * Sends an instruction and waits for its answer.
   * @param instruction the instruction without its id
   * @returns the answer
   * @throws Error when the answer is not ok, or the child exits first
   */
  async request(instruction: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.#exited) throw new Error(`node ${this.name} has exited:\n${this.#stderr}`);
    const id = this.#nextId++;
    const answer = await new Promise<Record<string, unknown>>((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.stdin!.write(JSON.stringify({ id, ...instruction }) + "\n");
    });
    if (answer.ok !== true) {
      throw new Error(`node ${this.name}: ${String(answer.error)}`);
    }
    return answer;
  }

  /**
   * Asks the node to stop, and kills it if it has not exited within `graceMs`.
   * @param graceMs how long to wait for a clean exit
   */
  async close(graceMs = 3000): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.stdin!.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      exited,
      new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
    ]);
    clearTimeout(timer);
    if (!this.#exited) {
      this.#child.kill("SIGKILL");
      await exited;
    }
  }

  /** Kills the child at once (on errors and signals). */
  kill(): void {
    if (!this.#exited) this.#child.kill("SIGKILL");
  }
}
