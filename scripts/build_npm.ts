/**
 * Builds the workspace's packages as plain JavaScript npm packages, for Node without a
 * TypeScript loader (and any bundler): `dist/npm/<package>/` holds `.js` and `.d.ts` files
 * for exactly the modules the package's exports reach, a package.json whose `exports` point
 * at them, README.md and LICENSE; `dist/npm/tsraft-<package>-<version>.tgz` is its tarball.
 *
 * The TypeScript compiler does the work (`rewriteRelativeImportExtensions` turns `./x.ts`
 * into `./x.js`); it runs from npm with the packages' npm dependencies, installed once into
 * `dist/npm/.tools`. `@tsraft/core` is a peer dependency of the adapters, so an app that
 * installs several of the tarballs gets one copy of core (one command registry).
 *
 * Usage: `deno run -A scripts/build_npm.ts [--out <dir>]`; then, in an app,
 * `npm install <dir>/tsraft-core-0.1.0.tgz <dir>/tsraft-transport-tcp-0.1.0.tgz ...`.
 * @module
 */
import { basename, dirname, join, relative } from "node:path";
import {
  libraryMembers,
  type Member,
  moduleGraph,
  root,
  runCommand,
  URL_REFERENCE,
} from "./publish_check.ts";

/** Where the TypeScript compiler comes from. */
const TYPESCRIPT = "typescript@5.9.3";
const TYPES_NODE = "@types/node@20";

/** A built package: its name, version, output directory and tarball path. */
export interface BuiltPackage {
  name: string;
  version: string;
  dir: string;
  tarball: string;
}

