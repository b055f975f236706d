// serve: the peer-aware HTTP server, in whichever runtime runs the suite,
// with real clients in separate processes — curl and a Python client, run
// under other uids with setpriv where identity matters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { Hono } from "hono";
import { PeerSecError } from "../mod.ts";
import {
  type Peer,
  type PeerServer,
  serve,
  type ServeOptions,
} from "../serve.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import {
  fixture,
  isRoot,
  procStatus,
  runtimeCommand,
  startProcess,
  SYSTEM_PYTHON,
} from "./helpers.ts";
import { asUser, curl, python, raw, workspace } from "./serve_clients.ts";

const runtime = detectRuntime();
const me = procStatus(process.pid);

/** Starts a server and waits until it listens. */
async function started(
  options: ServeOptions,
  handler: Parameters<typeof serve>[1],
): Promise<PeerServer> {
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => listening = resolve);
  const server = serve({ ...options, onListen: () => listening() }, handler);
  await Promise.race([
    ready,
    server.finished.then(() => {
      throw new Error("the server ended before listening");
    }),
  ]);
  return server;
}

/** The pattern the Python client streams: byte i is i % 251. */
function patternHash(total: number): string {
  const block = Uint8Array.from({ length: 251 * 263 }, (_, i) => i % 251);
  const hash = createHash("sha256");
  for (let sent = 0; sent < total;) {
    const size = Math.min(65536, total - sent);
    const start = sent % 251;
    hash.update(block.subarray(start, start + size));
    sent += size;
  }
  return hash.digest("hex");
}

/** A streamed body of `total` pattern bytes, made only as it is read. */
function patternStream(total: number): ReadableStream<Uint8Array> {
  const block = Uint8Array.from({ length: 251 * 263 }, (_, i) => i % 251);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const size = Math.min(65536, total - sent);
      const start = sent % 251;
      controller.enqueue(block.slice(start, start + size));
      sent += size;
    },
  }, { highWaterMark: 0 });
}

const identityOf = (peer: Peer) => ({
  pid: peer.pid,
  uid: peer.uid,
  gid: peer.gid,
  groups: peer.groups,
  securityContext: peer.securityContext,
});

