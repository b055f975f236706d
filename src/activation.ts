/**
 * systemd-style socket activation: the listening sockets a service manager
 * passed to this process (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_PIDFDID`,
 * `LISTEN_FDNAMES`; the fds start at 3), read as sd_listen_fds(3) and
 * sd_listen_fds_with_names(3) read them:
 *   - the variables count only when `LISTEN_PID` is this process and, when
 *     `LISTEN_PIDFDID` is set and this kernel can tell, that id is this
 *     process's pidfd inode: a pid alone can be reused;
 *   - every passed fd is made close-on-exec, so that child processes do not
 *     inherit the listeners;
 *   - `LISTEN_FDNAMES` must name every fd, no more and no fewer.
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
  if (!/^\d+$/.test(count) || Number(count) > 65536) {
    throw invalid(`LISTEN_FDS is not a count of fds: ${JSON.stringify(count)}`);
  }
  const total = Number(count);
  const nameList = names === undefined ? null : names.split(":");
  if (total > 0 && nameList !== null && nameList.length !== total) {
    throw invalid(
      `LISTEN_FDNAMES names ${nameList.length} fd(s), LISTEN_FDS passes ${total}: ` +
        JSON.stringify(names),
    );
  }
  const fds = Array.from({ length: total }, (_, index) => ({
    fd: LISTEN_FDS_START + index,
    name: nameList === null ? null : nameList[index],
  }));
  for (const { fd } of fds) setCloseOnExec(reader, fd);
  return fds;
}
