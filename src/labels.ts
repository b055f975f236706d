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

/** An AppArmor label, split into its parts. */
export interface AppArmorLabel {
  /**
   * The profiles: one, or several for a stack (`a//&b`). Each is written as in
   * the label without the label's namespace; a stacked profile from another
   * namespace keeps its own `:ns:` prefix.
   */
  profiles: string[];
  /** `enforce`, `complain`, `kill`, `unconfined`, `mixed`, … or `null` when the label has none (`unconfined`). */
  mode: string | null;
  /** The policy namespace of the (first) profile, or `null` for the root namespace. */
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

function malformed(kind: string, label: string, why: string): PeerSecError {
  return new PeerSecError(
    `not ${kind}: ${JSON.stringify(label)} (${why})`,
    { code: "ERR_MALFORMED_LABEL" },
  );
}

/** user, role and type: identifiers without separators or blanks. */
const SELINUX_NAME = /^[^\s:\0]+$/;
/** A level or range: sensitivities and categories, which contain `:` `-` `.` `,`. */
const SELINUX_LEVEL = /^[^\s\0]+$/;

/**
 * Splits an SELinux security context `user:role:type[:level]`. The level
 * (MLS/MCS) may itself contain colons (`s0-s0:c0.c1023`): everything after the
 * third colon is the level.
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
  if (level !== null && !SELINUX_LEVEL.test(level)) {
    throw malformed(
      "an SELinux context",
      context,
      level === "" ? "empty level" : "invalid level",
    );
  }
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
 * @returns The profiles, the mode and the namespace.
 * @throws {TypeError} when `label` is not a string.
 * @throws {PeerSecError} with code `ERR_MALFORMED_LABEL` when it is not a label.
 *
 * @example
 * ```ts
 * import { parseAppArmorLabel } from "@peersec/peersec";
 *
 * parseAppArmorLabel("/usr/sbin/cupsd//&:podman:container (mixed)");
 * // { profiles: ["/usr/sbin/cupsd", ":podman:container"], mode: "mixed", namespace: null }
 * ```
 */
export function parseAppArmorLabel(label: string): AppArmorLabel {
  const text = checkString("parseAppArmorLabel", label);
  if (text.trim() === "" || text.includes("\0") || text.includes("\n")) {
    throw malformed("an AppArmor label", label, "empty or not one line");
  }
  const modeMatch = APPARMOR_MODE.exec(text);
  const mode = modeMatch ? modeMatch[1] : null;
  const body = modeMatch ? text.slice(0, modeMatch.index) : text;
  const components = body.split("//&");
  const parsed = components.map((component) => {
    if (component === "" || component !== component.trim()) {
      throw malformed(
        "an AppArmor label",
        label,
        "empty profile or stray blanks",
      );
    }
    return splitNamespace(component, label);
  });
  const namespace = parsed[0].namespace;
  const profiles = parsed.map(({ namespace: own, profile }, index) => {
    if (profile === "") {
      throw malformed("an AppArmor label", label, "empty profile name");
    }
    return own === namespace ? profile : components[index];
  });
  return { profiles, mode, namespace };
}
