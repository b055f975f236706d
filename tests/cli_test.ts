// The CLI run as a user would, in Deno and in Bun: self (`npm start`), probe
// and serve.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  binary,
  fixture,
  isRoot,
  procAttrCurrent,
  procStatus,
  repoRoot,
  runtimeCommand,
} from "./helpers.ts";

const root = `${repoRoot}/`;

/** The CLI's command line in a runtime; Deno gets `denoFlags`. */
function cliCommand(
  runtime: "deno" | "bun",
  args: string[],
  denoFlags: string[] = [],
): string[] {
  return runtime === "deno"
    ? [binary("deno"), "run", ...denoFlags, `${root}cli.ts`, ...args]
    : [binary("bun"), `${root}cli.ts`, ...args];
}

function cli(
  runtime: "deno" | "bun",
  args: string[],
  denoFlags: string[] = [],
  prefix: string[] = [],
) {
  const command = [...prefix, ...cliCommand(runtime, args, denoFlags)];
  const result = spawnSync(command[0], command.slice(1), {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const expectedLabel = procAttrCurrent(process.pid);

for (const runtime of ["deno", "bun"] as const) {
  const flags = ["--allow-ffi", "--allow-read"];

  test(`${runtime}: peersec (no arguments) prints the self-check and a verdict`, () => {
    const { code, stdout } = cli(runtime, [], flags);
    assert.equal(code, 0);
    assert.match(
      stdout,
      new RegExp(`peersec self-check \\(${runtime} on linux`),
    );
    if (expectedLabel === null) {
      assert.match(stdout, /SO_PEERSEC on a socketpair: ENOPROTOOPT/);
      assert.match(
        stdout,
        /verdict: no LSM provides socket labels on this kernel/,
      );
    } else {
      assert.match(stdout, /verdict: labels available/);
    }
  });

  test(`${runtime}: peersec self --json agrees with /proc/self/attr/current`, () => {
    const { code, stdout } = cli(runtime, ["self", "--json"], flags);
    assert.equal(code, 0);
    const report = JSON.parse(stdout);
    assert.equal(report.libraryPath, "libc.so.6");
    assert.equal(report.labelsAvailable, expectedLabel !== null);
    if (expectedLabel === null) {
      assert.equal(report.socketLabel, null);
      assert.equal(report.socketError.code, "ENOPROTOOPT");
    } else {
      assert.equal(report.socketLabel, expectedLabel);
    }
  });

  test(`${runtime}: bad usage exits 2 with the usage text`, () => {
    const { code, stderr } = cli(runtime, ["frobnicate"], flags);
    assert.equal(code, 2);
    assert.match(stderr, /unknown arguments: frobnicate/);
    assert.match(stderr, /usage: peersec/);
  });
}

test("deno without --allow-ffi: one line, exit 1, no stack trace", () => {
  const { code, stdout, stderr } = cli("deno", []);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr.trim(),
    "peersec: Deno does not allow FFI: run with --allow-ffi (peersec calls " +
      "getsockopt in libc; it never asks at a prompt) [ERR_FFI_PERMISSION]",
  );
});

test("--help exits 0", () => {
  const { code, stdout } = cli("bun", ["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /usage: peersec \[self\] \[--json\]/);
});

// ---- probe and serve -------------------------------------------------------

const DENO_NET_FLAGS = [
  "--allow-ffi",
  "--allow-read",
  "--allow-write",
  "--allow-net",
];
const userNames = new Map(
  readFileSync("/etc/passwd", "utf8").split("\n")
    .map((line) => line.split(":"))
    .filter((fields) => fields.length > 2)
    .map((fields) => [Number(fields[2]), fields[0]]),
);

function temporaryDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "peersec-cli-"));
  chmodSync(directory, 0o755);
  return directory;
}

/** A socket file nobody listens on: bound, never listened. */
function staleSocket(path: string): void {
  spawnSync("python3", [
    "-c",
    `import socket; socket.socket(socket.AF_UNIX).bind(${
      JSON.stringify(path)
    })`,
  ]);
  assert.ok(existsSync(path));
}

/** Runs the CLI asynchronously (this process must keep serving meanwhile). */
function cliAsync(
  runtime: "deno" | "bun",
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, ...rest] = cliCommand(runtime, args, DENO_NET_FLAGS);
  const child = spawn(command, rest, {
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  );
}

/** A one-line error on stderr, no stack trace, exit 1. */
function assertOneLineFailure(
  result: { code: number | null; stdout: string; stderr: string },
  pattern: RegExp,
) {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

for (const runtime of ["deno", "bun"] as const) {
  test(`${runtime}: peersec probe shows the identity of the process serving a socket`, async () => {
    const directory = temporaryDirectory();
    const path = join(directory, "server.sock");
    const server = net.createServer((socket) => socket.on("error", () => {}));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const json = await cliAsync(runtime, ["probe", path, "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const peer = JSON.parse(json.stdout);
      const status = procStatus(process.pid);
      assert.equal(peer.pid, process.pid);
      assert.equal(peer.uid, status.uid);
      assert.equal(peer.gid, status.gid);
      assert.equal(peer.user, userNames.get(status.uid) ?? null);
      assert.deepEqual(
        peer.groups.map((group: { gid: number }) => group.gid),
        status.groups,
      );
      assert.equal(peer.label, procAttrCurrent(process.pid));
      // Deno reads /proc/<pid>/exe only with --allow-all, which the probe lacks.
      assert.equal(
        peer.executable,
        runtime === "deno" ? null : realpathSync(process.execPath),
      );

      const text = await cliAsync(runtime, ["probe", path]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^pid    ${process.pid}`, "m"));
      assert.match(text.stdout, /^uid {4}\d+/m);
      assert.match(text.stdout, /^label {2}/m);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec probe fails in one line for bad paths`, () => {
    const directory = temporaryDirectory();
    try {
      const plain = join(directory, "plain.txt");
      writeFileSync(plain, "x");
      const stale = join(directory, "stale.sock");
      staleSocket(stale);
      const flags = DENO_NET_FLAGS;
      assertOneLineFailure(
        cli(runtime, ["probe", join(directory, "missing.sock")], flags),
        /missing\.sock: no such file or directory$/,
      );
      assertOneLineFailure(
        cli(runtime, ["probe", plain], flags),
        /plain\.txt: not a socket$/,
      );
      assertOneLineFailure(
        cli(runtime, ["probe", stale], flags),
        /stale\.sock: nothing is listening there$/,
      );
      if (isRoot()) {
        const locked = join(directory, "locked");
        mkdirSync(locked, { mode: 0o700 });
        const hidden = join(locked, "hidden.sock");
        staleSocket(hidden);
        assertOneLineFailure(
          cli(runtime, ["probe", hidden], flags, [
            "setpriv",
            "--reuid",
            "1234",
            "--regid",
            "1234",
            "--clear-groups",
            "--",
          ]),
          /hidden\.sock: permission denied$/,
        );
      }
      const usage = cli(runtime, ["probe"], flags);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /probe takes one UNIX socket path/);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec serve prints each client's identity, and stops cleanly`, async () => {
    const directory = temporaryDirectory();
    const path = join(directory, "serve.sock");
    const [command, ...args] = cliCommand(
      runtime,
      ["serve", path, "--json"],
      DENO_NET_FLAGS,
    );
    const server = spawn(command, args, {
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    server.stdout.on("data", (chunk) => (stdout += chunk));
    server.stderr.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) =>
      server.on("close", resolve)
    );
    try {
      for (let waited = 0; !existsSync(path); waited += 50) {
        assert.ok(waited < 15_000, `serve never listened: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const clientPids: number[] = [];
      for (let index = 0; index < 2; index++) {
        const [clientCommand, ...clientArgs] = runtimeCommand(
          fixture("unix_client.mjs"),
          [path],
        );
        const client = spawn(clientCommand, clientArgs, { stdio: "ignore" });
        clientPids.push(client.pid!);
        assert.equal(
          await new Promise((resolve) => client.on("close", resolve)),
          0,
        );
      }
      const lines = stdout.trim().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(lines.map((peer) => peer.pid), clientPids);
      for (const peer of lines) {
        assert.equal(peer.uid, procStatus(process.pid).uid);
        assert.equal(peer.label, procAttrCurrent(process.pid));
      }
      // process.kill, not server.kill: Deno's ChildProcess reports any child
      // it signalled itself as killed by that signal, however it exited.
      process.kill(server.pid!, "SIGTERM");
      assert.equal(await exited, 0, stderr);
      assert.ok(!existsSync(path), "the socket file is removed");
      assert.match(stderr, /listening on .*serve\.sock/);
    } finally {
      server.kill("SIGKILL");
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec serve refuses a path that exists`, () => {
    const directory = temporaryDirectory();
    try {
      const existing = join(directory, "taken");
      writeFileSync(existing, "keep me");
      assertOneLineFailure(
        cli(runtime, ["serve", existing], DENO_NET_FLAGS),
        /taken: already exists/,
      );
      assert.equal(readFileSync(existing, "utf8"), "keep me");
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
}

test("deno without --allow-net: probe and serve explain the permission in one line", () => {
  const directory = temporaryDirectory();
  try {
    const stale = join(directory, "stale.sock");
    staleSocket(stale);
    for (
      const args of [["probe", stale], ["serve", join(directory, "new.sock")]]
    ) {
      assertOneLineFailure(
        cli("deno", args, ["--allow-ffi", "--allow-read"]),
        /Deno: peersec needs --allow-ffi --allow-read, and --allow-net --allow-write/,
      );
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
