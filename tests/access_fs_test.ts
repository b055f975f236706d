// The real kernel files: node:fs transactions (one write, one read, the same
// fd), their errors, and the checks on this machine's own kernel, with a real
// peer process on a real UNIX socket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tryGetPeerSecurityContext } from "../mod.ts";
import {
  createAccessChecker,
  createRequestAccess,
  KernelFileError,
  nodeKernelFiles,
} from "../access.ts";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { binary, withClientProcessConnection } from "./helpers.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("node:fs transactions write once at the start and read on the same fd", () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-access-"));
  try {
    const path = join(directory, "transaction");
    writeFileSync(path, "0123456789");
    // A transaction file answers on the fd that wrote; a plain file shows
    // the same fd's offset instead: after "ab" at 0, the read goes on at 2.
    const reply = nodeKernelFiles.transact(
      path,
      new TextEncoder().encode("ab"),
      100,
    );
    assert.equal(text(reply), "23456789");
    assert.equal(readFileSync(path, "utf8"), "ab23456789");
    // The reply is bounded by maxReplyLength.
    assert.equal(
      text(nodeKernelFiles.transact(path, new TextEncoder().encode("x"), 3)),
      "b23",
    );
    const file = nodeKernelFiles.open(path);
    const buffer = new Uint8Array(4);
    assert.equal(file.readAt(buffer, 6), 4);
    assert.equal(text(buffer), "6789");
    assert.equal(file.readAt(buffer, 0), 4);
    assert.equal(text(buffer), "xb23");
    file.close();
    file.close();
    assert.throws(
      () => file.readAt(buffer, 0),
      (error) => error instanceof KernelFileError && error.code === "EBADF",
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("node:fs transaction failures carry the errno name and the call", () => {
  const failsWith = (syscall: string, code: string) => (error: unknown) => {
    assert.ok(error instanceof KernelFileError, String(error));
    assert.equal(error.syscall, syscall);
    assert.equal(error.code, code);
    return true;
  };
  assert.throws(
    () =>
      nodeKernelFiles.transact(
        "/nonexistent/peersec/access",
        new Uint8Array(1),
        8,
      ),
    failsWith("open", "ENOENT"),
  );
  assert.throws(
    () => nodeKernelFiles.open("/nonexistent/peersec"),
    failsWith("open", "ENOENT"),
  );
  // /dev/full refuses every write.
  assert.throws(
    () => nodeKernelFiles.transact("/dev/full", new Uint8Array([1]), 8),
    failsWith("write", "ENOSPC"),
  );
  // A directory cannot be opened read-write.
  assert.throws(
    () => nodeKernelFiles.transact(tmpdir(), new Uint8Array(1), 8),
    failsWith("open", "EISDIR"),
  );
});

test("this machine's kernel: a peer on a real socket is never allowed without the policy", async () => {
  const checker = createAccessChecker({ onAudit: "ignore" });
  const access = createRequestAccess(checker, {
    apparmor: { service: "peersec-test" },
  });
  if (checker.lsm === null) {
    assert.match(checker.problem ?? "", /no SELinux, Smack or AppArmor/);
  }
  await withClientProcessConnection((fd) => {
    const label = tryGetPeerSecurityContext(fd);
    const decision = access.check(label, "POST", "/v1/items");
    assert.equal(decision.allowed, false, decision.detail);
    assert.ok(
      [
        "unavailable",
        "no-label",
        "unknown-class",
        "unconfined",
        "invalid-object",
        "denied",
        "unknown-label",
      ]
        .includes(decision.reason),
      decision.detail,
    );
    if (checker.lsm === null) assert.equal(decision.reason, "unavailable");
    assert.ok(Object.isFrozen(decision));
  });
});

test("Deno without file permissions: ERR_DENO_PERMISSION, and no LSM found", () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-access-"));
  try {
    const script = join(directory, "no_permissions.ts");
    // The module the suite runs (the source, or the npm build's JavaScript).
    const compiled = !import.meta.url.endsWith(".ts");
    const moduleUrl = new URL(
      compiled ? "../access.js" : "../access.ts",
      import.meta.url,
    ).href;
    const moduleRoot = fileURLToPath(new URL("..", import.meta.url).href);
    writeFileSync(
      script,
      `import { createAccessChecker, nodeKernelFiles } from ${
        JSON.stringify(moduleUrl)
      };
let code = null;
try { nodeKernelFiles.open("/proc/self/mounts"); } catch (error) { code = error.code; }
const checker = createAccessChecker({ onAudit: "ignore" });
console.log(JSON.stringify({ code, lsm: checker.lsm, problem: checker.problem,
  decision: checker.check("a:b:c_t:s0", "x", "get") }));
`,
    );
    // Reading the module is allowed; nothing else.
    const child = spawnSync(binary("deno"), [
      "run",
      "--no-prompt",
      `--allow-read=${moduleRoot}`,
      script,
    ], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(child.status, 0, child.stderr);
    const result = JSON.parse(child.stdout);
    assert.equal(result.code, "ERR_DENO_PERMISSION");
    assert.equal(result.lsm, null);
    assert.match(result.problem, /ERR_DENO_PERMISSION/);
    assert.equal(result.decision.allowed, false);
    assert.equal(result.decision.reason, "unavailable");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
