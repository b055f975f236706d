// README.md and docs/*.md, as a newcomer uses them: every fenced TypeScript,
// JavaScript and shell snippet is run, type-checked, or says in the text why
// it is not.
//
// - ```sh project: the commands that make a consumer project, as the
//   README's quick start gives them. The test makes its projects by running
//   them with bash, in a folder that holds `peersec/` as the quick start's
//   clone does (the packed tarball, and the repository's sources for
//   Deno's import map). Plain `project` is the npm project (made twice: with
//   the `npm install koffi` line for Node 20–25, without it for Node 26, Bun
//   and Deno; koffi at the version package.json pins), `project bun` and
//   `project deno` the ones without npm. The npm projects also get `hono`
//   (pinned), which the Hono program says to install.
// - ```ts run / ```js run: a complete program. Its first line names the file
//   (`// server.mjs`). Its commands, as a reader types them, are either its
//   own `// $ ` lines or the ```sh serve and ```sh ask blocks after it:
//   first the server commands (each starts the server one way; a `node`
//   command runs in every tested Node), then the clients, each a `curl`
//   line followed by the answer it prints. Each server is started in a
//   consumer project, asked by every client (a JSON answer is compared by
//   shape, with the client's own pid, uid, gid, groups and label where the
//   text shows them; any other answer exactly), stopped with SIGINT
//   (Ctrl-C), and started again, which fails if it left its socket file
//   behind. The README's first program (the quick start) also runs in the
//   Bun and Deno projects made without npm.
// - ```ts check: a fragment (`fd` and `socket` come from a server); the
//   TypeScript compiler checks it against the package's types.
// - ```sh run: `$ ` lines are commands, the lines under each its exact output.
// - Anything else is followed by a visible "*Not run by the README test: …*".
//
// The test runs as root; "another user" in the text is `runuser -u nobody`.
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
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
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
/** The Nodes a `node` command runs in, and the npm project each runs in. */
const NODES = [
  { version: "20", binary: process.execPath, consumer: "withKoffi" },
  { version: "22", binary: nodeTool("22"), consumer: "withKoffi" },
  { version: "24", binary: nodeTool("24"), consumer: "withKoffi" },
  { version: "26", binary: nodeTool("26"), consumer: "plain" },
];
const NOT_RUN = "*Not run by the README test:";
/** Words after a fence's language that this test acts on. */
const HANDLED = new Set(["run", "check", "project", "serve", "ask"]);
const KOFFI_LINE = /^npm install koffi(\s|$)/;

/** Every fenced block of a Markdown text, with what follows it. */
export function fences(markdown, file = "README.md") {
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
      file,
      line: index + 1,
      where: `${file}:${index + 1}`,
      language,
      words: info.split(/\s+/).filter(Boolean),
      body: body.join("\n"),
      notRun: next?.trim().startsWith(NOT_RUN) ?? false,
    });
    index = end;
  }
  return blocks;
}

/** A shell block's `$ ` command lines and the output under each: `[{ command, out }]`. */
function sessions(body) {
  const steps = [];
  for (const line of body.split("\n")) {
    if (line.startsWith("$ ")) steps.push({ command: line.slice(2), out: [] });
    else steps.at(-1)?.out.push(line);
  }
  return steps;
}

/** An answer as shown: JSON where it parses, else the exact text. */
function shownAnswer(lines, where) {
  const text = lines.join("\n").trimEnd();
  assert.ok(text !== "", `${where}: a client command with no answer under it`);
  try {
    return { json: true, value: JSON.parse(text) };
  } catch {
    return { json: false, value: text };
  }
}

/**
 * A `run` snippet: its file, server commands, and clients with their
 * answers — from its own `// $ ` lines, or from the ```sh serve and ```sh
 * ask blocks that follow it in `rest` (the blocks after it).
 */
export function program(block, rest = []) {
  const lines = block.body.split("\n");
  const file = lines[0].match(/^\/\/ (\S+\.(?:mjs|js|ts))\b/)?.[1];
  assert.ok(file, `${block.where}: no "// <file>" first line`);
  let steps;
  const own = lines.findIndex((line) => line.startsWith("// $ "));
  if (own !== -1) {
    // The comment lines from the first `$ `; narration after a server
    // command ("then, from another shell:") goes with it and is ignored.
    steps = [];
    for (const line of lines.slice(own)) {
      if (!line.startsWith("//")) break;
      const text = line.replace(/^\/\/ ?/, "");
      if (text.startsWith("$ ")) {
        steps.push({ command: text.slice(2), out: [] });
      } else steps.at(-1).out.push(text);
    }
  } else {
    const nextProgram = rest.findIndex((next) => next.words.includes("run"));
    const following = nextProgram === -1 ? rest : rest.slice(0, nextProgram);
    const serveBlock = following.find((next) => next.words[0] === "serve");
    const askBlock = following.find((next) => next.words[0] === "ask");
    assert.ok(
      serveBlock && askBlock,
      `${block.where}: no "// $ " lines, and no \`\`\`sh serve and \`\`\`sh ask blocks after it`,
    );
    steps = [...sessions(serveBlock.body), ...sessions(askBlock.body)];
  }
  const firstClient = steps.findIndex(({ command }) =>
    /\bcurl\b/.test(command)
  );
  assert.ok(firstClient > 0, `${block.where}: no server command before a curl`);
  const servers = steps.slice(0, firstClient).map(({ command }) => command);
  // A client's answer is every line under it, up to the next `$ `.
  const clients = steps.slice(firstClient).map(({ command, out }) => {
    assert.match(
      command,
      /\bcurl\b/,
      `${block.where}: "${command}" after a client`,
    );
    return { command, answer: shownAnswer(out, `${block.where} ${command}`) };
  });
  return { ...block, file, servers, clients, source: block.body };
}

