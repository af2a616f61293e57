import type { Server } from "../server.ts";
import { KvSetCommand, type KvStateMachine } from "./test_cluster.ts";
import { waitUntil } from "./wait_until.ts";

/**
 * Checks that running servers (on any real transport) elect exactly one leader, commit
 * `count` concurrent {@link KvSetCommand}s through it and apply them on every server: the
 * end-to-end check each transport's cluster test shares.
 * @param servers started servers, one {@link KvStateMachine} each
 * @param machines their state machines, in the same order
 * @param options `count` commands (@default 50), `timeoutMs` per wait (@default 10000)
 * @throws Error when there is no single leader, a command fails, or a server does not apply
 * @example
 * ```ts
 * import { checkClusterCommits, TestCluster } from "@tsraft/core/testing";
 * const cluster = new TestCluster(["a"]);
 * await cluster.start();
 * const run = checkClusterCommits([cluster.server("a")], [cluster.machines.get("a")!], { count: 3 });
 * const ticking = setInterval(() => cluster.clock.advance(50), 1);
 * await run.finally(() => clearInterval(ticking));
 * await cluster.stop();
 * ```
 */
export async function checkClusterCommits(
  servers: Server[],
  machines: KvStateMachine[],
  options: { count?: number; timeoutMs?: number } = {},
): Promise<void> {
  const count = options.count ?? 50;
  const timeoutMs = options.timeoutMs ?? 10_000;
  await waitUntil(() => servers.filter((server) => server.state === "leader").length === 1, {
    timeoutMs,
    what: "a single leader",
  });
  const leader = servers.find((server) => server.state === "leader")!;
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => leader.do(new KvSetCommand(`k${i}`, `v${i}`))),
  );
  if (results.length !== count) throw new Error(`${results.length} of ${count} commands resolved`);
  const lastKey = `k${count - 1}`;
  await waitUntil(
    () => machines.every((machine) => machine.data.get(lastKey) === `v${count - 1}`),
    {
      timeoutMs,
      what: "every server to apply the commands",
    },
  );
  for (const [i, machine] of machines.entries()) {
    for (let k = 0; k < count; k++) {
      if (machine.data.get(`k${k}`) !== `v${k}`) throw new Error(`server ${i} lacks k${k}`);
    }
  }
}
