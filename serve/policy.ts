/**
 * Who may talk to a server: a declarative list of rules (or a function) over
 * the peer's kernel-given identity. It fails closed everywhere it can: no
 * policy at all admits only this process's own uid (serving everyone must be
 * said: `"everyone"`), a rule must name at least one field and only fields
 * that exist (a typo must not allow everyone), a field the peer has no value
 * for does not match (TCP without credentials never matches a uid rule), an
 * AppArmor profile counts only in enforce mode unless the rule says
 * otherwise, names are resolved once, at start, and a name that resolves to
 * nobody is an error then — not a rule that quietly matches nothing later. A
 * list of rules is frozen when it is compiled: a later edit throws instead of
 * being silently ignored. docs/policy.md says what each field proves.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { parseAppArmorLabel, parseSELinuxContext } from "../mod.ts";
import { defaultReader } from "../ffi/default_reader.ts";
import { closeFileDescriptor, readPeerCredentials } from "../src/identity.ts";
import { PeerSecError } from "../src/errors.ts";

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
  /**
   * The type of the peer's SELinux context (`sshd_t`), parsed with
   * `parseSELinuxContext`. It ignores the level: `container_t` admits every
   * container; add `selinuxLevel` to tell them apart.
   */
  selinuxType?: string;
  /**
   * The peer's SELinux MLS/MCS level or range (`s0:c12,c34`,
   * `s0-s0:c0.c1023`), which must equal this one as a level: the same
   * sensitivities and the same categories, however they are written
   * (`s0:c0,c1,c2` is `s0:c0.c2`; a single level `s0:c5` is the range
   * `s0:c5-s0:c5`). A peer whose context has no level never matches.
   */
  selinuxLevel?: string;
  /**
   * An AppArmor profile any profile of the peer's label (a stack) must equal:
   * `name` for the reader's own namespace, `:ns:name` for namespace `ns`. The
   * label's mode must be enforcing unless `apparmorMode` says otherwise.
   * `unconfined` is refused: it is no profile (use `label: "unconfined"`).
   */
  apparmorProfile?: string;
  /**
   * The modes of the peer's label `apparmorProfile` accepts: `"enforce"`
   * (default: `enforce` or `kill`, the profile's rules are enforced),
   * `"complain"` (those and `complain`: the profile only logs what it would
   * deny), or `"any"` (any mode, `mixed` stacks and modes this library does
   * not know included). Only with `apparmorProfile`.
   */
  apparmorMode?: "enforce" | "complain" | "any";
  /**
   * The raw label: equal to a string, or matching a RegExp. The RegExp is
   * copied when the policy is compiled, and every test starts at index 0: a
   * `y` (sticky) pattern stays anchored at the label's start, and `g` keeps
   * no state between peers.
   */
  label?: string | RegExp;
}

/**
 * A policy: a list of rules, a function that says `true` to allow, or
 * `"everyone"` to serve every peer that can connect. (No policy at all
 * admits only peers with this process's own effective uid.)
 */
export type PeerPolicy =
  | readonly PeerRule[]
  | ((peer: Peer) => boolean)
  | "everyone";

const FIELDS = new Set([
  "uid",
  "gid",
  "group",
  "user",
  "groupName",
  "selinuxType",
  "selinuxLevel",
  "apparmorProfile",
  "apparmorMode",
  "label",
]);

/** The label modes each `apparmorMode` accepts (`null`: any). */
const APPARMOR_MODES: Readonly<Record<string, ReadonlySet<string> | null>> = {
  // kill is enforce that also kills the process on a denial.
  enforce: new Set(["enforce", "kill"]),
  complain: new Set(["enforce", "kill", "complain"]),
  any: null,
};

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