interface NpmManifest {
  name: string;
  version: string;
  description?: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** A deno.json export (`./mod.ts`) as a package.json conditional export of the built files. */
function exportEntry(path: string): { types: string; default: string } {
  return { types: path.replace(/\.ts$/, ".d.ts"), default: path.replace(/\.ts$/, ".js") };
}

/** Options of {@link buildNpm}. */
export interface BuildNpmOptions {
  /**
   * Directory caching the compiler and the types it needs, installed when missing or stale.
   * @default {"<out>/.tools"}
   */
  tools?: string;
  /**
   * Names of the packages to build (with the @tsraft packages they use).
   * @default {every library package of the workspace}
   */
  packages?: string[];
}

/**
 * Compiles every library package of the workspace into `out` and packs each with `npm pack`.
 * @param out the output directory (emptied first, except a `.tools` cache in it)
 * @param options where the compiler is cached
 * @returns the packages built, in the order of {@link libraryMembers}
 */
export async function buildNpm(
  out: string,
  options: BuildNpmOptions = {},
): Promise<BuiltPackage[]> {
  const members = selectMembers(libraryMembers(), options.packages);
  const tools = options.tools ?? join(out, ".tools");
  for (const entry of await readDirNames(out)) {
    if (entry !== ".tools") await Deno.remove(join(out, entry), { recursive: true });
  }

  // The compiler, Node's types and the npm dependencies' own types, pinned as the packages pin them.
  const npmDependencies = new Map<string, string>();
  for (const member of members) {
    const manifest = readJson<NpmManifest>(join(member.dir, "package.json"));
    for (const [name, version] of Object.entries(manifest.dependencies ?? {})) {
      if (!name.startsWith("@tsraft/")) npmDependencies.set(name, version);
    }
  }
  const wanted = [TYPESCRIPT, TYPES_NODE, ...[...npmDependencies].map(([n, v]) => `${n}@${v}`)];
  if (await readText(join(tools, "installed.txt")) !== wanted.join("\n")) {
    // Installed beside the cache and renamed over it, so concurrent builds never see half of it.
    const fresh = `${tools}.${Deno.pid}.tmp`;
    await Deno.mkdir(fresh, { recursive: true });
    await Deno.writeTextFile(join(fresh, "package.json"), '{ "private": true }\n');
    await runCommand("npm", ["install", "--no-audit", "--no-fund", "--silent", ...wanted], fresh);
    await Deno.writeTextFile(join(fresh, "installed.txt"), wanted.join("\n"));
    if (await readText(join(tools, "installed.txt")) === wanted.join("\n")) {
      // Another build installed the same meanwhile (and may be using it): keep that one.
      await Deno.remove(fresh, { recursive: true });
    } else {
      await Deno.remove(tools, { recursive: true }).catch(() => {});
      await Deno.rename(fresh, tools).catch(async () => {
        await Deno.remove(fresh, { recursive: true });
      });
    }
  }

  const files = new Set<string>();
  const paths: Record<string, string[]> = {};
  for (const member of members) {
    for (const file of await moduleGraph(member.entrypoints)) {
      if (file.startsWith(`${member.dir}/`)) files.add(file);
    }
    for (const [subpath, file] of Object.entries(member.exports)) {
      paths[join(member.name, subpath)] = [join(member.dir, file)];
    }
  }
  paths["*"] = [join(tools, "node_modules", "*"), join(tools, "node_modules", "@types", "*")];
  const packagesDir = join(root, "packages");
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "ESNext",
      moduleResolution: "Bundler",
      lib: ["ES2023", "DOM", "DOM.Iterable"],
      types: ["node"],
      typeRoots: [join(tools, "node_modules", "@types")],
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      noImplicitOverride: true,
      useUnknownInCatchVariables: true,
      skipLibCheck: true,
      declaration: true,
      rewriteRelativeImportExtensions: true,
      verbatimModuleSyntax: true,
      rootDir: packagesDir,
      outDir: out,
      paths,
    },
    files: [...files].sort(),
  };
  await Deno.mkdir(out, { recursive: true });
  const tsconfigPath = join(out, "tsconfig.build.json");
  await Deno.writeTextFile(tsconfigPath, JSON.stringify(tsconfig, null, 2));
  const tsc = join(tools, "node_modules", "typescript", "bin", "tsc");
  await runCommand("node", [tsc, "-p", tsconfigPath], out);
  await Deno.remove(tsconfigPath);
  // tsc rewrites import specifiers but not modules loaded by URL (a Worker's script).
  for (const file of files) {
    const js = join(out, relative(packagesDir, file)).replace(/\.ts$/, ".js");
    const text = await Deno.readTextFile(js);
    const rewritten = text.replace(
      URL_REFERENCE,
      (call, path: string) => call.replace(path, path.replace(/\.ts$/, ".js")),
    );
    if (rewritten !== text) await Deno.writeTextFile(js, rewritten);
  }

  const built: BuiltPackage[] = [];
  for (const member of members) {
    const source = readJson<NpmManifest>(join(member.dir, "package.json"));
    const dir = join(out, relative(packagesDir, member.dir));
    const dependencies = Object.fromEntries(
      Object.entries(source.dependencies ?? {}).filter(([name]) => !name.startsWith("@tsraft/")),
    );
    // Every @tsraft package another one uses is a peer at this workspace's version: an app
    // installs it beside, and gets one copy.
    const peerDependencies = Object.fromEntries(
      Object.keys({ ...source.dependencies, ...source.peerDependencies })
        .filter((name) => name.startsWith("@tsraft/"))
        .map((name) => [name, members.find((m) => m.name === name)?.version ?? member.version]),
    );
    const manifest = {
      name: member.name,
      version: member.version,
      ...(source.description === undefined ? {} : { description: source.description }),
      license: "MIT",
      engines: { node: ">=20" },
      type: "module",
      exports: Object.fromEntries(
        Object.entries(member.exports).map(([subpath, file]) => [subpath, exportEntry(file)]),
      ),
      ...(Object.keys(dependencies).length === 0 ? {} : { dependencies }),
      ...(Object.keys(peerDependencies).length === 0 ? {} : { peerDependencies }),
    };
    await Deno.writeTextFile(join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
    for (const extra of [join(member.dir, "README.md"), join(root, "LICENSE")]) {
      const text = await readText(extra);
      if (text !== undefined) await Deno.writeTextFile(join(dir, basename(extra)), text);
    }
    const packed = (await runCommand("npm", ["pack", "--silent", dir], out)).trim().split("\n");
    built.push({
      name: member.name,
      version: member.version,
      dir,
      tarball: join(out, packed[packed.length - 1]!),
    });
  }
  return built;
}

/** The members named (all when `names` is undefined) and the @tsraft packages they use. */
function selectMembers(members: Member[], names: string[] | undefined): Member[] {
  if (names === undefined) return members;
  const wanted = new Set(names);
  for (const member of members) {
    if (!wanted.has(member.name)) continue;
    const manifest = readJson<NpmManifest>(join(member.dir, "package.json"));
    for (const name of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })) {
      if (name.startsWith("@tsraft/")) wanted.add(name);
    }
  }
  return members.filter((member) => wanted.has(member.name));
}

function readJson<T>(path: string): T {
  return JSON.parse(Deno.readTextFileSync(path)) as T;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function readDirNames(dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names;
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--out");
  const out = at >= 0 ? Deno.args[at + 1]! : join(root, "dist", "npm");
  await Deno.mkdir(dirname(out), { recursive: true });
  for (const pkg of await buildNpm(out)) console.log(`${pkg.name}@${pkg.version}: ${pkg.tarball}`);
}
