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

/** Options of {@link serveOnLoopback}. */
export interface ServeOptions {
  /** Serve https with this PEM certificate and key. */
  tls?: { cert: string; key: string };
  /** `"node"` forces @hono/node-server even on Deno or Bun. @default "auto" */
  server?: "auto" | "node";
}

interface DenoServeApi {
  serve(
    options: { hostname: string; port: number; onListen: () => void; cert?: string; key?: string },
    handler: FetchHandler,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunServeApi {
  serve(
    options: {
      hostname: string;
      port: number;
      fetch: FetchHandler;
      tls?: { cert: string; key: string };
    },
  ): {
    port: number;
    stop(closeActiveConnections?: boolean): Promise<void> | void;
  };
}

/** Serves `fetch` on 127.0.0.1 on a free port. */
export async function serveOnLoopback(
  fetch: FetchHandler,
  options: ServeOptions = {},
): Promise<LoopbackServer> {
  const { tls } = options;
  const native = options.server !== "node";
  const deno = (globalThis as { Deno?: DenoServeApi }).Deno;
  if (native && deno !== undefined) {
    const server = deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {}, ...tls }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const bun = (globalThis as { Bun?: BunServeApi }).Bun;
  if (native && bun !== undefined) {
    const server = bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch,
      ...(tls === undefined ? {} : { tls }),
    });
    return { port: server.port, close: async () => await server.stop(true) };
  }
  const { serve } = await import("@hono/node-server");
  const { createServer } = await import("node:https");
  const secure = tls === undefined ? {} : { createServer, serverOptions: { ...tls } };
  return await new Promise<LoopbackServer>((resolve) => {
    const server = serve({ fetch, hostname: "127.0.0.1", port: 0, ...secure }, (info) => {
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

/**
 * Server kinds a test may use in this process. @hono/node-server replaces the global
 * `Response` with its own lightweight class once loaded, and Bun.serve then refuses the
 * responses Hono builds; so under Bun the node server is left to Node runs.
 */
export function serverKinds(): ("auto" | "node")[] {
  return (globalThis as { Bun?: unknown }).Bun === undefined ? ["auto", "node"] : ["auto"];
}
