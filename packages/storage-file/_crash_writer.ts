// Child process of the kill -9 test (crash_test.ts): reopens the store, then saves forever,
// printing a line only after each save has resolved:
//   O <lastIndex> <term>   opened
//   H <term>               hard state durable
//   T <from>               about to replace entries from <from> on (they may now vanish)
//   A <from> <to> <term>   entries from..to, all of <term>, durable
// Commands are "<index>:<term>" plus padding, so the parent can check any entry it reads.
import type { LogEntry } from "@tsraft/core";
import { SeededRandom } from "@tsraft/core/testing";
import { FileStorage } from "./file_storage.ts";

const [dir, seedText] = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (await import("node:process")).argv.slice(2);
const random = new SeededRandom(Number(seedText));
const storage = new FileStorage(dir!, { segmentBytes: 8 * 1024 });
const state = await storage.open();
let last = state.lastIndex;
let term = Math.max(state.hardState.term, 1);
console.log(`O ${last} ${term}`);

function makeEntries(from: number, count: number): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: from + i,
    term,
    commandName: "crash:test",
    command: new TextEncoder().encode(`${from + i}:${term}:${"x".repeat(random.int(200))}`),
  }));
}

for (;;) {
  if (random.chance(0.05)) {
    term++;
    await storage.save({ hardState: { term, votedFor: "writer" } });
    console.log(`H ${term}`);
  }
  let from = last + 1;
  if (random.chance(0.1) && last - 3 >= state.firstIndex) {
    from = last - random.int(3);
    term++;
    console.log(`T ${from}`);
  }
  const entries = makeEntries(from, 1 + random.int(8));
  await storage.save({ entries });
  last = entries.at(-1)!.index;
  console.log(`A ${from} ${last} ${term}`);
}
