// Audit records over NETLINK_AUDIT: the netlink message and its
// acknowledgement byte by byte, the sender against a scripted kernel, the
// "system" sink's decisions (and its fallback to the stderr line), the
// records' length bounds — and the real kernel: a record sent through the
// runtime's FFI is acknowledged and shows up in the kernel log (no auditd
// runs here, so the kernel logs user records itself), from this process and
// from a child whose checker uses the default sink; and a child without
// CAP_AUDIT_WRITE, one in a user namespace of its own and one without FFI
// get the kernel's EPERM / ECONNREFUSED (or no socket) and write the stderr
// line instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AUDIT_USER_AVC,
  auditUserAvcText,
  createAccessChecker,
} from "../access.ts";
import {
  type AccessAuditRecord,
  formatAppArmorAvc,
  formatAuditFields,
  formatSelinuxAvc,
  formatSmackAvc,
  senderFields,
  SystemAudit,
} from "../access/audit.ts";
import {
  AUDIT_MESSAGE_TEXT_MAX,
  AuditNetlinkSocket,
  type AuditSocketCalls,
  buildAuditMessage,
  MAX_AUDIT_MESSAGE_LENGTH,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  parseAuditReply,
} from "../access/netlink.ts";
import type { CallResult } from "../src/backend.ts";
import { constantsFor } from "../src/constants.ts";
import { defaultReader } from "../ffi/default_reader.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import { fakeSelinux } from "./access_kernel_fake.ts";
import { isRoot, runtimeCommand } from "./helpers.ts";

const GENERIC = constantsFor("generic");
const E = GENERIC.errno;
const ECONNREFUSED = 111;
const ENOBUFS = 105;
const EPROTONOSUPPORT = 93;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------
// The message and the reply, byte by byte.

test("an AUDIT_USER_AVC netlink message: nlmsghdr, the text, its NUL, padding to 4", () => {
  for (const text of ["a", "abc", "abcd", "avc:  denied  { get } for  x"]) {
    const message = buildAuditMessage(AUDIT_USER_AVC, text, 0x01020304);
    const view = new DataView(message.buffer);
    const padded = 16 + Math.ceil((text.length + 1) / 4) * 4;
    assert.equal(message.byteLength, padded, text);
    assert.equal(view.getUint32(0, LITTLE_ENDIAN), padded); // nlmsg_len
    assert.equal(view.getUint16(4, LITTLE_ENDIAN), 1107); // nlmsg_type
    assert.equal(
      view.getUint16(6, LITTLE_ENDIAN),
      NLM_F_REQUEST | NLM_F_ACK, // 0x5
    );
    assert.equal(view.getUint32(8, LITTLE_ENDIAN), 0x01020304); // nlmsg_seq
    assert.equal(view.getUint32(12, LITTLE_ENDIAN), 0); // nlmsg_pid
    assert.equal(
      String.fromCharCode(...message.subarray(16, 16 + text.length)),
      text,
    );
    // The NUL the kernel overwrites the last payload byte with, and padding.
    assert.ok(message.subarray(16 + text.length).every((byte) => byte === 0));
  }
  assert.equal(NLM_F_REQUEST | NLM_F_ACK, 5);
  assert.equal(NLMSG_ERROR, 2);
});

test("the message builder refuses what the kernel would cut or mangle", () => {
  const longest = "x".repeat(AUDIT_MESSAGE_TEXT_MAX);
  const message = buildAuditMessage(AUDIT_USER_AVC, longest, 1);
  // The payload (text + NUL) within libaudit's MAX_AUDIT_MESSAGE_LENGTH.
  assert.ok(message.byteLength - 16 <= MAX_AUDIT_MESSAGE_LENGTH);
  for (
    const text of [
      "",
      longest + "x",
      "a\nb",
      "a\0b",
      "é",
      "\u007f",
      // The kernel writes msg='…': a quote would end it and forge fields.
      "x' uid=0 auid=0",
    ]
  ) {
    assert.throws(
      () => buildAuditMessage(AUDIT_USER_AVC, text, 1),
      RangeError,
      JSON.stringify(text.slice(0, 20)),
    );
  }
  assert.throws(() => buildAuditMessage(0, "x", 1), RangeError);
  assert.throws(() => buildAuditMessage(0x10000, "x", 1), RangeError);
  assert.throws(() => buildAuditMessage(1107, "x", -1), RangeError);
  assert.throws(() => buildAuditMessage(1107, "x", 2 ** 32), RangeError);
  assert.throws(() => buildAuditMessage(1107, "x", 1.5), RangeError);
});

