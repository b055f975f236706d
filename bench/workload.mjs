// The JavaScript side of the benchmark, the same file in Deno, Bun and Node:
// loads peersec (source .ts in Deno and Bun, the npm build's .js in Node),
// times the first call, then times getPeerCredentials and
// tryGetPeerSecurityContext on one connected socketpair. Prints one JSON line.
//   <runtime> workload.mjs <module-dir> <ext> <calls> <repetitions> [warm-up]
// (warm-up: calls before the first timing; default max(calls/10, 200000);
// the LSM lane's emulated guest passes fewer.)
const [moduleDirectory, extension, callsText, repetitionsText, warmUpText] =
  typeof Deno === "object" ? Deno.args : process.argv.slice(2);
const calls = Number(callsText);
const repetitions = Number(repetitionsText);
const warmUpCalls = warmUpText === undefined
  ? Math.max(calls / 10, 200_000)
  : Number(warmUpText);
const now = () => performance.now();
const environment = (name) =>
  typeof Deno === "object" ? Deno.env.get(name) : process.env[name];

// First use in a fresh process: importing the module, then the first call,
// which opens libc with the runtime's FFI (fd 0 is whatever stdin is here; the
// call's answer does not matter, its cost does).
const loadStart = now();
const peersec = await import(`${moduleDirectory}/mod.${extension}`);
const importMs = now() - loadStart;
const firstCallStart = now();
try {
  peersec.tryGetPeerSecurityContext(0);
} catch (error) {
  if (!(error instanceof peersec.PeerSecError)) throw error;
}
const firstCallMs = now() - firstCallStart;

const { defaultReader } = await import(
  `${moduleDirectory}/ffi/default_reader.${extension}`
);
const fds = new Int32Array(2);
const { AF_UNIX, SOCK_STREAM } = defaultReader.constants.socket;
if (defaultReader.backend.socketpair(AF_UNIX, SOCK_STREAM, 0, fds).rc !== 0) {
  throw new Error("socketpair failed");
}
const fd = fds[0];

// One timing loop per measured function, each compiled on its own (new
// Function), so that the JIT's feedback for one contender's call site never
// mixes with another's: with one shared loop the call site sees every
// contender and each pays for the others' presence, unequally.
const loops = new Map();

/** One timed repetition of `calls` calls (after a warm-up the first time). */
function measureOnce(call) {
  let loop = loops.get(call);
  if (loop === undefined) {
    loop = new Function(
      "call",
      "count",
      "let sink = 0;\n" +
        "for (let i = 0; i < count; i++) sink += call() === null ? 1 : 0;\n" +
        "return sink;",
    );
    loops.set(call, loop);
    // Warm up until every JIT tier has seen the loop.
    loop(call, warmUpCalls);
  }
  const start = now();
  const sink = loop(call, calls);
  const elapsed = now() - start;
  if (sink < 0) console.log(sink);
  return [(elapsed * 1e6) / calls];
}

const { getPeerCredentials, tryGetPeerSecurityContext } = peersec;
const label = tryGetPeerSecurityContext(fd);
// The same calls through the same FFI without peersec, in its plainest and
// its fastest shape, measured in the same process and interleaved with
// peersec's, so the difference is peersec's own.
const { bareFfi } = await import("./bare_ffi.mjs");
const { ffi, libraryPath } = defaultReader.backend;
const plainest = await bareFfi(ffi, libraryPath, "plainest");
const fastest = await bareFfi(ffi, libraryPath, "fastest");
// PEERSEC_BENCH_LABELED_FD=1 (the stub table): also time a read that finds
// a label, on a duplicate of the fd numbered from 100 up, where the stub
// getsockopt answers with one.
let labeledFd = -1;
if (environment("PEERSEC_BENCH_LABELED_FD") === "1") {
  const { FCNTL } = await import(
    `${moduleDirectory}/src/constants.${extension}`
  );
  labeledFd = defaultReader.backend.fcntl(fd, FCNTL.F_DUPFD_CLOEXEC, 100).rc;
  if (labeledFd < 100) throw new Error("could not duplicate the fd to 100+");
}
// One closure per call and contender, each its own function literal.
const contenders = [
  [
    () => getPeerCredentials(fd),
    () => tryGetPeerSecurityContext(fd),
    () => tryGetPeerSecurityContext(labeledFd),
  ],
  [
    () => plainest.credentials(fd),
    () => plainest.label(fd),
    () => plainest.label(labeledFd),
  ],
  [
    () => fastest.credentials(fd),
    () => fastest.label(fd),
    () => fastest.label(labeledFd),
  ],
];
const samplesOf = contenders.map(() => ({
  credentials: [],
  label: [],
  ...(labeledFd >= 0 ? { labelPresent: [] } : {}),
}));
const [peersecSamples, plainestSamples, fastestSamples] = samplesOf;
for (let round = 0; round < repetitions; round++) {
  for (
    const [index, [credentials, label, labelPresent]] of contenders.entries()
  ) {
    samplesOf[index].credentials.push(...measureOnce(credentials));
    samplesOf[index].label.push(...measureOnce(label));
    if (labeledFd >= 0) {
      samplesOf[index].labelPresent.push(...measureOnce(labelPresent));
    }
  }
}
console.log(JSON.stringify({
  importMs,
  firstCallMs,
  ffi: defaultReader.backend.ffi,
  labelResult: label,
  ...peersecSamples,
  labelPresentResult: labeledFd >= 0
    ? tryGetPeerSecurityContext(labeledFd)
    : undefined,
  bare: plainestSamples,
  fastest: fastestSamples,
}));
