/**
 * The peer-aware HTTP server behind `serve`.
 *
 * The identity is read once per connection, synchronously, in the accept
 * callback — before the runtime has read a byte of the request from the
 * socket — and kept with the connection object. Every request on that
 * (keep-alive) connection gets the same, frozen identity; no fd is ever read
 * after an `await`, so a number the kernel reused for a newer connection can
 * never lend its peer to an older request.
 *
 * How connections reach node:http differs per runtime (FACTS §5, and the
 * tests): Node and Deno let node:http listen itself and hand out sockets with
 * fds in its "connection" event (Deno closes connections that are fed to it
 * from outside, breaking keep-alive); Bun's node:http sockets carry no fd, so
 * a node:net server accepts, reads the identity, and hands each socket over
 * with `emit("connection")`.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import { lstatSync, unlinkSync } from "node:fs";
import {
  assertAvailable,
  getPeerInfo,
  PeerSecError,
  withSocketFd,
} from "../mod.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import {
  checkSocketMode,
  listening,
  listenOnPath,
} from "../src/unix_listen.ts";
import { toRequest, writeResponse } from "./http.ts";
import { compilePolicy, type Peer, type PeerPolicy } from "./policy.ts";

/** Where a server listens, or where a request came from. */
export type ServeAddr =
  | { transport: "unix"; path: string }
  | { transport: "tcp"; hostname: string; port: number };

/** What a handler receives besides the request. */
export interface ServeHandlerInfo {
  /** The peer of the connection the request came on, read at accept. */
  readonly peer: Peer;
  /** The client's address: the socket path for UNIX sockets, host and port for TCP. */
  readonly remoteAddr: ServeAddr;
}

/** A fetch-style handler: a Web Request in, a Response (or a promise of one) out. */
export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** Options of `serve`: exactly one of `path`, `fd` or `port`. */
export interface ServeOptions {
  /** A UNIX socket path to create (a stale socket there is replaced; anything else is refused). */
  path?: string;
  /** An inherited listening socket, e.g. from `listenFds()`. */
  fd?: number;
  /** A TCP port (0: any free one), for labeled networking. */
  port?: number;
  /** With `port`: the address to bind (default `127.0.0.1`). */
  hostname?: string;
  /** With `path`: the socket file's mode (e.g. `0o660`), set before anyone can connect. */
  mode?: number;
  /** Who may make requests; absent: everyone who can connect. */
  allow?: PeerPolicy;
  /** Called once listening, with the address. */
  onListen?: (addr: ServeAddr) => void;
  /** Turns a handler's failure into a response (default: 500, logged). */
  onError?: (
    error: unknown,
    request: Request,
  ) => Response | Promise<Response>;
  /** Called when the policy refuses a peer (for audit logs). */
  onDenied?: (peer: Peer, request: Request) => void;
  /** Shuts the server down when aborted. */
  signal?: AbortSignal;
}

