/**
 * `serveNode`: the same server as `serve` — listening, the identity read at
 * accept, the policy, the deadlines and quotas — with a node:http request
 * listener as the handler, so that an Express app, Koa's `app.callback()`,
 * Fastify's `routing`, or plain node:http code runs unchanged, at node:http's
 * speed, in Node, Deno and Bun alike. `peerOf(req)` gives a request's peer.
 *
 * @module
 */
import type http from "node:http";
import type net from "node:net";
import { checkListenOptions, type ListenOptions } from "./options.ts";
import { peerOfSocket, type PeerServer, startPeerServer } from "./server.ts";
import type { Peer } from "./policy.ts";

/** A node:http request listener: `(req, res) => …`. */
export type NodeRequestListener = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
) => unknown;

/** Options of `serveNode`: {@linkcode ListenOptions} and `onUpgrade`. */
export interface ServeNodeOptions extends ListenOptions {
  /**
   * node:http's `upgrade` event (WebSocket), for allowed peers only — a
   * refused peer's upgrade request is answered 403 and closed. The socket
   * is the application's from then on: the server's deadlines stop, its
   * quotas count the connection until it closes. Without it, an upgrade
   * request is answered 501 and closed.
   */
  onUpgrade?: (
    request: http.IncomingMessage,
    socket: net.Socket,
    head: Uint8Array,
  ) => void;
}

/** See `serveNode` in serve.ts. */
export function startNodeServer(
  options: ServeNodeOptions,
  listener: NodeRequestListener,
): PeerServer {
  const limits = checkListenOptions("serveNode", options, ["onUpgrade"]);
  if (typeof listener !== "function") {
    throw new TypeError(
      "serveNode needs a request listener (req, res) => …: an Express app, " +
        "Koa's app.callback(), Fastify's routing",
    );
  }
  if (
    options.onUpgrade !== undefined && typeof options.onUpgrade !== "function"
  ) {
    throw new TypeError("onUpgrade must be a function");
  }
  return startPeerServer(
    options,
    limits,
    (incoming, outgoing) => {
      const result = listener(incoming, outgoing);
      // An async listener's rejection is the server's to catch (plain
      // node:http would leave it unhandled and end the process).
      if (
        typeof result === "object" && result !== null &&
        typeof (result as PromiseLike<unknown>).then === "function"
      ) {
        return Promise.resolve(result).then(() => {});
      }
    },
    undefined,
    options.onUpgrade,
  );
}

/** See `peerOf` in serve.ts. */
export function peerOfRequest(request: http.IncomingMessage): Peer {
  if (request === null || typeof request !== "object") {
    throw new TypeError("peerOf takes a node:http request (req)");
  }
  const socket = (request as { socket?: unknown }).socket;
  const info = typeof socket === "object" && socket !== null
    ? peerOfSocket(socket as net.Socket)
    : undefined;
  if (info === undefined) {
    throw new TypeError(
      "peerOf: this request did not come through serveNode",
    );
  }
  return info.peer;
}
