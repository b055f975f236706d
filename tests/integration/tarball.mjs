// The npm package proven from its packed tarball: installed into fresh
// consumer projects outside the repository, used through its public API in
// Node 20, 22 and 24 with koffi, Node 26 with node:ffi (no koffi), Bun, Deno (npm
// specifier resolution through node_modules), and bundled with esbuild.
//
// Run after build_npm.ts: node --test tests/integration/tarball.mjs
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertTypeChecks, nodeTool, root } from "./common.mjs";

const tools = {
  node20: process.execPath,
  node22: nodeTool("22"),
  node24: nodeTool("24"),
  node26: nodeTool("26"),
  bun: join(root, "node_modules/.bin/bun"),
  deno: join(root, "node_modules/.bin/deno"),
  esbuild: join(root, "node_modules/.bin/esbuild"),
};
const KOFFI = JSON.parse(
  readFileSync(join(root, "package.json"), "utf8"),
).devDependencies.koffi;

let work;
let tarball;
const consumers = {};

function npm(args, cwd) {
  return execFileSync("npm", args, {
    timeout: 600_000,
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
}

function makeConsumer(name, packages) {
  const directory = join(work, name);
  mkdirSync(directory);
  writeFileSync(
    join(directory, "package.json"),
    JSON.stringify({ name: `consumer-${name}`, private: true, type: "module" }),
  );
  npm(["install", "--no-audit", "--no-fund", tarball, ...packages], directory);
  for (
    const script of [
      "smoke.mjs",
      "serve_smoke.mjs",
      "permission_read.mjs",
      "permission_serve.mjs",
    ]
  ) {
    copyFileSync(
      join(root, "tests/integration", script),
      join(directory, script),
    );
  }
  return directory;
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 60_000,
  });
  assert.equal(
    result.status,
    0,
    `${command} ${args.join(" ")} exited ${result.status}\n${result.stderr}`,
  );
  const lines = result.stdout.trim().split("\n");
  return { report: JSON.parse(lines[lines.length - 1]), stderr: result.stderr };
}

/** The peer's label must agree with its /proc label, as in the core tests. */
function assertAgrees(report, runtime) {
  assert.equal(report.runtime, runtime);
  assert.equal(report.error, undefined, report.message);
  assert.equal(
    report.peerPid,
    report.clientPid,
    "SO_PEERCRED names the client",
  );
  if (report.procLabel === null) {
    assert.equal(report.label.code, "ENOPROTOOPT");
    assert.equal(report.label.errno, 92);
    assert.match(report.label.message, /no security module labels this socket/);
    assert.deepEqual(report.tryLabel, { value: null });
  } else {
    assert.deepEqual(report.label, { value: report.procLabel });
    assert.deepEqual(report.tryLabel, { value: report.procLabel });
  }
  assert.equal(report.closedFd.code, "EBADF");
  assert.equal(report.closedFd.errno, 9);
}

