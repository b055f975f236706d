/**
 * Listening on a UNIX socket path with a file mode set before anyone can
 * connect, and without ever replacing a file that is already there.
 *
 * bind(2) creates the socket file with the process umask; a chmod afterwards
 * leaves a window in which anyone the umask lets in can connect. So the socket
 * is bound inside a fresh directory only this process can enter (0700, next
 * to the target so both are on one filesystem), given its mode there, and then
 * hard-linked to the target path: link(2) is atomic and fails with EEXIST
 * rather than replace what is there. Nobody can reach the socket until the
 * link exists, and then it already has its mode.
 *
 * @module
 */
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  rmSync,
  unlinkSync,
} from "node:fs";
import type { Server } from "node:net";
import { basename, dirname, join } from "node:path";

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

/**
 * Makes `server` listen on `path` with `mode` (or the umask's mode when
 * undefined), never replacing an existing file. Resolves once the socket is
 * reachable at `path`; rejects with the runtime's error (`EADDRINUSE` when
 * `path` exists, `ENOENT` when its directory does not).
 */
export async function listenOnPath(
  server: Server,
  path: string,
  mode: number | undefined,
): Promise<void> {
  if (mode === undefined) return await listening(server, path);
  // The private directory: mkdtemp makes it 0700.
  const privateDirectory = mkdtempSync(
    join(dirname(path), `.${basename(path)}.`),
  );
  const staging = join(privateDirectory, "socket");
  try {
    await listening(server, staging);
    chmodSync(staging, mode);
    linkSync(staging, path);
  } catch (error) {
    server.close();
    throw error;
  } finally {
    rmSync(privateDirectory, { recursive: true, force: true });
  }
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
