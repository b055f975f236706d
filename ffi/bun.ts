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
import {
  type LibcBackend,
  openOnFirstCall,
  typedArrayBackend,
} from "../src/backend.ts";

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
  const { dlopen, FFIType, toArrayBuffer } = (process as unknown as {
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
    // fcntl is variadic in C; declared with its one int argument, which the
    // Linux ABIs peersec runs on pass exactly like a fixed int parameter.
    fcntl: {
      args: [
        FFIType.i32, // int fd
        FFIType.i32, // int cmd
        FFIType.i32, // int arg
      ],
      returns: FFIType.i32, // int
    },
    __errno_location: {
      args: [],
      returns: FFIType.ptr, // int * (this thread's errno)
    },
  });
  // errno lives at a per-thread address that never moves (a Worker loads
  // its own copy of this module): map its 4 bytes once, read plain memory.
  const errnoCell = new Int32Array(
    toArrayBuffer(symbols.__errno_location()!, 0, 4),
  );
  // The audit record sender's socket calls: compiled on their first use, so
  // that opening libc for reading peers does not pay for them.
  const openSockets = () =>
    dlopen(libraryPath, {
      socket: {
        args: [
          FFIType.i32, // int domain
          FFIType.i32, // int type
          FFIType.i32, // int protocol
        ],
        returns: FFIType.i32, // int
      },
      sendto: {
        args: [
          FFIType.i32, // int sockfd
          FFIType.ptr, // const void *buf
          FFIType.u64, // size_t len (Bun runs on 64-bit machines only)
          FFIType.i32, // int flags
          FFIType.ptr, // const struct sockaddr *dest_addr
          FFIType.u32, // socklen_t addrlen
        ],
        returns: FFIType.i64, // ssize_t
      },
      recv: {
        args: [
          FFIType.i32, // int sockfd
          FFIType.ptr, // void *buf
          FFIType.u64, // size_t len
          FFIType.i32, // int flags
        ],
        returns: FFIType.i64, // ssize_t
      },
    }).symbols;
  return typedArrayBackend(
    { runtime: "bun", ffi: "bun:ffi", libraryPath },
    {
      getsockopt: symbols.getsockopt,
      socketpair: symbols.socketpair,
      close: symbols.close,
      fcntl: symbols.fcntl,
      ...openOnFirstCall(openSockets, ["socket", "sendto", "recv"]),
    },
    () => errnoCell[0],
  );
}
