/**
 * A fetch-style HTTP server whose handlers know who is calling: every request
 * comes with the kernel's word about the process on the other end of its
 * connection (SO_PEERCRED, SO_PEERGROUPS, SO_PEERSEC), read once when the
 * connection is accepted, and a declarative policy refuses the wrong peers
 * before the handler runs. The same code runs in Deno, Bun and Node, on a
 * UNIX socket, an inherited listener (socket activation) or TCP (labeled
 * networking).
 *
 * Shaped like `Deno.serve`: `serve(options, handler)` with
 * `handler(request, info)`; `info` is what Hono passes on as `c.env`, so a
 * Hono app plugs in as `serve({ path }, app.fetch)`.
 *
 * @example
 * ```ts
 * import { serve } from "@peersec/peersec/serve";
 *
 * serve({ path: "/run/demo.sock", mode: 0o666, allow: [{ user: "root" }] },
 *   (request, { peer }) => Response.json({ url: request.url, peer }));
 * ```
 *
 * @module
 */
import {
  type ServeHandler,
  type ServeOptions,
  startFetchServer,
} from "./serve/fetch.ts";
import type { PeerServer } from "./serve/server.ts";
import {
  type NodeRequestListener,
  peerOfRequest,
  type ServeNodeOptions,
  startNodeServer,
} from "./serve/node.ts";
import type { Peer } from "./serve/policy.ts";
import type { IncomingMessage } from "node:http";

export type { ServeHandler, ServeOptions } from "./serve/fetch.ts";
export type { PeerServer } from "./serve/server.ts";
export type { NodeRequestListener, ServeNodeOptions } from "./serve/node.ts";
export type {
  ListenOptions,
  RequestChecker,
  ServeAddr,
  ServeHandlerInfo,
} from "./serve/options.ts";

export {
  type Peer,
  peerMatches,
  type PeerPolicy,
  type PeerRule,
} from "./serve/policy.ts";

/**
 * Starts an HTTP server on a UNIX socket (`{ path }`), an inherited listening
 * socket (`{ fd }`, e.g. from `listenFds()`) or TCP (`{ port, hostname }`),
 * and calls `handler(request, info)` for each request, with `info.peer` the
 * identity of the process that opened the request's connection.
 *
 * - The identity is read once per connection, synchronously at accept, before
 *   any byte of a request is parsed, and shared (frozen) by every request on
 *   that keep-alive connection. Nothing reads an fd after an `await`.
 * - `allow` refuses peers before the handler runs; absent, only peers running
 *   as this process's own effective uid are served (`allow: "everyone"`
 *   serves whoever can connect). A refused connection is told `403` for its
 *   first request and closed; `onDenied(peer, info)` is called once per
 *   refused connection, at accept. A peer whose identity lacks what a rule
 *   asks (TCP has no credentials) is denied. An unknown option is a
 *   `TypeError`: a misspelt `allow` never serves everyone.
 * - `access` (a request checker from `peersec/access`) lets the system's
 *   SELinux, AppArmor or Smack policy decide each request after `allow`: a
 *   denial is a `403` for that request, failing closed.
 * - `{ path }` creates the socket: a stale socket file (nothing listening) is
 *   replaced, a live one is `EADDRINUSE`, anything that is not a socket is
 *   never touched (`ERR_NOT_A_SOCKET`); `mode` is the file's mode from the
 *   moment anyone can connect. `shutdown()` removes the file it created.
 * - Deadlines and quotas, the same in every runtime: `headersTimeout`,
 *   `keepAliveTimeout`, `requestTimeout`, `deniedTimeout`, `shutdownTimeout`,
 *   `maxConnections`, `maxConnectionsPerUid` (see {@linkcode ListenOptions}).
 * - Bodies stream both ways with backpressure; `request.signal` aborts when
 *   the client goes away; a handler that throws, or returns a Response that
 *   HTTP/1.1 cannot carry (a control byte in a header), gives `onError`'s
 *   response (default: 500) and the server keeps serving. Responses are
 *   framed by the bytes they carry: a Response's own `content-length` is
 *   not trusted.
 *
 * @param options Exactly one of `path`, `fd`, `port`; plus `hostname` (TCP,
 *   default `127.0.0.1`), `mode` (UNIX), `allow`, `onListen`, `onError`,
 *   `onDenied`, `signal`, and the deadlines and quotas.
 * @param handler `(request, info) => Response | Promise<Response>`.
 * @returns The running server: `addr`, `ready`, `finished`, `shutdown()`,
 *   `[Symbol.asyncDispose]`. Listening errors (`EADDRINUSE`,
 *   `ERR_NOT_A_SOCKET`, a missing directory) reject `ready` and `finished`.
 * @throws {TypeError} for malformed or unknown options, rules or handler.
 * @throws {RangeError} for an out-of-range fd, port, mode or id, or a user or
 *   group name that /etc/passwd or /etc/group does not know.
 * @throws {PeerSecError} when peers cannot be read here at all, as
 *   `assertAvailable()` says: `ERR_KOFFI_MISSING` (Node before 26 without
 *   koffi), `ERR_FFI_PERMISSION` (Deno without `--allow-ffi`),
 *   `ERR_NODE_PERMISSION` (Node's permission model without the FFI flag),
 *   and the like. With `mode`, listening fails (`ready` rejects) with
 *   `ERR_UNSAFE_DIRECTORY` where another user could change the way to the
 *   socket.
 *
 * @example
 * ```ts
 * import { serve } from "@peersec/peersec/serve";
 *
 * const server = serve({
 *   path: "/tmp/peersec-serve.sock",
 *   mode: 0o666, // anyone may connect; the policy decides who gets an answer
 *   allow: [{ uid: 0 }, { selinuxType: "backup_t" }],
 *   onDenied: (peer) => console.error("denied", peer),
 * }, (_request, { peer }) => Response.json(peer));
 * console.log("listening on", await server.ready);
 * await server.finished;
 * ```
 */
