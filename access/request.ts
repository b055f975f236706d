/**
 * HTTP requests as LSM questions: a request's method and path become the
 * object and permission an {@linkcode AccessChecker} asks about.
 *
 * - SELinux: permission = the method's permission in the class (`GET` →
 *   `get`), object = the target context of the longest matching route, or
 *   the server's own context.
 * - AppArmor: object = `/peersec-http/<service>/<METHOD><canonical path>`,
 *   permission `r`; profiles grant it with file rules such as
 *   `/peersec-http/myapi/GET/v1/** r,`.
 * - Smack: object = the label of the longest matching route, or
 *   `smack.object`; permission = the method's access letters (`GET` → `r`,
 *   `POST` → `w`).
 *
 * The path is canonicalised first (percent-decoding, `.`, `..`, empty
 * segments and a trailing slash resolved), so that `/./admin`, `//admin`,
 * `/x/../admin` and `/%61dmin` are all asked about as `/admin`; paths that
 * cannot be made canonical without guessing (an encoded `/` or `%`, a
 * backslash, control characters, invalid UTF-8) are refused.
 *
 * @module
 */
import { type AuditFields, checkAuditFields } from "./audit.ts";
import type { AccessChecker } from "./checker.ts";
import {
  type AccessDecision,
  type AccessReason,
  decision,
  quote,
} from "./decision.ts";
import { policyNameProblem, selinuxContextProblem } from "./selinux.ts";
import { smackAccessString, smackLabelProblem } from "./smack.ts";
import { appArmorPermissionBits } from "./apparmor.ts";
import { fromUtf8 } from "./transport.ts";

/** The longest request path considered. */
const MAX_PATH = 8192;

/** A canonical path, or why there is none. */
export type CanonicalPathResult =
  | { readonly path: string; readonly problem?: undefined }
  | { readonly path?: undefined; readonly problem: string };

// deno-lint-ignore no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function decodeSegment(segment: string): string | null {
  if (!segment.includes("%")) return segment;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let index = 0; index < segment.length; index++) {
    const character = segment[index];
    if (character === "%") {
      const hex = segment.slice(index + 1, index + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      index += 2;
    } else {
      const code = segment.codePointAt(index)!;
      const text = String.fromCodePoint(code);
      for (const byte of encoder.encode(text)) bytes.push(byte);
      index += text.length - 1;
    }
  }
  return fromUtf8(new Uint8Array(bytes));
}

/**
 * The canonical form of a request path, or why it has none (see
 * {@linkcode canonicalRequestPath}).
 */
