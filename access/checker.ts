/**
 * The entry point of the access checks: find the security module this
 * kernel runs (or the one asked for), and hand every question to it. Nothing
 * here throws for what the kernel or a peer does — an LSM that is missing or
 * unreachable gives `unavailable` decisions, which deny.
 *
 * @module
 */
import {
  auditDestination,
  type AuditFields,
  type AuditSink,
  checkAuditFields,
  systemAudit,
} from "./audit.ts";
import { AppArmorChecker } from "./apparmor.ts";
import {
  type AccessDecision,
  type AccessLsm,
  decision,
  quote,
} from "./decision.ts";
import { policyNameProblem, SelinuxChecker } from "./selinux.ts";
import { SmackChecker } from "./smack.ts";
import {
  failureCode,
  fromUtf8,
  type KernelFiles,
  nodeKernelFiles,
  readSmallFile,
} from "./transport.ts";

/** How {@linkcode createAccessChecker} is set up. */
export interface AccessCheckerOptions {
  /**
   * Which LSM to ask: `"auto"` (default) uses the one this kernel runs
   * (SELinux, Smack or AppArmor; the order of securityfs's `lsm` file when
   * it is readable); naming one uses only that one, and every check is
   * `unavailable` when it is not there.
   */
  lsm?: "auto" | AccessLsm;
  /** The SELinux object class asked about (default `"peersec_http"`). */
  selinuxClass?: string;
  /**
   * AppArmor: what an unconfined peer gets. The kernel answers "allowed" to
   * everything for it, so the default is `"deny"`; `"allow"` lets it through
   * (with `reason: "unconfined"`), e.g. where an allow-list also decides.
   */
  unconfined?: "deny" | "allow";
  /**
   * AppArmor: what a peer in complain mode gets when its rules deny:
   * `"allow"` (default; allowed and audited, as AppArmor itself does) or
   * `"enforce"` (denied, as if enforcing).
   */
  complain?: "allow" | "enforce";
  /**
   * Where audit records go: `"system"` (default; the kernel's audit, as an
   * `AUDIT_USER_AVC` netlink message, when this process may write audit
   * records — `CAP_AUDIT_WRITE` in the initial user namespace — and the
   * stderr line otherwise; see `auditDestination`), `"stderr"` (one
   * `peersec-access: type=USER_AVC …` line each), `"ignore"`, or a function
   * that takes each audit record (`AccessAuditRecord`).
   */
  onAudit?: AuditSink;
  /** The kernel files (default: the real ones, through node:fs). For tests. */
  files?: KernelFiles;
}

/**
 * Asks the loaded LSM policy whether a peer may do something. Made once (it
 * keeps the SELinux status page open and caches decisions until the policy
 * changes); every method is synchronous.
 */