export function serve(
  options: ServeOptions,
  handler: ServeHandler,
): PeerServer {
  return startFetchServer(options, handler);
}

/**
 * Starts the same server as {@linkcode serve} — the same listening options,
 * policy, deadlines and quotas, and the identity read once per connection
 * at accept — with a node:http request listener as the handler: an Express
 * app, Koa's `app.callback()`, Fastify's `routing`, or plain node:http code,
 * unchanged, in Node, Deno and Bun. `peerOf(req)` is the request's peer. A
 * refused peer never reaches the listener: 403 and closed. WebSocket
 * upgrades of allowed peers go to `onUpgrade(req, socket, head)`, where
 * `peerOf(req)` works too.
 *
 * @param options As `serve`'s, with `onUpgrade` in place of `onError`.
 * @param listener `(req, res) => …`, called only for allowed peers.
 * @returns The running server, as `serve` returns it.
 * @throws {TypeError} for malformed or unknown options, or no listener.
 * @throws {RangeError} for an out-of-range fd, port, mode, id or limit.
 * @throws {PeerSecError} when peers cannot be read here at all.
 *
 * @example Express
 * ```ts ignore
 * import express from "express";
 * import { peerOf, serveNode } from "peersec/serve";
 *
 * const app = express();
 * app.get("/whoami", (req, res) => res.json(peerOf(req)));
 * serveNode({ path: "/tmp/app.sock", mode: 0o666, allow: [{ uid: 0 }] }, app);
 * ```
 *
 * @example Plain node:http code
 * ```ts
 * import { peerOf, serveNode } from "@peersec/peersec/serve";
 *
 * const server = serveNode({ path: "/tmp/node-style.sock" }, (req, res) => {
 *   res.setHeader("content-type", "application/json");
 *   res.end(JSON.stringify(peerOf(req)));
 * });
 * await server.ready;
 * ```
 */
export function serveNode(
  options: ServeNodeOptions,
  listener: NodeRequestListener,
): PeerServer {
  return startNodeServer(options, listener);
}

/**
 * The peer of a request served by {@linkcode serveNode}: the identity of the
 * process that opened the request's connection, read at accept and frozen
 * (`pid`, `uid`, `gid`, `groups` — `null` on TCP — and `securityContext`).
 *
 * @param request A node:http request (`req`) from `serveNode`'s listener or
 *   its `onUpgrade`.
 * @returns The frozen peer.
 * @throws {TypeError} for a request that did not come through `serveNode`.
 *
 * @example
 * ```ts
 * import { peerOf, serveNode } from "@peersec/peersec/serve";
 *
 * serveNode({ path: "/tmp/peer-of.sock" }, (req, res) => {
 *   const { uid, securityContext } = peerOf(req);
 *   res.end(`uid ${uid}, label ${securityContext ?? "none"}\n`);
 * });
 * ```
 */
export function peerOf(request: IncomingMessage): Peer {
  return peerOfRequest(request);
}
