/**
 * The shared core: reads a socket option of unknown length the way the
 * SO_PEERSEC(2const) man page describes, and turns the bytes into a label.
 *
 * Everything that is policy lives here, the same for every runtime:
 *   - the growth loop: start at 256 bytes (≥ NAME_MAX + 1); when the kernel
 *     answers ERANGE it writes the length it needs into optlen, so grow to that
 *     and ask again. Ask again *in a loop*, because the peer may be relabeled
 *     between two calls and need more still, but bounded (8 tries, 64 KiB), so
 *     a misbehaving kernel or a racing peer can never make us spin;
 *   - the NUL rule: "foo" and "foo\0" are the same label. SELinux and Smack count
 *     the trailing NUL in the length, AppArmor does not. Drop one trailing NUL;
 *     any other NUL is not a label;
 *   - errno: read right after the failing call by the backend. Deno sometimes
 *     runs code of its own between two FFI calls that clobbers errno, so an
 *     errno getsockopt cannot return means "clobbered": the call (read-only,
 *     and it creates nothing when it fails) is made again, a bounded few times.
 *
 * The hot path (a server calling this for each connection) allocates only what
 * it returns: one value buffer is reused and grown only when a label needs it,
 * "no label" is a return value, not a caught exception, and the last few
 * labels' strings are remembered (label_strings.ts), so a label seen before
 * is neither scanned nor decoded again.
 *
 * @module
 */
import type { CallResult, LibcBackend } from "./backend.ts";
import type { ArchitectureConstants, ErrnoName } from "./constants.ts";
import { describeErrno, PeerSecError } from "./errors.ts";
import { LabelStrings } from "./label_strings.ts";

/** The first buffer size: at least NAME_MAX (255) + 1, as the man page asks. */
export const INITIAL_CAPACITY = 256;
/** The most a label may take; a kernel asking for more is an error. */
export const MAX_CAPACITY = 64 * 1024;
/** How many getsockopt calls one read may make while the label grows. */
export const MAX_GROWTH_ATTEMPTS = 8;
/** How many times one call is repeated when errno came back clobbered. */
export const MAX_ERRNO_RETRIES = 4;

/**
 * The errno values getsockopt(2) can really return, per option (read in
 * net/socket.c, net/core/sock.c and the LSMs' getpeersec hooks). Anything else
 * after a failed call was not set by getsockopt but by code that ran between
 * the call and the errno read: the call is made again. Per option, because a
 * value one option can return is a forgery for another: ENOPROTOOPT after
 * SO_PEERCRED, or ENODATA after SO_PEERSEC, would otherwise be believed.
 */
const COMMON_ERRNO_NAMES: readonly ErrnoName[] = [
  "EBADF", // not an open fd
  "ENOTSOCK", // not a socket
  "EFAULT", // a bad buffer address
  "EINVAL", // a negative length
  "EACCES", // an LSM's socket getopt check refused
  "EPERM",
];
const OPTION_ERRNO_NAMES: Readonly<Record<string, readonly ErrnoName[]>> = {
  // security_socket_getpeersec_stream: no LSM answers, or no peer label;
  // a too-small buffer; the LSM could not render the context.
  SO_PEERSEC: [...COMMON_ERRNO_NAMES, "ENOPROTOOPT", "ERANGE", "ENOMEM"],
  // sock.c copies a struct ucred, always there (cut to the buffer).
  SO_PEERCRED: COMMON_ERRNO_NAMES,
  // No peer credentials (TCP); a too-small buffer; before Linux 4.13.
  SO_PEERGROUPS: [...COMMON_ERRNO_NAMES, "ENODATA", "ERANGE", "ENOPROTOOPT"],
  // No peer pid; pidfd_prepare's failures; before Linux 6.5.
  SO_PEERPIDFD: [
    ...COMMON_ERRNO_NAMES,
    "ENODATA",
    "ESRCH",
    "EMFILE",
    "ENFILE",
    "ENOMEM",
    "ENOPROTOOPT",
  ],
};

/** Opens the platform on first use; see `openPlatform` in runtime.ts. */
export type PlatformProvider = () => {
  readonly backend: LibcBackend;
  readonly constants: ArchitectureConstants;
};

