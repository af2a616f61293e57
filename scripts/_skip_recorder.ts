/**
 * Preloaded by scripts/run_tests.ts into every `deno test` module (`--preload`).
 *
 * Deno's node:test `t.skip(message)` only marks the context: the test is reported as passed,
 * and the message is dropped. This records each call (full test name and message) as one JSON
 * line in the file named by TSRAFT_SKIP_LOG, so the runner counts the test as skipped and says
 * why. It patches the prototype of node:test's TestContext, reached through a root `beforeEach`
 * hook, which Deno runs before every test, inside `describe` blocks too.
 * @module
 */
import { beforeEach } from "node:test";

const logPath = Deno.env.get("TSRAFT_SKIP_LOG");
let patched = false;

if (logPath !== undefined) {
  beforeEach((t) => {
    if (patched) return;
    patched = true;
    const prototype = Object.getPrototypeOf(t) as {
      skip(this: { fullName: string }, message?: string): unknown;
    };
    const skip = prototype.skip;
    prototype.skip = function (message?: string) {
      const line = JSON.stringify({ name: this.fullName, reason: message ?? "t.skip()" });
      Deno.writeTextFileSync(logPath, `${line}\n`, { append: true });
      return skip.call(this, message);
    };
  });
}
