// The CLI run as a user would, in Deno and in Bun: self (`npm start`), probe
// and serve.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  binary,
  fixture,
  isRoot,
  procAttrCurrent,
  procStatus,
  repoRoot,
  runtimeCommand,
  startProcess,
  SYSTEM_PYTHON,
} from "./helpers.ts";
import { formatPeer } from "../src/peer_description.ts";

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
    timeout: 120_000,
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

  test(`${runtime}: the self-check says why it could not read a file, truthfully`, () => {
    const { stdout } = cli(runtime, [], flags);
    const lsmFile = existsSync("/sys/kernel/security/lsm");
    if (runtime === "deno") {
      // --allow-read does not reach /proc/self/attr or /sys in Deno.
      assert.match(
        stdout,
        /this process's label: {2}unknown \(Deno reads \/proc\/self\/attr\/current only with --allow-all\)/,
      );
      const all = cli(runtime, [], ["--allow-all"]).stdout;
      if (!lsmFile) {
        assert.match(
          all,
          /security modules: {6}unknown \(securityfs is not mounted at \/sys\/kernel\/security\)/,
        );
      }
      if (expectedLabel === null) {
        assert.match(
          all,
          /this process's label: {2}none \(EINVAL: no security module/,
        );
      }
    } else {
      if (!lsmFile) assert.match(stdout, /securityfs is not mounted/);
      if (expectedLabel === null) {
        assert.match(stdout, /this process's label: {2}none \(EINVAL/);
      }
    }
    assert.doesNotMatch(stdout, /not readable/);
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

  test(`${runtime}: peersec --version prints deno.json's version`, () => {
    const { version } = JSON.parse(
      readFileSync(`${root}deno.json`, "utf8"),
    );
    const { code, stdout } = cli(runtime, ["--version"], flags);
    assert.equal(code, 0);
    assert.equal(stdout, `peersec ${version}\n`);
    const json = cli(runtime, ["--version", "--json"], flags);
    assert.deepEqual(JSON.parse(json.stdout), { version });
  });

  test(`${runtime}: serve into a directory that does not exist says so`, () => {
    const missing = join(tmpdir(), `peersec-nodir-${process.pid}`, "x.sock");
    const result = cli(runtime, ["serve", missing], [
      ...flags,
      "--allow-net",
      "--allow-write",
    ]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr,
      `peersec: ${missing}: the directory ${dirname(missing)} does not exist\n`,
    );
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
    "peersec: Deno does not allow FFI for libc.so.6, libc.musl-x86_64.so.1, " +
      "libc.so: run with --allow-ffi; or, if --allow-ffi names libc's path " +
      "and PEERSEC_LIBC is set to it, add --allow-env=PEERSEC_LIBC so that " +
      "peersec can read it (peersec calls getsockopt in libc; it never asks " +
      "at a prompt) [ERR_FFI_PERMISSION]",
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
  const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr });
    })
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
      // Deno reads /proc/<pid>/exe and /proc/self/fdinfo only with
      // --allow-all, which the probe lacks: it cannot tie pid and executable.
      assert.equal(
        peer.executable,
        runtime === "deno" ? null : realpathSync(process.execPath),
      );
      assert.equal(peer.role, "listener");
      assert.equal(peer.process, runtime === "deno" ? "unverified" : "alive");

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

  test(`${runtime}: peersec probe host:port and [::1]:port read the TCP peer's label, or say none travels`, async () => {
    for (const host of ["127.0.0.1", "::1"]) {
      const server = net.createServer((socket) => socket.on("error", () => {}));
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      const { port } = server.address() as net.AddressInfo;
      const operand = host.includes(":")
        ? `[${host}]:${port}`
        : `${host}:${port}`;
      try {
        const json = await cliAsync(runtime, ["probe", operand, "--json"]);
        assert.equal(json.code, 0, json.stderr);
        // This kernel has no labeled networking: the kernel's own answer.
        assert.deepEqual(JSON.parse(json.stdout), {
          transport: "tcp",
          address: host,
          port,
          label: null,
          labelError: "ENOPROTOOPT",
        });
        const text = await cliAsync(runtime, ["probe", operand]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(
          text.stdout,
          new RegExp(`^peer   \\[?${host}\\]?:${port} \\[TCP`, "m"),
        );
        assert.match(
          text.stdout,
          /^label {2}none \(ENOPROTOOPT: no labeled networking/m,
        );
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
    // Nobody listening: one line, exit 1.
    const closed = net.createServer();
    await new Promise<void>((resolve) =>
      closed.listen(0, "127.0.0.1", resolve)
    );
    const { port } = closed.address() as net.AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    assertOneLineFailure(
      await cliAsync(runtime, ["probe", `127.0.0.1:${port}`]),
      new RegExp(
        `^peersec: 127\\.0\\.0\\.1:${port}: nothing is listening there$`,
      ),
    );
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
        // A directory of another user's (0700), probed by root without its
        // capabilities: permission denied. (Root keeps its uid, so the CLI
        // and the runtime stay readable wherever the repository lives.)
        const locked = join(directory, "locked");
        mkdirSync(locked, { mode: 0o700 });
        const hidden = join(locked, "hidden.sock");
        staleSocket(hidden);
        chownSync(locked, 1234, 1234);
        assertOneLineFailure(
          cli(runtime, ["probe", hidden], flags, [
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
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
        const client = startProcess(clientCommand, clientArgs);
        clientPids.push(client.pid);
        assert.equal((await client.exited).code, 0);
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
        /Deno(: peersec)? needs --allow-(ffi --allow-read, and --allow-)?net --allow-(read --allow-)?write/,
      );
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

// ---- what a hostile peer chooses, and what a dead listener leaves -------------

/** Any control character a terminal would obey, except the line breaks. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

test("formatPeer escapes control characters in every peer-chosen string, and says so", () => {
  const forged = "x\u001b[2K\ruid    0 (root)\n\u009b31m\u202e";
  const text = formatPeer({
    pid: 42,
    process: "alive",
    role: "client",
    executable: `/tmp/${forged}`,
    uid: 1000,
    user: "alice",
    gid: 1000,
    group: "alice",
    groups: [],
    label: `evil_t\u0007${forged} (enforce)`,
  });
  assert.doesNotMatch(text, CONTROL_BUT_NEWLINE);
  assert.doesNotMatch(text, /\u202e/);
  assert.equal(text.split("\n").length, 6, "no line was forged");
  assert.match(
    text,
    /^pid {4}42 \(\/tmp\/x\\x1b\[2K\\x0duid {4}0 \(root\)\\x0a/m,
  );
  assert.match(text, /^label {2}evil_t\\x07x\\x1b/m);
  assert.match(text, /\\u\{202e\}/);
  assert.match(text, /^note {3}control characters above are shown escaped/m);
  const plain = formatPeer({
    pid: 1,
    process: "alive",
    role: "client",
    executable: "/usr/bin/a\\b",
    uid: 0,
    user: "root",
    gid: 0,
    group: "root",
    groups: [],
    label: null,
  });
  assert.match(plain, /\/usr\/bin\/a\\\\b/, "a backslash is escaped too");
  assert.doesNotMatch(
    plain,
    /^note/m,
    "nothing to say when nothing was escaped",
  );
});

for (const runtime of ["deno", "bun"] as const) {
  test(`${runtime}: peersec serve shows a peer executable named with terminal escapes, escaped (client run as another user)`, async () => {
    const directory = temporaryDirectory();
    const path = join(directory, "serve.sock");
    const evil = join(directory, "x\u001b[2K\ruid    0 (root)\nsshd");
    copyFileSync("/usr/bin/python3.11", evil);
    chmodSync(evil, 0o755);
    const script = join(directory, "unix_client.py");
    copyFileSync(fixture("unix_client.py"), script);
    chmodSync(script, 0o644);
    const [command, ...args] = cliCommand(runtime, [
      "serve",
      path,
      "--mode",
      "0666",
    ], [
      "--allow-all",
    ]);
    const server = startProcess(command, args, { capture: true });
    try {
      await server.racing(waitFor(() => existsSync(path)));
      // The socket is made with mode 0 (nobody but root may connect) and
      // given its mode at once: never anything looser in between.
      const first = lstatSync(path).mode & 0o777;
      assert.ok(
        first === 0 || first === 0o666,
        `mode 0 or 0o666 from the moment it exists, not ${first.toString(8)}`,
      );
      await server.racing(
        waitFor(() => (lstatSync(path).mode & 0o777) === 0o666),
      );
      assert.equal(
        lstatSync(path).mode & 0o777,
        0o666,
        "--mode is the socket's mode once it listens",
      );
      const prefix = isRoot()
        ? ["setpriv", "--reuid", "1234", "--regid", "1234", "--clear-groups"]
        : [];
      const client = startProcess(prefix[0] ?? evil, [
        ...prefix.slice(1),
        ...(prefix.length ? [evil] : []),
        script,
        path,
      ]);
      assert.equal((await client.exited).code, 0);
      await server.racing(waitFor(() => server.stdout().includes("label")));
      const out = server.stdout();
      assert.doesNotMatch(out, CONTROL_BUT_NEWLINE);
      assert.match(out, /x\\x1b\[2K\\x0duid {4}0 \(root\)\\x0asshd/);
      assert.match(out, /^note {3}control characters above are shown escaped/m);
      if (isRoot()) assert.match(out, /^uid {4}1234/m);
    } finally {
      await server.stop();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec serve --json escapes DEL, C1 and bidirectional controls in a peer's executable name (client run as another user)`, async () => {
    const directory = temporaryDirectory();
    const path = join(directory, "serve.sock");
    // DEL, NEL, CSI + "2J", RLO, LRI, RLM, ALM, LS, PDI: JSON.stringify
    // leaves every one of them raw.
    const name =
      "py\u007f\u0085\u009b2J\u202egpj.exe\u2066\u200f\u061c\u2028\u2069";
    const evil = join(directory, name);
    copyFileSync("/usr/bin/python3.11", evil);
    chmodSync(evil, 0o755);
    const script = join(directory, "unix_client.py");
    copyFileSync(fixture("unix_client.py"), script);
    chmodSync(script, 0o644);
    const [command, ...args] = cliCommand(runtime, [
      "serve",
      path,
      "--mode",
      "0666",
      "--json",
    ], ["--allow-all"]);
    const server = startProcess(command, args, { capture: true });
    try {
      // Made with mode 0, then given 0666: the other user waits for that.
      await server.racing(
        waitFor(() =>
          existsSync(path) && (lstatSync(path).mode & 0o777) === 0o666
        ),
      );
      const prefix = isRoot()
        ? ["setpriv", "--reuid", "1234", "--regid", "1234", "--clear-groups"]
        : [];
      const client = startProcess(prefix[0] ?? evil, [
        ...prefix.slice(1),
        ...(prefix.length ? [evil] : []),
        script,
        path,
      ]);
      assert.equal((await client.exited).code, 0);
      await server.racing(waitFor(() => server.stdout().includes("label")));
      const out = server.stdout();
      assert.doesNotMatch(
        out,
        /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd]/,
        "none of those characters (nor a broken byte) reaches the terminal",
      );
      assert.match(
        out,
        /py\\u007f\\u0085\\u009b2J\\u202egpj\.exe\\u2066\\u200f\\u061c\\u2028\\u2069/,
      );
      const peer = JSON.parse(out.trim().split("\n")[0]);
      assert.equal(peer.executable, evil, "JSON gives the name exactly");
      if (isRoot()) assert.equal(peer.uid, 1234);
    } finally {
      await server.stop();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec probe of a socket whose listener exited says so, and names no executable`, async () => {
    const directory = temporaryDirectory();
    const path = join(directory, "orphan.sock");
    // The parent listens, forks a child that keeps the listener, and exits:
    // SO_PEERCRED on a client's side names the parent.
    const holder = spawn(SYSTEM_PYTHON, [
      "-c",
      [
        "import os, socket, sys, time",
        "s = socket.socket(socket.AF_UNIX)",
        `s.bind(${JSON.stringify(path)}); s.listen(8)`,
        "if os.fork() == 0:",
        "    os.close(1); time.sleep(60); sys.exit(0)",
        "print(os.getpid(), flush=True)",
      ].join("\n"),
    ], { stdio: ["ignore", "pipe", "inherit"] });
    let listenerPid = "";
    holder.stdout.on("data", (chunk) => listenerPid += chunk);
    await new Promise((resolve) => holder.once("close", resolve));
    try {
      const json = await cliAsync(runtime, ["probe", path, "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const peer = JSON.parse(json.stdout);
      assert.equal(peer.pid, Number(listenerPid.trim()));
      assert.equal(peer.role, "listener");
      assert.equal(peer.executable, null);
      const text = await cliAsync(runtime, ["probe", path]);
      if (runtime === "deno") {
        // Without --allow-all Deno cannot read the pidfd's fdinfo: it says it
        // could not verify, never that the pid is alive.
        assert.equal(peer.process, "unverified");
        assert.match(text.stdout, /; not verified \(/);
      } else {
        assert.equal(peer.process, "exited");
        assert.match(
          text.stdout,
          /^pid {4}\d+ \[the process that called listen\(\) on this socket — not necessarily the one serving it; it has exited, and this pid may belong to another process now\]$/m,
        );
      }
    } finally {
      spawnSync("pkill", ["-f", `time.sleep\\(60\\)`]);
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: --json makes every outcome one JSON object`, () => {
    const directory = temporaryDirectory();
    try {
      const usage = cli(runtime, ["frobnicate", "--json"], DENO_NET_FLAGS);
      assert.equal(usage.code, 2);
      assert.equal(usage.stderr, "");
      assert.deepEqual(Object.keys(JSON.parse(usage.stdout)), [
        "error",
        "message",
      ]);
      assert.equal(JSON.parse(usage.stdout).error, "ERR_USAGE");
      const missing = cli(
        runtime,
        ["probe", join(directory, "missing.sock"), "--json"],
        DENO_NET_FLAGS,
      );
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr, "");
      assert.equal(JSON.parse(missing.stdout).error, "ENOENT");
      const taken = join(directory, "taken");
      writeFileSync(taken, "x");
      const exists = cli(runtime, ["serve", taken, "--json"], DENO_NET_FLAGS);
      assert.equal(exists.code, 1);
      assert.equal(JSON.parse(exists.stdout).error, "EADDRINUSE");
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
}

/** Resolves once `condition` holds (polled); bounded by the caller's race. */
async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 25));
}

// ---- access ----------------------------------------------------------------

for (const runtime of ["deno", "bun"] as const) {
  const flags = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-net"];

  test(`${runtime}: peersec access asks the policy, and fails closed where there is none`, async () => {
    // This kernel has no LSM: every question is denied as unavailable.
    const text = cli(
      runtime,
      ["access", "user_u:base_r:cli_t:s0", "GET", "/x"],
      flags,
    );
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^denied: unavailable — /);
    const json = cli(
      runtime,
      [
        "access",
        "--json",
        "--lsm",
        "smack",
        "--object",
        "api",
        "cli",
        "GET",
        "/x",
      ],
      flags,
    );
    assert.equal(json.code, 1);
    const decision = JSON.parse(json.stdout);
    assert.equal(decision.allowed, false);
    assert.equal(decision.reason, "unavailable");
    assert.equal(decision.lsm, "smack");
    // --peer-of: the label of the process serving the socket (none here).
    const directory = temporaryDirectory();
    const path = join(directory, "served.sock");
    const server = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const peer = await cliAsync(runtime, [
        "access",
        "--json",
        "--peer-of",
        path,
        "POST",
        "/items",
      ]);
      assert.equal(peer.code, 1);
      assert.equal(JSON.parse(peer.stdout).allowed, false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test(`${runtime}: peersec access usage errors exit 2`, () => {
    for (
      const args of [
        ["access", "label", "GET"],
        ["access", "--peer-of", "/tmp/x.sock", "label", "GET", "/x"],
        ["access", "--lsm", "tomoyo", "label", "GET", "/x"],
        ["probe", "--service", "x", "/tmp/x.sock"],
      ]
    ) {
      const result = cli(runtime, args, flags);
      assert.equal(result.code, 2, `${args.join(" ")}: exit ${result.code}`);
    }
  });
}
