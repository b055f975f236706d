/**
 * SELinux as a userspace object manager asks it, without libselinux: the
 * question goes to `/sys/fs/selinux/access` (one transaction per open), class
 * and permission names are mapped through `/sys/fs/selinux/class/…`, and the
 * status page (`/sys/fs/selinux/status`) says when the policy was reloaded
 * (the numbers may change then) or the mode changed.
 *
 * Decisions follow libselinux's `avc_has_perm` — global permissive mode and
 * permissive domains allow what the policy denies, `auditallow`/`dontaudit`
 * choose what is audited, `EINVAL` is allowed only in permissive mode — with
 * one difference: a class or permission missing from the policy is denied
 * whatever the policy's `handle_unknown` says (libselinux allows it when
 * `deny_unknown` is 0, as on Fedora).
 *
 * @module
 */
import { parseSELinuxContext } from "../mod.ts";
import {
  type AuditFields,
  type AuditSink,
  auditUserAvcText,
  deliverAudit,
  formatSelinuxAvc,
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
  type KernelFile,
  type KernelFiles,
  readSmallFile,
  utf8,
} from "./transport.ts";

/**
 * The longest write a selinuxfs transaction file takes: a page less the
 * transaction header (`SIMPLE_TRANSACTION_LIMIT - 1` on 4 KiB pages); longer
 * ones fail with EFBIG.
 */
export const SELINUX_MAX_REQUEST = 4087;

/** The answer of `/sys/fs/selinux/access`: an access vector decision. */
export interface SelinuxAccessVector {
  /** Permission bits the policy grants (bit `v - 1` for permission value `v`). */
  readonly allowed: number;
  /** Bits decided (the kernel says all: `0xffffffff`). */
  readonly decided: number;
  /** Granted bits to audit (`auditallow` rules). */
  readonly auditAllow: number;
  /** Denied bits to audit (all but `dontaudit` rules). */
  readonly auditDeny: number;
  /** The policy's sequence number when the vector was computed. */
  readonly seqno: number;
  /** `1` when the source domain is permissive (`AVD_FLAGS_PERMISSIVE`). */
  readonly flags: number;
}

/** The selinuxfs status page (`struct selinux_kernel_status`, version 1). */
export interface SelinuxStatus {
  /** Layout version: 1. */
  readonly version: number;
  /** Odd while the kernel updates the page; changes with every update. */
  readonly sequence: number;
  /** 1 enforcing, 0 permissive. */
  readonly enforcing: number;
  /** Policy load counter (0 until the first load after the page was made). */
  readonly policyload: number;
  /** 1 when the policy denies unknown classes and permissions. */
  readonly denyUnknown: number;
}

/** AVD_FLAGS_PERMISSIVE: the source domain is permissive. */
export const SELINUX_FLAG_PERMISSIVE = 1;

/** `"<source> <target> <class> <requested hex>"`, as libselinux writes it. */
export function buildSelinuxAccessRequest(
  source: string,
  target: string,
  classValue: number,
  requested: number,
): Uint8Array {
  for (const [name, context] of [["source", source], ["target", target]]) {
    const problem = selinuxContextProblem(context);
    if (problem !== null) throw new RangeError(`${name} context: ${problem}`);
  }
  if (!Number.isInteger(classValue) || classValue < 1 || classValue > 0xffff) {
    throw new RangeError(`class value ${classValue} is not 1 to 65535`);
  }
  if (!Number.isInteger(requested) || requested < 0 || requested > 0xffffffff) {
    throw new RangeError(`requested vector ${requested} is not a u32`);
  }
  const bytes = utf8(
    `${source} ${target} ${classValue} ${requested.toString(16)}`,
  );
  if (bytes.length > SELINUX_MAX_REQUEST) {
    throw new RangeError(
      `the request is ${bytes.length} bytes; selinuxfs takes ${SELINUX_MAX_REQUEST}`,
    );
  }
  return bytes;
}

const HEX = "([0-9a-f]{1,8})";
/**
 * `"%x %x %x %x %u %x"` (the sixth field since 2.6.30; five are read with
 * flags 0, as libselinux does). No newline; a trailing NUL is tolerated.
 */
const ACCESS_REPLY = new RegExp(
  `^${HEX} ${HEX} ${HEX} ${HEX} ([0-9]{1,10})(?: ${HEX})?\\0?$`,
);

