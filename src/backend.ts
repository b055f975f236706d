/**
 * The contract between the shared core and a runtime's FFI backend.
 *
 * A backend only moves bytes: it calls libc and reports what the kernel said.
 * Every decision (buffer sizes, retries, NUL handling, errors) is the core's.
 *
 * @module
 */

/**
 * What one libc call returned. Backends reuse one result object per library:
 * read the fields before the next call.
 */
export interface CallResult {
  /**
   * The function's return value: `0` or `-1`, or for `socket`, `fcntl`,
   * `sendto` and `recv` the new fd or byte count (`-1` on failure).
   */
  rc: number;
  /** `errno` read right after the call when `rc === -1`, else `0`. */
  errno: number;
  /** For `getsockopt`: the `optlen` the kernel wrote back; else `0`. */
  len: number;
}

/** An opened libc, as the core uses it. */
export interface LibcBackend {
  /** The runtime whose FFI this backend uses (`"deno"`, `"bun"`, …). */
  readonly runtime: string;
  /** The FFI used: `"Deno.dlopen"`, `"bun:ffi"`, `"node:ffi"` or `"koffi"`. */
  readonly ffi: string;
  /** The library name or path that was opened. */
  readonly libraryPath: string;
  /**
   * `getsockopt(fd, level, option, value, &len)` with `len = capacity` on entry.
   * `value.byteLength` must be at least `capacity`.
   */
  getsockopt(
    fd: number,
    level: number,
    option: number,
    value: Uint8Array,
    capacity: number,
  ): CallResult;
  /** `socketpair(domain, type, protocol, fds)`; `fds` receives the two fds. */
  socketpair(
    domain: number,
    type: number,
    protocol: number,
    fds: Int32Array,
  ): CallResult;
  /** `close(fd)`. */
  close(fd: number): CallResult;
  /**
   * `fcntl(fd, command, argument)` with an int argument (`F_DUPFD_CLOEXEC`,
   * `F_GETFD`, `F_SETFD`); `rc` is the call's result (a new fd, the flags).
   */
  fcntl(fd: number, command: number, argument: number): CallResult;
  /** `socket(domain, type, protocol)`; `rc` is the new fd. */
  socket(domain: number, type: number, protocol: number): CallResult;
  /**
   * `sendto(fd, buffer, length, flags, address, addressLength)`; `rc` is the
   * number of bytes sent. `length` and `addressLength` must not exceed the
   * arrays' byte lengths (a RangeError otherwise, before any call).
   */
  sendto(
    fd: number,
    buffer: Uint8Array,
    length: number,
    flags: number,
    address: Uint8Array,
    addressLength: number,
  ): CallResult;
  /**
   * `recv(fd, buffer, capacity, flags)`; `rc` is the number of bytes
   * received. `capacity` must not exceed `buffer.byteLength` (a RangeError
   * otherwise, before any call).
   */
  recv(
    fd: number,
    buffer: Uint8Array,
    capacity: number,
    flags: number,
  ): CallResult;
}

/**
 * libc's functions as FFIs that pass typed arrays as pointers expose them
 * (Deno, Bun, koffi). Functions returning `ssize_t` give a number or a BigInt
 * (FFIs return 64-bit integers as BigInts); the adapter makes it a number.
 */
export interface TypedArraySymbols {
  /** `int getsockopt(int, int, int, void *, socklen_t *)` */
  getsockopt(
    fd: number,
    level: number,
    option: number,
    value: Uint8Array,
    length: Uint32Array,
  ): number;
  /** `int socketpair(int, int, int, int[2])` */
  socketpair(
    domain: number,
    type: number,
    protocol: number,
    fds: Int32Array,
  ): number;
  /** `int close(int)` */
  close(fd: number): number;
  /** `int fcntl(int, int, int)`: the int-argument commands of `fcntl(int, int, ...)` */
  fcntl(fd: number, command: number, argument: number): number;
  /** `int socket(int, int, int)` */
  socket(domain: number, type: number, protocol: number): number;
  /**
   * `ssize_t sendto(int, const void *, size_t, int, const struct sockaddr *,
   * socklen_t)`
   */
  sendto(
    fd: number,
    buffer: Uint8Array,
    length: number,
    flags: number,
    address: Uint8Array,
    addressLength: number,
  ): number | bigint;
  /** `ssize_t recv(int, void *, size_t, int)` */
  recv(
    fd: number,
    buffer: Uint8Array,
    length: number,
    flags: number,
  ): number | bigint;
}

/**
 * A function that fills one reused {@linkcode CallResult} right after a call:
 * errno first (nothing may run in between), then the return value and length.
 */
export function resultFiller(
  readErrno: () => number,
): (rc: number, len: number) => CallResult {
  const result: CallResult = { rc: 0, errno: 0, len: 0 };
  return (rc, len) => {
    result.errno = rc === -1 ? readErrno() : 0;
    result.rc = rc;
    result.len = len;
    return result;
  };
}

