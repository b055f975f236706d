/**
 * systemd-style socket activation: the listening sockets a service manager
 * passed to this process (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_PIDFDID`,
 * `LISTEN_FDNAMES`; the fds start at 3), read as sd_listen_fds(3) and
 * sd_listen_fds_with_names(3) read them:
 *   - the variables count only when `LISTEN_PID` is this process and, when
 *     `LISTEN_PIDFDID` is set and this kernel can tell, that id is this
 *     process's pidfd inode: a pid alone can be reused;
 *   - `LISTEN_FDS` is a count from 1 to INT_MAX − 3 (so that the last fd is
 *     an int); 0 or more is EINVAL there, and an error here;
 *   - every passed fd is made close-on-exec, so that child processes do not
 *     inherit the listeners — first, before any check below can throw;
 *   - every passed fd must be a socket. sd_listen_fds does not look, but in
 *     a C program nothing else is open yet; in a JavaScript runtime the
 *     runtime's own fds (its epoll fd first, in Deno, Bun and Node) follow
 *     the passed ones, and a `LISTEN_FDS` that counts more than were passed
 *     would hand them out as listeners;
 *   - `LISTEN_FDNAMES` must name every fd, no more and no fewer; an empty
 *     value is one empty name, as systemd splits it.
 *
 * The environment and this process's ids come from the runtime layer; this
 * module only decides.
 *
 * @module
 */
import type { PeerSecReader } from "./core.ts";
import { FCNTL } from "./constants.ts";
import { PeerSecError } from "./errors.ts";

/** The first passed fd: SD_LISTEN_FDS_START. */
export const LISTEN_FDS_START = 3;

/** The most fds `LISTEN_FDS` may count: the last one, 3 + n − 1, is an int. */
export const MAX_LISTEN_FDS = 2 ** 31 - 1 - LISTEN_FDS_START;

/** The variables socket activation uses, all removed by `unsetEnvironment`. */
export const LISTEN_VARIABLES = [
  "LISTEN_PID",
  "LISTEN_PIDFDID",
  "LISTEN_FDS",
  "LISTEN_FDNAMES",
] as const;

/** One listening socket passed by the service manager. */
export interface ListenFd {
  /** The fd (3, 4, …). */
  fd: number;
  /**
   * Its name from `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`), which
   * may be empty; `null` when the manager passed no names at all. (systemd's
   * C API says `"unknown"` there, which a real name can equal.)
   */
  name: string | null;
}

/** What the activation reader needs from the runtime. */
export interface ActivationEnvironment {
  /** The value of a variable, or undefined. */
  get(name: string): string | undefined;
  /** Removes a variable. */
  delete(name: string): void;
  /** This process's pid. */
  readonly pid: number;
  /**
   * This process's pidfd inode id (what `LISTEN_PIDFDID` carries), or null
   * when this kernel cannot tell (no SO_PEERPIDFD, no pidfs).
   */
  ownPidfdId(): bigint | null;
}

function invalid(message: string): PeerSecError {
  return new PeerSecError(message, { code: "ERR_INVALID_ENVIRONMENT" });
}

/** Sets FD_CLOEXEC on a passed fd, as sd_listen_fds does. */
function setCloseOnExec(reader: PeerSecReader, fd: number): void {
  const { backend } = reader;
  const flags = backend.fcntl(fd, FCNTL.F_GETFD, 0);
  const set = flags.rc === -1
    ? flags
    : backend.fcntl(fd, FCNTL.F_SETFD, flags.rc | FCNTL.FD_CLOEXEC);
  if (set.rc === -1) {
    const code = reader.errnoName(set.errno);
    throw new PeerSecError(
      code === "EBADF"
        ? `LISTEN_FDS names fd ${fd}, which is not open [EBADF]`
        : `fcntl(${fd}, F_SETFD, FD_CLOEXEC) failed with errno ${set.errno} [${code}]`,
      {
        code: code === "EBADF" ? "ERR_INVALID_ENVIRONMENT" : code,
        errno: set.errno,
        syscall: "fcntl",
        fd,
      },
    );
  }
}

/**
 * Refuses an fd that is not a socket. Any SOL_SOCKET option answers on any
 * socket and fails with ENOTSOCK elsewhere; SO_PEERCRED is in the constants
 * of every architecture.
 */
