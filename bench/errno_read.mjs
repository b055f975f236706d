// `node bench/errno_read.mjs` (or run it with deno run -A, bun, Node 26):
// what reading errno costs after a failing call, the way each FFI offers it
// (Deno getInt32, Bun read.i32, node:ffi getInt32, koffi.errno()) against the
// thread's errno mapped into an Int32Array once, which the backends use. The
// call is getsockopt(SO_PEERSEC) on a socketpair (ENOPROTOOPT without an LSM;
// the loop checks errno is 92 every time), the two reads alternate in one
// process, and the median of 5 rounds is printed. A script, not a test.
const N = 1_000_000;
let call, oldRead, newRead, fd;
const rt = typeof Deno === "object"
  ? "deno"
  : typeof Bun === "object"
  ? "bun"
  : process.getBuiltinModule("node:ffi")?.dlopen
  ? "node:ffi"
  : "koffi";
const value = new Uint8Array(256),
  len = new Uint32Array(new ArrayBuffer(8), 0, 1);
if (rt === "bun") {
  const { dlopen, FFIType: T, read, toArrayBuffer } = await import("bun:ffi");
  const { symbols: s } = dlopen("libc.so.6", {
    getsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.ptr], returns: T.i32 },
    socketpair: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
    __errno_location: { args: [], returns: T.ptr },
  });
  const fds = new Int32Array(2);
  s.socketpair(1, 1, 0, fds);
  fd = fds[0];
  const p = s.__errno_location();
  const cell = new Int32Array(toArrayBuffer(p, 0, 4));
  call = () => {
    len[0] = 256;
    return s.getsockopt(fd, 1, 31, value, len);
  };
  oldRead = () => read.i32(p, 0);
  newRead = () => cell[0];
} else if (rt === "deno") {
  const { symbols: s } = Deno.dlopen("libc.so.6", {
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
    socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  });
  const fds = new Int32Array(2);
  s.socketpair(1, 1, 0, fds);
  fd = fds[0];
  const p = s.__errno_location();
  const view = new Deno.UnsafePointerView(p);
  const cell = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(p, 4));
  call = () => {
    len[0] = 256;
    return s.getsockopt(fd, 1, 31, value, len);
  };
  oldRead = () => view.getInt32(0);
  newRead = () => cell[0];
} else if (rt === "node:ffi") {
  const ffi = process.getBuiltinModule("node:ffi");
  const { functions: f } = ffi.dlopen("libc.so.6", {
    getsockopt: {
      arguments: ["i32", "i32", "i32", "pointer", "pointer"],
      return: "i32",
    },
    socketpair: { arguments: ["i32", "i32", "i32", "pointer"], return: "i32" },
    __errno_location: { arguments: [], return: "pointer" },
  });
  const fds = new Int32Array(2);
  f.socketpair(1, 1, 0, fds);
  fd = fds[0];
  const p = f.__errno_location();
  const cell = new Int32Array(ffi.toArrayBuffer(p, 4, false));
  const vp = ffi.getRawPointer(value), lp = ffi.getRawPointer(len);
  call = () => {
    len[0] = 256;
    return f.getsockopt(fd, 1, 31, vp, lp);
  };
  oldRead = () => ffi.getInt32(p, 0);
  newRead = () => cell[0];
} else {
  const koffi = (await import("node:module")).createRequire(import.meta.url)(
    "koffi",
  );
  const lib = koffi.load("libc.so.6");
  const g = lib.func("int getsockopt(int, int, int, void *, void *)");
  const sp = lib.func("int socketpair(int, int, int, void *)");
  const loc = lib.func("void *__errno_location(void)");
  const cell = new Int32Array(koffi.view(loc(), 4));
  const fds = new Int32Array(2);
  sp(1, 1, 0, fds);
  fd = fds[0];
  call = () => {
    len[0] = 256;
    return g(fd, 1, 31, value, len);
  };
  oldRead = () => koffi.errno();
  newRead = () => cell[0];
}
function run(read) {
  let sink = 0;
  const t = performance.now();
  for (let i = 0; i < N; i++) if (call() === -1) sink += read();
  const ns = (performance.now() - t) * 1e6 / N;
  if (sink !== 92 * N) throw new Error("errno " + sink / N);
  return ns;
}
for (let i = 0; i < 200000; i++) {
  call();
  oldRead();
  newRead();
}
const o = [], n = [];
for (let r = 0; r < 5; r++) {
  o.push(run(oldRead));
  n.push(run(newRead));
}
const med = (a) => a.sort((x, y) => x - y)[2];
console.log(
  rt.padEnd(9),
  "old",
  med(o).toFixed(0),
  "ns  mapped",
  med(n).toFixed(0),
  "ns  saved",
  (med(o) - med(n)).toFixed(0),
  "ns",
);