/** The access vector in a reply of `/sys/fs/selinux/access`, or null. */
export function parseSelinuxAccessReply(
  bytes: Uint8Array,
): SelinuxAccessVector | null {
  if (bytes.length === 0 || bytes.length > 80) return null;
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  const match = ACCESS_REPLY.exec(text);
  if (match === null) return null;
  const seqno = Number(match[5]);
  if (seqno > 0xffffffff) return null;
  return Object.freeze({
    allowed: parseInt(match[1], 16),
    decided: parseInt(match[2], 16),
    auditAllow: parseInt(match[3], 16),
    auditDeny: parseInt(match[4], 16),
    seqno,
    flags: match[6] === undefined ? 0 : parseInt(match[6], 16),
  });
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The status page's five words (native byte order), or null when short. */
export function parseSelinuxStatus(bytes: Uint8Array): SelinuxStatus | null {
  if (bytes.length < 20) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 20);
  const word = (index: number) => view.getUint32(index * 4, LITTLE_ENDIAN);
  return {
    version: word(0),
    sequence: word(1),
    enforcing: word(2),
    policyload: word(3),
    denyUnknown: word(4),
  };
}

/** A decimal selinuxfs value (`class/<c>/index`, `perms/<p>`) from 1 to max. */
export function parsePolicyValue(
  bytes: Uint8Array,
  max: number,
): number | null {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  const match = /^([0-9]{1,5})\n?\0?$/.exec(text);
  if (match === null) return null;
  const value = Number(match[1]);
  return value >= 1 && value <= max ? value : null;
}

/** A class or permission name: a policy identifier, never a path. */
const POLICY_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Why `name` cannot be a class or permission name, or null. */
export function policyNameProblem(name: string): string | null {
  return POLICY_NAME.test(name)
    ? null
    : "not a policy identifier (letters, digits, _; at most 128)";
}

/**
 * Why `context` cannot be sent to selinuxfs, or null: it must be a valid
 * context (`parseSELinuxContext`), printable ASCII with no space (the kernel
 * splits the request at spaces), and short enough.
 */
export function selinuxContextProblem(context: string): string | null {
  if (context.length === 0) return "empty";
  if (context.length > SELINUX_MAX_REQUEST - 16) return "too long";
  if (!/^[\x21-\x7e]+$/.test(context)) {
    return "not printable ASCII without spaces";
  }
  try {
    parseSELinuxContext(context);
  } catch (error) {
    return (error as Error).message;
  }
  return null;
}

/** What the decision rules make of an access vector. */
export interface SelinuxVerdict {
  /** Whether the access may go ahead. */
  readonly allowed: boolean;
  /** granted, denied, permissive or permissive-domain. */
  readonly reason: "granted" | "denied" | "permissive" | "permissive-domain";
  /** Whether the policy asks for it to be audited. */
  readonly audit: boolean;
}

/**
 * libselinux's rules (`avc_has_perm_noaudit`, `avc_audit`): the requested
 * bits the vector does not allow are denied; a denial goes ahead in
 * permissive mode or for a permissive domain; a denial is audited when its
 * bits are in `auditDeny`, a grant when they are in `auditAllow`.
 *
 * @param vector The kernel's answer.
 * @param requested The requested permission bits (non-zero).
 * @param enforcing Whether SELinux is enforcing.
 */
export function selinuxVerdict(
  vector: SelinuxAccessVector,
  requested: number,
  enforcing: boolean,
): SelinuxVerdict {
  const denied = (requested & ~vector.allowed) >>> 0;
  if (requested !== 0 && denied === 0) {
    return {
      allowed: true,
      reason: "granted",
      audit: ((requested & vector.auditAllow) >>> 0) !== 0,
    };
  }
  const audit = requested === 0 || ((denied & vector.auditDeny) >>> 0) !== 0;
  if (!enforcing) return { allowed: true, reason: "permissive", audit };
  if ((vector.flags & SELINUX_FLAG_PERMISSIVE) !== 0) {
    return { allowed: true, reason: "permissive-domain", audit };
  }
  return { allowed: false, reason: "denied", audit };
}

/** Decisions remembered per (source, target) until the policy changes. */
const CACHE_LIMIT = 4096;

/** Options of the SELinux checker. */
export interface SelinuxCheckerOptions {
  /** The selinuxfs mount (default `/sys/fs/selinux`). */
  root: string;
  /** The object class asked about. */
  className: string;
  /** Where audit records go. */
  onAudit: AuditSink;
}

/**
 * Asks SELinux. One per process is enough: it keeps the status page open and
 * remembers class values, permission bits and access vectors until the
 * status page says the policy (or mode) changed.
 */
export class SelinuxChecker {
  readonly #files: KernelFiles;
  readonly #root: string;
  readonly #className: string;
  readonly #onAudit: AuditSink;
  #status: KernelFile | null = null;
  readonly #first = new Uint8Array(20);
  readonly #second = new Uint8Array(20);
  /** The status sequence the remembered values belong to. */
  #sequence = -1;
  #classValue: number | null = null;
  readonly #bits = new Map<string, number>();
  readonly #vectors = new Map<string, SelinuxAccessVector>();