before(() => {
  assert.ok(
    existsSync(join(root, "npm/package.json")),
    "npm/ is missing: run `deno run -A build_npm.ts` first",
  );
  work = mkdtempSync(join(tmpdir(), "peersec-tarball-"));
  const packed = JSON.parse(
    npm(
      ["pack", join(root, "npm"), "--pack-destination", work, "--json"],
      work,
    ),
  );
  tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((file) => file.path);
  assert.ok(files.includes("esm/mod.js") && files.includes("esm/mod.d.ts"));
  assert.ok(files.includes("esm/serve.js") && files.includes("esm/serve.d.ts"));
  assert.ok(files.includes("README.md") && files.includes("LICENSE"));
  assert.ok(!files.some((file) => file.includes("tests/")), "no tests packed");
  consumers.withKoffi = makeConsumer("with-koffi", [`koffi@${KOFFI}`]);
  consumers.plain = makeConsumer("plain", []);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("Node 20 + koffi reads the peer of a real connection", () => {
  assert.match(
    spawnSync(tools.node20, ["--version"], {
      timeout: 120_000,
      encoding: "utf8",
    }).stdout,
    /^v20\./,
  );
  assertAgrees(
    run(tools.node20, ["smoke.mjs"], consumers.withKoffi).report,
    "node20",
  );
});

for (const version of ["22", "24"]) {
  test(`Node ${version} + koffi reads the peer of a real connection`, () => {
    assertAgrees(
      run(tools[`node${version}`], ["smoke.mjs"], consumers.withKoffi).report,
      `node${version}`,
    );
  });
}

test("Node 26 uses node:ffi and needs no koffi", () => {
  const { report, stderr } = run(tools.node26, ["smoke.mjs"], consumers.plain);
  assertAgrees(report, "node26");
  assert.match(stderr, /ExperimentalWarning: FFI is an experimental feature/);
});

test("Node 26 with koffi installed takes koffi (faster, no ExperimentalWarning)", () => {
  const { report, stderr } = run(
    tools.node26,
    ["smoke.mjs"],
    consumers.withKoffi,
  );
  assertAgrees(report, "node26");
  assert.doesNotMatch(stderr, /ExperimentalWarning/);
});

test("Bun reads the peer without koffi", () => {
  assertAgrees(run(tools.bun, ["smoke.mjs"], consumers.plain).report, "bun");
});

test("Deno runs the npm package from node_modules", () => {
  assertAgrees(
    run(tools.deno, ["run", "--allow-all", "smoke.mjs"], consumers.plain)
      .report,
    "deno",
  );
});

test("peersec/serve from the tarball answers with the requester's identity (Node 20 + koffi, Node 26, Bun, Deno)", () => {
  const uid = process.getuid();
  for (
    const [command, args, consumer] of [
      [tools.node20, ["serve_smoke.mjs"], consumers.withKoffi],
      [tools.node26, [
        "--disable-warning=ExperimentalWarning",
        "serve_smoke.mjs",
      ], consumers.plain],
      [tools.bun, ["serve_smoke.mjs"], consumers.plain],
      [tools.deno, ["run", "--allow-all", "serve_smoke.mjs"], consumers.plain],
    ]
  ) {
    assert.deepEqual(run(command, args, consumer).report, {
      status: 200,
      samePid: true,
      uid,
    }, command);
  }
});

test("Node 20 without koffi: ERR_KOFFI_MISSING says what to install", () => {
  const { report } = run(tools.node20, ["smoke.mjs"], consumers.plain);
  assert.equal(report.error, "ERR_KOFFI_MISSING");
  assert.match(report.message, /npm install koffi/);
  assert.match(report.message, /Node 26\+ also has node:ffi built in/);
});

test("the `peersec` command on Node 20 without koffi says which Node ran and what to install, in one line", () => {
  const result = spawnSync(
    join(consumers.plain, "node_modules/.bin/peersec"),
    ["self"],
    { timeout: 120_000, cwd: consumers.plain, encoding: "utf8" },
  );
  assert.equal(result.status, 1);
  assert.match(
    result.stderr,
    /^peersec: this is Node 20\.\d+\.\d+ \([^)]+\), which needs koffi for FFI: run `npm install koffi` [^\n]*`bunx --bun peersec`\) \[ERR_KOFFI_MISSING\]\n$/,
  );
});

test("the consumer's TypeScript sees the package's types", () => {
  const check = join(consumers.withKoffi, "check.ts");
  writeFileSync(
    check,
    `import { getPeerIdentity, type PeerIdentity, PeerSecError } from "peersec";
     const identity: PeerIdentity = getPeerIdentity(3);
     const label: string | null = identity.securityContext;
     const error: PeerSecError = new PeerSecError("x", { code: "EBADF" });
     export { error, label };`,
  );
  assertTypeChecks([check], consumers.withKoffi);
});

for (const format of ["cjs", "esm"]) {
  test(`an esbuild bundle (--platform=node, ${format}) builds and runs`, () => {
    const outfile = `bundle.${format === "cjs" ? "cjs" : "mjs"}`;
    const build = spawnSync(tools.esbuild, [
      "smoke.mjs",
      "--bundle",
      "--platform=node",
      `--format=${format}`,
      `--outfile=${outfile}`,
      "--log-level=error",
    ], { cwd: consumers.withKoffi, encoding: "utf8" });
    assert.equal(build.status, 0, build.stderr);
    assertAgrees(
      run(tools.node20, [outfile], consumers.withKoffi).report,
      "node20",
    );
    assertAgrees(run(tools.bun, [outfile], consumers.withKoffi).report, "bun");
  });
}

