/**
 * The peer-aware HTTP server behind `serve` and `serveNode`: listening,
 * reading each connection's peer at accept, the policy, and the deadlines and
 * quotas that keep any one peer from holding the server.
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
 * with `emit("connection")` — which also loses node:http's own timeouts
 * there. So the deadlines are the server's own, the same in every runtime:
 * one timer sweeps all connections a few times per shortest deadline, and a
 * request costs a clock read, not a timer.
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
  checkSocketDirectory,
  listening,
  listenOnPath,
} from "../src/unix_listen.ts";
import { describeError, rateLimitedLog, type ServerLog } from "./log.ts";
import {
  DENIED_CONNECTIONS_PER_UID,
  type Limits,
  type ListenOptions,
  type ServeAddr,
  type ServeHandlerInfo,
} from "./options.ts";
import { compilePolicy, type Peer } from "./policy.ts";

/** A running server. */
export interface PeerServer {
  /** Where it listens (`null` until it does: await `ready`). */
  readonly addr: ServeAddr | null;
  /**
   * Resolves with the address once the server listens; rejects as `finished`
   * does when it cannot.
   */
  readonly ready: Promise<ServeAddr>;
  /** Settles when the server has shut down; rejects when it could not listen. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, lets in-flight requests finish (for at most
   * `shutdownTimeout`, then closes what is left), closes idle keep-alive
   * connections, and removes the socket file it created. Resolves as
   * `finished` does.
   */
  shutdown(): Promise<void>;
  /** `shutdown()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Where a connection is in its life, for its deadline:
 * - `headers`: waiting for a request's header block (`headersTimeout` for
 *   the first, `keepAliveTimeout` for later ones);
 * - `body`: a request whose body has not arrived whole (`requestTimeout`);
 * - `response`: the handler and the response (no deadline while the peer
 *   takes what is written; `requestTimeout` once it stops);
 * - `denied`: a refused peer (`deniedTimeout` from accept, never extended);
 * - `upgraded`: handed to `onUpgrade` (the application's from then on).
 */
type Phase = "headers" | "body" | "response" | "denied" | "upgraded";

/** What a connection carries from accept on. */
export interface Connection {
  readonly socket: net.Socket;
  readonly info: ServeHandlerInfo;
  readonly allowed: boolean;
  /** The quota it counts against: its uid, or its address on TCP. */
  readonly quotaKey: string;
  inFlight: number;
  phase: Phase;
  /** `performance.now()` after which the sweep closes it. */
  deadline: number;
  /** The newest request, while its body is on the way. */
  request: http.IncomingMessage | null;
  /** `socket.bytesRead` when the deadline was set: more means a request began. */
  bytesReadBefore: number;
  /** `socket.bytesWritten` at the last sweep, to see a peer that stopped reading. */
  bytesWrittenBefore: number;
  /** The 403 was sent: any further request on it is dropped. */
  refused: boolean;
}

/**
 * Serves one request of an allowed connection: the entry's own handling
 * (`serve`'s Web Request/Response, `serveNode`'s request listener). It must
 * not throw; a rejection it returns is logged and the connection closed.
 */
export type RequestHandler = (
  incoming: http.IncomingMessage,
  outgoing: http.ServerResponse,
  connection: Connection,
) => void | Promise<void>;

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

/**
 * Every accepted connection's identity, by socket, for `peerOf(req)`. Weak:
 * it lives as long as the socket object, also after it closed, so a request
 * still being handled keeps its peer.
 */
const infoBySocket = new WeakMap<net.Socket, ServeHandlerInfo>();

/** The identity of a connection accepted by a peersec server, if it was. */
export function peerOfSocket(socket: net.Socket): ServeHandlerInfo | undefined {
  return infoBySocket.get(socket);
}

/** The answer to every request of a refused peer. */
const FORBIDDEN_BODY = "Forbidden: this peer is not allowed\n";

/** The answer to a request the system's security policy denies. */
const POLICY_FORBIDDEN_BODY =
  "Forbidden: the security policy denies this request\n";

/**
 * A whole HTTP/1.1 response that ends the connection, written straight to a
 * socket node:http no longer answers on (an upgrade, a timed-out request).
 * `body` is ASCII.
 */
function closingResponse(status: string, body = ""): string {
  const type = body === "" ? "" : "Content-Type: text/plain; charset=utf-8\r\n";
  return `HTTP/1.1 ${status}\r\n${type}Content-Length: ${body.length}\r\n` +
    `Connection: close\r\n\r\n${body}`;
}

/** Sent to a peer whose request header block did not arrive in time. */
const REQUEST_TIMEOUT_RESPONSE = closingResponse("408 Request Timeout");

/**
 * Starts a server for an entry point: listens as `options` say, reads every
 * connection's peer at accept, refuses denied peers (403, once per
 * connection `onDenied`), and hands each allowed request to `handle`.
 * `options` and `limits` are checked by the entry (checkListenOptions).
 */
export function startPeerServer(
  options: ListenOptions,
  limits: Limits,
  handle: RequestHandler,
  log: ServerLog = rateLimitedLog(),
  onUpgrade?: (
    request: http.IncomingMessage,
    socket: net.Socket,
    head: Uint8Array,
  ) => void,
): PeerServer {
  // A server that cannot read peers fails now, with the error that says what
  // to do (npm install koffi, --allow-ffi), not with every connection later.
  assertAvailable();
  const allowed = compilePolicy(options.allow);
  const connections = new Map<net.Socket, Connection>();
  const perQuotaKey = new Map<string, number>();
  let addr: ServeAddr | null = null;
  let createdInode: number | null = null;
  let closing = false;

  const httpServer = http.createServer((incoming, outgoing) => {
    const connection = connections.get(incoming.socket as net.Socket);
    if (connection === undefined) {
      // Never a request without the identity of its connection.
      outgoing.destroy();
      incoming.socket?.destroy();
      return;
    }
    if (!connection.allowed) {
      refuse(connection, outgoing);
      return;
    }
    connection.inFlight++;
    if (incoming.complete) {
      connection.phase = "response";
      connection.request = null;
      connection.deadline = Infinity;
    } else {
      connection.phase = "body";
      connection.request = incoming;
      connection.deadline = performance.now() + limits.requestTimeout;
    }
    connection.bytesWrittenBefore = connection.socket.bytesWritten;
    if (closing) outgoing.setHeader("connection", "close");
    // on, not once: a response closes once, and once's wrapper costs.
    outgoing.on("close", () => finishRequest(connection));
    if (options.access !== undefined && !accessAllows(connection, incoming)) {
      outgoing.writeHead(403, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": Buffer.byteLength(POLICY_FORBIDDEN_BODY),
      });
      outgoing.end(POLICY_FORBIDDEN_BODY);
      return;
    }
    let result;
    try {
      result = handle(incoming, outgoing, connection);
    } catch (error) {
      failed(connection, error);
      return;
    }
    if (result !== undefined) {
      result.catch((error) => failed(connection, error));
    }
  });
  httpServer.on("upgrade", (incoming, rawSocket, head) => {
    const socket = rawSocket as net.Socket;
    const connection = connections.get(socket);
    if (connection === undefined) {
      socket.destroy();
      return;
    }
    if (!connection.allowed) {
      connection.refused = true;
      socket.end(closingResponse("403 Forbidden", FORBIDDEN_BODY));
      return;
    }
    if (options.access !== undefined && !accessAllows(connection, incoming)) {
      socket.end(closingResponse("403 Forbidden", POLICY_FORBIDDEN_BODY));
      return;
    }
    if (onUpgrade === undefined || closing) {
      socket.end(closingResponse("501 Not Implemented"));
      return;
    }
    connection.phase = "upgraded";
    connection.deadline = Infinity;
    try {
      onUpgrade(incoming, socket, head);
    } catch (error) {
      failed(connection, error);
    }
  });
  // node:http's own deadlines exist only where it accepts the connections
  // itself (not behind Bun's front) and are checked every 30 s: the sweep
  // below keeps them instead, alike everywhere.
  httpServer.headersTimeout = 0;
  httpServer.requestTimeout = 0;
  httpServer.keepAliveTimeout = limits.keepAliveTimeout;