/** A running server. */
export interface PeerServer {
  /** Where it listens (a promise until it does). */
  readonly addr: ServeAddr | null;
  /** Settles when the server has shut down; rejects when it could not listen. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish, closes idle keep-alive
   * connections, and removes the socket file it created. Resolves as
   * `finished` does.
   */
  shutdown(): Promise<void>;
  /** `shutdown()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** What a connection carries from accept on. */
interface Connection {
  readonly info: ServeHandlerInfo;
  readonly allowed: boolean;
  inFlight: number;
}

function checkOptions(options: ServeOptions, handler: ServeHandler): void {
  if (options === null || typeof options !== "object") {
    throw new TypeError("serve takes an options object");
  }
  if (typeof handler !== "function") {
    throw new TypeError("serve needs a handler function");
  }
  const given = (["path", "fd", "port"] as const).filter((key) =>
    options[key] !== undefined
  );
  if (given.length !== 1) {
    throw new TypeError(
      `serve takes exactly one of path, fd or port (got ${
        given.join(", ") || "none"
      })`,
    );
  }
  if (options.path !== undefined) {
    if (typeof options.path !== "string" || options.path === "") {
      throw new TypeError("path must be a non-empty string");
    }
  }
  if (options.fd !== undefined) {
    if (
      typeof options.fd !== "number" || !Number.isInteger(options.fd) ||
      options.fd < 0
    ) {
      throw new RangeError("fd must be a non-negative integer");
    }
  }
  if (options.port !== undefined) {
    if (
      typeof options.port !== "number" || !Number.isInteger(options.port) ||
      options.port < 0 || options.port > 65535
    ) {
      throw new RangeError("port must be an integer from 0 to 65535");
    }
  }
  if (options.hostname !== undefined && options.port === undefined) {
    throw new TypeError("hostname goes with port");
  }
  if (options.mode !== undefined) {
    if (options.path === undefined) throw new TypeError("mode goes with path");
    checkSocketMode(options.mode);
  }
  for (const name of ["onListen", "onError", "onDenied"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "function") {
      throw new TypeError(`${name} must be a function`);
    }
  }
}

/**
 * The peer of an accepted socket, read now (getPeerInfo: a TCP peer has no
 * credentials, so they are null); any other failure throws and the
 * connection is refused.
 */
function readPeer(socket: net.Socket): Peer {
  return withSocketFd(socket, (fd) => {
    const { credentials, groups, securityContext } = getPeerInfo(fd);
    return Object.freeze({
      pid: credentials?.pid ?? null,
      uid: credentials?.uid ?? null,
      gid: credentials?.gid ?? null,
      groups: groups === null ? null : Object.freeze(groups),
      securityContext,
    });
  });
}

/** Refuses a path holding anything but a socket; removes a stale socket. */
async function preparePath(path: string): Promise<void> {
  let stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new PeerSecError(
      `${path} exists and is not a socket: serve never replaces it`,
      { code: "ERR_NOT_A_SOCKET" },
    );
  }
  // A socket file: replaced only when nothing listens on it.
  const inUse = await new Promise<boolean>((resolve, reject) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", (error: Error & { code?: string }) => {
      if (error.code === "ECONNREFUSED") resolve(false);
      else reject(error);
    });
  });
  if (inUse) {
    throw new PeerSecError(`${path}: a server is listening there already`, {
      code: "EADDRINUSE",
    });
  }
  unlinkSync(path);
}

/** A 403 or 500 with a short plain-text body. */
function plain(status: number, text: string, close = false): Response {
  const headers: Record<string, string> = {
    "content-type": "text/plain; charset=utf-8",
  };
  if (close) headers.connection = "close";
  return new Response(`${text}\n`, { status, headers });
}

function defaultOnError(error: unknown): Response {
  console.error("peersec serve: the handler failed:", error);
  return plain(500, "Internal Server Error");
}

