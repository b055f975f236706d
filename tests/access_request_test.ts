// Requests as LSM questions: path canonicalisation, routes, method maps and
// the validation of every option, without an LSM.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  canonicalRequestPath,
  createAccessChecker,
  createRequestAccess,
  DEFAULT_SELINUX_PERMISSIONS,
  DEFAULT_SMACK_ACCESS,
} from "../access.ts";
import { canonicalizeRequestPath } from "../access/request.ts";
import { fakeAppArmor, fakeSelinux, fakeSmack } from "./access_kernel_fake.ts";

test("canonical request paths: one spelling per path, or none", () => {
  const cases: [string, string | null][] = [
    ["/", "/"],
    ["//", "/"],
    ["/v1/items", "/v1/items"],
    ["/v1/items/", "/v1/items"],
    ["/v1//items", "/v1/items"],
    ["/./v1/./items/.", "/v1/items"],
    ["/v1/../admin", "/admin"],
    ["/../../admin", "/admin"],
    ["/v1/x/y/../../admin", "/v1/admin"],
    ["/%61dmin", "/admin"],
    ["/%2e%2e/admin", "/admin"],
    ["/%2E/admin", "/admin"],
    ["/v1/items?x=/../admin", "/v1/items"],
    ["/caf%C3%A9", "/café"],
    ["/café", "/café"],
    ["/a b", "/a b"],
    ["/a%20b", "/a b"],
    ["/a;b", "/a;b"],
    ["/..%2Fadmin", null],
    ["/admin%2f", null],
    ["/%25", null],
    ["/%252e%252e/admin", null],
    ["/a\\b", null],
    ["/a%5Cb", null],
    ["/a%00", null],
    ["/a\u0000", null],
    ["/a\nb", null],
    ["/a%0D%0A", null],
    ["/a%", null],
    ["/a%4", null],
    ["/a%G1", null],
    ["/%C3", null],
    ["/%FF", null],
    ["/a#b", null],
    ["", null],
    ["admin", null],
    ["*", null],
    ["http://host/admin", null],
    ["/" + "a".repeat(9000), null],
  ];
  for (const [path, expected] of cases) {
    assert.equal(canonicalRequestPath(path), expected, JSON.stringify(path));
  }
  assert.match(canonicalizeRequestPath("/%2F").problem ?? "", /encodes a \//);
  assert.throws(() => canonicalRequestPath(7 as unknown as string), TypeError);
  // Idempotent: a canonical path is its own canonical form.
  for (const [, expected] of cases) {
    if (expected !== null && !expected.includes("%")) {
      assert.equal(canonicalRequestPath(expected), expected);
    }
  }
});

test("request questions: routes match whole segments, the longest wins", () => {
  const selinux = fakeSelinux();
  const checker = createAccessChecker({
    files: selinux.kernel,
    onAudit: "ignore",
  });
  const access = createRequestAccess(checker, {
    selinux: {
      target: "u:object_r:default_t:s0",
      routes: {
        "/admin": "u:object_r:admin_t:s0",
        "/admin/audit": "u:object_r:audit_t:s0",
      },
    },
  });
  const object = (path: string) => access.question("GET", path).object;
  assert.equal(object("/admin"), "u:object_r:admin_t:s0");
  assert.equal(object("/admin/users"), "u:object_r:admin_t:s0");
  assert.equal(object("/admin/audit/log"), "u:object_r:audit_t:s0");
  assert.equal(object("/admin/auditor"), "u:object_r:admin_t:s0");
  assert.equal(object("/administrator"), "u:object_r:default_t:s0");
  assert.equal(object("/"), "u:object_r:default_t:s0");
  assert.equal(object("//admin/../admin/./audit"), "u:object_r:audit_t:s0");
  assert.deepEqual(access.question("GET", "/admin/x?y"), {
    object: "u:object_r:admin_t:s0",
    permission: "get",
    path: "/admin/x",
  });
  assert.equal(access.question("PROPFIND", "/").reason, "unknown-permission");
  assert.equal(access.question("get", "/").reason, "unknown-permission");
  assert.equal(access.question("GET", "/%2F").reason, "invalid-object");
  const custom = createRequestAccess(checker, {
    selinux: {
      target: "u:r:t:s0",
      permissions: { ...DEFAULT_SELINUX_PERMISSIONS, OPTIONS: "options" },
    },
  });
  assert.equal(custom.question("OPTIONS", "/").permission, "options");
  assert.equal(DEFAULT_SMACK_ACCESS.GET, "r");
  assert.ok(Object.isFrozen(DEFAULT_SELINUX_PERMISSIONS));
});

test("request access: no LSM means every request is unavailable", () => {
  const kernel = fakeSelinux().kernel;
  kernel.files.clear();
  const checker = createAccessChecker({ files: kernel });
  assert.equal(checker.lsm, null);
  const access = createRequestAccess(checker, { apparmor: { service: "x" } });
  const decision = access.check("u:r:t:s0", "GET", "/");
  assert.deepEqual([decision.allowed, decision.reason, decision.lsm], [
    false,
    "unavailable",
    null,
  ]);
});

test("request access: options are checked for every LSM, whichever runs", () => {
  const checker = createAccessChecker({
    files: fakeSmack({}, []),
    onAudit: "ignore",
  });
  const bad: [unknown, typeof TypeError | typeof RangeError][] = [
    [{ selinux: { target: "not a context" } }, RangeError],
    [{ selinux: { target: 5 } }, TypeError],
    [{ selinux: { routes: { "/admin/": "u:r:t:s0" } } }, RangeError],
    [{ selinux: { routes: { "admin": "u:r:t:s0" } } }, RangeError],
    [{ selinux: { routes: { "/admin": "u:r" } } }, RangeError],
    [{ selinux: { routes: ["/admin"] } }, TypeError],
    [{ selinux: { permissions: { GET: "../x" } } }, RangeError],
    [{ selinux: { permissions: { get: "get" } } }, RangeError],
    [{ apparmor: { service: "a/b" } }, RangeError],
    [{ apparmor: { service: ".." } }, RangeError],
    [{ apparmor: { prefix: "/" } }, RangeError],
    [{ apparmor: { prefix: "/x/**" } }, RangeError],
    [{ apparmor: { prefix: "relative" } }, RangeError],
    [{ apparmor: { permission: "read" } }, RangeError],
    [{ smack: { object: "a b" } }, RangeError],
    [{ smack: { routes: { "/x": "-bad" } } }, RangeError],
    [{ smack: { access: { GET: "q" } } }, RangeError],
    [{ smack: null }, TypeError],
  ];
  for (const [options, error] of bad) {
    assert.throws(
      () =>
        createRequestAccess(
          checker,
          options as Parameters<typeof createRequestAccess>[1],
        ),
      error,
      JSON.stringify(options),
    );
  }
  assert.throws(() => createRequestAccess({} as never), TypeError);
  const access = createRequestAccess(checker, { smack: { object: "api" } });
  assert.throws(
    () => access.check("cli", "GET", "/", { method: "x" }),
    RangeError,
  );
  assert.throws(
    () => access.check("cli", "GET", "/", { path: "x" }),
    RangeError,
  );
  assert.throws(
    () => access.check("cli", 1 as unknown as string, "/"),
    TypeError,
  );
});

test("request access: apparmor service and prefix shape the path; no own label needed", () => {
  const kernel = fakeAppArmor({});
  const checker = createAccessChecker({ files: kernel, onAudit: "ignore" });
  const access = createRequestAccess(checker, {
    apparmor: { service: "my-api.v2", prefix: "/srv-q" },
  });
  assert.equal(
    access.question("PATCH", "/a/../b/").object,
    "/srv-q/my-api.v2/PATCH/b",
  );
  assert.equal(access.question("GET", "/").object, "/srv-q/my-api.v2/GET/");
  assert.equal(
    createRequestAccess(checker).question("GET", "/x").object,
    "/peersec-http/default/GET/x",
  );
  assert.equal(access.question("GET", "/").permission, "r");
});

test("request access: SELinux without a readable own context asks nothing", () => {
  const selinux = fakeSelinux();
  selinux.kernel.files.delete("/proc/self/attr/current");
  const checker = createAccessChecker({
    files: selinux.kernel,
    onAudit: "ignore",
  });
  assert.equal(checker.ownLabel(), null);
  const decision = createRequestAccess(checker).check(
    "user_u:base_r:client_a_t:s0",
    "GET",
    "/",
  );
  assert.deepEqual([decision.allowed, decision.reason], [
    false,
    "invalid-object",
  ]);
  assert.equal(selinux.kernel.transactions.length, 0);
  // /proc/self/attr/selinux/current (LSM stacking) is preferred.
  selinux.kernel.files.set("/proc/self/attr/selinux/current", "u:r:own_t:s0\0");
  selinux.kernel.files.set("/proc/self/attr/current", "u:r:other_t:s0\n");
  assert.equal(checker.ownLabel(), "u:r:own_t:s0");
});
