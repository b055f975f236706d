// The LSM lane (`npm run test:lsm`): boots real SELinux, AppArmor and Smack
// kernels under qemu (software emulation) and checks that Deno, Bun, Node 26
// and Node 20 read through peersec exactly what the kernel reports, for every
// socket kind SO_PEERSEC(2const) names: UNIX stream, SEQPACKET and datagram
// sockets, and TCP over IPv4 and IPv6 with and without labeled networking.
//
// Needs root (apt-get, a kernel build the first time). Kernels and the
// Smack build are cached in $PEERSEC_LSM_CACHE (default /var/cache/peersec-lsm).
// Fails loudly when anything cannot run; never reports a skipped scenario as
// passed. Then runs the access lane (lsm/access/lane.mjs: peersec/access,
// serve/serveNode's access option and `peersec access` against the kernels'
// own decisions) for the same LSMs, unless --no-access. Writes
// .test-results/lsm.xml, both lanes' cases, for the total line.
//   node lsm/lane.mjs [selinux] [apparmor] [smack] [--no-access]
//
// Where things are:
//   lsms.mjs          each LSM's guest setup and scenarios (how a scenario is set up)
//   kernels.mjs       kernels, kernel modules, the network tools, from Debian
//   initramfs.mjs     the guest's files and the C ground-truth script
//   guest/init        the guest's PID 1; guest/scenarios.mjs, what each runtime runs
//   lsmtool.c         the C ground truth and the guest's helpers
//   boot.mjs          qemu, and the files the guest prints
//   compare.mjs       how answers are judged (how results are compared)
//   access/           the access lane, a separate process with guests of its own
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { boot } from "./boot.mjs";
import {
  cache,
  elapsed,
  fail,
  here,
  log,
  results,
  root,
  run,
} from "./common.mjs";
import {
  check,
  checkProbe,
  checkSelf,
  ERRNO_NAMES,
  junit,
  labelBenchmark,
  printable,
} from "./compare.mjs";
import { buildInitramfs } from "./initramfs.mjs";
import {
  apparmorKernel,
  download,
  ensureTools,
  networkTools,
  selinuxKernel,
  smackKernel,
} from "./kernels.mjs";
import { lsms } from "./lsms.mjs";

const LSMS = ["selinux", "apparmor", "smack"];
const withAccess = !process.argv.includes("--no-access");
const named = process.argv.slice(2).filter((arg) => arg !== "--no-access");
const unknown = named.filter((name) => !LSMS.includes(name));
if (unknown.length) fail(`unknown arguments: ${unknown.join(" ")}`);
const wanted = named.length ? named : LSMS;

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

log("network tools (netlabelctl, ip)");
const tools = networkTools();

log("initramfs");
const definitions = lsms(selinuxLongType);
const cpio = buildInitramfs(
  definitions,
  Object.fromEntries(
    Object.entries(kernels).map(([lsm, vmlinux]) => [lsm, dirname(vmlinux)]),
  ),
  tools,
);
log(`initramfs: ${(readFileSync(cpio).length / 2 ** 20).toFixed(0)} MiB`);

const cases = [];
const table = new Map();
let benchReport = "";

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
  cases.push({
    name: `${lsm} peersec-self bun`,
    problems: checkSelf(
      lsm,
      parse("cli-self.json")[0],
      truths.socketpair,
      files["cli-self.err"],
    ),
  });
  if (definition.probe) {
    cases.push({
      name: `${lsm} peersec-probe-tcp bun`,
      problems: checkProbe(
        parse("cli-probe.json")[0],
        truths[definition.probe.scenario],
        files["cli-probe.err"],
      ),
    });
  }
  for (const runtime of ["deno", "bun", "node26", "node20"]) {
    const answers = Object.fromEntries(
      parse(`${runtime}.jsonl`).map((entry) => [entry.scenario, entry]),
    );
    // lsmtool inherit's truth, read from the fds this runtime was handed.
    const inherited = Object.fromEntries(
      parse(`c-${runtime}.jsonl`).map((entry) => [entry.scenario, entry.truth]),
    );
    for (const scenario of definition.scenarios) {
      if (scenario.runtimes && !scenario.runtimes.includes(runtime)) continue;
      const truth = scenario.kind === "inherit"
        ? inherited[scenario.name]
        : truths[scenario.name];
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
      // The kernel's answers, one row per scenario; an inherited fd's truth
      // is read once per runtime, and where those differ the row says so.
      const answer = !truth
        ? "no truth"
        : truth.errno
        ? ERRNO_NAMES[truth.errno] ?? `errno ${truth.errno}`
        : `${truth.len} bytes  |  ${
          printable(
            Buffer.from(truth.hex, "hex").toString("utf8").replace(
              /\0$/,
              "\\0",
            ),
          )
        }`;
      const row = `${lsm}  |  ${scenario.name}`;
      if (!table.has(row)) table.set(row, new Set());
      table.get(row).add(answer);
    }
  }
}

if (withAccess) {
  // Its own process: a guest that cannot finish fails it (fail() exits),
  // and the cases above are still reported.
  log(`the access lane: node lsm/access/lane.mjs ${wanted.join(" ")}`);
  const started = Date.now();
  const file = join(results, "lsm-access-cases.json");
  rmSync(file, { force: true });
  const child = spawnSync(
    process.execPath,
    [join(here, "access/lane.mjs"), ...wanted, "--cases", file],
    { stdio: "inherit", timeout: 20 * 60_000, killSignal: "SIGKILL" },
  );
  const accessCases = existsSync(file)
    ? JSON.parse(readFileSync(file, "utf8"))
    : [];
  rmSync(file, { force: true });
  if (
    accessCases.length === 0 ||
    (child.status !== 0 &&
      !accessCases.some(({ problems }) => problems.length))
  ) {
    accessCases.push({
      name: "access lane",
      problems: [
        `lsm/access/lane.mjs ended with ${
          child.error ?? child.signal ?? `exit ${child.status}`
        } after ${accessCases.length} cases; its output is above`,
      ],
    });
  }
  log(
    `access lane: ${accessCases.length} cases in ${
      ((Date.now() - started) / 1000).toFixed(0)
    } s`,
  );
  cases.push(...accessCases);
}

writeFileSync(join(results, "lsm.xml"), junit(cases));
if (benchReport) console.log(benchReport);
console.log("\nkernel answers (ground truth):");
for (const [row, answers] of table) {
  console.log(`  ${row}  |  ${[...answers].join("  OR  ")}`);
}
const failed = cases.filter(({ problems }) => problems.length);
for (const { name, problems } of failed) {
  const more = problems.length > 40
    ? [`… and ${problems.length - 40} more`]
    : [];
  console.log(
    `\nFAIL ${name}\n  - ${[...problems.slice(0, 40), ...more].join("\n  - ")}`,
  );
}
console.log(
  `\nlsm lane: ${
    cases.length - failed.length
  } passed, ${failed.length} failed (${elapsed()})`,
);
process.exit(failed.length ? 1 : 0);
