/**
 * Deno backend: libc through `Deno.dlopen`. Needs `--allow-ffi`.
 *
 * @module
 */
import {
  type LibcBackend,
  resultFiller,
  typedArrayBackend,
} from "../src/backend.ts";

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
  // The same function with its two buffers passed as raw addresses, taken
  // once per buffer (used with the unrestricted --allow-ffi only).
  getsockoptAt: {
    name: "getsockopt",
    parameters: [
      "i32", // int sockfd
      "i32", // int level
      "i32", // int optname
      "pointer", // void *optval
      "pointer", // socklen_t *optlen
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

  const names = { runtime: "deno", ffi: "Deno.dlopen", libraryPath };
  if (!unrestricted) return typedArrayBackend(names, symbols, readErrno);

  // Each "buffer" argument costs Deno an out-of-line conversion per call; a
  // "pointer" argument does not. Without the system call in the way (the
  // benchmark's second table) that halves the call: 20.7 -> 10.0 ns here.
  // The core reuses its buffers, so their addresses are taken once (again
  // only when the core hands over another buffer). `Deno.UnsafePointer.of`
  // needs the unrestricted flag, like `UnsafePointerView`. Reading `.buffer`
  // first moves a small typed array's bytes off the V8 heap, where the
  // garbage collector could move them; the length cell lives in an
  // ArrayBuffer of its own for the same reason.
  const backend = typedArrayBackend(names, symbols, readErrno);
  const finish = resultFiller(readErrno);
  const lengthCell = new Uint32Array(new ArrayBuffer(8), 0, 1);
  const lengthPointer = Deno.UnsafePointer.of(lengthCell);
  let lastValue: Uint8Array | undefined;
  let lastValuePointer: Deno.PointerValue = null;
  return {
    ...backend,
    getsockopt(fd, level, option, value, capacity) {
      if (value !== lastValue) {
        void value.buffer;
        lastValuePointer = Deno.UnsafePointer.of(value);
        lastValue = value;
      }
      lengthCell[0] = capacity;
      const rc = symbols.getsockoptAt(
        fd,
        level,
        option,
        lastValuePointer,
        lengthPointer,
      );
      return finish(rc, lengthCell[0]);
    },
  };
}
