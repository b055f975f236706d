/**
 * AppArmor as dbus-daemon asks it, without libapparmor: a label query on
 * `<securityfs>/apparmor/.access`. AppArmor has no classes of a program's
 * own, so the question is a FILE-class one on a path nobody has on disk: the
 * kernel matches the string against the profile's file rules and never
 * touches the filesystem. (The DBUS class would answer "allowed" on every
 * kernel that does not mediate D-Bus, i.e. mainline.)
 *
 * Query: `"label\0" <label> "\0" 0x02 <path>` (no trailing NUL; built here,
 * not with libapparmor's arithmetic, which drops the path's last byte).
 * Reply: exactly 67 bytes, `allow 0x%08x\ndeny 0x%08x\naudit 0x%08x\nquiet
 * 0x%08x\n`.
 *
 * The peer label's mode matters and the kernel's reply does not carry it:
 * `complain` is allowed and audited when the rules deny (AppArmor's own
 * behaviour, configurable), an `unconfined` peer is denied by default (the
 * kernel would answer "everything allowed").
 *
 * @module
 */
import { parseAppArmorLabel } from "../mod.ts";
import {
  type AuditFields,
  type AuditSink,
  auditUserAvcText,
  deliverAudit,
  formatAppArmorAvc,
} from "./audit.ts";
import {
  type AccessDecision,
  type AccessReason,
  decision,
  quote,
} from "./decision.ts";
import {
  failureCode,
  failureSyscall,
  type KernelFiles,
  utf8,
} from "./transport.ts";

/** AA_CLASS_FILE: the query's class byte. */
export const APPARMOR_CLASS_FILE = 2;

/**
 * The longest query `.access` takes on 4 KiB pages
 * (`MULTI_TRANSACTION_LIMIT - 1`); longer ones fail with EFBIG.
 */
export const APPARMOR_MAX_QUERY = 4079;

/** The length of every label-query reply. */
export const APPARMOR_REPLY_LENGTH = 67;

/**
 * File permission letters as profile rules write them, and their bits
 * (AA_MAY_*): `r` read, `w` write, `a` append, `x` exec, `m` mmap exec,
 * `k` lock, `l` link.
 */
export const APPARMOR_PERMISSION_BITS: Readonly<Record<string, number>> = Object
  .freeze({
    x: 1 << 0,
    w: 1 << 1,
    r: 1 << 2,
    a: 1 << 3,
    k: 0x8000,
    m: 0x10000,
    l: 0x40000,
  });

/** The four words of a label-query reply. */
export interface AppArmorReply {
  /** Permissions allowed. */
  readonly allow: number;
  /** Permissions denied by `deny` rules. */
  readonly deny: number;
  /** Permissions to audit. */
  readonly audit: number;
  /** Permissions whose denial is not audited. */
  readonly quiet: number;
}

/** A label as SO_PEERSEC gives it, split like libapparmor's `aa_splitcon`. */
export interface AppArmorSplitLabel {
  /** The label to query with: the text without ` (mode)`. */
  readonly label: string;
  /** `enforce`, `complain`, `kill`, `unconfined`, `mixed`, … or null. */
  readonly mode: string | null;
}

/**
 * Splits `label (mode)` into label and mode; `unconfined` has no mode. One
 * trailing newline is dropped (as `/proc/<pid>/attr/current` has it).
 */
export function splitAppArmorLabel(text: string): AppArmorSplitLabel {
  const trimmed = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (trimmed.endsWith(")")) {
    const open = trimmed.lastIndexOf(" (");
    if (open > 0) {
      return {
        label: trimmed.slice(0, open),
        mode: trimmed.slice(open + 2, -1),
      };
    }
  }
  return { label: trimmed, mode: null };
}

/** Whether every profile of a label is `unconfined` (in any namespace). */
export function isUnconfinedLabel(split: AppArmorSplitLabel): boolean {
  if (split.mode === "unconfined") return true;
  if (split.label === "unconfined") return true;
  try {
    const parsed = parseAppArmorLabel(split.label);
    return parsed.profiles.length > 0 &&
      parsed.profiles.every((profile) => profile.name === "unconfined");
  } catch {
    return false;
  }
}