/** An NLMSG_ERROR message as the kernel sends it (capped: the header only). */
function ackMessage(
  sequence: number,
  error: number,
  options: { type?: number; originalSequence?: number; quoted?: number } = {},
): Uint8Array {
  const quoted = options.quoted ?? 0;
  const message = new Uint8Array(36 + quoted);
  const view = new DataView(message.buffer);
  view.setUint32(0, 36 + quoted, LITTLE_ENDIAN);
  view.setUint16(4, NLMSG_ERROR, LITTLE_ENDIAN);
  view.setUint16(6, quoted === 0 ? 0x100 : 0, LITTLE_ENDIAN); // NLM_F_CAPPED
  view.setUint32(8, sequence, LITTLE_ENDIAN);
  view.setUint32(12, 4242, LITTLE_ENDIAN); // our port id
  view.setInt32(16, error, LITTLE_ENDIAN);
  view.setUint32(20, 36 + quoted, LITTLE_ENDIAN);
  view.setUint16(24, options.type ?? 1107, LITTLE_ENDIAN);
  view.setUint16(26, 5, LITTLE_ENDIAN);
  view.setUint32(28, options.originalSequence ?? sequence, LITTLE_ENDIAN);
  return message;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(
    parts.reduce((sum, part) => sum + part.length, 0),
  );
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.length;
  }
  return whole;
}

test("the acknowledgement: NLMSG_ERROR for our sequence, error 0 or a negated errno", () => {
  const parse = (bytes: Uint8Array, sequence = 7) =>
    parseAuditReply(bytes, bytes.length, sequence, 1107);
  assert.deepEqual(parse(ackMessage(7, 0)), { kind: "ack", errno: 0 });
  assert.deepEqual(parse(ackMessage(7, -1)), { kind: "ack", errno: 1 });
  assert.deepEqual(parse(ackMessage(7, -ECONNREFUSED)), {
    kind: "ack",
    errno: ECONNREFUSED,
  });
  // An uncapped acknowledgement quotes the whole message (older kernels).
  assert.deepEqual(parse(ackMessage(7, 0, { quoted: 24 })), {
    kind: "ack",
    errno: 0,
  });
  // Another message first, then ours, in one datagram.
  assert.deepEqual(parse(concat(ackMessage(6, 0), ackMessage(7, -1))), {
    kind: "ack",
    errno: 1,
  });
  // Not ours: another sequence, or a quoted header of another message.
  assert.deepEqual(parse(ackMessage(6, 0)), { kind: "other" });
  assert.deepEqual(parse(ackMessage(7, 0, { originalSequence: 6 })), {
    kind: "other",
  });
  assert.deepEqual(parse(ackMessage(7, 0, { type: 1100 })), { kind: "other" });
  // Malformed: short, lengths past the datagram, an impossible error.
  for (
    const bytes of [
      new Uint8Array(0),
      new Uint8Array(12),
      ackMessage(7, 0).subarray(0, 20),
      concat(ackMessage(6, 0), new Uint8Array(8)),
      ackMessage(7, 5),
      ackMessage(7, -100000),
      new Uint8Array(36), // nlmsg_len 0
    ]
  ) {
    assert.equal(parse(bytes).kind, "malformed", String(bytes.length));
  }
  const truncated = ackMessage(7, 0);
  new DataView(truncated.buffer).setUint32(0, 20, LITTLE_ENDIAN);
  assert.equal(parse(truncated).kind, "malformed");
  assert.throws(
    () => parseAuditReply(new Uint8Array(4), 5, 1, 1107),
    RangeError,
  );
});

// ---------------------------------------------------------------------------
// The sender against a scripted kernel.

type KernelAnswer =
  | { ack: number } // the error the kernel acknowledges with (0, -errno)
  | { sendErrno: number }
  | { noAck: true };

/** The socket calls, answered the way the kernel's audit socket answers. */
class ScriptedAuditKernel implements AuditSocketCalls {
  socketErrno = 0;
  readonly answers: KernelAnswer[] = [];
  readonly calls: string[] = [];
  readonly messages: Uint8Array[] = [];
  readonly addresses: Uint8Array[] = [];
  readonly recvFlags: number[] = [];
  #queue: Uint8Array[] = [];
  #interruptNextSend = false;

