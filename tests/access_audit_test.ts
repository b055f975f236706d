// Audit records: the untrusted-string encoding, the AVC texts of each LSM,
// that nothing a peer chooses can forge a field, and the stderr sink (in a
// separate process of the runtime running the suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AUDIT_USER_AVC,
  auditUserAvcText,
  createAccessChecker,
  createRequestAccess,
  encodeAuditValue,
} from "../access.ts";
import {
  checkAuditFields,
  formatAppArmorAvc,
  formatSelinuxAvc,
  formatSmackAvc,
  senderFields,
} from "../access/audit.ts";
import { runtimeCommand } from "./helpers.ts";
import { fakeSelinux } from "./access_kernel_fake.ts";

test("audit values: quoted when plain, uppercase hex of the UTF-8 bytes otherwise", () => {
  const cases: [string, string][] = [
    ["/v1/items", '"/v1/items"'],
    ["GET", '"GET"'],
    ["", '""'],
    ["a b", "612062"],
    ['a"b', "612262"],
    ["a'b", "612762"],
    ["a\nb", "610A62"],
    ["\u007f", "7F"],
    ["é", "C3A9"],
    ["\u202e", "E280AE"],
    ["x=1 y=2", "783D3120793D32"],
  ];
  for (const [value, encoded] of cases) {
    assert.equal(encodeAuditValue(value), encoded, value);
  }
});

test("audit texts: libselinux's avc line, dbus's AppArmor line, a Smack line", () => {
  assert.equal(
    formatSelinuxAvc(
      "denied",
      ["post"],
      { method: "POST", spid: 3 },
      "u:r:a_t:s0",
      "u:r:b_t:s0",
      "peersec_http",
      false,
    ),
    'avc:  denied  { post } for method="POST" spid=3 scontext=u:r:a_t:s0 tcontext=u:r:b_t:s0 tclass=peersec_http permissive=0',
  );
  assert.equal(
    formatSelinuxAvc(
      "granted",
      ["get"],
      {},
      "u:r:a_t:s0",
      "u:r:b_t:s0",
      "peersec_http",
      false,
    ),
    "avc:  granted  { get } for  scontext=u:r:a_t:s0 tcontext=u:r:b_t:s0 tclass=peersec_http",
  );
  assert.equal(
    formatSelinuxAvc(
      "denied",
      ["get"],
      {},
      "u:r:a_t:s0",
      "u:r:b_t:s0",
      "c",
      true,
    ),
    "avc:  denied  { get } for  scontext=u:r:a_t:s0 tcontext=u:r:b_t:s0 tclass=c permissive=1",
  );
  assert.equal(
    formatAppArmorAvc("DENIED", "client", "/peersec-http/x/GET/a b", "r", {
      method: "GET",
    }),
    'apparmor="DENIED" operation="peersec_access" class="file" label="client" name=2F706565727365632D687474702F782F4745542F612062 mask="r" method="GET"',
  );
  assert.equal(
    formatSmackAvc("denied", "cli", "api", "-w----", {}),
    'lsm=SMACK fn=peersec_access action=denied subject="cli" object="api" requested=-w----',
  );
  assert.equal(
    senderFields("/usr/bin/deno", 0),
    ' exe="/usr/bin/deno" sauid=0 hostname=? addr=? terminal=?',
  );
  assert.equal(
    senderFields("/opt/my app/node", 1000).split(" ")[1],
    "exe=2F6F70742F6D79206170702F6E6F6465",
  );
  assert.match(
    auditUserAvcText("avc:  denied  { x }"),
    /^avc: {2}denied {2}\{ x \} exe=\S+ sauid=-?\d+ hostname=\? addr=\? terminal=\?$/,
  );
  assert.equal(AUDIT_USER_AVC, 1107);
});

test("audit fields: lowercase names of the caller's own, strings or integers", () => {
  assert.deepEqual(checkAuditFields({ spid: 4, route: "x" }), {
    spid: 4,
    route: "x",
  });
  assert.deepEqual(checkAuditFields(undefined), {});
  for (
    const name of [
      "scontext",
      "tclass",
      "permissive",
      "exe",
      "Name",
      "a b",
      "",
      "a=b",
      "x".repeat(40),
    ]
  ) {
    assert.throws(() => checkAuditFields({ [name]: "v" }), RangeError, name);
  }
  assert.throws(() => checkAuditFields({ spid: 1.5 }), RangeError);
  assert.throws(() => checkAuditFields({ spid: true }), TypeError);
  assert.throws(() => checkAuditFields("spid=1"), TypeError);
  assert.throws(() => checkAuditFields(null), TypeError);
});

