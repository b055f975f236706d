// serveNode: real Express 5, Fastify 5 and Koa apps and plain node:http code
// behind peersec, in whichever runtime runs the suite; curl, the Python
// client and a WebSocket client as separate processes, other uids by setpriv.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import type http from "node:http";
import { join } from "node:path";
import express from "express";
import Fastify from "fastify";
import Koa from "koa";
import { WebSocketServer } from "ws";
import {
  type NodeRequestListener,
  peerOf,
  type PeerServer,
  serveNode,
} from "../serve.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import { isRoot, procStatus, startProcess, SYSTEM_PYTHON } from "./helpers.ts";
import { asUser, curl, python, workspace } from "./serve_clients.ts";

const runtime = detectRuntime();
const me = procStatus(process.pid);

/** Each framework's app, answering GET /who with the peer, counting calls. */
async function apps(): Promise<
  { name: string; listener: NodeRequestListener; calls: () => number }[]
> {
  let expressCalls = 0;
  const expressApp = express();
  expressApp.get("/who", (req, res) => {
    expressCalls++;
    res.json(peerOf(req));
  });

  let fastifyCalls = 0;
  const fastify = Fastify();
  fastify.get("/who", (request) => {
    fastifyCalls++;
    return peerOf(request.raw);
  });
  await fastify.ready();

  let koaCalls = 0;
  const koa = new Koa();
  koa.use((context) => {
    if (context.path !== "/who") return;
    koaCalls++;
    context.body = peerOf(context.req);
  });

  let plainCalls = 0;
  const plain: NodeRequestListener = (req, res) => {
    plainCalls++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(peerOf(req)));
  };
  return [
    { name: "Express", listener: expressApp, calls: () => expressCalls },
    {
      name: "Fastify",
      listener: (req, res) => fastify.routing(req, res),
      calls: () => fastifyCalls,
    },
    { name: "Koa", listener: koa.callback(), calls: () => koaCalls },
    { name: "node:http", listener: plain, calls: () => plainCalls },
  ];
}

test(`${runtime} serveNode: Express, Fastify, Koa and node:http code see their own peer; another uid gets 403 before any route; keep-alive keeps one identity`, async () => {
  for (const { name, listener, calls } of await apps()) {
    const { directory, client, path } = workspace();
    const server = serveNode({
      path,
      mode: 0o666,
      allow: [{ uid: me.uid }, { uid: 2200 }],
    }, listener);
    await server.ready;
    try {
      const own = await curl(["--unix-socket", path, "http://localhost/who"]);
      assert.equal(own.code, 0, name);
      const peer = JSON.parse(own.stdout);
      assert.equal(peer.pid, own.pid, `${name}: the peer is curl itself`);
      assert.equal(peer.uid, me.uid);
      assert.equal(calls(), 1);
      if (isRoot()) {
        const refused = await curl([
          "-w",
          " %{http_code}",
          "--unix-socket",
          path,
          "http://localhost/who",
        ], asUser(65534));
        assert.equal(
          refused.stdout,
          "Forbidden: this peer is not allowed\n 403",
          name,
        );
        assert.equal(calls(), 1, `${name}: no route ran for the refused peer`);
      }
      const kept = await python(client, path, {
        requests: [{ path: "/who" }, { path: "/who" }, { path: "/who" }],
        keepalive: true,
      }, asUser(2200));
      for (const response of kept.responses) {
        assert.equal(response.status, 200, name);
        const body = JSON.parse(response.body!);
        assert.equal(body.pid, kept.pid);
        assert.equal(body.uid, kept.uid);
      }
    } finally {
      await server.shutdown();
      rmSync(directory, { recursive: true, force: true });
    }
  }
});

