import { test } from "node:test";
import { CommandRegistry, createServer, type RaftHandler, type Server } from "@tsraft/core";
import {
  checkClusterCommits,
  KvSetCommand,
  KvStateMachine,
  MemoryStorage,
} from "@tsraft/core/testing";
import { TcpTransporter } from "./mod.ts";

test("TcpTransporter carries a 3-node cluster: it elects a leader and commits", async () => {
  const names = ["a", "b", "c"];
  const registry = new CommandRegistry();
  registry.register(KvSetCommand);
  const transporters = names.map(() =>
    new TcpTransporter({ clusterId: "cluster-test", timeoutMs: 500 })
  );
  const servers: Server[] = [];
  // Listen first (the peers need the ports), delegating to servers created afterwards.
  const addresses = await Promise.all(transporters.map((transporter, i) => {
    const handler = new Proxy({} as RaftHandler, {
      get: (_target, property) => {
        const server = servers[i]!;
        const value = Reflect.get(server, property, server);
        return typeof value === "function" ? value.bind(server) : value;
      },
    });
    return transporter.listen(handler, { hostname: "127.0.0.1", port: 0 });
  }));
  const peers = names.map((name, i) => ({
    name,
    connectionString: `127.0.0.1:${addresses[i]!.port}`,
  }));
  const machines = names.map(() => new KvStateMachine());
  names.forEach((name, i) => {
    servers.push(createServer({
      name,
      connectionString: peers[i]!.connectionString,
      peers: peers.filter((peer) => peer.name !== name),
      transporter: transporters[i]!,
      storage: new MemoryStorage(),
      stateMachine: machines[i]!,
      registry,
      electionTimeoutMs: 150,
      heartbeatIntervalMs: 30,
    }));
  });
  try {
    await Promise.all(servers.map((server) => server.start()));
    await checkClusterCommits(servers, machines);
  } finally {
    for (const server of servers) await server.stop();
    for (const transporter of transporters) await transporter.close();
  }
});
