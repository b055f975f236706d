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

export type { ServeHandler, ServeOptions } from "./serve/fetch.ts";
export type { PeerServer } from "./serve/server.ts";
export type {
  ListenOptions,
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
 * - `allow` refuses peers before the handler runs: `403` with a short body,
 *   `onDenied(peer, request)` is called, the connection is closed. A peer
 *   whose identity lacks what a rule asks (TCP has no credentials) is denied.
 * - `{ path }` creates the socket: a stale socket file (nothing listening) is
 *   replaced, a live one is `EADDRINUSE`, anything that is not a socket is
 *   never touched (`ERR_NOT_A_SOCKET`); `mode` is the file's mode from the
 *   moment anyone can connect. `shutdown()` removes the file it created.
 * - Bodies stream both ways with backpressure; `request.signal` aborts when
 *   the client goes away; a handler that throws gives `onError`'s response
 *   (default: 500) and the server keeps serving.
 *
 * @param options Exactly one of `path`, `fd`, `port`; plus `hostname` (TCP,
 *   default `127.0.0.1`), `mode` (UNIX), `allow`, `onListen`, `onError`,
 *   `onDenied`, `signal`.
 * @param handler `(request, info) => Response | Promise<Response>`.
 * @returns The running server: `addr`, `finished`, `shutdown()`,
 *   `[Symbol.asyncDispose]`. Listening errors (`EADDRINUSE`,
 *   `ERR_NOT_A_SOCKET`, a missing directory) reject `finished`.
 * @throws {TypeError} for malformed options, rules or handler.
 * @throws {RangeError} for an out-of-range fd, port, mode or id, or a user or
 *   group name that /etc/passwd or /etc/group does not know.
 * @throws {PeerSecError} when peers cannot be read here at all, as
 *   `assertAvailable()` says: `ERR_KOFFI_MISSING` (Node before 26 without
 *   koffi), `ERR_FFI_PERMISSION` (Deno without `--allow-ffi`), and the like.
 *
 * @example
 * ```ts
 * import { serve } from "@peersec/peersec/serve";
 *
 * const server = serve({
 *   path: "/tmp/peersec-serve.sock",
 *   mode: 0o666, // anyone may connect; the policy decides who gets an answer
 *   allow: [{ uid: 0 }, { groupName: "adm" }, { selinuxType: "backup_t" }],
 *   onDenied: (peer) => console.error("denied", peer),
 * }, (_request, { peer }) => Response.json(peer));
 * await server.finished;
 * ```
 */
export function serve(
  options: ServeOptions,
  handler: ServeHandler,
): PeerServer {
  return startFetchServer(options, handler);
}