  interruptNextSend(): void {
    this.#interruptNextSend = true;
  }

  #result(rc: number, errno = 0): CallResult {
    return { rc, errno: rc === -1 ? errno : 0, len: 0 };
  }

  socket(domain: number, type: number, protocol: number): CallResult {
    this.calls.push(`socket(${domain}, ${type.toString(16)}, ${protocol})`);
    return this.socketErrno
      ? this.#result(-1, this.socketErrno)
      : this.#result(9);
  }

  sendto(
    fd: number,
    buffer: Uint8Array,
    length: number,
    flags: number,
    address: Uint8Array,
    addressLength: number,
  ): CallResult {
    this.calls.push(`sendto(${fd}, ${length}, ${flags}, ${addressLength})`);
    if (this.#interruptNextSend) {
      this.#interruptNextSend = false;
      return this.#result(-1, E.EINTR);
    }
    const message = buffer.slice(0, length);
    this.messages.push(message);
    this.addresses.push(address.slice(0, addressLength));
    const answer = this.answers.shift() ?? { ack: 0 };
    if ("sendErrno" in answer) return this.#result(-1, answer.sendErrno);
    if ("ack" in answer) {
      const sequence = new DataView(message.buffer).getUint32(8, LITTLE_ENDIAN);
      this.#queue.push(ackMessage(sequence, answer.ack));
    }
    return this.#result(length);
  }

  recv(
    fd: number,
    buffer: Uint8Array,
    capacity: number,
    flags: number,
  ): CallResult {
    this.calls.push(`recv(${fd}, ${flags})`);
    this.recvFlags.push(flags);
    const datagram = this.#queue.shift();
    if (datagram === undefined) return this.#result(-1, E.EAGAIN);
    const length = Math.min(capacity, datagram.length);
    buffer.set(datagram.subarray(0, length));
    return this.#result(length);
  }

  close(fd: number): CallResult {
    this.calls.push(`close(${fd})`);
    return this.#result(0);
  }
}

test("the sender: socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_AUDIT), sendto the kernel, recv without waiting", () => {
  const kernel = new ScriptedAuditKernel();
  const socket = new AuditNetlinkSocket(kernel, GENERIC);
  assert.equal(socket.fd, -1);
  assert.deepEqual(socket.send(1107, "first record"), { delivered: true });
  assert.deepEqual(socket.send(1107, "the second record"), { delivered: true });
  assert.equal(socket.fd, 9);
  assert.deepEqual(kernel.calls, [
    "socket(16, 80003, 9)", // one socket for both records
    "sendto(9, 32, 0, 12)",
    "recv(9, 64)", // MSG_DONTWAIT: the ack is queued before sendto returns
    "sendto(9, 36, 0, 12)",
    "recv(9, 64)",
  ]);
  // struct sockaddr_nl { AF_NETLINK, 0, nl_pid 0 (the kernel), groups 0 }
  const address = new DataView(kernel.addresses[0].buffer);
  assert.equal(address.getUint16(0, LITTLE_ENDIAN), 16);
  assert.equal(address.getUint32(4, LITTLE_ENDIAN), 0);
  assert.equal(address.getUint32(8, LITTLE_ENDIAN), 0);
  // Sequence numbers 1, 2.
  assert.deepEqual(
    kernel.messages.map((message) =>
      new DataView(message.buffer).getUint32(8, LITTLE_ENDIAN)
    ),
    [1, 2],
  );
  socket.close();
  assert.equal(socket.fd, -1);
  assert.equal(kernel.calls.at(-1), "close(9)");
  // SOCK_CLOEXEC is O_CLOEXEC of the architecture.
  const sparc = new ScriptedAuditKernel();
  new AuditNetlinkSocket(sparc, constantsFor("sparc")).send(1107, "x");
  assert.equal(sparc.calls[0], "socket(16, 400003, 9)");
});

