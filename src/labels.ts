/**
 * Parsers for the label grammars: SELinux contexts and AppArmor labels.
 * Pure functions; no FFI. Smack labels are plain strings (at most 255 bytes,
 * no internal structure) and need no parser.
 *
 * @module
 */
import { PeerSecError } from "./errors.ts";

/** The four fields of an SELinux security context. */
export interface SELinuxContext {
  /** SELinux user, e.g. `system_u`. */
  user: string;
  /** Role, e.g. `system_r`. */
  role: string;
  /** Type (domain), e.g. `sshd_t`. */
  type: string;
  /** MLS/MCS level or range, e.g. `s0-s0:c0.c1023`; `null` when the policy has no MLS. */
  level: string | null;
}

/** One profile of an AppArmor label, with the policy namespace it lives in. */
export interface AppArmorProfile {
  /**
   * The profile's policy namespace as the kernel names it relative to the
   * reader's (`"podman"`, `"a//b"` for a nested one), or `null` for the
   * reader's own namespace.
   */
  namespace: string | null;
  /** The profile's name, e.g. `/usr/sbin/nginx` or `parent//hat`. */
  name: string;
}

/** An AppArmor label, split into its parts. */
export interface AppArmorLabel {
  /**
   * The profiles: one, or several for a stack (`a//&b`), each with its own
   * namespace. The kernel writes a `:ns:` prefix only where the namespace
   * changes (a label's profiles are sorted by namespace), so in
   * `a//&:ns:b//&c` both `b` and `c` are in `ns` — compare namespace and name
   * together, never a name alone.
   */
  profiles: AppArmorProfile[];
  /** `enforce`, `complain`, `kill`, `unconfined`, `mixed`, … or `null` when the label has none (`unconfined`). */
  mode: string | null;
  /** The namespace of the first profile (`null`: the reader's own). */
  namespace: string | null;
}

function checkString(name: string, label: unknown): string {
  if (typeof label !== "string") {
    throw new TypeError(
      `${name} takes a string, got ${label === null ? "null" : typeof label}`,
    );
  }
  // /proc/<pid>/attr/current ends its text with a newline (AppArmor) or a
  // NUL (SELinux): accept the label as that file gives it.
  return label.replace(/\n$/, "").replace(/\0$/, "");
}

/** C0 controls, DEL and C1 controls: never part of a label a person may read. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

function malformed(kind: string, label: string, why: string): PeerSecError {
  return new PeerSecError(
    `not ${kind}: ${JSON.stringify(label)} (${why})`,
    { code: "ERR_MALFORMED_LABEL" },
  );
}

/** user, role and type: policy identifiers (letters, digits, `_`, `.`, `-`). */
const SELINUX_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** One category or a range of them: `c5`, `c0.c1023`. */
const CATEGORY = String.raw`c(\d+)(?:\.c(\d+))?`;
/** A level: a sensitivity and optional categories, `s0` or `s0:c0.c3,c7`. */
const LEVEL = String.raw`s\d+(?::${CATEGORY}(?:,${CATEGORY})*)?`;
/** A level or a range of two levels: `s0-s15:c0.c1023`. */
const SELINUX_LEVEL = new RegExp(`^${LEVEL}(?:-${LEVEL})?$`);

/** Why a level is not one, or null when it is. */
function levelProblem(level: string): string | null {
  if (level === "") return "empty level";
  if (!SELINUX_LEVEL.test(level)) {
    return `invalid level ${JSON.stringify(level)} (expected ` +
      "sensitivity[:categories][-sensitivity[:categories]], e.g. s0-s0:c0.c1023)";
  }
  // A category range runs upwards: c5.c3 is not one.
  for (const [, low, high] of level.matchAll(/c(\d+)\.c(\d+)/g)) {
    if (Number(high) <= Number(low)) {
      return `invalid category range c${low}.c${high}`;
    }
  }
  return null;
}

/**
 * Splits and validates an SELinux security context `user:role:type[:level]`.
 * The level (MLS/MCS) may itself contain colons (`s0-s0:c0.c1023`):
 * everything after the third colon is the level, which must be
 * `sensitivity[:categories][-sensitivity[:categories]]` with categories `cN`,
 * `cN.cM` (N < M) and comma lists of them. Control characters are refused.
 *
 * @param context A context as SO_PEERSEC or `/proc/<pid>/attr/current` gives it
 *   (one trailing newline or NUL is accepted).
 * @returns The four fields.
 * @throws {TypeError} when `context` is not a string.
 * @throws {PeerSecError} with code `ERR_MALFORMED_LABEL` when it is not a context.
 *
 * @example
 * ```ts
 * import { parseSELinuxContext } from "@peersec/peersec";
 *
 * const { type, level } = parseSELinuxContext("system_u:system_r:sshd_t:s0-s0:c0.c1023");
 * // type === "sshd_t", level === "s0-s0:c0.c1023"
 * ```
 */
