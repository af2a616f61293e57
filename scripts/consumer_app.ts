/**
 * The app scripts/consumer_check.ts installs into fresh Bun and Node projects: a 3-node
 * cluster in one process over TCP with FileStorage, one write through the leader and one
 * linearizable read (ReadIndex). It imports only the packages' public entrypoints, as an
 * app outside this repository would. Prints `RESULT {json}` and exits 0 on success.
 * @module
 */
import {
  type ApplyContext,
  createServer,
  defineCommand,
  NotLeaderError,
  registerCommand,
  type Server,
} from "@tsraft/core";
import { FileStorage } from "@tsraft/storage-file";
import { TcpTransporter } from "@tsraft/transport-tcp";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** Each server's own replicated state: a counter. */
class Counter {
  value = 0;
  save(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ value: this.value }));
  }
  recovery(data: Uint8Array): void {
    this.value = (JSON.parse(new TextDecoder().decode(data)) as { value: number }).value;
  }
}

const Add = defineCommand({
  name: "add",
  parse: (value) => value as { amount: number },
  apply: ({ amount }: { amount: number }, { stateMachine }: ApplyContext<Counter>) =>
    stateMachine.value += amount,
});
registerCommand(Add);

/** `count` ports the OS reports free: all listened on (port 0) at once, then closed. */
async function freePorts(count: number): Promise<number[]> {
  const probes = Array.from({ length: count }, () => createNetServer());
  const ports = await Promise.all(probes.map((probe) =>
    new Promise<number>((resolve, reject) => {
      probe.on("error", reject);
      probe.listen(0, "127.0.0.1", () => {
        const address = probe.address();
        resolve(typeof address === "object" && address ? address.port : 0);
      });
    })
  ));
  await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))));
  return ports;
}

const runtime = "Bun" in globalThis
  ? "bun"
  : "Deno" in globalThis
  ? "deno"
  : `node ${process.version}`;
const deadline = setTimeout(() => {
  console.error("no result within 30 s");
  process.exit(1);
}, 30_000);

const dir = await mkdtemp(join(tmpdir(), "tsraft-app-"));
const names = ["n1", "n2", "n3"];
const ports = await freePorts(names.length);
const peers = names.map((name, i) => ({ name, connectionString: `127.0.0.1:${ports[i]}` }));
const transporters = names.map(() => new TcpTransporter({ clusterId: "consumer-check" }));
const servers: Server<Counter>[] = names.map((name, i) =>
  createServer({
    name,
    connectionString: peers[i]!.connectionString,
    peers: peers.filter((peer) => peer.name !== name),
    transporter: transporters[i]!,
    storage: new FileStorage(join(dir, name)),
    stateMachine: new Counter(),
  })
);
/**
 * Runs `action` on the leader, again on the next one if it rejects with NotLeaderError (the
 * leader lost its role, and a proposal it took is then certainly not applied).
 */
async function onLeader<T>(action: (leader: Server<Counter>) => Promise<T>): Promise<T> {
  for (;;) {
    const leader = servers.find((server) => server.state === "leader");
    if (leader !== undefined) {
      try {
        return await action(leader);
      } catch (error) {
        if (!(error instanceof NotLeaderError)) throw error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

try {
  for (const [i, server] of servers.entries()) {
    await transporters[i]!.listen(server, { hostname: "127.0.0.1", port: ports[i]! });
  }
  await Promise.all(servers.map((server) => server.start()));
  const wrote = await onLeader((leader) =>
    leader.do(Add({ amount: 5 }), { signal: AbortSignal.timeout(5000) })
  );
  const [leader, read] = await onLeader(async (leader) => {
    await leader.readIndex({ signal: AbortSignal.timeout(5000) });
    return [leader.name, leader.stateMachine?.value] as const;
  });
  console.log(`RESULT ${JSON.stringify({ runtime, leader, wrote, read })}`);
  if (wrote !== 5 || read !== 5) process.exitCode = 1;
} finally {
  for (const server of servers) await server.stop();
  for (const transporter of transporters) await transporter.close();
  await rm(dir, { recursive: true, force: true });
  clearTimeout(deadline);
}
