// serve under attack: what a peer sends or does must not crash, exhaust or
// fool the server. Real clients in separate processes (a raw Python client
// that sends exactly the bytes it is told, curl), under other uids with
// setpriv, and a server process of its own at a lowered fd limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import http from "node:http";
import { gzipSync } from "node:zlib";
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
  runtimeCommand,
  startProcess,
  SYSTEM_PYTHON,
} from "./helpers.ts";
import {
  asUser,
  curl,
  raw,
  type RawResult,
  workspace,
} from "./serve_clients.ts";

const runtime = detectRuntime();

async function started(
  options: ServeOptions,
  handler: Parameters<typeof serve>[1],
): Promise<PeerServer> {
  const server = serve(options, handler);
  await server.ready;
  return server;
}

const GET = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

test(`${runtime} serve hardening: a header byte the Web allows but HTTP/1.1 refuses is onError's response or a 500, and the server keeps serving`, async () => {
  const { directory, path } = workspace();
  const errors: unknown[] = [];
  const handler = (request: Request) => {
    const name = new URL(request.url).searchParams.get("name") ?? "x";
    return new Response("file", {
      headers: { "content-disposition": `attachment; filename="${name}"` },
    });
  };
  const plainServer = await started({ path }, handler);
  const withOnError = await started({
    path: `${path}.2`,
    onError: (error) => {
      errors.push(error);
      return new Response("refused header\n", { status: 502 });
    },
  }, handler);
  try {
    for (const byte of ["%01", "%7F", "%1B"]) {
      const bad = await curl([
        "-w",
        "%{http_code}",
        "--unix-socket",
        path,
        `http://localhost/?name=a${byte}b`,
      ]);
      assert.equal(bad.code, 0);
      assert.match(bad.stdout, /500$/);
    }
    const good = await curl([
      "-w",
      "%{http_code}",
      "--unix-socket",
      path,
      "http://localhost/?name=ok",
    ]);
    assert.equal(good.stdout, "file200", "the server still serves");
    const handled = await curl([
      "-w",
      "%{http_code}",
      "--unix-socket",
      `${path}.2`,
      "http://localhost/?name=a%01b",
    ]);
    assert.equal(handled.stdout, "refused header\n502");
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, "ERR_INVALID_CHAR");
  } finally {
    await plainServer.shutdown();
    await withOnError.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve hardening: a fetch() proxy's decoded body is framed by its bytes, so a pipelining client reads each response whole`, async () => {
  const { directory, rawClient: client, path } = workspace();
  const text = "peersec ".repeat(4096);
  const compressed = gzipSync(text);
  // The upstream: gzip with the compressed length, as any web server sends.
  const upstream = http.createServer((_request, response) => {
    response.writeHead(200, {
      "content-type": "text/plain",
      "content-encoding": "gzip",
      "content-length": compressed.byteLength,
    });
    response.end(compressed);
  });
  await new Promise<void>((resolve) =>
    upstream.listen(0, "127.0.0.1", resolve)
  );
  const { port } = upstream.address() as { port: number };
  const server = await started(
    { path },
    () => fetch(`http://127.0.0.1:${port}/`),
  );
  try {
    const result = await raw(client, path, {
      steps: [
        {
          send: GET +
            "GET /second HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        },
        { read_until_close: true },
      ],
    });
    assert.equal(result.responses.length, 2, JSON.stringify(result.responses));
    for (const response of result.responses) {
      assert.ok(response !== null);
      assert.equal(response[0], 200);
      assert.equal(response[2], text, "each body whole, nothing more");
    }
  } finally {
    await server.shutdown();
    await new Promise((resolve) => upstream.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve hardening: slow and silent peers are closed at their deadlines (headers, keep-alive, body, unread response)`, async () => {
  const { directory, rawClient: client, path } = workspace();
  const limits = {
    headersTimeout: 600,
    keepAliveTimeout: 400,
    requestTimeout: 800,
  };
  const server = await started({ path, ...limits }, async (request) => {
    if (request.method === "POST") {
      return new Response(await request.text());
    }
    if (new URL(request.url).pathname === "/big") {
      // 64 MiB the peer never reads.
      const chunk = new Uint8Array(1 << 20);
      let sent = 0;
      return new Response(
        new ReadableStream({
          pull(controller) {
            if (sent++ === 64) controller.close();
            else controller.enqueue(chunk);
          },
        }),
      );
    }
    return new Response("ok");
  });
  // Far below node:http's own defaults (60 s and more), far above the
  // deadlines: the server's sweep runs a few times per shortest deadline.
  const slack = 1500;
  try {
    const [silent, halfHeader, idle, slowBody, unread] = await Promise.all([
      raw(client, path, { steps: [{ read_until_close: true }] }),
      raw(client, path, {
        steps: [
          { send: "GET / HTTP/1.1\r\nHost: localhost\r\n" },
          { read_until_close: true },
        ],
      }),
      raw(client, path, {
        steps: [{ send: GET }, { read_response: true }, {
          read_until_close: true,
        }],
      }),
      raw(client, path, {
        steps: [
          {
            send:
              "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789",
          },
          { read_until_close: true },
        ],
      }),
      raw(client, path, {
        steps: [
          { send: "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" },
          { sleep: 5000 },
          { read_until_close: true },
        ],
        hold_ms: 1,
      }),
    ]);
    const within = (result: RawResult, least: number, most: number) => {
      const closed = result.closed_after_ms[0];
      assert.ok(
        closed !== null && closed >= least && closed <= most,
        `closed after ${closed} ms, not within ${least}-${most}`,
      );
    };
    within(silent, limits.headersTimeout - 50, limits.headersTimeout + slack);
    within(
      halfHeader,
      limits.headersTimeout - 50,
      limits.headersTimeout + slack,
    );
    assert.match(halfHeader.received[0], /^HTTP\/1\.1 408 /);
    assert.equal(idle.responses[0]?.[2], "ok");
    within(idle, limits.keepAliveTimeout - 50, limits.keepAliveTimeout + slack);
    within(slowBody, limits.requestTimeout - 50, limits.requestTimeout + slack);
    // The unread response: closed before the client starts reading (5 s).
    assert.ok(
      unread.closed_after_ms[0] !== null,
      "a peer that never reads its response is closed",
    );
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(
  `${runtime} serve hardening: a refused peer gets one 403 per connection, onDenied once per connection, and its connection ends at deniedTimeout`,
  {
    skip: !isRoot() && "needs root for setpriv",
  },
  async () => {
    const { directory, rawClient: client, path } = workspace();
    const denied: Peer[] = [];
    let handled = 0;
    const server = await started({
      path,
      mode: 0o666,
      allow: [{ uid: 0 }],
      deniedTimeout: 500,
      onDenied: (peer) => denied.push(peer),
    }, () => {
      handled++;
      return new Response("ok");
    });
    try {
      const pipelined = await raw(client, path, {
        steps: [{ send: GET.repeat(2000) }, { read_until_close: true }],
      }, asUser(65534));
      assert.equal(pipelined.responses.length, 1, "one 403, then closed");
      assert.equal(pipelined.responses[0]?.[0], 403);
      // Requests that could not become a Web Request are refused alike.
      const trace = await raw(client, path, {
        steps: [
          { send: "TRACE / HTTP/1.1\r\nHost: bad host\r\n\r\n" },
          { read_until_close: true },
        ],
      }, asUser(65534));
      assert.equal(trace.responses[0]?.[0], 403);
      const silent = await raw(client, path, {
        steps: [{ read_until_close: true }],
      }, asUser(65534));
      const closed = silent.closed_after_ms[0];
      assert.ok(closed !== null && closed >= 450 && closed < 2500, `${closed}`);
      assert.equal(denied.length, 3, "once per connection");
      assert.ok(denied.every((peer) => peer.uid === 65534));
      assert.equal(handled, 0);
    } finally {
      await server.shutdown();
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

/**
 * Starts the fixture server in its own process, at `nofile` fds; its stdout
 * and stderr (the log) are captured together.
 */
async function limitedServer(nofile: number, options: object) {
  const command = [
    "prlimit",
    `--nofile=${nofile}:${nofile}`,
    "--",
    ...runtimeCommand(fixture("serve_limits.mjs"), [JSON.stringify(options)]),
  ];
  const child = startProcess("bash", [
    "-c",
    'exec "$@" 2>&1',
    "bash",
    ...command,
  ], { capture: true, timeoutMs: 120_000 });
  await child.racing(
    new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (child.stdout().includes("listening")) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    }),
  );
  return child;
}

test(
  `${runtime} serve hardening: at a lowered fd limit, a refused peer holding hundreds of connections and an allowed one flooding past the limits leave service for others, in a few log lines`,
  {
    skip: !isRoot() && "needs root for setpriv",
  },
  async () => {
    const { directory, rawClient: client, path } = workspace();
    // Deno 2.9's node:net stops accepting for good once an accept meets the
    // fd limit (a plain node:http server too, reproduced here): in Deno the
    // flood meets maxConnections instead, with fds to spare for the backlog.
    const server = await limitedServer(runtime === "deno" ? 1024 : 96, {
      path,
      mode: 0o666,
      allow: [{ uid: 0 }, { uid: 4321 }],
      maxConnections: 100,
      maxConnectionsPerUid: 1000,
    });
    try {
      // A refused peer opens 300 connections and holds them.
      const holding = raw(client, path, {
        connections: 300,
        steps: [{ sleep: 1500 }],
        hold_ms: 1,
      }, asUser(65534));
      await new Promise((resolve) => setTimeout(resolve, 700));
      const served = await curl(["--unix-socket", path, "http://localhost/"]);
      assert.equal(served.stdout, '{"uid":0}', "an allowed peer is served");
      await holding;
      // An allowed peer floods past the limits: in Node and Bun past the fd
      // limit (accepts fail with EMFILE, or peers cannot be read), everywhere
      // past maxConnections; the server stays up.
      const flood = await raw(client, path, {
        connections: 200,
        steps: [{ sleep: 500 }],
        hold_ms: 1,
      }, asUser(4321));
      assert.equal(flood.closed_after_ms.length, 200);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = await curl(["--unix-socket", path, "http://localhost/"]);
      assert.equal(after.stdout, '{"uid":0}', "served after the flood");
    } finally {
      startProcess("kill", ["-TERM", String(server.pid)]);
      const { code } = await server.exited;
      rmSync(directory, { recursive: true, force: true });
      assert.equal(code, 0, "the server was alive until told to stop");
    }
    const lines = server.stdout().split("\n").filter((line) =>
      line.startsWith("peersec serve:")
    );
    assert.ok(lines.length > 0, "the refusals are logged");
    assert.ok(
      lines.length <= 12,
      `${lines.length} log lines:\n${lines.join("\n")}`,
    );
    assert.ok(
      server.stdout().split("\n").every((line) => !/^\s+at /.test(line)),
      "one line each, no stack",
    );
  },
);

test(`${runtime} serve hardening: shutdown is not held open by a half-sent request or a hung handler`, async () => {
  const { directory, rawClient: client, path } = workspace();
  const server = await started(
    { path, shutdownTimeout: 500 },
    () => new Promise<Response>(() => {}),
  );
  const clients = Promise.all([
    raw(client, path, {
      steps: [{ send: "GET / HTTP/1.1\r\nHost: x\r\n" }, {
        read_until_close: true,
      }],
    }),
    raw(client, path, { steps: [{ send: GET }, { read_until_close: true }] }),
  ]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const start = performance.now();
  await server.shutdown();
  const took = performance.now() - start;
  assert.ok(took < 2500, `shutdown took ${took} ms`);
  const results = await clients;
  assert.ok(results.every((result) => result.closed_after_ms[0] !== null));
  rmSync(directory, { recursive: true, force: true });
});

test(`${runtime} serve hardening: a request target //admin/secret reaches the handler as that path`, async () => {
  const { directory, path } = workspace();
  const server = await started(
    { path },
    (request) => new Response(new URL(request.url).pathname),
  );
  try {
    const result = await curl([
      "--path-as-is",
      "--unix-socket",
      path,
      "http://localhost//admin/secret",
    ]);
    assert.equal(result.stdout, "//admin/secret");
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test("serve refuses an unknown option (a misspelt allow must not serve everyone)", () => {
  const handler = () => new Response("");
  for (
    const options of [
      { path: "/tmp/x.sock", alow: [{ uid: 0 }] },
      { path: "/tmp/x.sock", allowed: [{ uid: 0 }] },
      { port: 0, timeout: 5 },
    ]
  ) {
    assert.throws(
      () => serve(options as ServeOptions, handler),
      (error: Error) =>
        error instanceof TypeError && /unknown option/.test(error.message),
    );
  }
  assert.throws(
    () => serve({ path: "/tmp/x.sock", headersTimeout: 0 }, handler),
    RangeError,
  );
  assert.throws(
    () => serve({ path: "/tmp/x.sock", maxConnections: 1.5 }, handler),
    RangeError,
  );
  assert.throws(
    () => serve({ path: "/tmp/x.sock", requestTimeout: "5" as never }, handler),
    TypeError,
  );
});

test(
  `${runtime} serve hardening: without allow only this process's uid is served; "everyone" serves any peer`,
  {
    skip: !isRoot() && "needs root for setpriv",
  },
  async () => {
    const { directory, path } = workspace();
    const closed = await started(
      { path, mode: 0o666, allow: undefined },
      () => new Response("ok"),
    );
    const open = await started(
      { path: `${path}.open`, mode: 0o666, allow: "everyone" },
      () => new Response("ok"),
    );
    try {
      const args = (socket: string) => [
        "-w",
        " %{http_code}",
        "--unix-socket",
        socket,
        "http://localhost/",
      ];
      assert.equal((await curl(args(path))).stdout, "ok 200");
      assert.match((await curl(args(path), asUser(65534))).stdout, / 403$/);
      assert.equal(
        (await curl(args(`${path}.open`), asUser(65534))).stdout,
        "ok 200",
      );
    } finally {
      await closed.shutdown();
      await open.shutdown();
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(`${runtime} serve hardening: with a mode, a directory another user may change is refused before a stale socket there is removed`, async () => {
  const { directory } = workspace();
  const unsafe = join(directory, "shared");
  mkdirSync(unsafe);
  chmodSync(unsafe, 0o777); // writable by everyone, not sticky
  const path = join(unsafe, "stale.sock");
  // A stale socket: bound, then its server closed without removing it.
  const python = startProcess(SYSTEM_PYTHON, [
    "-c",
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
    path,
  ]);
  await python.exited;
  assert.ok(lstatSync(path).isSocket());
  try {
    const server = serve({ path, mode: 0o660 }, () => new Response(""));
    await assert.rejects(
      server.ready,
      (error: Error & { code?: string }) =>
        error.code === "ERR_UNSAFE_DIRECTORY",
    );
    assert.ok(lstatSync(path).isSocket(), "the stale socket is untouched");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
