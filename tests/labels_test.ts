// The label parsers: tables of real-shaped labels and malformed inputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AppArmorLabel,
  parseAppArmorLabel,
  parseSELinuxContext,
  PeerSecError,
  type SELinuxContext,
} from "../mod.ts";

const malformedLabel = (error: unknown) => {
  assert.ok(error instanceof PeerSecError, String(error));
  assert.equal(error.code, "ERR_MALFORMED_LABEL");
  assert.equal(error.errno, undefined);
  return true;
};

test("SELinux contexts: the level may contain colons, or be absent", () => {
  const cases: [string, SELinuxContext][] = [
    ["system_u:system_r:sshd_t:s0-s0:c0.c1023", {
      user: "system_u",
      role: "system_r",
      type: "sshd_t",
      level: "s0-s0:c0.c1023",
    }],
    ["unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023", {
      user: "unconfined_u",
      role: "unconfined_r",
      type: "unconfined_t",
      level: "s0-s0:c0.c1023",
    }],
    ["user_u:base_r:cli_t:s0", {
      user: "user_u",
      role: "base_r",
      type: "cli_t",
      level: "s0",
    }],
    ["system_u:object_r:container_file_t:s0:c12,c345", {
      user: "system_u",
      role: "object_r",
      type: "container_file_t",
      level: "s0:c12,c345",
    }],
    ["user_u:role_r:type_t", {
      user: "user_u",
      role: "role_r",
      type: "type_t",
      level: null,
    }],
    // As /proc/<pid>/attr/current gives it: a trailing NUL or newline.
    ["kernel:object_r:kernel_t:s0\0", {
      user: "kernel",
      role: "object_r",
      type: "kernel_t",
      level: "s0",
    }],
    ["u:r:t:s0\n", { user: "u", role: "r", type: "t", level: "s0" }],
    // Every valid level form stays accepted.
    ["u:r:t:s0-s15:c0.c1023", {
      user: "u",
      role: "r",
      type: "t",
      level: "s0-s15:c0.c1023",
    }],
    ["u:r:t:s0:c0,c5-s3:c0.c9", {
      user: "u",
      role: "r",
      type: "t",
      level: "s0:c0,c5-s3:c0.c9",
    }],
    ["u:r:t:s2:c1,c3.c7,c9", {
      user: "u",
      role: "r",
      type: "t",
      level: "s2:c1,c3.c7,c9",
    }],
    ["system_u:object_r:etc.foo-bar_t:s0", {
      user: "system_u",
      role: "object_r",
      type: "etc.foo-bar_t",
      level: "s0",
    }],
  ];
  for (const [context, expected] of cases) {
    assert.deepEqual(parseSELinuxContext(context), expected, context);
  }
});

test("SELinux: the single-word labels of an unconfigured policy are not contexts", () => {
  // SELinux with no policy loaded labels peers "kernel" / "unlabeled".
  for (
    const context of [
      "kernel",
      "unlabeled",
      "",
      "a:b",
      "a:b:",
      ":b:c",
      "a::c",
      "a:b:c:",
      "a b:r:t",
      "a:b:c:s0 s1",
      "a:b:c:s0\0x",
      "a:b:c\n\n",
      // Levels that are not sensitivity[:categories][-sensitivity[:categories]].
      "u:r:t:s0:",
      "u:r:t:s0-",
      "u:r:t:-",
      "u:r:t:::",
      "u:r:t:c0.c1023",
      "u:r:t:s0:c5.c3",
      "u:r:t:s0:c0,",
      "u:r:t:s0:c0..c3",
      "u:r:t:s0-s1-s2",
      "u:r:t:s0:c0:c1",
      // Control characters: a terminal would obey them.
      "u:r:t\u001b[2K:s0",
      "u\u0007:r:t:s0",
      "u:r:t:s0\u001b]0;owned\u0007",
      "u:r\u009b:t:s0",
    ]
  ) {
    assert.throws(
      () => parseSELinuxContext(context),
      malformedLabel,
      JSON.stringify(context),
    );
  }
  assert.throws(
    () => parseSELinuxContext("a:b"),
    /not an SELinux context: "a:b" \(expected user:role:type\[:level\]\)/,
  );
  assert.throws(() => parseSELinuxContext(":b:c"), /empty user/);
});

