/**
 * Lists the files `deno publish --dry-run` would publish for each package of the workspace
 * and fails when a package ships anything a user of it cannot reach.
 *
 * A published file must be one of: a module reachable from the package's `exports` (the
 * module graph of every export, as `deno info` resolves it), its deno.json, README.md or
 * LICENSE. Anything else — a test, a test helper such as `_test_util.ts` or
 * `_crash_writer.ts`, testdata, a CLI script — is reported, as is a workspace member that
 * publishes without being a library package (such as the examples) and a package without a
 * README.md. Each package.json's `files` (what Bun and Node take when they install the folder)
 * must select the same modules.
 *
 * It also runs what JSR's documentation needs from each package: `deno doc --lint` on every
 * exported entrypoint on its own (a type an entrypoint's signatures name must be exported
 * from it), and the code blocks of each README.md as tests (`deno test --doc`).
 *
 * Usage: `deno run -A scripts/publish_check.ts [--doc-lint]` (exit code 1 and one line per
 * problem on failure; the file lists go to stdout either way). `--doc-lint` runs only the
 * per-entrypoint `deno doc --lint`.
 * @module
 */
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/** The repository's root directory, with a trailing slash. */
export const root: string = fromFileUrl(new URL("../", import.meta.url));

/** A package as `deno publish` sees it: its directory and the files it would upload. */
export interface PublishedPackage {
  /** The package's JSR name, e.g. `@tsraft/core`. */
  name: string;
  /** Absolute paths of the files it would publish. */
  files: string[];
}

/** A file name no published package may contain, whatever reaches it. */
const TEST_ONLY = [
  /_test\.[cm]?[jt]sx?$/,
  /(^|\/)testdata\//,
  /(^|\/)_test_util\.ts$/,
  /(^|\/)_serve\.ts$/,
  /(^|\/)_crash_[a-z_]+\.ts$/,
  /(^|\/)_node_check\.ts$/,
  /(^|\/)_core_harness\.ts$/,
];
const METADATA = new Set(["deno.json", "deno.jsonc", "README.md", "LICENSE"]);

/**
 * Runs a command to completion.
 * @returns its stdout
 * @throws Error with its output when it exits unsuccessfully
 */
export async function runCommand(command: string, args: string[], cwd: string): Promise<string> {
  const output = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr);
    throw new Error(`${command} ${args.join(" ")} failed:\n${stdout}${stderr}`);
  }
  return stdout;
}

/** Runs this Deno with `args` in the repository root; returns stdout and stderr together. */
async function run(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) +
    new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`deno ${args.join(" ")} failed:\n${text}`);
  return text;
}

/**
 * Parses the output of `deno publish --dry-run`: each "Simulating publish of <name>@<version>
 * with files:" line followed by one indented `file://` URL per file.
 */
export function parseDryRun(output: string): PublishedPackage[] {
  // deno-lint-ignore no-control-regex
  const lines = output.replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const packages: PublishedPackage[] = [];
  for (const line of lines) {
    const header = /Simulating publish of (@[^@\s]+\/[^@\s]+)@\S+ with files:/.exec(line);
    if (header !== null) {
      packages.push({ name: header[1]!, files: [] });
      continue;
    }
    const file = /^\s+(file:\/\/\S+)/.exec(line);
    if (file !== null && packages.length > 0) {
      packages[packages.length - 1]!.files.push(fromFileUrl(file[1]!));
    }
  }
  return packages;
}

/** A library package of the workspace. */
export interface Member {
  /** Absolute path of its directory. */
  dir: string;
  /** JSR name, e.g. `@tsraft/core`. */
  name: string;
  version: string;
  /** Its deno.json exports: subpath (`.`, `./testing`) to file (`./mod.ts`). */
  exports: Record<string, string>;
  /** Absolute paths of the exported modules. */
  entrypoints: string[];
}

