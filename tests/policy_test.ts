// The allow-list policy (serve/policy.ts): what no policy admits, what each
// rule field matches and refuses, and that a compiled list cannot change
// behind the server's back. Peers come from real connections where the
// identity matters (clients under other uids with setpriv), and are built by
// hand for label grammars this kernel does not produce.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getPeerIdentity } from "../mod.ts";
import { type Peer, peerMatches, type PeerRule } from "../serve.ts";
import { compilePolicy } from "../serve/policy.ts";
import {
  binary,
  fixture,
  isRoot,
  withClientProcessConnection,
} from "./helpers.ts";

const AS_NOBODY = [
  "setpriv",
  "--reuid=65534",
  "--regid=65534",
  "--clear-groups",
];

const root: Peer = {
  pid: 10,
  uid: 0,
  gid: 0,
  groups: [4, 27],
  securityContext: "system_u:system_r:backup_t:s0",
};
const tcp: Peer = {
  pid: null,
  uid: null,
  gid: null,
  groups: null,
  securityContext: null,
};
const labelled = (securityContext: string): Peer => ({
  ...root,
  securityContext,
});

test("peerMatches: any rule, every field; names resolved; missing data never matches", () => {
  assert.ok(peerMatches(root, [{ uid: 0 }]));
  assert.ok(peerMatches(root, [{ user: "root" }]));
  assert.ok(peerMatches(root, [{ group: 27 }]));
  assert.ok(peerMatches(root, [{ group: 0 }]), "the primary gid counts");
  assert.ok(peerMatches(root, [{ groupName: "root" }]));
  assert.ok(peerMatches(root, [{ selinuxType: "backup_t" }]));
  assert.ok(peerMatches(root, [{ label: /:backup_t:/g }]));
  assert.ok(!peerMatches(root, [{ uid: 0, selinuxType: "sshd_t" }]));
  assert.ok(peerMatches(root, [{ uid: 5 }, { selinuxType: "backup_t" }]));
  assert.ok(!peerMatches(tcp, [{ uid: 0 }]));
  assert.ok(!peerMatches(tcp, [{ group: 0 }]));
  assert.ok(!peerMatches(tcp, [{ label: /.*/ }]));
  const stack = labelled("a//&:ns:b//&c (enforce)");
  assert.ok(peerMatches(stack, [{ apparmorProfile: "a" }]));
  assert.ok(
    !peerMatches(stack, [{ apparmorProfile: "c" }]),
    "c is in ns, not the reader's namespace",
  );
  assert.ok(peerMatches(stack, [{ apparmorProfile: ":ns:c" }]));
  assert.throws(() => peerMatches(root, [{}]), TypeError);
  assert.throws(
    () => peerMatches(root, undefined as unknown as PeerRule[]),
    TypeError,
    "peerMatches needs rules: undefined is not the own-uid policy here",
  );
});

// ---- no policy, and everyone ------------------------------------------------

test("no allow admits only this process's own uid: a client under another uid is refused, TCP too", async () => {
  const admits = compilePolicy(undefined);
  const own = await withClientProcessConnection((fd) => getPeerIdentity(fd));
  assert.ok(admits(own), "a client with this process's uid");
  assert.ok(!admits(tcp), "no credentials: refused");
  if (!isRoot()) return;
  const other = await withClientProcessConnection(
    (fd) => getPeerIdentity(fd),
    { prefix: AS_NOBODY },
  );
  assert.equal(other.uid, 65534);
  assert.ok(!admits(other), "a client under another uid: refused");
  assert.ok(compilePolicy("everyone")(other), '"everyone" says it');
  assert.ok(compilePolicy("everyone")(tcp));
});