/** What an SELinux user AVC text may look like: our fields, in our order. */
const SELINUX_RECORD =
  /^avc: {2}denied {2}\{ delete \} for method="DELETE" path=(?:"[\x21\x23-\x26\x28-\x7e]+"|[0-9A-F]+) scontext=\S+ tcontext=\S+ tclass=peersec_http permissive=0 exe=\S+ sauid=-?\d+ hostname=\? addr=\? terminal=\?$/;

test("audit records cannot be forged by the path a peer sends", () => {
  const selinux = fakeSelinux();
  const texts: string[] = [];
  const checker = createAccessChecker({
    files: selinux.kernel,
    onAudit: (record) => texts.push(record.text),
  });
  const access = createRequestAccess(checker, {});
  const peer = "user_u:base_r:client_a_t:s0";
  const nasty = [
    '/x" scontext=system_u:system_r:kernel_t:s0 permissive="1',
    "/x permissive=1",
    "/x'\nmsg='avc:  granted",
    "/x%20permissive=1",
    "/x%0Atype=AVC",
    "/\u202etxt.exe",
    "/x\u0000y",
    "/%E2%80%AE",
    "/a\tb",
  ];
  for (const path of nasty) {
    const before = texts.length;
    const decision = access.check(peer, "DELETE", path);
    assert.equal(decision.allowed, false, path);
    if (texts.length > before) {
      assert.match(texts.at(-1)!, SELINUX_RECORD, path);
      assert.equal(decision.auditMessage, texts.at(-1));
    } else {
      assert.equal(decision.reason, "invalid-object", path);
    }
    assert.doesNotMatch(decision.detail, /[^\x20-\x7e]/, path);
  }
  // A random sweep of printable and unprintable characters.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 300; round++) {
    let path = "/";
    const length = 1 + Math.floor(random() * 12);
    for (let index = 0; index < length; index++) {
      path += String.fromCharCode(
        random() < 0.8
          ? 0x20 + Math.floor(random() * 95)
          : Math.floor(random() * 0x3000),
      );
    }
    const decision = access.check(peer, "DELETE", path);
    assert.equal(decision.allowed, false);
    if (decision.auditMessage !== null) {
      assert.match(decision.auditMessage, SELINUX_RECORD, JSON.stringify(path));
    }
    assert.doesNotMatch(decision.detail, /[^\x20-\x7e]/, JSON.stringify(path));
  }
});

test("the stderr audit sink writes one escaped line to stderr, in its own process", () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-access-"));
  try {
    const compiled = !import.meta.url.endsWith(".ts");
    const moduleUrl =
      new URL(compiled ? "../access.js" : "../access.ts", import.meta.url).href;
    const script = join(directory, "audit.mjs");
    // A fake selinuxfs that denies everything, inline: the child only needs
    // the default sink.
    writeFileSync(
      script,
      `import { createAccessChecker, createRequestAccess, KernelFileError } from ${
        JSON.stringify(moduleUrl)
      };
const status = new Uint8Array(20);
new DataView(status.buffer).setUint32(0, 1, true);
new DataView(status.buffer).setUint32(8, 1, true);
const files = {
  "/proc/self/mounts": "selinuxfs /sys/fs/selinux selinuxfs rw 0 0\\n",
  "/sys/fs/selinux/status": status,
  "/sys/fs/selinux/class/peersec_http/index": "40",
  "/sys/fs/selinux/class/peersec_http/perms/delete": "6",
};
const kernel = {
  open(path) {
    const content = files[path];
    if (content === undefined) throw new KernelFileError(path, "open", "ENOENT");
    const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
    return { readAt: (buffer, position) => { const part = bytes.subarray(position, position + buffer.length); buffer.set(part); return part.length; }, close() {} };
  },
  transact: () => new TextEncoder().encode("0 ffffffff 0 ffffffff 1 0"),
};
const access = createRequestAccess(createAccessChecker({ files: kernel, onAudit: "stderr" }), {
  selinux: { target: "user_u:object_r:api_t:s0" },
});
const decision = access.check("user_u:base_r:client_t:s0", "DELETE", "/a b/\\u202e\\"");
console.log(JSON.stringify(decision));
`,
    );
    const [command, ...args] = runtimeCommand(script, []);
    const child = spawnSync(command, args, {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(child.status, 0, child.stderr);
    const decision = JSON.parse(child.stdout);
    assert.equal(decision.allowed, false);
    assert.equal(decision.reason, "denied");
    const lines = child.stderr.split("\n").filter((line) =>
      line.startsWith("peersec-access:")
    );
    assert.equal(lines.length, 1, child.stderr);
    assert.equal(
      lines[0],
      `peersec-access: type=USER_AVC lsm=selinux msg='${decision.auditMessage}'`,
    );
    assert.match(lines[0], /path=2F6120622FE280AE22 /);
    assert.doesNotMatch(
      child.stderr,
      // deno-lint-ignore no-control-regex -- finding control characters
      /[\u0000-\u0009\u000b-\u001f\u007f-\uffff]/,
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
