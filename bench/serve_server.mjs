// One server for `npm run bench:serve`, in whichever runtime runs this file:
//   <runtime> bench/serve_server.mjs <kind> <socket path>
// It listens on the UNIX socket path, prints "listening" once it accepts, and
// answers every GET with a tiny text body. The peersec kinds (and the
// identity read by hand) answer "ok <peer pid>", proving that they read the
// peer; the others answer "ok". Every policy-free peersec server says
// allow: "everyone". peersec is imported from the TypeScript sources in every
// runtime (Node 24+ strips types natively), or from the npm build with
// PEERSEC_BENCH_BUILD=npm.
//
// kinds (see KINDS in bench/serve.mjs for the labels):
//   http              plain node:http, no peersec: the floor (ratio 1.00)
//   http-front        a node:net server handing sockets to node:http with
//                     emit("connection"), no peersec (how peersec reaches
//                     node:http in Bun, whose node:http sockets carry no fd)
//   http-identity     node:http with socketFd + getPeerInfo read by hand at
//                     accept (in Bun through the node:net front)
//   express, fastify, koa, hono-node
//                     the framework on its own node:http server, no peersec
//   express-front, fastify-front, koa-front
//                     the same app behind the node:net front, no peersec
//   serveNode-http, serveNode-express, serveNode-fastify, serveNode-koa
//                     peersec's serveNode with that listener
//   web-floor         node:http (in Bun behind the front) turning each request
//                     into a real Web Request, calling a handler that returns
//                     a Response, reading its body through a reader and
//                     writing it: the least any fetch-style server on node:http
//                     does that hands out real Web objects, no peersec
//   serve             peersec's serve (Web Request/Response)
//   serve-hono        serve(options, app.fetch) with a Hono app
//   native            Deno.serve or Bun.serve (no fd: no identity possible)
// web-objects (no path) prints the µs a Request + Response pair costs here.
import http from "node:http";
import net from "node:net";
import { rmSync } from "node:fs";

const [kind, path] = typeof Deno === "object"
  ? Deno.args
  : process.argv.slice(2);

if (kind === "web-objects") {
  // What any fetch-style server on node:http pays per request before doing
  // anything: the Request it hands out (with an abort signal) and the
  // Response the handler makes. Prints µs per pair.
  const pair = () => {
    new Request("http://localhost/", {
      method: "GET",
      headers: new Headers([["host", "localhost"]]),
      signal: new AbortController().signal,
    });
    return new Response("ok\n");
  };
  for (let index = 0; index < 5000; index++) pair();
  const count = 50_000;
  const start = performance.now();
  for (let index = 0; index < count; index++) pair();
  console.log(((performance.now() - start) * 1000 / count).toFixed(1));
  process.exit(0);
}

// peersec itself: the TypeScript sources (Node 24+ strips the types itself),
// or with PEERSEC_BENCH_BUILD=npm the npm build, as the package's exports
// resolve "peersec" (npm/esm in Node, the sources in Deno and Bun).
const npmBuild = process.env.PEERSEC_BENCH_BUILD === "npm";
const MOD = npmBuild ? "peersec" : "../mod.ts";
const SERVE = npmBuild ? "peersec/serve" : "../serve.ts";

rmSync(path, { force: true });
const ready = () => console.log("listening");
const BODY = "ok\n";
const isBun = typeof Bun === "object";

/** Express 5 app; `peerPid(req)` is null without peersec. */
async function expressApp(peerPid) {
  const { default: express } = await import("express");
  const app = express();
  app.get("/", (req, res) => {
    const pid = peerPid(req);
    res.send(pid === null ? BODY : `ok ${pid}\n`);
  });
  return app;
}

/** Fastify 5, ready, and its node:http-style routing function. */
async function fastifyApp(peerPid) {
  const { default: Fastify } = await import("fastify");
  const fastify = Fastify();
  fastify.get("/", (request, reply) => {
    const pid = peerPid(request.raw);
    reply.send(pid === null ? BODY : `ok ${pid}\n`);
  });
  return fastify;
}

/** Koa 3 app's node:http request listener. */
async function koaListener(peerPid) {
  const { default: Koa } = await import("koa");
  const app = new Koa();
  app.silent = true; // no stack trace for each EPIPE when a run ends
  app.use((ctx) => {
    const pid = peerPid(ctx.req);
    ctx.body = pid === null ? BODY : `ok ${pid}\n`;
  });
  return app.callback();
}

