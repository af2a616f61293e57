/**
 * Installs the packages of this repository into fresh apps outside it, the way the root
 * README's "Use from Deno / Bun / Node" section tells users to, and runs
 * scripts/consumer_app.ts in each (a 3-node TCP + FileStorage cluster, one write, one
 * linearizable read):
 *
 * - **deno**: a deno.json mapping `@tsraft/*` to `jsr:` specifiers and `links` to the
 *   package folders (no JSR access needed), then `deno run -A app.ts`.
 * - **bun**: `bun add <repo>/packages/core <repo>/packages/transport-tcp
 *   <repo>/packages/storage-file`, then `bun app.ts` (Bun runs the TypeScript sources).
 * - **node+tsx**: `npm install --install-links <the same three folders> tsx`, then
 *   `npx tsx app.ts` on the Node on PATH (20 or later).
 * - **node**: `npm install <the tarballs scripts/build_npm.ts builds>`, the app compiled to
 *   JavaScript against the packages' `.d.ts` files (which type-checks them), then
 *   `node app.js`.
 *
 * Needs `npm` and the npm registry (tsx, protobufjs, the TypeScript compiler, Bun through
 * npx); nothing else from the network.
 *
 * Usage: `deno run -A scripts/consumer_check.ts [deno|bun|node-tsx|node ...]` (all by default).
 * Prints one `ok`/`FAILED` line per app and ends with `N passed, N failed`.
 * @module
 */
import { join } from "node:path";
import { buildNpm, type BuiltPackage } from "./build_npm.ts";
import { root, runCommand } from "./publish_check.ts";

/** The consumer apps this check can build. */
export type ConsumerKind = "deno" | "bun" | "node-tsx" | "node";
/** Every consumer app, in the order they run. */
export const CONSUMER_KINDS: readonly ConsumerKind[] = ["deno", "bun", "node-tsx", "node"];

/** The packages the app uses. */
const PACKAGES = ["core", "transport-tcp", "storage-file"];
const BUN = (Deno.env.get("TSRAFT_BUN") ?? "npx -y bun@1.4.5").split(" ");
const TSX = "tsx@4.23.15";
const NPM_QUIET = ["--no-audit", "--no-fund", "--loglevel=error"];

/** What one consumer app printed. */
export interface ConsumerResult {
  runtime: string;
  leader: string;
  wrote: number;
  read: number;
}

const appSource = () => Deno.readTextFile(join(root, "scripts", "consumer_app.ts"));

function version(name: string): string {
  const path = join(root, "packages", name, "deno.json");
  return (JSON.parse(Deno.readTextFileSync(path)) as { version: string }).version;
}

async function newApp(dir: string, name: string): Promise<void> {
  const manifest = { name, private: true, type: "module" };
  await Deno.writeTextFile(join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
}

function parseResult(output: string): ConsumerResult {
  const line = output.split("\n").find((text) => text.startsWith("RESULT "));
  if (line === undefined) throw new Error(`the app printed no RESULT line:\n${output}`);
  return JSON.parse(line.slice("RESULT ".length)) as ConsumerResult;
}

/**
 * Prepares shared inputs (the tarballs for the plain-Node app) in `work`.
 * @returns the built npm packages
 */
export async function prepare(work: string): Promise<BuiltPackage[]> {
  return await buildNpm(join(work, "npm"), {
    tools: join(root, "dist", ".tools"),
    packages: PACKAGES.map((name) => `@tsraft/${name}`),
  });
}

/**
 * Creates the `kind` app in `work/<kind>`, installs the packages with one command, runs it.
 * @param built the tarballs from {@link prepare} (used by the plain-Node app)
 * @returns what the app printed
 * @throws Error with the output of the failing step
 */
export async function runConsumer(
  kind: ConsumerKind,
  work: string,
  built: BuiltPackage[],
): Promise<ConsumerResult> {
  const dir = join(work, kind);
  await Deno.mkdir(dir, { recursive: true });
  if (kind !== "deno") await newApp(dir, `tsraft-consumer-${kind}`);
  const folders = PACKAGES.map((name) => join(root, "packages", name));
  if (kind === "deno") {
    const config = {
      imports: Object.fromEntries(
        PACKAGES.map((name) => [`@tsraft/${name}`, `jsr:@tsraft/${name}@^${version(name)}`]),
      ),
      links: folders,
      nodeModulesDir: "auto",
    };
    await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify(config, null, 2) + "\n");
    await Deno.writeTextFile(join(dir, "app.ts"), await appSource());
    return parseResult(await runCommand(Deno.execPath(), ["run", "-A", "app.ts"], dir));
  }
  if (kind === "bun") {
    await runCommand(BUN[0]!, [...BUN.slice(1), "add", ...folders], dir);
    await Deno.writeTextFile(join(dir, "app.ts"), await appSource());
    return parseResult(await runCommand(BUN[0]!, [...BUN.slice(1), "app.ts"], dir));
  }
  if (kind === "node-tsx") {
    await runCommand("npm", ["install", ...NPM_QUIET, "--install-links", ...folders, TSX], dir);
    await Deno.writeTextFile(join(dir, "app.ts"), await appSource());
    return parseResult(await runCommand("npx", ["--no-install", "tsx", "app.ts"], dir));
  }
  const tarballs = PACKAGES.map((name) => {
    const pkg = built.find((candidate) => candidate.name === `@tsraft/${name}`);
    if (pkg === undefined) throw new Error(`@tsraft/${name} was not built`);
    return pkg.tarball;
  });
  await runCommand("npm", ["install", ...NPM_QUIET, ...tarballs], dir);
  await Deno.writeTextFile(join(dir, "app.ts"), await appSource());
  // The app is compiled against the installed packages' declarations, strictly.
  const tools = join(root, "dist", ".tools", "node_modules");
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      types: ["node"],
      typeRoots: [join(tools, "@types")],
      skipLibCheck: false,
      outDir: ".",
    },
    files: ["app.ts"],
  };
  await Deno.writeTextFile(join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  await runCommand("node", [join(tools, "typescript", "bin", "tsc"), "-p", "."], dir);
  return parseResult(await runCommand("node", ["app.js"], dir));
}

if (import.meta.main) {
  const kinds = Deno.args.length > 0 ? Deno.args as ConsumerKind[] : [...CONSUMER_KINDS];
  const unknown = kinds.filter((kind) => !CONSUMER_KINDS.includes(kind));
  if (unknown.length > 0) {
    console.error(`unknown app ${unknown.join(", ")}: use ${CONSUMER_KINDS.join(", ")}`);
    Deno.exit(2);
  }
  const work = await Deno.makeTempDir({ prefix: "tsraft-consumers-" });
  let passed = 0;
  let failed = 0;
  try {
    const started = performance.now();
    const built = kinds.includes("node") ? await prepare(work) : [];
    console.log(`built npm packages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const kind of kinds) {
      const start = performance.now();
      try {
        const result = await runConsumer(kind, work, built);
        const seconds = ((performance.now() - start) / 1000).toFixed(1);
        console.log(`${kind} ... ok (${seconds} s): ${JSON.stringify(result)}`);
        passed++;
      } catch (error) {
        console.log(`${kind} ... FAILED\n${error instanceof Error ? error.message : error}`);
        failed++;
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  console.log(`\n${passed} passed, ${failed} failed`);
  Deno.exit(failed === 0 ? 0 : 1);
}