export interface AccessChecker {
  /** The LSM asked, or null when none could be found. */
  readonly lsm: AccessLsm | null;
  /**
   * Why no LSM can be asked (every check is then `unavailable`), or null.
   * Worth logging at start.
   */
  readonly problem: string | null;
  /** The SELinux class asked about. */
  readonly selinuxClass: string;
  /**
   * Where audit records go now: `"system"` (the kernel's audit), `"stderr"`,
   * `"ignore"` or `"function"`. With the `"system"` sink, reading it decides
   * (once per process; see `onAudit`), and it turns to `"stderr"` for good
   * when the kernel refuses a record.
   */
  readonly auditDestination: "system" | "stderr" | "ignore" | "function";
  /**
   * Why the `"system"` sink writes to stderr instead of the audit system
   * (`"this process lacks CAP_AUDIT_WRITE …"`, the kernel's refusal), or
   * null. Worth logging at start.
   */
  readonly auditProblem: string | null;
  /**
   * May the peer labelled `subject` have `permission` on `object`?
   *
   * - SELinux: `object` is the target context, `permission` a permission of
   *   the checker's class (`"get"`).
   * - AppArmor: `object` is an absolute path in a namespace of the server's
   *   (see {@linkcode createRequestAccess}), `permission` profile letters
   *   (`"r"`).
   * - Smack: `object` is the object's label, `permission` access letters
   *   (`"r"`, `"w"`, any of `rwxatl`).
   *
   * @param subject The peer's label as SO_PEERSEC gives it; null or
   *   undefined when it has none (`no-label`, denied).
   * @param object What is accessed.
   * @param permission What is asked for.
   * @param auditFields Extra fields for the audit record (`{ method: "GET",
   *   path: "/v1/x" }`); strings are encoded as untrusted.
   * @returns The decision; never throws for what the kernel or the peer did.
   * @throws {TypeError} when an argument has the wrong type.
   * @throws {RangeError} for an audit field name that is not a lowercase
   *   identifier, or is one the record uses itself.
   */
  check(
    subject: string | null | undefined,
    object: string,
    permission: string,
    auditFields?: AuditFields,
  ): AccessDecision;
  /**
   * This process's own label for the LSM asked (`/proc/self/attr/…`), or
   * null when it cannot be read: SELinux and Smack servers use it as the
   * default object.
   */
  ownLabel(): string | null;
  /** Releases what the checker keeps open; later checks reopen it. */
  close(): void;
}

interface Backend {
  check(
    subject: string,
    object: string,
    permission: string,
    fields: AuditFields,
  ): AccessDecision;
  close(): void;
}

/** One line of /proc/self/mounts: where and what. */
export interface MountEntry {
  /** The mount point, with the kernel's octal escapes undone. */
  readonly mountPoint: string;
  /** The filesystem type. */
  readonly type: string;
  /** Mount options. */
  readonly options: readonly string[];
}

/** The lines of /proc/self/mounts (`\040` and the like decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (field: string) =>
    field.replace(
      /\\([0-7]{3})/g,
      (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
    );
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 4) continue;
    entries.push({
      mountPoint: unescape(fields[1]),
      type: fields[2],
      options: fields[3].split(","),
    });
  }
  return entries;
}

/** Where each LSM's files are, from the mounts (or the usual places). */
export interface LsmLocations {
  /** The selinuxfs mount. */
  readonly selinux: string;
  /** The smackfs mount. */
  readonly smack: string;
  /** The securityfs mount. */
  readonly securityfs: string;
  /** Whether /proc/self/mounts named them (false: the usual places). */
  readonly fromMounts: boolean;
}

/** The LSM mounts in `mounts`; the first of each type wins. */
export function locateLsms(mounts: readonly MountEntry[] | null): LsmLocations {
  const find = (type: string, fallback: string) =>
    mounts?.find((entry) => entry.type === type)?.mountPoint ?? fallback;
  return {
    selinux: find("selinuxfs", "/sys/fs/selinux"),
    smack: find("smackfs", "/sys/fs/smackfs"),
    securityfs: find("securityfs", "/sys/kernel/security"),
    fromMounts: mounts !== null,
  };
}

function readText(
  files: KernelFiles,
  path: string,
  limit: number,
): string | null {
  try {
    return fromUtf8(readSmallFile(files, path, limit));
  } catch {
    return null;
  }
}

function canOpen(files: KernelFiles, path: string): string | null {
  try {
    files.open(path).close();
    return null;
  } catch (error) {
    return failureCode(error);
  }
}

