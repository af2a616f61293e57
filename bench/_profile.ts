/**
 * CPU profiles of a child process through the V8 inspector protocol (the child runs with
 * `--inspect`), and a summary of where the samples fall: by function and by file.
 * @module
 */

/** A V8 CPU profile (`.cpuprofile`, openable in Chrome DevTools). */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A connection to a process's inspector. */
export class InspectorSession {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, (message: Record<string, unknown>) => void>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as Record<string, unknown>;
      const id = message.id as number | undefined;
      if (id === undefined) return;
      this.#pending.get(id)?.(message);
      this.#pending.delete(id);
    };
  }

  /**
   * @param port the child's inspector port
   * @returns an open session
   */
  static async connect(port: number): Promise<InspectorSession> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      webSocketDebuggerUrl: string;
    }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (url === undefined) throw new Error(`No inspector target on port ${port}`);
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`Cannot connect to the inspector at ${url}`));
    });
    const session = new InspectorSession(socket);
    await session.#call("Profiler.enable");
    return session;
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (message) => {
        if (message.error !== undefined) {
          reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
        } else resolve((message.result ?? {}) as Record<string, unknown>);
      });
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Starts sampling every `intervalUs` microseconds. */
  async startProfiling(intervalUs = 200): Promise<void> {
    await this.#call("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.#call("Profiler.start");
  }

  /** @returns the profile since {@link startProfiling} */
  async stopProfiling(): Promise<CpuProfile> {
    const result = await this.#call("Profiler.stop");
    return result.profile as CpuProfile;
  }

  /** Closes the connection. */
  close(): void {
    this.#socket.close();
  }
}

/** Self time of one function or file in a profile. */
export interface HotSpot {
  name: string;
  selfMs: number;
  percent: number;
}

/**
 * @param profile a CPU profile
 * @param top how many entries to keep
 * @returns the functions and files with the most self time, and the idle share
 */
export function summarizeProfile(
  profile: CpuProfile,
  top = 15,
): { totalMs: number; idlePercent: number; functions: HotSpot[]; files: HotSpot[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === "(idle)") idleUs += us;
    const file = shortUrl(frame.url) || frame.functionName;
    const where = frame.url === "" ? "" : ` ${file}:${frame.lineNumber + 1}`;
    const key = `${frame.functionName || "(anonymous)"}${where}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const rank = (map: Map<string, number>): HotSpot[] =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({
      name,
      selfMs: Math.round(us / 100) / 10,
      percent: Math.round((us / totalUs) * 1000) / 10,
    }));
  return {
    totalMs: Math.round(totalUs / 1000),
    idlePercent: Math.round((idleUs / totalUs) * 1000) / 10,
    functions: rank(functions),
    files: rank(files),
  };
}

function shortUrl(url: string): string {
  const packages = url.indexOf("/packages/");
  if (packages >= 0) return url.slice(packages + 1);
  const npm = url.indexOf("/npm/registry.npmjs.org/");
  if (npm >= 0) return "npm:" + url.slice(npm + "/npm/registry.npmjs.org/".length);
  const bench = url.indexOf("/bench/");
  if (bench >= 0) return url.slice(bench + 1);
  return url.replace(/^ext:/, "ext:");
}
