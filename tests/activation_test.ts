// listenFds: systemd-style socket activation variables, as sd_listen_fds(3),
// and real launchers (systemd-socket-activate, and a small Python one that
// sets LISTEN_PIDFDID like systemd 256+) passing a listening socket as fd 3.
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

test("fds from 3 with their names, for this pid", () => {
  withEnvironment({
    LISTEN_PID: String(process.pid),
    LISTEN_FDS: "1",
    LISTEN_FDNAMES: "web",
  }, () => {
    // The fds must be open (they are made close-on-exec): fd 3 of the test
    // runner is one of its own (its event loop's), already close-on-exec.
    assert.ok(existsSync("/proc/self/fd/3"));
    assert.deepEqual(listenFds(), [{ fd: 3, name: "web" }]);
    assert.equal(process.env.LISTEN_FDS, "1", "left in place by default");
    assert.equal(listenFds({ unsetEnvironment: true }).length, 1);
    for (const name of VARIABLES) assert.equal(process.env[name], undefined);
    assert.deepEqual(listenFds(), []);
  });
});

test("LISTEN_FDNAMES must name every fd; an empty name stays empty, absent names are null", () => {
  for (const [count, names] of [["2", "web"], ["1", "web:admin"]]) {
    withEnvironment({
      LISTEN_PID: String(process.pid),
      LISTEN_FDS: count,
      LISTEN_FDNAMES: names,
    }, () => {
      assert.throws(() => listenFds(), (error) => {
        assert.ok(error instanceof PeerSecError);
        assert.equal(error.code, "ERR_INVALID_ENVIRONMENT");
        assert.match(
          error.message,
          /LISTEN_FDNAMES names \d fd\(s\), LISTEN_FDS passes \d/,
        );
        return true;
      });
    });
  }
  withEnvironment(
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "1", LISTEN_FDNAMES: "" },
    () => assert.deepEqual(listenFds(), [{ fd: 3, name: "" }]),
  );
  withEnvironment(
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "1" },
    () => assert.deepEqual(listenFds(), [{ fd: 3, name: null }]),
  );
});

test("a LISTEN_FDS fd that is not open is ERR_INVALID_ENVIRONMENT", () => {
  withEnvironment(
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "1000" },
    () => {
      assert.throws(() => listenFds(), (error) => {
        assert.ok(error instanceof PeerSecError);
        assert.equal(error.code, "ERR_INVALID_ENVIRONMENT");
        assert.match(error.message, /is not open \[EBADF\]/);
        return true;
      });
    },
  );
});

test("variables meant for another process (a parent's) are not ours", () => {
  withEnvironment({ LISTEN_PID: "1", LISTEN_FDS: "1" }, () => {
    assert.deepEqual(listenFds(), []);
  });
  withEnvironment({ LISTEN_PID: String(process.pid), LISTEN_FDS: "0" }, () => {
    assert.deepEqual(listenFds(), []);
  });
});

test("malformed variables are ERR_INVALID_ENVIRONMENT", () => {
  const cases: Record<string, string>[] = [
    { LISTEN_PID: "abc", LISTEN_FDS: "1" },
    { LISTEN_PID: "-5", LISTEN_FDS: "1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "two" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "-1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "99999999" },
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
