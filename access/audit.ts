/**
 * Audit records for access decisions, in the text dbus-daemon and systemd
 * send as `AUDIT_USER_AVC` (type 1107) so that `ausearch -m USER_AVC` and
 * `audit2allow` read them like the system's own; and where they go.
 *
 * Every value a peer chose (its label, the request's path) is encoded the way
 * the kernel and libaudit encode untrusted strings: `"text"` when it is
 * printable ASCII without a double quote, otherwise the uppercase hex of its
 * UTF-8 bytes. A peer can therefore never end a field early, add a field of
 * its own, or start a new record. And a record never grows past what the
 * kernel logs of a user record ({@linkcode AUDIT_MESSAGE_TEXT_MAX}, 8560
 * characters): where the values would make it longer, the longest values are
 * cut to share the room (see {@linkcode formatAuditFields}), so no field is
 * ever pushed off its end.
 *
 * The `"system"` sink sends each record as an `AUDIT_USER_AVC` netlink
 * message to the kernel's audit (access/netlink.ts), as dbus-daemon and
 * systemd do, when this process may (`CAP_AUDIT_WRITE` in the initial user
 * namespace); otherwise it writes the stderr line. It decides once per
 * process and remembers.
 *
 * @module
 */
import { writeSync } from "node:fs";
import type { AccessDecision } from "./decision.ts";
import { fromUtf8, nodeKernelFiles, readSmallFile, utf8 } from "./transport.ts";
import {
  AUDIT_MESSAGE_TEXT_MAX,
  AuditNetlinkSocket,
  type AuditSendOutcome,
  type AuditSocketCalls,
} from "./netlink.ts";
import type { ArchitectureConstants } from "../src/constants.ts";
import { defaultReader } from "../ffi/default_reader.ts";

/**
 * The audit message type of a userspace AVC record (linux/audit.h), as
 * `ausearch -m USER_AVC` finds it.
 *
 * @example
 * ```ts
 * import { AUDIT_USER_AVC } from "@peersec/peersec/access";
 *
 * console.log(AUDIT_USER_AVC); // 1107
 * ```
 */
export const AUDIT_USER_AVC = 1107;

/**
 * Extra `name=value` fields a caller adds to an audit record (the request's
 * method and path, the peer's pid). Names are lowercase identifiers; string
 * values are encoded as untrusted, numbers must be integers.
 */
export type AuditFields = Readonly<Record<string, string | number>>;

/** What the checker hands to its audit sink. */
export interface AccessAuditRecord {
  /** {@linkcode AUDIT_USER_AVC} (1107). */
  readonly type: number;
  /**
   * The record's text, without the sender fields the kernel prefixes
   * (`pid= uid= auid= ses= subj=`): what `audit_log_user_avc_message` sends,
   * e.g. `avc:  denied  { post } for method="POST" scontext=… tcontext=…
   * tclass=peersec_http permissive=0 exe="/usr/bin/deno" sauid=0
   * hostname=? addr=? terminal=?`.
   */
  readonly text: string;
  /** The decision the record is about. */
  readonly decision: AccessDecision;
}

/**
 * Where audit records go:
 *
 * - `"system"` (the default): the kernel's audit, as an `AUDIT_USER_AVC`
 *   netlink message — what dbus-daemon and systemd do — when this process
 *   may write audit records (`CAP_AUDIT_WRITE` in the initial user
 *   namespace) and the runtime's FFI is there; otherwise, or once the
 *   kernel refuses a record, the `"stderr"` line. Decided once per process.
 * - `"stderr"`: one line per record,
 *   `peersec-access: type=USER_AVC lsm=… msg='…'`.
 * - `"ignore"`: nowhere.
 * - a function: called with each record.
 */
export type AuditSink =
  | "system"
  | "stderr"
  | "ignore"
  | ((record: AccessAuditRecord) => void);

/**
 * Where a checker's audit records go now: the kernel's audit (`"system"`),
 * stderr (`"stderr"`, asked for or the `"system"` sink's fallback),
 * nowhere (`"ignore"`), or the caller's function (`"function"`).
 */
