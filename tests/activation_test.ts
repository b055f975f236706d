// listenFds: systemd-style socket activation variables, as sd_listen_fds(3),
// and real launchers (systemd-socket-activate, a small Python one that sets
// LISTEN_PIDFDID like systemd 256+, and one that can lie about the count)
// passing listening sockets from fd 3 on. In the test runner itself fd 3 is
// the runtime's own (its epoll fd), never a passed socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { listenFds, PeerSecError } from "../mod.ts";
import { binary, fixture, runtimeCommand } from "./helpers.ts";

const VARIABLES = [
  "LISTEN_PID",
  "LISTEN_PIDFDID",
  "LISTEN_FDS",
  "LISTEN_FDNAMES",
];

function withEnvironment(values: Record<string, string>, use: () => void) {
  const saved = VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const name of VARIABLES) delete process.env[name];
  Object.assign(process.env, values);
  try {
    use();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

test("no variables: no sockets", () => {
  withEnvironment({}, () => assert.deepEqual(listenFds(), []));
});

function invalidEnvironment(message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof PeerSecError, String(error));
    assert.equal(error.code, "ERR_INVALID_ENVIRONMENT");
    if (message) assert.match(error.message, message);
    return true;
  };
}

test("the runtime's own fd 3 is no passed socket: LISTEN_FDS=1 in a process nothing was passed to is refused", () => {
  withEnvironment({ LISTEN_PID: String(process.pid), LISTEN_FDS: "1" }, () => {
    assert.ok(existsSync("/proc/self/fd/3"), "fd 3 is open: the runtime's");
    assert.throws(
      () => listenFds(),
      invalidEnvironment(/fd 3, which is not a socket \[ENOTSOCK\]/),
    );
    assert.equal(process.env.LISTEN_FDS, "1", "left in place by default");
    assert.throws(() => listenFds({ unsetEnvironment: true }), PeerSecError);
    for (const name of VARIABLES) {
      assert.equal(process.env[name], undefined, "removed, failure or not");
    }
  });
});

test("LISTEN_FDS counts 1 to INT_MAX - 3, as sd_listen_fds; 0 is invalid, not 'none'", () => {
  for (const count of ["0", "000", "2147483645", "99999999999"]) {
    withEnvironment(
      { LISTEN_PID: String(process.pid), LISTEN_FDS: count },
      () =>
        assert.throws(
          () => listenFds(),
          invalidEnvironment(/LISTEN_FDS is not a count of passed fds/),
          count,
        ),
    );
  }
  // The largest count passes the count check; the fds themselves do not.
  withEnvironment(
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "2147483644" },
    () =>
      assert.throws(
        () => listenFds(),
        invalidEnvironment(/is not (open|a socket)/),
      ),
  );
});

test("a LISTEN_FDS far beyond the open fds is refused at the first fd that is wrong, in order", () => {
  withEnvironment(
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "1000" },
    () => {
      // fd 3 is open (the runtime's) and fds past the runtime's are not:
      // the error names fd 3, the first wrong one, not a later gap.
      assert.throws(
        () => listenFds(),
        invalidEnvironment(/^LISTEN_FDS passes fd 3, which is not a socket/),
      );
    },
  );
});

test("variables meant for another process (a parent's) are not ours", () => {
  withEnvironment({ LISTEN_PID: "1", LISTEN_FDS: "1" }, () => {
    assert.deepEqual(listenFds(), []);
  });
});

test("malformed variables are ERR_INVALID_ENVIRONMENT", () => {
  const cases: Record<string, string>[] = [
    { LISTEN_PID: "abc", LISTEN_FDS: "1" },
    { LISTEN_PID: "-5", LISTEN_FDS: "1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "two" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "-1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "99999999999" },
    { LISTEN_PID: String(process.pid), LISTEN_PIDFDID: "x", LISTEN_FDS: "1" },
    {
      LISTEN_PID: String(process.pid),
      LISTEN_PIDFDID: "18446744073709551616",
      LISTEN_FDS: "1",
    },
  ];
  for (const values of cases) {
    withEnvironment(values, () => {
      assert.throws(() => listenFds(), (error) => {
        assert.ok(error instanceof PeerSecError);
        assert.equal(error.code, "ERR_INVALID_ENVIRONMENT");
        return true;
      }, JSON.stringify(values));
    });
  }
  assert.throws(
    () => listenFds(null as unknown as { unsetEnvironment?: boolean }),
    TypeError,
  );
});