/** Why `label` cannot be queried, or null. */
export function appArmorLabelProblem(label: string): string | null {
  if (label.length === 0) return "empty";
  // deno-lint-ignore no-control-regex -- a NUL would end the label early
  if (/[\u0000\n]/.test(label)) return "contains a NUL or a newline";
  return null;
}

/** Why `path` cannot be queried, or null. */
export function appArmorPathProblem(path: string): string | null {
  if (!path.startsWith("/")) return "not absolute";
  // deno-lint-ignore no-control-regex -- a NUL would cut the path
  if (/\u0000/.test(path)) return "contains a NUL";
  return null;
}

/**
 * The bytes of a FILE-class label query: `"label\0" label "\0" 0x02 path`,
 * with no trailing NUL.
 */
export function buildAppArmorFileQuery(
  label: string,
  path: string,
): Uint8Array {
  const labelProblem = appArmorLabelProblem(label);
  if (labelProblem !== null) throw new RangeError(`label: ${labelProblem}`);
  const pathProblem = appArmorPathProblem(path);
  if (pathProblem !== null) throw new RangeError(`path: ${pathProblem}`);
  const labelBytes = utf8(label);
  const pathBytes = utf8(path);
  const query = new Uint8Array(6 + labelBytes.length + 2 + pathBytes.length);
  query.set(utf8("label\0"), 0);
  query.set(labelBytes, 6);
  query[6 + labelBytes.length] = 0;
  query[6 + labelBytes.length + 1] = APPARMOR_CLASS_FILE;
  query.set(pathBytes, 6 + labelBytes.length + 2);
  if (query.length > APPARMOR_MAX_QUERY) {
    throw new RangeError(
      `the query is ${query.length} bytes; .access takes ${APPARMOR_MAX_QUERY}`,
    );
  }
  return query;
}

const REPLY =
  /^allow 0x([0-9a-f]{8})\ndeny 0x([0-9a-f]{8})\naudit 0x([0-9a-f]{8})\nquiet 0x([0-9a-f]{8})\n$/;

/** The four words of a label-query reply, or null when it is not one. */
export function parseAppArmorReply(bytes: Uint8Array): AppArmorReply | null {
  if (bytes.length !== APPARMOR_REPLY_LENGTH) return null;
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  const match = REPLY.exec(text);
  if (match === null) return null;
  return Object.freeze({
    allow: parseInt(match[1], 16),
    deny: parseInt(match[2], 16),
    audit: parseInt(match[3], 16),
    quiet: parseInt(match[4], 16),
  });
}

/**
 * The bits of a permission string of profile letters (`"r"`, `"rw"`), or
 * null when it is empty or has another character.
 */
export function appArmorPermissionBits(permission: string): number | null {
  if (permission.length === 0 || permission.length > 8) return null;
  let bits = 0;
  for (const letter of permission) {
    const bit = APPARMOR_PERMISSION_BITS[letter];
    if (bit === undefined || !Object.hasOwn(APPARMOR_PERMISSION_BITS, letter)) {
      return null;
    }
    bits |= bit;
  }
  return bits >>> 0;
}

/**
 * libapparmor's rule (`aa_query_label`): allowed when every requested bit is
 * allowed and not denied; audited when every requested bit is audited and
 * not quieted, where a denial counts as audited unless quieted.
 */
export function appArmorVerdict(
  reply: AppArmorReply,
  mask: number,
): { allowed: boolean; audit: boolean } {
  const allowed = ((mask & ~(reply.allow & ~reply.deny)) >>> 0) === 0;
  const audit = allowed ? reply.audit : 0xffffffff;
  return {
    allowed,
    audit: ((mask & ~(audit & ~reply.quiet)) >>> 0) === 0,
  };
}

/** Options of the AppArmor checker. */
export interface AppArmorCheckerOptions {
  /** The AppArmor directory in securityfs (`/sys/kernel/security/apparmor`). */
  directory: string;
  /** What an unconfined peer gets. */
  unconfined: "deny" | "allow";
  /** What complain mode does: allow and audit (`"allow"`) or obey the rules. */
  complain: "allow" | "enforce";
  /** Where audit records go. */
  onAudit: AuditSink;
}

/** Asks AppArmor: one transaction per question, nothing remembered. */
export class AppArmorChecker {
  readonly #files: KernelFiles;
  readonly #options: AppArmorCheckerOptions;