/**
 * Validates an fd argument before anything touches FFI.
 *
 * @throws {TypeError} when `fd` is not a number.
 * @throws {RangeError} when `fd` is not an integer in 0…2³¹−1 (NaN and -0 included).
 */
export function checkFd(fd: unknown): asserts fd is number {
  if (typeof fd !== "number") {
    // A socket object where an fd belongs is the usual first mistake.
    const looksLikeSocket = typeof fd === "object" && fd !== null &&
      ("_handle" in fd || "remoteAddress" in fd || "fd" in fd ||
        "socket" in fd);
    throw new TypeError(
      `fd must be a number (a socket file descriptor), got ${
        fd === null ? "null" : typeof fd
      }${
        looksLikeSocket
          ? ": for a socket object, pass socketFd(socket) — or use " +
            "withSocketFd(socket, (fd) => …), which works in every runtime " +
            "(for an HTTP request, its req.socket)"
          : ""
      }`,
    );
  }
  if (
    !Number.isInteger(fd) || fd < 0 || fd > 0x7fff_ffff || Object.is(fd, -0)
  ) {
    throw new RangeError(
      `fd must be an integer from 0 to 2147483647, got ${
        Object.is(fd, -0) ? "-0" : String(fd)
      }`,
    );
  }
}

/**
 * Reads peer options through one backend. `mod.ts` keeps one for the process;
 * tests build their own around a scripted fake libc.
 */
export class PeerSecReader {
  #provide: PlatformProvider;
  #backend: LibcBackend | undefined;
  #constants: ArchitectureConstants | undefined;
  // Read on every call: kept in fields once the platform is open.
  #solSocket = 0;
  #soPeersec = 0;
  #erange = 0;
  #enoprotoopt = 0;
  /** Per option number: the errno values getsockopt can return for it. */
  #validErrno = new Map<number, Uint8Array>();
  #lastOption = -1;
  #lastValidErrno: Uint8Array = new Uint8Array(0);
  #value = new Uint8Array(INITIAL_CAPACITY);
  // Native-endian 32-bit views of #value, for ucred and gid_t[] answers.
  #valueInt32 = new Int32Array(this.#value.buffer);
  #valueUint32 = new Uint32Array(this.#value.buffer);
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #labelStrings = new LabelStrings();
  /** The length SO_PEERSEC last returned, NUL included (for error messages). */
  #labelReadLength = 0;

  /** @param provide opens libc and names the kernel constants, on first use. */
  constructor(provide: PlatformProvider) {
    this.#provide = provide;
  }

