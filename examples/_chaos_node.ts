// One examples/kv node running inside a network namespace, for examples/chaos.ts.
import type { ChildProcess } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type ChaosNet, spawnChild } from "./_chaos_net.ts";
import { MAIN_PATH, REPO_ROOT } from "./kv/node_process.ts";

/** Client API port of every node (each node has its own namespace, so they can share it). */
export const CHAOS_PORT = 4001;

/** Settings shared by every node. */
export interface ChaosClusterSpec {
  /** The network the nodes live in. */
  net: ChaosNet;
  /** Parent of the nodes' data directories and logs. */
  dataRoot: string;
  /** Raft transport. */
  transport: "tcp" | "http";
  /** Storage. */
  storage: "file" | "kv";
  /** More arguments for every node. */
  extraArgs: string[];
}

function denoExecutable(): string {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno?.execPath() ?? "deno";
}

/** A kv node process (examples/kv/main.ts) in its namespace; kill -9, pause and restart. */
export class ChaosNode {
  /** Node number, 1-based. */
  readonly index: number;
  /** Node name (`n<index>`). */
  readonly id: string;
  /** Client API base URL, reachable from the root namespace. */
  readonly url: string;
  /** Times the process was started. */
  starts = 0;
  readonly #spec: ChaosClusterSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #tail: string[] = [];
  #retired = false;
  #paused = false;

  /** @param spec the cluster @param index node number, 1-based */
  constructor(spec: ChaosClusterSpec, index: number) {
    this.#spec = spec;
    this.index = index;
    this.id = `n${index}`;
    this.url = `http://${spec.net.address(index)}:${CHAOS_PORT}`;
  }

  /** Whether the process runs. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null &&
      this.#child.signalCode === null;
  }

  /** Whether the process is stopped with SIGSTOP (it still runs, but does nothing). */
  get paused(): boolean {
    return this.#paused && this.running;
  }

  /** Path of the file collecting everything the node printed, over all its starts. */
  get logPath(): string {
    return join(this.#spec.dataRoot, `${this.id}.log`);
  }

  /** The last lines the node printed. */
  get tail(): string {
    return this.#tail.join("\n");
  }

  /** Starts the process (again, on the same data directory); nothing after {@link retire}. */
  start(): void {
    if (this.#retired) return;
    if (this.running) throw new TypeError(`${this.id} is already running`);
    const { net, dataRoot, transport, storage, extraArgs } = this.#spec;
    const peers = Array.from({ length: net.size }, (_, k) => k + 1)
      .filter((i) => i !== this.index)
      .map((i) => `n${i}=${net.address(i)}:${CHAOS_PORT}`).join(",");
    const argv = net.exec(this.index, [
      denoExecutable(),
      "run",
      "-A",
      "--unstable-kv",
      MAIN_PATH,
      "--id",
      this.id,
      "--listen",
      `${net.address(this.index)}:${CHAOS_PORT}`,
      "--peers",
      peers,
      "--data",
      join(dataRoot, this.id),
      "--transport",
      transport,
      "--storage",
      storage,
      ...extraArgs,
    ]);
    this.starts++;
    this.#paused = false;
    this.#log(`--- start ${this.starts} at ${new Date().toISOString()}`);
    const child = spawnChild(argv, REPO_ROOT);
    this.#child = child;
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line !== "") this.#log(line);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.#exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (error) => {
        this.#log(`spawn failed: ${error.message}`);
        resolve();
      });
    });
  }

  /** Crashes the process (SIGKILL: nothing is flushed) and waits until it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#log(`--- kill -9 at ${new Date().toISOString()}`);
    this.#child?.kill("SIGKILL");
    await this.#exited;
  }

  /**
   * Freezes the process with SIGSTOP: its timers, sockets and clocks stand still while the
   * others' run on, which is what a long GC pause or a descheduled VM looks like to them.
   * @returns whether a running process was stopped
   */
  pause(): boolean {
    if (!this.running || this.#paused) return false;
    this.#log(`--- SIGSTOP at ${new Date().toISOString()}`);
    // process.kill, not child.kill: Deno's child.kill() records the signal as signalCode, so
    // a stopped child would look as if it had exited.
    process.kill(this.#child!.pid!, "SIGSTOP");
    this.#paused = true;
    return true;
  }

  /** Lets a paused process go on (SIGCONT). */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.running) return;
    this.#log(`--- SIGCONT at ${new Date().toISOString()}`);
    process.kill(this.#child!.pid!, "SIGCONT");
  }

  /** Kills the process for good: a nemesis still running cannot restart it during cleanup. */
  async retire(): Promise<void> {
    this.#retired = true;
    await this.kill();
  }

  #log(line: string): void {
    this.#tail.push(line);
    if (this.#tail.length > 60) this.#tail.shift();
    try {
      appendFileSync(this.logPath, line + "\n");
    } catch {
      // The data directory is being removed at exit.
    }
  }
}
