// listenFds: systemd-style socket activation variables, as sd_listen_fds(3).
// (A real activation, with a launcher passing a listening socket as fd 3, is
// in tests/integration/examples.mjs.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { listenFds, PeerSecError } from "../mod.ts";
import { binary, fixture } from "./helpers.ts";

const VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

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
    LISTEN_FDS: "3",
    LISTEN_FDNAMES: "web:admin",
  }, () => {
    assert.deepEqual(listenFds(), [
      { fd: 3, name: "web" },
      { fd: 4, name: "admin" },
      { fd: 5, name: "unknown" },
    ]);
    assert.equal(process.env.LISTEN_FDS, "3", "left in place by default");
    assert.equal(listenFds({ unsetEnvironment: true }).length, 3);
    for (const name of VARIABLES) assert.equal(process.env[name], undefined);
    assert.deepEqual(listenFds(), []);
  });
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
  const cases = [
    { LISTEN_PID: "abc", LISTEN_FDS: "1" },
    { LISTEN_PID: "-5", LISTEN_FDS: "1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "two" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "-1" },
    { LISTEN_PID: String(process.pid), LISTEN_FDS: "99999999" },
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
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.deepEqual(JSON.parse(denied.stdout), {
    code: "ERR_ENV_PERMISSION",
    message:
      "Deno needs --allow-env=LISTEN_PID,LISTEN_FDS,LISTEN_FDNAMES to read socket activation",
  });
  const allowed = spawnSync(binary("deno"), [
    "run",
    "--allow-env=LISTEN_PID,LISTEN_FDS,LISTEN_FDNAMES",
    script,
  ], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  assert.deepEqual(JSON.parse(allowed.stdout), { fds: [] });
});