/** Whether an LSM's files are there, or why not. */
function probe(
  files: KernelFiles,
  lsm: AccessLsm,
  where: LsmLocations,
): string | null {
  switch (lsm) {
    case "selinux": {
      const code = canOpen(files, `${where.selinux}/status`);
      return code === null
        ? null
        : `no selinuxfs at ${where.selinux} (${where.selinux}/status: ${code})`;
    }
    case "smack": {
      const code = canOpen(files, `${where.smack}/access2`);
      return code === null
        ? null
        : `no smackfs with access2 at ${where.smack} (${code})`;
    }
    case "apparmor": {
      const enabled = readText(
        files,
        "/sys/module/apparmor/parameters/enabled",
        16,
      );
      if (enabled !== null && !enabled.startsWith("Y")) {
        return "AppArmor is built in but not enabled (/sys/module/apparmor/parameters/enabled)";
      }
      const code = canOpen(files, `${where.securityfs}/apparmor/profiles`);
      if (code !== null && code !== "EACCES" && code !== "EPERM") {
        return `no AppArmor directory in securityfs at ${where.securityfs}/apparmor (${code})`;
      }
      return enabled === null && code !== null
        ? `AppArmor cannot be seen here (${code})`
        : null;
    }
  }
}

const LSM_NAMES: readonly AccessLsm[] = ["selinux", "smack", "apparmor"];

/** The LSM to ask and where, or why none. */
function detect(
  files: KernelFiles,
  wanted: "auto" | AccessLsm,
): { lsm: AccessLsm; where: LsmLocations } | {
  lsm: AccessLsm | null;
  problem: string;
} {
  const mountsText = readText(files, "/proc/self/mounts", 4 * 2 ** 20);
  const where = locateLsms(
    mountsText === null ? null : parseMounts(mountsText),
  );
  if (wanted !== "auto") {
    const problem = probe(files, wanted, where);
    return problem === null ? { lsm: wanted, where } : { lsm: wanted, problem };
  }
  // securityfs's `lsm` lists the active LSMs in order; without it, try each.
  const active = readText(files, `${where.securityfs}/lsm`, 4096);
  const order = active === null
    ? LSM_NAMES
    : active.trim().split(",").filter((name): name is AccessLsm =>
      (LSM_NAMES as readonly string[]).includes(name)
    );
  const problems: string[] = [];
  for (const lsm of order) {
    const problem = probe(files, lsm, where);
    if (problem === null) return { lsm, where };
    problems.push(problem);
  }
  return {
    lsm: null,
    problem: active === null
      ? `no SELinux, Smack or AppArmor found: ${problems.join("; ")}`
      : `no SELinux, Smack or AppArmor among the active LSMs (${
        quote(active.trim())
      })${problems.length ? ": " + problems.join("; ") : ""}`,
  };
}

function checkChoice<T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (
    typeof value !== "string" || !(choices as readonly string[]).includes(value)
  ) {
    throw new TypeError(
      `${name} must be one of ${
        choices.map((choice) => `"${choice}"`).join(", ")
      }`,
    );
  }
  return value as T;
}

function checkFiles(files: unknown): KernelFiles {
  if (files === undefined) return nodeKernelFiles;
  const candidate = files as KernelFiles | null;
  if (
    candidate === null || typeof candidate !== "object" ||
    typeof candidate.open !== "function" ||
    typeof candidate.transact !== "function"
  ) {
    throw new TypeError("files must have open() and transact()");
  }
  return candidate;
}

function checkSink(sink: unknown): AuditSink {
  if (sink === undefined) return "system";
  if (
    sink === "system" || sink === "stderr" || sink === "ignore" ||
    typeof sink === "function"
  ) {
    return sink as AuditSink;
  }
  throw new TypeError(
    'onAudit must be "system", "stderr", "ignore" or a function',
  );
}

/**
 * Makes a checker that asks the loaded LSM policy (see
 * {@linkcode AccessChecker}). Never throws for the system it runs on: where
 * no LSM can be asked, `checker.problem` says why and every check is
 * `unavailable` (denied).
 *
 * @param options Which LSM, SELinux class, AppArmor modes, audit sink.
 * @returns The checker.
 * @throws {TypeError} for an option of the wrong type or value.
 * @throws {RangeError} for a `selinuxClass` that is not a policy identifier.
 *
 * @example
 * ```ts
 * import { createAccessChecker } from "@peersec/peersec/access";
 *
 * const checker = createAccessChecker({ onAudit: (record) => console.error(record.text) });
 * // SELinux: may this peer `get` (class peersec_http) on this server's context?
 * const decision = checker.check(
 *   "system_u:system_r:backup_t:s0",
 *   checker.ownLabel() ?? "system_u:system_r:myapi_t:s0",
 *   "get",
 * );
 * console.log(decision.allowed, decision.reason, decision.detail);
 * ```
 */
