import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server as NetServer } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Default admin port of a node: its client port plus this (`--admin-listen`). */
export const ADMIN_PORT_OFFSET = 2000;

/** Absolute path of the node entry point (examples/kv/main.ts). */
export const MAIN_PATH: string = fileURLToPath(new URL("./main.ts", import.meta.url));
/** The repository root, where deno.json (import map, `unstable: ["kv"]`) lives. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** How to launch one node of a local cluster. */
export interface NodeSpec {
  /** Node name. */
  id: string;
  /** Client (and http raft) port on 127.0.0.1. */
  port: number;
}

/** Settings shared by every node of a local cluster. */
export interface LocalClusterSpec {
  /** Every founding node. */
  nodes: NodeSpec[];
  /** Parent of the nodes' data directories (`<dataRoot>/<id>`). */
  dataRoot: string;
  /** Raft transport. @default "tcp" */
  transport?: "tcp" | "http";
  /** Storage. @default "file" */
  storage?: "file" | "kv";
  /** TCP raft port offset. @default 1000 */
  raftPortOffset?: number;
  /** More command-line arguments for every node (e.g. `--election-timeout-ms 200`). */
  extraArgs?: string[];
  /** Called with each line a node prints. */
  onOutput?: (id: string, line: string) => void;
  /** Entry point to run instead of {@link MAIN_PATH} (the bench's baseline build). */
  mainPath?: string;
  /** Scheme of the client API: `https` when the nodes run with `--tls-cert`. @default "http" */
  scheme?: "http" | "https";
  /** Environment variables added to every node's (e.g. `TSRAFT_KV_ADMIN_TOKEN`). */
  env?: Record<string, string>;
  /** Runtime flags for one node, before the script (e.g. `--inspect=127.0.0.1:9229`). */
  runtimeArgs?: (id: string) => string[];
}

function denoExecutable(): string {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno?.execPath() ?? "deno";
}

/**
 * The command line that starts one node of a local cluster.
 * @param spec the cluster
 * @param id the node
 * @returns arguments for `deno`
 */
export function nodeArgs(spec: LocalClusterSpec, id: string): string[] {
  const self = spec.nodes.find((node) => node.id === id);
  if (self === undefined) throw new RangeError(`No node ${id} in the cluster`);
  const peers = spec.nodes.filter((node) => node.id !== id)
    .map((node) => `${node.id}=127.0.0.1:${node.port}`).join(",");
  return [
    "run",
    "-A",
    "--unstable-kv",
    ...(spec.runtimeArgs?.(id) ?? []),
    spec.mainPath ?? MAIN_PATH,
    "--id",
    id,
    "--listen",
    `127.0.0.1:${self.port}`,
    "--peers",
    peers,
    "--data",
    join(spec.dataRoot, id),
    "--transport",
    spec.transport ?? "tcp",
    "--storage",
    spec.storage ?? "file",
    "--raft-port-offset",
    String(spec.raftPortOffset ?? 1000),
    ...(spec.extraArgs ?? []),
  ];
}

/**
 * One node running as a child process (`deno run examples/kv/main.ts`), which can be
 * killed with SIGKILL and restarted on the same data directory.
 * @example
 * ```ts ignore
 * const node = new NodeProcess(spec, "n1");
 * node.start();
 * node.kill("SIGKILL");
 * await node.exited;
 * ```
 */
export class NodeProcess {
  /** Node name. */
  readonly id: string;
  /** Client API base URL. */
  readonly url: string;
  /** Admin API base URL when the node runs with `--admin` (default address). */
  readonly adminUrl: string;
  readonly #spec: LocalClusterSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> = Promise.resolve(null);
  #output: string[] = [];

