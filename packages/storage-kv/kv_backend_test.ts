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
const deno = "Bun" in globalThis ? undefined : (globalThis as { Deno?: DenoLike }).Deno;

/**
 * Runs `body` without `Deno.openKv` (as Deno runs without `--unstable-kv`; Node and Bun have
 * no Deno at all) and returns what it passed to console.warn.
 */
async function withoutDenoKv(body: () => Promise<void>): Promise<string[]> {
  const descriptor = deno && Object.getOwnPropertyDescriptor(deno, "openKv");
  if (deno) Object.defineProperty(deno, "openKv", { value: undefined, configurable: true });
  try {
    return await capturingWarnings(body);
  } finally {
    if (deno && descriptor) Object.defineProperty(deno, "openKv", descriptor);
    else if (deno) delete deno.openKv;
  }
}

async function capturingWarnings(body: () => Promise<void>): Promise<string[]> {
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    await body();
  } finally {
    console.warn = warn;
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

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsraft-kv-backend-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("KvStorage without Deno.openKv uses @deno/kv, warning once on Deno; backend 'deno' throws", async () => {
  await inTempDir(async (dir) => {
    const warnings = await withoutDenoKv(async () => {
      await roundTrip(new KvStorage({ path: join(dir, "a.sqlite") }));
      await roundTrip(new KvStorage({ path: join(dir, "b.sqlite") }));
      await roundTrip(new KvStorage({ path: join(dir, "c.sqlite"), backend: "npm" }));
      await assert.rejects(
        new KvStorage({ path: join(dir, "d.sqlite"), backend: "deno" }).open(),
        (error: unknown) =>
          error instanceof TypeError &&
          (deno ? /--unstable-kv/ : /not running on Deno/).test(error.message),
      );
    });
    // Node and Bun have no Deno KV: @deno/kv is what they are meant to use.
    assert.deepEqual(warnings, deno ? [DENO_KV_FALLBACK_WARNING] : []);
    assert.match(DENO_KV_FALLBACK_WARNING, /--unstable-kv/);
  });
});

test("KvStorage opens the runtime's own KV without a warning", async () => {
  await inTempDir(async (dir) => {
    const warnings = await capturingWarnings(async () => {
      const native = typeof deno?.openKv === "function" ? "deno" : "npm";
      await roundTrip(new KvStorage({ path: join(dir, "a.sqlite"), backend: native }));
      await roundTrip(new KvStorage({ path: join(dir, "a.sqlite") }));
    });
    assert.deepEqual(warnings, []);
  });
});
