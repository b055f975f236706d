/**
 * Smack as libsmack's `smack_have_access` asks it, without libsmack:
 * `"<subject> <object> <access>"` written to `/sys/fs/smackfs/access2` (one
 * transaction per open), `"1"` or `"0"` read back. Labels are 1 to 255
 * printable characters without `/ " \ '` or a leading `-`; access is a
 * subset of `rwxatl`, sent as the six-character form (`r-----`).
 *
 * The kernel writes no audit record for these questions and has no
 * permissive mode: every denial is audited here (Smack's own default logs
 * denials), nothing is remembered between questions (rules change without
 * notice).
 *
 * @module
 */
import {
  type AuditFields,
  type AuditSink,
  auditUserAvcText,
  deliverAudit,
  formatSmackAvc,
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

/** The longest Smack label (SMK_LONGLABEL - 1). */
export const SMACK_MAX_LABEL = 255;

const ACCESS_LETTERS = "rwxatl";

/** Why `label` is not a Smack label, or null. */
export function smackLabelProblem(label: string): string | null {
  if (label.length === 0) return "empty";
  if (label.length > SMACK_MAX_LABEL) {
    return `longer than ${SMACK_MAX_LABEL} characters`;
  }
  if (label.startsWith("-")) return "starts with -";
  if (!/^[\x21-\x7e]+$/.test(label)) {
    return "not printable ASCII without spaces";
  }
  if (/["'/\\]/.test(label)) return "contains one of / \" \\ '";
  return null;
}

/**
 * The six-character access string of `access` (letters of `rwxatl` in any
 * order or case, `-` ignored), or null when it has another character or
 * asks for nothing.
 */
export function smackAccessString(access: string): string | null {
  if (access.length > 12) return null;
  const wanted = new Set<string>();
  for (const character of access.toLowerCase()) {
    if (character === "-") continue;
    if (!ACCESS_LETTERS.includes(character)) return null;
    wanted.add(character);
  }
  if (wanted.size === 0) return null;
  let text = "";
  for (const letter of ACCESS_LETTERS) {
    text += wanted.has(letter) ? letter : "-";
  }
  return text;
}

/** `"<subject> <object> <access>"` for access2. */
export function buildSmackAccessRequest(
  subject: string,
  object: string,
  access: string,
): Uint8Array {
  for (const [name, label] of [["subject", subject], ["object", object]]) {
    const problem = smackLabelProblem(label);
    if (problem !== null) throw new RangeError(`${name} label: ${problem}`);
  }
  const normalised = smackAccessString(access);
  if (normalised === null) {
    throw new RangeError(`access ${JSON.stringify(access)} is not rwxatl`);
  }
  return utf8(`${subject} ${object} ${normalised}`);
}

/** True for `"1"`, false for `"0"` (a NUL may follow), null otherwise. */
export function parseSmackAccessReply(bytes: Uint8Array): boolean | null {
  if (bytes.length === 0 || bytes.length > 2) return null;
  if (bytes.length === 2 && bytes[1] !== 0) return null;
  if (bytes[0] === 0x31) return true;
  if (bytes[0] === 0x30) return false;
  return null;
}

/** Options of the Smack checker. */
export interface SmackCheckerOptions {
  /** The smackfs mount (default `/sys/fs/smackfs`). */
  root: string;
  /** Where audit records go. */
  onAudit: AuditSink;
}

/** Asks Smack: one transaction per question. */
export class SmackChecker {
  readonly #files: KernelFiles;
  readonly #options: SmackCheckerOptions;

  /**
   * @param files The kernel files.
   * @param options The mount and audit sink.
   */
  constructor(files: KernelFiles, options: SmackCheckerOptions) {
    this.#files = files;
    this.#options = options;
  }

  /** Nothing is kept open. */
  close(): void {}

  /**
   * May `subject` have `access` to `object`?
   *
   * @param subject The peer's label.
   * @param object The object's label.
   * @param access Access letters (`r`, `w`, `rw`, …).
   * @param fields Extra audit fields.
   */
  check(
    subject: string,
    object: string,
    access: string,
    fields: AuditFields,
  ): AccessDecision {
    const question = `smack: ${quote(subject)} ${quote(access)} on ${
      quote(object)
    }`;
    const deny = (reason: AccessReason, why: string) =>
      decision(false, reason, "smack", `${question}: ${reason}: ${why}`);
    const subjectProblem = smackLabelProblem(subject);
    if (subjectProblem !== null) return deny("invalid-subject", subjectProblem);
    const objectProblem = smackLabelProblem(object);
    if (objectProblem !== null) return deny("invalid-object", objectProblem);
    const normalised = smackAccessString(access);
    if (normalised === null) {
      return deny("unknown-permission", "not access letters of rwxatl");
    }
    const path = `${this.#options.root}/access2`;
    let bytes: Uint8Array;
    try {
      bytes = this.#files.transact(
        path,
        buildSmackAccessRequest(subject, object, normalised),
        16,
      );
    } catch (error) {
      const code = failureCode(error);
      const syscall = failureSyscall(error);
      const call = `${syscall || "transaction"} ${path}: ${code}`;
      if (syscall === "write" && code === "ENOENT") {
        // Kernels before 4.x: a label Smack has never seen.
        return this.#finish(
          false,
          "unknown-label",
          `${question}: unknown-label: Smack has never seen one of the labels (${call})`,
          subject,
          object,
          normalised,
          fields,
        );
      }
      if (code === "EACCES" || code === "EPERM") {
        return deny("query-refused", call);
      }
      return deny("unavailable", call);
    }
    const granted = parseSmackAccessReply(bytes);
    if (granted === null) {
      return deny("unavailable", `${path} answered something else than 1 or 0`);
    }
    const reason: AccessReason = granted ? "granted" : "denied";
    return this.#finish(
      granted,
      reason,
      `${question}: ${reason}`,
      subject,
      object,
      normalised,
      fields,
    );
  }

  #finish(
    allowed: boolean,
    reason: AccessReason,
    detail: string,
    subject: string,
    object: string,
    access: string,
    fields: AuditFields,
  ): AccessDecision {
    if (allowed) return decision(true, reason, "smack", detail);
    const message = auditUserAvcText(
      formatSmackAvc("denied", subject, object, access, fields),
    );
    const made = decision(false, reason, "smack", detail, true, message);
    deliverAudit(this.#options.onAudit, made);
    return made;
  }
}
