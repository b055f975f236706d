/**
 * The options every peersec server takes (`serve` and `serveNode`), checked
 * before anything listens: an unknown key is a `TypeError` — a misspelt
 * `allow` must never serve everyone — and every deadline and quota has a
 * default, so no connection lives without one.
 *
 * @module
 */
import type { Peer, PeerPolicy } from "./policy.ts";
import { checkSocketMode } from "../src/unix_listen.ts";

/** Where a server listens, or where a request came from. */
export type ServeAddr =
  | { transport: "unix"; path: string }
  | { transport: "tcp"; hostname: string; port: number };

/** What a handler receives besides the request. */
export interface ServeHandlerInfo {
  /** The peer of the connection the request came on, read at accept. */
  readonly peer: Peer;
  /** The client's address: the socket path for UNIX sockets, host and port for TCP. */
  readonly remoteAddr: ServeAddr;
}

/**
 * What a server asks of a request checker: `peersec/access`'s
 * `createRequestAccess(checker, …)` gives one; any object with this method
 * does.
 */
export interface RequestChecker {
  /**
   * Whether the peer labelled `subject` may make this request.
   *
   * @param subject The peer's label (null: it has none).
   * @param method The request's method.
   * @param path The request target as sent.
   * @param auditFields Extra fields for an audit record (`spid`: the peer's pid).
   */
  check(
    subject: string | null,
    method: string,
    path: string,
    auditFields?: Readonly<Record<string, string | number>>,
  ): { readonly allowed: boolean };
}

/**
 * Options shared by `serve` and `serveNode`: where to listen (exactly one of
 * `path`, `fd` or `port`), who may talk (`allow`), and the deadlines and
 * quotas that keep any one peer from holding the server.
 */
export interface ListenOptions {
  /** A UNIX socket path to create (a stale socket there is replaced; anything else is refused). */
  path?: string;
  /** An inherited listening socket, e.g. from `listenFds()`. */
  fd?: number;
  /** A TCP port (0: any free one), for labeled networking. */
  port?: number;
  /** With `port`: the address to bind (default `127.0.0.1`). */
  hostname?: string;
  /** With `path`: the socket file's mode (e.g. `0o660`), in force before anyone can connect. */
  mode?: number;
  /**
   * Who may make requests: a list of rules, a function, or `"everyone"`.
   * Absent: only peers running as this process's own effective uid.
   */
  allow?: PeerPolicy;
  /**
   * The system's security policy decides each request, after `allow`: the
   * request checker of `peersec/access` (`createRequestAccess(checker,
   * …)`), asked with the peer's label, the method and the path. A denial is
   * a `403` for that request (the connection stays); the decision is audited
   * as the checker says.
   */
  access?: RequestChecker;
  /** Called once listening, with the address. */
  onListen?: (addr: ServeAddr) => void;
  /**
   * Called once per refused connection, when it is accepted (for audit
   * logs); its requests are answered 403 and never reach the handler.
   */
  onDenied?: (peer: Peer, info: ServeHandlerInfo) => void;
  /** Shuts the server down when aborted. */
  signal?: AbortSignal;
  /**
   * Milliseconds a connection has, from accept, to send a whole request
   * header block (default 10 000); a later request on a keep-alive
   * connection has `keepAliveTimeout`.
   */
  headersTimeout?: number;
  /**
   * Milliseconds an idle keep-alive connection may wait for its next
   * request's header block, from the end of the last response (default 5 000).
   */
  keepAliveTimeout?: number;
  /**
   * Milliseconds a request's body may take to arrive whole, and that a
   * response may wait for a peer that stops reading it (default 60 000).
   */
  requestTimeout?: number;
  /**
   * Milliseconds a refused connection lives: time to send its first request
   * and read the 403 (default 2 000).
   */
  deniedTimeout?: number;
  /**
   * Milliseconds `shutdown()` waits for requests in flight before it closes
   * every connection still open (default 10 000).
   */
  shutdownTimeout?: number;
  /** Connections open at once, all peers together (default 1024). */
  maxConnections?: number;
  /**
   * Connections open at once per uid (per address for TCP peers, which have
   * no uid) (default 128). A refused peer may hold at most
   * `min(4, maxConnectionsPerUid)`.
   */
  maxConnectionsPerUid?: number;
}

