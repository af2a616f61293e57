// https end to end: each server kind (the runtime's own, and @hono/node-server) with each
// client implementation, trusting a private CA through the `tls.ca` option.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { Hono } from "hono";
import { TransportError } from "@tsraft/core";
import { HttpTransporter } from "./http_transporter.ts";
import { makeHttpClient } from "./http_client.ts";
import { serveOnLoopback, serverKinds } from "./_serve.ts";
import { EchoHandler, SAMPLE } from "./_test_util.ts";

async function testdata(name: string): Promise<string> {
  return await readFile(new URL(`./testdata/${name}`, import.meta.url), "utf8");
}

const ca = await testdata("ca.pem");
const cert = await testdata("server.pem");
const key = await testdata("server.key");

// Node's own fetch takes no per-request CA (that needs undici's Agent, not built in): there a
// private CA is only reachable through the node client.
const fetchTakesCa = "Deno" in globalThis || "Bun" in globalThis;

test("makeHttpClient() refuses TLS options its fetch cannot honour (Node)", {
  skip: fetchTakesCa ? "this runtime's fetch takes a CA" : false,
}, () => {
  assert.throws(() => makeHttpClient(1000, { implementation: "fetch", tls: { ca } }), TypeError);
});

for (const serverKind of serverKinds()) {
  for (const implementation of ["fetch", "node"] as const) {
    describe(`HttpTransporter over https (${serverKind} server, ${implementation} client)`, () => {
      const skip = implementation === "fetch" && !fetchTakesCa
        ? "Node's fetch cannot trust a private CA per request; use the node client"
        : false;
      test("a peer at an https:// connection string is reached when its CA is trusted", {
        skip,
      }, async () => {
        const app = new Hono();
        const handler = new EchoHandler();
        new HttpTransporter({ client: makeHttpClient(2000) }).install(handler, app);
        const server = await serveOnLoopback(app.fetch, { tls: { cert, key }, server: serverKind });
        const trusting = new HttpTransporter({
          client: makeHttpClient(5000, { implementation, tls: { ca } }),
          token: "t",
        });
        const untrusting = new HttpTransporter({
          client: makeHttpClient(5000, { implementation }),
        });
        const peer = { name: "echo", connectionString: `https://127.0.0.1:${server.port}` };
        try {
          const response = await trusting.sendVoteRequest({ name: "a" }, peer, SAMPLE.requestVote);
          assert.deepEqual(response, { term: 5, voteGranted: true, preVote: true });
          // Without the CA the certificate cannot be verified: no request gets through.
          await assert.rejects(
            untrusting.sendVoteRequest({ name: "a" }, peer, SAMPLE.requestVote),
            TransportError,
          );
          assert.equal(handler.seen.length, 1);
        } finally {
          trusting.close();
          untrusting.close();
          await server.close();
        }
      });
    });
  }
}