test("the sender: the kernel's refusals are for good, a full queue or a missing ack is not", () => {
  const cases: [KernelAnswer | "socket", string, boolean, string, RegExp][] = [
    [{ ack: -E.EPERM }, "EPERM", true, "ack", /CAP_AUDIT_WRITE/],
    [{ ack: -ECONNREFUSED }, "ECONNREFUSED", true, "ack", /user namespace/],
    [{ ack: -E.EINVAL }, "EINVAL", true, "ack", /refused/],
    [{ sendErrno: E.EACCES }, "EACCES", true, "sendto", /security policy/],
    [{ sendErrno: ENOBUFS }, "ENOBUFS", false, "sendto", /ENOBUFS/],
    [{ sendErrno: E.ENOMEM }, "ENOMEM", false, "sendto", /ENOMEM/],
    [{ noAck: true }, "ERR_NO_ACK", false, "recv", /no acknowledgement/],
    ["socket", "EPROTONOSUPPORT", true, "socket", /no audit support/],
  ];
  for (const [answer, code, permanent, step, message] of cases) {
    const kernel = new ScriptedAuditKernel();
    if (answer === "socket") kernel.socketErrno = EPROTONOSUPPORT;
    else kernel.answers.push(answer);
    const outcome = new AuditNetlinkSocket(kernel, GENERIC).send(1107, "x");
    assert.equal(outcome.delivered, false, code);
    if (outcome.delivered) continue;
    assert.equal(outcome.code, code);
    assert.equal(outcome.permanent, permanent, code);
    assert.equal(outcome.step, step, code);
    assert.match(outcome.message, message, code);
  }
  // An interrupted sendto is made again.
  const kernel = new ScriptedAuditKernel();
  kernel.interruptNextSend();
  assert.deepEqual(new AuditNetlinkSocket(kernel, GENERIC).send(1107, "x"), {
    delivered: true,
  });
  assert.equal(
    kernel.calls.filter((call) => call.startsWith("sendto")).length,
    2,
  );
});

// ---------------------------------------------------------------------------
// The "system" sink: decided once, stderr when the audit system will not do.

const decisionFor = (text: string) =>
  Object.freeze({
    allowed: false,
    reason: "denied" as const,
    audit: true,
    lsm: "selinux" as const,
    detail: "selinux: denied",
    auditMessage: text,
  });

const record = (text: string): AccessAuditRecord =>
  Object.freeze({ type: AUDIT_USER_AVC, text, decision: decisionFor(text) });

function systemAuditOver(
  kernel: ScriptedAuditKernel | (() => never),
  capability: boolean | null,
): { audit: SystemAudit; stderr: string[]; opened: () => number } {
  const stderr: string[] = [];
  let opened = 0;
  const audit = new SystemAudit(
    () => {
      opened++;
      if (typeof kernel === "function") return kernel();
      return { calls: kernel, constants: GENERIC };
    },
    () => capability,
    (line) => stderr.push(line),
  );
  return { audit, stderr, opened: () => opened };
}

test('"system": records go to the kernel while it takes them', () => {
  const kernel = new ScriptedAuditKernel();
  const { audit, stderr, opened } = systemAuditOver(kernel, true);
  assert.equal(opened(), 0, "nothing opens before it is needed");
  audit.deliver(record("one"));
  audit.deliver(record("two"));
  assert.equal(audit.destination, "system");
  assert.equal(audit.problem, null);
  assert.deepEqual(stderr, []);
  assert.equal(kernel.messages.length, 2);
  assert.equal(opened(), 1);
});

test('"system": without CAP_AUDIT_WRITE, or without FFI, records go to stderr and no socket is made', () => {
  const kernel = new ScriptedAuditKernel();
  const lacking = systemAuditOver(kernel, false);
  assert.equal(lacking.audit.destination, "stderr");
  assert.match(lacking.audit.problem!, /lacks CAP_AUDIT_WRITE/);
  lacking.audit.deliver(record("one"));
  assert.deepEqual(lacking.stderr, [
    "peersec-access: type=USER_AVC lsm=selinux msg='one'\n",
  ]);
  assert.deepEqual(kernel.calls, []);
  assert.equal(lacking.opened(), 0);

  const noFfi = systemAuditOver(() => {
    throw new Error("could not load the C library");
  }, true);
  noFfi.audit.deliver(record("two"));
  assert.equal(noFfi.audit.destination, "stderr");
  assert.match(
    noFfi.audit.problem!,
    /no FFI for the audit socket: could not load/,
  );
  assert.equal(noFfi.stderr.length, 1);

  // An FFI whose socket calls will not load: stderr, and nothing thrown.
  const unloadable = new ScriptedAuditKernel();
  unloadable.socket = () => {
    throw new Error("symbol socket not found");
  };
  const broken = systemAuditOver(unloadable, true);
  assert.equal(broken.audit.destination, "stderr");
  assert.match(broken.audit.problem!, /could not be opened: symbol socket/);
  broken.audit.deliver(record("x"));
  assert.equal(broken.stderr.length, 1);

  const noAudit = new ScriptedAuditKernel();
  noAudit.socketErrno = EPROTONOSUPPORT;
  const kernelWithout = systemAuditOver(noAudit, null);
  kernelWithout.audit.deliver(record("three"));
  kernelWithout.audit.deliver(record("four"));
  assert.equal(kernelWithout.audit.destination, "stderr");
  assert.match(kernelWithout.audit.problem!, /EPROTONOSUPPORT/);
  assert.equal(kernelWithout.stderr.length, 2);
  assert.equal(noAudit.calls.length, 1, "the socket is tried once");
});

