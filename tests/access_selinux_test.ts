// SELinux access checks without an LSM: the request and reply formats of
// /sys/fs/selinux/access, the status page, the decision rules, and the
// checker against a fake selinuxfs that answers like the kernel.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AccessAuditRecord,
  createAccessChecker,
  createRequestAccess,
} from "../access.ts";
import {
  buildSelinuxAccessRequest,
  parsePolicyValue,
  parseSelinuxAccessReply,
  parseSelinuxStatus,
  type SelinuxAccessVector,
  selinuxVerdict,
} from "../access/selinux.ts";
import {
  ACCESS,
  failure,
  fakeSelinux,
  SELINUX_ROOT,
  statusBytes,
} from "./access_kernel_fake.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const A = "user_u:base_r:client_a_t:s0";
const B = "user_u:base_r:client_b_t:s0";
const P = "user_u:base_r:client_p_t:s0";
const API = "user_u:object_r:api_t:s0";

test("selinux request: libselinux's four fields, class decimal, vector hex, no newline", () => {
  assert.equal(
    text(buildSelinuxAccessRequest(A, API, 57, 0x4)),
    `${A} ${API} 57 4`,
  );
  assert.equal(
    text(buildSelinuxAccessRequest("u:r:t", "u:r:o", 65535, 0x80000000)),
    "u:r:t u:r:o 65535 80000000",
  );
  // A space would shift the kernel's fields; a class value is a u16.
  for (const bad of ["u:r:t s0", "u:r:t\n", "", "u:r", "u:r:t:s0\0"]) {
    assert.throws(
      () => buildSelinuxAccessRequest(bad, API, 1, 1),
      RangeError,
      bad,
    );
    assert.throws(
      () => buildSelinuxAccessRequest(A, bad, 1, 1),
      RangeError,
      bad,
    );
  }
  for (const value of [0, 65536, 1.5, -1, NaN]) {
    assert.throws(
      () => buildSelinuxAccessRequest(A, API, value, 1),
      RangeError,
    );
  }
  for (const requested of [-1, 2 ** 32, 0.5]) {
    assert.throws(
      () => buildSelinuxAccessRequest(A, API, 1, requested),
      RangeError,
    );
  }
  // Longer than a selinuxfs transaction takes (4087 bytes): refused here.
  const categories = Array.from({ length: 900 }, (_, i) => `c${i * 2}`).join(
    ",",
  );
  assert.throws(
    () => buildSelinuxAccessRequest(`u:r:t:s0:${categories}`, API, 1, 1),
    RangeError,
  );
});

test("selinux reply: six fields, five (flags 0), a trailing NUL; nothing else", () => {
  const parse = (reply: string) =>
    parseSelinuxAccessReply(Uint8Array.from(reply, (c) => c.charCodeAt(0)));
  assert.deepEqual(parse("3 ffffffff 1 fffffffb 27 1"), {
    allowed: 3,
    decided: 0xffffffff,
    auditAllow: 1,
    auditDeny: 0xfffffffb,
    seqno: 27,
    flags: 1,
  });
  assert.deepEqual(parse("0 ffffffff 0 ffffffff 4294967295"), {
    allowed: 0,
    decided: 0xffffffff,
    auditAllow: 0,
    auditDeny: 0xffffffff,
    seqno: 4294967295,
    flags: 0,
  });
  assert.equal(parse("4 ffffffff 0 ffffffff 3 0\0")?.allowed, 4);
  for (
    const bad of [
      "",
      "3 ffffffff 1 fffffffb",
      "3 ffffffff 1 fffffffb 27 1 9",
      "3 FFFFFFFF 1 fffffffb 27 1",
      "3  ffffffff 1 fffffffb 27 1",
      "3 ffffffff 1 fffffffb 27 1\n",
      "-3 ffffffff 1 fffffffb 27 1",
      "100000000 ffffffff 0 ffffffff 1 0",
      "3 ffffffff 0 ffffffff 4294967296 0",
      "3 ffffffff 0 ffffffff 0x1 0",
      "allow 0x00000004\n",
    ]
  ) {
    assert.equal(parse(bad), null, JSON.stringify(bad));
  }
});

