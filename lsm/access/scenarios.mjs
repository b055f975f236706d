// Runs inside the access lane's guest, in Deno, Bun and Node 26: peersec's
// access decisions for a matrix of client labels × methods × paths, next to
// the kernel's (or libselinux's) own answer for the same question; the same
// questions as real HTTP requests from clients running under each label to
// peersec's own servers (serve and serveNode with the access option); and
// `peersec access` (cli.ts in this runtime) for a few of them. One JSON line
// per answer on stdout; the host compares.
//
//   <runtime> scenarios.mjs <peersec dir> <ts|js> <lsm> <runtime name> [part]
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const args = typeof Deno === "object" ? Deno.args : process.argv.slice(2);
const [base, extension, lsm, runtimeName, part] = args;
const access = await import(`${base}/access.${extension}`);
const serving = await import(`${base}/serve.${extension}`);
const config = JSON.parse(
  readFileSync("/etc/peersec-access/config.json", "utf8"),
);
const TOOL = "/bin/accesstool";
const AS = "/bin/lsmtool";

const emit = (entry) =>
  console.log(JSON.stringify({ runtime: runtimeName, lsm, ...entry }));
const audits = [];
const decide = (decision) => ({
  allowed: decision.allowed,
  reason: decision.reason,
  audit: decision.audit,
  auditMessage: decision.auditMessage,
  detail: decision.detail,
});