test('"system": a refusal moves this record and every later one to stderr; a passing failure only this one', () => {
  const refusing = new ScriptedAuditKernel();
  refusing.answers.push({ ack: -E.EPERM });
  const refused = systemAuditOver(refusing, null);
  assert.equal(refused.audit.destination, "system");
  refused.audit.deliver(record("one"));
  refused.audit.deliver(record("two"));
  assert.equal(refused.audit.destination, "stderr");
  assert.match(refused.audit.problem!, /EPERM/);
  assert.deepEqual(refused.stderr, [
    "peersec-access: type=USER_AVC lsm=selinux msg='one'\n",
    "peersec-access: type=USER_AVC lsm=selinux msg='two'\n",
  ]);
  assert.equal(refusing.messages.length, 1, "the second is not sent");
  assert.equal(refusing.calls.at(-1), "close(9)");

  const busy = new ScriptedAuditKernel();
  busy.answers.push({ sendErrno: ENOBUFS }, { noAck: true }, { ack: 0 });
  const passing = systemAuditOver(busy, true);
  passing.audit.deliver(record("one"));
  passing.audit.deliver(record("two"));
  passing.audit.deliver(record("three"));
  assert.equal(passing.audit.destination, "system");
  assert.equal(passing.audit.problem, null);
  assert.deepEqual(passing.stderr.map((line) => line.slice(-6)), [
    "'one'\n",
    "'two'\n",
  ]);
  assert.equal(busy.messages.length, 3);

  // A text the message cannot carry goes to stderr; the sink stays.
  const plain = new ScriptedAuditKernel();
  const strange = systemAuditOver(plain, true);
  strange.audit.deliver(record("x".repeat(AUDIT_MESSAGE_TEXT_MAX + 1)));
  assert.equal(strange.stderr.length, 1);
  assert.equal(strange.audit.destination, "system");
});

test("the checker's sink: system by default, its destination readable", () => {
  const selinux = fakeSelinux();
  const records: string[] = [];
  const withFunction = createAccessChecker({
    files: selinux.kernel,
    onAudit: (made) => records.push(made.text),
  });
  assert.equal(withFunction.auditDestination, "function");
  assert.equal(withFunction.auditProblem, null);
  const quiet = createAccessChecker({
    files: selinux.kernel,
    onAudit: "ignore",
  });
  assert.equal(quiet.auditDestination, "ignore");
  const toStderr = createAccessChecker({
    files: selinux.kernel,
    onAudit: "stderr",
  });
  assert.equal(toStderr.auditDestination, "stderr");
  assert.equal(toStderr.auditProblem, null);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => createAccessChecker({ onAudit: "syslog" as any }),
    /"system", "stderr", "ignore" or a function/,
  );
  // "system" is the default; where it goes is this process's (see below).
  const byDefault = createAccessChecker({ files: selinux.kernel });
  assert.ok(["system", "stderr"].includes(byDefault.auditDestination));
});

// ---------------------------------------------------------------------------
// Length bounds: a record is never longer than the kernel logs, and no field
// is pushed off its end.

const SELINUX_SHAPE =
  /^avc: {2}denied {2}\{ delete \} for method="DELETE" path=(?:"[^"]*"|[0-9A-F]+) scontext=(\S+) tcontext=(\S+) tclass=peersec_http permissive=0 exe=\S+ sauid=-?\d+ hostname=\? addr=\? terminal=\?$/;