export function canonicalizeRequestPath(path: string): CanonicalPathResult {
  if (typeof path !== "string") {
    throw new TypeError("a request path must be a string");
  }
  let text = path;
  const query = text.indexOf("?");
  if (query >= 0) text = text.slice(0, query);
  if (text.length > MAX_PATH) return { problem: `longer than ${MAX_PATH}` };
  if (!text.startsWith("/")) return { problem: "does not start with /" };
  if (text.includes("#")) return { problem: "contains #" };
  const segments: string[] = [];
  for (const raw of text.slice(1).split("/")) {
    const segment = decodeSegment(raw);
    if (segment === null) {
      return { problem: "bad percent-encoding, or not UTF-8 once decoded" };
    }
    if (CONTROL.test(segment)) {
      return { problem: "contains control characters" };
    }
    if (segment.includes("\\")) return { problem: "contains a backslash" };
    if (raw !== segment) {
      if (segment.includes("/")) return { problem: "encodes a /" };
      if (segment.includes("%")) {
        return { problem: "encodes a % (double encoding)" };
      }
    }
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  return { path: "/" + segments.join("/") };
}

/**
 * A request path as the access checks ask about it, or null when it cannot
 * be made canonical without guessing: the query string is dropped,
 * percent-encoding decoded (UTF-8), empty segments and `.` dropped, `..`
 * resolved (never above `/`), the trailing slash dropped. Refused: an
 * encoded `/` or `%`, a backslash, `#`, control characters, invalid
 * encodings, a path not starting with `/`.
 *
 * The same request must reach the handler by the same path: route on the
 * canonical form (or refuse requests whose raw path differs from it).
 *
 * @param path The request's path (`new URL(request.url).pathname`, or the
 *   raw request target).
 * @returns The canonical path, or null.
 * @throws {TypeError} when `path` is not a string.
 *
 * @example
 * ```ts
 * import { canonicalRequestPath } from "@peersec/peersec/access";
 *
 * canonicalRequestPath("/v1/./items//42/"); // "/v1/items/42"
 * canonicalRequestPath("/v1/../%61dmin");   // "/admin"
 * canonicalRequestPath("/v1%2Fadmin");      // null: an encoded /
 * ```
 */
export function canonicalRequestPath(path: string): string | null {
  return canonicalizeRequestPath(path).path ?? null;
}

/** A route table: canonical path prefixes and what they map to. */
type Routes = ReadonlyArray<readonly [prefix: string, value: string]>;

function checkRoutes(
  name: string,
  routes: unknown,
  problem: (value: string) => string | null,
): Routes {
  if (routes === undefined) return [];
  if (routes === null || typeof routes !== "object" || Array.isArray(routes)) {
    throw new TypeError(`${name} must be an object of path prefix → value`);
  }
  const table: [string, string][] = [];
  for (const [prefix, value] of Object.entries(routes)) {
    if (typeof value !== "string") {
      throw new TypeError(
        `${name}[${JSON.stringify(prefix)}] must be a string`,
      );
    }
    if (canonicalRequestPath(prefix) !== prefix) {
      throw new RangeError(
        `${name}: ${
          JSON.stringify(prefix)
        } is not a canonical path (e.g. "/admin")`,
      );
    }
    const why = problem(value);
    if (why !== null) {
      throw new RangeError(`${name}[${JSON.stringify(prefix)}]: ${why}`);
    }
    table.push([prefix, value]);
  }
  // Longest first: the most specific route wins.
  return table.sort((a, b) => b[0].length - a[0].length);
}

function routeFor(routes: Routes, path: string): string | undefined {
  for (const [prefix, value] of routes) {
    if (
      prefix === "/" || path === prefix || path.startsWith(prefix + "/")
    ) {
      return value;
    }
  }
  return undefined;
}

function checkMethodTable(
  name: string,
  table: unknown,
  fallback: Readonly<Record<string, string>>,
  problem: (value: string) => string | null,
): ReadonlyMap<string, string> {
  const source = table ?? fallback;
  if (typeof source !== "object" || source === null || Array.isArray(source)) {
    throw new TypeError(`${name} must be an object of method → permission`);
  }
  const map = new Map<string, string>();
  for (const [method, value] of Object.entries(source)) {
    if (!METHOD.test(method)) {
      throw new RangeError(
        `${name}: ${JSON.stringify(method)} is not a method`,
      );
    }
    if (typeof value !== "string") {
      throw new TypeError(`${name}[${method}] must be a string`);
    }
    const why = problem(value);
    if (why !== null) throw new RangeError(`${name}[${method}]: ${why}`);
    map.set(method, value);
  }
  return map;
}

/** An HTTP method as the questions use it: an upper-case token. */
const METHOD = /^[A-Z][A-Z0-9_-]{0,31}$/;

/**
 * The method → SELinux permission map used when none is given: the
 * permissions of the `peersec_http` class.
 *
 * @example
 * ```ts
 * import { DEFAULT_SELINUX_PERMISSIONS } from "@peersec/peersec/access";
 *
 * // Add OPTIONS to the default map (the class needs an `options` permission).
 * const permissions = { ...DEFAULT_SELINUX_PERMISSIONS, OPTIONS: "options" };
 * ```
 */
export const DEFAULT_SELINUX_PERMISSIONS: Readonly<Record<string, string>> =
  Object.freeze({
    GET: "get",
    HEAD: "head",
    POST: "post",
    PUT: "put",
    PATCH: "patch",
    DELETE: "delete",
  });

/**
 * The method → Smack access map used when none is given.
 *
 * @example
 * ```ts
 * import { DEFAULT_SMACK_ACCESS } from "@peersec/peersec/access";
 *
 * // DELETE needs write and "t" (transmute) here.
 * const access = { ...DEFAULT_SMACK_ACCESS, DELETE: "wt" };
 * ```
 */
export const DEFAULT_SMACK_ACCESS: Readonly<Record<string, string>> = Object
  .freeze({
    GET: "r",
    HEAD: "r",
    OPTIONS: "r",
    POST: "w",
    PUT: "w",
    PATCH: "w",
    DELETE: "w",
  });

/** How requests become questions (see {@linkcode createRequestAccess}). */
export interface RequestAccessOptions {
  /** For SELinux. */
  selinux?: {
    /**
     * The target context of requests no route matches (default: this
     * process's own context, as dbus-daemon uses its own).
     */
    target?: string;
    /** Canonical path prefix → target context; the longest match wins. */
    routes?: Readonly<Record<string, string>>;
    /**
     * Method → permission of the class. Replaces the default
     * (`GET get, HEAD head, POST post, PUT put, PATCH patch, DELETE
     * delete`); other methods are denied (`unknown-permission`).
     */
    permissions?: Readonly<Record<string, string>>;
  };
  /** For AppArmor. */
  apparmor?: {
    /** This server's name in the paths (default `"default"`). */
    service?: string;
    /** The paths' first segment (default `"/peersec-http"`). */
    prefix?: string;
    /** The permission letters asked for (default `"r"`). */
    permission?: string;
  };
  /** For Smack. */
  smack?: {
    /**
     * The object label of requests no route matches. There is no default
     * (not the server's own label: every client that may connect has `w` on
     * it); without it and a matching route, requests are denied
     * (`invalid-object`).
     */
    object?: string;
    /** Canonical path prefix → object label; the longest match wins. */
    routes?: Readonly<Record<string, string>>;
    /**
     * Method → access letters. Replaces the default (`GET`, `HEAD`,
     * `OPTIONS` → `r`; `POST`, `PUT`, `PATCH`, `DELETE` → `w`).
     */
    access?: Readonly<Record<string, string>>;
  };
}

/** What a request asks the LSM, or why it cannot be asked. */
export type RequestQuestion =
  | {
    /** The object (target context, virtual path, object label). */
    readonly object: string;
    /** The permission. */
    readonly permission: string;
    /** The canonical path. */
    readonly path: string;
    readonly reason?: undefined;
    readonly detail?: undefined;
  }
  | {
    readonly object?: undefined;
    readonly permission?: undefined;
    readonly path?: undefined;
    /** Why there is no question (the decision's reason). */
    readonly reason: AccessReason;
    /** For a person. */
    readonly detail: string;
  };

/** Requests checked against the LSM policy (see {@linkcode createRequestAccess}). */
export interface RequestAccess {
  /** The checker asked. */
  readonly checker: AccessChecker;
  /**
   * The question a request asks: object and permission, or why there is
   * none.
   *
   * @param method The request's method (`"GET"`).
   * @param path The request's path.
   */
  question(method: string, path: string): RequestQuestion;
  /**
   * May the peer labelled `subject` make this request?
   *
   * @param subject The peer's label (null: it has none, denied).
   * @param method The request's method.
   * @param path The request's path (query string ignored).
   * @param auditFields More audit fields (e.g. `{ spid: peer.pid }`);
   *   `method` and `path` are added here.
   * @returns The decision.
   * @throws {TypeError} for arguments of the wrong type.
   */
  check(
    subject: string | null | undefined,
    method: string,
    path: string,
    auditFields?: AuditFields,
  ): AccessDecision;
}

/**
 * Maps HTTP requests to questions for an {@linkcode AccessChecker}: the
 * method and canonical path of each request become the object and
 * permission of the LSM the checker asks (see the module's description).
 * Only the LSM's own section of `options` is used, but every section is
 * checked now, so one configuration can serve SELinux, AppArmor and Smack
 * hosts alike.
 *
 * @param checker The checker to ask.
 * @param options Per LSM: targets, routes, method maps, service name.
 * @returns The request checker.
 * @throws {TypeError} for options of the wrong type.
 * @throws {RangeError} for a route that is not a canonical path, a context
 *   or label that cannot be one, a method map with an unknown permission.
 *
 * @example
 * ```ts
 * import { createAccessChecker, createRequestAccess } from "@peersec/peersec/access";
 *
 * const access = createRequestAccess(createAccessChecker(), {
 *   selinux: { routes: { "/admin": "system_u:object_r:myapi_admin_t:s0" } },
 *   apparmor: { service: "myapi" },
 *   smack: { object: "myapi", routes: { "/admin": "myapi-admin" } },
 * });
 * const peerLabel = "system_u:system_r:backup_t:s0"; // from getPeerSecurityContext(fd)
 * const decision = access.check(peerLabel, "GET", "/v1/items?page=2", { spid: 1234 });
 * if (!decision.allowed) console.error(decision.detail);
 * ```
 */
export function createRequestAccess(
  checker: AccessChecker,
  options: RequestAccessOptions = {},
): RequestAccess {
  if (
    checker === null || typeof checker !== "object" ||
    typeof checker.check !== "function" ||
    typeof checker.ownLabel !== "function"
  ) {
    throw new TypeError("createRequestAccess takes an AccessChecker");
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("createRequestAccess takes an options object");
  }
  const selinux = options.selinux === undefined ? {} : options.selinux;
  const apparmor = options.apparmor === undefined ? {} : options.apparmor;
  const smack = options.smack === undefined ? {} : options.smack;
  for (
    const [name, section] of [["selinux", selinux], ["apparmor", apparmor], [
      "smack",
      smack,
    ]] as const
  ) {
    if (section === null || typeof section !== "object") {
      throw new TypeError(`options.${name} must be an object`);
    }
  }
  if (selinux.target !== undefined) {
    if (typeof selinux.target !== "string") {
      throw new TypeError("selinux.target must be a string");
    }
    const problem = selinuxContextProblem(selinux.target);
    if (problem !== null) throw new RangeError(`selinux.target: ${problem}`);
  }
  const selinuxRoutes = checkRoutes(
    "selinux.routes",
    selinux.routes,
    selinuxContextProblem,
  );
  const selinuxPermissions = checkMethodTable(
    "selinux.permissions",
    selinux.permissions,
    DEFAULT_SELINUX_PERMISSIONS,
    policyNameProblem,
  );
  const service = apparmor.service ?? "default";
  if (
    typeof service !== "string" ||
    !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(service) || /^\.+$/.test(service)
  ) {
    throw new RangeError(
      "apparmor.service must be a name of letters, digits, . _ - (not only dots)",
    );
  }
  const prefix = apparmor.prefix ?? "/peersec-http";
  if (
    typeof prefix !== "string" || prefix === "/" ||
    canonicalRequestPath(prefix) !== prefix || /[*?[\]{}@^"]/.test(prefix)
  ) {
    throw new RangeError(
      "apparmor.prefix must be a canonical path other than / with no AppArmor pattern characters",
    );
  }
  const apparmorPermission = apparmor.permission ?? "r";
  if (
    typeof apparmorPermission !== "string" ||
    appArmorPermissionBits(apparmorPermission) === null
  ) {
    throw new RangeError(
      "apparmor.permission must be AppArmor file permission letters",
    );
  }
  if (smack.object !== undefined) {
    if (typeof smack.object !== "string") {
      throw new TypeError("smack.object must be a string");
    }
    const problem = smackLabelProblem(smack.object);
    if (problem !== null) throw new RangeError(`smack.object: ${problem}`);
  }
  const smackRoutes = checkRoutes(
    "smack.routes",
    smack.routes,
    smackLabelProblem,
  );
  const smackAccess = checkMethodTable(
    "smack.access",
    smack.access,
    DEFAULT_SMACK_ACCESS,
    (value) =>
      smackAccessString(value) === null ? "not access letters of rwxatl" : null,
  );

  // The server's own label, read once, only where it is the default.
  let ownLabel: string | null | undefined;
  const own = () => {
    if (ownLabel === undefined) ownLabel = checker.ownLabel();
    return ownLabel;
  };

  const question = (method: string, path: string): RequestQuestion => {
    if (typeof method !== "string" || typeof path !== "string") {
      throw new TypeError("method and path must be strings");
    }
    const lsm = checker.lsm;
    if (!METHOD.test(method)) {
      return {
        reason: "unknown-permission",
        detail: `method ${
          quote(method)
        } is not an upper-case HTTP method token`,
      };
    }
    const canonical = canonicalizeRequestPath(path);
    if (canonical.path === undefined) {
      return {
        reason: "invalid-object",
        detail: `path ${quote(path)} ${canonical.problem}`,
      };
    }
    const where = canonical.path;
    switch (lsm) {
      case "selinux": {
        const permission = selinuxPermissions.get(method);
        if (permission === undefined) {
          return {
            reason: "unknown-permission",
            detail: `no SELinux permission is mapped to method ${method}`,
          };
        }
        const object = routeFor(selinuxRoutes, where) ?? selinux.target ??
          own();
        if (object === null) {
          return {
            reason: "invalid-object",
            detail:
              "no target context: set selinux.target (this process's own context cannot be read)",
          };
        }
        return { object, permission, path: where };
      }
      case "apparmor":
        return {
          object: `${prefix}/${service}/${method}${
            where === "/" ? "/" : where
          }`,
          permission: apparmorPermission,
          path: where,
        };
      case "smack": {
        const permission = smackAccess.get(method);
        if (permission === undefined) {
          return {
            reason: "unknown-permission",
            detail: `no Smack access is mapped to method ${method}`,
          };
        }
        // No default: a client needs `w` on the server's own label to
        // connect at all, so that label would grant it every method.
        const object = routeFor(smackRoutes, where) ?? smack.object;
        if (object === undefined) {
          return {
            reason: "invalid-object",
            detail:
              "no object label for this path: set smack.object (or a route)",
          };
        }
        return { object, permission, path: where };
      }
      default:
        return { reason: "unavailable", detail: checker.problem ?? "no LSM" };
    }
  };

  return Object.freeze({
    checker,
    question,
    check(
      subject: string | null | undefined,
      method: string,
      path: string,
      auditFields?: AuditFields,
    ): AccessDecision {
      const extra = checkAuditFields(auditFields);
      if ("method" in extra || "path" in extra) {
        throw new RangeError(
          "audit fields method and path are added by the request check",
        );
      }
      const asked = question(method, path);
      if (asked.reason !== undefined) {
        return decision(
          false,
          asked.reason,
          checker.lsm,
          `${checker.lsm ?? "no LSM"}: ${asked.reason}: ${asked.detail}`,
        );
      }
      return checker.check(subject, asked.object, asked.permission, {
        method,
        path: asked.path,
        ...extra,
      });
    },
  });
}