export type AuditDestination = "system" | "stderr" | "ignore" | "function";

/**
 * What the audit system encodes (space, `"`, controls, non-ASCII), and `'`
 * too: the kernel wraps a user record's text in `msg='…'`.
 */
const NEEDS_ENCODING = /[^\x21\x23-\x26\x28-\x7e]/;

/**
 * A value as the audit system writes an untrusted string: `"value"` when
 * every character is printable ASCII other than space, `"` and `'`, otherwise the
 * uppercase hex of its UTF-8 bytes (which `ausearch -i` decodes).
 *
 * @example
 * ```ts
 * import { encodeAuditValue } from "@peersec/peersec/access";
 *
 * encodeAuditValue("/v1/items"); // '"/v1/items"'
 * encodeAuditValue('a" b'); // "61222062"
 * ```
 */
export function encodeAuditValue(value: string): string {
  if (value !== "" && !NEEDS_ENCODING.test(value)) return `"${value}"`;
  if (value === "") return '""';
  let hex = "";
  for (const byte of utf8(value)) {
    hex += byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return hex;
}

const FIELD_NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** Names the records use themselves: a caller's field may not shadow them. */
const RESERVED = new Set([
  "scontext",
  "tcontext",
  "tclass",
  "permissive",
  "apparmor",
  "operation",
  "class",
  "label",
  "name",
  "mask",
  "lsm",
  "fn",
  "action",
  "subject",
  "object",
  "requested",
  "exe",
  "sauid",
  "hostname",
  "addr",
  "terminal",
  "pid",
  "uid",
  "auid",
  "ses",
  "subj",
  "msg",
  "type",
]);

/**
 * Checks a caller's extra fields; throws for names or values a record must
 * not carry.
 */
export function checkAuditFields(fields: unknown): AuditFields {
  if (fields === undefined) return {};
  if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
    throw new TypeError("audit fields must be an object of name → value");
  }
  for (const [name, value] of Object.entries(fields)) {
    if (!FIELD_NAME.test(name) || RESERVED.has(name)) {
      throw new RangeError(
        `audit field name ${
          JSON.stringify(name)
        } is not a lowercase identifier of its own (or is reserved)`,
      );
    }
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) {
        throw new RangeError(`audit field ${name} must be an integer`);
      }
    } else if (typeof value !== "string") {
      throw new TypeError(`audit field ${name} must be a string or a number`);
    }
  }
  return fields as AuditFields;
}

/**
 * A part of a record: text of the record's own, or a value to encode —
 * `quoted` as an untrusted string ({@linkcode encodeAuditValue}), `bare` as
 * is when safe (contexts, class and permission names), encoded otherwise.
 */
type AuditPart = string | {
  readonly value: string;
  readonly as: "quoted" | "bare";
};

function encodePart(part: AuditPart): string {
  if (typeof part === "string") return part;
  return part.as === "bare" ? bare(part.value) : encodeAuditValue(part.value);
}

/** Uppercase hex of bytes. */
function hex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) {
    text += byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return text;
}

/**
 * A value cut to at most `width` characters: the hex of its longest UTF-8
 * prefix that fits and ends on a whole character, or `""` when none does.
 */
function cutValue(value: string, width: number): string {
  const bytes = utf8(value);
  let end = Math.min(bytes.length, Math.floor(width / 2));
  while (end > 0 && end < bytes.length && (bytes[end] & 0xc0) === 0x80) end--;
  return end === 0 ? '""' : hex(bytes.subarray(0, end));
}

/**
 * The parts joined, in at most `limit` characters when the record's own text
 * leaves room: values too long to fit are cut, the shortest values kept
 * whole first and the room left shared evenly among the rest (a cut value is
 * the hex of its first bytes). Everything stays in place: no field is
 * dropped or pushed off the end.
 */