test("records stay within AUDIT_MESSAGE_TEXT_MAX: long values are cut, every field stays", () => {
  const subject = "user_u:base_r:client_a_t:s0";
  const target = "system_u:object_r:api_t:s0";
  for (const length of [10, 4000, 8560, 20000, 100000]) {
    for (const filler of ["a", "\u00e9", " ", "\u{1f600}"]) {
      const path = "/" + filler.repeat(length);
      const text = auditUserAvcText(
        formatSelinuxAvc(
          "denied",
          ["delete"],
          { method: "DELETE", path },
          subject,
          target,
          "peersec_http",
          false,
        ),
      );
      assert.ok(
        text.length <= AUDIT_MESSAGE_TEXT_MAX,
        `${length} ${text.length}`,
      );
      const shape = SELINUX_SHAPE.exec(text);
      assert.ok(shape, text.slice(0, 200));
      assert.equal(shape[1], subject);
      assert.equal(shape[2], target);
      buildAuditMessage(AUDIT_USER_AVC, text, 1); // fits the message
    }
  }
  // The longest value is cut first; a cut value is hex of a whole-character
  // prefix (here: é is C3A9, never split).
  const cut = formatAuditFields(
    { method: "GET", path: "/" + "\u00e9".repeat(5000) },
    200,
  );
  assert.ok(cut.length <= 200, String(cut.length));
  assert.match(cut, /^ method="GET" path=2F(C3A9)+$/);
  // Several long values share the room evenly.
  const shared = formatAuditFields(
    { a: "x".repeat(5000), b: "y".repeat(5000) },
    1000,
  );
  assert.ok(shared.length <= 1000);
  const [a, b] = shared.split(" ").slice(1).map((field) => field.length);
  assert.ok(Math.abs(a - b) <= 2, `${a} ${b}`);
  // Short records are untouched.
  assert.equal(
    formatAuditFields({ method: "GET", path: "/a b" }, 1000),
    ' method="GET" path=2F612062',
  );
  // AppArmor and Smack records, and a long executable path.
  const apparmor = auditUserAvcText(
    formatAppArmorAvc("DENIED", "client", "/" + "n".repeat(20000), "r", {
      method: "GET",
      path: "/" + "p".repeat(20000),
    }),
  );
  assert.ok(apparmor.length <= AUDIT_MESSAGE_TEXT_MAX);
  assert.match(
    apparmor,
    /^apparmor="DENIED" operation="peersec_access" class="file" label="client" name=[0-9A-F]+ mask="r" method="GET" path=[0-9A-F]+ exe=/,
  );
  const smack = auditUserAvcText(
    formatSmackAvc("denied", "s".repeat(300), "api", "-w----", {
      path: "/" + "p".repeat(20000),
    }),
  );
  assert.ok(smack.length <= AUDIT_MESSAGE_TEXT_MAX);
  assert.match(
    smack,
    /^lsm=SMACK fn=peersec_access action=denied subject="s{300}" object="api" requested=-w---- path=[0-9A-F]+ exe=/,
  );
  const sender = senderFields("/opt/" + "d".repeat(5000) + "/node", 0);
  assert.match(
    sender,
    /^ exe=[0-9A-F]{1,1024} sauid=0 hostname=\? addr=\? terminal=\?$/,
  );
});

// ---------------------------------------------------------------------------
// The real kernel.

/** The uid_map of the initial user namespace. */
const INITIAL_UID_MAP = /^\s*0\s+0\s+4294967295\s*$/;

/** Why records cannot reach this kernel's audit from here, or false. */
const noKernelAudit: string | false = (() => {
  if (!isRoot()) return "needs root (CAP_AUDIT_WRITE) to write audit records";
  let uidMap = "";
  try {
    uidMap = readFileSync("/proc/self/uid_map", "utf8");
  } catch {
    // an old kernel: no user namespaces
  }
  if (uidMap !== "" && !INITIAL_UID_MAP.test(uidMap)) {
    return "not in the initial user namespace: the kernel refuses audit records (ECONNREFUSED)";
  }
  let probe: AuditNetlinkSocket;
  try {
    probe = new AuditNetlinkSocket(
      defaultReader.backend,
      defaultReader.constants,
    );
  } catch (error) {
    return `no FFI here: ${(error as Error).message}`;
  }
  const failed = probe.open();
  probe.close();
  if (failed !== null) {
    return `this kernel has no audit socket (${failed.message})`;
  }
  return false;
})();

