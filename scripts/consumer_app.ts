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

/** A port the OS reports free (listen on 0, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
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
const ports = [await freePort(), await freePort(), await freePort()];
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
try {
  for (const [i, server] of servers.entries()) {
    await transporters[i]!.listen(server, { hostname: "127.0.0.1", port: ports[i]! });
  }
  await Promise.all(servers.map((server) => server.start()));
  let leader: Server<Counter> | undefined;
  while ((leader = servers.find((server) => server.state === "leader")) === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const wrote = await leader.do(Add({ amount: 5 }), { signal: AbortSignal.timeout(5000) });
  await leader.readIndex({ signal: AbortSignal.timeout(5000) });
  const read = leader.stateMachine?.value;
  console.log(`RESULT ${JSON.stringify({ runtime, leader: leader.name, wrote, read })}`);
  if (wrote !== 5 || read !== 5) process.exitCode = 1;
} finally {
  for (const server of servers) await server.stop();
  for (const transporter of transporters) await transporter.close();
  await rm(dir, { recursive: true, force: true });
  clearTimeout(deadline);
}
