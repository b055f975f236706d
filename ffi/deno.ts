/**
 * Deno backend: libc through `Deno.dlopen`. Needs `--allow-ffi`.
 *
 * @module
 */
import {
  addressBackend,
  type LibcBackend,
  openOnFirstCall,
  typedArrayBackend,
} from "../src/backend.ts";

// Deno compiles a call trampoline for every declared symbol when it opens
// the library (about 0.2 ms each here): the first call, which opens libc,
// declares only what reading a peer needs, in the shape the permission
// allows; the rest opens on its first use.

/** Under the unrestricted --allow-ffi: raw addresses, errno mapped. */
const READ_SYMBOLS = {
  getsockopt: {
    parameters: [
      "i32", // int sockfd
      "i32", // int level
      "i32", // int optname
      "pointer", // void *optval (an address taken once per buffer)
      "pointer", // socklen_t *optlen (likewise)
    ],
    result: "i32", // int
  },
  __errno_location: {
    parameters: [],
    result: "pointer", // int * (this thread's errno)
  },
} as const;

/** Under a path-restricted --allow-ffi: typed arrays, errno copied. */
const RESTRICTED_READ_SYMBOLS = {
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

/** Opened on first use: self-check, fd duplication, pidfd closing. */
const OTHER_SYMBOLS = {
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
} as const;

/** Opened on first use: the audit record sender's netlink socket calls. */
const SOCKET_SYMBOLS = {
  socket: {
    parameters: [
      "i32", // int domain
      "i32", // int type
      "i32", // int protocol
    ],
    result: "i32", // int
  },
  sendto: {
    parameters: [
      "i32", // int sockfd
      "buffer", // const void *buf
      "usize", // size_t len
      "i32", // int flags
      "buffer", // const struct sockaddr *dest_addr
      "u32", // socklen_t addrlen
    ],
    result: "isize", // ssize_t
  },
  recv: {
    parameters: [
      "i32", // int sockfd
      "buffer", // void *buf
      "usize", // size_t len
      "i32", // int flags
    ],
    result: "isize", // ssize_t
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
  // With the unrestricted --allow-ffi, errno's 4 bytes are mapped once and
  // read as plain memory, and buffers are passed as raw addresses;
  // `UnsafePointerView` and `UnsafePointer.of` need that flag (and would
  // prompt on a terminal without it), so under a path-restricted flag errno
  // is copied with libc's memcpy and buffers go as typed arrays.
  const unrestricted =
    Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  const names = { runtime: "deno", ffi: "Deno.dlopen", libraryPath };
  const otherCalls = {
    ...openOnFirstCall(
      () => Deno.dlopen(libraryPath, OTHER_SYMBOLS).symbols,
      ["socketpair", "close", "fcntl"],
    ),
    ...openOnFirstCall(() => {
      const { socket, sendto, recv } =
        Deno.dlopen(libraryPath, SOCKET_SYMBOLS).symbols;
      // Deno takes a size_t as a BigInt.
      return {
        socket,
        sendto: (
          fd: number,
          buffer: Uint8Array,
          length: number,
          flags: number,
          address: Uint8Array,
          addressLength: number,
        ) => sendto(fd, buffer, BigInt(length), flags, address, addressLength),
        recv: (fd: number, buffer: Uint8Array, length: number, flags: number) =>
          recv(fd, buffer, BigInt(length), flags),
      };
    }, ["socket", "sendto", "recv"]),
  };

  if (!unrestricted) {
    const { symbols } = Deno.dlopen(libraryPath, RESTRICTED_READ_SYMBOLS);
    // errno lives at a per-thread address that never moves (a Worker loads
    // its own copy of this module, so it looks up its own).
    const errnoPointer = symbols.__errno_location();
    const errnoCopy = new Int32Array(1);
    return typedArrayBackend(
      names,
      { getsockopt: symbols.getsockopt, ...otherCalls },
      () => {
        symbols.memcpy(errnoCopy, errnoPointer, 4n);
        return errnoCopy[0];
      },
    );
  }

  const { symbols } = Deno.dlopen(libraryPath, READ_SYMBOLS);
  const errnoCell = new Int32Array(
    Deno.UnsafePointerView.getArrayBuffer(symbols.__errno_location()!, 4),
  );
  const readErrno = () => errnoCell[0];
  // Each "buffer" argument costs Deno an out-of-line conversion per call; a
  // "pointer" argument does not. Without the system call in the way (the
  // benchmark's second table) that halves the call: 19 -> 10 ns here.
  return addressBackend(
    names,
    { getsockopt: symbols.getsockopt, ...otherCalls },
    readErrno,
    (view) => Deno.UnsafePointer.of(view),
  );
}
