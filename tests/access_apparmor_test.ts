// AppArmor access checks without an LSM: label-query bytes, the 67-byte
// reply, libapparmor's decision rule, label splitting, modes, and requests on
// the virtual path namespace, against a fake apparmorfs.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AccessAuditRecord,
  createAccessChecker,
  createRequestAccess,
} from "../access.ts";
import {
  appArmorPermissionBits,
  appArmorVerdict,
  buildAppArmorFileQuery,
  isUnconfinedLabel,
  parseAppArmorReply,
  splitAppArmorLabel,
} from "../access/apparmor.ts";
import {
  AA_ACCESS,
  aaReply,
  failure,
  fakeAppArmor,
} from "./access_kernel_fake.ts";

const READ = 4, WRITE = 2;
const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

test('apparmor query: "label\\0" label "\\0" 0x02 path, every byte of the path, no NUL after', () => {
  const query = buildAppArmorFileQuery("client", "/etc/passwd");
  assert.deepEqual(
    Array.from(query),
    Array.from(bytes("label\0client\0\x02/etc/passwd")),
  );
  // 6 + label + 1 + class byte + path: libapparmor's arithmetic sends one byte less.
  assert.equal(query.length, 6 + 6 + 1 + 1 + 11);
  assert.equal(query.at(-1), "d".charCodeAt(0));
  // UTF-8 for both.
  assert.deepEqual(
    Array.from(buildAppArmorFileQuery("é", "/ü")),
    [...bytes("label\0"), 0xc3, 0xa9, 0, 2, 0x2f, 0xc3, 0xbc],
  );
  assert.throws(() => buildAppArmorFileQuery("", "/x"), RangeError);
  assert.throws(() => buildAppArmorFileQuery("a\0b", "/x"), RangeError);
  assert.throws(() => buildAppArmorFileQuery("a", "x"), RangeError);
  assert.throws(() => buildAppArmorFileQuery("a", "/x\0y"), RangeError);
  assert.throws(
    () => buildAppArmorFileQuery("a", "/" + "x".repeat(4070)),
    RangeError,
  );
});

test("apparmor reply: exactly 67 bytes of four hex words", () => {
  const good = aaReply(0x204, 2, 4, 0);
  assert.equal(good.length, 67);
  assert.deepEqual(parseAppArmorReply(bytes(good)), {
    allow: 0x204,
    deny: 2,
    audit: 4,
    quiet: 0,
  });
  assert.deepEqual(
    parseAppArmorReply(bytes(aaReply(0xffffffff, 0, 0, 0xffffffff))),
    {
      allow: 0xffffffff,
      deny: 0,
      audit: 0,
      quiet: 0xffffffff,
    },
  );
  for (
    const bad of [
      good.slice(0, 66),
      good + "\n",
      good.replace("allow", "Allow"),
      good.replace("0x00000204", "0x00000G04"),
      good.replace("0x00000204", "0X00000204"),
      good.replace("\ndeny", " deny"),
      "",
    ]
  ) {
    assert.equal(parseAppArmorReply(bytes(bad)), null, JSON.stringify(bad));
  }
});

test("apparmor decision rule is libapparmor's aa_query_label", () => {
  const cases: [[number, number, number, number], number, object][] = [
    [[READ, 0, 0, 0], READ, { allowed: true, audit: false }],
    [[READ, 0, READ, 0], READ, { allowed: true, audit: true }],
    // A deny rule wins over allow, and is quiet: not audited.
    [[READ, READ, 0, READ], READ, { allowed: false, audit: false }],
    // `audit deny`: denied, audited.
    [[0, READ, READ, 0], READ, { allowed: false, audit: true }],
    // No rule: denied and audited.
    [[1 << 9, 0, 0, 0], READ, { allowed: false, audit: true }],
    // Every requested bit must be allowed.
    [[READ, 0, 0, 0], READ | WRITE, { allowed: false, audit: true }],
    [[READ | WRITE, 0, 0, 0], READ | WRITE, { allowed: true, audit: false }],
    // Allowed and audited only when every requested bit is audited.
    [[READ | WRITE, 0, READ, 0], READ | WRITE, { allowed: true, audit: false }],
    // Quiet on one requested bit silences a denial.
    [[0, 0, 0, WRITE], READ | WRITE, { allowed: false, audit: false }],
    // Unconfined: everything allowed.
    [[0xffffffff, 0, 0, 0xffffffff], READ, { allowed: true, audit: false }],
  ];
  for (const [[allow, deny, audit, quiet], mask, expected] of cases) {
    assert.deepEqual(
      appArmorVerdict({ allow, deny, audit, quiet }, mask),
      expected,
      JSON.stringify({ allow, deny, audit, quiet, mask }),
    );
  }
});

