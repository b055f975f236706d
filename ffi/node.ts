/**
 * Node backends: the built-in `node:ffi` (Node 26+, experimental) and `koffi`
 * (an npm package with prebuilt binaries, for older Node). Both are reached
 * synchronously, when the backend is opened, so that other runtimes never
 * load them.
 *
 * @module
 */
import {
  addressBackend,
  type AddressSymbols,
  type LibcBackend,
  openOnFirstCall,
  typedArrayBackend,
  type TypedArraySymbols,
} from "../src/backend.ts";

/** The slice of `node:ffi` this backend uses. */
interface NodeFfi {
  dlopen(
    path: string,
    definitions: Record<
      string,
      { arguments: readonly string[]; return: string }
    >,
  ): { functions: Record<string, (...args: unknown[]) => unknown> };
  getInt32(pointer: bigint, offset?: number): number;
  getRawPointer(source: ArrayBufferView): bigint;
  toArrayBuffer?(pointer: bigint, length: number, copy?: boolean): ArrayBuffer;
}

/** The slice of `koffi` this backend uses. */
interface Koffi {
  load(path: string): {
    func(declaration: string): (...args: unknown[]) => unknown;
  };
  errno(): number;
  view?(pointer: unknown, length: number): ArrayBuffer;
}

interface NodeProcess {
  getBuiltinModule?(id: string): unknown;
  arch?: string;
}

/** Node's 32-bit architectures, where `size_t` and `ssize_t` are 32 bits wide. */
const NARROW_ARCHITECTURES = ["arm", "ia32", "mips", "mipsel", "ppc"];

function builtin<T>(id: string): T | undefined {
  const process = (globalThis as { process?: NodeProcess }).process;
  return process?.getBuiltinModule?.(id) as T | undefined;
}

/**
 * `node:ffi` when this Node has it (26+, unless run with
 * `--no-experimental-ffi`), else undefined.
 *
 * @example
 * ```ts
 * import { nodeFfi } from "./node.ts";
 * console.log(nodeFfi() ? "node:ffi" : "koffi needed");
 * ```
 */
export function nodeFfi(): NodeFfi | undefined {
  const ffi = builtin<Partial<NodeFfi>>("node:ffi");
  return typeof ffi?.dlopen === "function" ? ffi as NodeFfi : undefined;
}

/**
 * Opens libc with Node's built-in `node:ffi`. Node prints its
 * "FFI is an experimental feature" warning once, on first use. Under Node's
 * permission model without `--allow-ffi`, Node throws `ERR_ACCESS_DENIED`
 * (`permission: "FFI"`).
 *
 * @example
 * ```ts
 * import { openLibcWithNodeFfi } from "./node.ts";
 * const libc = openLibcWithNodeFfi("libc.so.6");
 * ```
 */
export function openLibcWithNodeFfi(libraryPath: string): LibcBackend {
  const ffi = nodeFfi();
  if (ffi === undefined) throw new Error("node:ffi is not available");
  const { functions } = ffi.dlopen(libraryPath, {
    getsockopt: {
      arguments: [
        "i32", // int sockfd
        "i32", // int level
        "i32", // int optname
        "pointer", // void *optval (a raw address, see below)
        "pointer", // socklen_t *optlen (a raw address)
      ],
      return: "i32", // int
    },
    socketpair: {
      arguments: [
        "i32", // int domain
        "i32", // int type
        "i32", // int protocol
        "pointer", // int sv[2]
      ],
      return: "i32", // int
    },
    close: {
      arguments: ["i32"], // int fd
      return: "i32", // int
    },
    // fcntl is variadic in C; declared with its one int argument, which the
    // Linux ABIs peersec runs on pass exactly like a fixed int parameter.
    fcntl: {
      arguments: [
        "i32", // int fd
        "i32", // int cmd
        "i32", // int arg
      ],
      return: "i32", // int
    },
    __errno_location: {
      arguments: [],
      return: "pointer", // int * (this thread's errno)
    },
  });
  // The audit record sender's socket calls: declared on their first use, so
  // that opening libc for reading peers does not pay for them.
  const narrow = NARROW_ARCHITECTURES.includes(
    (globalThis as { process?: NodeProcess }).process?.arch ?? "",
  );
  const openSockets = () =>
    ffi.dlopen(libraryPath, {
      socket: {
        arguments: [
          "i32", // int domain
          "i32", // int type
          "i32", // int protocol
        ],
        return: "i32", // int
      },
      sendto: {
        arguments: [
          "i32", // int sockfd
          "pointer", // const void *buf
          narrow ? "u32" : "u64", // size_t len
          "i32", // int flags
          "pointer", // const struct sockaddr *dest_addr
          "u32", // socklen_t addrlen
        ],
        return: narrow ? "i32" : "i64", // ssize_t
      },
      recv: {
        arguments: [
          "i32", // int sockfd
          "pointer", // void *buf
          narrow ? "u32" : "u64", // size_t len
          "i32", // int flags
        ],
        return: narrow ? "i32" : "i64", // ssize_t
      },
    }).functions as unknown as Pick<
      AddressSymbols<bigint>,
      "socket" | "sendto" | "recv"
    >;
  const read = functions as unknown as AddressSymbols<bigint>;
  const call: AddressSymbols<bigint> = {
    getsockopt: read.getsockopt,
    socketpair: read.socketpair,
    close: read.close,
    fcntl: read.fcntl,
    ...openOnFirstCall(openSockets, ["socket", "sendto", "recv"]),
  };
  // errno lives at a per-thread address that never moves (a Worker loads
  // its own copy of this module): map its 4 bytes once and read plain memory
  // where node:ffi allows it (not under the V8 sandbox), else getInt32.
  const errnoPointer = functions.__errno_location() as bigint;
  let readErrno = () => ffi.getInt32(errnoPointer, 0);
  try {
    const errnoCell = new Int32Array(
      ffi.toArrayBuffer!(errnoPointer, 4, false),
    );
    readErrno = () => errnoCell[0];
  } catch {
    // keep getInt32
  }
  // node:ffi converts a typed array argument to a pointer on every call
  // (without the system call: 396 ns per call with typed arrays, 248 ns with
  // BigInt addresses taken once). Node 26.12's wrapper around a
  // five-argument function is the generic one whatever the argument types
  // (lib/internal/ffi/fast-api.js), so no declaration is cheaper than this.
  return addressBackend(
    { runtime: "node", ffi: "node:ffi", libraryPath },
    call,
    readErrno,
    (view) => ffi.getRawPointer(view),
  );
}

