/**
 * Let the system's security policy decide: ask the loaded SELinux, AppArmor
 * or Smack policy whether a peer (by the label SO_PEERSEC gives) may do
 * something — the "userspace object manager" pattern of dbus-daemon, systemd
 * and Android's servicemanager — through the kernel's own files, without
 * libselinux, libapparmor or libsmack, in Deno, Bun and Node.
 *
 * - SELinux: `/sys/fs/selinux/access`, class and permission names mapped
 *   through `/sys/fs/selinux/class/…` and re-mapped when the status page says
 *   the policy was reloaded; enforcing mode and permissive domains honoured
 *   as libselinux does; decisions cached until a reload.
 * - AppArmor: label queries on `<securityfs>/apparmor/.access`, FILE-class
 *   questions on a path namespace of the server's
 *   (`/peersec-http/<service>/<METHOD><canonical path>`); complain mode and
 *   unconfined peers handled explicitly.
 * - Smack: `/sys/fs/smackfs/access2`, an object label per route, access
 *   letters per method.
 *
 * It fails closed where libselinux and dbus-daemon fail open: an LSM that is
 * absent or unreachable, a query the kernel refuses, a class or permission
 * the policy lacks — all deny, with a reason. Decisions say why
 * ({@linkcode AccessDecision}), and those the policy asks to audit go to an
 * audit sink as `AUDIT_USER_AVC` records: by default to the kernel's audit
 * over `NETLINK_AUDIT` when this process has `CAP_AUDIT_WRITE`, otherwise one
 * escaped line each on stderr (`onAudit` says otherwise).
 *
 * Every call is synchronous (small kernel-file transactions). In Deno, run
 * with `--allow-all`: Deno opens files under `/sys` and `/proc` (the LSM's,
 * `/proc/self/attr`) only with it; without it every check is `unavailable`
 * and `checker.problem` says `ERR_DENO_PERMISSION`.
 *
 * @example
 * ```ts
 * import { getPeerSecurityContext } from "@peersec/peersec";
 * import { createAccessChecker, createRequestAccess } from "@peersec/peersec/access";
 *
 * const checker = createAccessChecker(); // finds SELinux, AppArmor or Smack
 * if (checker.problem) console.error("every request will be denied:", checker.problem);
 * const access = createRequestAccess(checker, { apparmor: { service: "myapi" } });
 *
 * const fd = 3; // an accepted connection
 * const verdict = access.check(getPeerSecurityContext(fd), "POST", "/v1/items");
 * if (!verdict.allowed) console.error(verdict.detail);
 * ```
 *
 * @module
 */
export {
  type AccessChecker,
  type AccessCheckerOptions,
  createAccessChecker,
} from "./access/checker.ts";
export {
  canonicalRequestPath,
  createRequestAccess,
  DEFAULT_SELINUX_PERMISSIONS,
  DEFAULT_SMACK_ACCESS,
  type RequestAccess,
  type RequestAccessOptions,
  type RequestQuestion,
} from "./access/request.ts";
export type {
  AccessDecision,
  AccessLsm,
  AccessReason,
} from "./access/decision.ts";
export {
  type AccessAuditRecord,
  AUDIT_USER_AVC,
  type AuditFields,
  type AuditSink,
  auditUserAvcText,
  encodeAuditValue,
} from "./access/audit.ts";
export {
  type KernelFile,
  KernelFileError,
  type KernelFiles,
  nodeKernelFiles,
} from "./access/transport.ts";
export {
  appArmorClientRules,
  appArmorServerAbstraction,
  selinuxPolicyModule,
  type SelinuxPolicyModuleOptions,
  smackRules,
  type SmackRulesOptions,
} from "./access/templates.ts";