test("AppArmor labels: profile, mode, stack, namespace", () => {
  const root = (name: string) => ({ namespace: null, name });
  const inNamespace = (namespace: string, name: string) => ({
    namespace,
    name,
  });
  const cases: [string, AppArmorLabel][] = [
    ["unconfined", {
      profiles: [root("unconfined")],
      mode: null,
      namespace: null,
    }],
    ["/usr/sbin/nginx (enforce)", {
      profiles: [root("/usr/sbin/nginx")],
      mode: "enforce",
      namespace: null,
    }],
    ["firefox (complain)", {
      profiles: [root("firefox")],
      mode: "complain",
      namespace: null,
    }],
    ["a//&b (mixed)", {
      profiles: [root("a"), root("b")],
      mode: "mixed",
      namespace: null,
    }],
    [":ns:profile (complain)", {
      profiles: [inNamespace("ns", "profile")],
      mode: "complain",
      namespace: "ns",
    }],
    [":ns://profile (enforce)", {
      profiles: [inNamespace("ns", "profile")],
      mode: "enforce",
      namespace: "ns",
    }],
    [":ns:a//&:ns:b (enforce)", {
      profiles: [inNamespace("ns", "a"), inNamespace("ns", "b")],
      mode: "enforce",
      namespace: "ns",
    }],
    ["/usr/sbin/cupsd//&:podman:container (mixed)", {
      profiles: [root("/usr/sbin/cupsd"), inNamespace("podman", "container")],
      mode: "mixed",
      namespace: null,
    }],
    // The kernel prefixes a namespace only where it changes: c is in ns, not
    // in the reader's namespace (security/apparmor/label.c).
    ["a//&:ns:b//&c (mixed)", {
      profiles: [root("a"), inNamespace("ns", "b"), inNamespace("ns", "c")],
      mode: "mixed",
      namespace: null,
    }],
    [":x:a//&b//&:y:c//&d", {
      profiles: [
        inNamespace("x", "a"),
        inNamespace("x", "b"),
        inNamespace("y", "c"),
        inNamespace("y", "d"),
      ],
      mode: null,
      namespace: "x",
    }],
    // Hierarchical profiles (hats, null profiles) keep their "//".
    ["/usr/sbin/apache2//HANDLING_UNTRUSTED_INPUT (enforce)", {
      profiles: [root("/usr/sbin/apache2//HANDLING_UNTRUSTED_INPUT")],
      mode: "enforce",
      namespace: null,
    }],
    // As /proc/<pid>/attr/current gives it, with its newline.
    ["unconfined\n", {
      profiles: [root("unconfined")],
      mode: null,
      namespace: null,
    }],
    ["p".repeat(250) + " (complain)\n", {
      profiles: [root("p".repeat(250))],
      mode: "complain",
      namespace: null,
    }],
  ];
  for (const [label, expected] of cases) {
    assert.deepEqual(parseAppArmorLabel(label), expected, label);
  }
});

test("AppArmor: malformed labels are refused", () => {
  for (
    const label of [
      "",
      " ",
      "\n",
      "a//&",
      "//&b",
      "a//& b",
      ":ns",
      "::profile",
      ":ns:",
      " (enforce)",
      "a\0b",
      "a\nb",
      "evil\u001b[2K\rroot (enforce)",
      "a\u0007",
    ]
  ) {
    assert.throws(
      () => parseAppArmorLabel(label),
      malformedLabel,
      JSON.stringify(label),
    );
  }
});

test("the parsers take strings only", () => {
  for (const value of [null, undefined, 5, new Uint8Array(2), {}]) {
    assert.throws(() => parseSELinuxContext(value as string), TypeError);
    assert.throws(() => parseAppArmorLabel(value as string), TypeError);
  }
});
