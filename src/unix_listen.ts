/**
 * Listening on a UNIX socket path with a file mode that is in effect before
 * anyone else can connect, without ever replacing a file that is already
 * there, and without ever changing a mode through a path another user can
 * redirect.
 *
 * How a socket file gets its mode (see docs/socket-files.md):
 *
 * 1. Every directory on the way to the socket, and every symlink followed to
 *    reach it, must be unchangeable by other users: owned by root or by this
 *    process's effective uid, and — for directories — not writable by group or
 *    others unless sticky (`/tmp`). This is OpenSSH's rule for the files it
 *    trusts, with the sticky exception a socket directory needs. Otherwise a
 *    {@linkcode PeerSecError} `ERR_UNSAFE_DIRECTORY` names the directory (or
 *    symlink) and why, and nothing is created. Only root and our own uid can
 *    change an entry that passed, so what was checked stays true.
 * 2. The socket is bound directly at the path, with the umask at 0o777 for
 *    the call to `server.listen()`: bind(2) creates the file with mode
 *    `0o777 & ~umask`, so it starts at 0 (only root, which ignores file
 *    modes, can connect). Node, Bun and Deno bind synchronously inside
 *    `listen()`, so the umask is restored as soon as `listen()` returns; a
 *    umask can only remove bits, so anything another thread creates in that
 *    window gets a tighter mode, never a looser one. The file is checked to
 *    be a socket with mode 0 afterwards; if a runtime ever binds later, the
 *    mode shows it and the listen fails (`ERR_SOCKET_MODE`) instead of
 *    having been reachable. bind(2) fails with `EADDRINUSE` on any existing
 *    name (a symlink too), so nothing is ever replaced.
 * 3. `chmod` by path gives it `mode`. In a directory chain nobody else can
 *    change, and with a name nobody else can remove or replace (ours, in a
 *    directory they cannot write or that is sticky), the path can only lead
 *    to our socket. The mode is read back (same inode, exact mode).
 *
 * Binding at the path itself (not in a staging directory) also means that
 * `ss -xlp`, `/proc/net/unix` and `curl -v` show the real path, and that
 * Deno's `--allow-net=unix:<path>` names it.
 *
 * Without a mode none of this happens: the socket is bound as
 * `server.listen(path)` would, with the process umask, and no directory is
 * checked (nothing is changed through the path).
 *
 * @module
 */
import {
  chmodSync,
  lstatSync,
  readlinkSync,
  type Stats,
  unlinkSync,
} from "node:fs";
import type { Server } from "node:net";
import process from "node:process";
import { PeerSecError } from "./errors.ts";

/** How many symlinks a path may pass through (Linux's own limit, MAXSYMLINKS). */
const SYMLINK_LIMIT = 40;

/** Checks a socket file mode argument: an integer from 0 to 0o777. */
export function checkSocketMode(mode: unknown): asserts mode is number {
  if (typeof mode !== "number") {
    throw new TypeError(
      `mode must be a number such as 0o660, got ${typeof mode}`,
    );
  }
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new RangeError(
      `mode must be a file mode from 0 to 0o777, got ${mode}`,
    );
  }
}

/**
 * `server.listen(...target)`, as a promise: resolves once it listens, rejects
 * with the runtime's error (`EADDRINUSE`, a permission error, …).
 */
export function listening(
  server: Server,
  target: string | { fd: number } | [port: number, hostname: string],
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    server.once("error", failed);
    const done = () => {
      server.off("error", failed);
      resolve();
    };
    if (Array.isArray(target)) server.listen(target[0], target[1], done);
    else server.listen(target, done);
  });
}

const octal = (mode: number): string =>
  `0o${mode.toString(8).padStart(3, "0")}`;

function unsafe(what: string, why: string): PeerSecError {
  return new PeerSecError(
    `${what} ${why}: another user could swap the socket for a symlink and ` +
      "have its mode set on a file they choose (with a mode, every directory " +
      "on the way must belong to root or to this process's user, and be " +
      "writable by no one else unless sticky, like /tmp)",
    { code: "ERR_UNSAFE_DIRECTORY" },
  );
}

/**
 * Refuses a socket path whose directory another user could change: each
 * directory from `/` to the one that will hold the socket, and each symlink
 * followed on the way, must be owned by root or by this process's effective
 * uid, and no such directory may be writable by group or others unless it is
 * sticky. Throws a {@linkcode PeerSecError} with code `ERR_UNSAFE_DIRECTORY`
 * naming the first directory or symlink that fails and why; the runtime's
 * error when a directory cannot be read (`ENOENT`, `EACCES`, Deno's
 * `NotCapable`); `ENOTDIR` / `ELOOP` as the kernel would.
 *
 * The path is walked as the kernel resolves it (`..` after a symlink is the
 * symlink target's parent); a relative path is taken from the current
 * directory.
 */
