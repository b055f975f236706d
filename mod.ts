/**
 * Who is on the other end of a socket: the peer's security context (its
 * SELinux, Smack or AppArmor label), read with
 * `getsockopt(fd, SOL_SOCKET, SO_PEERSEC)` through the runtime's FFI.
 *
 * Linux only. In Deno, run with `--allow-ffi`. Every function takes the fd of
 * a connected socket (UNIX stream sockets, socketpairs, and TCP with labeled
 * networking) and is synchronous.
 *
 * @example
 * ```ts
 * import { tryGetPeerSecurityContext } from "@peersec/peersec";
 *
 * const fd = 3; // the fd of an accepted connection
 * const label = tryGetPeerSecurityContext(fd);
 * console.log(label ?? "no label (no LSM labels this socket)");
 * ```
 *
 * @module
 */
import { defaultReader as reader } from "./src/default_reader.ts";

export { PeerSecError, type PeerSecErrorOptions } from "./src/errors.ts";

/**
 * The security context (label) of the peer of a connected socket, as text:
 * for example `system_u:system_r:sshd_t:s0` (SELinux), `unconfined` or
 * `firefox (enforce)` (AppArmor), or a Smack label. One trailing NUL, which
 * some security modules count in the length and others do not, is removed.
 *
 * @param fd The socket's file descriptor.
 * @returns The label, UTF-8 decoded.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} when there is no label: `code` is `"ENOPROTOOPT"`
 *   (no security module labels this socket) or `"ERR_EMPTY_LABEL"` (Smack's
 *   empty label); on any OS failure (`"EBADF"`, `"ENOTSOCK"`, …); when the
 *   label is not valid UTF-8 (`"ERR_INVALID_UTF8"`, use
 *   {@linkcode getPeerSecurityContextBytes}); or when the runtime, platform or
 *   libc is unusable (`"ERR_…"`).
 *
 * @example
 * ```ts
 * import { getPeerSecurityContext } from "@peersec/peersec";
 *
 * const fd = 3; // the fd of an accepted UNIX-socket connection
 * const label = getPeerSecurityContext(fd);
 * if (!label.startsWith("system_u:system_r:backup_t:")) {
 *   throw new Error(`refusing peer labeled ${label}`);
 * }
 * ```
 */
export function getPeerSecurityContext(fd: number): string {
  return reader.getPeerSecurityContext(fd);
}

/**
 * The peer's security context as raw bytes, for labels that are not valid
 * UTF-8 (the kernel promises printable text but no encoding). One trailing NUL
 * is removed, as in {@linkcode getPeerSecurityContext}; the array is a fresh
 * copy the caller owns.
 *
 * @param fd The socket's file descriptor.
 * @returns The label's bytes, without a trailing NUL.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} as {@linkcode getPeerSecurityContext}, except that
 *   any encoding is accepted.
 *
 * @example
 * ```ts
 * import { getPeerSecurityContextBytes } from "@peersec/peersec";
 *
 * const fd = 3;
 * const bytes = getPeerSecurityContextBytes(fd);
 * console.log(Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""));
 * ```
 */
export function getPeerSecurityContextBytes(fd: number): Uint8Array {
  return reader.getPeerSecurityContextBytes(fd);
}

/**
 * Like {@linkcode getPeerSecurityContext}, but returns `null` when no label is
 * available: the kernel answered ENOPROTOOPT (no security module labels this
 * socket: no LSM, or TCP without labeled networking) or Smack gave an empty
 * label. Every other failure still throws. Reaching `null` costs no exception.
 *
 * @param fd The socket's file descriptor.
 * @returns The label, or `null` when the socket carries none.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} on OS failures other than ENOPROTOOPT (`"EBADF"`,
 *   `"ENOTSOCK"`, …), malformed or non-UTF-8 labels, and an unusable
 *   runtime, platform or libc.
 *
 * @example
 * ```ts
 * import { tryGetPeerSecurityContext } from "@peersec/peersec";
 *
 * const fd = 3;
 * const label = tryGetPeerSecurityContext(fd);
 * console.log(label === null ? "peer is unlabeled" : `peer runs as ${label}`);
 * ```
 */
export function tryGetPeerSecurityContext(fd: number): string | null {
  return reader.tryGetPeerSecurityContext(fd);
}
