// Run by kv_storage_node_test.ts under Node and Bun (bundled to JavaScript first): opens a
// store another runtime wrote, appends one entry and prints what it found as JSON.
// Usage: node check.mjs <db path>
import process from "node:process";
import { crc32c } from "@tsraft/core";
import { KvStorage } from "./kv_storage.ts";

const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

const path = process.argv[2];
if (path === undefined) throw new TypeError("usage: _node_check <db path>");
const storage = new KvStorage({ path });
const state = await storage.open();
const entries = await storage.entries(state.firstIndex, state.lastIndex + 1);
const snapshot = await storage.loadSnapshot();
let snapshotBytes = 0;
let snapshotCrc = 0;
if (snapshot) {
  for await (const chunk of snapshot.data) {
    snapshotBytes += chunk.length;
    snapshotCrc = crc32c(chunk, snapshotCrc);
  }
}
await storage.save({
  entries: [{
    index: state.lastIndex + 1,
    term: state.hardState.term,
    commandName: runtime,
    command: new TextEncoder().encode(`written by ${runtime}`),
  }],
});
await storage.close();
console.log(JSON.stringify({
  hardState: state.hardState,
  lastIndex: state.lastIndex,
  entries: entries.map((e) => [e.term, e.commandName, e.command.length, crc32c(e.command)]),
  snapshot: snapshot && { ...snapshot.meta, bytes: snapshotBytes, crc: snapshotCrc },
}));