/** Why the kernel log cannot show the records, or false. */
const noKernelLog: string | false = (() => {
  if (noKernelAudit) return noKernelAudit;
  const pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "auditd") {
        return "auditd runs: it gets the records, not the kernel log";
      }
    } catch {
      // gone
    }
  }
  const dmesg = spawnSync("dmesg", [], { encoding: "utf8" });
  if (dmesg.status !== 0) {
    return `dmesg cannot be read (${dmesg.stderr ?? dmesg.error})`;
  }
  return false;
})();

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The kernel log's audit line for a user record with this exact text, as
 * kauditd prints it when no auditd runs: `audit: type=1107 audit(…): pid=…
 * uid=… auid=… ses=… [subj=…] msg='<text>'` (printed by a kernel thread, so
 * waited for).
 */
async function kernelLogLine(
  text: string,
): Promise<{ line: string; pid: number }> {
  const needle = `msg='${text}'`;
  let log = "";
  for (let attempt = 0; attempt < 50; attempt++) {
    log =
      spawnSync("dmesg", [], { encoding: "utf8", maxBuffer: 1 << 26 }).stdout;
    const line = log.split("\n").find((candidate) =>
      candidate.endsWith(needle)
    );
    if (line !== undefined) {
      const fields =
        /audit: type=1107 audit\(\d+\.\d+:\d+\): pid=(\d+) uid=\d+ auid=\d+ ses=\d+ (?:subj=\S+ )?msg='(.*)'$/
          .exec(line);
      assert.ok(fields, line);
      assert.equal(fields[2], text);
      return { line, pid: Number(fields[1]) };
    }
    await pause(100);
  }
  assert.fail(
    `no kernel log line ends with ${needle} (printk_ratelimit may have ` +
      `suppressed it; the log's end:\n${log.split("\n").slice(-8).join("\n")})`,
  );
}

let markers = 0;
/** A text no other record in the kernel log has. */
const marker = () =>
  `${detectRuntime()}-${process.pid}-${Date.now()}-${++markers}`;

/** The FFI this process uses, for test names. */
const ffiName = (() => {
  try {
    return defaultReader.backend.ffi;
  } catch {
    return "no FFI";
  }
})();

test(
  `a record sent through ${detectRuntime()}'s FFI (${ffiName}) is acknowledged by the kernel and in its log`,
  { skip: noKernelAudit },
  async () => {
    const socket = new AuditNetlinkSocket(
      defaultReader.backend,
      defaultReader.constants,
    );
    try {
      const text = `peersec-test record=${marker()}`;
      assert.deepEqual(socket.send(AUDIT_USER_AVC, text), { delivered: true });
      assert.ok(socket.fd >= 0);
      if (noKernelLog) return; // acknowledged; where it went is auditd's
      const { pid } = await kernelLogLine(text);
      assert.equal(pid, process.pid);
    } finally {
      socket.close();
    }
  },
);

/** The child: a checker over a fake selinuxfs that denies, default sink. */
function childScript(extra: string): string {
  const compiled = !import.meta.url.endsWith(".ts");
  const extension = compiled ? ".js" : ".ts";
  const url = (path: string) =>
    JSON.stringify(new URL(`../${path}${extension}`, import.meta.url).href);
  return `import { createAccessChecker, createRequestAccess, KernelFileError } from ${
    url("access")
  };
import { AuditNetlinkSocket } from ${url("access/netlink")};
import { SystemAudit } from ${url("access/audit")};
import { defaultReader } from ${url("ffi/default_reader")};
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
const checker = createAccessChecker({ files: kernel });
const access = createRequestAccess(checker, { selinux: { target: "user_u:object_r:api_t:s0" } });
const before = checker.auditDestination;
const marker = ${JSON.stringify(marker())};
const decisions = ["/one-" + marker, "/two-" + marker].map((path) =>
  access.check("user_u:base_r:client_t:s0", "DELETE", path));
const result = {
  pid: process.pid,
  before,
  after: checker.auditDestination,
  problem: checker.auditProblem,
  texts: decisions.map((decision) => decision.auditMessage),
};
${extra}
console.log(JSON.stringify(result));
`;
}