  /**
   * Whether the system's security policy lets the connection's peer make
   * this request. Fails closed: a checker that throws denies.
   */
  function accessAllows(
    connection: Connection,
    incoming: http.IncomingMessage,
  ): boolean {
    const { peer } = connection.info;
    try {
      return options.access!.check(
        peer.securityContext,
        incoming.method ?? "GET",
        incoming.url ?? "/",
        peer.pid === null ? undefined : { spid: peer.pid },
      ).allowed;
    } catch (error) {
      log("access", `the access check failed; denied: ${describeError(error)}`);
      return false;
    }
  }

  /** A handler's failure that escaped it: logged, the connection closed. */
  function failed(connection: Connection, error: unknown): void {
    log(
      "handler",
      `a request failed; its connection closed: ${describeError(error)}`,
    );
    connection.socket.destroy();
  }

  /** The 403 for the first request of a refused connection; then closed. */
  function refuse(connection: Connection, outgoing: http.ServerResponse) {
    if (connection.refused) {
      outgoing.destroy();
      return;
    }
    connection.refused = true;
    outgoing.writeHead(403, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(FORBIDDEN_BODY),
      connection: "close",
    });
    // Closed once sent; the sweep ends it at deniedTimeout if the peer lingers.
    outgoing.end(FORBIDDEN_BODY, () => connection.socket.end());
  }

  function finishRequest(connection: Connection): void {
    connection.inFlight--;
    if (connection.inFlight > 0) return;
    if (closing) {
      connection.socket.end();
      return;
    }
    connection.phase = "headers";
    connection.request = null;
    connection.deadline = performance.now() + limits.keepAliveTimeout;
    connection.bytesReadBefore = connection.socket.bytesRead;
  }

  /** At accept: the identity, once, before any byte of a request is read. */
  function accept(socket: net.Socket): boolean {
    if (closing) {
      socket.destroy();
      return false;
    }
    if (connections.size >= limits.maxConnections) {
      log(
        "capacity",
        `a connection was refused: maxConnections (${limits.maxConnections}) are open`,
      );
      socket.destroy();
      return false;
    }
    let peer: Peer;
    try {
      peer = readPeer(socket);
    } catch (error) {
      log(
        "read",
        `could not read a connection's peer; refused: ${describeError(error)}`,
      );
      socket.destroy();
      return false;
    }
    const isAllowed = allowed(peer);
    const quotaKey = peer.uid !== null
      ? `uid ${peer.uid}`
      : `address ${socket.remoteAddress}`;
    const held = perQuotaKey.get(quotaKey) ?? 0;
    const quota = isAllowed
      ? limits.maxConnectionsPerUid
      : Math.min(DENIED_CONNECTIONS_PER_UID, limits.maxConnectionsPerUid);
    if (held >= quota) {
      log(
        "quota",
        `a connection was refused: ${quotaKey} holds ${held} (${
          isAllowed
            ? "maxConnectionsPerUid"
            : "the most a refused peer may hold"
        })`,
      );
      socket.destroy();
      return false;
    }
    perQuotaKey.set(quotaKey, held + 1);
    const remoteAddr: ServeAddr = socket.remotePort === undefined
      ? { transport: "unix", path: addr?.transport === "unix" ? addr.path : "" }
      : {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort,
      };
    const connection: Connection = {
      socket,
      info: Object.freeze({ peer, remoteAddr }),
      allowed: isAllowed,
      quotaKey,
      inFlight: 0,
      phase: isAllowed ? "headers" : "denied",
      deadline: performance.now() +
        (isAllowed ? limits.headersTimeout : limits.deniedTimeout),
      request: null,
      bytesReadBefore: 0,
      bytesWrittenBefore: 0,
      refused: false,
    };
    connections.set(socket, connection);
    infoBySocket.set(socket, connection.info);
    socket.once("close", () => {
      connections.delete(socket);
      const count = perQuotaKey.get(quotaKey)! - 1;
      if (count === 0) perQuotaKey.delete(quotaKey);
      else perQuotaKey.set(quotaKey, count);
    });
    if (!isAllowed && options.onDenied !== undefined) {
      try {
        options.onDenied(peer, connection.info);
      } catch (error) {
        log("onDenied", `onDenied failed: ${describeError(error)}`);
      }
    }
    return true;
  }

  /** Closes the connections whose deadline has passed. */
  function sweep(): void {
    const now = performance.now();
    for (const connection of connections.values()) {
      const { socket } = connection;
      if (connection.phase === "body" && connection.request!.complete) {
        connection.phase = "response";
        connection.request = null;
        connection.deadline = Infinity;
      }
      if (connection.phase === "response") {
        // Only a peer that leaves written bytes unread is timed, from when it
        // stopped taking them; a slow handler is the application's business.
        const written = socket.bytesWritten;
        if (
          socket.writableLength === 0 ||
          written !== connection.bytesWrittenBefore
        ) {
          connection.bytesWrittenBefore = written;
          connection.deadline = Infinity;
        } else if (connection.deadline === Infinity) {
          connection.deadline = now + limits.requestTimeout;
        }
      }
      if (now < connection.deadline) continue;
      if (
        connection.phase === "headers" &&
        socket.bytesRead > connection.bytesReadBefore
      ) {
        // Part of a request came: say why it is closed, as node:http does.
        socket.end(REQUEST_TIMEOUT_RESPONSE);
        // A peer that reads nothing is destroyed at the next deadline.
        connection.phase = "denied";
        connection.deadline = now + limits.deniedTimeout;
        connection.bytesReadBefore = Infinity;
        continue;
      }
      socket.destroy();
    }
  }
  const sweepInterval = Math.max(
    10,
    Math.min(
      1000,
      Math.floor(
        Math.min(
          limits.headersTimeout,
          limits.keepAliveTimeout,
          limits.requestTimeout,
          limits.deniedTimeout,
        ) / 4,
      ),
    ),
  );
  const sweeper = setInterval(sweep, sweepInterval);
  (sweeper as { unref?: () => void }).unref?.();

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

  async function listen(): Promise<ServeAddr> {
    let listeningAddr: ServeAddr;
    if (options.path !== undefined) {
      // With a mode the way to the socket must be one no other user can
      // change — checked before a stale socket is removed, so that removal
      // cannot be redirected either.
      if (options.mode !== undefined) checkSocketDirectory(options.path);
      await preparePath(options.path);
      await listenOnPath(listener, options.path, options.mode);
      createdInode = lstatSync(options.path).ino;
      listeningAddr = { transport: "unix", path: options.path };
    } else {
      await listening(
        listener,
        options.fd !== undefined
          ? { fd: options.fd }
          : [options.port!, options.hostname ?? "127.0.0.1"],
      );
      const address = listener.address();
      listeningAddr = address !== null && typeof address === "object"
        ? { transport: "tcp", hostname: address.address, port: address.port }
        : {
          transport: "unix",
          path: typeof address === "string" ? address : "",
        };
    }
    addr = listeningAddr;
    // An accept that fails (EMFILE at the fd limit) is an "error" event: one
    // line, rate-limited; the server goes on.
    listener.on("error", (error) => {
      log("accept", `accepting a connection failed: ${describeError(error)}`);
    });
    listener.once("close", () => {
      clearInterval(sweeper);
      removeSocketFile();
      resolveFinished();
    });
    try {
      options.onListen?.(listeningAddr);
    } catch (error) {
      // The server listens: a failing callback must not say otherwise.
      log("onListen", `onListen failed: ${describeError(error)}`);
    }
    return listeningAddr;
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

  // A failure to listen rejects both promises. `ready` never counts as an
  // unhandled rejection by itself, and `finished` does not either once
  // `ready` was asked for; nobody asking for either still surfaces the error.
  let readyAsked = false;
  const ready = listen();
  ready.catch((error) => {
    clearInterval(sweeper);
    if (readyAsked) finished.catch(() => {});
    rejectFinished(error);
  });

  async function shutdown(): Promise<void> {
    if (!closing) {
      closing = true;
      try {
        await ready;
      } catch {
        return finished.catch(() => {});
      }
      listener.close();
      if (front) httpServer.close();
      for (const [socket, connection] of connections) {
        if (connection.inFlight === 0) socket.end();
      }
      // What is still open when the grace ends is closed: a half-sent
      // request, an unread response or a hung handler cannot hold shutdown.
      const grace = setTimeout(() => {
        for (const socket of connections.keys()) socket.destroy();
      }, limits.shutdownTimeout);
      finished.then(() => clearTimeout(grace), () => clearTimeout(grace));
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
    get ready() {
      readyAsked = true;
      return ready;
    },
    finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
