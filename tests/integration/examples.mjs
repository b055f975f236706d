// Every example in examples/ run exactly as its header says: the header's
// `$ ` command lines are the test. Set-up lines (the npm build the Node
// examples need) run once, to completion; each server line starts the server
// from the repository's root (Node lines in every Node we test, through PATH),
// and the header's curl line is the separate client process, twice, whose
// pid, uid, gid, groups and label the answer must match. The demo path
// /tmp/peersec-demo.sock is replaced by a fresh one; Ctrl-C is a SIGINT to
// the server's process group, as a terminal sends it.
//
//   node --test tests/integration/examples.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { nodeTool, ownGroups, ownLabel, root } from "./common.mjs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const DEMO_PATH = "/tmp/peersec-demo.sock";
const SOCKET_ACTIVATION = /^systemd-socket-activate /;

/** The Nodes a header's `node …` line runs in (koffi before 26). */
const NODES = [
  { name: "Node 20 + koffi", binary: process.execPath },
  { name: "Node 22 + koffi", binary: nodeTool("22") },
  { name: "Node 24 + koffi", binary: nodeTool("24") },
  // koffi is installed here and Node 26 would take it: PEERSEC_FFI makes
  // this run prove node:ffi.
  {
    name: "Node 26 + node:ffi",
    binary: nodeTool("26"),
    env: { PEERSEC_FFI: "node:ffi" },
  },
];

/** The `$ ` command lines of a file's header comment, in order. */
function headerCommands(file) {
  const text = readFileSync(join(root, "examples", file), "utf8");
  const header = text.slice(0, text.search(/^import /m));
  return [...header.matchAll(/^\/\/ {3}\$ (.+)$/gm)].map((match) => match[1]);
}

/** Set-up commands already run (each once), and how they ended. */
const setUpDone = new Map();

function setUp(command) {
  if (!setUpDone.has(command)) {
    const result = spawnSync("sh", ["-c", command], {
      cwd: root,
      encoding: "utf8",
      timeout: 600_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    setUpDone.set(command, result);
  }
  const result = setUpDone.get(command);
  assert.equal(
    result.status,
    0,
    `${command} failed:\n${result.stdout}\n${result.stderr}`,
  );
}

/** Starts a header's server line; resolves once it says it is listening. */
function startServer(command, env) {
  const server = spawn("sh", ["-c", `exec ${command}`], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    detached: true, // its own process group, as a shell job
  });
  let output = "";
  const exited = new Promise((resolve) =>
    server.on("close", (code, signal) => resolve({ code, signal }))
  );
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "listening" in 60 s:\n${output}`)),
      60_000,
    );
    const watch = (chunk) => {
      output += chunk;
      // The example's "listening on …", or systemd-socket-activate's
      // "Listening on … as 3." (it starts the server on the first client).
      if (/listening/i.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    server.stdout.on("data", watch);
    server.stderr.on("data", watch);
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output}`));
    });
  });
  return { server, ready, exited, output: () => output };
}

/** The header's client line, run as it is: its pid and what it printed. */
function request(command) {
  const client = spawn("sh", ["-c", `exec ${command}`]);
  let body = "";
  let errors = "";
  client.stdout.on("data", (chunk) => (body += chunk));
  client.stderr.on("data", (chunk) => (errors += chunk));
  const timer = setTimeout(() => client.kill("SIGKILL"), 60_000);
  return new Promise((resolve, reject) =>
    client.on("close", (code) => {
      clearTimeout(timer);
      code === 0
        ? resolve({ pid: client.pid, body })
        : reject(new Error(`${command} failed (${code}): ${errors}`));
    })
  );
}

/** Whether any process of the group is left. */
function groupAlive(group) {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

async function groupEnds(group, milliseconds) {
  const deadline = Date.now() + milliseconds;
  while (groupAlive(group) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !groupAlive(group);
}

const files = readdirSync(join(root, "examples")).sort();

test("every example's header says how to run it and how to ask it", () => {
  assert.ok(files.length >= 5);
  for (const file of files) {
    const commands = headerCommands(file);
    assert.equal(
      commands.filter((command) => command.startsWith("curl ")).length,
      1,
      `${file}: one curl line`,
    );
    assert.ok(
      commands.some((command) =>
        !command.startsWith("curl ") && command.includes(DEMO_PATH) &&
        command.includes(`examples/${file}`)
      ),
      `${file}: a line that runs examples/${file} on ${DEMO_PATH}`,
    );
  }
});

for (const file of files) {
  const commands = headerCommands(file);
  const client = commands.find((command) => command.startsWith("curl "));
  const servers = commands.filter((command) =>
    command !== client && command.includes(DEMO_PATH)
  );
  const setUps = commands.filter((command) =>
    command !== client && !servers.includes(command)
  );
  for (const command of servers) {
    const activation = SOCKET_ACTIVATION.test(command);
    const runtime = command.replace(SOCKET_ACTIVATION, "")
      .replace(/^-l \S+ (--fdname=\S+ )?/, "");
    // A `node …` line runs in each Node (just the machine's under socket
    // activation); the others as they are.
    const variants = /^node /.test(runtime)
      ? (activation ? NODES.slice(0, 1) : NODES)
      : [{ name: runtime.split(" ").slice(0, 2).join(" ") }];
    for (const variant of variants) {
      test(`examples/${file}, ${variant.name}: ${command}`, async () => {
        // Node runs the npm build the header's set-up line makes; Deno and
        // Bun run the sources and need none of it.
        if (/^node /.test(runtime)) setUps.forEach(setUp);
        const directory = mkdtempSync(join(tmpdir(), "peersec-example-"));
        const path = join(directory, "demo.sock");
        const env = variant.binary === undefined ? {} : {
          ...variant.env,
          PATH: `${dirname(variant.binary)}:${process.env.PATH}`,
        };
        const { server, ready, exited, output } = startServer(
          command.replaceAll(DEMO_PATH, path),
          env,
        );
        try {
          await ready;
          for (let round = 0; round < 2; round++) {
            const { pid, body } = await request(
              client.replaceAll(DEMO_PATH, path),
            );
            const identity = JSON.parse(body);
            assert.equal(identity.pid, pid, "the identity is curl's");
            assert.equal(identity.uid, process.getuid());
            assert.equal(identity.gid, process.getgid());
            assert.deepEqual(identity.groups, ownGroups(), "inherited from us");
            assert.equal(identity.securityContext, ownLabel());
          }
          if (activation) {
            assert.match(output(), /listening on fd 3 \(peersec-demo\)/);
          }
          // Ctrl-C: the whole job stops by itself.
          process.kill(-server.pid, "SIGINT");
          assert.ok(
            await groupEnds(server.pid, 15_000),
            `still running 15 s after Ctrl-C:\n${output()}`,
          );
          const { code, signal } = await exited;
          // npx itself dies of the SIGINT its child handles.
          if (!command.startsWith("npx ")) {
            assert.deepEqual(
              { code, signal },
              { code: 0, signal: null },
              output(),
            );
          }
          if (!activation) {
            assert.ok(!existsSync(path), "the socket file is removed");
          }
        } finally {
          if (groupAlive(server.pid)) process.kill(-server.pid, "SIGKILL");
          rmSync(directory, { recursive: true, force: true });
        }
      });
    }
  }
}
