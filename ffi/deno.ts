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

  // errno lives at a per-thread address that never moves (a Worker loads
  // its own copy of this module, so it looks up its own). With the
  // unrestricted --allow-ffi the 4 bytes are mapped once and read as plain
  // memory; `UnsafePointerView` needs that flag (and would prompt on a
  // terminal without it), so under a path-restricted flag they are copied
  // with libc's memcpy instead.
  const unrestricted =
    Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  let readErrno: () => number;
  if (unrestricted) {
    const errnoCell = new Int32Array(
      Deno.UnsafePointerView.getArrayBuffer(errnoPointer!, 4),
    );
    readErrno = () => errnoCell[0];
  } else {
    const errnoCopy = new Int32Array(1);
    readErrno = () => {
      symbols.memcpy(errnoCopy, errnoPointer, 4n);
      return errnoCopy[0];
    };
  }

  // Tried here (2026-12): precomputed `Deno.UnsafePointer.of` addresses as
  // "pointer" arguments instead of "buffer" ones measured no faster than
  // this in Deno 2.9 (1.19× vs 1.20× C over three interleaved rounds), so
  // the simpler "buffer" form stays.
  return typedArrayBackend(
    { runtime: "deno", ffi: "Deno.dlopen", libraryPath },
    symbols,
    readErrno,
  );
}
