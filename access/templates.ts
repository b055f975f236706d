/**
 * Policy templates for servers that let the LSM policy decide: an SELinux CIL
 * module declaring the `peersec_http` class, an AppArmor abstraction for the
 * server and rules for its clients, and Smack rules. The files under
 * `access/templates/` are these functions' output with their defaults
 * (a test keeps them equal).
 *
 * @module
 */
import { DEFAULT_SELINUX_PERMISSIONS } from "./request.ts";
import { policyNameProblem } from "./selinux.ts";
import { smackAccessString, smackLabelProblem } from "./smack.ts";

/** Which domains a generated SELinux module names. */
export interface SelinuxPolicyModuleOptions {
  /** The class (default `peersec_http`). */
  className?: string;
  /**
   * The class's permissions (default `get head post put patch delete`, the
   * permissions the default method map asks for).
   */
  permissions?: readonly string[];
  /** Server domains: they may ask the policy (`compute_av`) and are targets. */
  servers?: readonly string[];
  /** Domains that may GET and HEAD on the servers. */
  readers?: readonly string[];
  /** Domains that may use every method on the servers. */
  writers?: readonly string[];
}

function names(name: string, list: readonly string[] | undefined): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new TypeError(`${name} must be an array`);
  for (const item of list) {
    if (typeof item !== "string" || policyNameProblem(item) !== null) {
      throw new RangeError(
        `${name}: ${JSON.stringify(item)} is not a policy identifier`,
      );
    }
  }
  return [...list];
}

/**
 * An SELinux policy module in CIL: the class with one permission per HTTP
 * method, and three attributes — `<class>_server` (domains that serve: they
 * may ask the policy, `security:compute_av`, and read selinuxfs),
 * `<class>_reader` (may `get` and `head` on servers) and `<class>_writer`
 * (every permission). Requests target the server's own context unless the
 * server's routes name others, so the rules name server domains. Domains
 * given in `options` are added to the attributes. Load it with
 * `semodule -i peersec_http.cil`; it assumes the base policy's `security_t`
 * (refpolicy, Fedora, Debian).
 *
 * @param options The class, its permissions and the domains.
 * @returns The module's text.
 * @throws {TypeError} for options of the wrong type.
 * @throws {RangeError} for a name that is not a policy identifier.
 *
 * @example
 * ```ts
 * import { selinuxPolicyModule } from "@peersec/peersec/access";
 *
 * // writeFileSync("peersec_http.cil", ...), then: semodule -i peersec_http.cil
 * console.log(selinuxPolicyModule({
 *   servers: ["myapi_t"],
 *   readers: ["backup_t"],
 *   writers: ["unconfined_t"],
 * }));
 * ```
 */