/** The deadlines and quotas, with their defaults applied. */
export interface Limits {
  headersTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
  deniedTimeout: number;
  shutdownTimeout: number;
  maxConnections: number;
  maxConnectionsPerUid: number;
}

/** The defaults of {@linkcode Limits}. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  headersTimeout: 10_000,
  keepAliveTimeout: 5_000,
  requestTimeout: 60_000,
  deniedTimeout: 2_000,
  shutdownTimeout: 10_000,
  maxConnections: 1024,
  maxConnectionsPerUid: 128,
});

/** Connections a refused peer may hold at once (each lives `deniedTimeout`). */
export const DENIED_CONNECTIONS_PER_UID = 4;

/** Every key `ListenOptions` has. */
const LISTEN_KEYS = [
  "path",
  "fd",
  "port",
  "hostname",
  "mode",
  "allow",
  "access",
  "onListen",
  "onDenied",
  "signal",
  ...Object.keys(DEFAULT_LIMITS),
] as const;

/** The longest delay a timer takes (2³¹−1 ms, about 24.8 days), and the largest quota. */
const MAX_VALUE = 2 ** 31 - 1;

/**
 * Checks `options` for a server named `entry`, whose own extra keys are
 * `extraKeys` (checked by the caller), and returns the limits. Throws a
 * `TypeError` for an unknown key, a missing or second listening target, or a
 * value of the wrong type; a `RangeError` for a number out of range.
 */
export function checkListenOptions(
  entry: string,
  options: ListenOptions,
  extraKeys: readonly string[] = [],
): Limits {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`${entry} takes an options object`);
  }
  const known = new Set<string>([...LISTEN_KEYS, ...extraKeys]);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      throw new TypeError(
        `${entry}: unknown option ${JSON.stringify(key)} (known: ${
          [...known].join(", ")
        })`,
      );
    }
  }
  const given = (["path", "fd", "port"] as const).filter((key) =>
    options[key] !== undefined
  );
  if (given.length !== 1) {
    throw new TypeError(
      `${entry} takes exactly one of path, fd or port (got ${
        given.join(", ") || "none"
      })`,
    );
  }
  if (options.path !== undefined) {
    if (typeof options.path !== "string" || options.path === "") {
      throw new TypeError("path must be a non-empty string");
    }
  }
  if (options.fd !== undefined) {
    if (
      typeof options.fd !== "number" || !Number.isInteger(options.fd) ||
      options.fd < 0
    ) {
      throw new RangeError("fd must be a non-negative integer");
    }
  }
  if (options.port !== undefined) {
    if (
      typeof options.port !== "number" || !Number.isInteger(options.port) ||
      options.port < 0 || options.port > 65535
    ) {
      throw new RangeError("port must be an integer from 0 to 65535");
    }
  }
  if (options.hostname !== undefined) {
    if (options.port === undefined) {
      throw new TypeError("hostname goes with port");
    }
    if (typeof options.hostname !== "string" || options.hostname === "") {
      throw new TypeError("hostname must be a non-empty string");
    }
  }
  if (options.mode !== undefined) {
    if (options.path === undefined) throw new TypeError("mode goes with path");
    checkSocketMode(options.mode);
  }
  for (const name of ["onListen", "onDenied"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "function") {
      throw new TypeError(`${name} must be a function`);
    }
  }
  if (
    options.access !== undefined &&
    (options.access === null || typeof options.access !== "object" ||
      typeof options.access.check !== "function")
  ) {
    throw new TypeError(
      "access must be a request checker from peersec/access's createRequestAccess",
    );
  }
  if (
    options.signal !== undefined &&
    !(options.signal instanceof AbortSignal)
  ) {
    throw new TypeError("signal must be an AbortSignal");
  }
  const limits = { ...DEFAULT_LIMITS };
  for (const name of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const value = options[name];
    if (value === undefined) continue;
    if (typeof value !== "number") {
      throw new TypeError(`${name} must be a number`);
    }
    if (!Number.isInteger(value) || value < 1 || value > MAX_VALUE) {
      throw new RangeError(
        `${name} must be a whole number from 1 to ${MAX_VALUE}, got ${value}`,
      );
    }
    limits[name] = value;
  }
  return limits;
}
