// The bare FFI's first call in a fresh process, for the benchmark's "first
// call" column: from nothing loaded to one getsockopt through the FFI that
// peersec would pick here (Deno.dlopen, bun:ffi, koffi, or node:ffi when
// PEERSEC_FFI says so), declared the plainest way. Prints one JSON line.
//   <runtime> first_call_bare.mjs
const now = () => performance.now();
const start = now();
const value = new Uint8Array(256);
const length = new Uint32Array(1);
length[0] = 256;
if (typeof Deno === "object") {
  const { symbols } = Deno.dlopen("libc.so.6", {
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
  });
  symbols.getsockopt(0, 1, 31, value, length);
} else if (typeof Bun === "object") {
  const { dlopen, FFIType } = await import("bun:ffi");
  const { symbols } = dlopen("libc.so.6", {
    getsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
      returns: FFIType.i32,
    },
  });
  symbols.getsockopt(0, 1, 31, value, length);
} else if (process.env.PEERSEC_FFI === "node:ffi") {
  const { functions } = process.getBuiltinModule("node:ffi").dlopen(
    "libc.so.6",
    {
      getsockopt: {
        arguments: ["i32", "i32", "i32", "pointer", "pointer"],
        return: "i32",
      },
    },
  );
  functions.getsockopt(0, 1, 31, value, length);
} else {
  const { createRequire } = await import("node:module");
  const koffi = createRequire(import.meta.url)("koffi");
  const getsockopt = koffi.load("libc.so.6").func(
    "int getsockopt(int, int, int, void *, void *)",
  );
  getsockopt(0, 1, 31, value, length);
}
console.log(JSON.stringify({ firstCallMs: now() - start }));
