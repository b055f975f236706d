/**
 * The peer's identity beyond its label: SO_PEERCRED, SO_PEERGROUPS and
 * SO_PEERPIDFD, read through the core's one growth loop.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { PeerSecReader } from "./core.ts";
import { checkFd } from "./core.ts";
import { PeerSecError } from "./errors.ts";

/** `struct ucred`: the peer process's credentials when it connected. */
export interface PeerCredentials {
  /** The peer's process id, as seen from this pid namespace (0 when it is not visible here). */
  pid: number;
  /** The peer's effective user id. */
  uid: number;
  /** The peer's effective group id. */
  gid: number;
}

/** Everything peersec can tell about a peer in one call. */
export interface PeerIdentity extends PeerCredentials {
  /** The peer's supplementary group ids. */
  groups: number[];
  /** The peer's security label, or `null` when none is available. */
  securityContext: string | null;
}

/**
 * What a socket's peer carries, each part `null` where the socket has none:
 * TCP and UDP peers and unconnected sockets have no credentials, and most
 * sockets no label unless a security module (or labeled networking) gives one.
 */
export interface PeerInfo {
  /** SO_PEERCRED, or `null` when the socket carries no peer credentials (only UNIX sockets do). */
  credentials: PeerCredentials | null;
  /** SO_PEERGROUPS, or `null` when the socket carries no peer credentials. */
  groups: number[] | null;
  /** The peer's security label, or `null` when none is available. */
  securityContext: string | null;
}

/** sizeof(struct ucred): three 32-bit fields. */
const UCRED_SIZE = 12;
/** (uid_t)-1: what the kernel reports for a socket with no peer credentials. */
const NO_ID = 0xffff_ffff;

function malformedAnswer(
  fd: number,
  optionName: string,
  detail: string,
): PeerSecError {
  return new PeerSecError(
    `getsockopt(${fd}, SOL_SOCKET, ${optionName}): ${detail}`,
    { code: "ERR_MALFORMED_ANSWER", syscall: "getsockopt", fd },
  );
}

function noData(
  reader: PeerSecReader,
  fd: number,
  optionName: string,
  detail: string,
): PeerSecError {
  return new PeerSecError(
    `getsockopt(${fd}, SOL_SOCKET, ${optionName}): ${detail} [ENODATA]`,
    {
      code: "ENODATA",
      errno: reader.constants.errno.ENODATA,
      syscall: "getsockopt",
      fd,
    },
  );
}

/** See `getPeerCredentials` in mod.ts. */
export function readPeerCredentials(
  reader: PeerSecReader,
  fd: number,
): PeerCredentials {
  checkFd(fd);
  const len = reader.readOption(
    fd,
    reader.constants.socket.SO_PEERCRED,
    "SO_PEERCRED",
    UCRED_SIZE,
  );
  if (len < 0) throw reader.errnoError(-len, fd, "SO_PEERCRED");
  if (len < UCRED_SIZE) {
    throw malformedAnswer(
      fd,
      "SO_PEERCRED",
      `the kernel returned ${len} bytes, a struct ucred has ${UCRED_SIZE}`,
    );
  }
  const pid = reader.valueInt32[0];
  const uid = reader.valueUint32[1];
  const gid = reader.valueUint32[2];
  // TCP and other sockets without a credentialed peer report pid 0 and
  // uid/gid (uid_t)-1: that is "no credentials", not an identity.
  if (uid === NO_ID || gid === NO_ID) {
    throw noData(
      reader,
      fd,
      "SO_PEERCRED",
      "the socket carries no peer credentials (only UNIX sockets do)",
    );
  }
  return { pid, uid, gid };
}

/** See `getPeerGroups` in mod.ts. */
export function readPeerGroups(reader: PeerSecReader, fd: number): number[] {
  checkFd(fd);
  const len = reader.readOption(
    fd,
    reader.constants.socket.SO_PEERGROUPS,
    "SO_PEERGROUPS",
  );
  if (len < 0) throw reader.errnoError(-len, fd, "SO_PEERGROUPS");
  if (len % 4 !== 0) {
    throw malformedAnswer(
      fd,
      "SO_PEERGROUPS",
      `the kernel returned ${len} bytes, not a whole number of 4-byte gid_t`,
    );
  }
  return Array.from(reader.valueUint32.subarray(0, len / 4));
}

/** See `getPeerPidfd` in mod.ts. */
export function readPeerPidfd(reader: PeerSecReader, fd: number): number {
  checkFd(fd);
  const len = reader.readOption(
    fd,
    reader.constants.socket.SO_PEERPIDFD,
    "SO_PEERPIDFD",
    4,
  );
  if (len < 0) throw reader.errnoError(-len, fd, "SO_PEERPIDFD");
  if (len < 4) {
    throw malformedAnswer(
      fd,
      "SO_PEERPIDFD",
      `the kernel returned ${len} bytes, an int has 4`,
    );
  }
  return reader.valueInt32[0];
}

/**
 * A numeric field of a pidfd's /proc/self/fdinfo: `Pid` (the pid it refers
 * to now, -1 once the process is gone) or `ino` (its inode, the id systemd's
 * LISTEN_PIDFDID names). Null when the file cannot be read here (Deno
 * without --allow-all guards it) or has no such field.
 */
export function pidfdInfo(pidfd: number, field: "Pid" | "ino"): bigint | null {
  try {
    const info = readFileSync(`/proc/self/fdinfo/${pidfd}`, "utf8");
    const value = new RegExp(`^${field}:\\s*(-?\\d+)$`, "m").exec(info)?.[1];
    return value === undefined ? null : BigInt(value);
  } catch {
    return null;
  }
}

/** See `closeFd` in mod.ts. */
export function closeFileDescriptor(reader: PeerSecReader, fd: number): void {
  checkFd(fd);
  const { rc, errno } = reader.backend.close(fd);
  if (rc === -1) {
    const code = reader.errnoName(errno);
    throw new PeerSecError(
      code === "EBADF"
        ? `close(${fd}): fd ${fd} is not an open file descriptor [EBADF]`
        : `close(${fd}) failed with errno ${errno} [${code}]`,
      { code, errno, syscall: "close", fd },
    );
  }
}

/** See `getPeerIdentity` in mod.ts. */
export function readPeerIdentity(
  reader: PeerSecReader,
  fd: number,
): PeerIdentity {
  const { pid, uid, gid } = readPeerCredentials(reader, fd);
  const groups = readPeerGroups(reader, fd);
  const securityContext = reader.tryGetPeerSecurityContext(fd);
  return { pid, uid, gid, groups, securityContext };
}

/**
 * See `getPeerInfo` in mod.ts: `getPeerIdentity` for every socket kind. Only
 * "this socket has no such thing" becomes `null` (ENODATA for credentials and
 * groups, no label for the context); EBADF, ENOTSOCK and the rest still throw.
 */
export function readPeerInfo(reader: PeerSecReader, fd: number): PeerInfo {
  let credentials: PeerCredentials | null;
  try {
    credentials = readPeerCredentials(reader, fd);
  } catch (error) {
    if (!(error instanceof PeerSecError && error.code === "ENODATA")) {
      throw error;
    }
    credentials = null;
  }
  let groups: number[] | null = null;
  if (credentials !== null) {
    try {
      groups = readPeerGroups(reader, fd);
    } catch (error) {
      if (!(error instanceof PeerSecError && error.code === "ENODATA")) {
        throw error;
      }
    }
  }
  const securityContext = reader.tryGetPeerSecurityContext(fd);
  return { credentials, groups, securityContext };
}