  /**
   * @param files The kernel files.
   * @param options Where AppArmor is and what the modes do.
   */
  constructor(files: KernelFiles, options: AppArmorCheckerOptions) {
    this.#files = files;
    this.#options = options;
  }

  /** Nothing is kept open. */
  close(): void {}

  /**
   * May the peer labelled `peerLabel` have `permission` (profile letters) on
   * the path `object`?
   *
   * @param peerLabel The peer's label as SO_PEERSEC gives it.
   * @param object An absolute path in the query namespace.
   * @param permission Profile letters, e.g. `"r"`.
   * @param fields Extra audit fields.
   */
  check(
    peerLabel: string,
    object: string,
    permission: string,
    fields: AuditFields,
  ): AccessDecision {
    const split = splitAppArmorLabel(peerLabel);
    const question = `apparmor: ${quote(split.label)}${
      split.mode === null ? "" : ` (${quote(split.mode)})`
    } ${quote(permission)} on ${quote(object)}`;
    const deny = (reason: AccessReason, why: string) =>
      decision(false, reason, "apparmor", `${question}: ${reason}: ${why}`);
    const labelProblem = appArmorLabelProblem(split.label);
    if (labelProblem !== null) return deny("invalid-subject", labelProblem);
    const pathProblem = appArmorPathProblem(object);
    if (pathProblem !== null) return deny("invalid-object", pathProblem);
    const mask = appArmorPermissionBits(permission);
    if (mask === null) {
      return deny(
        "unknown-permission",
        "not a string of AppArmor file permission letters (r w a x m k l)",
      );
    }
    if (isUnconfinedLabel(split)) {
      const allowed = this.#options.unconfined === "allow";
      return decision(
        allowed,
        "unconfined",
        "apparmor",
        `${question}: unconfined: the peer is unconfined (AppArmor would allow it everything); ${
          allowed ? "allowed" : "denied"
        } as configured (unconfined: "${this.#options.unconfined}")`,
      );
    }
    let query: Uint8Array;
    try {
      query = buildAppArmorFileQuery(split.label, object);
    } catch (error) {
      return deny("invalid-object", (error as Error).message);
    }
    const path = `${this.#options.directory}/.access`;
    let bytes: Uint8Array;
    try {
      bytes = this.#files.transact(path, query, 256);
    } catch (error) {
      const code = failureCode(error);
      const syscall = failureSyscall(error);
      const call = `${syscall || "transaction"} ${path}: ${code}`;
      if (syscall === "write" && code === "ENOENT") {
        return deny("unknown-label", `no such label is loaded (${call})`);
      }
      if (code === "EACCES" || code === "EPERM") {
        return deny(
          "query-refused",
          `this process may not ask AppArmor (its profile needs "${path} rw,") (${call})`,
        );
      }
      if (code === "EFBIG") {
        return deny("invalid-object", `the query is too long (${call})`);
      }
      return deny("unavailable", call);
    }
    const reply = parseAppArmorReply(bytes);
    if (reply === null) {
      return deny(
        "unavailable",
        `${path} answered ${bytes.length} bytes that are not a label-query reply`,
      );
    }
    const verdict = appArmorVerdict(reply, mask);
    const words = `allow=${reply.allow.toString(16)} deny=${
      reply.deny.toString(16)
    } audit=${reply.audit.toString(16)} quiet=${reply.quiet.toString(16)}`;
    let allowed = verdict.allowed;
    let reason: AccessReason = allowed ? "granted" : "denied";
    let audit = verdict.audit;
    if (
      !allowed && split.mode === "complain" &&
      this.#options.complain === "allow"
    ) {
      // AppArmor logs what complain mode lets through, whatever quiet says.
      allowed = true;
      reason = "complain";
      audit = true;
    }
    const detail = `${question}: ${reason} (${words})`;
    if (!audit) return decision(allowed, reason, "apparmor", detail);
    const message = auditUserAvcText(
      formatAppArmorAvc(
        allowed ? "ALLOWED" : "DENIED",
        split.label,
        object,
        permission,
        fields,
      ),
    );
    const made = decision(allowed, reason, "apparmor", detail, true, message);
    deliverAudit(this.#options.onAudit, made);
    return made;
  }
}
