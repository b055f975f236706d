// Finding the LSM: /proc/self/mounts, securityfs's lsm list, each LSM's
// files; and the checker's options.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createAccessChecker } from "../access.ts";
import { locateLsms, parseMounts } from "../access/checker.ts";
import {
  fakeAppArmor,
  FakeKernel,
  fakeSelinux,
  fakeSmack,
} from "./access_kernel_fake.ts";

test("mounts: the kernel's octal escapes are undone; the first of a type wins", () => {
  const mounts = parseMounts(
    "selinuxfs /mnt/se\\040linux selinuxfs rw,relatime 0 0\n" +
      "securityfs /sys/kernel/security securityfs ro,nosuid 0 0\n" +
      "selinuxfs /sys/fs/selinux selinuxfs rw 0 0\n" +
      "short line\n\n",
  );
  assert.equal(mounts.length, 3);
  assert.deepEqual(mounts[0], {
    mountPoint: "/mnt/se linux",
    type: "selinuxfs",
    options: ["rw", "relatime"],
  });
  assert.deepEqual(locateLsms(mounts), {
    selinux: "/mnt/se linux",
    smack: "/sys/fs/smackfs",
    securityfs: "/sys/kernel/security",
    fromMounts: true,
  });
  assert.equal(locateLsms(null).selinux, "/sys/fs/selinux");
});

test("detection: each LSM is found by its files, at its mount point", () => {
  assert.equal(
    createAccessChecker({ files: fakeSelinux().kernel }).lsm,
    "selinux",
  );
  assert.equal(createAccessChecker({ files: fakeSmack({}, []) }).lsm, "smack");
  assert.equal(
    createAccessChecker({ files: fakeAppArmor({}) }).lsm,
    "apparmor",
  );
  // selinuxfs elsewhere: its files are read there.
  const moved = fakeSelinux();
  for (const [path, content] of [...moved.kernel.files]) {
    if (path.startsWith("/sys/fs/selinux/")) {
      moved.kernel.files.set(
        path.replace("/sys/fs/selinux/", "/selinux/"),
        content,
      );
      moved.kernel.files.delete(path);
    }
  }
  moved.kernel.handlers.set(
    "/selinux/access",
    moved.kernel.handlers.get("/sys/fs/selinux/access")!,
  );
  moved.kernel.files.set(
    "/proc/self/mounts",
    "selinuxfs /selinux selinuxfs rw 0 0\n",
  );
  const checker = createAccessChecker({
    files: moved.kernel,
    onAudit: "ignore",
  });
  assert.equal(checker.lsm, "selinux");
  assert.equal(
    checker.check(
      "user_u:base_r:client_a_t:s0",
      "user_u:object_r:api_t:s0",
      "get",
    ).reason,
    "denied",
  );
  assert.deepEqual(moved.kernel.asked("/selinux/access").length, 1);
});

test("detection: securityfs's lsm list decides the order; absent LSMs give a problem, not a throw", () => {
  const kernel = fakeAppArmor({});
  // Smack's files too, but the kernel says AppArmor is the one running.
  kernel.files.set("/sys/fs/smackfs/access2", "");
  assert.equal(createAccessChecker({ files: kernel }).lsm, "apparmor");
  kernel.files.set("/sys/kernel/security/lsm", "capability,smack,apparmor");
  assert.equal(createAccessChecker({ files: kernel }).lsm, "smack");
  kernel.files.set("/sys/kernel/security/lsm", "capability,yama,landlock");
  const none = createAccessChecker({ files: kernel });
  assert.equal(none.lsm, null);
  assert.match(
    none.problem ?? "",
    /no SELinux, Smack or AppArmor among the active LSMs \("capability,yama,landlock"\)/,
  );
  assert.equal(none.ownLabel(), null);
  const empty = createAccessChecker({ files: new FakeKernel() });
  assert.equal(empty.lsm, null);
  assert.match(empty.problem ?? "", /no selinuxfs at \/sys\/fs\/selinux/);
  const decision = empty.check("anything", "x", "y");
  assert.deepEqual([decision.allowed, decision.reason], [false, "unavailable"]);
  // Asking for one LSM: only that one.
  const wanted = createAccessChecker({
    files: fakeSelinux().kernel,
    lsm: "smack",
  });
  assert.equal(wanted.lsm, "smack");
  assert.match(wanted.problem ?? "", /no smackfs/);
  assert.equal(wanted.check("a", "b", "r").reason, "unavailable");
});

test("checker options: wrong types and values throw at creation", () => {
  const files = fakeSelinux().kernel;
  const bad: [object, typeof TypeError | typeof RangeError][] = [
    [{ lsm: "tomoyo" }, TypeError],
    [{ unconfined: "maybe" }, TypeError],
    [{ complain: true }, TypeError],
    [{ onAudit: "syslog" }, TypeError],
    [{ files: {} }, TypeError],
    [{ selinuxClass: 5 }, TypeError],
    [{ selinuxClass: "../peersec_http" }, RangeError],
    [{ selinuxClass: "" }, RangeError],
  ];
  for (const [options, error] of bad) {
    assert.throws(
      () => createAccessChecker({ files, ...options } as never),
      error,
      JSON.stringify(options),
    );
  }
  assert.throws(() => createAccessChecker(null as never), TypeError);
  const checker = createAccessChecker({ files, selinuxClass: "my_class" });
  assert.equal(checker.selinuxClass, "my_class");
  assert.equal(
    checker.check(
      "user_u:base_r:client_a_t:s0",
      "user_u:object_r:api_t:s0",
      "get",
    ).reason,
    "unknown-class",
  );
  assert.ok(Object.isFrozen(checker));
});