test("apparmor labels: mode split like aa_splitcon; unconfined recognised", () => {
  assert.deepEqual(splitAppArmorLabel("unconfined"), {
    label: "unconfined",
    mode: null,
  });
  assert.deepEqual(splitAppArmorLabel("client (enforce)"), {
    label: "client",
    mode: "enforce",
  });
  assert.deepEqual(splitAppArmorLabel("client (complain)\n"), {
    label: "client",
    mode: "complain",
  });
  assert.deepEqual(splitAppArmorLabel("a//&b (mixed)"), {
    label: "a//&b",
    mode: "mixed",
  });
  assert.deepEqual(splitAppArmorLabel("/usr/bin/x (y) (kill)"), {
    label: "/usr/bin/x (y)",
    mode: "kill",
  });
  assert.deepEqual(splitAppArmorLabel("odd)"), { label: "odd)", mode: null });
  assert.equal(isUnconfinedLabel(splitAppArmorLabel("unconfined")), true);
  assert.equal(isUnconfinedLabel(splitAppArmorLabel(":ns:unconfined")), true);
  assert.equal(isUnconfinedLabel(splitAppArmorLabel("foo (unconfined)")), true);
  assert.equal(
    isUnconfinedLabel(splitAppArmorLabel("unconfined//&foo (mixed)")),
    false,
  );
  assert.equal(
    isUnconfinedLabel(splitAppArmorLabel("client (enforce)")),
    false,
  );
  assert.equal(appArmorPermissionBits("r"), READ);
  assert.equal(appArmorPermissionBits("rw"), READ | WRITE);
  assert.equal(appArmorPermissionBits("k"), 0x8000);
  for (const bad of ["", "R", "q", "read", "r ", "rrrrrrrrr"]) {
    assert.equal(appArmorPermissionBits(bad), null, bad);
  }
});

const PROFILES = {
  client: {
    rules: [
      ["/peersec-http/myapi/GET/admin", [1 << 9, READ, 0, READ]],
      ["/peersec-http/myapi/GET/", [READ | (1 << 9), 0, 0, 0]],
      ["/peersec-http/myapi/DELETE/", [0, READ, READ, 0]],
    ] as [string, [number, number, number, number]][],
  },
  watcher: {
    rules: [["/peersec-http/myapi/GET/", [READ, 0, READ, 0]]] as [
      string,
      [number, number, number, number],
    ][],
  },
  sloppy: { rules: [] },
};

function setup(
  options: { unconfined?: "deny" | "allow"; complain?: "allow" | "enforce" } =
    {},
) {
  const kernel = fakeAppArmor(PROFILES);
  const records: AccessAuditRecord[] = [];
  const checker = createAccessChecker({
    files: kernel,
    onAudit: (record) => records.push(record),
    ...options,
  });
  const access = createRequestAccess(checker, {
    apparmor: { service: "myapi" },
  });
  return { kernel, checker, access, records };
}

test("apparmor requests: the query path is /peersec-http/<service>/<METHOD><canonical path>", () => {
  const { kernel, checker, access, records } = setup();
  assert.equal(checker.lsm, "apparmor");
  const get = access.check("client (enforce)", "GET", "/v1/items?x=1");
  assert.deepEqual([get.allowed, get.reason, get.audit], [
    true,
    "granted",
    false,
  ]);
  assert.deepEqual(kernel.asked(AA_ACCESS), [
    "label\0client\0\x02/peersec-http/myapi/GET/v1/items",
  ]);
  assert.equal(access.check("client (enforce)", "GET", "/").allowed, true);
  assert.equal(
    kernel.asked(AA_ACCESS).at(-1),
    "label\0client\0\x02/peersec-http/myapi/GET/",
  );
  // No rule for POST: denied, audited.
  const post = access.check("client (enforce)", "POST", "/v1/items", {
    spid: 9,
  });
  assert.deepEqual([post.allowed, post.reason, post.audit], [
    false,
    "denied",
    true,
  ]);
  assert.match(
    records.at(-1)!.text,
    /^apparmor="DENIED" operation="peersec_access" class="file" label="client" name="\/peersec-http\/myapi\/POST\/v1\/items" mask="r" method="POST" path="\/v1\/items" spid=9 exe=/,
  );
  // `deny` (quiet): denied, not audited.
  const admin = access.check("client (enforce)", "GET", "/admin/users");
  assert.deepEqual([admin.allowed, admin.reason, admin.audit], [
    false,
    "denied",
    false,
  ]);
  // `audit deny`: denied, audited.
  assert.equal(access.check("client (enforce)", "DELETE", "/v1/x").audit, true);
  // An audit allow rule: allowed, audited as ALLOWED.
  const watched = access.check("watcher (enforce)", "GET", "/x");
  assert.deepEqual([watched.allowed, watched.audit], [true, true]);
  assert.match(records.at(-1)!.text, /^apparmor="ALLOWED" /);
});