function run(command, argv, input) {
  const result = spawnSync(command, argv, {
    input,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${argv.join(" ")}: exit ${result.status} ${result.stderr}`,
    );
  }
  return result.stdout;
}

function runAsync(command, argv) {
  return new Promise((resolve) => {
    const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => out += chunk);
    child.stderr.on("data", (chunk) => err += chunk);
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out: out.trim(), err: err.trim() });
    });
  });
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

// ---- SELinux ----------------------------------------------------------------

/** libselinux's answers to "scon tcon class perm" lines. */
function selinuxTruth(questions) {
  if (questions.length === 0) return [];
  const lines = run(
    "/bin/selinux-truth",
    [],
    questions.map((q) => q.join(" ")).join("\n") + "\n",
  ).trim().split("\n").map((line) => JSON.parse(line));
  emit({ step: "libselinux", state: lines[0] });
  return lines.slice(1);
}

function selinuxMatrix(phase, requests, clients) {
  const rows = [];
  const questions = [];
  for (const [client, label] of Object.entries(clients)) {
    for (const method of METHODS) {
      for (const path of config.paths) {
        const asked = requests.question(method, path);
        const decision = requests.check(label, method, path);
        const row = {
          step: "matrix",
          phase,
          client,
          label,
          method,
          path,
          object: asked.object ?? null,
          permission: asked.permission ?? null,
          ...decide(decision),
          truth: null,
        };
        if (asked.permission !== undefined) {
          row.truthIndex = questions.length;
          questions.push([
            label,
            asked.object,
            requests.checker.selinuxClass,
            asked.permission,
          ]);
        }
        rows.push(row);
      }
    }
  }
  const truths = selinuxTruth(questions);
  for (const row of rows) {
    if (row.truthIndex !== undefined) row.truth = truths[row.truthIndex];
    delete row.truthIndex;
    emit(row);
  }
}

const sh = (command) => run("/bin/sh", ["-c", command]);

async function selinux() {
  const checker = access.createAccessChecker({
    onAudit: (record) => audits.push(record.text),
  });
  emit({
    step: "detect",
    lsmFound: checker.lsm,
    problem: checker.problem,
    own: checker.ownLabel(),
  });
  const requests = access.createRequestAccess(checker, {
    selinux: { routes: { "/admin": config.selinux.admin } },
  });
  // First, before anything else here makes the kernel print: printk of
  // audit lines is rate-limited.
  await systemAudit();
  const clients = { ...config.selinux.clients, ghost: config.selinux.ghost };
  selinuxMatrix("A-enforcing", requests, clients);
  await httpPhase(
    "A-http",
    requests,
    Object.fromEntries(
      Object.entries(config.selinux.clients).map((
        [client, label],
      ) => [client, ["selinux", label]]),
    ),
  );
  await cliPhase();
  sh("echo 0 > /sys/fs/selinux/enforce");
  selinuxMatrix("A-permissive", requests, clients);
  sh("echo 1 > /sys/fs/selinux/enforce");
  // A new policy under the running checker: peersec_http's value shifts by
  // one and client_b_t may GET.
  sh("cat /etc/peersec-access/policy.B > /sys/fs/selinux/load");
  selinuxMatrix("B-reloaded", requests, clients);
  // A server domain without security:compute_av, in a process of its own.
  const output = run(AS, [
    "as",
    "selinux",
    config.selinux.serverWithoutComputeAv,
    ...runtimeArgv(),
    "nocav",
  ]);
  const refused = output.split("\n").filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line)).find((entry) => "reason" in entry);
  emit({ ...refused, step: "query-refused" });
  // The base alone: no peersec_http class; handle_unknown=allow.
  sh("cat /etc/peersec-access/policy.none > /sys/fs/selinux/load");
  selinuxMatrix("none-unknown-class", requests, {
    reader: config.selinux.clients.reader,
  });
  emit({ step: "audits", texts: audits });
}

/** The guest's kernel log (busybox dmesg reads it with syslog(2)). */
const kernelLog = () => run("/bin/dmesg", []);

/**
 * The default sink ("system"): a denial the policy audits goes to the
 * kernel's audit as AUDIT_USER_AVC over NETLINK_AUDIT (server_t may create
 * the socket, relay the message and use CAP_AUDIT_WRITE), and with no auditd
 * the kernel prints it: `audit: type=1107 … msg='<auditMessage>'`. One
 * record only (printk is rate-limited); the host checks that stderr has no
 * fallback line.
 */
async function systemAudit() {
  const checker = access.createAccessChecker();
  const requests = access.createRequestAccess(checker);
  const before = checker.auditDestination;
  // A path no other record has, so the line found is this one.
  const path = `/v1/system-audit-${runtimeName}-${Date.now()}`;
  const decision = requests.check(
    config.selinux.clients.nothing,
    "POST",
    path,
  );
  const needle = `msg='${decision.auditMessage}'`;
  let line = null;
  let log = "";
  // kauditd prints from a kernel thread: wait for it (5 s at most).
  for (let attempt = 0; attempt < 50 && line === null; attempt++) {
    log = kernelLog();
    line = log.split("\n").find((candidate) =>
      decision.auditMessage !== null && candidate.includes("type=1107") &&
      candidate.endsWith(needle)
    ) ?? null;
    if (line === null) {
      await new Promise((done) =>
        setTimeout(done, 100)
      );
    }
  }
  emit({
    step: "system-audit",
    path,
    before,
    after: checker.auditDestination,
    problem: checker.auditProblem,
    ...decide(decision),
    line,
    logEnd: line === null ? log.split("\n").slice(-8) : null,
  });
  checker.close();
}

/** This runtime's command line for a part of this script. */
function runtimeArgv() {
  const script = "/opt/lane/access-scenarios.mjs";
  const rest = [base, extension, lsm, runtimeName];
  if (typeof Deno === "object") {
    return ["/opt/bin/deno", "run", "--allow-all", script, ...rest];
  }
  if (typeof Bun === "object") return ["/opt/bin/bun", script, ...rest];
  return [
    process.execPath,
    "--disable-warning=ExperimentalWarning",
    script,
    ...rest,
  ];
}

function nocav() {
  const checker = access.createAccessChecker({ onAudit: "ignore" });
  const decision = checker.check(
    config.selinux.clients.reader,
    config.selinux.server,
    "get",
  );
  console.log(JSON.stringify(decide(decision)));
}

// ---- HTTP ---------------------------------------------------------------------

/** What the handlers answer: the label the server read for the connection. */
function answer(entry, label, method, target) {
  return JSON.stringify({ entry, label, method, target });
}

/**
 * peersec's own servers — `serve` and `serveNode`, both with
 * `access: requests` and `allow: "everyone"` on a 0666 socket — and clients
 * under each label sending every request of config.httpRequests (raw paths,
 * unnormalised) with accesstool: once with a connection per request, once
 * all on one keep-alive connection (a denial is a 403 for that request
 * only). `clients` maps a client's name to [how it runs, its label]: how is
 * `selinux`, `apparmor` or `smack` (lsmtool as …), or null (as this process).
 * `entries` limits the servers (default both).
 */
async function httpPhase(
  phase,
  requests,
  clients,
  entries = ["serve", "serveNode"],
) {
  const started = Date.now();
  const servers = [];
  for (const entry of entries) {
    const path = `/tmp/${runtimeName}-${phase}-${entry}.sock`;
    const options = { path, mode: 0o666, allow: "everyone", access: requests };
    const server = entry === "serve"
      ? serving.serve(options, (request, { peer }) =>
        new Response(
          answer(entry, peer.securityContext, request.method, request.url),
          { headers: { "content-type": "application/json" } },
        ))
      : serving.serveNode(options, (req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(
          answer(
            entry,
            serving.peerOf(req).securityContext,
            req.method,
            req.url,
          ),
        );
      });
    await server.ready;
    servers.push([entry, path, server]);
  }
  try {
    const list = config.httpRequests;
    for (const [entry, path] of servers) {
      for (const [client, [how, label]] of Object.entries(clients)) {
        for (const connection of ["close", "keep-alive"]) {
          const argv = [
            TOOL,
            "http",
            path,
            connection,
            ...list.flat(),
          ];
          const result = await runAsync(
            how === null ? argv[0] : AS,
            how === null ? argv.slice(1) : ["as", how, label, ...argv],
          );
          const lines = result.out.split("\n").filter((line) =>
            line.startsWith("{")
          ).map((line) => JSON.parse(line));
          list.forEach(([method, target], index) => {
            const line = lines[index] ?? {};
            emit({
              step: "http",
              phase,
              entry,
              connection,
              client,
              label,
              method,
              target,
              status: line.status ?? null,
              body: line.body ?? null,
              clientError: line.error ??
                (line.status === undefined
                  ? `no answer (exit ${result.code}): ${result.err}`
                  : null),
            });
          });
        }
      }
    }
  } finally {
    for (const [, , server] of servers) await server.shutdown();
  }
  emit({ step: "time", part: phase, ms: Date.now() - started });
}

// ---- the CLI ------------------------------------------------------------------

/** `peersec access …` in this runtime (cli.ts, or cli.js for Node). */
function cliArgv(args) {
  const cli = `${base}/cli.${extension}`;
  if (typeof Deno === "object") {
    return ["/opt/bin/deno", "run", "--allow-all", cli, ...args];
  }
  if (typeof Bun === "object") return ["/opt/bin/bun", cli, ...args];
  return [
    process.execPath,
    "--disable-warning=ExperimentalWarning",
    cli,
    ...args,
  ];
}

/**
 * `peersec access <label> <METHOD> <path> [options] --json` for each of
 * config.cli[lsm]: its exit code and JSON answer.
 */
async function cliPhase() {
  const started = Date.now();
  for (const { client, label, method, path, options } of config.cli[lsm]) {
    const [command, ...argv] = cliArgv([
      "access",
      label,
      method,
      path,
      ...options,
      "--json",
    ]);
    const result = await runAsync(command, argv);
    let json = null;
    try {
      json = JSON.parse(result.out);
    } catch {
      // kept null: the host reports the output
    }
    emit({
      step: "cli",
      client,
      label,
      method,
      path,
      options,
      code: result.code,
      json,
      out: json === null ? result.out.slice(0, 2000) : null,
      err: result.err.slice(0, 2000) || null,
    });
  }
  emit({ step: "time", part: "cli", ms: Date.now() - started });
}

// ---- AppArmor -----------------------------------------------------------------

async function apparmor() {
  const records = [];
  const checker = access.createAccessChecker({
    onAudit: (record) => records.push(record.text),
  });
  emit({ step: "detect", lsmFound: checker.lsm, problem: checker.problem });
  const requests = access.createRequestAccess(checker, {
    apparmor: { service: config.apparmor.service },
  });
  // The kernel's own decision: the confined client opens the very path the
  // query names (it exists in the guest's filesystem).
  for (const [client, profile] of Object.entries(config.apparmor.clients)) {
    const label = profile === null ? "unconfined" : `${profile}`;
    for (const [method, path] of config.apparmor.matrix) {
      const asked = requests.question(method, path);
      const kernelLabel = profile === null
        ? null
        : config.apparmor.modes[client];
      const decision = requests.check(
        kernelLabel === null ? "unconfined" : `${label} (${kernelLabel})`,
        method,
        path,
      );
      const opened = asked.object === undefined
        ? null
        : (profile === null ? run(TOOL, ["open", asked.object, "r"]) : run(AS, [
          "as",
          "apparmor",
          profile,
          TOOL,
          "open",
          asked.object,
          "r",
        ]))
          .trim();
      emit({
        step: "matrix",
        phase: "apparmor",
        client,
        method,
        path,
        object: asked.object ?? null,
        ...decide(decision),
        openErrno: opened === null ? null : Number(opened),
      });
    }
  }
  const clients = Object.fromEntries(
    Object.entries(config.apparmor.clients).map(([client, profile]) => [
      client,
      profile === null ? [null, "unconfined"] : ["apparmor", profile],
    ]),
  );
  await httpPhase("apparmor-http", requests, clients);
  // A checker told to let unconfined peers through: the kernel's answer.
  const letUnconfined = access.createRequestAccess(
    access.createAccessChecker({
      unconfined: "allow",
      onAudit: (record) => records.push(record.text),
    }),
    { apparmor: { service: config.apparmor.service } },
  );
  await httpPhase(
    "apparmor-http-unconfined-allow",
    letUnconfined,
    { unconfined: clients.unconfined },
    ["serve"],
  );
  await cliPhase();
  emit({ step: "audits", texts: records });
}

// ---- Smack ----------------------------------------------------------------------

async function smack() {
  const records = [];
  const checker = access.createAccessChecker({
    onAudit: (record) => records.push(record.text),
  });
  emit({ step: "detect", lsmFound: checker.lsm, problem: checker.problem });
  const requests = access.createRequestAccess(checker, {
    smack: { object: config.smack.object, routes: config.smack.routes },
  });
  for (const [client, label] of Object.entries(config.smack.clients)) {
    for (const method of METHODS) {
      for (const path of config.paths) {
        const asked = requests.question(method, path);
        const decision = requests.check(label, method, path);
        let truth = null;
        if (asked.object !== undefined) {
          // The kernel's own decision on a real file labelled with the
          // object label, opened by a process with the client's label
          // (r: read, w: write), and access2 as C asks it.
          const file = `/tmp/smack-objects/${asked.object}`;
          const mode = asked.permission.includes("w") ? "w" : "r";
          truth = {
            open: Number(
              run(AS, [
                "as",
                "smack",
                label,
                TOOL,
                "open-as-nobody",
                file,
                mode,
              ]).trim(),
            ),
            access2: run(TOOL, [
              "access2",
              label,
              asked.object,
              asked.permission,
            ]).trim(),
          };
        }
        emit({
          step: "matrix",
          phase: "smack",
          client,
          label,
          method,
          path,
          object: asked.object ?? null,
          permission: asked.permission ?? null,
          ...decide(decision),
          truth,
        });
      }
    }
  }
  await httpPhase(
    "smack-http",
    requests,
    Object.fromEntries(
      Object.entries(config.smack.clients).map((
        [client, label],
      ) => [client, ["smack", label]]),
    ),
  );
  await cliPhase();
  emit({ step: "audits", texts: records });
}

try {
  if (part === "nocav") nocav();
  else if (lsm === "selinux") await selinux();
  else if (lsm === "apparmor") await apparmor();
  else if (lsm === "smack") await smack();
  emit({ step: "done" });
} catch (error) {
  emit({ step: "crash", error: String(error?.stack ?? error) });
}