test(`${runtime} serve: curl gets its own identity; a peer under another uid is refused with 403 before the handler runs`, async () => {
  const { directory, path } = workspace();
  let handled = 0;
  const denied: Peer[] = [];
  const server = await started({
    path,
    mode: 0o666,
    allow: [{ uid: me.uid }],
    onDenied: (peer) => denied.push(peer),
  }, (_request, { peer }) => {
    handled++;
    return Response.json(identityOf(peer));
  });
  try {
    const allowed = await curl(["--unix-socket", path, "http://localhost/who"]);
    assert.equal(allowed.code, 0);
    const body = JSON.parse(allowed.stdout);
    assert.equal(body.pid, allowed.pid, "the peer is curl itself");
    assert.equal(body.uid, me.uid);
    assert.equal(handled, 1);
    if (isRoot()) {
      const refused = await curl(
        ["-w", "\n%{http_code}", "--unix-socket", path, "http://localhost/who"],
        asUser(1234),
      );
      assert.equal(refused.code, 0);
      assert.match(
        refused.stdout,
        /^Forbidden: this peer is not allowed\n\n403$/,
      );
      assert.equal(handled, 1, "the handler never ran for the refused peer");
      assert.equal(denied.length, 1);
      assert.equal(denied[0].uid, 1234);
      assert.equal(denied[0].pid, refused.pid);
    }
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: keep-alive — requests on one connection share one identity`, async () => {
  const { directory, client, path } = workspace();
  const connections = new Set<unknown>();
  const server = await started({
    path,
    mode: 0o666,
    allow: "everyone",
  }, (_request, info) => {
    connections.add(info);
    return Response.json(identityOf(info.peer));
  });
  try {
    const result = await python(client, path, {
      requests: [{ path: "/1" }, { path: "/2" }, { path: "/3" }],
      keepalive: true,
    }, asUser(2100, "7,8"));
    assert.equal(result.responses.length, 3);
    for (const response of result.responses) {
      assert.equal(response.status, 200);
      const peer = JSON.parse(response.body!);
      assert.equal(peer.pid, result.pid);
      assert.equal(peer.uid, result.uid);
      if (isRoot()) assert.deepEqual(peer.groups, [7, 8]);
    }
    assert.equal(connections.size, 1, "one connection, kept alive");
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: no cross-talk — 8 client processes with distinct uids, 200 requests each, concurrently`, async () => {
  const { directory, client, path } = workspace();
  const server = await started(
    { path, mode: 0o666, allow: "everyone" },
    async (_request, info) => {
      // An await between accept and answer, as real handlers have.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
      return Response.json(identityOf(info.peer));
    },
  );
  try {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        python(client, path, {
          requests: [{ path: `/client-${index}` }],
          repeat: 200,
          // Half keep their connection, half open one per request.
          keepalive: index % 2 === 0,
        }, asUser(3000 + index))),
    );
    for (const [index, result] of results.entries()) {
      if (isRoot()) assert.equal(result.uid, 3000 + index);
      assert.equal(result.responses.length, 200);
      for (const response of result.responses) {
        assert.equal(response.status, 200);
        const peer = JSON.parse(response.body!);
        assert.equal(
          peer.pid,
          result.pid,
          "each response names its own client",
        );
        assert.equal(peer.uid, result.uid);
      }
    }
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: 64 MiB up and 64 MiB down stream with backpressure; memory does not grow with the body`, async () => {
  const { directory, client, path } = workspace();
  const MiB = 1024 * 1024;
  const server = await started({ path }, async (request) => {
    const size = Number(new URL(request.url).searchParams.get("size"));
    if (request.method === "POST") {
      const hash = createHash("sha256");
      let length = 0;
      for await (const chunk of request.body!) {
        hash.update(chunk);
        length += chunk.byteLength;
      }
      return Response.json({ sha256: hash.digest("hex"), length });
    }
    return new Response(patternStream(size), {
      headers: { "content-type": "application/octet-stream" },
    });
  });
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const transfer = async (size: number) => {
    const upload = await python(client, path, {
      requests: [{ method: "POST", path: `/up?size=${size}`, upload: size }],
    });
    assert.deepEqual(JSON.parse(upload.responses[0].body!), {
      sha256: patternHash(size),
      length: size,
    });
    const download = await python(client, path, {
      requests: [{ path: `/down?size=${size}` }],
      hash: true,
    });
    assert.equal(download.responses[0].length, size);
    assert.equal(download.responses[0].sha256, patternHash(size));
    return (peak - before) / MiB;
  };
  try {
    // The runtime's buffers and heap settle at some size during the first
    // transfer (measured: up to ~75 MiB in Deno, less elsewhere); buffering
    // bodies instead of streaming them would grow with the body: 4× the
    // bytes must not take more memory than that plateau and a margin.
    const plateau = await transfer(64 * MiB);
    const larger = await transfer(256 * MiB);
    assert.ok(
      larger - plateau < 32,
      `RSS grew ${plateau.toFixed(1)} MiB over 64 MiB each way, ` +
        `${larger.toFixed(1)} MiB over 256 MiB: it grows with the body`,
    );
  } finally {
    clearInterval(sampler);
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: set-cookie twice, HEAD/204/304 without a body, a throwing handler is a 500 and the server goes on`, async () => {
  const { directory, client, path } = workspace();
  const errors: unknown[] = [];
  const server = await started({
    path,
    onError: (error) => {
      errors.push(error);
      return new Response("it broke\n", { status: 500 });
    },
  }, (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new Error("handler failure");
    if (url.pathname === "/204") return new Response(null, { status: 204 });
    if (url.pathname === "/304") {
      return new Response(null, { status: 304, headers: { etag: '"v1"' } });
    }
    const headers = new Headers({ "content-type": "text/plain" });
    headers.append("set-cookie", "a=1; Path=/");
    headers.append("set-cookie", "b=2; Path=/");
    return new Response("body text\n", { headers });
  });
  try {
    const result = await python(client, path, {
      requests: [
        { path: "/cookies" },
        { method: "HEAD", path: "/cookies" },
        { path: "/204" },
        { path: "/304" },
        { path: "/throw" },
        { path: "/cookies" },
      ],
      keepalive: true,
    });
    const [cookies, head, noContent, notModified, thrown, after] =
      result.responses;
    assert.equal(cookies.status, 200);
    assert.equal(cookies.body, "body text\n");
    assert.deepEqual(
      cookies.headers.filter(([name]) => name === "content-length"),
      [["content-length", "10"]],
      "a whole body goes out in one piece, with its length",
    );
    assert.deepEqual(
      cookies.headers.filter(([name]) => name === "set-cookie").map(([, v]) =>
        v
      ),
      ["a=1; Path=/", "b=2; Path=/"],
    );
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body, "");
    assert.equal(notModified.status, 304);
    assert.equal(notModified.body, "");
    assert.equal(thrown.status, 500);
    assert.equal(thrown.body, "it broke\n");
    assert.match(String(errors[0]), /handler failure/);
    assert.equal(after.status, 200, "the server keeps serving");
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: a streamed response's first chunk reaches the client before the next exists`, async () => {
  const { directory, path } = workspace();
  let release!: () => void;
  const second = new Promise<void>((resolve) => release = resolve);
  const server = await started({ path }, () =>
    new Response(
      new ReadableStream({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("first\n"));
          await second; // produced only once the client has the first
          controller.enqueue(new TextEncoder().encode("second\n"));
          controller.close();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    ));
  const client = startProcess("curl", [
    "-sS",
    "--no-buffer",
    "--unix-socket",
    path,
    "http://localhost/events",
  ], { capture: true });
  try {
    await client.racing((async () => {
      while (!client.stdout().includes("first")) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })());
    assert.equal(client.stdout(), "first\n");
    release();
    assert.equal((await client.exited).code, 0);
    assert.equal(client.stdout(), "first\nsecond\n");
  } finally {
    release();
    await client.stop();
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: a client that goes away aborts request.signal`, async () => {
  const { directory, client, path } = workspace();
  let aborted!: () => void;
  const sawAbort = new Promise<void>((resolve) => aborted = resolve);
  const server = await started({ path }, (request) => {
    request.signal.addEventListener("abort", () => aborted());
    // Answers only after a long while: the client is gone by then.
    return new Promise((resolve) =>
      setTimeout(() => resolve(new Response("late")), 20_000).unref?.()
    );
  });
  try {
    await python(client, path, {
      requests: [{ path: "/slow" }],
      hangup_after_send: true,
    });
    await Promise.race([
      sawAbort,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("no abort within 10 s")), 10_000)
      ),
    ]);
  } finally {
    server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: the request is a real Request; its signal, first read after the client went away, is already aborted; a status text and cookies survive one writeHead`, async () => {
  const { directory, client, rawClient, path } = workspace();
  let result!: (value: { isRequest: boolean; aborted: boolean }) => void;
  const seen = new Promise<{ isRequest: boolean; aborted: boolean }>((
    resolve,
  ) => result = resolve);
  const server = await started({ path }, (request) => {
    if (new URL(request.url).pathname === "/texts") {
      const headers = new Headers({ "x-kept": "yes" });
      headers.append("set-cookie", "a=1");
      headers.append("set-cookie", "b=2");
      return new Response("t", { status: 299, statusText: "Fine", headers });
    }
    // Looks at the signal only once the client is long gone.
    return new Promise((resolve) =>
      setTimeout(() => {
        result({
          isRequest: request instanceof Request,
          aborted: request.signal.aborted,
        });
        resolve(new Response("late"));
      }, 1000)
    );
  });
  try {
    await python(client, path, {
      requests: [{ path: "/slow" }],
      hangup_after_send: true,
    });
    assert.deepEqual(await seen, { isRequest: true, aborted: true });
    const texts = await raw(rawClient, path, {
      steps: [
        { send: "GET /texts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" },
        { read_until_close: true },
      ],
    });
    assert.match(texts.received[0], /^HTTP\/1\.1 299 Fine\r\n/);
    assert.deepEqual(
      texts.responses[0]?.[1].filter(([name]) =>
        name === "set-cookie" || name === "x-kept"
      ),
      [["x-kept", "yes"], ["set-cookie", "a=1"], ["set-cookie", "b=2"]],
    );
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: shutdown lets the request in flight finish, refuses new ones, removes its socket file; signal does the same`, async () => {
  const { directory, client, path } = workspace();
  let entered!: () => void;
  const inHandler = new Promise<void>((resolve) => entered = resolve);
  const server = await started({ path }, async () => {
    entered();
    await new Promise((resolve) => setTimeout(resolve, 300));
    return new Response("finished in flight");
  });
  const inFlight = python(client, path, { requests: [{ path: "/" }] });
  await inHandler;
  const done = server.shutdown();
  const result = await inFlight;
  assert.equal(result.responses[0].body, "finished in flight");
  await done;
  assert.ok(!existsSync(path), "the socket file is removed");
  await server.finished;

  const controller = new AbortController();
  const second = await started(
    { path, signal: controller.signal },
    () => new Response("ok"),
  );
  controller.abort();
  await second.finished;
  assert.ok(!existsSync(path));
  await assert.rejects(
    new Promise((resolve, reject) =>
      net.connect(path).on("connect", resolve).on("error", reject)
    ),
    /ENOENT|ECONNREFUSED/,
  );
  rmSync(directory, { recursive: true, force: true });
});

test(`${runtime} serve: mode is the socket's from the start; a stale socket is replaced; a live one and a non-socket are refused`, async () => {
  const { directory, path } = workspace();
  try {
    const first = await started({ path, mode: 0o640 }, () => new Response());
    assert.equal(lstatSync(path).mode & 0o777, 0o640);
    // Something listens there: refused, and the first server is untouched.
    const clash = serve({ path }, () => new Response());
    await assert.rejects(clash.finished, (error) => {
      assert.ok(error instanceof PeerSecError);
      assert.equal(error.code, "EADDRINUSE");
      return true;
    });
    assert.ok(existsSync(path));
    await first.shutdown();

    // A stale socket (bound, nothing listening) is replaced.
    const bound = startProcess(SYSTEM_PYTHON, [
      "-c",
      `import socket; socket.socket(socket.AF_UNIX).bind(${
        JSON.stringify(path)
      })`,
    ]);
    await bound.exited;
    assert.ok(lstatSync(path).isSocket());
    const replaced = await started({ path }, () => new Response("new"));
    const answer = await curl(["--unix-socket", path, "http://localhost/"]);
    assert.equal(answer.stdout, "new");
    await replaced.shutdown();

    // A file that is not a socket is never touched.
    const plain = join(directory, "notes.txt");
    writeFileSync(plain, "keep me");
    const refused = serve({ path: plain }, () => new Response());
    await assert.rejects(refused.finished, (error) => {
      assert.ok(error instanceof PeerSecError);
      assert.equal(error.code, "ERR_NOT_A_SOCKET");
      return true;
    });
    assert.equal(readFileSync(plain, "utf8"), "keep me");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: TCP — no credentials (null, never made up), the label null here; a credential rule denies`, async () => {
  const open = await started(
    { port: 0, allow: "everyone" },
    (_request, info) =>
      Response.json({ peer: info.peer, remote: info.remoteAddr }),
  );
  const guarded = await started(
    { port: 0, allow: [{ uid: me.uid }] },
    () => new Response("should not run"),
  );
  try {
    const port = (open.addr as { port: number }).port;
    const { stdout } = await curl([`http://127.0.0.1:${port}/`]);
    const body = JSON.parse(stdout);
    assert.deepEqual(body.peer, {
      pid: null,
      uid: null,
      gid: null,
      groups: null,
      securityContext: null,
    });
    assert.equal(body.remote.transport, "tcp");
    assert.equal(body.remote.hostname, "127.0.0.1");
    const guardedPort = (guarded.addr as { port: number }).port;
    const refused = await curl([
      "-w",
      "%{http_code}",
      "-o",
      "/dev/null",
      `http://127.0.0.1:${guardedPort}/`,
    ]);
    assert.equal(refused.stdout, "403");
  } finally {
    await open.shutdown();
    await guarded.shutdown();
  }
});

test(`${runtime} serve: { fd } from listenFds() under a socket-activation launcher`, async () => {
  const { directory, path } = workspace();
  const [command, ...args] = [
    SYSTEM_PYTHON,
    fixture("activate.py"),
    path,
    ...runtimeCommand(fixture("serve_activated.mjs"), []),
  ];
  const server = startProcess(command, args, { capture: true });
  try {
    await server.racing((async () => {
      while (!server.stdout().includes("listening")) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })());
    const answer = await curl(["--unix-socket", path, "http://localhost/"]);
    const body = JSON.parse(answer.stdout);
    assert.equal(body.pid, answer.pid);
    assert.equal(body.fdName, "peersec-demo");
  } finally {
    await server.stop();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: a Hono app, its middleware reading c.env.peer`, async () => {
  const { directory, path } = workspace();
  const app = new Hono<{ Bindings: { peer: Peer } }>();
  app.use("*", async (c, next) => {
    if (c.env.peer.uid !== me.uid) return c.text("not you", 403);
    c.header("x-peer-pid", String(c.env.peer.pid));
    await next();
  });
  app.get("/hello/:name", (c) => c.json({ hello: c.req.param("name") }));
  const server = await started({ path }, app.fetch);
  try {
    const answer = await curl([
      "-i",
      "--unix-socket",
      path,
      "http://localhost/hello/peer",
    ]);
    assert.match(answer.stdout, /^HTTP\/1\.1 200/);
    assert.match(
      answer.stdout,
      new RegExp(`x-peer-pid: ${answer.pid}\\r\\n`, "i"),
    );
    assert.match(answer.stdout, /\{"hello":"peer"\}$/);
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve: an onListen that throws does not stop a server that listens`, async () => {
  const { directory, path } = workspace();
  const server = serve({
    path,
    onListen() {
      throw new Error("a failing onListen");
    },
  }, () => new Response("still serving"));
  try {
    let answer;
    for (let attempt = 0; attempt < 100; attempt++) {
      answer = await curl(["--unix-socket", path, "http://localhost/"]);
      if (answer.code === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.equal(answer?.stdout, "still serving");
  } finally {
    await server.shutdown(); // resolves: finished did not reject
    rmSync(directory, { recursive: true, force: true });
  }
});

test("serve refuses malformed options and rules at once", () => {
  const handler = () => new Response();
  for (
    const options of [
      {},
      { path: "/tmp/a", port: 1 },
      { path: "" },
      { port: 70000 },
      { fd: -1 },
      { path: "/tmp/a", mode: 0o1777 },
      { port: 1, mode: 0o600 },
      { path: "/tmp/a", allow: [{}] },
      { path: "/tmp/a", allow: [{ uuid: 0 }] },
      { path: "/tmp/a", allow: [{ uid: "0" }] },
      { path: "/tmp/a", allow: [{ user: "no-such-user-here" }] },
      { path: "/tmp/a", allow: "root" },
    ]
  ) {
    assert.throws(
      () => serve(options as ServeOptions, handler),
      (error) => error instanceof TypeError || error instanceof RangeError,
      JSON.stringify(options),
    );
  }
  assert.throws(() => serve({ path: "/tmp/a" }, "x" as never), TypeError);
});
