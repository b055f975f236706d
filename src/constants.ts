/**
 * Kernel constants the library needs, per architecture family.
 *
 * Linux numbers socket options and errno values per architecture: most use the
 * asm-generic headers, a few (MIPS, Alpha, SPARC, PA-RISC, and powerpc for
 * SO_PEERCRED) keep historical numbers. Everything the library passes to or reads
 * from the kernel comes from this one table.
 *
 * @module
 */

/** The architecture families whose socket and errno numbers differ. */
export type ArchitectureFamily =
  | "generic"
  | "powerpc"
  | "mips"
  | "alpha"
  | "sparc"
  | "parisc";

/** Socket-level constants for one architecture family. */
export interface SocketConstants {
  /** `SOL_SOCKET`, the level of every option below. */
  readonly SOL_SOCKET: number;
  /** `SO_PEERSEC`: the peer's security context (a string). */
  readonly SO_PEERSEC: number;
  /** `SO_PEERCRED`: the peer's `struct ucred`. */
  readonly SO_PEERCRED: number;
  /** `SO_PEERGROUPS`: the peer's supplementary groups (`gid_t[]`). */
  readonly SO_PEERGROUPS: number;
  /** `SO_PEERPIDFD`: a pidfd for the peer process (Linux 6.5+). */
  readonly SO_PEERPIDFD: number;
  /** `AF_UNIX`. */
  readonly AF_UNIX: number;
  /** `SOCK_STREAM` (2 on MIPS, 1 elsewhere). */
  readonly SOCK_STREAM: number;
}

/** Values from the uapi `asm/socket.h` of each family. */
const SOCKET_CONSTANTS: Readonly<Record<ArchitectureFamily, SocketConstants>> =
  {
    generic: {
      SOL_SOCKET: 1,
      SO_PEERSEC: 31,
      SO_PEERCRED: 17,
      SO_PEERGROUPS: 59,
      SO_PEERPIDFD: 77,
      AF_UNIX: 1,
      SOCK_STREAM: 1,
    },
    powerpc: {
      SOL_SOCKET: 1,
      SO_PEERSEC: 31,
      SO_PEERCRED: 21,
      SO_PEERGROUPS: 59,
      SO_PEERPIDFD: 77,
      AF_UNIX: 1,
      SOCK_STREAM: 1,
    },
    mips: {
      SOL_SOCKET: 0xffff,
      SO_PEERSEC: 30,
      SO_PEERCRED: 18,
      SO_PEERGROUPS: 59,
      SO_PEERPIDFD: 77,
      AF_UNIX: 1,
      SOCK_STREAM: 2,
    },
    alpha: {
      SOL_SOCKET: 0xffff,
      SO_PEERSEC: 30,
      SO_PEERCRED: 18,
      SO_PEERGROUPS: 59,
      SO_PEERPIDFD: 77,
      AF_UNIX: 1,
      SOCK_STREAM: 1,
    },
    sparc: {
      SOL_SOCKET: 0xffff,
      SO_PEERSEC: 0x001e,
      SO_PEERCRED: 0x0040,
      SO_PEERGROUPS: 0x003d,
      SO_PEERPIDFD: 0x0056,
      AF_UNIX: 1,
      SOCK_STREAM: 1,
    },
    parisc: {
      SOL_SOCKET: 0xffff,
      SO_PEERSEC: 0x401d,
      SO_PEERCRED: 0x4011,
      SO_PEERGROUPS: 0x4034,
      SO_PEERPIDFD: 0x404b,
      AF_UNIX: 1,
      SOCK_STREAM: 1,
    },
  };

/**
 * The errno values the library names, from the uapi `asm/errno.h` of each family.
 * Values 1-34 come from `asm-generic/errno-base.h` everywhere except Alpha's EAGAIN.
 */
const ERRNO_VALUES: Readonly<
  Record<ArchitectureFamily, Readonly<Record<string, number>>>