const noPeer = () => null;

/** Serves a node:http server's sockets through a node:net front. */
function behindFront(httpServer, onSocket = () => {}) {
  net.createServer((socket) => {
    onSocket(socket);
    httpServer.emit("connection", socket);
  }).listen(path, ready);
}

/** The listener of a framework kind (express, fastify, koa), no peersec. */
async function frameworkListener(name, peerPid) {
  if (name === "express") return await expressApp(peerPid);
  if (name === "koa") return await koaListener(peerPid);
  const fastify = await fastifyApp(peerPid);
  await fastify.ready();
  return (req, res) => fastify.routing(req, res);
}

if (kind === "http") {
  http.createServer((_req, res) => res.end(BODY)).listen(path, ready);
} else if (kind === "http-front") {
  behindFront(http.createServer((_req, res) => res.end(BODY)));
} else if (kind === "http-identity") {
  const { getPeerInfo, socketFd } = await import(MOD);
  // The identity, read synchronously at accept, kept by socket.
  const peers = new WeakMap();
  const read = (socket) => peers.set(socket, getPeerInfo(socketFd(socket)));
  const server = http.createServer((req, res) =>
    res.end(`ok ${peers.get(req.socket).credentials.pid}\n`)
  );
  if (isBun) behindFront(server, read);
  else {
    server.prependListener("connection", read);
    server.listen(path, ready);
  }
} else if (kind === "fastify") {
  const fastify = await fastifyApp(noPeer);
  await fastify.listen({ path });
  ready();
} else if (["express", "koa"].includes(kind)) {
  http.createServer(await frameworkListener(kind, noPeer)).listen(path, ready);
} else if (["express-front", "fastify-front", "koa-front"].includes(kind)) {
  const listener = await frameworkListener(kind.split("-")[0], noPeer);
  behindFront(http.createServer(listener));
} else if (kind === "hono-node") {
  // @hono/node-server as users run it: its default replaces the global
  // Request/Response with its own lighter ones.
  const { Hono } = await import("hono");
  const { createAdaptorServer } = await import("@hono/node-server");
  const app = new Hono();
  app.get("/", (c) => c.text(BODY));
  createAdaptorServer({ fetch: app.fetch }).listen(path, ready);
} else if (kind.startsWith("serveNode-")) {
  const { peerOf, serveNode } = await import(SERVE);
  const pidOf = (req) => peerOf(req).pid;
  const name = kind.slice("serveNode-".length);
  const listener = name === "http"
    ? (req, res) => res.end(`ok ${pidOf(req)}\n`)
    : await frameworkListener(name, pidOf);
  serveNode({ path, allow: "everyone", onListen: ready }, listener);
} else if (kind === "web-floor") {
  const handler = () => new Response(BODY);
  const server = http.createServer(async (req, res) => {
    const raw = req.rawHeaders;
    const headers = [];
    for (let index = 0; index < raw.length; index += 2) {
      headers.push([raw[index], raw[index + 1]]);
    }
    const request = new Request(`http://localhost${req.url}`, {
      method: req.method,
      headers,
    });
    const response = await handler(request);
    const reader = response.body.getReader();
    const chunks = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    const head = [];
    response.headers.forEach((value, name) => head.push(name, value));
    head.push("content-length", String(body.byteLength));
    res.writeHead(response.status, head);
    res.end(body);
  });
  if (isBun) behindFront(server);
  else server.listen(path, ready);
} else if (kind === "serve") {
  const { serve } = await import(SERVE);
  serve(
    { path, allow: "everyone", onListen: ready },
    (_request, { peer }) => new Response(`ok ${peer.pid}\n`),
  );
} else if (kind === "serve-hono") {
  const { serve } = await import(SERVE);
  const { Hono } = await import("hono");
  const app = new Hono();
  app.get("/", (c) => c.text(`ok ${c.env.peer.pid}\n`));
  serve({ path, allow: "everyone", onListen: ready }, app.fetch);
} else if (kind === "native" && typeof Deno === "object") {
  Deno.serve({ path, onListen: ready }, () => new Response(BODY));
} else if (kind === "native" && isBun) {
  Bun.serve({ unix: path, fetch: () => new Response(BODY) });
  ready();
} else {
  console.error(`no such server here: ${kind}`);
  process.exit(2);
}
