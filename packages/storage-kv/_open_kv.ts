// Opens a KV database file on whichever runtime we are on. Feature detection, not a
// `Deno.` type reference, so the package still type-checks for Node and Bun.
import { StorageCorruptionError } from "@tsraft/core";
import type { KvLike } from "./kv_like.ts";

interface MaybeDeno {
  Deno?: { openKv?: (path?: string) => Promise<KvLike> };
}

/** Opens (creating if needed) the SQLite-backed KV database at `path`. */
export async function openKvAt(path: string): Promise<KvLike> {
  const deno = (globalThis as MaybeDeno).Deno;
  if (typeof deno?.openKv === "function") return await deno.openKv(path);
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