> = (() => {
  const base = {
    EPERM: 1,
    ENOENT: 2,
    ESRCH: 3,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 11,
    ENOMEM: 12,
    EACCES: 13,
    EFAULT: 14,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ERANGE: 34,
  };
  const generic = {
    ...base,
    ENOSYS: 38,
    ENODATA: 61,
    ENOTSOCK: 88,
    ENOPROTOOPT: 92,
    EOPNOTSUPP: 95,
    ENOTCONN: 107,
  };
  return {
    generic,
    powerpc: generic,
    mips: {
      ...base,
      ENODATA: 61,
      ENOSYS: 89,
      ENOTSOCK: 95,
      ENOPROTOOPT: 99,
      EOPNOTSUPP: 122,
      ENOTCONN: 134,
    },
    alpha: {
      ...base,
      EAGAIN: 35,
      ENOTSOCK: 38,
      ENOPROTOOPT: 42,
      EOPNOTSUPP: 45,
      ENOTCONN: 57,
      ENOSYS: 78,
      ENODATA: 86,
    },
    sparc: {
      ...base,
      ENOTSOCK: 38,
      ENOPROTOOPT: 42,
      EOPNOTSUPP: 45,
      ENOTCONN: 57,
      ENOSYS: 90,
      ENODATA: 111,
    },
    parisc: {
      ...base,
      ENODATA: 51,
      ENOTSOCK: 216,
      ENOPROTOOPT: 220,
      EOPNOTSUPP: 223,
      ENOTCONN: 235,
      ENOSYS: 251,
    },
  };
})();

/**
 * fcntl(2) commands and flags: the same numbers on every Linux architecture
 * (asm-generic/fcntl.h; F_DUPFD_CLOEXEC is F_LINUX_SPECIFIC_BASE + 6).
 */
export const FCNTL = {
  /** Read the fd flags. */
  F_GETFD: 1,
  /** Set the fd flags. */
  F_SETFD: 2,
  /** The close-on-exec fd flag. */
  FD_CLOEXEC: 1,
  /** Duplicate to the lowest free fd ≥ the argument, close-on-exec. */
  F_DUPFD_CLOEXEC: 1030,
} as const;

/** The errno names the library handles; each family maps them to its own numbers. */
export type ErrnoName =
  | "EPERM"
  | "ENOENT"
  | "ESRCH"
  | "EINTR"
  | "EIO"
  | "EBADF"
  | "EAGAIN"
  | "ENOMEM"
  | "EACCES"
  | "EFAULT"
  | "EINVAL"
  | "ENFILE"
  | "EMFILE"
  | "ERANGE"
  | "ENOSYS"
  | "ENODATA"
  | "ENOTSOCK"
  | "ENOPROTOOPT"
  | "EOPNOTSUPP"
  | "ENOTCONN";

/** Everything architecture-specific the library uses, for one family. */
export interface ArchitectureConstants {
  /** The family these numbers belong to. */
  readonly family: ArchitectureFamily;
  /** Socket levels, options, domain and type. */
  readonly socket: SocketConstants;
  /** errno name → value. */
  readonly errno: Readonly<Record<ErrnoName, number>>;
  /** errno value → name, for the values in {@linkcode ArchitectureConstants.errno}. */
  readonly errnoName: ReadonlyMap<number, ErrnoName>;
}

const cache = new Map<ArchitectureFamily, ArchitectureConstants>();

/**
 * The kernel constants for an architecture family.
 *
 * @example
 * ```ts
 * import { constantsFor } from "./constants.ts";
 * constantsFor("powerpc").socket.SO_PEERCRED; // 21
 * ```
 */
export function constantsFor(
  family: ArchitectureFamily,
): ArchitectureConstants {
  let constants = cache.get(family);
  if (constants === undefined) {
    const errno = ERRNO_VALUES[family] as Record<ErrnoName, number>;
    const errnoName = new Map<number, ErrnoName>();
    for (const [name, value] of Object.entries(errno)) {
      errnoName.set(value, name as ErrnoName);
    }
    constants = {
      family,
      socket: SOCKET_CONSTANTS[family],
      errno,
      errnoName,
    };
    cache.set(family, constants);
  }
  return constants;
}

/**
 * Maps a runtime's CPU architecture name (`process.arch` in Node and Bun,
 * `Deno.build.arch` in Deno) to the family whose kernel numbers it uses.
 *
 * @example
 * ```ts
 * import { architectureFamily } from "./constants.ts";
 * architectureFamily("ppc64"); // "powerpc"
 * architectureFamily("x86_64"); // "generic"
 * ```
 */
export function architectureFamily(arch: string): ArchitectureFamily {
  if (arch.startsWith("ppc") || arch.startsWith("powerpc")) return "powerpc";
  if (arch.startsWith("mips")) return "mips";
  if (arch.startsWith("alpha")) return "alpha";
  if (arch.startsWith("sparc")) return "sparc";
  if (arch.startsWith("parisc") || arch.startsWith("hppa")) return "parisc";
  return "generic";
}