export function parseSELinuxContext(context: string): SELinuxContext {
  const text = checkString("parseSELinuxContext", context);
  if (CONTROL_CHARACTER.test(text)) {
    throw malformed("an SELinux context", context, "control characters");
  }
  const first = text.indexOf(":");
  const second = text.indexOf(":", first + 1);
  if (first === -1 || second === -1) {
    throw malformed(
      "an SELinux context",
      context,
      "expected user:role:type[:level]",
    );
  }
  const third = text.indexOf(":", second + 1);
  const user = text.slice(0, first);
  const role = text.slice(first + 1, second);
  const type = third === -1
    ? text.slice(second + 1)
    : text.slice(second + 1, third);
  const level = third === -1 ? null : text.slice(third + 1);
  for (
    const [name, value] of [["user", user], ["role", role], ["type", type]]
  ) {
    if (!SELINUX_NAME.test(value)) {
      throw malformed(
        "an SELinux context",
        context,
        value === ""
          ? `empty ${name}`
          : `invalid ${name} ${JSON.stringify(value)}`,
      );
    }
  }
  const problem = level === null ? null : levelProblem(level);
  if (problem !== null) throw malformed("an SELinux context", context, problem);
  return { user, role, type, level };
}

/** The mode suffix: ` (enforce)`, ` (complain)`, … */
const APPARMOR_MODE = / \(([a-z_-]+)\)$/;

function splitNamespace(
  component: string,
  label: string,
): { namespace: string | null; profile: string } {
  if (!component.startsWith(":")) {
    return { namespace: null, profile: component };
  }
  const end = component.indexOf(":", 1);
  if (end === -1) {
    throw malformed("an AppArmor label", label, "unterminated :namespace:");
  }
  const namespace = component.slice(1, end);
  // The kernel may print ":ns://profile" as well as ":ns:profile".
  const profile = component.slice(end + 1).replace(/^\/\//, "");
  if (namespace === "") {
    throw malformed("an AppArmor label", label, "empty namespace");
  }
  return { namespace, profile };
}

/**
 * Splits an AppArmor label: `profile (mode)`, `unconfined` (no mode), a stack
 * `a//&b (mixed)`, or a namespaced `:ns:profile (complain)`. Hierarchical
 * profile names (`parent//child`) stay whole.
 *
 * @param label A label as SO_PEERSEC or `/proc/<pid>/attr/current` gives it
 *   (one trailing newline is accepted).
 * @returns The profiles with their namespaces, the mode, and the first
 *   profile's namespace.
 * @throws {TypeError} when `label` is not a string.
 * @throws {PeerSecError} with code `ERR_MALFORMED_LABEL` when it is not a label.
 *
 * @example
 * ```ts
 * import { parseAppArmorLabel } from "@peersec/peersec";
 *
 * const { profiles } = parseAppArmorLabel("/usr/sbin/cupsd//&:podman:a//&b (mixed)");
 * // [{ namespace: null, name: "/usr/sbin/cupsd" },
 * //  { namespace: "podman", name: "a" }, { namespace: "podman", name: "b" }]
 * ```
 */
export function parseAppArmorLabel(label: string): AppArmorLabel {
  const text = checkString("parseAppArmorLabel", label);
  if (text.trim() === "" || CONTROL_CHARACTER.test(text)) {
    throw malformed(
      "an AppArmor label",
      label,
      "empty, or has control characters",
    );
  }
  const modeMatch = APPARMOR_MODE.exec(text);
  const mode = modeMatch ? modeMatch[1] : null;
  const body = modeMatch ? text.slice(0, modeMatch.index) : text;
  // security/apparmor/label.c prints a profile's namespace only when it
  // differs from the previous profile's; profiles in the reader's own
  // namespace sort first and are never prefixed. So an unprefixed profile
  // after a prefixed one is in that same namespace.
  let current: string | null = null;
  const profiles = body.split("//&").map((component) => {
    if (component === "" || component !== component.trim()) {
      throw malformed(
        "an AppArmor label",
        label,
        "empty profile or stray blanks",
      );
    }
    const { namespace, profile } = splitNamespace(component, label);
    if (namespace !== null) current = namespace;
    if (profile === "") {
      throw malformed("an AppArmor label", label, "empty profile name");
    }
    return { namespace: current, name: profile };
  });
  return { profiles, mode, namespace: profiles[0].namespace };
}