test("Deno without --allow-env: ERR_ENV_PERMISSION naming the flag", () => {
  const script = fixture("listen_fds.ts");
  const denied = spawnSync(binary("deno"), ["run", script], {
    timeout: 120_000,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.deepEqual(JSON.parse(denied.stdout), {
    code: "ERR_ENV_PERMISSION",
    message:
      "Deno needs --allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES to read socket activation",
  });
  const allowed = spawnSync(binary("deno"), [
    "run",
    "--allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES",
    script,
  ], {
    timeout: 120_000,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.deepEqual(JSON.parse(allowed.stdout), { fds: [] });
});

/** Runs the activated fixture under a launcher; resolves to its JSON line. */
async function activated(
  launcher: (path: string) => string[],
  options: { connectToStart?: boolean } = {},
): Promise<Record<string, unknown>> {
  const directory = mkdtempSync(join(tmpdir(), "peersec-activation-"));
  try {
    const path = join(directory, "listen.sock");
    const [command, ...args] = launcher(path);
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    child.stdout.on("data", (chunk) => stdout += chunk);
    const closed = new Promise((resolve) => child.once("close", resolve));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    if (options.connectToStart) {
      // systemd-socket-activate starts the service on the first connection.
      while (!existsSync(path) && child.exitCode === null) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const client = net.connect(path);
      client.on("error", () => {});
      await closed;
      client.destroy();
    }
    const code = await closed;
    clearTimeout(timer);
    assert.equal(code, 0, `the activated process exited with ${code}`);
    return JSON.parse(stdout);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const activatedFixture = () => runtimeCommand(fixture("activated.mjs"), []);

test("systemd-socket-activate: the passed listener becomes close-on-exec, a child does not inherit it", async () => {
  const result = await activated((path) => [
    "systemd-socket-activate",
    "-l",
    path,
    "--fdname=web",
    ...activatedFixture(),
  ], { connectToStart: true });
  assert.deepEqual(result.fds, [{ fd: 3, name: "web" }]);
  // The launcher passes fd 3 inheritable; Deno, Bun and Node 20 keep it so
  // (result.before is false there, and this test fails without listenFds
  // setting FD_CLOEXEC), Node 26 marks it close-on-exec itself.
  assert.deepEqual(result.after, [true], "listenFds set FD_CLOEXEC");
  assert.equal(result.childSees, "", "a child process has no fd 3");
  assert.deepEqual(result.leftInEnvironment, [], "unsetEnvironment");
});

test("LISTEN_PIDFDID: this process's pidfd id is accepted, another's is not", async () => {
  const launch = (mode: string) => (path: string) => [
    "python3",
    fixture("activate.py"),
    `--pidfdid=${mode}`,
    path,
    ...activatedFixture(),
  ];
  const own = await activated(launch("own"));
  assert.deepEqual(own.fds, [{ fd: 3, name: "peersec-demo" }]);
  const wrong = await activated(launch("wrong"));
  assert.deepEqual(
    wrong.fds,
    [],
    "same pid, another pidfd: not for this process",
  );
  assert.deepEqual(wrong.leftInEnvironment, [], "LISTEN_PIDFDID removed too");
  const none = await activated(launch("none"));
  assert.deepEqual(none.fds, [{ fd: 3, name: "peersec-demo" }]);
});

// ---- a launcher that passes what it is told, and says what it is told --------

/**
 * Runs listen_fds_report.mjs under activate_fds.py, passing `kinds` from fd 3
 * on; resolves to the report.
 */
async function reported(
  kinds: string[],
  options: { count?: string; names?: string } = {},
): Promise<{
  fds?: { fd: number; name: string | null }[];
  error?: { code: string; message: string };
  closeOnExec: (boolean | null)[];
  childSees: string;
}> {
  const directory = mkdtempSync(join(tmpdir(), "peersec-activation-"));
  try {
    const flags = [
      ...(options.count === undefined ? [] : [`--count=${options.count}`]),
      ...(options.names === undefined ? [] : [`--names=${options.names}`]),
    ];
    const child = spawn("python3", [
      fixture("activate_fds.py"),
      ...flags,
      directory,
      kinds.join(","),
      ...runtimeCommand(fixture("listen_fds_report.mjs"), []),
    ], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    child.stdout.on("data", (chunk) => stdout += chunk);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await new Promise((resolve) => child.once("close", resolve));
    clearTimeout(timer);
    assert.equal(code, 0, `the activated process exited with ${code}`);
    return JSON.parse(stdout);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("a launcher passing two sockets: both, named, close-on-exec", async () => {
  const result = await reported(["socket", "socket"], { names: "web:" });
  assert.deepEqual(result.fds, [{ fd: 3, name: "web" }, { fd: 4, name: "" }]);
  assert.deepEqual(result.closeOnExec, [true, true]);
  assert.equal(result.childSees, "");
  const unnamed = await reported(["socket"]);
  assert.deepEqual(unnamed.fds, [{ fd: 3, name: null }]);
});

test('LISTEN_FDNAMES="" is one empty name, as systemd splits it: right for one fd, wrong for two', async () => {
  assert.deepEqual(
    (await reported(["socket"], { names: "" })).fds,
    [{ fd: 3, name: "" }],
  );
  const two = await reported(["socket", "socket"], { names: "" });
  assert.equal(two.error?.code, "ERR_INVALID_ENVIRONMENT");
  assert.match(
    two.error!.message,
    /LISTEN_FDNAMES names 1 fd\(s\), LISTEN_FDS passes 2/,
  );
});

test("a name list that does not fit still leaves no listener to child processes", async () => {
  for (const names of ["web:admin", "a:b:c"]) {
    const result = await reported(["socket"], { names });
    assert.equal(result.error?.code, "ERR_INVALID_ENVIRONMENT", names);
    assert.match(result.error!.message, /LISTEN_FDNAMES names \d fd\(s\)/);
    assert.deepEqual(result.closeOnExec, [true], "FD_CLOEXEC came first");
    assert.equal(result.childSees, "", "a child process has no fd 3");
  }
});

test("a LISTEN_FDS larger than what was passed reaches the runtime's own fds: refused, the passed one close-on-exec", async () => {
  for (const count of ["2", "5"]) {
    const result = await reported(["socket"], { count });
    assert.equal(result.fds, undefined, `LISTEN_FDS=${count}`);
    assert.equal(result.error?.code, "ERR_INVALID_ENVIRONMENT");
    assert.match(
      result.error!.message,
      /LISTEN_FDS passes fd 4, which is not a socket \[ENOTSOCK\]: .*the runtime's own/,
    );
    assert.equal(result.closeOnExec[0], true);
    assert.equal(result.childSees, "");
  }
});

test("a passed FIFO is not a socket: refused", async () => {
  const result = await reported(["socket", "fifo"]);
  assert.equal(result.error?.code, "ERR_INVALID_ENVIRONMENT");
  assert.match(result.error!.message, /fd 4, which is not a socket/);
  assert.deepEqual(result.closeOnExec, [true, true]);
});