test("apparmor requests: /./admin, //admin and ../ tricks are asked as /admin and denied", () => {
  const { kernel, access } = setup();
  for (
    const path of [
      "/admin/users",
      "/./admin/users",
      "//admin//users",
      "/v1/../admin/users",
      "/../admin/users",
      "/%61dmin/users",
      "/admin/users/",
      "/admin/./users/.",
      "/admin/x/../users",
    ]
  ) {
    const decision = access.check("client (enforce)", "GET", path);
    assert.equal(decision.allowed, false, path);
    assert.equal(
      kernel.asked(AA_ACCESS).at(-1),
      "label\0client\0\x02/peersec-http/myapi/GET/admin/users",
      path,
    );
  }
  const before = kernel.transactions.length;
  // Paths that cannot be made canonical are not asked about at all.
  for (
    const path of [
      "/admin%2Fusers",
      "/admin\\users",
      "/x%00",
      "/%252e%252e/admin",
      "admin",
      "/a#b",
      "/%zz",
    ]
  ) {
    const decision = access.check("client (enforce)", "GET", path);
    assert.deepEqual([decision.allowed, decision.reason], [
      false,
      "invalid-object",
    ], path);
  }
  assert.equal(kernel.transactions.length, before);
});

test("apparmor modes: complain allows and audits; unconfined is denied unless allowed", () => {
  const { access, records } = setup();
  const complain = access.check("sloppy (complain)", "POST", "/v1");
  assert.deepEqual([complain.allowed, complain.reason, complain.audit], [
    true,
    "complain",
    true,
  ]);
  assert.match(records.at(-1)!.text, /^apparmor="ALLOWED" /);
  // Complain mode and the rules allow: a plain grant.
  assert.equal(
    access.check("client (complain)", "GET", "/v1").reason,
    "granted",
  );
  // Kill and mixed obey the rules.
  assert.equal(access.check("sloppy (kill)", "GET", "/v1").reason, "denied");
  // A stack is allowed only where every profile allows.
  assert.equal(
    access.check("client//&watcher (enforce)", "GET", "/v1").reason,
    "granted",
  );
  assert.equal(
    access.check("client//&sloppy (mixed)", "GET", "/v1").reason,
    "denied",
  );
  const unconfined = access.check("unconfined", "GET", "/v1");
  assert.deepEqual([unconfined.allowed, unconfined.reason], [
    false,
    "unconfined",
  ]);
  const enforced = setup({ complain: "enforce", unconfined: "allow" });
  const strict = enforced.access.check("sloppy (complain)", "POST", "/v1");
  assert.deepEqual([strict.allowed, strict.reason], [false, "denied"]);
  const open = enforced.access.check("unconfined", "DELETE", "/admin");
  assert.deepEqual([open.allowed, open.reason], [true, "unconfined"]);
  // Neither unconfined decision asked the kernel (it would say "allowed").
  assert.ok(
    !enforced.kernel.asked(AA_ACCESS).some((query) =>
      query.includes("unconfined")
    ),
  );
});

test("apparmor failures: unknown label, refused query, bad replies all deny", () => {
  const { kernel, access } = setup();
  const stranger = access.check("stranger (enforce)", "GET", "/v1");
  assert.deepEqual([stranger.allowed, stranger.reason], [
    false,
    "unknown-label",
  ]);
  kernel.handlers.set(AA_ACCESS, { error: "EACCES" });
  assert.equal(
    access.check("client (enforce)", "GET", "/v1").reason,
    "query-refused",
  );
  kernel.handlers.set(AA_ACCESS, () => {
    throw failure(AA_ACCESS, "write", "EINVAL");
  });
  assert.equal(
    access.check("client (enforce)", "GET", "/v1").reason,
    "unavailable",
  );
  kernel.handlers.set(AA_ACCESS, () => aaReply(READ, 0, 0, 0).slice(0, 60));
  assert.equal(
    access.check("client (enforce)", "GET", "/v1").reason,
    "unavailable",
  );
  kernel.handlers.set(AA_ACCESS, () => {
    throw failure(AA_ACCESS, "write", "EFBIG");
  });
  assert.equal(
    access.check("client (enforce)", "GET", "/v1").reason,
    "invalid-object",
  );
  assert.equal(access.check("", "GET", "/v1").reason, "invalid-subject");
  assert.equal(
    access.check("a\nb (enforce)", "GET", "/v1").reason,
    "invalid-subject",
  );
  assert.equal(access.check(null, "GET", "/v1").reason, "no-label");
});

test("apparmor checker: direct checks take profile letters on absolute paths", () => {
  const { checker } = setup();
  assert.equal(
    checker.check("client (enforce)", "/peersec-http/myapi/GET/x", "r").allowed,
    true,
  );
  assert.equal(
    checker.check("client (enforce)", "/peersec-http/myapi/GET/x", "rw")
      .allowed,
    false,
  );
  assert.equal(
    checker.check("client (enforce)", "/peersec-http/myapi/GET/x", "read")
      .reason,
    "unknown-permission",
  );
  assert.equal(
    checker.check("client (enforce)", "relative", "r").reason,
    "invalid-object",
  );
  // Not found without securityfs's apparmor directory.
  const kernel = fakeAppArmor(PROFILES);
  kernel.files.set("/sys/module/apparmor/parameters/enabled", "N\n");
  const disabled = createAccessChecker({
    files: kernel,
    lsm: "apparmor",
    onAudit: "ignore",
  });
  assert.equal(disabled.lsm, "apparmor");
  assert.match(disabled.problem ?? "", /not enabled/);
  const decision = disabled.check("client (enforce)", "/x", "r");
  assert.deepEqual([decision.allowed, decision.reason], [false, "unavailable"]);
});