/** See `serve` in serve.ts. */
export function startServer(
  options: ServeOptions,
  handler: ServeHandler,
): PeerServer {
  checkOptions(options, handler);
  // A server that cannot read peers fails now, with the error that says what
  // to do (npm install koffi, --allow-ffi), not with every connection later.
  assertAvailable();
  const allowed = compilePolicy(options.allow);
  const onError = options.onError ?? defaultOnError;
  const connections = new Map<net.Socket, Connection>();
  let addr: ServeAddr | null = null;
  let createdInode: number | null = null;
  let closing = false;

  const httpServer = http.createServer((incoming, outgoing) => {
    const connection = connections.get(incoming.socket as net.Socket);
    if (connection === undefined) {
      // Never a request without the identity of its connection.
      outgoing.statusCode = 500;
      outgoing.setHeader("connection", "close");
      outgoing.end();
      return;
    }
    connection.inFlight++;
    const aborter = new AbortController();
    outgoing.once("close", () => {
      // Closed before the response was complete: the client went away.
      if (!outgoing.writableFinished) aborter.abort();
      connection.inFlight--;
      if (closing && connection.inFlight === 0) {
        (incoming.socket as net.Socket).end();
      }
    });
    void respond(incoming, outgoing, connection, aborter.signal);
  });

  async function respond(
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
    connection: Connection,
    signal: AbortSignal,
  ): Promise<void> {
    if (closing) outgoing.setHeader("connection", "close");
    let request: Request;
    try {
      request = toRequest(incoming, "http://localhost", signal);
    } catch {
      await writeResponse(outgoing, plain(400, "Bad Request"), incoming.method);
      return;
    }
    if (!connection.allowed) {
      try {
        options.onDenied?.(connection.info.peer, request);
      } catch (error) {
        console.error("peersec serve: onDenied failed:", error);
      }
      await writeResponse(
        outgoing,
        plain(403, "Forbidden: this peer is not allowed", true),
        incoming.method,
      );
      return;
    }
    let response: Response;
    try {
      response = await handler(request, connection.info);
      if (!(response instanceof Response)) {
        throw new TypeError("the handler did not return a Response");
      }
    } catch (error) {
      try {
        response = await onError(error, request);
        if (!(response instanceof Response)) throw new TypeError("onError");
      } catch (secondError) {
        console.error("peersec serve: onError failed:", secondError);
        response = plain(500, "Internal Server Error");
      }
    }
    await writeResponse(outgoing, response, incoming.method);
  }

  /** At accept: the identity, once, before any byte of a request is read. */
  function accept(socket: net.Socket): boolean {
    let peer: Peer;
    try {
      peer = readPeer(socket);
    } catch (error) {
      console.error(
        "peersec serve: could not read a connection's peer; refused:",
        error,
      );
      socket.destroy();
      return false;
    }
    const remoteAddr: ServeAddr = socket.remotePort === undefined
      ? { transport: "unix", path: addr?.transport === "unix" ? addr.path : "" }
      : {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort,
      };
    connections.set(socket, {
      info: Object.freeze({ peer, remoteAddr }),
      allowed: allowed(peer),
      inFlight: 0,
    });
    socket.once("close", () => connections.delete(socket));
    if (closing) socket.end();
    return true;
  }

  // Bun's node:http sockets have no fd: accept with node:net and hand over.
  const front = detectRuntime() === "bun";
  const listener: net.Server = front
    ? net.createServer((socket) => {
      if (accept(socket)) httpServer.emit("connection", socket);
    })
    : httpServer;
  if (!front) {
    // Before node:http's own listener, so nothing precedes the read.
    httpServer.prependListener("connection", (socket: net.Socket) => {
      accept(socket);
    });
  }

  let resolveFinished!: () => void;
  let rejectFinished!: (error: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    resolveFinished = resolve;
    rejectFinished = reject;
  });

  async function listen(): Promise<void> {
    if (options.path !== undefined) {
      await preparePath(options.path);
      await listenOnPath(listener, options.path, options.mode);
      createdInode = lstatSync(options.path).ino;
      addr = { transport: "unix", path: options.path };
    } else {
      await listening(
        listener,
        options.fd !== undefined
          ? { fd: options.fd }
          : [options.port!, options.hostname ?? "127.0.0.1"],
      );
      const address = listener.address();
      addr = address !== null && typeof address === "object"
        ? { transport: "tcp", hostname: address.address, port: address.port }
        : {
          transport: "unix",
          path: typeof address === "string" ? address : "",
        };
    }
    listener.once("close", () => {
      removeSocketFile();
      resolveFinished();
    });
    try {
      options.onListen?.(addr);
    } catch (error) {
      // The server listens: a failing callback must not say otherwise.
      console.error("peersec serve: onListen failed:", error);
    }
  }

  function removeSocketFile(): void {
    if (options.path === undefined || createdInode === null) return;
    try {
      // Only the file this server created: never a successor's.
      const stats = lstatSync(options.path);
      if (stats.isSocket() && stats.ino === createdInode) {
        unlinkSync(options.path);
      }
    } catch {
      // already gone
    }
  }

  const listened = listen().catch((error) => {
    rejectFinished(error);
  });

  async function shutdown(): Promise<void> {
    if (!closing) {
      closing = true;
      await listened;
      if (addr === null) return finished.catch(() => {});
      listener.close();
      if (front) httpServer.close();
      for (const [socket, connection] of connections) {
        if (connection.inFlight === 0) socket.end();
      }
    }
    return finished;
  }

  if (options.signal !== undefined) {
    if (options.signal.aborted) void shutdown();
    else {
      options.signal.addEventListener("abort", () => void shutdown(), {
        once: true,
      });
    }
  }

  return {
    get addr() {
      return addr;
    },
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
