// Opens a KV database file on whichever runtime we are on. Feature detection, not a
// `Deno.` type reference, so the package still type-checks for Node and Bun.
import { StorageCorruptionError } from "@tsraft/core";
import type { KvLike } from "./kv_like.ts";

interface MaybeDeno {
  Deno?: { openKv?: (path?: string) => Promise<KvLike> };
}

/**
 * Which KV implementation a {@link KvStorage} given a `path` opens.
 * - `"auto"`: `Deno.openKv` when it is available, otherwise the npm package `@deno/kv`. On
 *   Deno, `Deno.openKv` exists only with `--unstable-kv` (or `"unstable": ["kv"]` in
 *   deno.json); without it the npm package is used and a warning is printed once per process.
 * - `"deno"`: `Deno.openKv` only; opening throws a `TypeError` when it is unavailable.
 * - `"npm"`: the npm package `@deno/kv` on every runtime, without a warning.
 */
export type KvBackend = "auto" | "deno" | "npm";

let warnedFallback = false;

/** The warning printed once when Deno runs without KV and `@deno/kv` takes its place. */
export const DENO_KV_FALLBACK_WARNING =
  'KvStorage: Deno.openKv is not available (run with --unstable-kv, or add "unstable": ' +
  '["kv"] to deno.json), so the npm package @deno/kv opens the database instead. Pass ' +
  '{ backend: "npm" } to choose it explicitly and silence this warning, or { backend: "deno" } ' +
  "to fail instead.";

/** Opens (creating if needed) the SQLite-backed KV database at `path`. */
export async function openKvAt(path: string, backend: KvBackend = "auto"): Promise<KvLike> {
  const deno = (globalThis as MaybeDeno).Deno;
  if (backend !== "npm") {
    if (typeof deno?.openKv === "function") return await deno.openKv(path);
    if (backend === "deno") {
      throw new TypeError(
        `Cannot open ${path} with Deno.openKv: ${
          deno === undefined ? "not running on Deno" : "run Deno with --unstable-kv"
        }`,
      );
    }
    if (deno !== undefined && !warnedFallback) {
      warnedFallback = true;
      console.warn(DENO_KV_FALLBACK_WARNING);
    }
  }
  // Node and Bun: the napi build of the same SQLite backend, so the file is interchangeable.
  const { openKv } = await import("@deno/kv");
  // KvStorage only stores Uint8Array values, which @deno/kv writes as raw bytes. The V8
  // hooks are supplied so that Bun (whose v8.serialize is a different format) can open the
  // file at all; they only run for values some other program put under our prefix.
  const kv = await openKv(path, { encodeV8: refuseEncode, decodeV8: refuseDecode });
  return kv;
}

function refuseEncode(_value: unknown): Uint8Array {
  throw new TypeError("KvStorage stores only Uint8Array values");
}

function refuseDecode(_bytes: Uint8Array): unknown {
  throw new StorageCorruptionError("Found a V8-serialized value where KvStorage keeps bytes");
}