function joinWithin(parts: readonly AuditPart[], limit: number): string {
  const encoded = parts.map(encodePart);
  let total = 0;
  for (const text of encoded) total += text.length;
  if (total <= limit) return encoded.join("");
  let room = limit;
  const values: number[] = [];
  parts.forEach((part, index) => {
    if (typeof part === "string") room -= encoded[index].length;
    else values.push(index);
  });
  values.sort((a, b) => encoded[a].length - encoded[b].length);
  let left = values.length;
  for (const index of values) {
    const share = Math.floor(Math.max(0, room) / left--);
    if (encoded[index].length > share) {
      encoded[index] = cutValue(
        (parts[index] as { readonly value: string }).value,
        share,
      );
    }
    room -= encoded[index].length;
  }
  return encoded.join("");
}

/** ` name=value` parts for each field, strings to be encoded as untrusted. */
function fieldParts(fields: AuditFields): AuditPart[] {
  const parts: AuditPart[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === "number") parts.push(` ${name}=${value}`);
    else parts.push(` ${name}=`, { value, as: "quoted" });
  }
  return parts;
}

/**
 * ` name=value` for each field, strings encoded as untrusted, in at most
 * `limit` characters (values cut to share the room as a record's are).
 */
export function formatAuditFields(
  fields: AuditFields,
  limit: number = Infinity,
): string {
  return joinWithin(fieldParts(fields), limit);
}

/** A context or class name in a record: as is when safe, encoded otherwise. */
function bare(value: string): string {
  return value !== "" && !NEEDS_ENCODING.test(value)
    ? value
    : encodeAuditValue(value);
}

/**
 * The room a record's message leaves for the sender fields
 * ({@linkcode auditUserAvcText} appends them) within what the kernel logs.
 */
function messageLimit(): number {
  return AUDIT_MESSAGE_TEXT_MAX - thisSender().length;
}

/**
 * The SELinux part of a record, as libselinux's `avc_audit` writes it:
 * `avc:  denied  { get } for <fields> scontext=… tcontext=… tclass=…
 * permissive=0` (`granted` and no `permissive=` for an audited grant; two
 * spaces after `for` when there are no fields, as libselinux leaves them).
 * At most `limit` characters (default: what the kernel logs, less the sender
 * fields) as long as the names of the fields fit.
 */
export function formatSelinuxAvc(
  result: "granted" | "denied",
  permissions: readonly string[],
  fields: AuditFields,
  subject: string,
  target: string,
  className: string,
  permissive: boolean,
  limit: number = messageLimit(),
): string {
  const parts: AuditPart[] = [`avc:  ${result}  {`];
  for (const permission of permissions) {
    parts.push(" ", { value: permission, as: "bare" });
  }
  parts.push(permissions.length === 0 ? "  } for " : " } for ");
  const extra = fieldParts(fields);
  // libselinux's "for " and the fields' leading space: one space between.
  if (extra.length > 0) extra[0] = (extra[0] as string).slice(1);
  parts.push(
    ...extra,
    " scontext=",
    { value: subject, as: "bare" },
    " tcontext=",
    { value: target, as: "bare" },
    " tclass=",
    { value: className, as: "bare" },
  );
  if (result === "denied") parts.push(` permissive=${permissive ? 1 : 0}`);
  return joinWithin(parts, limit);
}

/**
 * The AppArmor part of a record, in dbus-daemon's style:
 * `apparmor="DENIED" operation="peersec_access" class="file" label="…"
 * name="…" mask="r"` and the caller's fields (bounded as
 * {@linkcode formatSelinuxAvc}'s).
 */
export function formatAppArmorAvc(
  result: "ALLOWED" | "DENIED",
  label: string,
  name: string,
  mask: string,
  fields: AuditFields,
  limit: number = messageLimit(),
): string {
  return joinWithin([
    `apparmor="${result}" operation="peersec_access" class="file" label=`,
    { value: label, as: "quoted" },
    " name=",
    { value: name, as: "quoted" },
    " mask=",
    { value: mask, as: "quoted" },
    ...fieldParts(fields),
  ], limit);
}

/**
 * The Smack part of a record, shaped like the kernel's Smack records:
 * `lsm=SMACK fn=peersec_access action=denied subject="…" object="…"
 * requested=r` and the caller's fields (bounded as
 * {@linkcode formatSelinuxAvc}'s).
 */
