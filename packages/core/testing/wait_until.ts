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

/** What {@link trackPromise} returns. */
export interface TrackedPromise {
  /** `undefined` while pending, then `{ value }` on success or the rejection reason. */
  outcome(): unknown;
  /** Resolves (never rejects) once the promise settled. */
  done: Promise<void>;
}

/**
 * Watches a promise without awaiting it, so that a test can assert it is still pending at one
 * moment (a manual clock just short of a deadline) and settled at the next.
 * @param promise the promise to watch; its rejection counts as handled
 * @returns its outcome so far, and a promise of its settling
 * @example
 * ```ts
 * import { trackPromise } from "@tsraft/core/testing";
 * const call = trackPromise(Promise.resolve(1));
 * console.log(call.outcome()); // undefined: not settled yet
 * await call.done;
 * console.log(call.outcome()); // { value: 1 }
 * ```
 */
export function trackPromise<T>(promise: Promise<T>): TrackedPromise {
  let outcome: unknown;
  const done = promise.then(
    (value) => void (outcome = { value }),
    (error: unknown) => void (outcome = error),
  );
  return { outcome: () => outcome, done };
}
