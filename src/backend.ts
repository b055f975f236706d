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
  /** The function's return value (`0` or `-1` for the calls used here). */
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
}