/** Refuses a length past the end of the array it describes. */
function checkLength(name: string, length: number, view: Uint8Array): void {
  if (!(Number.isInteger(length) && length >= 0 && length <= view.byteLength)) {
    throw new RangeError(
      `${name} ${length} is not within the buffer's ${view.byteLength} bytes`,
    );
  }
}

/**
 * The adapters of the calls that pass typed arrays as they are: socketpair,
 * close, fcntl, and the socket calls of the audit sender.
 */
function fdCalls(
  symbols: Omit<TypedArraySymbols, "getsockopt">,
  finish: (rc: number, len: number) => CallResult,
): Omit<LibcBackend, "runtime" | "ffi" | "libraryPath" | "getsockopt"> {
  return {
    socketpair(domain, type, protocol, fds) {
      return finish(symbols.socketpair(domain, type, protocol, fds), 0);
    },
    close(fd) {
      return finish(symbols.close(fd), 0);
    },
    fcntl(fd, command, argument) {
      return finish(symbols.fcntl(fd, command, argument), 0);
    },
    socket(domain, type, protocol) {
      return finish(symbols.socket(domain, type, protocol), 0);
    },
    sendto(fd, buffer, length, flags, address, addressLength) {
      checkLength("length", length, buffer);
      checkLength("addressLength", addressLength, address);
      return finish(
        Number(
          symbols.sendto(fd, buffer, length, flags, address, addressLength),
        ),
        0,
      );
    },
    recv(fd, buffer, capacity, flags) {
      checkLength("capacity", capacity, buffer);
      return finish(Number(symbols.recv(fd, buffer, capacity, flags)), 0);
    },
  };
}

/**
 * Forwarders for the symbols `names`, which `open()` declares on the first
 * call of any of them: calls only some programs make (the audit record
 * sender's socket calls) cost nothing when libc is opened for reading peers.
 */
export function openOnFirstCall<
  Symbols extends object,
  Name extends keyof Symbols & string,
>(open: () => Symbols, names: readonly Name[]): Pick<Symbols, Name> {
  let symbols: Symbols | undefined;
  const calls = {} as Pick<Symbols, Name>;
  for (const name of names) {
    calls[name] = ((...args: unknown[]) => {
      symbols ??= open();
      return Reflect.apply(
        symbols[name] as (...args: unknown[]) => unknown,
        symbols,
        args,
      );
    }) as Symbols[Name];
  }
  return calls;
}

/** The call adapter over {@linkcode TypedArraySymbols}. */
export function typedArrayBackend(
  names: { runtime: string; ffi: string; libraryPath: string },
  symbols: TypedArraySymbols,
  readErrno: () => number,
): LibcBackend {
  const finish = resultFiller(readErrno);
  const lengthCell = new Uint32Array(1);
  return {
    ...names,
    getsockopt(fd, level, option, value, capacity) {
      lengthCell[0] = capacity;
      const rc = symbols.getsockopt(fd, level, option, value, lengthCell);
      return finish(rc, lengthCell[0]);
    },
    ...fdCalls(symbols, finish),
  };
}

/**
 * libc's functions as FFIs that take raw addresses expose them: `getsockopt`'s
 * two buffers as addresses of type `Address` (Deno pointer objects, node:ffi
 * BigInts), the rest as in {@linkcode TypedArraySymbols}.
 */
export interface AddressSymbols<Address>
  extends Omit<TypedArraySymbols, "getsockopt"> {
  /** `int getsockopt(int, int, int, void *, socklen_t *)` */
  getsockopt(
    fd: number,
    level: number,
    option: number,
    value: Address,
    length: Address,
  ): number;
}

/**
 * The call adapter over {@linkcode AddressSymbols}: an FFI converts a typed
 * array argument to an address on every call, so the addresses are taken
 * once, with `addressOf` — the core reuses its value buffer, so again only
 * when it hands over another one. Reading `.buffer` first moves a small
 * typed array's bytes off the V8 heap, where the garbage collector could
 * move them; the length cell lives in an ArrayBuffer of its own for the
 * same reason.
 */
export function addressBackend<Address>(
  names: { runtime: string; ffi: string; libraryPath: string },
  symbols: AddressSymbols<Address>,
  readErrno: () => number,
  addressOf: (view: Uint8Array | Uint32Array) => Address,
): LibcBackend {
  const finish = resultFiller(readErrno);
  const lengthCell = new Uint32Array(new ArrayBuffer(8), 0, 1);
  const lengthAddress = addressOf(lengthCell);
  let lastValue: Uint8Array | undefined;
  let lastValueAddress: Address | undefined;
  return {
    ...names,
    getsockopt(fd, level, option, value, capacity) {
      if (value !== lastValue) {
        void value.buffer;
        lastValueAddress = addressOf(value);
        lastValue = value;
      }
      lengthCell[0] = capacity;
      const rc = symbols.getsockopt(
        fd,
        level,
        option,
        lastValueAddress!,
        lengthAddress,
      );
      return finish(rc, lengthCell[0]);
    },
    ...fdCalls(symbols, finish),
  };
}