export function createAccessChecker(
  options: AccessCheckerOptions = {},
): AccessChecker {
  if (options === null || typeof options !== "object") {
    throw new TypeError("createAccessChecker takes an options object");
  }
  const files = checkFiles(options.files);
  const wanted = checkChoice(
    "lsm",
    options.lsm,
    ["auto", "selinux", "apparmor", "smack"] as const,
    "auto",
  );
  const unconfined = checkChoice(
    "unconfined",
    options.unconfined,
    ["deny", "allow"] as const,
    "deny",
  );
  const complain = checkChoice(
    "complain",
    options.complain,
    ["allow", "enforce"] as const,
    "allow",
  );
  const onAudit = checkSink(options.onAudit);
  const selinuxClass = options.selinuxClass ?? "peersec_http";
  if (typeof selinuxClass !== "string") {
    throw new TypeError("selinuxClass must be a string");
  }
  if (policyNameProblem(selinuxClass) !== null) {
    throw new RangeError(
      `selinuxClass ${JSON.stringify(selinuxClass)} is not a policy identifier`,
    );
  }
  const found = detect(files, wanted);
  let backend: Backend | null = null;
  let problem: string | null = null;
  if ("problem" in found) {
    problem = found.problem;
  } else if (found.lsm === "selinux") {
    backend = new SelinuxChecker(files, {
      root: found.where.selinux,
      className: selinuxClass,
      onAudit,
    });
  } else if (found.lsm === "smack") {
    backend = new SmackChecker(files, { root: found.where.smack, onAudit });
  } else {
    backend = new AppArmorChecker(files, {
      directory: `${found.where.securityfs}/apparmor`,
      unconfined,
      complain,
      onAudit,
    });
  }
  const lsm = found.lsm;
  return Object.freeze({
    lsm,
    problem,
    selinuxClass,
    get auditDestination(): "system" | "stderr" | "ignore" | "function" {
      return auditDestination(onAudit);
    },
    get auditProblem(): string | null {
      return onAudit === "system" && systemAudit.destination === "stderr"
        ? systemAudit.problem
        : null;
    },
    check(
      subject: string | null | undefined,
      object: string,
      permission: string,
      auditFields?: AuditFields,
    ): AccessDecision {
      if (
        subject !== null && subject !== undefined && typeof subject !== "string"
      ) {
        throw new TypeError(
          "check: subject must be a string, null or undefined",
        );
      }
      if (typeof object !== "string") {
        throw new TypeError("check: object must be a string");
      }
      if (typeof permission !== "string") {
        throw new TypeError("check: permission must be a string");
      }
      const fields = checkAuditFields(auditFields);
      if (backend === null) {
        return decision(false, "unavailable", lsm, `unavailable: ${problem}`);
      }
      if (subject === null || subject === undefined) {
        return decision(
          false,
          "no-label",
          lsm,
          `${lsm}: no-label: the peer has no security label`,
        );
      }
      return backend.check(subject, object, permission, fields);
    },
    ownLabel(): string | null {
      if (lsm === null) return null;
      for (
        const path of [
          `/proc/self/attr/${lsm}/current`,
          "/proc/self/attr/current",
        ]
      ) {
        const text = readText(files, path, 8192);
        if (text === null) continue;
        const label = text.replace(/\n$/, "").replace(/\0$/, "");
        if (label !== "") return label;
      }
      return null;
    },
    close(): void {
      backend?.close();
    },
  });
}
