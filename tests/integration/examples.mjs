// Every example in examples/ run as a user would: the server in its runtime,
// a separate client process connecting to it, and the answer checked against
// what the test knows about that client (its pid, uid, gid, label).
//
// Run after build_npm.ts (the Node examples import the built package):
//   node --test tests/integration/examples.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { nodeTool, ownGroups, ownLabel, root } from "./common.mjs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const deno = join(root, "node_modules/.bin/deno");
const bun = join(root, "node_modules/.bin/bun");
const [node22, node24, node26] = ["22", "24", "26"].map(nodeTool);
const example = (name) => join(root, "examples", name);
const activate = (path, ...command) => [
  "python3",
  join(root, "tests/fixtures/activate.py"),
  path,
  ...command,
];
const ACTIVATION_ENV =
  "--allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES";

/** Starts `command` and resolves once it prints "listening". */
function startServer(command) {
  const server = spawn(command[0], command.slice(1), {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1" },
  });
  let output = "";
  const exited = new Promise((resolve) =>
    server.on("close", (code, signal) => resolve({ code, signal }))
  );
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" in 20 s:\n${output}`)),
      20_000,
    );
    const watch = (chunk) => {
      output += chunk;
      if (/listening/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    server.stdout.on("data", watch);
    server.stderr.on("data", (chunk) => (output += chunk));
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output}`));
    });
  });
  return { server, ready, exited, output: () => output };
}

/** One request from a separate client process; its pid and the body. */
function request(path) {
  const client = spawn(process.execPath, [
    join(root, "tests/fixtures/http_client.mjs"),
    path,
  ]);
  let body = "";
  let errors = "";
  client.stdout.on("data", (chunk) => (body += chunk));
  client.stderr.on("data", (chunk) => (errors += chunk));
  return new Promise((resolve, reject) =>
    client.on(
      "close",
      (code) =>
        code === 0
          ? resolve({ pid: client.pid, body })
          : reject(new Error(`client failed (${code}): ${errors}`)),
    )
  );
}

const cases = [
  {
    name: "Deno: node:http (examples/deno_http_server.ts)",
    command: (path) => [
      deno,
      "run",
      "--allow-ffi",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      example("deno_http_server.ts"),
      path,
    ],
  },
  ...[["20", process.execPath], ["22", node22], ["24", node24]].map((
    [version, node],
  ) => ({
    name: `Node ${version} + koffi: node:http (examples/node_http_server.mjs)`,
    command: (path) => [node, example("node_http_server.mjs"), path],
  })),
  {
    name: "Node 26 + node:ffi: node:http (examples/node_http_server.mjs)",
    command: (path) => [
      "env",
      "PEERSEC_FFI=node:ffi", // koffi is installed here and would be taken
      node26,
      "--disable-warning=ExperimentalWarning",
      example("node_http_server.mjs"),
      path,
    ],
  },
  {
    name: "Bun: node:net → node:http (examples/bun_http_server.ts)",
    command: (path) => [bun, example("bun_http_server.ts"), path],
  },
  {
    name: "Bun: Bun.listen (examples/bun_listen_server.ts)",
    command: (path) => [bun, example("bun_listen_server.ts"), path],
  },
  {
    name: "socket activation in Node (examples/socket_activation.mjs)",
    command: (path) =>
      activate(path, process.execPath, example("socket_activation.mjs")),
    activation: true,
  },
  {
    name: "socket activation in Bun (examples/socket_activation.mjs)",
    command: (path) => activate(path, bun, example("socket_activation.mjs")),
    activation: true,
  },
  {
    name: "socket activation in Deno (examples/socket_activation.mjs)",
    command: (path) =>
      activate(
        path,
        deno,
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        ACTIVATION_ENV,
        example("socket_activation.mjs"),
      ),
    activation: true,
  },
];

for (const { name, command, activation } of cases) {
  test(name, async () => {
    const directory = mkdtempSync(join(tmpdir(), "peersec-example-"));
    const path = join(directory, "demo.sock");
    const { server, ready, exited, output } = startServer(command(path));
    try {
      await ready;
      for (let round = 0; round < 2; round++) {
        const { pid, body } = await request(path);
        const identity = JSON.parse(body);
        assert.equal(identity.pid, pid, "the identity is the client's");
        assert.equal(identity.uid, process.getuid());
        assert.equal(identity.gid, process.getgid());
        assert.deepEqual(identity.groups, ownGroups(), "inherited from us");
        assert.equal(identity.securityContext, ownLabel());
      }
      if (activation) {
        assert.match(output(), /listening on fd 3 \(peersec-demo\)/);
        server.kill("SIGTERM");
      } else {
        server.kill("SIGTERM");
        const { code } = await exited;
        assert.equal(code, 0, output());
        assert.ok(!existsSync(path), "the socket file is removed on SIGTERM");
      }
    } finally {
      server.kill("SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  });
}
