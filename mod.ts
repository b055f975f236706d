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
import { defaultReader as reader } from "./ffi/default_reader.ts";
import { activationEnvironment } from "./ffi/runtime.ts";
import {
  LISTEN_VARIABLES,
  type ListenFd,
  readListenFds,
} from "./src/activation.ts";
import { borrowSocketFd, withFoundSocketFd } from "./src/socket_fd.ts";
import {
  closeFileDescriptor,
  type PeerCredentials,
  type PeerIdentity,
  type PeerInfo,
  readPeerCredentials,
  readPeerGroups,
  readPeerIdentity,
  readPeerInfo,
  readPeerPidfd,
} from "./src/identity.ts";

export { PeerSecError, type PeerSecErrorOptions } from "./src/errors.ts";
export type {
  PeerCredentials,
  PeerIdentity,
  PeerInfo,
} from "./src/identity.ts";
export type { ListenFd } from "./src/activation.ts";
export {
  type AppArmorLabel,
  type AppArmorProfile,
  parseAppArmorLabel,
  parseSELinuxContext,
  type SELinuxContext,
} from "./src/labels.ts";

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

/**
 * The credentials of the peer process when it connected (SO_PEERCRED): its
 * pid, effective uid and effective gid, as the kernel recorded them — not
 * anything the peer claims.
 *
 * @param fd A connected UNIX socket's file descriptor.
 * @returns `{ pid, uid, gid }`; `pid` is 0 when the peer's process is not
 *   visible in this pid namespace.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} `ENODATA` when the socket carries no credentials
 *   (TCP reports pid 0 and uid/gid 4294967295, which is not an identity);
 *   `EBADF`, `ENOTSOCK` and other OS failures; `ERR_MALFORMED_ANSWER` for an
 *   answer shorter than a `struct ucred`.
 *
 * @example
 * ```ts
 * import { getPeerCredentials } from "@peersec/peersec";
 *
 * const fd = 3; // an accepted UNIX-socket connection
 * const { pid, uid } = getPeerCredentials(fd);
 * if (uid !== 0) throw new Error(`pid ${pid} is not root`);
 * ```
 */
export function getPeerCredentials(fd: number): PeerCredentials {
  return readPeerCredentials(reader, fd);
}

/**
 * The supplementary groups of the peer process when it connected
 * (SO_PEERGROUPS). The list is read with the same bounded growth loop as the
 * label, since the kernel answers ERANGE with the size it needs.
 *
 * @param fd A connected UNIX socket's file descriptor.
 * @returns The group ids, in the kernel's order (possibly empty).
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} `ENODATA` when the socket carries no credentials
 *   (TCP); other OS failures; `ERR_MALFORMED_ANSWER` for a length that is not
 *   a multiple of 4.
 *
 * @example
 * ```ts
 * import { getPeerGroups } from "@peersec/peersec";
 *
 * const fd = 3;
 * const mayAdminister = getPeerGroups(fd).includes(27); // "sudo" on Debian
 * ```
 */
export function getPeerGroups(fd: number): number[] {
  return readPeerGroups(reader, fd);
}

/**
 * A pidfd for the peer process (SO_PEERPIDFD, Linux 6.5+): an fd that keeps
 * referring to that very process even after its pid is reused.
 *
 * **The returned fd is new and yours: close it with {@linkcode closeFd}**
 * (Deno's `node:fs` refuses to close fds it did not open).
 *
 * @param fd A connected UNIX socket's file descriptor.
 * @returns A new pidfd.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} `ENOPROTOOPT` or `EINVAL` on kernels before 6.5 or
 *   sockets without the option; `ENODATA` or `ESRCH` when the peer process is
 *   gone or unknown; other OS failures (`EMFILE`, …).
 *
 * @example
 * ```ts
 * import { closeFd, getPeerPidfd } from "@peersec/peersec";
 *
 * const fd = 3;
 * const pidfd = getPeerPidfd(fd);
 * try {
 *   // e.g. poll it to learn when the peer exits
 * } finally {
 *   closeFd(pidfd);
 * }
 * ```
 */
export function getPeerPidfd(fd: number): number {
  return readPeerPidfd(reader, fd);
}