test("selinux status page: five native-endian words; short pages refused", () => {
  assert.deepEqual(parseSelinuxStatus(statusBytes([1, 8, 1, 3, 1])), {
    version: 1,
    sequence: 8,
    enforcing: 1,
    policyload: 3,
    denyUnknown: 1,
  });
  assert.equal(parseSelinuxStatus(new Uint8Array(19)), null);
  // A subarray at an offset reads from its own start.
  const padded = new Uint8Array(24);
  padded.set(statusBytes([1, 0xfffffffe, 0, 0xffffffff, 0]), 4);
  assert.equal(parseSelinuxStatus(padded.subarray(4))?.sequence, 0xfffffffe);
});

test("selinux class and permission values: decimal, 1 to max", () => {
  const value = (text: string, max: number) =>
    parsePolicyValue(Uint8Array.from(text, (c) => c.charCodeAt(0)), max);
  assert.equal(value("57", 0xffff), 57);
  assert.equal(value("7\n", 32), 7);
  assert.equal(value("32", 32), 32);
  for (const bad of ["0", "33", "", "x", " 5", "5 ", "-1", "123456"]) {
    assert.equal(value(bad, 32), null, bad);
  }
});

test("selinux decision rules follow libselinux's avc_has_perm and avc_audit", () => {
  const vector = (
    allowed: number,
    auditAllow = 0,
    auditDeny = 0xffffffff,
    flags = 0,
  ): SelinuxAccessVector => ({
    allowed,
    decided: 0xffffffff,
    auditAllow,
    auditDeny,
    seqno: 1,
    flags,
  });
  const GET = 1, POST = 4;
  const cases: [SelinuxAccessVector, number, boolean, object][] = [
    [vector(GET), GET, true, {
      allowed: true,
      reason: "granted",
      audit: false,
    }],
    [vector(GET, GET), GET, true, {
      allowed: true,
      reason: "granted",
      audit: true,
    }],
    [vector(GET), POST, true, {
      allowed: false,
      reason: "denied",
      audit: true,
    }],
    // dontaudit clears the bit from auditdeny: denied, not audited.
    [vector(GET, 0, ~POST >>> 0), POST, true, {
      allowed: false,
      reason: "denied",
      audit: false,
    }],
    [vector(GET), POST, false, {
      allowed: true,
      reason: "permissive",
      audit: true,
    }],
    [vector(GET, 0, 0xffffffff, 1), POST, true, {
      allowed: true,
      reason: "permissive-domain",
      audit: true,
    }],
    [vector(GET, 0, ~POST >>> 0, 1), POST, true, {
      allowed: true,
      reason: "permissive-domain",
      audit: false,
    }],
    // Global permissive wins the name when both apply.
    [vector(0, 0, 0xffffffff, 1), POST, false, {
      allowed: true,
      reason: "permissive",
      audit: true,
    }],
    // Bit 31: unsigned arithmetic.
    [vector(0x80000000), 0x80000000, true, {
      allowed: true,
      reason: "granted",
      audit: false,
    }],
    [vector(0x7fffffff), 0x80000000, true, {
      allowed: false,
      reason: "denied",
      audit: true,
    }],
  ];
  for (const [avd, requested, enforcing, expected] of cases) {
    assert.deepEqual(
      selinuxVerdict(avd, requested, enforcing),
      expected,
      JSON.stringify({ avd, requested, enforcing }),
    );
  }
});

function checkerFor(selinux = fakeSelinux()) {
  const records: AccessAuditRecord[] = [];
  const checker = createAccessChecker({
    files: selinux.kernel,
    onAudit: (record) => records.push(record),
  });
  return { selinux, checker, records };
}

test("selinux checker: the class and permission are mapped, the kernel's answer decides", () => {
  const { selinux, checker, records } = checkerFor();
  selinux.rules.set("client_a_t api_t peersec_http", {
    allowed: ["get", "head"],
  });
  assert.equal(checker.lsm, "selinux");
  assert.equal(checker.problem, null);
  const get = checker.check(A, API, "get");
  assert.equal(get.allowed, true);
  assert.equal(get.reason, "granted");
  assert.equal(get.audit, false);
  assert.equal(get.auditMessage, null);
  assert.ok(Object.isFrozen(get));
  // Class 57, permission get = value 1 = bit 0x1.
  assert.deepEqual(selinux.kernel.asked(ACCESS), [`${A} ${API} 57 1`]);
  const post = checker.check(A, API, "post", { spid: 41 });
  assert.equal(post.allowed, false);
  assert.equal(post.reason, "denied");
  assert.equal(post.audit, true);
  // The vector for (A, API) was remembered: no second question.
  assert.equal(selinux.kernel.asked(ACCESS).length, 1);
  assert.equal(records.length, 1);
  assert.match(
    records[0].text,
    new RegExp(
      `^avc:  denied  \\{ post \\} for spid=41 scontext=${A} tcontext=${API} tclass=peersec_http permissive=0 exe="[^"]+" sauid=\\d+ hostname=\\? addr=\\? terminal=\\?$`,
    ),
  );
  assert.equal(records[0].type, 1107);
  assert.equal(records[0].decision, post);
  assert.equal(post.auditMessage, records[0].text);
  assert.equal(checker.check(B, API, "get").reason, "denied");
  assert.equal(selinux.kernel.asked(ACCESS).length, 2);
});