export function checkSocketDirectory(path: string): void {
  const uid = process.geteuid?.();
  if (uid === undefined) {
    throw new PeerSecError("this platform has no user ids to check", {
      code: "ERR_UNSAFE_DIRECTORY",
    });
  }
  const absolute = absolutePath(path);
  const directory = absolute.slice(0, absolute.lastIndexOf("/")) || "/";
  const trusted = (stats: Stats) => stats.uid === 0 || stats.uid === uid;
  const checkDirectory = (name: string, stats: Stats) => {
    if (!trusted(stats)) {
      throw unsafe(
        `the directory ${name}`,
        `belongs to uid ${stats.uid} (not root, not this process's uid ${uid})`,
      );
    }
    const sticky = (stats.mode & 0o1000) !== 0;
    if ((stats.mode & 0o022) !== 0 && !sticky) {
      const who = (stats.mode & 0o002) !== 0 ? "others" : "its group";
      throw unsafe(
        `the directory ${name}`,
        `is writable by ${who} (mode ${
          octal(stats.mode & 0o7777)
        }) and not sticky`,
      );
    }
  };

  checkDirectory("/", lstatSync("/"));
  let current = "/";
  const pending = directory.split("/");
  let symlinks = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "" || name === ".") continue;
    if (name === "..") {
      // `current` has no symlinks left in it: its parent is the real one,
      // and was checked on the way down.
      current = current.slice(0, current.lastIndexOf("/")) || "/";
      continue;
    }
    const next = current === "/" ? `/${name}` : `${current}/${name}`;
    const stats = lstatSync(next);
    if (stats.isSymbolicLink()) {
      if (!trusted(stats)) {
        throw unsafe(
          `the symlink ${next}`,
          `belongs to uid ${stats.uid} (not root, not this process's uid ${uid})`,
        );
      }
      if (++symlinks > SYMLINK_LIMIT) {
        throw new PeerSecError(
          `${directory}: more than ${SYMLINK_LIMIT} symlinks on the way`,
          { code: "ELOOP", syscall: "lstat" },
        );
      }
      const target = readlinkSync(next);
      pending.unshift(...target.split("/"));
      if (target.startsWith("/")) current = "/";
    } else if (stats.isDirectory()) {
      checkDirectory(next, stats);
      current = next;
    } else {
      throw new PeerSecError(`${next} is not a directory`, {
        code: "ENOTDIR",
        syscall: "lstat",
      });
    }
  }
}

/** `path` from `/`: relative ones are taken from the current directory. */
function absolutePath(path: string): string {
  if (path.startsWith("/")) return path;
  const cwd = process.cwd();
  return cwd === "/" ? `/${path}` : `${cwd}/${path}`;
}

/**
 * Makes `server` listen on `path` with `mode` (or the umask's mode when
 * undefined), never replacing an existing file. Resolves once the socket is
 * reachable at `path` with its mode; rejects with the runtime's error
 * (`EADDRINUSE` when `path` exists, `ENOENT` when its directory does not),
 * and, with a mode, with a {@linkcode PeerSecError} `ERR_UNSAFE_DIRECTORY`
 * when another user could change the way to it (see
 * {@linkcode checkSocketDirectory}) or `ERR_SOCKET_MODE` when the socket did
 * not come out with the mode it must have. With a mode, a relative `path` is
 * bound as the absolute path it names now.
 */
export async function listenOnPath(
  server: Server,
  path: string,
  mode: number | undefined,
): Promise<void> {
  if (mode === undefined) return await listening(server, path);
  checkSocketMode(mode);
  const absolute = absolutePath(path);
  checkSocketDirectory(absolute);
  await bindUnreachable(server, absolute);
  try {
    const bound = lstatSync(absolute);
    if (!bound.isSocket() || (bound.mode & 0o777) !== 0) {
      throw new PeerSecError(
        `${path}: the socket was not created with mode 0 under the umask ` +
          `set for its bind (found ${
            bound.isSocket() ? `mode ${octal(bound.mode & 0o777)}` : "no socket"
          }): this runtime does not bind within listen(), so the mode ` +
          "could not be in effect from the start",
        { code: "ERR_SOCKET_MODE" },
      );
    }
    chmodSync(absolute, mode);
    const changed = lstatSync(absolute);
    if (
      changed.ino !== bound.ino || changed.dev !== bound.dev ||
      (changed.mode & 0o777) !== mode
    ) {
      throw new PeerSecError(
        `${path}: the socket's mode reads ${
          octal(changed.mode & 0o777)
        } after setting ${octal(mode)}`,
        { code: "ERR_SOCKET_MODE" },
      );
    }
  } catch (error) {
    // Closing removes the socket file (every runtime unlinks it): in a
    // directory that passed the check, the name is still ours.
    server.close();
    throw error;
  }
}

/**
 * `server.listen({ path })` with the umask at 0o777 while it binds, so the
 * socket file is created with mode 0. `exclusive` keeps a Node cluster
 * worker from asking the primary process (and its umask) to bind.
 */
function bindUnreachable(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    server.once("error", failed);
    let previous: number;
    try {
      previous = process.umask(0o777);
    } catch (error) {
      // Deno without --allow-sys; a Node worker thread.
      server.off("error", failed);
      reject(error);
      return;
    }
    try {
      server.listen({ path, exclusive: true }, () => {
        server.off("error", failed);
        resolve();
      });
    } catch (error) {
      // Deno refuses a path its permissions do not grant here.
      server.off("error", failed);
      reject(error);
    } finally {
      process.umask(previous);
    }
  });
}

/** Whether `path` is a socket file (false when absent or anything else). */
export function isSocketFile(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Removes the socket file this process created at `path`, if still there. */
export function removeSocketFile(path: string): void {
  if (isSocketFile(path)) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}