/**
 * Closes a file descriptor with libc's `close`, in every runtime: for the
 * pidfds {@linkcode getPeerPidfd} returns.
 *
 * @param fd The fd to close.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} with `syscall: "close"` (`EBADF` when it is not open).
 *
 * @example
 * ```ts
 * import { closeFd, getPeerPidfd } from "@peersec/peersec";
 *
 * closeFd(getPeerPidfd(3));
 * ```
 */
export function closeFd(fd: number): void {
  closeFileDescriptor(reader, fd);
}

/**
 * Makes peersec ready now — detects the runtime, opens libc through its FFI —
 * so that a server fails at start, with the error its first call would have
 * thrown, instead of on its first client. Every other function does this on
 * first use; calling it is optional.
 *
 * @throws {PeerSecError} `ERR_KOFFI_MISSING` (Node before 26 without koffi),
 *   `ERR_FFI_PERMISSION` (Deno without `--allow-ffi`), `ERR_NODE_PERMISSION`
 *   (Node's permission model without `--allow-ffi` / `--allow-addons`; the
 *   message names the flag for the Node that runs), `ERR_NODE_FFI_MISSING`,
 *   `ERR_LIBC_LOAD`, `ERR_UNSUPPORTED_PLATFORM` (not Linux),
 *   `ERR_UNSUPPORTED_RUNTIME`; each message says what to do.
 *
 * @example
 * ```ts
 * import { assertAvailable } from "@peersec/peersec";
 *
 * assertAvailable(); // at start: throws here, not on the first connection
 * ```
 */
export function assertAvailable(): void {
  void reader.backend;
}

/**
 * Who the peer is, in one call: its credentials, groups and security label.
 * A missing label is `securityContext: null`, not an exception.
 *
 * @param fd A connected UNIX socket's file descriptor.
 * @returns `{ pid, uid, gid, groups, securityContext }`.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} as {@linkcode getPeerCredentials} (so `ENODATA` on
 *   TCP) and {@linkcode getPeerGroups}, and for label failures other than "no
 *   label".
 *
 * @example
 * ```ts
 * import { getPeerIdentity } from "@peersec/peersec";
 *
 * const { pid, uid, groups, securityContext } = getPeerIdentity(3);
 * console.log(`pid ${pid} uid ${uid} groups ${groups} label ${securityContext ?? "none"}`);
 * ```
 */
export function getPeerIdentity(fd: number): PeerIdentity {
  return readPeerIdentity(reader, fd);
}

/**
 * Everything a peer carries, for any socket kind, without an exception for
 * what the socket simply lacks: a TCP peer (labeled networking or not) has
 * `credentials: null` and `groups: null`, a socket without a label
 * `securityContext: null`. Use it where one code path serves UNIX and TCP
 * clients; {@linkcode getPeerIdentity} stays the call for UNIX peers, where
 * missing credentials are an error.
 *
 * @param fd A socket's file descriptor (connected, accepted, or listening).
 * @returns `{ credentials: { pid, uid, gid } | null, groups, securityContext }`.
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer from 0 to 2³¹−1.
 * @throws {PeerSecError} for failures other than "the socket has none"
 *   (`EBADF`, `ENOTSOCK`, and the label errors of
 *   {@linkcode tryGetPeerSecurityContext}; an empty label is `null`).
 *
 * @example
 * ```ts
 * import { getPeerInfo } from "@peersec/peersec";
 *
 * const { credentials, securityContext } = getPeerInfo(3);
 * console.log(credentials === null ? "a network peer" : `uid ${credentials.uid}`);
 * console.log(`label ${securityContext ?? "none"}`);
 * ```
 */
export function getPeerInfo(fd: number): PeerInfo {
  return readPeerInfo(reader, fd);
}

/**
 * The fd of a connection object, borrowed: it stays the socket's, so do not
 * close it — and use it at once, never after an `await`: once the runtime
 * closes the socket the kernel gives the number to the next connection, and
 * a late read would report that other peer. For anything asynchronous use
 * {@linkcode withSocketFd}. Works for `node:net` sockets in Node, Bun and
 * Deno (UNIX sockets; TCP in Node and Bun), `req.socket` of `node:http` in
 * Node and Deno, and `Bun.listen` sockets.
 *
 * Deno exposes only a *duplicate* of a TCP socket's fd, which this function
 * cannot hand out without leaking it: use {@linkcode withSocketFd}, which
 * works everywhere and closes the duplicate.
 *
 * @param socket A connection object.
 * @returns Its fd.
 * @throws {TypeError} for anything that is not a socket object (an fd, an
 *   HTTP request: pass `req.socket`).
 * @throws {PeerSecError} `ERR_NO_SOCKET_FD` for objects that carry no fd —
 *   `Deno.serve` and `Bun.serve` requests, `Deno.listen` connections, Bun's
 *   `node:http` sockets (the message names the pattern that works: a
 *   `node:net` server handing connections to `node:http`), and Deno TCP
 *   sockets; `ERR_SOCKET_CLOSED` for a closed socket.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { getPeerIdentity, socketFd } from "@peersec/peersec";
 *
 * net.createServer((socket) => {
 *   console.log(getPeerIdentity(socketFd(socket)));
 *   socket.end();
 * }).listen("/tmp/demo.sock");
 * ```
 */