export function formatSmackAvc(
  result: "granted" | "denied",
  subject: string,
  object: string,
  access: string,
  fields: AuditFields,
  limit: number = messageLimit(),
): string {
  return joinWithin([
    `lsm=SMACK fn=peersec_access action=${result} subject=`,
    { value: subject, as: "quoted" },
    " object=",
    { value: object, as: "quoted" },
    " requested=",
    { value: access, as: "bare" },
    ...fieldParts(fields),
  ], limit);
}

/** The most the sender fields' `exe=` value takes in a record. */
const MAX_EXECUTABLE_WIDTH = 1024;

/**
 * What libaudit's `audit_log_user_avc_message` appends about the sender
 * (the executable's path cut to 1024 characters when it is longer).
 */
export function senderFields(executable: string, uid: number): string {
  const exe = encodeAuditValue(executable);
  return ` exe=${
    exe.length <= MAX_EXECUTABLE_WIDTH
      ? exe
      : cutValue(executable, MAX_EXECUTABLE_WIDTH)
  } sauid=${uid}` + " hostname=? addr=? terminal=?";
}

/** The executable and uid of this process, read once. */
let sender: string | null = null;
function thisSender(): string {
  if (sender === null) {
    const uid = typeof process.getuid === "function" ? process.getuid() : -1;
    sender = senderFields(process.execPath, uid);
  }
  return sender;
}

/**
 * The full text of an `AUDIT_USER_AVC` record for an LSM's message: the
 * message and the sender fields (`exe= sauid= hostname=? addr=?
 * terminal=?`).
 *
 * @example
 * ```ts
 * import { auditUserAvcText } from "@peersec/peersec/access";
 *
 * console.log(auditUserAvcText('avc:  denied  { post } for  scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=peersec_http permissive=0'));
 * ```
 */
export function auditUserAvcText(message: string): string {
  return message + thisSender();
}

/** A record's line on stderr. */
export function stderrAuditLine(record: AccessAuditRecord): string {
  return `peersec-access: type=USER_AVC lsm=${
    record.decision.lsm ?? "none"
  } msg='${record.text}'\n`;
}

function writeStderr(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    // stderr closed: the record is lost, as syslog would lose it.
  }
}

/** `CAP_AUDIT_WRITE` (linux/capability.h). */
const CAP_AUDIT_WRITE = 29;

/**
 * Whether this process has `CAP_AUDIT_WRITE` in its effective set (the
 * `CapEff` line of /proc/self/status), or null when that cannot be read.
 */
export function hasAuditWriteCapability(): boolean | null {
  let status: string | null;
  try {
    status = fromUtf8(
      readSmallFile(nodeKernelFiles, "/proc/self/status", 65536),
    );
  } catch {
    return null;
  }
  const effective = status === null
    ? undefined
    : /^CapEff:\s*([0-9a-f]{1,16})$/m.exec(status)?.[1];
  if (effective === undefined) return null;
  return ((BigInt(`0x${effective}`) >> BigInt(CAP_AUDIT_WRITE)) & 1n) === 1n;
}

/** What the `"system"` sink needs: the FFI's socket calls and the constants. */
export interface SystemAuditPlatform {
  /** The runtime backend's socket calls. */
  readonly calls: AuditSocketCalls;
  /** This machine's kernel constants. */
  readonly constants: ArchitectureConstants;
}

/**
 * The `"system"` sink: records to the kernel's audit over `NETLINK_AUDIT`
 * while it takes them, otherwise the stderr line.
 *
 * Decided once, when first needed (the first record, or the first question
 * where they go): stderr when this process lacks `CAP_AUDIT_WRITE` (as
 * dbus-daemon checks before it opens its audit socket), when the runtime's
 * FFI cannot be opened (Deno without `--allow-ffi`, Node without koffi or
 * node:ffi), or when the socket cannot be made (a kernel without audit);
 * the kernel. Then, if the kernel refuses a record for good (`EPERM`,
 * `ECONNREFUSED` outside the initial user namespace, a security policy's
 * `EACCES`), that record and every later one go to stderr. A record the
 * kernel did not take for a passing reason (`ENOBUFS`, no acknowledgement)
 * goes to stderr too, and the next one is tried again. A record is never
 * lost for want of a destination, and nothing here throws or waits.
 */