test("the package's `peersec` command runs from node_modules/.bin", () => {
  const bin = join(consumers.withKoffi, "node_modules/.bin/peersec");
  const self = spawnSync(bin, ["self", "--json"], {
    timeout: 120_000,
    cwd: consumers.withKoffi,
    encoding: "utf8",
  });
  assert.equal(self.status, 0, self.stderr);
  const report = JSON.parse(self.stdout);
  assert.match(report.runtime, /^node on linux/);
  assert.equal(report.ffi, "koffi");
  assert.equal(report.labelsAvailable, report.socketLabel !== null);
  const help = spawnSync(bin, ["--help"], {
    timeout: 120_000,
    encoding: "utf8",
  });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /peersec probe <unix-socket-path \| host:port/);
  assert.match(
    help.stdout,
    /^ +peersec --help \| --version$/m,
    "in the synopsis",
  );
  const missing = spawnSync(bin, ["probe", join(work, "missing.sock")], {
    timeout: 120_000,
    encoding: "utf8",
  });
  assert.equal(missing.status, 1);
  assert.match(
    missing.stderr,
    /^peersec: .*missing\.sock: no such file or directory\n$/,
  );
});

/** The packed package's files, from the consumer's node_modules. */
function installedFiles(consumer) {
  const walk = (directory) =>
    readdirSync(directory).flatMap((name) => {
      const path = join(directory, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return walk(join(consumer, "node_modules/peersec"));
}

test("editor hovers show the npm names: no @peersec/peersec in the shipped .d.ts or .js", () => {
  const files = installedFiles(consumers.plain).filter((path) =>
    /\.(d\.ts|js)$/.test(path)
  );
  assert.ok(files.length > 20);
  const named = files.filter((path) =>
    readFileSync(path, "utf8").includes("@peersec/peersec")
  );
  assert.deepEqual(named, []);
  const serveTypes = readFileSync(
    join(consumers.plain, "node_modules/peersec/esm/serve.d.ts"),
    "utf8",
  );
  assert.match(serveTypes, /import \{ serve \} from "peersec\/serve";/);
  const accessTypes = readFileSync(
    join(consumers.plain, "node_modules/peersec/esm/access.d.ts"),
    "utf8",
  );
  assert.match(accessTypes, /from "peersec\/access";/);
});

test("package.json names the repository, homepage and issue tracker", () => {
  const manifest = JSON.parse(
    readFileSync(
      join(consumers.plain, "node_modules/peersec/package.json"),
      "utf8",
    ),
  );
  assert.match(
    manifest.repository.url,
    /^git\+https:\/\/github\.com\/.+\.git$/,
  );
  assert.match(manifest.homepage, /^https:\/\/github\.com\//);
  assert.match(manifest.bugs.url, /^https:\/\/github\.com\/.+\/issues$/);
});

test("TypeScript's node10 resolution finds peersec/serve and peersec/access (typesVersions)", () => {
  const check = join(consumers.plain, "check_node10.ts");
  writeFileSync(
    check,
    `import { getPeerIdentity } from "peersec";
     import { serve, type ServeHandlerInfo } from "peersec/serve";
     import { createAccessChecker } from "peersec/access";
     export const used: [typeof getPeerIdentity, typeof serve, typeof createAccessChecker] =
       [getPeerIdentity, serve, createAccessChecker];
     export type Info = ServeHandlerInfo;`,
  );
  const result = spawnSync(join(root, "node_modules/.bin/tsc"), [
    "--noEmit",
    "--strict",
    "--module",
    "commonjs",
    "--moduleResolution",
    "node10",
    // TypeScript 6 deprecates node10 (it still resolves with it).
    "--ignoreDeprecations",
    "6.0",
    "--types",
    "node",
    "--typeRoots",
    join(root, "node_modules/@types"),
    check,
  ], { timeout: 120_000, cwd: consumers.plain, encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

for (const version of ["22", "24"]) {
  test(`Node ${version} without koffi: an uncaught ERR_KOFFI_MISSING is the message and the fix, without Node's MODULE_NOT_FOUND under it`, () => {
    const result = spawnSync(tools[`node${version}`], [
      "-e",
      'import("peersec").then((peersec) => peersec.getPeerSecurityContext(0))',
    ], { timeout: 120_000, cwd: consumers.plain, encoding: "utf8" });
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /^PeerSecError: this is Node \d+\.\d+\.\d+ \([^)]+\), which needs koffi for FFI: run `npm install koffi` [^\n]+$/m,
    );
    assert.match(result.stderr, /code: 'ERR_KOFFI_MISSING'/);
    assert.doesNotMatch(
      result.stderr,
      /Cannot find module|requireStack|\[cause\]/,
    );
  });
}

// Node's permission model: the complete command lines docs/errors.md gives,
// run as written (the app's directory `.`, the socket path), in each Node.
const PERMISSION_RUNS = [
  {
    node: "node20",
    model: "--experimental-permission",
    ffi: ["--allow-addons"],
    consumer: "withKoffi",
    refused: /run Node with --allow-addons \(--allow-ffi is Node 26's flag/,
  },
  ...["node22", "node24"].map((node) => ({
    node,
    model: "--permission",
    ffi: ["--allow-addons"],
    consumer: "withKoffi",
    refused: /run Node with --allow-addons \(--allow-ffi is Node 26's flag/,
  })),
  {
    node: "node26",
    model: "--permission",
    net: ["--allow-net"],
    ffi: ["--allow-ffi"],
    consumer: "plain",
    refused:
      /refuses FFI \(ERR_ACCESS_DENIED\), which peersec needs to call getsockopt in libc: run Node with --allow-ffi$/m,
  },
  {
    node: "node26",
    model: "--permission",
    net: ["--allow-net"],
    ffi: ["--allow-addons"],
    consumer: "withKoffi",
    refused:
      /run Node with --allow-ffi, or --allow-addons \(to use koffi, which is installed\)$/m,
  },
];

/** Starts a server script; resolves once it prints "listening". */
function startListening(command, args, cwd) {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" in 30 s:\n${stderr}`)),
      30_000,
    );
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (/listening/.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before listening:\n${stderr}`));
    });
  });
  return { child, listening, exited, stderr: () => stderr };
}

/** One line from a raw UNIX socket server. */
function readLine(path) {
  return new Promise((resolve, reject) => {
    let text = "";
    net.createConnection(path)
      .on("data", (chunk) => (text += chunk))
      .on("end", () => resolve(text))
      .on("error", reject);
  });
}

/** One HTTP GET over a UNIX socket. */
function httpGet(path) {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: path, path: "/" }, (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode, body }));
    }).on("error", reject);
  });
}

for (const run of PERMISSION_RUNS) {
  const { node, model, ffi, consumer, refused } = run;
  const netFlags = run.net ?? [];
  const label = `${node} ${model} ${[...netFlags, ...ffi].join(" ")}`;

  test(`${label} --allow-fs-read=.: a node:net server reads its client's peer (read access for the app, ${[...netFlags, ...ffi].join(" ")})`, async () => {
    const directory = mkdtempSync(join(tmpdir(), "peersec-permission-"));
    const path = join(directory, "app.sock");
    const server = startListening(tools[node], [
      model,
      "--allow-fs-read=.",
      ...netFlags,
      ...ffi,
      "permission_read.mjs",
      path,
    ], consumers[consumer]);
    try {
      await server.listening;
      const report = JSON.parse(await readLine(path));
      assert.equal(report.pid, process.pid, "the peer is this test process");
      assert.equal(report.uid, process.getuid());
      assert.equal((await server.exited).code, 0, server.stderr());
    } finally {
      server.child.kill("SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${label}: serve({ path }) needs read and write access to its socket path too, and replaces a stale socket`, async () => {
    const directory = mkdtempSync(join(tmpdir(), "peersec-permission-"));
    const path = join(directory, "app.sock");
    // A socket file left by a server that was killed: serve replaces it.
    const stale = spawnSync("python3", [
      "-c",
      "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      path,
    ]);
    assert.equal(stale.status, 0, String(stale.stderr));
    const server = startListening(tools[node], [
      model,
      "--allow-fs-read=.",
      `--allow-fs-read=${path}`,
      `--allow-fs-write=${path}`,
      ...netFlags,
      ...ffi,
      "permission_serve.mjs",
      path,
    ], consumers[consumer]);
    try {
      await server.listening;
      const { status, body } = await httpGet(path);
      assert.equal(status, 200);
      assert.equal(JSON.parse(body).pid, process.pid);
      server.child.kill("SIGTERM");
      assert.equal((await server.exited).code, 0, server.stderr());
      assert.ok(!existsSync(path), "the socket file is removed");
    } finally {
      server.child.kill("SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${node} ${model} without ${ffi.join(" ")}: serve fails at start with ERR_NODE_PERMISSION naming the flag`, () => {
    const result = spawnSync(tools[node], [
      model,
      "--allow-fs-read=.",
      ...netFlags,
      "permission_serve.mjs",
      join(tmpdir(), `peersec-never-${process.pid}.sock`),
    ], { timeout: 60_000, cwd: consumers[consumer], encoding: "utf8" });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /code: 'ERR_NODE_PERMISSION'/);
    assert.match(result.stderr, refused);
    assert.doesNotMatch(result.stderr, /ERR_LIBC_LOAD|PEERSEC_LIBC/);
  });
}
