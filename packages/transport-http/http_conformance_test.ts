// The shared transporter conformance suite over real loopback servers, served by the
// running runtime (Deno.serve, Bun.serve or @hono/node-server) and sent with each client.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { transporterConformance } from "@tsraft/core/testing";
import { HttpTransporter } from "./http_transporter.ts";
import { makeHttpClient } from "./http_client.ts";
import { type LoopbackServer, serveOnLoopback, serverKinds } from "./_serve.ts";

async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const VARIANTS: { implementation: "fetch" | "node"; server: "auto" | "node" }[] = [
  { implementation: "fetch", server: "auto" },
  { implementation: "node", server: "auto" },
  // @hono/node-server, whatever runtime runs the test (but see serverKinds()).
  ...serverKinds().includes("node") ? [{ implementation: "fetch", server: "node" } as const] : [],
];

for (const { implementation, server: serverKind } of VARIANTS) {
  const label = `HttpTransporter (${implementation} client, ${serverKind} server)`;
  transporterConformance(label, () => {
    const client = makeHttpClient(5000, { implementation });
    const transporter = new HttpTransporter({ client, clusterId: "conformance" });
    const servers: LoopbackServer[] = [];
    return Promise.resolve({
      transporter,
      async serve(handler) {
        const app = new Hono();
        // Each server checks the cluster id too, so the header path is exercised.
        new HttpTransporter({ client, clusterId: "conformance" }).install(handler, app);
        const server = await serveOnLoopback(app.fetch, { server: serverKind });
        servers.push(server);
        return { name: handler.name, connectionString: `127.0.0.1:${server.port}` };
      },
      async unreachablePeer() {
        return { name: "nobody", connectionString: `127.0.0.1:${await closedPort()}` };
      },
      async close() {
        client.close?.();
        await Promise.all(servers.map((server) => server.close()));
      },
    });
  });
}
