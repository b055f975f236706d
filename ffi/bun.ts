/**
 * Bun backend: libc through `bun:ffi`.
 *
 * `bun:ffi` exists only in Bun, so it is required when the backend is opened,
 * never imported at the top of a module that other runtimes load.
 *
 * @module
 */
import type * as BunFFI from "bun:ffi";
import type { CallResult, LibcBackend } from "../src/backend.ts";

/**
 * Opens libc with `bun:ffi`'s `dlopen` and returns the call adapter.
 * Throws what `dlopen` throws (the caller turns it into a `PeerSecError`).
 *
 * @example
 * ```ts
 * import { openLibc } from "./bun.ts";
 * const libc = openLibc("libc.so.6");
 * ```
 */
export function openLibc(libraryPath: string): LibcBackend {
  const { dlopen, FFIType, read } = import.meta.require(
    "bun:ffi",
  ) as typeof BunFFI;
  const { symbols } = dlopen(libraryPath, {
    getsockopt: {
      args: [
        FFIType.i32, // int sockfd
        FFIType.i32, // int level
        FFIType.i32, // int optname
        FFIType.ptr, // void *optval
        FFIType.ptr, // socklen_t *optlen
      ],
      returns: FFIType.i32, // int
    },
    socketpair: {
      args: [
        FFIType.i32, // int domain
        FFIType.i32, // int type
        FFIType.i32, // int protocol
        FFIType.ptr, // int sv[2]
      ],
      returns: FFIType.i32, // int
    },
    close: {
      args: [FFIType.i32], // int fd
      returns: FFIType.i32, // int
    },
    __errno_location: {
      args: [],
      returns: FFIType.ptr, // int * (this thread's errno)
    },
  });
  // errno lives at a per-thread address that never moves: look it up once.
  const errnoPointer = symbols.__errno_location()!;
  const lengthCell = new Uint32Array(1);
  const result: CallResult = { rc: 0, errno: 0, len: 0 };

  return {
    runtime: "bun",
    libraryPath,
    getsockopt(fd, level, option, value, capacity) {
      lengthCell[0] = capacity;
      const rc = symbols.getsockopt(fd, level, option, value, lengthCell);
      result.errno = rc === -1 ? read.i32(errnoPointer, 0) : 0;
      result.rc = rc;
      result.len = lengthCell[0];
      return result;
    },
    socketpair(domain, type, protocol, fds) {
      const rc = symbols.socketpair(domain, type, protocol, fds);
      result.errno = rc === -1 ? read.i32(errnoPointer, 0) : 0;
      result.rc = rc;
      result.len = 0;
      return result;
    },
    close(fd) {
      const rc = symbols.close(fd);
      result.errno = rc === -1 ? read.i32(errnoPointer, 0) : 0;
      result.rc = rc;
      result.len = 0;
      return result;
    },
  };
}