  /**
   * @param files The kernel files.
   * @param options The mount, class and audit sink.
   */
  constructor(files: KernelFiles, options: SelinuxCheckerOptions) {
    this.#files = files;
    this.#root = options.root;
    this.#className = options.className;
    this.#onAudit = options.onAudit;
  }

  /** The class this checker asks about. */
  get className(): string {
    return this.#className;
  }

  /** Releases the status page. */
  close(): void {
    this.#status?.close();
    this.#status = null;
  }

  /** A consistent read of the status page, or why there is none. */
  readStatus(): SelinuxStatus | string {
    const path = `${this.#root}/status`;
    if (this.#status === null) {
      try {
        this.#status = this.#files.open(path);
      } catch (error) {
        return `cannot open ${path} (${failureCode(error)})`;
      }
    }
    for (let attempt = 0; attempt < 64; attempt++) {
      let first: SelinuxStatus | null;
      let second: SelinuxStatus | null;
      try {
        first = parseSelinuxStatus(
          this.#first.subarray(0, this.#status.readAt(this.#first, 0)),
        );
        second = parseSelinuxStatus(
          this.#second.subarray(0, this.#status.readAt(this.#second, 0)),
        );
      } catch (error) {
        this.close();
        return `cannot read ${path} (${failureCode(error)})`;
      }
      if (first === null || second === null) {
        return `${path} is shorter than its 20 bytes`;
      }
      if (first.version !== 1) {
        return `${path} has layout version ${first.version}, not 1`;
      }
      if (
        first.sequence % 2 === 0 && first.sequence === second.sequence &&
        first.enforcing === second.enforcing &&
        first.policyload === second.policyload
      ) {
        return second;
      }
    }
    return `${path} kept changing while it was read`;
  }

  /** Forgets everything remembered when the status page changed. */
  #follow(status: SelinuxStatus): void {
    if (status.sequence === this.#sequence) return;
    this.#sequence = status.sequence;
    this.#classValue = null;
    this.#bits.clear();
    this.#vectors.clear();
  }

