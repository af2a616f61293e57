// One examples/kv node running inside a network namespace, for examples/chaos.ts.
import type { ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type ChaosNet, run, spawnChild } from "./_chaos_net.ts";
import { MAIN_PATH, REPO_ROOT } from "./kv/node_process.ts";

/** Client API port of every node (each node has its own namespace, so they can share it). */
export const CHAOS_PORT = 4001;
/** Admin API port of every node, on its namespace's address (the root namespace reaches it). */
export const CHAOS_ADMIN_PORT = 6001;

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
  /** Nodes 1..founders bootstrap the cluster; later ones start with `--join`. */
  founders: number;
  /** Bearer token of the nodes' admin API (`--admin`), passed in the environment. */
  adminToken: string;
  /** Called with every line a node prints. */
  onLine?: (node: ChaosNode, line: string) => void;
  /** Path of the built EIO shim (examples/_chaos_eio.c), preloaded into every node. */
  eioShim?: string;
}

/** Name of the file that fills a node's tmpfs. */
const FILLER = "chaos-filler";

async function mustRun(file: string, args: string[]): Promise<void> {
  const result = await run(file, args);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(" ")} failed (${result.code}): ${result.stderr.trim()}`);
  }
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
  /** Admin API base URL, reachable from the root namespace. */
  readonly adminUrl: string;
  /**
   * Whether the node should be in the cluster's membership as far as the nemeses know: a
   * founder at first; false once removed, until added again.
   */
  member: boolean;
  /** Start with `--join` (no membership of its own; wait to be added). */
  joining: boolean;
  /** Times the process was started. */
  starts = 0;
  readonly #spec: ChaosClusterSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #tail: string[] = [];
  #retired = false;
  #paused = false;
  #disk: { stash: string } | undefined;
  #failingWrites = false;
  #watchers = new Set<{ pattern: RegExp; found: (line: string) => void }>();

  /** @param spec the cluster @param index node number, 1-based */
  constructor(spec: ChaosClusterSpec, index: number) {
    this.#spec = spec;
    this.index = index;
    this.id = `n${index}`;
    this.url = `http://${spec.net.address(index)}:${CHAOS_PORT}`;
    this.adminUrl = `http://${spec.net.address(index)}:${CHAOS_ADMIN_PORT}`;
    this.member = index <= spec.founders;
    this.joining = !this.member;
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
    const peers = Array.from({ length: this.#spec.founders }, (_, k) => k + 1)
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
      "--admin",
      "--admin-listen",
      `${net.address(this.index)}:${CHAOS_ADMIN_PORT}`,
      ...(this.joining ? ["--join"] : []),
      ...extraArgs,
    ]);
    this.starts++;
    this.#paused = false;
    this.#log(`--- start ${this.starts} at ${new Date().toISOString()}`);
    const eio = this.#spec.eioShim === undefined ? {} : {
      LD_PRELOAD: this.#spec.eioShim,
      TSRAFT_EIO_DIR: this.dataDir,
      TSRAFT_EIO_TRIGGER: this.#eioTrigger,
    };
    const child = spawnChild(argv, REPO_ROOT, {
      ...process.env,
      TSRAFT_KV_ADMIN_TOKEN: this.#spec.adminToken,
      ...eio,
    });
    this.#child = child;
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line === "") continue;
        this.#log(line);
        this.#spec.onLine?.(this, line);
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

  /** Path of the node's data directory. */
  get dataDir(): string {
    return join(this.#spec.dataRoot, this.id);
  }

  /** Deletes the data directory of a stopped node: it starts again as a fresh machine. */
  wipe(): void {
    if (this.running) throw new TypeError(`Cannot wipe ${this.id} while it runs`);
    this.#log(`--- data directory wiped at ${new Date().toISOString()}`);
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Sends an admin request (POST, JSON body, bearer token); never throws.
   * @param path e.g. `/admin/transfer`
   * @param body the JSON body
   * @param timeoutMs request limit
   * @returns the status (0 when unreachable or timed out) and the parsed body
   */
  async admin(
    path: string,
    body: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    try {
      const response = await fetch(this.adminUrl + path, {
        method: "POST",
        headers: {
          authorization: `Bearer ${this.#spec.adminToken}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { text };
      }
      return { status: response.status, body: parsed };
    } catch (error) {
      return { status: 0, body: { error: error instanceof Error ? error.name : String(error) } };
    }
  }

  /** Kills the process for good (a nemesis still running cannot restart it) and unmounts. */
  async retire(): Promise<void> {
    this.#retired = true;
    await this.kill();
    if (this.#disk !== undefined) await run("umount", ["-l", this.dataDir]);
  }

  /**
   * Waits until the node prints a line matching `pattern`.
   * @param pattern what to look for
   * @param timeoutMs how long to wait
   * @returns the line, or undefined when none came in time
   */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
    return new Promise((resolve) => {
      const watcher = {
        pattern,
        found: (line: string | undefined) => {
          clearTimeout(timer);
          this.#watchers.delete(watcher);
          resolve(line);
        },
      };
      const timer = setTimeout(() => watcher.found(undefined), timeoutMs);
      this.#watchers.add(watcher);
    });
  }

  get #eioTrigger(): string {
    return join(this.#spec.dataRoot, `${this.id}.eio`);
  }

  /** Whether writes under the data directory fail with EIO ({@link failWrites}). */
  get failingWrites(): boolean {
    return this.#failingWrites;
  }

  /** Whether a disk fault is on: a full tmpfs or failing writes. */
  get diskFault(): boolean {
    return this.#disk !== undefined || this.#failingWrites;
  }

  /**
   * Makes every write and fsync under the data directory fail with EIO (through the shim
   * preloaded into the node, spec.eioShim), or stops it.
   * @param on whether writes fail
   */
  failWrites(on: boolean): void {
    if (this.#spec.eioShim === undefined) throw new TypeError("The EIO shim is not built");
    this.#failingWrites = on;
    if (on) writeFileSync(this.#eioTrigger, "");
    else rmSync(this.#eioTrigger, { force: true });
    this.#log(`--- writes ${on ? "fail with EIO" : "work again"} at ${new Date().toISOString()}`);
  }

  /** Whether the data directory is on a small tmpfs ({@link fillDisk}). */
  get diskFull(): boolean {
    return this.#disk !== undefined;
  }

  /**
   * Puts the (stopped) node's data directory on a tmpfs just larger than what it holds, then
   * fills it with a filler file until `freeBytes` are left: once the node has written that
   * much, its writes fail with ENOSPC. Needs root (mount).
   * @param options bytes left free, and the least size of the tmpfs
   * @returns the size of the tmpfs and the bytes left free
   * @throws Error when mount fails (the data directory is put back first)
   */
  async fillDisk(
    options: { freeBytes: number; minSizeBytes: number },
  ): Promise<{ sizeBytes: number; freeBytes: number }> {
    if (this.running) throw new TypeError(`Cannot move ${this.id}'s data while it runs`);
    if (this.#disk !== undefined) throw new TypeError(`${this.id}'s disk is already full`);
    const dir = this.dataDir;
    const stash = `${dir}.disk`;
    mkdirSync(dir, { recursive: true });
    const used = Number((await run("du", ["-sb", dir])).stdout.split(/\s/)[0]) || 0;
    const page = 64 * 1024;
    const sizeBytes = Math.max(
      options.minSizeBytes,
      Math.ceil((used * 1.2 + options.freeBytes + 256 * 1024) / page) * page,
    );
    renameSync(dir, stash);
    mkdirSync(dir);
    const mounted = await run("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", dir]);
    if (mounted.code !== 0) {
      rmSync(dir, { recursive: true, force: true });
      renameSync(stash, dir);
      throw new Error(`mount -t tmpfs failed: ${mounted.stderr.trim()}`);
    }
    this.#disk = { stash };
    await mustRun("cp", ["-a", `${stash}/.`, dir]);
    const avail = Number((await run("df", ["-B1", "--output=avail", dir])).stdout.split("\n")[1]);
    const filler = Math.max(0, avail - options.freeBytes);
    writeFileSync(join(dir, FILLER), new Uint8Array(filler));
    const left = Number((await run("df", ["-B1", "--output=avail", dir])).stdout.split("\n")[1]);
    this.#log(
      `--- data directory on a ${sizeBytes}-byte tmpfs, ${left} bytes free, at ${
        new Date().toISOString()
      }`,
    );
    return { sizeBytes, freeBytes: left };
  }

  /** @returns the bytes free on the tmpfs of {@link fillDisk}, undefined without one */
  async diskFreeBytes(): Promise<number | undefined> {
    if (this.#disk === undefined) return undefined;
    return Number((await run("df", ["-B1", "--output=avail", this.dataDir])).stdout.split("\n")[1]);
  }

  /**
   * Ends {@link fillDisk} on a stopped node: copies what the node wrote on the tmpfs (all
   * of it, torn tail included: what it acknowledged must survive) back to the disk,
   * unmounts the tmpfs and puts the data directory back in place.
   */
  async clearDisk(): Promise<void> {
    if (this.#disk === undefined) return;
    if (this.running) throw new TypeError(`Cannot move ${this.id}'s data while it runs`);
    const dir = this.dataDir;
    const { stash } = this.#disk;
    rmSync(join(dir, FILLER), { force: true });
    rmSync(stash, { recursive: true, force: true });
    mkdirSync(stash);
    await mustRun("cp", ["-a", `${dir}/.`, stash]);
    await mustRun("umount", [dir]);
    this.#disk = undefined;
    rmSync(dir, { recursive: true, force: true });
    renameSync(stash, dir);
    this.#log(`--- data directory back on disk at ${new Date().toISOString()}`);
  }

  #log(line: string): void {
    for (const watcher of this.#watchers) if (watcher.pattern.test(line)) watcher.found(line);
    this.#tail.push(line);
    if (this.#tail.length > 60) this.#tail.shift();
    try {
      appendFileSync(this.logPath, line + "\n");
    } catch {
      // The data directory is being removed at exit.
    }
  }
}
