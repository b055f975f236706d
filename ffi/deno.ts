/**
 * Deno backend: libc through `Deno.dlopen`. Needs `--allow-ffi`.
 *
 * @module
 */
import type { CallResult, LibcBackend } from "../src/backend.ts";

const SYMBOLS = {
  getsockopt: {
    parameters: [
      "i32", // int sockfd
      "i32", // int level
      "i32", // int optname
      "buffer", // void *optval
      "buffer", // socklen_t *optlen
    ],
    result: "i32", // int
  },
  socketpair: {
    parameters: [
      "i32", // int domain
      "i32", // int type
      "i32", // int protocol
      "buffer", // int sv[2]
    ],
    result: "i32", // int
  },
  close: {
    parameters: ["i32"], // int fd
    result: "i32", // int
  },
  __errno_location: {
    parameters: [],
    result: "pointer", // int * (this thread's errno)
  },
  memcpy: {
    parameters: [
      "buffer", // void *dest
      "pointer", // const void *src
      "usize", // size_t n
    ],
    result: "pointer", // void *
  },
} as const;

/**
 * Opens libc with `Deno.dlopen` and returns the call adapter.
 * Throws what `Deno.dlopen` throws (the caller turns it into a `PeerSecError`).
 *
 * @example
 * ```ts
 * import { openLibc } from "./deno.ts";
 * const libc = openLibc("libc.so.6");
 * ```
 */
export function openLibc(libraryPath: string): LibcBackend {
  const { symbols } = Deno.dlopen(libraryPath, SYMBOLS);
  const errnoPointer = symbols.__errno_location();
  const lengthCell = new Uint32Array(1);
  const errnoCell = new Int32Array(1);
  const result: CallResult = { rc: 0, errno: 0, len: 0 };

  // errno lives at a per-thread address that never moves, so it is looked up
  // once. `UnsafePointerView` is refused under a path-restricted --allow-ffi;
  // copying the 4 bytes with libc's memcpy works under either flag.
  let readErrno: () => number;
  try {
    const view = new Deno.UnsafePointerView(errnoPointer!);
    view.getInt32(0); // throws here, not later, when the flag is restricted
    readErrno = () => view.getInt32(0);
  } catch {
    readErrno = () => {
      symbols.memcpy(errnoCell, errnoPointer, 4n);
      return errnoCell[0];
    };
  }

  /** Fills the shared result right after a call, errno first. */
  const finish = (rc: number, len: number): CallResult => {
    result.errno = rc === -1 ? readErrno() : 0;
    result.rc = rc;
    result.len = len;
    return result;
  };

  return {
    runtime: "deno",
    ffi: "Deno.dlopen",
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
