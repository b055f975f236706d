// The same getsockopt calls as peersec makes, through the same FFI, with no
// peersec around them: what the FFI alone costs. Two shapes per FFI:
//   "plainest": declared the plainest way, typed arrays as arguments, errno
//     read the FFI's own way (Deno getInt32, Bun read.i32, node:ffi getInt32,
//     koffi.errno());
//   "fastest": the cheapest shape measured here — raw addresses taken once
//     (Deno "pointer" parameters, Bun ptr() numbers, node:ffi BigInt
//     addresses) and errno mapped once into an Int32Array. koffi has no
//     cheaper call than the plainest; its fastest shape only maps errno.
// Each returns what peersec's function returns (credentials as an object;
// null for "no label"). x86_64/generic constants.
//   const bare = await bareFfi(backend.ffi, backend.libraryPath, "fastest");
//   bare.credentials(fd); bare.label(fd)
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERSEC = 31;
const ENOPROTOOPT = 92;

/**
 * `ffi`: the FFI peersec opened ("Deno.dlopen", "bun:ffi", "node:ffi",
 * "koffi"); `library`: the library it opened (libc, or the benchmark's stub);
 * `shape`: "plainest" or "fastest".
 */
export async function bareFfi(ffi, library = "libc.so.6", shape = "plainest") {
  const fastest = shape === "fastest";
  // ArrayBuffers of their own: their bytes never move, so an address taken
  // once stays right.
  const value = new Uint8Array(new ArrayBuffer(256));
  const words = new Int32Array(value.buffer);
  const length = new Uint32Array(new ArrayBuffer(8), 0, 1);
  let getsockopt;
  let errno;
  if (ffi === "Deno.dlopen") {
    const pointer = fastest ? "pointer" : "buffer";
    const { symbols } = Deno.dlopen(library, {
      getsockopt: {
        parameters: ["i32", "i32", "i32", pointer, pointer],
        result: "i32",
      },
      __errno_location: { parameters: [], result: "pointer" },
    });
    const errnoPointer = symbols.__errno_location();
    if (fastest) {
      const valueAt = Deno.UnsafePointer.of(value);
      const lengthAt = Deno.UnsafePointer.of(length);
      getsockopt = (fd, level, option) =>
        symbols.getsockopt(fd, level, option, valueAt, lengthAt);
      const cell = new Int32Array(
        Deno.UnsafePointerView.getArrayBuffer(errnoPointer, 4),
      );
      errno = () => cell[0];
    } else {
      getsockopt = (fd, level, option) =>
        symbols.getsockopt(fd, level, option, value, length);
      const view = new Deno.UnsafePointerView(errnoPointer);
      errno = () => view.getInt32(0);
    }
  } else if (ffi === "bun:ffi") {
    const { dlopen, FFIType, ptr, read, toArrayBuffer } = await import(
      "bun:ffi"
    );
    const { symbols } = dlopen(library, {
      getsockopt: {
        args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
        returns: FFIType.i32,
      },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    const errnoPointer = symbols.__errno_location();
    if (fastest) {
      const valueAt = ptr(value);
      const lengthAt = ptr(length);
      getsockopt = (fd, level, option) =>
        symbols.getsockopt(fd, level, option, valueAt, lengthAt);
      const cell = new Int32Array(toArrayBuffer(errnoPointer, 0, 4));
      errno = () => cell[0];
    } else {
      getsockopt = (fd, level, option) =>
        symbols.getsockopt(fd, level, option, value, length);
      errno = () => read.i32(errnoPointer, 0);
    }
  } else if (ffi === "node:ffi") {
    const ffi = process.getBuiltinModule("node:ffi");
    const { functions } = ffi.dlopen(library, {
      getsockopt: {
        arguments: ["i32", "i32", "i32", "pointer", "pointer"],
        return: "i32",
      },
      __errno_location: { arguments: [], return: "pointer" },
    });
    const errnoPointer = functions.__errno_location();
    if (fastest) {
      const valueAt = ffi.getRawPointer(value);
      const lengthAt = ffi.getRawPointer(length);
      getsockopt = (fd, level, option) =>
        functions.getsockopt(fd, level, option, valueAt, lengthAt);
      const cell = new Int32Array(ffi.toArrayBuffer(errnoPointer, 4, false));
      errno = () => cell[0];
    } else {
      getsockopt = (fd, level, option) =>
        functions.getsockopt(fd, level, option, value, length);
      errno = () => ffi.getInt32(errnoPointer, 0);
    }
  } else if (ffi === "koffi") {
    const { createRequire } = await import("node:module");
    const koffi = createRequire(import.meta.url)("koffi");
    const opened = koffi.load(library);
    const call = opened.func("int getsockopt(int, int, int, void *, void *)");
    getsockopt = (fd, level, option) => call(fd, level, option, value, length);
    if (fastest) {
      const errnoLocation = opened.func("void *__errno_location(void)");
      const cell = new Int32Array(koffi.view(errnoLocation(), 4));
      errno = () => cell[0];
    } else {
      errno = () => koffi.errno();
    }
  } else {
    throw new Error(`no bare binding for ${ffi}`);
  }
  return {
    credentials(fd) {
      length[0] = 12;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED) !== 0) {
        throw new Error(`errno ${errno()}`);
      }
      return { pid: words[0], uid: words[1] >>> 0, gid: words[2] >>> 0 };
    },
    label(fd) {
      length[0] = 256;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC) === 0) {
        return length[0];
      }
      const error = errno();
      if (error === ENOPROTOOPT) return null;
      throw new Error(`errno ${error}`);
    },
  };
}