test("selinux checker: auditallow audits a grant; dontaudit silences a denial", () => {
  const { selinux, checker, records } = checkerFor();
  selinux.rules.set("client_a_t api_t peersec_http", {
    allowed: ["get"],
    auditallow: ["get"],
    dontaudit: ["delete"],
  });
  const get = checker.check(A, API, "get");
  assert.deepEqual([get.allowed, get.reason, get.audit], [
    true,
    "granted",
    true,
  ]);
  assert.match(
    records[0].text,
    /^avc: {2}granted {2}\{ get \} for {2}scontext=/,
  );
  assert.doesNotMatch(records[0].text, /permissive=/);
  const deleted = checker.check(A, API, "delete");
  assert.deepEqual([deleted.allowed, deleted.reason, deleted.audit], [
    false,
    "denied",
    false,
  ]);
  assert.equal(records.length, 1);
});

test("selinux checker: global permissive and permissive domains allow and audit with permissive=1", () => {
  const { selinux, checker, records } = checkerFor();
  selinux.permissive.add("client_p_t");
  const domain = checker.check(P, API, "post");
  assert.deepEqual([domain.allowed, domain.reason, domain.audit], [
    true,
    "permissive-domain",
    true,
  ]);
  assert.match(records[0].text, /tclass=peersec_http permissive=1 exe=/);
  const enforced = checker.check(B, API, "get");
  assert.equal(enforced.allowed, false);
  selinux.setEnforcing(false);
  const permissive = checker.check(B, API, "get");
  assert.deepEqual([permissive.allowed, permissive.reason], [
    true,
    "permissive",
  ]);
  selinux.setEnforcing(true);
  assert.equal(checker.check(B, API, "get").allowed, false);
});

test("selinux checker: a policy reload re-maps the class and forgets decisions", () => {
  const { selinux, checker } = checkerFor();
  selinux.rules.set("client_a_t api_t peersec_http", { allowed: ["get"] });
  assert.equal(checker.check(A, API, "get").allowed, true);
  assert.equal(checker.check(A, API, "get").allowed, true);
  assert.equal(selinux.kernel.asked(ACCESS).length, 1);
  // The new policy has a class before ours and the permissions reordered.
  selinux.reload(
    new Map([
      ["file", { value: 6, perms: ["read", "write"] }],
      ["other", { value: 57, perms: ["x"] }],
      ["peersec_http", { value: 58, perms: ["post", "get"] }],
    ]),
  );
  selinux.rules.set("client_a_t api_t peersec_http", { allowed: ["post"] });
  const get = checker.check(A, API, "get");
  assert.equal(get.allowed, false);
  assert.equal(get.reason, "denied");
  assert.equal(selinux.kernel.asked(ACCESS).at(-1), `${A} ${API} 58 2`);
  assert.equal(checker.check(A, API, "post").allowed, true);
  assert.equal(selinux.kernel.asked(ACCESS).length, 2);
});

test("selinux checker: a class or permission the policy lacks is denied, whatever deny_unknown says", () => {
  const { selinux, checker } = checkerFor();
  selinux.status.denyUnknown = 0; // handle_unknown=allow (Fedora): libselinux would allow
  selinux.reload(new Map([["file", { value: 6, perms: ["read"] }]]));
  const unknownClass = checker.check(A, API, "get");
  assert.deepEqual([unknownClass.allowed, unknownClass.reason], [
    false,
    "unknown-class",
  ]);
  assert.match(unknownClass.detail, /no class peersec_http/);
  selinux.reload(new Map([["peersec_http", { value: 9, perms: ["get"] }]]));
  const unknownPermission = checker.check(A, API, "patch");
  assert.deepEqual([unknownPermission.allowed, unknownPermission.reason], [
    false,
    "unknown-permission",
  ]);
  // A permission name is never a path.
  for (const name of ["../index", "get/x", "", ".", "g et"]) {
    assert.equal(
      checker.check(A, API, name).reason,
      "unknown-permission",
      name,
    );
  }
  // Permissive mode does not turn a missing class into an allow either.
  selinux.setEnforcing(false);
  assert.equal(checker.check(A, API, "patch").allowed, false);
  assert.equal(selinux.kernel.asked(ACCESS).length, 0);
});