  /** The opened backend (opening it on first use). */
  get backend(): LibcBackend {
    if (this.#backend === undefined) this.#open();
    return this.#backend!;
  }

  /** The kernel constants of this machine (opening the platform on first use). */
  get constants(): ArchitectureConstants {
    if (this.#constants === undefined) this.#open();
    return this.#constants!;
  }

  #open(): void {
    const { backend, constants } = this.#provide();
    for (const [optionName, names] of Object.entries(OPTION_ERRNO_NAMES)) {
      const option =
        constants.socket[optionName as keyof typeof constants.socket];
      // A flag per errno value: 1 where getsockopt can set it. Any other
      // value, including one past the end, reads as "clobbered".
      const values = names.map((name) => constants.errno[name]);
      const table = new Uint8Array(Math.max(...values) + 1);
      for (const value of values) table[value] = 1;
      this.#validErrno.set(option, table);
    }
    this.#solSocket = constants.socket.SOL_SOCKET;
    this.#soPeersec = constants.socket.SO_PEERSEC;
    this.#erange = constants.errno.ERANGE;
    this.#enoprotoopt = constants.errno.ENOPROTOOPT;
    this.#constants = constants;
    this.#backend = backend;
  }

  /** The errno name for a value on this machine, or "UNKNOWN". */
  errnoName(errno: number): string {
    return this.constants.errnoName.get(errno) ?? "UNKNOWN";
  }

  /** A `PeerSecError` for an errno a getsockopt call reported. */
  errnoError(errno: number, fd: number, optionName: string): PeerSecError {
    const code = this.errnoName(errno);
    return new PeerSecError(describeErrno(code, errno, fd, optionName), {
      code,
      errno,
      syscall: "getsockopt",
      fd,
    });
  }

  /** One getsockopt call, repeated while errno comes back clobbered. */
  #call(
    fd: number,
    option: number,
    optionName: string,
    capacity: number,
  ): CallResult {
    const backend = this.#backend!; // opened by readOption, the one caller
    for (let retry = 0;; retry++) {
      const result = backend.getsockopt(
        fd,
        this.#solSocket,
        option,
        this.#value,
        capacity,
      );
      if (result.rc !== -1) return result;
      if (option !== this.#lastOption) {
        const validErrno = this.#validErrno.get(option);
        if (validErrno === undefined) {
          throw new RangeError(
            `no errno table for socket option ${optionName}`,
          );
        }
        this.#lastValidErrno = validErrno;
        this.#lastOption = option;
      }
      if (this.#lastValidErrno[result.errno] === 1) return result;
      if (retry === MAX_ERRNO_RETRIES) {
        throw new PeerSecError(
          `getsockopt(${fd}, SOL_SOCKET, ${optionName}) failed, but errno read ` +
            `${result.errno} (${this.errnoName(result.errno)}) ` +
            `${MAX_ERRNO_RETRIES + 1} times, which getsockopt never sets: ` +
            `errno is being overwritten between the call and its read`,
          {
            code: "ERR_ERRNO_UNRELIABLE",
            syscall: "getsockopt",
            fd,
          },
        );
      }
    }
  }

  /**
   * The growth loop, generic over the option: fills the value buffer and
   * returns the length the kernel wrote (≥ 0), or `-errno` for an OS failure.
   * Throws a `PeerSecError` (code ERANGE) when the value will not settle within
   * the bounds.
   */
  readOption(
    fd: number,
    option: number,
    optionName: string,
    initialCapacity: number = INITIAL_CAPACITY,
  ): number {
    if (this.#backend === undefined) this.#open();
    const erange = this.#erange;
    // Offer all of the buffer: once a long label made it grow, later reads of
    // labels that long take one call, not two.
    let capacity = Math.max(initialCapacity, this.#value.byteLength);
    for (let attempt = 1; attempt <= MAX_GROWTH_ATTEMPTS; attempt++) {
      if (this.#value.byteLength < capacity) {
        // Whole 32-bit words, so the word views cover every byte.
        this.#value = new Uint8Array(Math.ceil(capacity / 4) * 4);
        this.#valueInt32 = new Int32Array(this.#value.buffer);
        this.#valueUint32 = new Uint32Array(this.#value.buffer);
      }
      const { rc, errno, len } = this.#call(fd, option, optionName, capacity);
      if (rc !== -1 && len <= capacity) return len;
      if (rc === -1 && errno !== erange) return -errno;
      // Too small: ERANGE with the needed length in optlen, or a success whose
      // length says the value was cut. A kernel that answers ERANGE without a
      // larger length gave no size to grow to: double instead.
      const needed = len > capacity ? len : capacity * 2;
      if (needed > MAX_CAPACITY) {
        throw new PeerSecError(
          `getsockopt(${fd}, SOL_SOCKET, ${optionName}): the kernel asks for ` +
            `${needed} bytes, more than the ${MAX_CAPACITY}-byte limit [ERANGE]`,
          { code: "ERANGE", errno: erange, syscall: "getsockopt", fd },
        );
      }
      capacity = needed;
    }
    throw new PeerSecError(
      `getsockopt(${fd}, SOL_SOCKET, ${optionName}): the value kept growing ` +
        `over ${MAX_GROWTH_ATTEMPTS} attempts (is the peer being relabeled?) [ERANGE]`,
      { code: "ERANGE", errno: erange, syscall: "getsockopt", fd },
    );
  }

  /** The value buffer the last `readOption` filled (valid until the next call). */
  get value(): Uint8Array {
    return this.#value;
  }

  /** The value buffer as native-endian `int32_t`s (e.g. `struct ucred`). */
  get valueInt32(): Int32Array {
    return this.#valueInt32;
  }

  /** The value buffer as native-endian `uint32_t`s (e.g. `gid_t[]`). */
  get valueUint32(): Uint32Array {
    return this.#valueUint32;
  }

  /**
   * Reads SO_PEERSEC and drops one trailing NUL. Returns the label's length
   * in the value buffer (> 0), `0` for an empty label (Smack's "no label"),
   * or `-errno`. The rest of the NUL rule (no other NUL) is
   * `#assertNoInnerNul`'s, checked before any label leaves the core.
   */
  #readLabel(fd: number): number {
    if (this.#backend === undefined) this.#open();
    const len = this.readOption(fd, this.#soPeersec, "SO_PEERSEC");
    if (len <= 0) return len;
    this.#labelReadLength = len;
    return this.#value[len - 1] === 0 ? len - 1 : len;
  }

  /** Any NUL inside the label means it is not one. */
  #assertNoInnerNul(fd: number, labelLength: number): void {
    const value = this.#value;
    for (let index = 0; index < labelLength; index++) {
      if (value[index] === 0) {
        throw this.#malformed(fd, this.#labelReadLength, index);
      }
    }
  }

  /**
   * The label as a string. Bytes equal to a label already checked and
   * decoded (see label_strings.ts) need neither again.
   */
  #labelString(fd: number, labelLength: number): string {
    const known = this.#labelStrings.find(this.#value, labelLength);
    if (known !== undefined) return known;
    this.#assertNoInnerNul(fd, labelLength);
    const string = this.#decode(fd, labelLength);
    this.#labelStrings.remember(this.#value, labelLength, string);
    return string;
  }

  #malformed(fd: number, len: number, nul: number): PeerSecError {
    return new PeerSecError(
      `getsockopt(${fd}, SOL_SOCKET, SO_PEERSEC) returned ${len} bytes with a ` +
        `NUL at byte ${nul}: not a security label`,
      { code: "ERR_MALFORMED_LABEL", syscall: "getsockopt", fd },
    );
  }

  #labelOrThrow(fd: number): number {
    const len = this.#readLabel(fd);
    if (len < 0) throw this.errnoError(-len, fd, "SO_PEERSEC");
    if (len === 0) {
      throw new PeerSecError(
        `getsockopt(${fd}, SOL_SOCKET, SO_PEERSEC): the peer's label is empty ` +
          `(Smack reports this when the peer socket has no label)`,
        { code: "ERR_EMPTY_LABEL", syscall: "getsockopt", fd },
      );
    }
    return len;
  }

