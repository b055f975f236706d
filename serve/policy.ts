/**
 * Who may talk to a server: a declarative list of rules (or a function) over
 * the peer's kernel-given identity. It fails closed everywhere it can: a rule
 * must name at least one field and only fields that exist (a typo must not
 * allow everyone), a field the peer has no value for does not match (TCP
 * without credentials never matches a uid rule), names are resolved once, at
 * start, and a name that resolves to nobody is an error then — not a rule that
 * quietly matches nothing later.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { parseAppArmorLabel, parseSELinuxContext } from "../mod.ts";

/**
 * A peer's identity as the kernel gave it when it connected. On TCP the
 * kernel keeps no credentials: `pid`, `uid`, `gid` and `groups` are `null`
 * there — never made-up numbers. `securityContext` is `null` when no security
 * module labels the connection.
 */
export interface Peer {
  /** The peer's process id (0 when not visible in this pid namespace), or null on TCP. */
  readonly pid: number | null;
  /** Its effective user id, or null on TCP. */
  readonly uid: number | null;
  /** Its effective group id, or null on TCP. */
  readonly gid: number | null;
  /** Its supplementary group ids, or null on TCP. */
  readonly groups: readonly number[] | null;
  /** Its security label (SELinux, Smack, AppArmor), or null. */
  readonly securityContext: string | null;
}

/**
 * One rule: it matches a peer when **every** field it names matches. A list of
 * rules allows a peer when **any** rule matches.
 */
export interface PeerRule {
  /** The peer's effective uid. */
  uid?: number;
  /** The peer's effective (primary) gid. */
  gid?: number;
  /** A gid the peer has: its primary gid or one of its supplementary groups. */
  group?: number;
  /** A user name from /etc/passwd, resolved to a uid when the policy is compiled. */
  user?: string;
  /** A group name from /etc/group, resolved to a gid and matched like `group`. */
  groupName?: string;
  /** The type of the peer's SELinux context (`sshd_t`), parsed with `parseSELinuxContext`. */
  selinuxType?: string;
  /**
   * An AppArmor profile any profile of the peer's label (a stack) must equal:
   * `name` for the reader's own namespace, `:ns:name` for namespace `ns`.
   */
  apparmorProfile?: string;
  /** The raw label: equal to a string, or matching a RegExp. */
  label?: string | RegExp;
}

/** A policy: a list of rules, or a function that says `true` to allow. */
export type PeerPolicy = readonly PeerRule[] | ((peer: Peer) => boolean);

const FIELDS = new Set([
  "uid",
  "gid",
  "group",
  "user",
  "groupName",
  "selinuxType",
  "apparmorProfile",
  "label",
]);

/** name → id from a passwd(5)/group(5)-format file. */
function idsByName(path: string): Map<string, number> {
  const ids = new Map<string, number>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const [name, , id] = line.split(":");
    if (name && id !== undefined && /^\d+$/.test(id) && !ids.has(name)) {
      ids.set(name, Number(id));
    }
  }
  return ids;
}

function checkId(field: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(`rule field ${field} must be a number`);
  }
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`rule field ${field} must be an id from 0 to 2³²−1`);
  }
  return value;
}

function checkText(field: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`rule field ${field} must be a non-empty string`);
  }
  return value;
}

type Matcher = (peer: Peer) => boolean;

function hasGroup(peer: Peer, gid: number): boolean {
  return peer.gid === gid || (peer.groups?.includes(gid) ?? false);
}

function selinuxTypeOf(label: string | null): string | null {
  if (label === null) return null;
  try {
    return parseSELinuxContext(label).type;
  } catch {
    return null;
  }
}

function apparmorHas(label: string | null, wanted: string): boolean {
  if (label === null) return false;
  let profiles;
  try {
    profiles = parseAppArmorLabel(label).profiles;
  } catch {
    return false;
  }
  const namespaced = /^:([^:]+):(?:\/\/)?(.+)$/.exec(wanted);
  const namespace = namespaced ? namespaced[1] : null;
  const name = namespaced ? namespaced[2] : wanted;
  return profiles.some((profile) =>
    profile.namespace === namespace && profile.name === name
  );
}

