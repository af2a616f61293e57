import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DENO_KV_FALLBACK_WARNING } from "./_open_kv.ts";
import { KvStorage } from "./mod.ts";

interface DenoLike {
  openKv?: unknown;
}
const deno = (globalThis as { Deno?: DenoLike }).Deno;
const onDeno = deno !== undefined && !("Bun" in globalThis);

/** Runs `body` as Deno does without `--unstable-kv` (no `Deno.openKv`), capturing warnings. */
async function withoutDenoKv(body: () => Promise<void>): Promise<string[]> {
  const descriptor = Object.getOwnPropertyDescriptor(deno, "openKv");
  const warn = console.warn;
  const warnings: string[] = [];
  Object.defineProperty(deno, "openKv", { value: undefined, configurable: true });
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    await body();
  } finally {
    console.warn = warn;
    if (descriptor) Object.defineProperty(deno, "openKv", descriptor);
    else delete deno!.openKv;
  }
  return warnings;
}

async function roundTrip(storage: KvStorage): Promise<void> {
  const state = await storage.open();
  await storage.save({
    hardState: { term: 1, votedFor: "a" },
    entries: [{
      index: state.lastIndex + 1,
      term: 1,
      commandName: "raft:nop",
      command: new Uint8Array(),
    }],
  });
  await storage.close();
}

test("KvStorage on Deno without --unstable-kv warns once, then uses @deno/kv", {
  skip: onDeno ? false : "Deno only",
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-backend-"));
  try {
    const warnings = await withoutDenoKv(async () => {
      await roundTrip(new KvStorage({ path: join(dir, "a.sqlite") }));
      await roundTrip(new KvStorage({ path: join(dir, "b.sqlite") }));
      await roundTrip(new KvStorage({ path: join(dir, "c.sqlite"), backend: "npm" }));
      await assert.rejects(
        new KvStorage({ path: join(dir, "d.sqlite"), backend: "deno" }).open(),
        (error: unknown) => error instanceof TypeError && /--unstable-kv/.test(error.message),
      );
    });
    assert.deepEqual(warnings, [DENO_KV_FALLBACK_WARNING]);
    assert.match(DENO_KV_FALLBACK_WARNING, /--unstable-kv/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("KvStorage with backend 'deno' opens Deno KV when it is enabled, silently", {
  skip: onDeno && typeof deno?.openKv === "function" ? false : "Deno with --unstable-kv only",
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-backend-"));
  const warn = console.warn;
  const warnings: unknown[] = [];
  console.warn = (...args: unknown[]) => void warnings.push(args);
  try {
    await roundTrip(new KvStorage({ path: join(dir, "a.sqlite"), backend: "deno" }));
    await roundTrip(new KvStorage({ path: join(dir, "a.sqlite") }));
    assert.deepEqual(warnings, []);
  } finally {
    console.warn = warn;
    await rm(dir, { recursive: true, force: true });
  }
});