test("selinux checker: kernel refusals and failures deny with their reason", () => {
  const { selinux, checker, records } = checkerFor();
  // A context the policy does not know: EINVAL on write.
  const unknown = "user_u:base_r:stranger_t:s0";
  const enforcing = checker.check(unknown, API, "get");
  assert.deepEqual([enforcing.allowed, enforcing.reason, enforcing.audit], [
    false,
    "unknown-label",
    true,
  ]);
  // Audited as libselinux audits it: a denial, permissive=0.
  assert.match(
    records.at(-1)!.text,
    /^avc: {2}denied {2}\{ get \} for {2}scontext=user_u:base_r:stranger_t:s0 .* permissive=0 exe=/,
  );
  // libselinux allows EINVAL in permissive mode only; so does this, audited.
  selinux.setEnforcing(false);
  const permissive = checker.check(unknown, API, "get");
  assert.deepEqual([permissive.allowed, permissive.reason, permissive.audit], [
    true,
    "permissive",
    true,
  ]);
  assert.match(records.at(-1)!.text, /permissive=1/);
  selinux.setEnforcing(true);
  // No compute_av: EACCES on write.
  selinux.kernel.handlers.set(ACCESS, () => {
    throw failure(ACCESS, "write", "EACCES");
  });
  assert.equal(checker.check(A, API, "get").reason, "query-refused");
  // A read-only selinuxfs (a container): the open fails.
  selinux.kernel.handlers.set(ACCESS, { error: "EROFS" });
  const readOnly = checker.check(A, API, "get");
  assert.deepEqual([readOnly.allowed, readOnly.reason], [false, "unavailable"]);
  assert.match(readOnly.detail, /EROFS/);
  // An answer that is not an access vector.
  selinux.kernel.handlers.set(ACCESS, () => "ffffffff");
  assert.equal(checker.check(A, API, "get").reason, "unavailable");
  selinux.kernel.handlers.set(ACCESS, () => "");
  assert.equal(checker.check(A, API, "get").reason, "unavailable");
});

test("selinux checker: the status page must be there, version 1, and settle", () => {
  const { selinux, checker } = checkerFor();
  selinux.rules.set("client_a_t api_t peersec_http", { allowed: ["get"] });
  selinux.status.version = 2;
  assert.equal(checker.check(A, API, "get").reason, "unavailable");
  selinux.status.version = 1;
  // Odd sequence: the kernel is updating; it never finishes here.
  selinux.status.sequence = 5;
  const busy = checker.check(A, API, "get");
  assert.deepEqual([busy.allowed, busy.reason], [false, "unavailable"]);
  assert.match(busy.detail, /kept changing/);
  selinux.status.sequence = 6;
  assert.equal(checker.check(A, API, "get").allowed, true);
  // Unreadable: closed, and reopened by the next check.
  selinux.kernel.files.set(`${SELINUX_ROOT}/status`, { error: "EIO" });
  assert.equal(checker.check(A, API, "get").reason, "unavailable");
  const opensBefore =
    selinux.kernel.opens.filter((path) => path.endsWith("/status")).length;
  selinux.kernel.files.set(`${SELINUX_ROOT}/status`, () => {
    const s = selinux.status;
    return statusBytes([
      s.version,
      s.sequence,
      s.enforcing,
      s.policyload,
      s.denyUnknown,
    ]);
  });
  assert.equal(checker.check(A, API, "get").allowed, true);
  assert.ok(
    selinux.kernel.opens.filter((path) => path.endsWith("/status")).length >
      opensBefore,
  );
  checker.close();
  assert.equal(selinux.kernel.openCount, 0);
});

