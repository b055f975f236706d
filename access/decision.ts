/**
 * What a check answers: a frozen decision that says whether the access is
 * allowed, why, and whether the policy asks for it to be audited — never a
 * bare boolean. And the one way the access room quotes text for a person, so
 * that nothing a peer chose reaches a log or a terminal unescaped.
 *
 * @module
 */

/** The security modules the access checks speak to. */
export type AccessLsm = "selinux" | "apparmor" | "smack";

/**
 * Why a decision is what it is.
 *
 * Allowed:
 * - `granted`: the policy allows it.
 * - `permissive`: SELinux is in permissive mode; the policy would deny it.
 * - `permissive-domain`: the peer's SELinux domain is permissive; the policy
 *   would deny it.
 * - `complain`: the peer's AppArmor profile is in complain mode; the policy
 *   would deny it.
 * - `unconfined`: an unconfined AppArmor peer, allowed because the checker was
 *   told to (`unconfined: "allow"`).
 *
 * Denied:
 * - `denied`: the policy denies it.
 * - `unconfined`: an unconfined AppArmor peer (the default: AppArmor would
 *   allow it everything).
 * - `unknown-class`: the SELinux class is not in the loaded policy.
 * - `unknown-permission`: the permission is not in the policy's class, or is
 *   not one this LSM knows, or no permission is mapped to the request.
 * - `unknown-label`: the kernel does not know the peer's label (or, SELinux,
 *   the target context) in the loaded policy.
 * - `invalid-subject`, `invalid-object`: the label or object is not one that
 *   can be asked about (syntax, length), so it was not sent to the kernel.
 * - `no-label`: the peer has no label at all.
 * - `query-refused`: the kernel refused to answer this process (SELinux
 *   `compute_av` not allowed, a confined server without `.access rw`).
 * - `unavailable`: no such LSM here, its files cannot be read, or its answer
 *   was not one this code understands.
 */
export type AccessReason =
  | "granted"
  | "denied"
  | "permissive"
  | "permissive-domain"
  | "complain"
  | "unconfined"
  | "unknown-class"
  | "unknown-permission"
  | "unknown-label"
  | "invalid-subject"
  | "invalid-object"
  | "no-label"
  | "query-refused"
  | "unavailable";

/**
 * One access decision. Frozen: it may be shared, logged or cached by the
 * caller.
 */
export interface AccessDecision {
  /** Whether the access may go ahead. */
  readonly allowed: boolean;
  /** Why (see {@linkcode AccessReason}). */
  readonly reason: AccessReason;
  /**
   * Whether the policy asks for this decision to be audited (SELinux
   * `auditallow`/`dontaudit` bits, AppArmor `audit`/`quiet`, complain mode,
   * every Smack denial). When true, the checker also handed
   * {@linkcode AccessDecision.auditMessage} to its audit sink.
   */
  readonly audit: boolean;
  /** The security module that decided, or null when none could be used. */
  readonly lsm: AccessLsm | null;
  /**
   * One line for a person: what was asked and what came back. Every string a
   * peer chose is quoted and escaped (printable ASCII only).
   */
  readonly detail: string;
  /**
   * The `AUDIT_USER_AVC` message text when {@linkcode AccessDecision.audit}
   * is true (printable ASCII, every peer-chosen value encoded the way the
   * audit system encodes untrusted strings), otherwise null.
   */
  readonly auditMessage: string | null;
}

/** A frozen decision. */
export function decision(
  allowed: boolean,
  reason: AccessReason,
  lsm: AccessLsm | null,
  detail: string,
  audit = false,
  auditMessage: string | null = null,
): AccessDecision {
  return Object.freeze({
    allowed,
    reason,
    audit,
    lsm,
    detail,
    auditMessage,
  });
}

/**
 * `text` in double quotes with everything but printable ASCII escaped
 * (`\"`, `\\`, `\xNN`, `\u{N}`), cut after 512 characters: safe for any log
 * line or terminal, and unambiguous.
 */
export function quote(text: string): string {
  const limit = 512;
  let out = '"';
  let count = 0;
  for (const character of text) {
    if (count++ === limit) {
      out += `..." (${text.length} UTF-16 units)`;
      return out;
    }
    const code = character.codePointAt(0)!;
    if (character === '"' || character === "\\") out += "\\" + character;
    else if (code >= 0x20 && code <= 0x7e) out += character;
    else if (code < 0x100) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += `\\u{${code.toString(16)}}`;
  }
  return out + '"';
}