/** A profile rule's value split like a label's component: `:ns:name` or `name`. */
function splitProfile(
  wanted: string,
): { namespace: string | null; name: string } {
  const namespaced = /^:([^:]+):(?:\/\/)?(.+)$/.exec(wanted);
  return namespaced
    ? { namespace: namespaced[1], name: namespaced[2] }
    : { namespace: null, name: wanted };
}

function apparmorHas(
  label: string | null,
  wanted: { namespace: string | null; name: string },
  modes: ReadonlySet<string> | null,
): boolean {
  if (label === null) return false;
  let parsed;
  try {
    parsed = parseAppArmorLabel(label);
  } catch {
    return false;
  }
  // The kernel writes one mode for the whole label (`mixed` when its
  // profiles differ): a profile of a mixed stack may be the one in complain.
  if (modes !== null && (parsed.mode === null || !modes.has(parsed.mode))) {
    return false;
  }
  return parsed.profiles.some((profile) =>
    profile.namespace === wanted.namespace && profile.name === wanted.name
  );
}

/** One SELinux level, canonical: `s0:c1.c3,c7` (runs merged, sorted). */
type CanonicalLevel = string;

/** The largest sensitivity or category number a level may carry here. */
const MAX_LEVEL_NUMBER = 0xffff_ffff;

function levelNumber(digits: string): number | null {
  const value = Number(digits);
  return digits.length <= 10 && value <= MAX_LEVEL_NUMBER ? value : null;
}

/**
 * `s<n>[:<categories>]` as its sensitivity and its categories as sorted,
 * merged [first, last] runs; null when it is not one.
 */
function parseLevel(
  text: string,
): { sensitivity: number; runs: [number, number][] } | null {
  const match = /^s(\d+)(?::(c\d+(?:\.c\d+)?(?:,c\d+(?:\.c\d+)?)*))?$/.exec(
    text,
  );
  if (match === null) return null;
  const sensitivity = levelNumber(match[1]);
  if (sensitivity === null) return null;
  const runs: [number, number][] = [];
  for (const item of match[2]?.split(",") ?? []) {
    const [first, last = first] = item.split(".").map((part) =>
      levelNumber(part.slice(1))
    );
    // c5.c3 and c5.c5 are not ranges (the kernel writes neither).
    if (first === null || last === null) return null;
    if (item.includes(".") && last <= first) return null;
    runs.push([first, last]);
  }
  runs.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const run of runs) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && run[0] <= previous[1] + 1) {
      previous[1] = Math.max(previous[1], run[1]);
    } else {
      merged.push([run[0], run[1]]);
    }
  }
  return { sensitivity, runs: merged };
}

function levelText(
  level: { sensitivity: number; runs: [number, number][] },
): CanonicalLevel {
  const categories = level.runs.map(([first, last]) =>
    first === last ? `c${first}` : `c${first}.c${last}`
  );
  return `s${level.sensitivity}` +
    (categories.length === 0 ? "" : `:${categories.join(",")}`);
}

/** Whether every category of `low` is in `high` (runs are merged). */
function categoriesWithin(
  low: [number, number][],
  high: [number, number][],
): boolean {
  return low.every(([first, last]) =>
    high.some(([from, to]) => from <= first && last <= to)
  );
}

/**
 * A level or range (`low[-high]`) in one canonical form, a single level
 * written as the range it is; null when it is not one, or when `high` does
 * not dominate `low` (no process or object can carry such a range).
 */
function canonicalRange(text: string): CanonicalLevel | null {
  // Levels hold no `-`: the first one splits the range.
  const dash = text.indexOf("-");
  const low = parseLevel(dash === -1 ? text : text.slice(0, dash));
  const high = dash === -1 ? low : parseLevel(text.slice(dash + 1));
  if (low === null || high === null) return null;
  if (
    high.sensitivity < low.sensitivity ||
    !categoriesWithin(low.runs, high.runs)
  ) {
    return null;
  }
  return `${levelText(low)}-${levelText(high)}`;
}

