/**
 * The one error type of the library, and the messages a person reads.
 *
 * @module
 */

/**
 * What a {@linkcode PeerSecError} is built from.
 *
 * @example
 * ```ts
 * import { PeerSecError } from "@peersec/peersec";
 * const error = new PeerSecError("fd 9 is not a socket", {
 *   code: "ENOTSOCK",
 *   errno: 88,
 *   syscall: "getsockopt",
 *   fd: 9,
 * });
 * ```
 */
export interface PeerSecErrorOptions {
  /** errno name (`"ENOPROTOOPT"`) or an `ERR_…` code. */
  code: string;
  /** The positive errno value, when the kernel reported one. */
  errno?: number;
  /** The system call that failed, when one did. */
  syscall?: string;
  /** The file descriptor the call was about, when there is one. */
  fd?: number;
  /** The underlying error, when there is one. */
  cause?: unknown;
}

/**
 * A failure reading a peer's identity: an errno from the kernel (`code` is its
 * name, such as `"ENOPROTOOPT"`, and `errno` its value) or a failure of the
 * library's own (`code` starts with `ERR_`, `errno` is undefined).
 *
 * @example
 * ```ts
 * import { getPeerSecurityContext, PeerSecError } from "@peersec/peersec";
 *
 * const fd = 3; // a connected socket's fd
 * try {
 *   console.log(getPeerSecurityContext(fd));
 * } catch (error) {
 *   if (error instanceof PeerSecError && error.code === "ENOPROTOOPT") {
 *     console.log("no security module labels this socket");
 *   } else {
 *     throw error;
 *   }
 * }
 * ```
 */
export class PeerSecError extends Error {
  /** errno name (`"EBADF"`, `"ENOPROTOOPT"`, …) or an `ERR_…` code. */
  readonly code: string;
  // errno, syscall and fd are own properties only when set, so that an
  // uncaught ERR_… error prints no "errno: undefined" lines.
  /** The positive errno value from the kernel, or undefined for `ERR_…` codes. */
  declare readonly errno: number | undefined;
  /** The system call that failed (`"getsockopt"`), or undefined. */
  declare readonly syscall: string | undefined;
  /** The file descriptor the call was made on, or undefined. */
  declare readonly fd: number | undefined;

  /**
   * Makes an error; the library throws these, callers usually only read them.
   *
   * @param message What went wrong, for a person.
   * @param options The machine-readable fields.
   */
  constructor(message: string, options: PeerSecErrorOptions) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "PeerSecError";
    this.code = options.code;
    const own = this as { errno?: number; syscall?: string; fd?: number };
    if (options.errno !== undefined) own.errno = options.errno;
    if (options.syscall !== undefined) own.syscall = options.syscall;
    if (options.fd !== undefined) own.fd = options.fd;
  }
}

/**
 * The message for an errno that a `getsockopt` call reported.
 *
 * @param code errno name, or "UNKNOWN".
 * @param errno the errno value.
 * @param fd the socket.
 * @param optionName the option, e.g. "SO_PEERSEC".
 */
export function describeErrno(
  code: string,
  errno: number,
  fd: number,
  optionName: string,
): string {
  const call = `getsockopt(${fd}, SOL_SOCKET, ${optionName})`;
  if (optionName === "SO_PEERPIDFD") {
    if (code === "ENOPROTOOPT" || code === "EINVAL") {
      return `${call}: this kernel has no SO_PEERPIDFD for this socket ` +
        `(it needs Linux 6.5 or later) [${code}]`;
    }
    if (code === "ENODATA" || code === "ESRCH") {
      return `${call}: the peer process is gone or not known to this socket [${code}]`;
    }
  }
  switch (code) {
    case "ENOPROTOOPT":
      return optionName === "SO_PEERSEC"
        ? `${call}: no security module labels this socket ` +
          `(no LSM with socket labels, or TCP without labeled networking) [ENOPROTOOPT]`
        : `${call}: this kernel does not support ${optionName} [ENOPROTOOPT]`;
    case "EBADF":
      return `${call}: fd ${fd} is not an open file descriptor [EBADF]`;
    case "ENOTSOCK":
      return `${call}: fd ${fd} is not a socket [ENOTSOCK]`;
    case "ERANGE":
      return `${call}: the kernel's answer does not fit the buffer [ERANGE]`;
    case "EINVAL":
      return `${call}: the kernel rejected the request (not supported for this socket, or an old kernel) [EINVAL]`;
    case "ENODATA":
      return `${call}: the peer has no such data (no peer credentials on this socket) [ENODATA]`;
    case "ENOTCONN":
      return `${call}: the socket is not connected [ENOTCONN]`;
    case "EACCES":
    case "EPERM":
      return `${call}: permission denied by the security policy [${code}]`;
    case "ENOMEM":
      return `${call}: the kernel ran out of memory [ENOMEM]`;
    default:
      return `${call} failed with errno ${errno} [${code}]`;
  }
}