  #decode(fd: number, len: number): string {
    try {
      return this.#decoder.decode(this.#value.subarray(0, len));
    } catch (error) {
      throw new PeerSecError(
        `the security label of the peer of fd ${fd} is not valid UTF-8 ` +
          `(the kernel does not promise an encoding); ` +
          `read it with getPeerSecurityContextBytes`,
        { code: "ERR_INVALID_UTF8", syscall: "getsockopt", fd, cause: error },
      );
    }
  }

  /** See `getPeerSecurityContext` in mod.ts. */
  getPeerSecurityContext(fd: number): string {
    checkFd(fd);
    return this.#labelString(fd, this.#labelOrThrow(fd));
  }

  /** See `getPeerSecurityContextBytes` in mod.ts. */
  getPeerSecurityContextBytes(fd: number): Uint8Array {
    checkFd(fd);
    // Read first: a read that grows the buffer replaces this.#value.
    const len = this.#labelOrThrow(fd);
    this.#assertNoInnerNul(fd, len);
    return this.#value.slice(0, len);
  }

  /** See `tryGetPeerSecurityContext` in mod.ts. */
  tryGetPeerSecurityContext(fd: number): string | null {
    checkFd(fd);
    const len = this.#readLabel(fd);
    if (len > 0) return this.#labelString(fd, len);
    if (len === 0 || -len === this.#enoprotoopt) return null;
    throw this.errnoError(-len, fd, "SO_PEERSEC");
  }
}
