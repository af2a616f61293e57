// Network namespaces, a bridge and iptables rules for the chaos test (examples/chaos.ts).
// Linux and root only. Every resource of one run carries the name of its slot (tsrc<k>...),
// so a later run can find and remove what a run killed with SIGKILL left behind.
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import process from "node:process";

/** Number of slots (parallel chaos runs on one machine). */
const SLOTS = 8;
/** iptables chains the faults use inside each namespace. */
const PARTITION_CHAIN = "CHAOS_PART";
const LOSS_CHAIN = "CHAOS_LOSS";

/** Result of running one command. */
export interface CommandResult {
  /** Exit code (null when it could not be started or was killed). */
  code: number | null;
  /** Standard output. */
  stdout: string;
  /** Standard error, or the spawn error. */
  stderr: string;
}

/**
 * Runs a command and collects its output; never throws.
 * @param file the program
 * @param args its arguments
 * @param options optional standard input and time limit
 * @returns exit code and output
 */
export function run(
  file: string,
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null
          ? 0
          : typeof (error as { code?: unknown }).code === "number"
          ? (error as { code: number }).code
          : null;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr) || (error === null ? "" : error.message),
        });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like {@link run}, but throws with the command's stderr when it fails. */
async function must(file: string, args: string[], input?: string): Promise<string> {
  const result = await run(file, args, input === undefined ? {} : { input });
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(" ")} failed (${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}

async function has(file: string, args: string[]): Promise<boolean> {
  return (await run(file, args, { timeoutMs: 10_000 })).code === 0;
}

/**
 * Says why the chaos test cannot run here, or undefined when it can: Linux, root, `ip`
 * (iproute2), `iptables` + `iptables-restore`, and the right to create a network namespace.
 * @param options `install`: try `apt-get install -y iproute2 iptables` when a tool is missing
 * @returns the reason to skip, or undefined
 */
export async function chaosUnsupported(
  options: { install?: boolean } = {},
): Promise<string | undefined> {
  if (process.platform !== "linux") return `needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "needs root (network namespaces and iptables)";
  const tools = async () =>
    await has("ip", ["-V"]) && await has("iptables", ["--version"]) &&
    await has("iptables-restore", ["--version"]);
  if (!await tools() && options.install) {
    console.log("chaos: installing iproute2 and iptables with apt-get");
    await run("apt-get", ["install", "-y", "-q", "iproute2", "iptables"], {
      timeoutMs: 300_000,
    });
  }
  if (!await tools()) {
    return "needs `ip` (iproute2) and `iptables` (apt-get install iproute2 iptables)";
  }
  const probe = `tsrcprobe${process.pid}`;
  const made = await run("ip", ["netns", "add", probe]);
  if (made.code !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`;
  const rules = await run("ip", ["netns", "exec", probe, "iptables", "-S"]);
  await run("ip", ["netns", "del", probe]);
  if (rules.code !== 0) return `iptables does not work in a namespace: ${rules.stderr.trim()}`;
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function lockPath(slot: number): string {
  return `/tmp/tsraft-chaos-slot-${slot}.pid`;
}

/**
 * A bridge in the root namespace and one namespace per node, each joined to the bridge by a
 * veth pair: node i is `10.77.<slot>.i`, the root namespace (the clients) `10.77.<slot>.254`.
 * Faults are iptables rules inside the nodes' namespaces, so client traffic from the root
 * namespace is never cut: a client can still reach a node on the minority side.
 */
export class ChaosNet {
  /** Slot of this run; part of every name and of the subnet. */
  readonly slot: number;
  /** Number of nodes. */
  readonly size: number;
  #created = false;

  private constructor(slot: number, size: number) {
    this.slot = slot;
    this.size = size;
  }

  /**
   * Takes a free slot (removing what a dead run left in it) and builds the network.
   * @param size number of nodes (namespaces)
   * @returns the network
   */
  static async create(size: number): Promise<ChaosNet> {
    if (!Number.isInteger(size) || size < 1 || size > 200) {
      throw new RangeError(`Cannot build a network of ${size} nodes`);
    }
    for (let slot = 0; slot < SLOTS; slot++) {
      if (!acquire(slot)) continue;
      const net = new ChaosNet(slot, size);
      try {
        await removeSlot(slot);
        await net.#build();
        return net;
      } catch (error) {
        await net.destroy();
        throw error;
      }
    }
    throw new Error(`All ${SLOTS} chaos slots are in use by running processes`);
  }

  /** @returns the namespace of node i (1-based) */
  namespace(i: number): string {
    return `tsrc${this.slot}n${i}`;
  }

  /** @returns the address of node i (1-based) */
  address(i: number): string {
    return `10.77.${this.slot}.${i}`;
  }

  get #bridge(): string {
    return `tsrc${this.slot}br`;
  }

  async #build(): Promise<void> {
    this.#created = true;
    const bridge = this.#bridge;
    await must("ip", ["link", "add", bridge, "type", "bridge"]);
    await must("ip", ["addr", "add", `10.77.${this.slot}.254/24`, "dev", bridge]);
    await must("ip", ["link", "set", bridge, "up"]);
    // With br_netfilter loaded, bridged frames cross the root FORWARD chain, whose policy
    // may be DROP (Docker sets it); let our bridge's own traffic through.
    await run("iptables", forwardRule("-I", bridge));
    for (let i = 1; i <= this.size; i++) {
      const ns = this.namespace(i);
      const host = `tsrc${this.slot}h${i}`;
      await must("ip", ["netns", "add", ns]);
      const veth = ["link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns];
      // A root end of an earlier run's pair may still be on its way out (see removeSlot).
      for (let attempt = 0;; attempt++) {
        const made = await run("ip", veth);
        if (made.code === 0) break;
        if (attempt >= 20 || !made.stderr.includes("File exists")) {
          throw new Error(`ip ${veth.join(" ")} failed: ${made.stderr.trim()}`);
        }
        await run("ip", ["link", "del", host]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await must("ip", ["link", "set", host, "master", bridge, "up"]);
      const exec = ["netns", "exec", ns];
      await must("ip", [...exec, "ip", "addr", "add", `${this.address(i)}/24`, "dev", "eth0"]);
      await must("ip", [...exec, "ip", "link", "set", "eth0", "up"]);
      await must("ip", [...exec, "ip", "link", "set", "lo", "up"]);
      await must(
        "ip",
        [...exec, "iptables-restore", "--noflush"],
        [
          "*filter",
          `:${PARTITION_CHAIN} - [0:0]`,
          `:${LOSS_CHAIN} - [0:0]`,
          `-A INPUT -j ${PARTITION_CHAIN}`,
          `-A OUTPUT -j ${PARTITION_CHAIN}`,
          `-A INPUT -j ${LOSS_CHAIN}`,
          "COMMIT",
          "",
        ].join("\n"),
      );
    }
  }

  /**
   * Cuts the network into groups: two nodes exchange packets only when some group holds
   * both (groups may overlap; a node in no group is cut from everyone). Replaces any
   * earlier partition.
   * @param groups node numbers (1-based) per group
   */
  async partition(groups: number[][]): Promise<void> {
    const together = (i: number, j: number) =>
      groups.some((group) => group.includes(i) && group.includes(j));
    await Promise.all(
      this.#nodes().map((i) => {
        const rules: string[] = [];
        for (const j of this.#nodes()) {
          if (j === i || together(i, j)) continue;
          rules.push(`-A ${PARTITION_CHAIN} -s ${this.address(j)} -j DROP`);
          rules.push(`-A ${PARTITION_CHAIN} -d ${this.address(j)} -j DROP`);
        }
        return this.#chain(i, PARTITION_CHAIN, rules);
      }),
    );
  }

  /**
   * Drops, at each node in `to`, the packets coming from the nodes in `from` (one direction
   * only; the opposite direction still flows). Replaces any earlier partition.
   * @param from senders whose packets are lost
   * @param to receivers that lose them
   */
  async dropOneWay(from: number[], to: number[]): Promise<void> {
    await Promise.all(
      this.#nodes().map((i) => {
        const rules = to.includes(i)
          ? from.filter((j) => j !== i).map((j) =>
            `-A ${PARTITION_CHAIN} -s ${this.address(j)} -j DROP`
          )
          : [];
        return this.#chain(i, PARTITION_CHAIN, rules);
      }),
    );
  }

  /**
   * Loses each packet between nodes with probability `p` on arrival (client traffic is
   * spared). Replaces any earlier loss setting.
   * @param p loss probability per packet, 0 to heal
   */
  async loss(p: number): Promise<void> {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Cannot lose packets with probability ${p}`);
    await Promise.all(
      this.#nodes().map((i) => {
        const rules = p === 0
          ? []
          : this.#nodes().filter((j) => j !== i).map((j) =>
            `-A ${LOSS_CHAIN} -s ${this.address(j)} -m statistic --mode random --probability ${
              p.toFixed(4)
            } -j DROP`
          );
        return this.#chain(i, LOSS_CHAIN, rules);
      }),
    );
  }

  /** Removes every partition and loss rule. */
  async heal(): Promise<void> {
    await Promise.all(
      this.#nodes().map(async (i) => {
        await this.#chain(i, PARTITION_CHAIN, []);
        await this.#chain(i, LOSS_CHAIN, []);
      }),
    );
  }

  /** Node numbers 1..size. */
  #nodes(): number[] {
    return Array.from({ length: this.size }, (_, k) => k + 1);
  }

  /** Replaces the rules of one chain in one namespace atomically. */
  async #chain(i: number, chain: string, rules: string[]): Promise<void> {
    const input = ["*filter", `-F ${chain}`, ...rules, "COMMIT", ""].join("\n");
    await must("ip", ["netns", "exec", this.namespace(i), "iptables-restore", "--noflush"], input);
  }

  /**
   * The command line that runs `argv` inside node i's namespace.
   * @param i node number (1-based)
   * @param argv program and arguments
   * @returns `ip netns exec <ns> ...argv`
   */
  exec(i: number, argv: string[]): string[] {
    return ["ip", "netns", "exec", this.namespace(i), ...argv];
  }

  /** Kills what still runs in the namespaces, deletes them, the bridge and the lock. */
  async destroy(): Promise<void> {
    if (this.#created) await removeSlot(this.slot);
    try {
      unlinkSync(lockPath(this.slot));
    } catch {
      // Already gone.
    }
  }
}

function forwardRule(action: "-I" | "-D", bridge: string): string[] {
  return [action, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
}

/** Takes a slot's lock file, replacing one whose owner is dead. */
function acquire(slot: number): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath(slot), "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch {
      let owner = NaN;
      try {
        owner = Number(readFileSync(lockPath(slot), "utf8").trim());
      } catch {
        continue;
      }
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      try {
        unlinkSync(lockPath(slot));
      } catch {
        // Someone else removed it first; try to create it again.
      }
    }
  }
  return false;
}

/** Removes every resource named after `slot`, whoever created it. */
async function removeSlot(slot: number): Promise<void> {
  // Deleting the root end of a veth pair deletes both ends at once; left to namespace
  // deletion, the root ends linger a moment (the kernel frees namespaces asynchronously) and
  // the next run's `ip link add` fails with "File exists".
  const links = await run("ip", ["-o", "link", "show"]);
  const veth = new RegExp(`^\\d+: (tsrc${slot}h\\d+)[@:]`);
  for (const line of links.stdout.split("\n")) {
    const name = veth.exec(line)?.[1];
    if (name !== undefined) await run("ip", ["link", "del", name]);
  }
  const prefix = `tsrc${slot}n`;
  const list = await run("ip", ["netns", "list"]);
  const namespaces = list.stdout.split("\n").map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)));
  for (const ns of namespaces) {
    const pids = await run("ip", ["netns", "pids", ns]);
    for (const pid of pids.stdout.split(/\s+/).filter((text) => text !== "").map(Number)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await run("ip", ["netns", "del", ns]);
  }
  const bridge = `tsrc${slot}br`;
  while ((await run("iptables", forwardRule("-D", bridge))).code === 0) {
    // Delete every copy (a crashed run may have left one per attempt).
  }
  await run("ip", ["link", "del", bridge]);
}

/**
 * Spawns a child that dies with us: on Linux, `ip netns exec` execs the program in place,
 * so the child's pid is the program's pid and SIGKILL reaches it.
 * @param argv program and arguments
 * @param cwd working directory
 * @param env environment @default this process's
 * @returns the child process
 */
export function spawnChild(
  argv: string[],
  cwd: string,
  env: Record<string, string | undefined> = process.env,
): ReturnType<typeof spawn> {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError("Cannot spawn an empty command line");
  return spawn(file, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
}