test(`${runtime} serveNode: no cross-talk — 8 client processes with distinct uids through Express, concurrently`, async () => {
  const { directory, client, path } = workspace();
  const app = express();
  app.get("/who", async (req, res) => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
    res.json(peerOf(req));
  });
  const server: PeerServer = serveNode(
    { path, mode: 0o666, allow: "everyone" },
    app,
  );
  await server.ready;
  try {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        python(client, path, {
          requests: [{ path: "/who" }],
          repeat: 100,
          keepalive: index % 2 === 0,
        }, asUser(3100 + index))),
    );
    for (const [index, result] of results.entries()) {
      if (isRoot()) assert.equal(result.uid, 3100 + index);
      assert.equal(result.responses.length, 100);
      for (const response of result.responses) {
        const peer = JSON.parse(response.body!);
        assert.equal(peer.pid, result.pid, "each answer names its own client");
        assert.equal(peer.uid, result.uid);
      }
    }
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

/** A WebSocket client in Python (no library): the handshake, one text frame. */
const WEBSOCKET_CLIENT = `
import base64, json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(20)
sock.connect(sys.argv[1])
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall(("GET /ws HTTP/1.1\\r\\nHost: localhost\\r\\nUpgrade: websocket\\r\\n"
  "Connection: Upgrade\\r\\nSec-WebSocket-Key: " + key +
  "\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
data = b""
while b"\\r\\n\\r\\n" not in data:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
head, _, rest = data.partition(b"\\r\\n\\r\\n")
status = int(head.split(b" ")[1]) if head else 0
message = None
if status == 101:
    while len(rest) < 2:
        rest += sock.recv(4096)
    length = rest[1] & 0x7f
    offset = 2
    if length == 126:
        while len(rest) < 4:
            rest += sock.recv(4096)
        length = int.from_bytes(rest[2:4], "big")
        offset = 4
    while len(rest) < offset + length:
        rest += sock.recv(4096)
    message = rest[offset:offset + length].decode()
print(json.dumps({"pid": os.getpid(), "status": status, "message": message}))
`;

test(`${runtime} serveNode: a WebSocket upgrade reaches onUpgrade after the policy, with peerOf working there`, async () => {
  const { directory, path } = workspace();
  const script = join(directory, "websocket_client.py");
  writeFileSync(script, WEBSOCKET_CLIENT, { mode: 0o644 });
  const sockets = new WebSocketServer({ noServer: true });
  let upgrades = 0;
  const server = serveNode({
    path,
    mode: 0o666,
    allow: [{ uid: me.uid }],
    onUpgrade: (request, socket, head) => {
      upgrades++;
      const peer = peerOf(request);
      sockets.handleUpgrade(
        request as http.IncomingMessage,
        socket,
        Buffer.from(head),
        (websocket) => {
          websocket.send(JSON.stringify(peer));
          websocket.close();
        },
      );
    },
  }, (_req, res) => res.end("plain"));
  await server.ready;
  const run = async (prefix: string[]) => {
    const command = [...prefix, SYSTEM_PYTHON, script, path];
    const child = startProcess(command[0], command.slice(1), { capture: true });
    const { code } = await child.exited;
    assert.equal(code, 0);
    return JSON.parse(child.stdout());
  };
  try {
    const own = await run([]);
    assert.equal(own.status, 101);
    assert.equal(JSON.parse(own.message).pid, own.pid);
    if (isRoot()) {
      const refused = await run(asUser(65534));
      assert.equal(refused.status, 403);
      assert.equal(upgrades, 1, "onUpgrade never ran for the refused peer");
    }
  } finally {
    sockets.close();
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test("serveNode and peerOf refuse what they cannot serve", () => {
  const listener: NodeRequestListener = (_req, res) => res.end();
  assert.throws(
    () =>
      serveNode({ path: "/tmp/x.sock", onError: () => {} } as never, listener),
    (error: Error) =>
      error instanceof TypeError &&
      /unknown option "onError"/.test(error.message),
  );
  assert.throws(
    () => serveNode({ path: "/tmp/x.sock" }, "app" as never),
    TypeError,
  );
  assert.throws(() => peerOf({ socket: {} } as never), TypeError);
  assert.throws(() => peerOf(null as never), TypeError);
});
