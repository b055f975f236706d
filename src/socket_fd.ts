/**
 * From "a connection in my framework" to the fd the kernel knows it by.
 * Runtimes keep fds in their own places, and some keep none at all; each case
 * is named here, and each dead end says what works instead.
 *
 * @module
 */
import { checkFd, type PeerSecReader } from "./core.ts";
import { FCNTL } from "./constants.ts";
import { PeerSecError } from "./errors.ts";
import { closeFileDescriptor } from "./identity.ts";

/** How an fd was found: borrowed from the socket, or a duplicate to close. */
interface FoundFd {
  fd: number;
  duplicate: boolean;
}

/** The pattern that works when a server API hides its sockets. */
const NODE_NET_FRONT = "accept connections with node:net and hand them to " +
  'node:http: net.createServer((socket) => httpServer.emit("connection", ' +
  "socket)), then read the fd of req.socket";

function noFd(message: string): PeerSecError {
  return new PeerSecError(message, { code: "ERR_NO_SOCKET_FD" });
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const name = (value as { constructor?: { name?: string } }).constructor?.name;
  return name ? `a ${name}` : "an object";
}

function findFd(socket: unknown): FoundFd {
  if (typeof socket === "number") {
    throw new TypeError(
      "socketFd takes a socket object; an fd is already what the other " +
        "functions take",
    );
  }
  if (socket === null || typeof socket !== "object") {
    throw new TypeError(`expected a socket object, got ${describe(socket)}`);
  }
  const Request = (globalThis as unknown as {
    Request?: abstract new (...args: never[]) => unknown;
  }).Request;
  if (Request !== undefined && socket instanceof Request) {
    throw noFd(
      "a fetch-style Request (Deno.serve, Bun.serve) carries no socket fd, " +
        `and neither server exposes one; ${NODE_NET_FRONT}`,
    );
  }
  const candidate = socket as {
    _handle?: { fd?: unknown; fdForIpc?: () => number } | null;
    fd?: unknown;
    destroyed?: boolean;
    headers?: unknown;
    socket?: unknown;
    localAddr?: unknown;
  };
  if ("_handle" in candidate) {
    // node:net sockets, in Node, Bun and Deno.
    const handle = candidate._handle;
    if (handle === null || handle === undefined) {
      if (candidate.destroyed === true) {
        throw new PeerSecError("the socket is closed: it has no fd any more", {
          code: "ERR_SOCKET_CLOSED",
        });
      }
      throw noFd(
        "this socket has no handle (Bun's node:http gives its requests' " +
          `sockets none); ${NODE_NET_FRONT}`,
      );
    }
    if (typeof handle.fd === "number" && handle.fd >= 0) {
      return { fd: handle.fd, duplicate: false };
    }
    if (typeof handle.fdForIpc === "function") {
      // Deno keeps TCP sockets' fds to itself; fdForIpc makes a new dup each call.
      return { fd: handle.fdForIpc(), duplicate: true };
    }
    throw noFd("this node:net socket exposes no fd in this runtime");
  }
  if (typeof candidate.fd === "number") {
    // Bun.listen / Bun.connect sockets.
    if (candidate.fd < 0) {
      throw new PeerSecError("the socket is closed: it has no fd any more", {
        code: "ERR_SOCKET_CLOSED",
      });
    }
    return { fd: candidate.fd, duplicate: false };
  }
  if ("headers" in candidate && "socket" in candidate) {
    throw new TypeError(
      "this is an HTTP request, not a socket: pass req.socket",
    );
  }
  if ("localAddr" in candidate && "remoteAddr" in candidate) {
    throw noFd(
      "a Deno.Conn (Deno.listen, Deno.connect) exposes no fd; accept " +
        "connections with node:net's createServer instead",
    );
  }
  throw new TypeError(
    `expected a node:net socket or a Bun.listen socket, got ${
      describe(socket)
    }`,
  );
}

/** See `socketFd` in mod.ts. */
export function borrowSocketFd(reader: PeerSecReader, socket: unknown): number {
  const { fd, duplicate } = findFd(socket);
  if (duplicate) {
    closeFileDescriptor(reader, fd);
    throw noFd(
      "Deno exposes only a duplicate of a TCP socket's fd, which would leak if " +
        "returned: use withSocketFd(socket, (fd) => …), which closes it",
    );
  }
  return fd;
}

/**
 * A close-on-exec duplicate of `fd`: the same open socket under a number the
 * caller owns. It stays that socket when the runtime closes `fd` and the
 * kernel hands the number to the next connection.
 */
export function duplicateFd(reader: PeerSecReader, fd: number): number {
  const { rc, errno } = reader.backend.fcntl(fd, FCNTL.F_DUPFD_CLOEXEC, 0);
  if (rc === -1) {
    const code = reader.errnoName(errno);
    throw new PeerSecError(
      `fcntl(${fd}, F_DUPFD_CLOEXEC) failed with errno ${errno} [${code}]`,
      { code, errno, syscall: "fcntl", fd },
    );
  }
  return rc;
}

/** Closes an fd of our own; a failure (it cannot be a leak) is not the caller's. */
function closeOwn(reader: PeerSecReader, fd: number): void {
  try {
    closeFileDescriptor(reader, fd);
  } catch {
    // EBADF (someone closed our number) or EIO: nothing is left to release.
  }
}

/**
 * The callback handed back the duplicate's number: it is closed as the
 * callback returns, and the kernel gives the number to the next file opened —
 * a later read through it would reach another connection.
 */
function returnedDuplicate(fd: number): TypeError {
  return new TypeError(
    `withSocketFd's callback returned its fd (${fd}), a duplicate that ` +
      "withSocketFd closes when the callback returns (or its promise " +
      "settles), so the number may name another connection next: use the " +
      "fd inside the callback, and return what was read through it",
  );
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") &&
    value !== null && typeof (value as { then?: unknown }).then === "function";
}

/**
 * See `withSocketFd` in mod.ts. `use` never sees the socket's own fd: it gets
 * a duplicate that this function owns and closes when `use` returns, throws,
 * or — when `use` returns a promise or any thenable — once that settles. So a
 * read after an `await` still reads the same connection, even if the runtime
 * closed the socket and its number went to a new peer meanwhile. A callback
 * that returns (or resolves to) the duplicate's number is refused with a
 * TypeError: that number is closed by the time anyone could use it.
 */
export function withFoundSocketFd<T>(
  reader: PeerSecReader,
  socket: unknown,
  use: (fd: number) => T,
): T {
  if (typeof use !== "function") {
    throw new TypeError("withSocketFd needs a function to call with the fd");
  }
  const found = findFd(socket);
  checkFd(found.fd);
  let fd: number;
  try {
    fd = duplicateFd(reader, found.fd);
  } finally {
    // Deno's TCP sockets hand out a duplicate already: ours replaces it.
    if (found.duplicate) closeOwn(reader, found.fd);
  }
  let result: T;
  try {
    result = use(fd);
  } catch (error) {
    closeOwn(reader, fd);
    throw error;
  }
  if (!isThenable(result)) {
    closeOwn(reader, fd);
    if (result === fd) throw returnedDuplicate(fd);
    return result;
  }
  // Settled through then(), not finally(): a thenable need not have finally,
  // and a failing close must not turn the callback's success into a rejection.
  return Promise.resolve(result).then(
    (value) => {
      closeOwn(reader, fd);
      if (value === fd) throw returnedDuplicate(fd);
      return value;
    },
    (error) => {
      closeOwn(reader, fd);
      throw error;
    },
  ) as T;
}
