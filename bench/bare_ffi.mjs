// The same getsockopt calls as peersec makes, through the same FFI, declared
// the plainest way and with no peersec around them: what the FFI alone costs.
// Each returns what peersec's function returns (credentials as an object;
// null for "no label"), reading errno the FFI's own way (Deno getInt32, Bun
// read.i32, node:ffi getInt32, koffi.errno()). x86_64/generic constants.
//   const bare = await bareFfi(backend.ffi, backend.libraryPath);
//   bare.credentials(fd); bare.label(fd)
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERSEC = 31;
const ENOPROTOOPT = 92;

/**
 * `ffi`: the FFI peersec opened ("Deno.dlopen", "bun:ffi", "node:ffi",
 * "koffi"); `library`: the library it opened (libc, or the benchmark's stub).
 */
export async function bareFfi(ffi, library = "libc.so.6") {
  const value = new Uint8Array(256);
  const words = new Int32Array(value.buffer);
  const length = new Uint32Array(1);
  let getsockopt;
  let errno;
  if (ffi === "Deno.dlopen") {
    const { symbols } = Deno.dlopen(library, {
      getsockopt: {
        parameters: ["i32", "i32", "i32", "buffer", "buffer"],
        result: "i32",
      },
      __errno_location: { parameters: [], result: "pointer" },
    });
    const view = new Deno.UnsafePointerView(symbols.__errno_location());
    getsockopt = symbols.getsockopt;
    errno = () => view.getInt32(0);
  } else if (ffi === "bun:ffi") {
    const { dlopen, FFIType, read } = await import("bun:ffi");
    const { symbols } = dlopen(library, {
      getsockopt: {
        args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
        returns: FFIType.i32,
      },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    const pointer = symbols.__errno_location();
    getsockopt = symbols.getsockopt;
    errno = () => read.i32(pointer, 0);
  } else if (ffi === "node:ffi") {
    const ffi = process.getBuiltinModule("node:ffi");
    const { functions } = ffi.dlopen(library, {
      getsockopt: {
        arguments: ["i32", "i32", "i32", "pointer", "pointer"],
        return: "i32",
      },
      __errno_location: { arguments: [], return: "pointer" },
    });
    const pointer = functions.__errno_location();
    getsockopt = functions.getsockopt;
    errno = () => ffi.getInt32(pointer, 0);
  } else if (ffi === "koffi") {
    const { createRequire } = await import("node:module");
    const koffi = createRequire(import.meta.url)("koffi");
    const opened = koffi.load(library);
    getsockopt = opened.func("int getsockopt(int, int, int, void *, void *)");
    errno = () => koffi.errno();
  } else {
    throw new Error(`no bare binding for ${ffi}`);
  }
  return {
    credentials(fd) {
      length[0] = 12;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) {
        throw new Error(`errno ${errno()}`);
      }
      return { pid: words[0], uid: words[1] >>> 0, gid: words[2] >>> 0 };
    },
    label(fd) {
      length[0] = 256;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, value, length) === 0) {
        return length[0];
      }
      if (errno() === ENOPROTOOPT) return null;
      throw new Error(`errno ${errno()}`);
    },
  };
}