const documents = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md"))
    .sort().map((name) => `docs/${name}`),
];
const blocksByDocument = new Map(
  documents.map((document) => [
    document,
    fences(readFileSync(join(root, document), "utf8"), document),
  ]),
);
const blocks = [...blocksByDocument.values()].flat();
const CODE = new Set(["ts", "js", "sh", "bash"]);

/** The README's ```sh project blocks, by kind: npm, bun, deno. */
const projects = Object.fromEntries(
  blocksByDocument.get("README.md").filter((block) =>
    block.words[0] === "project"
  ).map((block) => [block.words[1] ?? "npm", block]),
);

let work;
const consumers = {};
const paths = {};

function binDirectory(name, node) {
  const directory = join(work, `bin-${name}`);
  mkdirSync(directory);
  symlinkSync(node, join(directory, "node"));
  for (const tool of ["bun", "bunx", "deno"]) {
    symlinkSync(
      realpathSync(join(root, "node_modules/.bin", tool)),
      join(directory, tool),
    );
  }
  return `${directory}:${process.env.PATH}`;
}

/**
 * A folder as the quick start leaves the reader's: `peersec/` (the clone)
 * holds the packed tarball and the repository's sources.
 */
function readerFolder(name, tarball) {
  const folder = join(work, name);
  const clone = join(folder, "peersec");
  mkdirSync(clone, { recursive: true });
  copyFileSync(tarball, join(clone, "peersec-0.1.0.tgz"));
  for (const entry of readdirSync(root)) {
    if ([".git", "npm", "node_modules"].includes(entry)) continue;
    symlinkSync(join(root, entry), join(clone, entry));
  }
  return folder;
}

/**
 * Makes a consumer project by running a ```sh project block's lines, as
 * written (but `npm install koffi` at the pinned version, or dropped when
 * `koffi` is false), in a fresh reader's folder; returns the project's
 * directory (the block's `mkdir … && cd …`).
 */
function makeConsumer(name, tarball, block, { koffi = true, extra = [] } = {}) {
  const folder = readerFolder(name, tarball);
  const lines = block.body.split("\n").flatMap((line) => {
    if (!KOFFI_LINE.test(line)) return [line];
    if (!koffi) return [];
    return [
      line.replace(
        /^npm install koffi/,
        `npm install koffi@${devDependencies.koffi}`,
      ),
    ];
  });
  const directory = block.body.match(/^mkdir (\S+) && cd \1\b/m)?.[1];
  assert.ok(directory, `${block.where}: no "mkdir <dir> && cd <dir>" line`);
  const script = ["set -euo pipefail", ...lines, ...extra].join("\n");
  execFileSync("bash", ["-c", script], {
    cwd: folder,
    timeout: 600_000,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, PATH: paths["20"], NO_COLOR: "1" },
  });
  return join(folder, directory);
}