/**
 * Loads `koffi` from the application's dependencies. Throws Node's
 * MODULE_NOT_FOUND error when it is not installed.
 */
function requireKoffi(): Koffi {
  const module = builtin<{
    createRequire(from: string): (id: string) => unknown;
  }>("node:module");
  if (module === undefined) throw new Error("node:module is not available");
  // Resolve koffi from this package's place among the application's
  // dependencies. A bundle in CommonJS form has no import.meta.url: resolve
  // from the application's main script (or the working directory) instead.
  const process = (globalThis as {
    process?: { argv?: string[]; cwd?(): string };
  }).process;
  const from = import.meta.url ??
    process?.argv?.[1] ?? `${process?.cwd?.() ?? "."}/`;
  return module.createRequire(from)("koffi") as Koffi;
}

/**
 * Opens libc with `koffi` (Node 20-25, and 26 where it is installed). Throws
 * Node's MODULE_NOT_FOUND error when koffi is not installed, and
 * `ERR_DLOPEN_DISABLED` when Node refuses native addons (its permission
 * model without `--allow-addons`, or `--no-addons`).
 *
 * @example
 * ```ts
 * import { openLibcWithKoffi } from "./node.ts";
 * const libc = openLibcWithKoffi("libc.so.6");
 * ```
 */
export function openLibcWithKoffi(libraryPath: string): LibcBackend {
  const koffi = requireKoffi();
  const library = koffi.load(libraryPath);
  const openSockets = () => ({
    // int domain, int type, int protocol
    socket: library.func("int socket(int, int, int)"),
    // int sockfd, const void *buf, size_t len, int flags,
    // const struct sockaddr *dest_addr, socklen_t addrlen
    sendto: library.func(
      "long sendto(int, const void *, size_t, int, const void *, uint32_t)",
    ),
    // int sockfd, void *buf, size_t len, int flags
    recv: library.func("long recv(int, void *, size_t, int)"),
  });
  const symbols = {
    getsockopt: library.func(
      // int sockfd, int level, int optname, void *optval, socklen_t *optlen
      "int getsockopt(int, int, int, void *, void *)",
    ),
    socketpair: library.func(
      // int domain, int type, int protocol, int sv[2]
      "int socketpair(int, int, int, void *)",
    ),
    close: library.func("int close(int)"), // int fd
    // int fd, int cmd, int arg: fcntl's variadic int argument, passed as a
    // fixed one (the same on the Linux ABIs peersec runs on)
    fcntl: library.func("int fcntl(int, int, int)"),
    // The audit record sender's socket calls, declared on their first use.
    // koffi has no ssize_t: long is as wide on every Linux ABI.
    ...openOnFirstCall(openSockets, ["socket", "sendto", "recv"]),
  };
  // errno lives at a per-thread address that never moves (a Worker loads
  // its own copy of this module): map its 4 bytes once with koffi.view and
  // read plain memory; koffi.errno() (a full N-API call) where view is not.
  let readErrno = () => koffi.errno();
  if (typeof koffi.view === "function") {
    const errnoLocation = library.func("void *__errno_location(void)"); // int *
    const errnoCell = new Int32Array(koffi.view(errnoLocation(), 4));
    readErrno = () => errnoCell[0];
  }
  return typedArrayBackend(
    { runtime: "node", ffi: "koffi", libraryPath },
    symbols as unknown as TypedArraySymbols,
    readErrno,
  );
}