export class SystemAudit {
  readonly #platform: () => SystemAuditPlatform;
  readonly #capability: () => boolean | null;
  readonly #write: (line: string) => void;
  #socket: AuditNetlinkSocket | null = null;
  #destination: "system" | "stderr" | null = null;
  #problem: string | null = null;

  /**
   * @param platform Opens the FFI (may throw, which means stderr).
   * @param capability Whether the process has `CAP_AUDIT_WRITE` (null:
   *   unknown, the kernel will say).
   * @param write Writes a fallback line (default: to stderr, fd 2).
   */
  constructor(
    platform: () => SystemAuditPlatform,
    capability: () => boolean | null = hasAuditWriteCapability,
    write: (line: string) => void = writeStderr,
  ) {
    this.#platform = platform;
    this.#capability = capability;
    this.#write = write;
  }

  /** Where records go now (deciding on first use). */
  get destination(): "system" | "stderr" {
    return this.#destination ?? this.#decide();
  }

  /** Why records go to stderr rather than to the audit system, or null. */
  get problem(): string | null {
    if (this.#destination === null) this.#decide();
    return this.#problem;
  }

  #fallBack(problem: string): "stderr" {
    this.#problem = problem;
    this.#destination = "stderr";
    try {
      this.#socket?.close();
    } catch {
      // nothing more to release
    }
    this.#socket = null;
    return "stderr";
  }

  #decide(): "system" | "stderr" {
    if (this.#capability() === false) {
      return this.#fallBack(
        "this process lacks CAP_AUDIT_WRITE (CapEff in /proc/self/status)",
      );
    }
    let platform: SystemAuditPlatform;
    try {
      platform = this.#platform();
    } catch (error) {
      return this.#fallBack(
        `no FFI for the audit socket: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
    const socket = new AuditNetlinkSocket(platform.calls, platform.constants);
    let failed: string | null;
    try {
      failed = socket.open()?.message ?? null;
    } catch (error) {
      // The FFI could not make the call (its symbols would not load).
      failed = `the audit socket could not be opened: ${
        error instanceof Error ? error.message : String(error)
      }`;
    }
    if (failed !== null) return this.#fallBack(failed);
    this.#socket = socket;
    this.#destination = "system";
    return "system";
  }

  /** Sends a record to the audit system, or writes its stderr line. */
  deliver(record: AccessAuditRecord): void {
    if (this.destination === "system") {
      let sent: AuditSendOutcome | null = null;
      try {
        sent = this.#socket!.send(record.type, record.text);
      } catch {
        // A text the netlink message cannot carry (not from this module's
        // formatters): this record goes to stderr.
      }
      if (sent !== null) {
        if (sent.delivered) return;
        if (sent.permanent) this.#fallBack(sent.message);
      }
    }
    this.#write(stderrAuditLine(record));
  }

  /** Closes the socket; a later record opens another. */
  close(): void {
    this.#socket?.close();
  }
}

/**
 * The process's `"system"` sink, over the FFI backend `peersec` uses: one
 * audit socket per process (close-on-exec), kept open like dbus-daemon's.
 */
export const systemAudit: SystemAudit = new SystemAudit(() => ({
  calls: defaultReader.backend,
  constants: defaultReader.constants,
}));

/** Where records handed to `sink` go now. */
export function auditDestination(sink: AuditSink): AuditDestination {
  if (sink === "system") return systemAudit.destination;
  return typeof sink === "function" ? "function" : sink;
}

/** Delivers a record to a sink. */
export function deliverAudit(sink: AuditSink, made: AccessDecision): void {
  if (sink === "ignore" || made.auditMessage === null) return;
  const record: AccessAuditRecord = Object.freeze({
    type: AUDIT_USER_AVC,
    text: made.auditMessage,
    decision: made,
  });
  if (sink === "system") {
    systemAudit.deliver(record);
    return;
  }
  if (sink === "stderr") {
    writeStderr(stderrAuditLine(record));
    return;
  }
  sink(record);
}