export function socketFd(socket: unknown): number {
  return borrowSocketFd(reader, socket);
}

/**
 * Calls `use` with an fd for a connection object's socket that stays that
 * socket for as long as `use` runs: a close-on-exec duplicate (fcntl
 * `F_DUPFD_CLOEXEC`) that this function owns and closes when `use` returns,
 * throws, or — when `use` returns a promise or any thenable — once that
 * settles. So an async `use` may read the peer after an `await`: even if the
 * client went away and the runtime's fd number went to a new connection, the
 * duplicate still names the first. Do not close the fd yourself (a failing
 * close afterwards is ignored, never turned into a rejection). Works for every
 * socket {@linkcode socketFd} takes, plus Deno's TCP sockets.
 *
 * @param socket A connection object (`node:net` socket, `req.socket`,
 *   `Bun.listen` socket).
 * @param use Called with the fd; its result is returned.
 * @returns What `use` returned.
 * @throws {TypeError} and {@linkcode PeerSecError} as {@linkcode socketFd}.
 *
 * @example
 * ```ts
 * import http from "node:http";
 * import { getPeerIdentity, withSocketFd } from "@peersec/peersec";
 *
 * http.createServer(async (request, response) => {
 *   const identity = await withSocketFd(request.socket, async (fd) => {
 *     await new Promise((resolve) => setTimeout(resolve, 10)); // any await
 *     return getPeerIdentity(fd); // still this request's peer
 *   });
 *   response.end(JSON.stringify(identity));
 * }).listen("/tmp/demo.sock");
 * ```
 */
export function withSocketFd<T>(socket: unknown, use: (fd: number) => T): T {
  return withFoundSocketFd(reader, socket, use);
}

/**
 * The listening sockets a service manager passed to this process
 * (systemd-style socket activation, as sd_listen_fds(3)): `LISTEN_FDS` fds
 * from 3 on, when `LISTEN_PID` is this process and — when the manager sets
 * `LISTEN_PIDFDID` (systemd 256+) and the kernel can tell (SO_PEERPIDFD,
 * Linux 6.5+) — the pidfd inode id is this process's too, so a reused pid is
 * not mistaken for this one. Every returned fd is made close-on-exec, as
 * sd_listen_fds does, so child processes do not inherit the listeners. Empty
 * when nothing was passed. In Deno, needs
 * `--allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES`; the
 * pidfd check there needs `--allow-all` (Deno guards /proc/self/fdinfo behind
 * it) and is otherwise skipped, as sd_listen_fds skips it where the kernel
 * cannot tell.
 *
 * @param options `unsetEnvironment: true` removes the four variables so that
 *   child processes do not see them (default: leave them).
 * @returns The fds with their `LISTEN_FDNAMES` names (`null` when the manager
 *   passed no names; an empty name stays `""`).
 * @throws {PeerSecError} `ERR_INVALID_ENVIRONMENT` for malformed variables,
 *   a `LISTEN_FDNAMES` that does not name exactly `LISTEN_FDS` fds, or an fd
 *   that is not open; `ERR_ENV_PERMISSION` in Deno without the env
 *   permission.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { getPeerIdentity, listenFds, socketFd } from "@peersec/peersec";
 *
 * for (const { fd } of listenFds()) {
 *   net.createServer((socket) => {
 *     socket.end(JSON.stringify(getPeerIdentity(socketFd(socket))) + "\n");
 *   }).listen({ fd });
 * }
 * ```
 */
export function listenFds(
  options: { unsetEnvironment?: boolean } = {},
): ListenFd[] {
  return readListenFds(
    reader,
    activationEnvironment(reader, LISTEN_VARIABLES),
    options,
  );
}
