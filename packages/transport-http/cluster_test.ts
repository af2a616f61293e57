import { test } from "node:test";
import { Hono } from "hono";
import { CommandRegistry, createServer, type Server } from "@tsraft/core";
import {
  checkClusterCommits,
  KvSetCommand,
  KvStateMachine,
  MemoryStorage,
} from "@tsraft/core/testing";
import { HttpTransporter } from "./mod.ts";
import { type LoopbackServer, serveOnLoopback } from "./_serve.ts";

test("HttpTransporter carries a 3-node cluster: it elects a leader and commits", async () => {
  const names = ["a", "b", "c"];
  const registry = new CommandRegistry();
  registry.register(KvSetCommand);
  // Serve first (the peers need the ports); routes are installed once the servers exist.
  const apps = names.map(() => new Hono());
  const listeners: LoopbackServer[] = await Promise.all(
    apps.map((app) => serveOnLoopback(app.fetch)),
  );
  const peers = names.map((name, i) => ({
    name,
    connectionString: `127.0.0.1:${listeners[i]!.port}`,
  }));
  const machines = names.map(() => new KvStateMachine());
  const transporters = names.map(() =>
    new HttpTransporter({ clusterId: "cluster-test", timeoutMs: 500 })
  );
  const servers: Server[] = names.map((name, i) =>
    createServer({
      name,
      connectionString: peers[i]!.connectionString,
      peers: peers.filter((peer) => peer.name !== name),
      transporter: transporters[i]!,
      storage: new MemoryStorage(),
      stateMachine: machines[i]!,
      registry,
      electionTimeoutMs: 200,
      heartbeatIntervalMs: 40,
    })
  );
  servers.forEach((server, i) => transporters[i]!.install(server, apps[i]!));
  try {
    await Promise.all(servers.map((server) => server.start()));
    await checkClusterCommits(servers, machines);
  } finally {
    for (const server of servers) await server.stop();
    for (const transporter of transporters) await transporter.close();
    for (const listener of listeners) await listener.close();
  }
});