test("no allow in a process that is not root admits its own uid, not root's", {
  skip: !isRoot() && "needs root to run a process as another user",
}, () => {
  const home = mkdtempSync(join(tmpdir(), "peersec-deno-dir-"));
  chmodSync(home, 0o777);
  try {
    const result = spawnSync(AS_NOBODY[0], [
      ...AS_NOBODY.slice(1),
      "env",
      `DENO_DIR=${home}`,
      `HOME=${home}`,
      binary("deno"),
      "run",
      "--allow-all",
      fixture("own_uid_policy.ts"),
    ], { encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      ownUid: 65534,
      admitsOwn: true,
      admitsRoot: false,
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('allow must be rules, a function or "everyone": any other value is a TypeError', () => {
  for (
    const value of ["root", "Everyone", "all", null, 0, true, {}, new Set()]
  ) {
    assert.throws(
      () => compilePolicy(value as never),
      TypeError,
      String(value),
    );
  }
  assert.ok(compilePolicy("everyone")(root));
  assert.ok(compilePolicy(() => true)(tcp));
  assert.ok(!compilePolicy(() => "yes" as unknown as boolean)(root));
  assert.ok(
    !compilePolicy(() => {
      throw new Error("x");
    })(root),
  );
});

// ---- AppArmor ----------------------------------------------------------------

test("apparmorProfile: enforce mode unless the rule says otherwise; unconfined is no profile", () => {
  const rule = { apparmorProfile: "/usr/sbin/sshd" };
  const inMode = (mode: string) => labelled(`/usr/sbin/sshd (${mode})`);
  assert.ok(peerMatches(inMode("enforce"), [rule]));
  assert.ok(peerMatches(inMode("kill"), [rule]), "kill enforces too");
  assert.ok(!peerMatches(inMode("complain"), [rule]), "complain only logs");
  assert.ok(!peerMatches(inMode("unconfined"), [rule]));
  assert.ok(!peerMatches(inMode("user"), [rule]));
  assert.ok(!peerMatches(labelled("/usr/sbin/sshd"), [rule]), "no mode");
  const mixed = labelled("/usr/sbin/sshd//&other (mixed)");
  assert.ok(!peerMatches(mixed, [rule]), "a mixed stack may be complaining");

  const complain = { ...rule, apparmorMode: "complain" } as const;
  assert.ok(peerMatches(inMode("complain"), [complain]));
  assert.ok(peerMatches(inMode("enforce"), [complain]));
  assert.ok(!peerMatches(mixed, [complain]));

  const any = { ...rule, apparmorMode: "any" } as const;
  for (const peer of [inMode("complain"), inMode("user"), mixed]) {
    assert.ok(peerMatches(peer, [any]), peer.securityContext!);
  }
  assert.ok(!peerMatches(labelled("unconfined"), [any]));

  // A stack with another namespace's unconfined keeps its own mode.
  assert.ok(
    peerMatches(labelled("/usr/sbin/sshd//&:ns:unconfined (enforce)"), [rule]),
  );

  for (const name of ["unconfined", ":ns:unconfined", ":ns://unconfined"]) {
    assert.throws(
      () => compilePolicy([{ apparmorProfile: name, apparmorMode: "any" }]),
      RangeError,
      name,
    );
  }
  assert.throws(() => compilePolicy([{ apparmorMode: "any" }]), TypeError);
  assert.throws(
    () =>
      compilePolicy([{ apparmorProfile: "a", apparmorMode: "audit" as "any" }]),
    TypeError,
  );
});

// ---- SELinux levels -------------------------------------------------------------

test("selinuxLevel tells containers of one type apart; levels compare as levels", () => {
  const container = (level: string) =>
    labelled(`system_u:system_r:container_t:${level}`);
  const mine = { selinuxType: "container_t", selinuxLevel: "s0:c12,c34" };
  assert.ok(peerMatches(container("s0:c12,c34"), [mine]));
  assert.ok(!peerMatches(container("s0:c12,c35"), [mine]), "another container");
  assert.ok(!peerMatches(container("s0:c12"), [mine]), "fewer categories");
  assert.ok(!peerMatches(container("s0:c12,c34,c56"), [mine]), "more");
  assert.ok(!peerMatches(container("s1:c12,c34"), [mine]), "sensitivity");
  assert.ok(
    peerMatches(container("s0:c12,c34-s0:c12,c34"), [mine]),
    "a single level is the range from it to itself",
  );
  assert.ok(
    !peerMatches(container("s0-s0:c12,c34"), [mine]),
    "a range whose low level has no categories is another level",
  );
  assert.ok(!peerMatches(labelled("system_u:system_r:container_t"), [mine]));
  assert.ok(!peerMatches(tcp, [mine]));
  assert.ok(
    peerMatches(container("s0:c0,c1,c2,c7"), [{ selinuxLevel: "s0:c0.c2,c7" }]),
    "c0.c2 is c0,c1,c2",
  );
  assert.ok(
    peerMatches(
      labelled("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"),
      [{ selinuxLevel: "s0-s0:c0.c511,c512.c1023" }],
    ),
  );
  for (
    const bad of ["", "x", "s0:c3.c1", "s0:c3.c3", "s1-s0", "s0:c5-s0:c4", "c1"]
  ) {
    assert.throws(
      () => compilePolicy([{ selinuxLevel: bad }]),
      bad === "" ? TypeError : RangeError,
      JSON.stringify(bad),
    );
  }
  assert.throws(
    () => compilePolicy([{ selinuxLevel: 0 as unknown as string }]),
    TypeError,
  );
});

// ---- label RegExp -------------------------------------------------------------

test("label RegExp: sticky stays anchored at the start, global keeps no state", () => {
  // root's label: system_u:system_r:backup_t:s0
  for (let round = 0; round < 3; round++) {
    assert.ok(!peerMatches(root, [{ label: /backup_t/y }]), "y: not at 0");
    assert.ok(peerMatches(root, [{ label: /system_u/y }]), "y: at 0");
    assert.ok(!peerMatches(root, [{ label: /backup_t/gy }]));
  }
  const sticky = [{ label: /system_u:/y }];
  const global = [{ label: /backup_t/g }];
  for (let round = 0; round < 3; round++) {
    assert.ok(peerMatches(root, sticky), `sticky, peer ${round}`);
    assert.ok(peerMatches(root, global), `global, peer ${round}`);
  }
  const pattern = /system_u/y;
  pattern.lastIndex = 5;
  assert.ok(
    peerMatches(root, [{ label: pattern }]),
    "the caller's lastIndex is not the rule's",
  );
  assert.ok(peerMatches(labelled("a\nsystem_u"), [{ label: /^system_u/m }]));
  assert.ok(
    !peerMatches(labelled("a\nsystem_u"), [{ label: /system_u/my }]),
    "sticky means the label's start, not a line's",
  );
});

// ---- a compiled list cannot change behind the server's back ------------------

test("a compiled list is frozen: revoking a rule by editing the array throws instead of doing nothing", () => {
  const other: Peer = { ...root, uid: 1000, gid: 1000, groups: [] };
  const rules: PeerRule[] = [{ uid: 0 }, { uid: 1000 }];
  assert.ok(peerMatches(other, rules));
  assert.throws(() => rules.pop(), TypeError, "pop");
  assert.throws(() => rules.splice(1, 1), TypeError, "splice");
  assert.throws(() => {
    rules.length = 1;
  }, TypeError);
  assert.throws(() => {
    rules[1] = { uid: 0 };
  }, TypeError);
  assert.throws(() => {
    (rules[1] as { uid: number }).uid = 0;
  }, TypeError);
  assert.throws(() => {
    (rules[1] as { user?: string }).user = "root";
  }, TypeError);
  assert.equal(rules.length, 2, "the array still says what is enforced");
  assert.ok(peerMatches(other, rules));
  assert.ok(!peerMatches(other, [{ uid: 0 }]), "a new array is a new policy");

  // serve compiles its allow once, at start: the same holds there.
  const allow: PeerRule[] = [{ uid: 1000 }];
  compilePolicy(allow);
  assert.ok(Object.isFrozen(allow) && Object.isFrozen(allow[0]));
  assert.throws(() => allow.pop(), TypeError);
});

test("a rule is read once: getters and holes are refused", () => {
  let uid = 0;
  const getter = {
    get uid() {
      return uid++;
    },
  };
  assert.throws(
    () => compilePolicy([getter as PeerRule]),
    /must be a value, not a getter/,
  );
  const holes: PeerRule[] = [];
  holes[1] = { uid: 0 };
  assert.throws(() => compilePolicy(holes), /allow\[0\] must be a rule/);
  const accessorIndex: PeerRule[] = [];
  Object.defineProperty(accessorIndex, 0, {
    get: () => ({ uid: 0 }),
    enumerable: true,
  });
  assert.throws(() => compilePolicy(accessorIndex), TypeError);
});