test("selinux checker: a policy change during the question asks again", () => {
  const { selinux, checker } = checkerFor();
  selinux.rules.set("client_a_t api_t peersec_http", { allowed: ["get"] });
  let reloads = 0;
  const answer = selinux.kernel.handlers.get(ACCESS) as (
    request: string,
    bytes: Uint8Array,
  ) => string;
  selinux.kernel.handlers.set(ACCESS, (request, bytes) => {
    const reply = answer(request, bytes);
    if (reloads++ === 0) {
      // Renumbered under the question: the reply was for class 57.
      selinux.reload(
        new Map([["peersec_http", { value: 12, perms: ["head", "get"] }]]),
      );
    }
    return reply;
  });
  const decision = checker.check(A, API, "get");
  assert.equal(decision.allowed, true);
  assert.deepEqual(selinux.kernel.asked(ACCESS), [
    `${A} ${API} 57 1`,
    `${A} ${API} 12 2`,
  ]);
  // A policy that never settles: three tries, then unavailable.
  selinux.kernel.handlers.set(ACCESS, (request, bytes) => {
    const reply = answer(request, bytes);
    selinux.reload(new Map(selinux.classes));
    return reply;
  });
  const restless = checker.check(B, API, "get");
  assert.deepEqual([restless.allowed, restless.reason], [false, "unavailable"]);
});

test("selinux checker: labels that cannot be asked about are not sent", () => {
  const { selinux, checker } = checkerFor();
  for (
    const bad of [
      "",
      "user_u:base_r:client_a_t:s0 x",
      "a:b:c\nd",
      "a:b",
      "a:b:c_t:s0\u202e",
    ]
  ) {
    assert.equal(
      checker.check(bad, API, "get").reason,
      "invalid-subject",
      JSON.stringify(bad),
    );
    assert.equal(
      checker.check(A, bad, "get").reason,
      "invalid-object",
      JSON.stringify(bad),
    );
  }
  assert.equal(checker.check(null, API, "get").reason, "no-label");
  assert.equal(checker.check(undefined, API, "get").reason, "no-label");
  assert.equal(selinux.kernel.asked(ACCESS).length, 0);
  // The detail escapes what the peer chose.
  const detail = checker.check("a:b:c_t:s0\u202e\u001b[31m", API, "get").detail;
  assert.match(detail, /\\u\{202e\}\\x1b\[31m/);
  assert.doesNotMatch(detail, /[^\x20-\x7e]/);
  // Bad argument types are the caller's bug: TypeError.
  assert.throws(
    () => checker.check(42 as unknown as string, API, "get"),
    TypeError,
  );
  assert.throws(
    () => checker.check(A, null as unknown as string, "get"),
    TypeError,
  );
  assert.throws(() => checker.check(A, API, 1 as unknown as string), TypeError);
});

test("selinux requests: method → permission, routes → target, own context by default", () => {
  const { selinux, checker, records } = checkerFor();
  selinux.rules.set("client_a_t server_t peersec_http", { allowed: ["get"] });
  selinux.rules.set("client_a_t api_t peersec_http", { allowed: ["post"] });
  const access = createRequestAccess(checker, {
    selinux: { routes: { "/api": API } },
  });
  assert.equal(access.check(A, "GET", "/").allowed, true);
  assert.equal(
    selinux.kernel.asked(ACCESS)[0],
    `${A} system_u:system_r:server_t:s0 57 1`,
  );
  assert.equal(access.check(A, "POST", "/api/items").allowed, true);
  assert.equal(access.check(A, "POST", "/apiary").allowed, false);
  // /./api, //api and /x/../api are /api.
  for (
    const path of [
      "/./api/items",
      "//api//items",
      "/x/../api/items",
      "/%61pi/items",
    ]
  ) {
    assert.equal(access.check(A, "POST", path).allowed, true, path);
  }
  assert.equal(access.check(A, "OPTIONS", "/").reason, "unknown-permission");
  assert.equal(access.check(A, "get", "/").reason, "unknown-permission");
  assert.equal(access.check(A, "GET", "/%2Fapi").reason, "invalid-object");
  const denied = access.check(A, "DELETE", '/api/it em"s', { spid: 7 });
  assert.equal(denied.allowed, false);
  const record = records.at(-1)!;
  // The peer's path is hex-encoded: it cannot add fields.
  assert.match(
    record.text,
    /^avc: {2}denied {2}\{ delete \} for method="DELETE" path=2F6170692F697420656D2273 spid=7 scontext=/,
  );
});
