// The self-check CLI (`npm start`), run as a user would, in Deno and in Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { binary, procAttrCurrent, repoRoot } from "./helpers.ts";

const root = `${repoRoot}/`;

function cli(
  runtime: "deno" | "bun",
  args: string[],
  denoFlags: string[] = [],
) {
  const command = runtime === "deno"
    ? [binary("deno"), "run", ...denoFlags, `${root}cli.ts`, ...args]
    : [binary("bun"), `${root}cli.ts`, ...args];
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
    "peersec: Deno refused to load libc.so.6: run with --allow-ffi " +
      "(peersec calls getsockopt in libc) [ERR_FFI_PERMISSION]",
  );
});

test("--help exits 0", () => {
  const { code, stdout } = cli("bun", ["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /usage: peersec \[self\] \[--json\]/);
});
