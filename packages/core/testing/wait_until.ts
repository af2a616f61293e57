/**
 * Polls `condition` until it holds, for tests against real time (processes, sockets).
 * @param condition checked every `intervalMs`
 * @param options `timeoutMs` before failing (@default 10000), `intervalMs` (@default 10),
 *   `what` names the condition in the error
 * @throws Error naming `what` when the deadline passes
 * @example
 * ```ts
 * import { waitUntil } from "@tsraft/core/testing";
 * let ready = false;
 * setTimeout(() => ready = true, 5);
 * await waitUntil(() => ready, { what: "ready" });
 * ```
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${options.what ?? "condition"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
}