  /** @param spec the cluster @param id this node's name */
  constructor(spec: LocalClusterSpec, id: string) {
    const self = spec.nodes.find((node) => node.id === id);
    if (self === undefined) throw new RangeError(`No node ${id} in the cluster`);
    this.#spec = spec;
    this.id = id;
    this.url = `${spec.scheme ?? "http"}://127.0.0.1:${self.port}`;
    this.adminUrl = `http://127.0.0.1:${self.port + ADMIN_PORT_OFFSET}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null &&
      this.#child.signalCode === null;
  }

  /** Process id, or undefined when not running. */
  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  /** Resolves with the exit code (null when killed by a signal) once the process ends. */
  get exited(): Promise<number | null> {
    return this.#exited;
  }

  /** The last lines the process printed (stdout and stderr). */
  get output(): string {
    return this.#output.join("\n");
  }

  /** Starts the process (again). @throws TypeError when it is running */
  start(): void {
    if (this.running) throw new TypeError(`${this.id} is already running`);
    const child = spawn(denoExecutable(), nodeArgs(this.#spec, this.id), {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      ...(this.#spec.env === undefined ? {} : { env: { ...process.env, ...this.#spec.env } }),
    });
    this.#child = child;
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line === "") continue;
        this.#output.push(line);
        if (this.#output.length > 200) this.#output.shift();
        this.#spec.onOutput?.(this.id, line);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.#exited = new Promise((resolve) => {
      child.once("exit", (code) => resolve(code));
      child.once("error", (error) => {
        this.#output.push(`spawn failed: ${error.message}`);
        resolve(null);
      });
    });
  }

  /**
   * Sends a signal; SIGKILL is a crash (nothing is flushed), SIGTERM a clean stop.
   * @param signal the signal @default "SIGKILL"
   * @returns once the process has exited
   */
  async kill(signal: "SIGKILL" | "SIGTERM" | "SIGINT" = "SIGKILL"): Promise<void> {
    if (!this.running) return;
    this.#child?.kill(signal);
    await this.#exited;
  }
}

/**
 * Finds free ports on 127.0.0.1; with `offsets`, each `port + offset` is free as well (the
 * TCP raft port, the admin port). Ports are held while searching so they are distinct.
 * @param count how many
 * @param offsets also require these ports + offset to be free (0 is ignored)
 * @returns the ports
 */
export async function freePorts(count: number, ...offsets: number[]): Promise<number[]> {
  const held: NetServer[] = [];
  const ports: number[] = [];
  try {
    search: while (ports.length < count) {
      const first = await bind(0);
      if (first === undefined) throw new Error("Cannot bind any port on 127.0.0.1");
      held.push(first.server);
      for (const offset of offsets.filter((offset) => offset !== 0)) {
        if (first.port + offset > 65535) continue search;
        const other = await bind(first.port + offset);
        if (other === undefined) continue search;
        held.push(other.server);
      }
      ports.push(first.port);
    }
    return ports;
  } finally {
    await Promise.all(
      held.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }
}

function bind(port: number): Promise<{ server: NetServer; port: number } | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      resolve(
        typeof address === "object" && address !== null
          ? { server, port: address.port }
          : undefined,
      );
    });
  });
}

/** A node's `GET /status` answer. */
export interface NodeStatus {
  /** Node name. */
  id: string;
  /** Raft state. */
  state: string;
  /** Current term. */
  term: number;
  /** Known leader's name, `""` if none. */
  leader: string;
  /** Known leader's client URL. */
  leaderUrl: string | null;
  /** Commit index. */
  commitIndex: number;
  /** Last log index. */
  lastIndex: number;
  /** Applied index. */
  appliedIndex: number;
  /** Entries held in the log (after compaction). */
  logEntries: number;
  /** Other members. */
  peers: { id: string; url: string }[];
  /** Whether the node is partitioned. */
  partitioned: boolean;
}

/**
 * Fetches a node's status.
 * @param url the node's base URL
 * @param timeoutMs give up after this long
 * @param init more fetch options (e.g. `{ client }` trusting a private CA on Deno)
 * @returns the status, or undefined when the node does not answer
 */
export async function fetchStatus(
  url: string,
  timeoutMs = 1000,
  init: RequestInit = {},
): Promise<NodeStatus | undefined> {
  try {
    const response = await fetch(`${url}/status`, {
      ...init,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json() as NodeStatus;
  } catch {
    return undefined;
  }
}

/**
 * Polls `check` until it returns a value other than undefined/false, or the deadline.
 * @param check the condition (may be async)
 * @param options deadline, polling interval and the failure message
 * @returns the value `check` returned
 * @throws Error naming `message` at the deadline
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) {
      throw new Error(
        `Timed out after ${options.timeoutMs ?? 10_000} ms: ${options.message ?? "condition"}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

/**
 * Waits until the running nodes agree on one leader in one term.
 * @param urls base URLs of the nodes to ask
 * @param options deadline
 * @returns the leader's status
 */
export async function waitForLeader(
  urls: string[],
  options: { timeoutMs?: number; exclude?: string; init?: RequestInit } = {},
): Promise<NodeStatus> {
  return await waitFor(async () => {
    const statuses = (await Promise.all(urls.map((url) => fetchStatus(url, 500, options.init))))
      .filter((status): status is NodeStatus => status !== undefined);
    const leader = statuses.find((status) =>
      status.state === "leader" && status.id !== options.exclude
    );
    if (leader === undefined) return undefined;
    const agree = statuses.every((status) =>
      status.term === leader.term && status.leader === leader.id
    );
    return agree ? leader : undefined;
  }, { timeoutMs: options.timeoutMs ?? 10_000, message: "a leader all running nodes follow" });
}
