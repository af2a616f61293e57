// Child process of the kill -9 test: saves batches forever and prints, synchronously,
// "begin <from> <to> <term>" before each save and "ack <from> <to> <term>" once it resolved.
// Usage: deno run -A --unstable-kv _crash_writer.ts <db path> <seed>
import { writeSync } from "node:fs";
import process from "node:process";
import { workloadEntries } from "./_crash_workload.ts";
import { KvStorage } from "./kv_storage.ts";

const [path, seedText] = process.argv.slice(2);
if (path === undefined) throw new TypeError("usage: _crash_writer.ts <db path> <seed>");
let seed = (Number(seedText ?? 1) >>> 0) || 1;
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
function below(n: number): number {
  return Math.floor(random() * n);
}

const storage = new KvStorage({ path });
const state = await storage.open();
let term = state.hardState.term;
let last = state.lastIndex;
const first = state.firstIndex;
// A safety net so a forgotten child cannot run forever.
const deadline = Date.now() + 30_000;
while (Date.now() < deadline) {
  const r = random();
  let from = last + 1;
  let count = 1 + below(40);
  let newTerm = Math.max(term, 1);
  if (r < 0.05) {
    count = 1000 + below(1000); // more than one commit
  } else if (r < 0.08 && last >= first) {
    from = Math.max(first, last - 1500); // replace a long suffix over several commits
    count = 1000 + below(500);
    newTerm = term + 1;
  } else if (r < 0.25 && last >= first) {
    from = Math.max(first, last - below(20)); // a new leader overwrites a short suffix
    newTerm = term + 1;
  }
  const to = from + count - 1;
  writeSync(1, `begin ${from} ${to} ${newTerm}\n`);
  await storage.save({
    ...(newTerm !== term ? { hardState: { term: newTerm, votedFor: "writer" } } : {}),
    entries: workloadEntries(from, count, newTerm),
  });
  writeSync(1, `ack ${from} ${to} ${newTerm}\n`);
  term = newTerm;
  last = to;
}
await storage.close();
