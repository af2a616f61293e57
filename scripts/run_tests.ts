/**
 * Runs `deno test` with the given arguments, streams its output, and ends with one plain
 * line `N passed, N failed` counting leaf tests (a `describe` block counts through its
 * tests, not as one more). CI reads that line; Deno's own summary counts blocks and steps
 * separately.
 * @module
 */
const args = ["test", ...Deno.args];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
  .spawn();

// deno-lint-ignore no-control-regex
const ansi = /\x1b\[[0-9;]*m/g;
const result = /^(\s*)(.+?) \.\.\. (ok|FAILED|ignored)\b/;
let passed = 0;
let failed = 0;
let previousIndent = -1;
let pending = "";

function countLine(raw: string): void {
  const line = raw.replace(ansi, "");
  const match = result.exec(line);
  if (match === null) {
    return;
  }
  const indent = match[1]!.length;
  // A result less indented than the one before closes a block whose tests were counted.
  const isParent = indent < previousIndent;
  previousIndent = indent;
  if (isParent) return;
  if (match[3] === "ok") passed++;
  else if (match[3] === "FAILED") failed++;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  pending += decoder.decode(chunk, { stream: true });
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) countLine(line);
}
countLine(pending);
const status = await child.status;
// A file that fails to load or type-check reports no test lines at all; count it as a failure.
if (!status.success && failed === 0) failed = 1;
await Deno.stdout.write(encoder.encode(`\n${passed} passed, ${failed} failed\n`));
Deno.exit(status.code);