function selinuxLevelOf(label: string | null): CanonicalLevel | null {
  if (label === null) return null;
  try {
    const { level } = parseSELinuxContext(label);
    return level === null ? null : canonicalRange(level);
  } catch {
    return null;
  }
}

/**
 * This process's effective uid, as the kernel reports it for a peer: the
 * credentials of a socketpair's other end. (node:process's geteuid() needs
 * `--allow-sys` in Deno; this needs only the FFI a server needs anyway.)
 */
function ownUid(): number {
  const reader = defaultReader;
  const { AF_UNIX, SOCK_STREAM } = reader.constants.socket;
  const fds = new Int32Array(2);
  const { rc, errno } = reader.backend.socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  if (rc !== 0) {
    const code = reader.errnoName(errno);
    throw new PeerSecError(
      `socketpair() failed with errno ${errno} [${code}]: cannot learn this ` +
        "process's uid, which a policy without allow admits",
      { code, errno, syscall: "socketpair" },
    );
  }
  try {
    return readPeerCredentials(reader, fds[0]).uid;
  } finally {
    closeFileDescriptor(reader, fds[0]);
    closeFileDescriptor(reader, fds[1]);
  }
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
  const fields = Object.keys(rule);
  if (fields.length === 0) {
    throw new TypeError(
      `allow[${index}] names no field: an empty rule would allow every peer`,
    );
  }
  const values = new Map<string, unknown>();
  for (const field of fields) {
    if (!FIELDS.has(field)) {
      throw new TypeError(
        `allow[${index}] has an unknown field ${JSON.stringify(field)} ` +
          `(known: ${[...FIELDS].join(", ")})`,
      );
    }
    // A getter could answer differently after the rule is compiled.
    const descriptor = Object.getOwnPropertyDescriptor(rule, field);
    if (descriptor === undefined || !("value" in descriptor)) {
      throw new TypeError(
        `allow[${index}].${field} must be a value, not a getter: a rule is ` +
          "read once, when the policy is compiled",
      );
    }
    values.set(field, descriptor.value);
  }
  if (values.has("apparmorMode") && !values.has("apparmorProfile")) {
    throw new TypeError(
      `allow[${index}]: apparmorMode qualifies apparmorProfile, which the ` +
        "rule does not name",
    );
  }
  const checks: Matcher[] = [];
  for (const [field, value] of values) {
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
      case "selinuxLevel": {
        const level = canonicalRange(checkText(field, value));
        if (level === null) {
          throw new RangeError(
            `allow[${index}].selinuxLevel is not an MLS/MCS level or range ` +
              `(s0:c12,c34, s0-s0:c0.c1023; the high level dominating the ` +
              `low one): ${JSON.stringify(value)}`,
          );
        }
        checks.push((peer) => selinuxLevelOf(peer.securityContext) === level);
        break;
      }
      case "apparmorProfile": {
        const profile = splitProfile(checkText(field, value));
        if (profile.name === "unconfined") {
          throw new RangeError(
            `allow[${index}].apparmorProfile ${JSON.stringify(value)} names ` +
              "no profile: unconfined is the absence of confinement (match " +
              'it with label: "unconfined" if that is meant)',
          );
        }
        const mode = values.get("apparmorMode") ?? "enforce";
        if (typeof mode !== "string" || !Object.hasOwn(APPARMOR_MODES, mode)) {
          throw new TypeError(
            `allow[${index}].apparmorMode must be "enforce", "complain" or ` +
              `"any", got ${JSON.stringify(mode)}`,
          );
        }
        const modes = APPARMOR_MODES[mode];
        checks.push((peer) =>
          apparmorHas(peer.securityContext, profile, modes)
        );
        break;
      }
      case "apparmorMode":
        break; // checked with apparmorProfile
      case "label": {
        if (value instanceof RegExp) {
          // A private copy, reset before each test: sticky stays anchored at
          // 0, global keeps no lastIndex from one peer to the next.
          const pattern = new RegExp(value.source, value.flags);
          checks.push((peer) => {
            if (peer.securityContext === null) return false;
            pattern.lastIndex = 0;
            return pattern.test(peer.securityContext);
          });
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
 * Turns a policy into one function: rules are checked, names resolved and the
 * list frozen now.
 *   - `undefined` (no `allow` at all, or one that came out undefined, e.g.
 *     `allow: config.rulse`) admits only peers whose uid is this process's
 *     effective uid, as a D-Bus session bus does: a missing policy must not
 *     mean everyone;
 *   - `"everyone"` admits every peer that can connect;
 *   - a function allows only when it returns exactly `true`; a throw denies;
 *   - a list of rules is checked now, and frozen with its rules (see
 *     `freezeRules`);
 *   - anything else is a TypeError.
 */
export function compilePolicy(policy: PeerPolicy | undefined): Matcher {
  if (policy === undefined) {
    const uid = ownUid();
    return (peer) => peer.uid === uid;
  }
  if (policy === "everyone") return () => true;
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
    throw new TypeError(
      'allow must be a list of rules, a function, or "everyone" (to serve ' +
        `every peer that can connect), got ${
          typeof policy === "string" ? JSON.stringify(policy) : typeof policy
        }`,
    );
  }
  let users: Map<string, number> | undefined;
  let groups: Map<string, number> | undefined;
  const names = {
    users: () => users ??= idsByName("/etc/passwd"),
    groups: () => groups ??= idsByName("/etc/group"),
  };
  const rules: Matcher[] = [];
  for (let index = 0; index < policy.length; index++) {
    // A hole or an accessor is not a rule: it could become one later.
    const descriptor = Object.getOwnPropertyDescriptor(policy, index);
    if (descriptor === undefined || !("value" in descriptor)) {
      throw new TypeError(`allow[${index}] must be a rule object`);
    }
    rules.push(compileRule(descriptor.value, index, names));
  }
  freezeRules(policy);
  return (peer) => rules.some((rule) => rule(peer));
}

/**
 * Freezes a compiled list and its rules. The compiled matcher is a snapshot:
 * without this, removing a rule later (a revocation) would change the array
 * and nothing else. Frozen, the edit throws a TypeError (in strict code, and
 * from push, splice and the like everywhere), and the array keeps saying
 * what is enforced. A RegExp `label` is copied, not frozen.
 */
function freezeRules(rules: readonly PeerRule[]): void {
  for (const rule of rules) Object.freeze(rule);
  Object.freeze(rules);
}

const compiled = new WeakMap<readonly PeerRule[], Matcher>();

/**
 * Whether a peer is allowed by a list of rules (any rule matches; a rule
 * matches when every field it names matches), for servers of your own. The
 * rules are checked, their user and group names resolved, and the array and
 * its rules frozen on the first call with that array (`Object.freeze`): the
 * compiled rules are reused after, and since neither can change, a later
 * edit — removing a rule to revoke it — throws a TypeError instead of being
 * ignored. To change a policy, pass a new array.
 *
 * @param peer The peer's identity (e.g. `info.peer` in a `serve` handler, or
 *   built from `getPeerIdentity`).
 * @param rules The rules.
 * @returns `true` when a rule matches.
 * @throws {TypeError} when `rules` is not an array, for a malformed rule (no
 *   field, an unknown field, a getter, a value of the wrong type).
 * @throws {RangeError} for an id out of range, a user or group name that
 *   /etc/passwd or /etc/group does not know, an SELinux level that is not
 *   one, or `apparmorProfile: "unconfined"`.
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
  if (!Array.isArray(rules)) {
    throw new TypeError("peerMatches takes a list of rules");
  }
  let matcher = compiled.get(rules);
  if (matcher === undefined) {
    matcher = compilePolicy(rules);
    compiled.set(rules, matcher);
  }
  return matcher(peer);
}
