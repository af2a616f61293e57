// Small durable-file helpers over node:fs/promises, so the package runs on Deno, Bun and Node.
import { writeSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import process from "node:process";

/**
 * Makes a directory's entries (created, renamed or deleted files) durable. Platforms that
 * cannot open a directory (Windows) make renames durable by other means, so failures to open
 * are ignored there.
 */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, "r");
  } catch (error) {
    if (process.platform === "win32") return;
    throw error;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `bytes` at `position` (a short write is retried). */
export async function writeAll(
  handle: FileHandle,
  bytes: Uint8Array,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error("write made no progress");
    done += bytesWritten;
  }
}

/**
 * Writes all of `bytes` at `position` synchronously. A write into the page cache takes
 * microseconds; doing it inline saves a thread-pool round trip before the fdatasync that
 * actually waits for the disk, which is the latency of every commit.
 */
export function writeAllSync(handle: FileHandle, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const written = writeSync(handle.fd, bytes, done, bytes.length - done, position + done);
    if (written <= 0) throw new Error("write made no progress");
    done += written;
  }
}

/** Reads up to `length` bytes at `position`; fewer only at end of file. */
export async function readAt(
  handle: FileHandle,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? out : out.subarray(0, done);
}

/**
 * Replaces `path` atomically: write `path.tmp`, sync it, rename it over `path`, sync the
 * directory. After a crash `path` holds either the old or the new content, never a mix.
 */
export async function writeFileAtomic(
  dir: string,
  path: string,
  bytes: Uint8Array,
  fsync: boolean,
): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, "w");
  try {
    await writeAll(handle, bytes, 0);
    if (fsync) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  if (fsync) await syncDir(dir);
}

/** Deletes a file, ignoring one that does not exist. */
export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
}

/** Whether an error is "no such file or directory". */
export function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "ENOENT";
}
