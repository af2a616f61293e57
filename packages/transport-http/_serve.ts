// Serves a fetch handler on a loopback port with whatever runtime is running, for the
// tests and the benchmark (the same file runs under deno, bun and node).

/** A listening loopback server. */
export interface LoopbackServer {
  /** The port it listens on. */
  port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

interface DenoServeApi {
  serve(
    options: { hostname: string; port: number; onListen: () => void },
    handler: FetchHandler,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunServeApi {
  serve(options: { hostname: string; port: number; fetch: FetchHandler }): {
    port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
}

/** Serves `fetch` on 127.0.0.1 on a free port. */
export async function serveOnLoopback(fetch: FetchHandler): Promise<LoopbackServer> {
  const deno = (globalThis as { Deno?: DenoServeApi }).Deno;
  if (deno !== undefined) {
    const server = deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const bun = (globalThis as { Bun?: BunServeApi }).Bun;
  if (bun !== undefined) {
    const server = bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
    return { port: server.port, close: async () => await server.stop(true) };
  }
  const { serve } = await import("@hono/node-server");
  return await new Promise<LoopbackServer>((resolve) => {
    const server = serve({ fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            if ("closeAllConnections" in server) server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
