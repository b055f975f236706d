/**
 * Bun backend: libc through `bun:ffi`.
 *
 * `bun:ffi` exists only in Bun, so it is fetched when the backend is opened,
 * never imported at the top of a module that other runtimes (or bundlers)
 * load.
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
  // process.getBuiltinModule reaches bun:ffi synchronously, also from a
  // bundle without import.meta.
  const { dlopen, FFIType, read } = (process as unknown as {
    getBuiltinModule(id: string): unknown;
  }).getBuiltinModule("bun:ffi") as typeof BunFFI;
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

  /** Fills the shared result right after a call, errno first. */
  const finish = (rc: number, len: number): CallResult => {
    result.errno = rc === -1 ? read.i32(errnoPointer, 0) : 0;
    result.rc = rc;
    result.len = len;
    return result;
  };

  return {
    runtime: "bun",
    ffi: "bun:ffi",
    libraryPath,
    getsockopt(fd, level, option, value, capacity) {
      lengthCell[0] = capacity;
      const rc = symbols.getsockopt(fd, level, option, value, lengthCell);
      return finish(rc, lengthCell[0]);
    },
    socketpair(domain, type, protocol, fds) {
      return finish(symbols.socketpair(domain, type, protocol, fds), 0);
    },
    close(fd) {
      return finish(symbols.close(fd), 0);
    },
  };
}
