// README.md, as a newcomer uses it: every fenced TypeScript, JavaScript and
// shell snippet is run, type-checked, or says in the README why it is not.
//
// - ```ts run / ```js run: a complete program. Its first line names the file
//   (`// server.mjs`); its `// $ ` lines are the commands, as a reader would
//   type them: each one but the last starts the server one way (a `node`
//   command runs in every tested Node), the last is the client, and the line
//   after it is the answer the README shows. Each server is started from a
//   fresh consumer project holding the packed npm package, asked by the
//   client, compared with the answer shown, stopped with SIGINT (Ctrl-C), and
//   started again, which fails if it left its socket file behind.
// - ```ts check: a fragment (`fd` and `socket` come from a server); the
//   TypeScript compiler checks it against the package's types.
// - ```sh run: `$ ` lines are commands, the lines under each its exact output.
// - Anything else is followed by a visible "*Not run by the README test: …*".
//
// Run after build_npm.ts: node --test tests/integration/readme.mjs
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  assertTypeChecks,
  nodeTool,
  ownGroups,
  ownLabel,
  root,
} from "./common.mjs";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const devDependencies = JSON.parse(
  readFileSync(join(root, "package.json"), "utf8"),
).devDependencies;
/** The Nodes a `node` command runs in, and whether each gets koffi. */
const NODES = [
  { version: "20", binary: process.execPath, consumer: "withKoffi" },
  { version: "22", binary: nodeTool("22"), consumer: "withKoffi" },
  { version: "24", binary: nodeTool("24"), consumer: "withKoffi" },
  { version: "26", binary: nodeTool("26"), consumer: "plain" },
];
const NOT_RUN = "*Not run by the README test:";

/** Every fenced block of a Markdown text, with what follows it. */
export function fences(markdown) {
  const lines = markdown.split("\n");
  const blocks = [];
  for (let index = 0; index < lines.length; index++) {
    const open = lines[index].match(/^(\s*)```(\S*)\s*(.*)$/);
    if (!open) continue;
    const [, indent, language, info] = open;
    const body = [];
    let end = index + 1;
    while (end < lines.length && lines[end] !== `${indent}\`\`\``) {
      body.push(lines[end].slice(indent.length));
      end++;
    }
    const next = lines.slice(end + 1).find((line) => line.trim() !== "");
    blocks.push({
      line: index + 1,
      language,
      words: info.split(/\s+/).filter(Boolean),
      body: body.join("\n"),
      notRun: next?.trim().startsWith(NOT_RUN) ?? false,
    });
    index = end;
  }
  return blocks;
}

/** A `run` snippet: its file, server commands, client command and answer. */
export function program(block) {
  const lines = block.body.split("\n");
  const file = lines[0].match(/^\/\/ (\S+\.(?:mjs|js|ts))\b/)?.[1];
  assert.ok(file, `README line ${block.line}: no "// <file>" first line`);
  const commands = [];
  let answer;
  lines.forEach((line, index) => {
    const command = line.match(/^\/\/ \$ (.+)$/);
    if (command) {
      commands.push(command[1]);
      answer = lines[index + 1].replace(/^\/\/ /, "");
    }
  });
  assert.ok(commands.length >= 2, `README line ${block.line}: no commands`);
  return {
    line: block.line,
    file,
    servers: commands.slice(0, -1),
    client: commands.at(-1),
    answer: JSON.parse(answer),
    source: block.body,
  };
}

const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = fences(readme);
const CODE = new Set(["ts", "js", "sh", "bash"]);

let work;
const consumers = {};
const paths = {};

function binDirectory(name, node) {
  const directory = join(work, `bin-${name}`);
  mkdirSync(directory);
  symlinkSync(node, join(directory, "node"));
  for (const tool of ["bun", "deno"]) {
    symlinkSync(
      realpathSync(join(root, "node_modules/.bin", tool)),
      join(directory, tool),
    );
  }
  return `${directory}:${process.env.PATH}`;
}

function makeConsumer(name, tarball, packages) {
  const directory = join(work, name);
  mkdirSync(directory);
  writeFileSync(
    join(directory, "package.json"),
    JSON.stringify({ name: `readme-${name}`, private: true, type: "module" }),
  );
  execFileSync("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    tarball,
    ...packages,
  ], { cwd: directory, timeout: 600_000, stdio: ["ignore", "ignore", "pipe"] });
  return directory;
}