/** One rule, checked and with its names resolved, as a matcher. */
function compileRule(
  rule: unknown,
  index: number,
  names: { users(): Map<string, number>; groups(): Map<string, number> },
): Matcher {
  if (rule === null || typeof rule !== "object" || Array.isArray(rule)) {
    throw new TypeError(`allow[${index}] must be a rule object`);
  }
  const entries = Object.entries(rule);
  if (entries.length === 0) {
    throw new TypeError(
      `allow[${index}] names no field: an empty rule would allow every peer`,
    );
  }
  const checks: Matcher[] = [];
  for (const [field, value] of entries) {
    if (!FIELDS.has(field)) {
      throw new TypeError(
        `allow[${index}] has an unknown field ${JSON.stringify(field)} ` +
          `(known: ${[...FIELDS].join(", ")})`,
      );
    }
    switch (field) {
      case "uid": {
        const uid = checkId(field, value);
        checks.push((peer) => peer.uid === uid);
        break;
      }
      case "gid": {
        const gid = checkId(field, value);
        checks.push((peer) => peer.gid === gid);
        break;
      }
      case "group": {
        const gid = checkId(field, value);
        checks.push((peer) => hasGroup(peer, gid));
        break;
      }
      case "user": {
        const uid = names.users().get(checkText(field, value));
        if (uid === undefined) {
          throw new RangeError(
            `allow[${index}]: no user ${value} in /etc/passwd`,
          );
        }
        checks.push((peer) => peer.uid === uid);
        break;
      }
      case "groupName": {
        const gid = names.groups().get(checkText(field, value));
        if (gid === undefined) {
          throw new RangeError(
            `allow[${index}]: no group ${value} in /etc/group`,
          );
        }
        checks.push((peer) => hasGroup(peer, gid));
        break;
      }
      case "selinuxType": {
        const type = checkText(field, value);
        checks.push((peer) => selinuxTypeOf(peer.securityContext) === type);
        break;
      }
      case "apparmorProfile": {
        const profile = checkText(field, value);
        checks.push((peer) => apparmorHas(peer.securityContext, profile));
        break;
      }
      case "label": {
        if (value instanceof RegExp) {
          // Without g/y a RegExp keeps no state between tests.
          const pattern = new RegExp(
            value.source,
            value.flags.replace(/[gy]/g, ""),
          );
          checks.push((peer) =>
            peer.securityContext !== null && pattern.test(peer.securityContext)
          );
        } else {
          const label = checkText(field, value);
          checks.push((peer) => peer.securityContext === label);
        }
        break;
      }
    }
  }
  return (peer) => checks.every((check) => check(peer));
}

/**
 * Turns a policy into one function: rules are checked and names resolved now.
 * A function policy allows only when it returns exactly `true`; a throw denies.
 */
export function compilePolicy(policy: PeerPolicy | undefined): Matcher {
  if (policy === undefined) return () => true;
  if (typeof policy === "function") {
    return (peer) => {
      try {
        return policy(peer) === true;
      } catch {
        return false;
      }
    };
  }
  if (!Array.isArray(policy)) {
    throw new TypeError("allow must be a list of rules or a function");
  }
  let users: Map<string, number> | undefined;
  let groups: Map<string, number> | undefined;
  const names = {
    users: () => users ??= idsByName("/etc/passwd"),
    groups: () => groups ??= idsByName("/etc/group"),
  };
  const rules = policy.map((rule, index) => compileRule(rule, index, names));
  return (peer) => rules.some((rule) => rule(peer));
}

const compiled = new WeakMap<readonly PeerRule[], Matcher>();

/**
 * Whether a peer is allowed by a list of rules (any rule matches; a rule
 * matches when every field it names matches), for servers of your own. The
 * rules are checked and their user and group names resolved on the first
 * call with that array, and reused after.
 *
 * @param peer The peer's identity (e.g. `info.peer` in a `serve` handler, or
 *   built from `getPeerIdentity`).
 * @param rules The rules.
 * @returns `true` when a rule matches.
 * @throws {TypeError} for a malformed rule (no field, an unknown field, a
 *   value of the wrong type).
 * @throws {RangeError} for an id out of range, or a user or group name that
 *   /etc/passwd or /etc/group does not know.
 *
 * @example
 * ```ts
 * import { peerMatches } from "@peersec/peersec/serve";
 *
 * const rules = [{ user: "root" }, { selinuxType: "backup_t" }];
 * const peer = {
 *   pid: 42, uid: 0, gid: 0, groups: [], securityContext: null,
 * };
 * console.log(peerMatches(peer, rules)); // true: uid 0 is root
 * ```
 */
export function peerMatches(peer: Peer, rules: readonly PeerRule[]): boolean {
  if (peer === null || typeof peer !== "object") {
    throw new TypeError("peerMatches takes a peer object");
  }
  let matcher = compiled.get(rules);
  if (matcher === undefined) {
    matcher = compilePolicy(rules);
    compiled.set(rules, matcher);
  }
  return matcher(peer);
}