before(() => {
  work = mkdtempSync(join(tmpdir(), "peersec-readme-"));
  for (const { version, binary } of NODES) {
    paths[version] = binDirectory(`node${version}`, binary);
  }
  const packed = JSON.parse(execFileSync("npm", [
    "pack",
    join(root, "npm"),
    "--pack-destination",
    work,
    "--json",
  ], { cwd: work, encoding: "utf8", timeout: 120_000 }));
  const tarball = join(work, packed[0].filename);
  const hono = [
    `npm install --no-audit --no-fund hono@${devDependencies.hono}`,
  ];
  assert.ok(projects.npm, "README.md has no ```sh project block");
  consumers.withKoffi = makeConsumer("with-koffi", tarball, projects.npm, {
    extra: hono,
  });
  consumers.plain = makeConsumer("plain", tarball, projects.npm, {
    koffi: false,
    extra: hono,
  });
  if (projects.bun) consumers.bun = makeConsumer("bun", tarball, projects.bun);
  if (projects.deno) {
    consumers.deno = makeConsumer("deno", tarball, projects.deno);
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
 * The answer has the shape the text shows, every plain value as shown, and
 * `identity`'s values where the text shows the client's identity: its pid
 * (the client's process), the uid, gid, groups and label it inherited.
 */
function assertAnswer(actual, shown, identity, where = "answer") {
  if (shown !== null && typeof shown === "object" && !Array.isArray(shown)) {
    assert.deepEqual(
      Object.keys(actual ?? {}).sort(),
      Object.keys(shown).sort(),
      `${where}: the keys the text shows`,
    );
    for (const key of Object.keys(shown)) {
      const nested = shown[key] !== null && typeof shown[key] === "object" &&
        !Array.isArray(shown[key]);
      if (key in identity && !nested) {
        assert.deepEqual(actual[key], identity[key], `${where}.${key}`);
      } else {
        assertAnswer(actual[key], shown[key], identity, `${where}.${key}`);
      }
    }
  } else {
    assert.deepEqual(actual, shown, where);
  }
}

/** Asks the server with a client until it answers (≤ 20 s). */
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

/**
 * Where one server command runs: each Node for `node` (its npm project),
 * else Node 20's PATH in the npm project without koffi — and, for the
 * quick start, in the project made without npm for that runtime too.
 */
function placesFor(command, snippet) {
  if (/(^|\s)node\s/.test(command)) {
    // Node strips TypeScript types from 22.18 on; 20 cannot run a .ts file.
    return NODES.filter(({ version }) =>
      !snippet.file.endsWith(".ts") || version > 20
    ).map(({ version, consumer }) => ({
      name: `Node ${version}`,
      cwd: consumers[consumer],
      path: paths[version],
    }));
  }
  const places = [{
    name: "npm project",
    cwd: consumers.plain,
    path: paths["20"],
  }];
  if (snippet === quickStart) {
    for (const runtime of ["bun", "deno"]) {
      if (new RegExp(`^${runtime}\\s`).test(command) && consumers[runtime]) {
        places.push({
          name: `${runtime} project`,
          cwd: consumers[runtime],
          path: paths["20"],
        });
      }
    }
  }
  return places;
}

async function serveOnce(command, snippet, place) {
  const server = startServer(command, place);
  try {
    for (const [index, client] of snippet.clients.entries()) {
      const answer = await ask(server, client.command, place);
      const where = `${snippet.where} ${client.command}`;
      if (client.answer.json) {
        let body;
        try {
          body = JSON.parse(answer.stdout);
        } catch {
          assert.fail(
            `${where}: not JSON: ${answer.stdout}\nserver:\n${server.output()}`,
          );
        }
        assertAnswer(body, client.answer.value, {
          pid: answer.pid,
          ...inheritedIdentity(),
        }, `${where} (client ${index + 1})`);
      } else {
        assert.equal(
          answer.stdout.trimEnd(),
          client.answer.value,
          `${where}\nserver:\n${server.output()}`,
        );
      }
    }
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

for (const [document, documentBlocks] of blocksByDocument) {
  test(`${document}: every code snippet is run, type-checked, or says why not`, () => {
    const unmarked = documentBlocks.filter((block) =>
      CODE.has(block.language) &&
      !block.words.some((word) => HANDLED.has(word)) && !block.notRun
    );
    assert.deepEqual(
      unmarked.map(({ where }) => where),
      [],
      `snippets with neither "run", "check", "project", "serve", "ask" nor "${NOT_RUN} …" after them`,
    );
  });
}

test("the README has a quick start: projects made with npm, Bun and Deno", () => {
  assert.deepEqual(Object.keys(projects).sort(), ["bun", "deno", "npm"]);
  assert.ok(blocks.filter((block) => block.words.includes("run")).length >= 6);
});

const programs = [...blocksByDocument.values()].flatMap((documentBlocks) =>
  documentBlocks.flatMap((block, index) =>
    block.words.includes("run") && block.language !== "sh"
      ? [program(block, documentBlocks.slice(index + 1))]
      : []
  )
);
/** The README's first program: the quick start. */
const quickStart = programs.find((snippet) =>
  snippet.where.startsWith("README.md:")
);

for (const snippet of programs) {
  for (const command of snippet.servers) {
    for (const place of placesFor(command, snippet)) {
      test(
        `${snippet.where} ${snippet.file} (${place.name}): $ ${command}`,
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
      test(`${snippet.where} ${snippet.file} without --allow-ffi stops at start with ERR_FFI_PERMISSION`, async () => {
        const place = { cwd: consumers.plain, path: paths["20"] };
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
      test(`${snippet.where} ${snippet.file} on Node 20 without koffi stops at start with ERR_KOFFI_MISSING`, async () => {
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

test("the fragments type-check against the package", () => {
  const fragments = blocks.filter((block) => block.words.includes("check"));
  assert.ok(fragments.length >= 3);
  const prelude = 'import type { Socket } from "node:net";\n' +
    "declare const fd: number;\ndeclare const socket: Socket;\n";
  const files = fragments.map((block) => {
    const name = block.file.replace(/[^A-Za-z0-9]+/g, "_");
    const file = join(consumers.withKoffi, `fragment_${name}_${block.line}.ts`);
    writeFileSync(file, `${prelude}${block.body}\nexport {};\n`);
    return file;
  });
  assertTypeChecks(files, consumers.withKoffi);
});

for (
  const block of blocks.filter((block) =>
    block.language === "sh" && block.words[0] === "run"
  )
) {
  test(`${block.where}: the shell commands print what it shows`, async () => {
    for (const { command, out } of sessions(block.body)) {
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