/** Runs the child script with a command prefix and environment. */
function runChild(
  prefix: string[],
  extra = "",
  env: Record<string, string> = {},
): {
  result: Record<string, unknown> & { texts: string[]; pid: number };
  lines: string[];
} {
  const directory = mkdtempSync(join(tmpdir(), "peersec-netlink-"));
  try {
    const script = join(directory, "child.mjs");
    writeFileSync(script, childScript(extra));
    const [command, ...args] = [...prefix, ...runtimeCommand(script, [])];
    const child = spawnSync(command, args, {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, ...env },
    });
    assert.equal(child.status, 0, `${child.stderr}\n${child.error ?? ""}`);
    const result = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
    const lines = child.stderr.split("\n").filter((line) =>
      line.startsWith("peersec-access:")
    );
    return { result, lines };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const stderrLine = (text: string) =>
  `peersec-access: type=USER_AVC lsm=selinux msg='${text}'`;

test(
  "the default sink sends a checker's denials to the kernel's audit (a child process), and nothing to stderr",
  { skip: noKernelAudit },
  async () => {
    const { result, lines } = runChild([]);
    assert.equal(result.before, "system");
    assert.equal(result.after, "system");
    assert.equal(result.problem, null);
    assert.deepEqual(lines, []);
    assert.equal(result.texts.length, 2);
    if (noKernelLog) return;
    for (const text of result.texts) {
      const { pid } = await kernelLogLine(text);
      assert.equal(pid, result.pid);
    }
  },
);

const setprivDropsAuditWrite = [
  "setpriv",
  "--inh-caps=-audit_write",
  "--bounding-set=-audit_write",
];

test(
  "without CAP_AUDIT_WRITE the kernel answers EPERM, and the default sink writes the stderr line",
  { skip: noKernelAudit },
  () => {
    // In the child: the kernel's own answer to a record (the capability not
    // looked at first), a "system" sink that learns it from the kernel, and
    // the checker's sink, which sees the missing capability in CapEff.
    const { result, lines } = runChild(
      setprivDropsAuditWrite,
      `const socket = new AuditNetlinkSocket(defaultReader.backend, defaultReader.constants);
result.kernel = socket.send(1107, "peersec-test refused");
const learning = new SystemAudit(() => ({ calls: defaultReader.backend, constants: defaultReader.constants }), () => null);
learning.deliver({ type: 1107, text: decisions[0].auditMessage, decision: decisions[0] });
result.learned = { destination: learning.destination, problem: learning.problem };
result.capEff = (await import("node:fs")).readFileSync("/proc/self/status", "utf8").match(/^CapEff:.*$/m)[0];`,
    );
    assert.deepEqual(result.kernel, {
      delivered: false,
      permanent: true,
      code: "EPERM",
      step: "ack",
      message:
        "the kernel refused the audit record: EPERM (this process lacks CAP_AUDIT_WRITE)",
    });
    assert.deepEqual(result.learned, {
      destination: "stderr",
      problem:
        "the kernel refused the audit record: EPERM (this process lacks CAP_AUDIT_WRITE)",
    });
    assert.equal(result.before, "stderr", String(result.capEff));
    assert.equal(result.after, "stderr");
    assert.match(String(result.problem), /lacks CAP_AUDIT_WRITE/);
    assert.deepEqual(lines, [
      stderrLine(result.texts[0]),
      stderrLine(result.texts[1]),
      stderrLine(result.texts[0]), // the learning sink's fallback
    ]);
  },
);

const noUserNamespace: string | false = noKernelAudit ||
  (spawnSync("unshare", ["--user", "--map-root-user", "true"]).status === 0
    ? false
    : "unshare --user --map-root-user does not work here");

test(
  "in a user namespace of its own the kernel answers ECONNREFUSED: the default sink turns to stderr for good",
  { skip: noUserNamespace },
  () => {
    // Root of its namespace: CapEff has CAP_AUDIT_WRITE, so the sink tries
    // the kernel, which refuses the first record; both go to stderr.
    const { result, lines } = runChild([
      "unshare",
      "--user",
      "--map-root-user",
    ]);
    assert.equal(result.before, "system");
    assert.equal(result.after, "stderr");
    assert.match(
      String(result.problem),
      /ECONNREFUSED \(not in the initial user namespace/,
    );
    assert.deepEqual(lines, result.texts.map(stderrLine));
  },
);

test(
  "without FFI (no C library to open) the default sink writes the stderr line",
  {
    skip: !isRoot() && "needs root: without CAP_AUDIT_WRITE nothing opens FFI",
  },
  () => {
    const { result, lines } = runChild([], "", {
      PEERSEC_LIBC: "/nonexistent/libc.so.6",
    });
    assert.equal(result.before, "stderr");
    assert.equal(result.after, "stderr");
    assert.match(
      String(result.problem),
      /^no FFI for the audit socket: could not load the C library/,
    );
    assert.deepEqual(lines, result.texts.map(stderrLine));
    assert.ok(!existsSync("/nonexistent/libc.so.6"));
  },
);