export function selinuxPolicyModule(
  options: SelinuxPolicyModuleOptions = {},
): string {
  const className = options.className ?? "peersec_http";
  if (typeof className !== "string" || policyNameProblem(className) !== null) {
    throw new RangeError("className must be a policy identifier");
  }
  const permissions = names(
    "permissions",
    options.permissions ?? Object.values(DEFAULT_SELINUX_PERMISSIONS),
  );
  if (permissions.length === 0 || permissions.length > 32) {
    throw new RangeError("a class has 1 to 32 permissions");
  }
  const servers = names("servers", options.servers);
  const readers = names("readers", options.readers);
  const writers = names("writers", options.writers);
  const read = ["get", "head"].filter((name) => permissions.includes(name));
  const lines = [
    `; ${className}: HTTP methods as an SELinux userspace object class, for`,
    "; servers that ask the loaded policy about each request (peersec/access).",
    ";",
    `;   semodule -i ${className}.cil       load;  semodule -r ${className}   remove`,
    ";",
    `; ${className}_server  domains that serve: they may ask the policy`,
    ";   (security compute_av) and read selinuxfs; requests target their",
    ";   own context unless the server's routes name other contexts.",
    `; ${className}_reader  domains that may ${
      read.join(" and ") || "(nothing)"
    } on servers.`,
    `; ${className}_writer  domains that may use every method on servers.`,
    `; Add domains with (typeattributeset ${className}_reader (backup_t)) in a`,
    "; module of your own, or generate this one with them.",
    `(class ${className} (${permissions.join(" ")}))`,
    `(classorder (unordered ${className}))`,
    `(typeattribute ${className}_server)`,
    `(typeattribute ${className}_reader)`,
    `(typeattribute ${className}_writer)`,
    `(allow ${className}_server security_t (security (compute_av)))`,
    `(allow ${className}_server security_t (dir (getattr search open read)))`,
    `(allow ${className}_server security_t (file (getattr open read write)))`,
  ];
  if (read.length > 0) {
    lines.push(
      `(allow ${className}_reader ${className}_server (${className} (${
        read.join(" ")
      })))`,
    );
  }
  lines.push(
    `(allow ${className}_writer ${className}_server (${className} (${
      permissions.join(" ")
    })))`,
  );
  for (
    const [attribute, list] of [
      ["server", servers],
      ["reader", readers],
      ["writer", writers],
    ] as const
  ) {
    if (list.length > 0) {
      lines.push(
        `(typeattributeset ${className}_${attribute} (${list.join(" ")}))`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * An AppArmor abstraction for a confined server that asks AppArmor about its
 * peers: `.access` read-write (the query file), and what finding AppArmor
 * reads. Copy it to `/etc/apparmor.d/abstractions/peersec-http-server` and
 * add `include <abstractions/peersec-http-server>` to the server's profile.
 *
 * @param securityfs Where securityfs is mounted (default
 *   `/sys/kernel/security`).
 * @returns The abstraction's text.
 *
 * @example
 * ```ts
 * import { appArmorServerAbstraction } from "@peersec/peersec/access";
 *
 * console.log(appArmorServerAbstraction());
 * ```
 */
export function appArmorServerAbstraction(
  securityfs = "/sys/kernel/security",
): string {
  if (
    typeof securityfs !== "string" || !/^\/[A-Za-z0-9/_.-]*$/.test(securityfs)
  ) {
    throw new RangeError("securityfs must be an absolute path");
  }
  return [
    "# peersec-http-server: lets a confined peersec server ask AppArmor about",
    "# its peers (peersec/access). In the server's profile:",
    "#   include <abstractions/peersec-http-server>",
    `  ${securityfs}/apparmor/.access rw,`,
    `  ${securityfs}/apparmor/profiles r,`,
    `  ${securityfs}/lsm r,`,
    "  /sys/module/apparmor/parameters/enabled r,",
    "  owner /proc/[0-9]*/mounts r,",
    "  owner /proc/[0-9]*/attr/{,apparmor/}current r,",
    "",
  ].join("\n");
}

/**
 * Example rules for a client's AppArmor profile: what it may ask of the
 * server named `service`. The server asks for `r` on
 * `/peersec-http/<service>/<METHOD><canonical path>`: allow methods and
 * paths with file rules, carve out with `deny` (quiet) or `audit deny`.
 * Never use `owner` in these rules (it would depend on the server's uid).
 *
 * @param service The server's name (`apparmor.service` of
 *   {@linkcode createRequestAccess}; default `"default"`).
 * @param prefix The paths' first segment (default `/peersec-http`).
 * @returns The rules' text.
 *
 * @example
 * ```ts
 * import { appArmorClientRules } from "@peersec/peersec/access";
 *
 * console.log(`profile backup-client {\n${appArmorClientRules("myapi")}}`);
 * ```
 */
export function appArmorClientRules(
  service = "default",
  prefix = "/peersec-http",
): string {
  if (
    typeof service !== "string" ||
    !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(service)
  ) {
    throw new RangeError("service must be letters, digits, . _ -");
  }
  if (typeof prefix !== "string" || !/^(\/[A-Za-z0-9_.-]+)+$/.test(prefix)) {
    throw new RangeError("prefix must be an absolute path of plain segments");
  }
  const base = `${prefix}/${service}`;
  return [
    `  # What this client may ask of ${service} (peersec/access asks for r on`,
    `  # ${base}/<METHOD><canonical path>):`,
    `  ${base}/{GET,HEAD}/** r,`,
    `  ${base}/POST/v1/items r,`,
    `  deny ${base}/*/admin{,/**} r,`,
    "",
  ].join("\n");
}

/** Labels for generated Smack rules. */
export interface SmackRulesOptions {
  /** The server's label (default `peersec-server`). */
  server?: string;
  /** The requests' object label (default `peersec-api`). */
  object?: string;
  /**
   * Client label → access letters on the object (`r` = GET, HEAD, OPTIONS;
   * `w` = POST, PUT, PATCH, DELETE with the default map). Default:
   * `{ "peersec-client": "r", "peersec-admin": "rw" }`.
   */
  clients?: Readonly<Record<string, string>>;
}

function smackLabel(name: string, label: unknown): string {
  if (typeof label !== "string" || smackLabelProblem(label) !== null) {
    throw new RangeError(
      `${name}: ${JSON.stringify(label)} is not a Smack label`,
    );
  }
  return label;
}

/**
 * Smack rules (`subject object access`, the format of
 * `/sys/fs/smackfs/load2` and `/etc/smack/accesses.d/`) for a server and its
 * clients: each client may connect to the server's socket (`w` both ways)
 * and has its access letters on the object label the server's requests are
 * asked about (`smack.object` of {@linkcode createRequestAccess}). Load
 * with one write per rule:
 * `while read -r rule; do echo "$rule" > /sys/fs/smackfs/load2; done < peersec-http.smack`.
 *
 * @param options The labels and each client's access.
 * @returns The rules, one per line.
 * @throws {RangeError} for a label that is not a Smack label or access that
 *   is not letters of `rwxatl`.
 *
 * @example
 * ```ts
 * import { smackRules } from "@peersec/peersec/access";
 *
 * console.log(smackRules({ server: "api", object: "api-requests", clients: { backup: "r" } }));
 * ```
 */
export function smackRules(options: SmackRulesOptions = {}): string {
  const server = smackLabel("server", options.server ?? "peersec-server");
  const object = smackLabel("object", options.object ?? "peersec-api");
  const clients = options.clients ?? {
    "peersec-client": "r",
    "peersec-admin": "rw",
  };
  if (clients === null || typeof clients !== "object") {
    throw new TypeError("clients must be an object of label → access");
  }
  const lines: string[] = [];
  for (const [client, access] of Object.entries(clients)) {
    smackLabel("client", client);
    const letters = typeof access === "string"
      ? smackAccessString(access)
      : null;
    if (letters === null) {
      throw new RangeError(
        `clients[${JSON.stringify(client)}]: access is not rwxatl letters`,
      );
    }
    lines.push(`${client} ${server} w`, `${server} ${client} w`);
    lines.push(`${client} ${object} ${letters.replaceAll("-", "")}`);
  }
  return lines.map((line) => line + "\n").join("");
}
