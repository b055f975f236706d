/**
 * Audit records for access decisions, in the text dbus-daemon and systemd
 * send as `AUDIT_USER_AVC` (type 1107) so that `ausearch -m USER_AVC` and
 * `audit2allow` read them like the system's own; and where they go.
 *
 * Every value a peer chose (its label, the request's path) is encoded the way
 * the kernel and libaudit encode untrusted strings: `"text"` when it is
 * printable ASCII without a double quote, otherwise the uppercase hex of its
 * UTF-8 bytes. A peer can therefore never end a field early, add a field of
 * its own, or start a new record.
 *
 * @module
 */
import { writeSync } from "node:fs";
import type { AccessDecision } from "./decision.ts";
import { utf8 } from "./transport.ts";

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
 * Where audit records go: a function, `"stderr"` (one line per record,
 * `peersec-access: type=USER_AVC msg='…'`; the default), or `"ignore"`.
 */
export type AuditSink =
  | "stderr"
  | "ignore"
  | ((record: AccessAuditRecord) => void);

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

/** ` name=value` for each field, strings encoded as untrusted. */
export function formatAuditFields(fields: AuditFields): string {
  let text = "";
  for (const [name, value] of Object.entries(fields)) {
    text += ` ${name}=${
      typeof value === "number" ? String(value) : encodeAuditValue(value)
    }`;
  }
  return text;
}

/** A context or class name in a record: as is when safe, encoded otherwise. */
function bare(value: string): string {
  return value !== "" && !NEEDS_ENCODING.test(value)
    ? value
    : encodeAuditValue(value);
}

/**
 * The SELinux part of a record, as libselinux's `avc_audit` writes it:
 * `avc:  denied  { get } for <fields> scontext=… tcontext=… tclass=…
 * permissive=0` (`granted` and no `permissive=` for an audited grant; two
 * spaces after `for` when there are no fields, as libselinux leaves them).
 */
export function formatSelinuxAvc(
  result: "granted" | "denied",
  permissions: readonly string[],
  fields: AuditFields,
  subject: string,
  target: string,
  className: string,
  permissive: boolean,
): string {
  const perms = permissions.map(bare).join(" ");
  let text = `avc:  ${result}  { ${perms} } for ${
    formatAuditFields(fields).slice(1)
  } scontext=${bare(subject)} tcontext=${bare(target)} tclass=${
    bare(className)
  }`;
  if (result === "denied") text += ` permissive=${permissive ? 1 : 0}`;
  return text;
}

/**
 * The AppArmor part of a record, in dbus-daemon's style:
 * `apparmor="DENIED" operation="peersec_access" class="file" label="…"
 * name="…" mask="r"` and the caller's fields.
 */
export function formatAppArmorAvc(
  result: "ALLOWED" | "DENIED",
  label: string,
  name: string,
  mask: string,
  fields: AuditFields,
): string {
  return `apparmor="${result}" operation="peersec_access" class="file" label=${
    encodeAuditValue(label)
  } name=${encodeAuditValue(name)} mask=${encodeAuditValue(mask)}${
    formatAuditFields(fields)
  }`;
}

/**
 * The Smack part of a record, shaped like the kernel's Smack records:
 * `lsm=SMACK fn=peersec_access action=denied subject="…" object="…"
 * requested=r` and the caller's fields.
 */
export function formatSmackAvc(
  result: "granted" | "denied",
  subject: string,
  object: string,
  access: string,
  fields: AuditFields,
): string {
  return `lsm=SMACK fn=peersec_access action=${result} subject=${
    encodeAuditValue(subject)
  } object=${encodeAuditValue(object)} requested=${bare(access)}${
    formatAuditFields(fields)
  }`;
}

/** What libaudit's `audit_log_user_avc_message` appends about the sender. */
export function senderFields(executable: string, uid: number): string {
  return ` exe=${encodeAuditValue(executable)} sauid=${uid}` +
    " hostname=? addr=? terminal=?";
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

/** Delivers a record to a sink. */
export function deliverAudit(sink: AuditSink, made: AccessDecision): void {
  if (sink === "ignore" || made.auditMessage === null) return;
  const record: AccessAuditRecord = Object.freeze({
    type: AUDIT_USER_AVC,
    text: made.auditMessage,
    decision: made,
  });
  if (sink === "stderr") {
    try {
      writeSync(2, stderrAuditLine(record));
    } catch {
      // stderr closed: the record is lost, as syslog would lose it.
    }
    return;
  }
  sink(record);
}