function checkSocket(reader: PeerSecReader, fd: number): void {
  const value = new Uint8Array(UCRED_SIZE);
  const { SOL_SOCKET, SO_PEERCRED } = reader.constants.socket;
  const { rc, errno } = reader.backend.getsockopt(
    fd,
    SOL_SOCKET,
    SO_PEERCRED,
    value,
    UCRED_SIZE,
  );
  if (rc === -1) {
    const code = reader.errnoName(errno);
    throw new PeerSecError(
      `LISTEN_FDS passes fd ${fd}, which is not a socket [${code}]: a FIFO ` +
        "or file, or — when LISTEN_FDS counts more fds than were passed — one " +
        "of the runtime's own, which follow the passed ones",
      { code: "ERR_INVALID_ENVIRONMENT", errno, syscall: "getsockopt", fd },
    );
  }
}

/** `struct ucred`: pid, uid, gid. */
const UCRED_SIZE = 12;

/** See `listenFds` in mod.ts. */
export function readListenFds(
  reader: PeerSecReader,
  env: ActivationEnvironment,
  options: { unsetEnvironment?: boolean } = {},
): ListenFd[] {
  if (options === null || typeof options !== "object") {
    throw new TypeError("listenFds takes an options object");
  }
  const pid = env.get("LISTEN_PID");
  const pidfdId = env.get("LISTEN_PIDFDID");
  const count = env.get("LISTEN_FDS");
  const names = env.get("LISTEN_FDNAMES");
  if (options.unsetEnvironment === true) {
    for (const variable of LISTEN_VARIABLES) env.delete(variable);
  }
  // Not for this process (a parent's variables leaked to a child), or none.
  if (pid === undefined || count === undefined) return [];
  if (!/^[1-9]\d*$/.test(pid)) {
    throw invalid(`LISTEN_PID is not a pid: ${JSON.stringify(pid)}`);
  }
  if (Number(pid) !== env.pid) return [];
  if (pidfdId !== undefined) {
    if (!/^\d+$/.test(pidfdId) || BigInt(pidfdId) >= 2n ** 64n) {
      throw invalid(
        `LISTEN_PIDFDID is not a pidfd inode id: ${JSON.stringify(pidfdId)}`,
      );
    }
    // Same pid, another process (the pid was reused): not ours.
    const own = env.ownPidfdId();
    if (own !== null && own !== BigInt(pidfdId)) return [];
  }
  // sd_listen_fds: 0 is EINVAL (a manager that passes nothing sets nothing),
  // and so is a count whose last fd would overflow an int.
  const total = /^0*\d{1,10}$/.test(count) ? Number(count) : 0;
  if (total < 1 || total > MAX_LISTEN_FDS) {
    throw invalid(
      `LISTEN_FDS is not a count of passed fds (1 to ${MAX_LISTEN_FDS}): ` +
        JSON.stringify(count),
    );
  }
  // Close-on-exec before anything can throw: a bad name list must not leave
  // the listeners to child processes. The loop stops at the first fd that is
  // not open (EBADF), so a huge count costs no more than the open fds; that
  // failure waits until the fds before it are checked, so that the error
  // names the first fd in order that is wrong (with too large a count: the
  // runtime's first fd, not a later gap).
  let end = LISTEN_FDS_START + total;
  let notOpen: unknown = null;
  for (let fd = LISTEN_FDS_START; fd < end; fd++) {
    try {
      setCloseOnExec(reader, fd);
    } catch (error) {
      notOpen = error;
      end = fd;
    }
  }
  for (let fd = LISTEN_FDS_START; fd < end; fd++) checkSocket(reader, fd);
  if (notOpen !== null) throw notOpen;
  // systemd splits without coalescing: "" is one empty name, "a:" two.
  const nameList = names === undefined ? null : names.split(":");
  if (nameList !== null && nameList.length !== total) {
    throw invalid(
      `LISTEN_FDNAMES names ${nameList.length} fd(s), LISTEN_FDS passes ${total}: ` +
        JSON.stringify(names),
    );
  }
  return Array.from({ length: total }, (_, index) => ({
    fd: LISTEN_FDS_START + index,
    name: nameList === null ? null : nameList[index],
  }));
}
