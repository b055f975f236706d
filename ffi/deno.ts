/**
 * Deno backend: libc through `Deno.dlopen`. Needs `--allow-ffi`.
 *
 * @module
 */
import { type LibcBackend, typedArrayBackend } from "../src/backend.ts";

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
  // fcntl is variadic in C; declared with its one int argument, which the
  // Linux ABIs peersec runs on pass exactly like a fixed int parameter.
  fcntl: {
    parameters: [
      "i32", // int fd
      "i32", // int cmd
      "i32", // int arg (F_DUPFD_CLOEXEC's lowest fd, F_SETFD's flags)
    ],
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
  const errnoCell = new Int32Array(1);

  // errno lives at a per-thread address that never moves, so it is looked up
  // once. `UnsafePointerView` needs the unrestricted --allow-ffi (and would
  // prompt on a terminal without it); copying the 4 bytes with libc's memcpy
  // works under a path-restricted flag too.
  let readErrno: () => number;
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
    const view = new Deno.UnsafePointerView(errnoPointer!);
    readErrno = () => view.getInt32(0);
  } else {
    readErrno = () => {
      symbols.memcpy(errnoCell, errnoPointer, 4n);
      return errnoCell[0];
    };
  }

  return typedArrayBackend(
    { runtime: "deno", ffi: "Deno.dlopen", libraryPath },
    symbols,
    readErrno,
  );
}