before(() => {
  work = mkdtempSync(join(tmpdir(), "peersec-readme-"));
  const packed = JSON.parse(execFileSync("npm", [
    "pack",
    join(root, "npm"),
    "--pack-destination",
    work,
    "--json",
  ], { cwd: work, encoding: "utf8", timeout: 120_000 }));
  const tarball = join(work, packed[0].filename);
  const hono = `hono@${devDependencies.hono}`;
  consumers.withKoffi = makeConsumer("with-koffi", tarball, [
    `koffi@${devDependencies.koffi}`,
    hono,
  ]);
  consumers.plain = makeConsumer("plain", tarball, [hono]);
  for (const { version, binary } of NODES) {
    paths[version] = binDirectory(`node${version}`, binary);
  }
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Starts `command` with bash where `place` says (its folder and PATH). */
function bash(command, place) {
  const child = spawn("bash", ["-c", command], {
    cwd: place.cwd,
    env: { ...process.env, PATH: place.path, NO_COLOR: "1" },
  });
  const output = { stdout: "", stderr: "", both: "" };
  for (const stream of ["stdout", "stderr"]) {
    child[stream].on("data", (chunk) => {
      output[stream] += chunk;
      output.both += chunk;
    });
  }
  const exited = new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  return { child, output, exited };
}

/** Runs `command` to its end (killed after `timeout` ms): pid, status, output. */
async function shell(command, { timeout = 30_000, ...place }) {
  const { child, output, exited } = bash(command, place);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
  const { code, signal } = await exited;
  clearTimeout(timer);
  return { pid: child.pid, code, signal, ...output };
}

/** Starts a server command; `output()` is what it printed so far. */
function startServer(command, place) {
  const { child, output, exited } = bash(command, place);
  let done = false;
  exited.then(() => (done = true));
  return { child, exited, output: () => output.both, done: () => done };
}

/** What a client started by this test inherits: its uid, gid, groups, label. */
function inheritedIdentity() {
  return {
    uid: process.getuid(),
    gid: process.getgid(),
    groups: ownGroups(),
    securityContext: ownLabel(),
  };
}

/**
 * The answer has the shape the README shows, every plain value as shown, and
 * `identity`'s values where the README shows the client's identity: its pid
 * (the client's process), the uid, gid, groups and label it inherited.
 */
function assertAnswer(actual, shown, identity, where = "answer") {
  if (shown !== null && typeof shown === "object" && !Array.isArray(shown)) {
    assert.deepEqual(
      Object.keys(actual ?? {}).sort(),
      Object.keys(shown).sort(),
      `${where}: the keys the README shows`,
    );
    for (const key of Object.keys(shown)) {
      if (key in identity && !(typeof shown[key] === "object" && shown[key])) {
        assert.deepEqual(actual[key], identity[key], `${where}.${key}`);
      } else {
        assertAnswer(actual[key], shown[key], identity, `${where}.${key}`);
      }
    }
  } else {
    assert.deepEqual(actual, shown, where);
  }
}

/** Asks the server with the README's client until it answers (≤ 20 s). */
async function ask(server, client, options) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const result = await shell(client, options);
    if (result.code === 0) return result;
    if (server.done() || Date.now() > deadline) {
      assert.fail(
        `${client} failed (${result.code}): ${result.stderr}\nserver:\n${server.output()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Where one server command runs: each Node for `node`, else Node 20's PATH. */
function placesFor(command, file) {
  if (/(^|\s)node\s/.test(command)) {
    // Node strips TypeScript types from 22.18 on; 20 cannot run a .ts file.
    return NODES.filter(({ version }) => !file.endsWith(".ts") || version > 20)
      .map(({ version, consumer }) => ({
        name: `Node ${version}`,
        cwd: consumers[consumer],
        path: paths[version],
      }));
  }
  return [{ name: "", cwd: consumers.withKoffi, path: paths["20"] }];
}

async function serveOnce(command, snippet, place) {
  const server = startServer(command, place);
  try {
    const answer = await ask(server, snippet.client, place);
    let body;
    try {
      body = JSON.parse(answer.stdout);
    } catch {
      assert.fail(`not JSON: ${answer.stdout}\nserver:\n${server.output()}`);
    }
    assertAnswer(body, snippet.answer, {
      pid: answer.pid,
      ...inheritedIdentity(),
    });
    server.child.kill("SIGINT");
    const stop = await Promise.race([
      server.exited,
      new Promise((resolve) => setTimeout(() => resolve(null), 10_000)),
    ]);
    assert.ok(stop, `still running 10 s after SIGINT:\n${server.output()}`);
    assert.equal(stop.code, 0, `exit after SIGINT:\n${server.output()}`);
  } finally {
    server.child.kill("SIGKILL");
  }
}

test("every README code snippet is run, type-checked, or says why not", () => {
  const unmarked = blocks.filter((block) =>
    CODE.has(block.language) && !block.words.includes("run") &&
    !block.words.includes("check") && !block.notRun
  );
  assert.deepEqual(
    unmarked.map(({ line }) => `README.md:${line}`),
    [],
    `snippets with neither "run" nor "check" nor "${NOT_RUN} …" after them`,
  );
  assert.ok(blocks.filter((block) => block.words.includes("run")).length >= 6);
});

const programs = blocks.filter((block) =>
  block.words.includes("run") && block.language !== "sh"
).map(program);

for (const snippet of programs) {
  for (const command of snippet.servers) {
    for (const place of placesFor(command, snippet.file)) {
      test(
        `README.md:${snippet.line} ${snippet.file}${
          place.name ? ` (${place.name})` : ""
        }: $ ${command}`,
        async () => {
          writeFileSync(join(place.cwd, snippet.file), snippet.source);
          // Run, Ctrl-C, run again: a socket file left behind fails the second.
          await serveOnce(command, snippet, place);
          await serveOnce(command, snippet, place);
        },
      );
    }
  }
}

// Each program stops at start, saying what to do, where it cannot read peers.
// (Not under systemd-socket-activate, which starts the program only when the
// first client connects.)
for (const snippet of programs) {
  for (const command of snippet.servers) {
    if (/^deno run --allow-ffi /.test(command)) {
      test(`README.md:${snippet.line} ${snippet.file} without --allow-ffi stops at start with ERR_FFI_PERMISSION`, async () => {
        const place = { cwd: consumers.withKoffi, path: paths["20"] };
        writeFileSync(join(place.cwd, snippet.file), snippet.source);
        const result = await shell(command.replace("--allow-ffi ", ""), {
          ...place,
          timeout: 20_000,
        });
        assert.equal(result.signal, null, "it stopped by itself");
        assert.notEqual(result.code, 0);
        assert.match(
          result.stderr,
          /PeerSecError: Deno does not allow FFI [^\n]*run with --allow-ffi/,
        );
      });
    }
    if (/^node\s/.test(command) && !snippet.file.endsWith(".ts")) {
      test(`README.md:${snippet.line} ${snippet.file} on Node 20 without koffi stops at start with ERR_KOFFI_MISSING`, async () => {
        const place = { cwd: consumers.plain, path: paths["20"] };
        writeFileSync(join(place.cwd, snippet.file), snippet.source);
        const result = await shell(command, { ...place, timeout: 20_000 });
        assert.equal(result.signal, null, "it stopped by itself");
        assert.notEqual(result.code, 0);
        assert.match(
          result.stderr,
          /PeerSecError: [^\n]*needs koffi[^\n]*npm install koffi/,
        );
        assert.match(result.stderr, /code: 'ERR_KOFFI_MISSING'/);
      });
    }
  }
}

test("README's fragments type-check against the package", () => {
  const fragments = blocks.filter((block) => block.words.includes("check"));
  assert.ok(fragments.length >= 3);
  const prelude = 'import type { Socket } from "node:net";\n' +
    "declare const fd: number;\ndeclare const socket: Socket;\n";
  const files = fragments.map((block) => {
    const file = join(consumers.withKoffi, `fragment_${block.line}.ts`);
    writeFileSync(file, `${prelude}${block.body}\nexport {};\n`);
    return file;
  });
  assertTypeChecks(files, consumers.withKoffi);
});

for (
  const block of blocks.filter((block) =>
    block.language === "sh" &&
    block.words.includes("run")
  )
) {
  test(`README.md:${block.line}: the shell commands print what it shows`, async () => {
    const steps = [];
    for (const line of block.body.split("\n")) {
      if (line.startsWith("$ ")) {
        steps.push({ command: line.slice(2), out: [] });
      } else steps.at(-1).out.push(line);
    }
    for (const { command, out } of steps) {
      const result = await shell(command, {
        cwd: consumers.withKoffi,
        path: paths["20"],
        timeout: 60_000,
      });
      assert.equal(result.code, 0, `${command}: ${result.stderr}`);
      assert.equal(result.stdout.trimEnd(), out.join("\n").trimEnd(), command);
    }
  });
}