  /** A policy value file, as a number, or the reason it cannot be had. */
  #policyValue(
    path: string,
    max: number,
  ): number | { reason: AccessReason; detail: string } {
    let bytes: Uint8Array;
    try {
      bytes = readSmallFile(this.#files, path, 64);
    } catch (error) {
      const code = failureCode(error);
      return code === "ENOENT"
        ? { reason: "unknown-class", detail: `${path} does not exist` }
        : { reason: "unavailable", detail: `cannot read ${path} (${code})` };
    }
    const value = parsePolicyValue(bytes, max);
    return value === null
      ? {
        reason: "unavailable",
        detail: `${path} holds no value from 1 to ${max}`,
      }
      : value;
  }

  /**
   * May `source` have `permission` of the checker's class on `target`?
   *
   * @param source The peer's context (SO_PEERSEC).
   * @param target The object's context.
   * @param permission A permission of the class.
   * @param fields Extra audit fields.
   */
  check(
    source: string,
    target: string,
    permission: string,
    fields: AuditFields,
  ): AccessDecision {
    const question = `selinux: ${quote(source)} -> ${quote(target)} ${
      quote(this.#className)
    } { ${quote(permission)} }`;
    const deny = (reason: AccessReason, why: string) =>
      decision(false, reason, "selinux", `${question}: ${reason}: ${why}`);
    const sourceProblem = selinuxContextProblem(source);
    if (sourceProblem !== null) return deny("invalid-subject", sourceProblem);
    const targetProblem = selinuxContextProblem(target);
    if (targetProblem !== null) return deny("invalid-object", targetProblem);
    if (policyNameProblem(permission) !== null) {
      return deny("unknown-permission", "not a policy identifier");
    }
    const classDirectory = `${this.#root}/class/${this.#className}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const status = this.readStatus();
      if (typeof status === "string") return deny("unavailable", status);
      this.#follow(status);
      if (this.#classValue === null) {
        const value = this.#policyValue(`${classDirectory}/index`, 0xffff);
        if (typeof value !== "number") {
          return deny(
            value.reason,
            value.reason === "unknown-class"
              ? `the loaded policy has no class ${this.#className} (denied whatever handle_unknown says)`
              : value.detail,
          );
        }
        this.#classValue = value;
      }
      let bit = this.#bits.get(permission);
      if (bit === undefined) {
        const value = this.#policyValue(
          `${classDirectory}/perms/${permission}`,
          32,
        );
        if (typeof value !== "number") {
          return deny(
            value.reason === "unknown-class"
              ? "unknown-permission"
              : value.reason,
            value.reason === "unknown-class"
              ? `class ${this.#className} has no permission ${permission} in the loaded policy`
              : value.detail,
          );
        }
        bit = 2 ** (value - 1);
        this.#bits.set(permission, bit);
      }
      const key = `${source} ${target}`;
      let vector = this.#vectors.get(key);
      if (vector === undefined) {
        const path = `${this.#root}/access`;
        let reply: Uint8Array;
        try {
          reply = this.#files.transact(
            path,
            buildSelinuxAccessRequest(source, target, this.#classValue, bit),
            4096,
          );
        } catch (error) {
          return this.#failure(
            error,
            path,
            question,
            status,
            source,
            target,
            permission,
            fields,
          );
        }
        const parsed = parseSelinuxAccessReply(reply);
        if (parsed === null) {
          return deny(
            "unavailable",
            `${path} answered something else than an access vector`,
          );
        }
        const after = this.readStatus();
        if (typeof after === "string") return deny("unavailable", after);
        // The policy changed while the question was asked: the class value
        // may have been another class's. Ask again.
        if (after.sequence !== status.sequence) continue;
        if (this.#vectors.size >= CACHE_LIMIT) {
          this.#vectors.delete(this.#vectors.keys().next().value!);
        }
        vector = parsed;
        this.#vectors.set(key, vector);
      }
      const enforcing = status.enforcing !== 0;
      const verdict = selinuxVerdict(vector, bit, enforcing);
      const detail = `${question}: ${verdict.reason} (allowed=${
        vector.allowed.toString(16)
      } auditallow=${vector.auditAllow.toString(16)} auditdeny=${
        vector.auditDeny.toString(16)
      } flags=${vector.flags} seqno=${vector.seqno}, ${
        enforcing ? "enforcing" : "permissive"
      })`;
      return this.#finish(
        verdict.allowed,
        verdict.reason,
        verdict.audit,
        detail,
        verdict.reason === "granted" ? "granted" : "denied",
        verdict.reason !== "denied",
        source,
        target,
        permission,
        fields,
      );
    }
    return deny(
      "unavailable",
      "the policy changed during three attempts to ask it",
    );
  }

  #failure(
    error: unknown,
    path: string,
    question: string,
    status: SelinuxStatus,
    source: string,
    target: string,
    permission: string,
    fields: AuditFields,
  ): AccessDecision {
    const code = failureCode(error);
    const call = `${failureSyscall(error) || "transaction"} ${path}: ${code}`;
    if (code === "EINVAL" && failureSyscall(error) === "write") {
      // A context the loaded policy does not know. libselinux allows this
      // in permissive mode only, and audits it as a permissive denial.
      if (status.enforcing === 0) {
        return this.#finish(
          true,
          "permissive",
          true,
          `${question}: permissive: the policy does not know one of the contexts (${call})`,
          "denied",
          true,
          source,
          target,
          permission,
          fields,
        );
      }
      // Denied, and audited as libselinux audits it (a vector of nothing).
      return this.#finish(
        false,
        "unknown-label",
        true,
        `${question}: unknown-label: the loaded policy does not know the source or target context (${call})`,
        "denied",
        false,
        source,
        target,
        permission,
        fields,
      );
    }
    if (code === "EACCES" || code === "EPERM") {
      return decision(
        false,
        "query-refused",
        "selinux",
        `${question}: query-refused: this process may not ask the policy (security:compute_av, or selinuxfs rw) (${call})`,
      );
    }
    if (code === "EFBIG") {
      return decision(
        false,
        "invalid-subject",
        "selinux",
        `${question}: invalid-subject: the request is too long (${call})`,
      );
    }
    return decision(
      false,
      "unavailable",
      "selinux",
      `${question}: unavailable (${call})`,
    );
  }

  #finish(
    allowed: boolean,
    reason: AccessReason,
    audit: boolean,
    detail: string,
    result: "granted" | "denied",
    permissive: boolean,
    source: string,
    target: string,
    permission: string,
    fields: AuditFields,
  ): AccessDecision {
    if (!audit) return decision(allowed, reason, "selinux", detail);
    const message = auditUserAvcText(
      formatSelinuxAvc(
        result,
        [permission],
        fields,
        source,
        target,
        this.#className,
        permissive,
      ),
    );
    const made = decision(allowed, reason, "selinux", detail, true, message);
    deliverAudit(this.#onAudit, made);
    return made;
  }
}