/**
 * The workspace members that declare a name and exports in their deno.json: those of the root
 * deno.json's `workspace`, then those of the root package.json's `workspaces` (Deno reads both,
 * so `deno publish` does too; `dir/*` patterns are expanded).
 */
export function libraryMembers(): Member[] {
  const rootConfig = JSON.parse(Deno.readTextFileSync(`${root}deno.json`));
  const npmConfig = JSON.parse(Deno.readTextFileSync(`${root}package.json`));
  const dirs: string[] = [];
  const patterns = [...(rootConfig.workspace ?? []), ...(npmConfig.workspaces ?? [])] as string[];
  for (const pattern of patterns) {
    const path = pattern.replace(/^\.\//, "").replace(/\/$/, "");
    if (path.endsWith("/*")) {
      const parent = path.slice(0, -2);
      const children = [...Deno.readDirSync(`${root}${parent}`)]
        .filter((entry) => entry.isDirectory)
        .map((entry) => `${root}${parent}/${entry.name}`)
        .sort();
      dirs.push(...children);
    } else {
      dirs.push(`${root}${path}`);
    }
  }
  const members: Member[] = [];
  for (const dir of new Set(dirs)) {
    let config;
    try {
      config = JSON.parse(Deno.readTextFileSync(`${dir}/deno.json`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    if (typeof config.name !== "string" || config.exports === undefined) continue;
    const exports: Record<string, string> = typeof config.exports === "string"
      ? { ".": config.exports }
      : config.exports;
    members.push({
      dir,
      name: config.name,
      version: config.version,
      exports,
      entrypoints: Object.values(exports).map((path) => `${dir}/${path.replace(/^\.\//, "")}`),
    });
  }
  return members;
}

/** `new URL("./x.ts", import.meta.url)`: a module loaded at run time (a Worker, a child). */
export const URL_REFERENCE: RegExp =
  /new URL\(\s*["'](\.{1,2}\/[^"']+\.[cm]?[jt]s)["']\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Local files in the module graph of the given entrypoints, and in the graphs of modules they
 * load by URL (`new Worker(new URL("./worker.ts", import.meta.url))`), which imports do not
 * show but a published package needs.
 */
export async function moduleGraph(entrypoints: string[]): Promise<Set<string>> {
  const files = new Set<string>();
  const queue = [...entrypoints];
  for (let entrypoint = queue.shift(); entrypoint !== undefined; entrypoint = queue.shift()) {
    if (files.has(entrypoint)) continue;
    const info = JSON.parse(await run(["info", "--json", entrypoint])) as {
      modules: { specifier: string }[];
    };
    for (const module of info.modules) {
      if (!module.specifier.startsWith("file://")) continue;
      const file = fromFileUrl(module.specifier);
      if (files.has(file)) continue;
      files.add(file);
      for (const match of Deno.readTextFileSync(file).matchAll(URL_REFERENCE)) {
        queue.push(fromFileUrl(new URL(match[1]!, module.specifier)));
      }
    }
  }
  return files;
}

/** Runs the check; returns the problems found (empty when publishing is clean). */
export async function publishCheck(): Promise<string[]> {
  const dryRun = await run(["publish", "--dry-run", "--allow-dirty"]);
  const published = parseDryRun(dryRun);
  const members = new Map(libraryMembers().map((member) => [member.name, member]));
  const problems: string[] = [];
  if (published.length === 0) problems.push(`no package in the dry run's output:\n${dryRun}`);
  for (const pkg of published) {
    console.log(`${pkg.name}:`);
    for (const file of pkg.files) console.log(`  ${relative(root, file)}`);
    const member = members.get(pkg.name);
    if (member === undefined) {
      problems.push(`${pkg.name} is published but is not a library package with exports`);
      continue;
    }
    members.delete(pkg.name);
    const reachable = await moduleGraph(member.entrypoints);
    for (const file of pkg.files) {
      const path = relative(member.dir, file);
      if (TEST_ONLY.some((pattern) => pattern.test(path))) {
        problems.push(`${pkg.name} publishes the test-only file ${path}`);
      } else if (!reachable.has(file) && !METADATA.has(path)) {
        problems.push(`${pkg.name} publishes ${path}, which no export reaches`);
      }
    }
    if (!pkg.files.some((file) => relative(member.dir, file) === "README.md")) {
      problems.push(`${pkg.name} has no README.md`);
    }
    problems.push(...await npmFilesCheck(pkg, member));
  }
  for (const name of members.keys()) problems.push(`${name} is missing from the dry run`);
  return problems;
}

/**
 * Compares what `npm pack` takes from the package's folder (its package.json `files`: what a
 * Bun or Node app installing the folder gets) with what `deno publish` takes: the same
 * modules, so that neither ships a test helper and neither misses a module.
 */
async function npmFilesCheck(pkg: PublishedPackage, member: Member): Promise<string[]> {
  try {
    await Deno.stat(`${member.dir}/package.json`);
  } catch {
    return [];
  }
  const packed = JSON.parse(
    await runCommand("npm", ["pack", "--dry-run", "--json", "--silent"], member.dir),
  ) as { files: { path: string }[] }[];
  const metadata = (path: string) => METADATA.has(path) || path === "package.json";
  const npmFiles = new Set(packed[0]!.files.map((file) => file.path).filter((p) => !metadata(p)));
  const denoFiles = new Set(
    pkg.files.map((file) => relative(member.dir, file)).filter((p) => !metadata(p)),
  );
  const problems: string[] = [];
  for (const path of npmFiles) {
    if (!denoFiles.has(path)) {
      problems.push(`${pkg.name}: package.json "files" takes ${path}, deno publish does not`);
    }
  }
  for (const path of denoFiles) {
    if (!npmFiles.has(path)) {
      problems.push(`${pkg.name}: deno publish takes ${path}, package.json "files" does not`);
    }
  }
  return problems;
}

/** Output of a Deno subcommand that failed, or undefined when it succeeded. */
async function denoFailure(args: string[]): Promise<string | undefined> {
  try {
    await run(args);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Runs `deno doc --lint` on each exported entrypoint of each package separately.
 * @returns one problem per entrypoint that fails, with the linter's output
 */
export async function docLintCheck(): Promise<string[]> {
  const problems: string[] = [];
  for (const member of libraryMembers()) {
    for (const entrypoint of member.entrypoints) {
      const failure = await denoFailure(["doc", "--lint", entrypoint]);
      if (failure !== undefined) problems.push(`${relative(root, entrypoint)}: ${failure}`);
    }
  }
  return problems;
}

/**
 * Type-checks and runs the code blocks of each package's README.md (`deno test --doc`, one
 * run for all of them).
 * @returns the test run's output when any README's examples fail
 */
export async function readmeCheck(): Promise<string[]> {
  const readmes: string[] = [];
  for (const member of libraryMembers()) {
    try {
      await Deno.stat(`${member.dir}/README.md`);
      readmes.push(`${member.dir}/README.md`);
    } catch {
      // reported by publishCheck
    }
  }
  const failure = await denoFailure(["test", "--doc", "-A", "--unstable-kv", ...readmes]);
  return failure === undefined ? [] : [`README examples: ${failure}`];
}

if (import.meta.main) {
  // --doc-lint: only `deno doc --lint` on each entrypoint (the `doc-lint` task).
  const problems = Deno.args.includes("--doc-lint")
    ? await docLintCheck()
    : [...await publishCheck(), ...await docLintCheck(), ...await readmeCheck()];
  if (problems.length > 0) {
    console.error(`\npublish check failed:\n  ${problems.join("\n  ")}`);
    Deno.exit(1);
  }
  console.log(
    Deno.args.includes("--doc-lint")
      ? "deno doc --lint passes on each entrypoint on its own"
      : "\npublish check: every published file is reachable from an export; every entrypoint " +
        "passes deno doc --lint alone; every README example runs",
  );
}
