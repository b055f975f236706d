// Smack access checks without an LSM: label syntax, access letters, the
// access2 request and reply, and requests mapped to object labels and
// letters, against a fake smackfs.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type AccessAuditRecord,
  createAccessChecker,
  createRequestAccess,
} from "../access.ts";
import {
  buildSmackAccessRequest,
  parseSmackAccessReply,
  smackAccessString,
  smackLabelProblem,
} from "../access/smack.ts";
import { ACCESS2, failure, fakeSmack } from "./access_kernel_fake.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("smack labels: 1-255 printable characters, no / \" \\ ' and no leading -", () => {
  for (
    const good of [
      "_",
      "*",
      "^",
      "@",
      "cli",
      "a-b.c_d",
      "x".repeat(255),
      "System::Shared",
    ]
  ) {
    assert.equal(smackLabelProblem(good), null, good);
  }
  for (
    const bad of [
      "",
      "-x",
      "a b",
      "a/b",
      'a"b',
      "a\\b",
      "a'b",
      "x".repeat(256),
      "é",
      "a\nb",
      "a\0",
    ]
  ) {
    assert.notEqual(smackLabelProblem(bad), null, JSON.stringify(bad));
  }
});

test("smack access: letters of rwxatl in the six-character form", () => {
  assert.equal(smackAccessString("r"), "r-----");
  assert.equal(smackAccessString("wr"), "rw----");
  assert.equal(smackAccessString("LTAXWR"), "rwxatl");
  assert.equal(smackAccessString("r-----"), "r-----");
  for (const bad of ["", "-", "b", "rq", "read", " r", "r".repeat(13)]) {
    assert.equal(smackAccessString(bad), null, JSON.stringify(bad));
  }
});

test("smack request and reply: \"subject object access\"; '1' or '0' with a NUL", () => {
  assert.equal(
    text(buildSmackAccessRequest("cli", "api", "r")),
    "cli api r-----",
  );
  assert.equal(
    text(buildSmackAccessRequest("cli", "api", "wa")),
    "cli api -w-a--",
  );
  assert.throws(() => buildSmackAccessRequest("a b", "api", "r"), RangeError);
  assert.throws(() => buildSmackAccessRequest("cli", "-api", "r"), RangeError);
  assert.throws(() => buildSmackAccessRequest("cli", "api", "q"), RangeError);
  const reply = (...bytes: number[]) =>
    parseSmackAccessReply(new Uint8Array(bytes));
  assert.equal(reply(0x31, 0), true);
  assert.equal(reply(0x30, 0), false);
  assert.equal(reply(0x31), true);
  assert.equal(reply(0x30), false);
  for (const bad of [[], [0x32, 0], [0x31, 0x31], [0x31, 0, 0], [0x20]]) {
    assert.equal(reply(...bad), null, JSON.stringify(bad));
  }
});

function setup() {
  const kernel = fakeSmack(
    { "cli api": "r", "adm api": "rw", "adm api-admin": "rw", "cli srv": "w" },
    ["cli", "adm", "api", "api-admin", "srv", "_"],
  );
  const records: AccessAuditRecord[] = [];
  const checker = createAccessChecker({
    files: kernel,
    onAudit: (record) => records.push(record),
  });
  return { kernel, checker, records };
}

test("smack checker: access2 decides; every denial is audited; nothing is remembered", () => {
  const { kernel, checker, records } = setup();
  assert.equal(checker.lsm, "smack");
  assert.equal(checker.check("cli", "api", "r").reason, "granted");
  assert.equal(checker.check("cli", "api", "r").reason, "granted");
  // Two questions: Smack rules change without notice, so nothing is cached.
  assert.deepEqual(kernel.asked(ACCESS2), ["cli api r-----", "cli api r-----"]);
  const write = checker.check("cli", "api", "w", { spid: 5 });
  assert.deepEqual([write.allowed, write.reason, write.audit], [
    false,
    "denied",
    true,
  ]);
  assert.match(
    records[0].text,
    /^lsm=SMACK fn=peersec_access action=denied subject="cli" object="api" requested=-w---- spid=5 exe=/,
  );
  assert.equal(records.length, 1);
  // A label never seen: access2 answers 0 on newer kernels, ENOENT on old.
  assert.equal(checker.check("ghost", "api", "r").reason, "denied");
  kernel.handlers.set(ACCESS2, () => {
    throw failure(ACCESS2, "write", "ENOENT");
  });
  const ghost = checker.check("ghost", "api", "r");
  assert.deepEqual([ghost.allowed, ghost.reason, ghost.audit], [
    false,
    "unknown-label",
    true,
  ]);
  kernel.handlers.set(ACCESS2, () => "2\0");
  assert.equal(checker.check("cli", "api", "r").reason, "unavailable");
  kernel.handlers.set(ACCESS2, { error: "EACCES" });
  assert.equal(checker.check("cli", "api", "r").reason, "query-refused");
});

test("smack checker: labels and letters that cannot be asked are not sent", () => {
  const { kernel, checker } = setup();
  assert.equal(checker.check("a b", "api", "r").reason, "invalid-subject");
  assert.equal(checker.check("", "api", "r").reason, "invalid-subject");
  assert.equal(checker.check("cli", "a/b", "r").reason, "invalid-object");
  assert.equal(checker.check("cli", "api", "").reason, "unknown-permission");
  assert.equal(checker.check("cli", "api", "b").reason, "unknown-permission");
  assert.equal(checker.check(null, "api", "r").reason, "no-label");
  assert.equal(kernel.transactions.length, 0);
});

test("smack requests: an object label per route, access letters per method", () => {
  const { kernel, checker } = setup();
  const access = createRequestAccess(checker, {
    smack: { object: "api", routes: { "/admin": "api-admin" } },
  });
  assert.equal(access.check("cli", "GET", "/v1").allowed, true);
  assert.equal(access.check("cli", "HEAD", "/v1").allowed, true);
  assert.equal(access.check("cli", "POST", "/v1").allowed, false);
  assert.equal(access.check("adm", "POST", "/v1").allowed, true);
  assert.equal(access.check("cli", "GET", "/admin").allowed, false);
  assert.equal(access.check("cli", "GET", "//admin/./x").allowed, false);
  assert.equal(kernel.asked(ACCESS2).at(-1), "cli api-admin r-----");
  assert.equal(access.check("adm", "DELETE", "/admin/x").allowed, true);
  assert.equal(access.check("cli", "TRACE", "/").reason, "unknown-permission");
  // No object configured: not the server's own label, which every client
  // that may connect has w on (it would be allowed to POST); denied.
  const bare = createRequestAccess(checker);
  const asked = kernel.transactions.length;
  const decision = bare.check("cli", "POST", "/");
  assert.deepEqual([decision.allowed, decision.reason], [
    false,
    "invalid-object",
  ]);
  assert.equal(kernel.transactions.length, asked);
});
