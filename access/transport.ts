/**
 * The kernel files the access checks read and write, behind a small
 * interface: the real one is node:fs (synchronous, the same in Deno, Bun and
 * Node), and tests give a fake that answers like a kernel would.
 *
 * The query files of SELinux (`/sys/fs/selinux/access`), AppArmor
 * (`.access`) and Smack (`access2`) are transaction files: the answer belongs
 * to the open file description that wrote the question. So a transaction is
 * one open, one `write()`, one `read()` on the same fd, and a close —
 * `writeFileSync` + `readFileSync` (two opens) would never see an answer.
 *
 * @module
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

/**
 * A failure of a kernel file: `code` is the errno name (`"ENOENT"`,
 * `"EACCES"`, …) and `syscall` the call that failed (`"open"`, `"write"`,
 * `"read"`).
 *
 * @example
 * ```ts
 * import { KernelFileError } from "@peersec/peersec/access";
 *
 * const error = new KernelFileError("/sys/fs/selinux/access", "write", "EACCES");
 * console.log(error.message); // write /sys/fs/selinux/access: EACCES
 * ```
 */
export class KernelFileError extends Error {
  /** The errno name, or `"UNKNOWN"`. */
  readonly code: string;
  /** `open`, `write` or `read`. */
  readonly syscall: string;
  /** The file. */
  readonly path: string;

  /**
   * Makes the error; the transports throw these.
   *
   * @param path The file.
   * @param syscall `open`, `write` or `read`.
   * @param code The errno name.
   */
  constructor(path: string, syscall: string, code: string) {
    super(`${syscall} ${path}: ${code}`);
    this.name = "KernelFileError";
    this.path = path;
    this.syscall = syscall;
    this.code = code;
  }
}

/** A file kept open for reads at an offset (the SELinux status page). */
export interface KernelFile {
  /**
   * Reads up to `buffer.length` bytes at `position` (a `pread`).
   *
   * @returns The number of bytes read.
   * @throws {KernelFileError} when the read fails.
   */
  readAt(buffer: Uint8Array, position: number): number;
  /** Closes the file; later reads fail. */
  close(): void;
}

/**
 * How the checks reach the kernel. Every method is synchronous and throws
 * {@linkcode KernelFileError} on failure.
 *
 * @example
 * ```ts
 * import { type KernelFiles, KernelFileError } from "@peersec/peersec/access";
 *
 * // A kernel without any LSM file: every open fails.
 * const nothing: KernelFiles = {
 *   open(path) {
 *     throw new KernelFileError(path, "open", "ENOENT");
 *   },
 *   transact(path) {
 *     throw new KernelFileError(path, "open", "ENOENT");
 *   },
 * };
 * ```
 */
export interface KernelFiles {
  /** Opens a file for reading. */
  open(path: string): KernelFile;
  /**
   * One transaction: open `path` read-write, write `request` in one
   * `write()`, read the reply with one `read()` of at most `maxReplyLength`
   * bytes on the same fd, close.
   *
   * @returns The reply's bytes.
   */
  transact(
    path: string,
    request: Uint8Array,
    maxReplyLength: number,
  ): Uint8Array;
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[A-Z][A-Z0-9_]*$/.test(code)) return code;
  // Deno without --allow-read / --allow-write for the file.
  const name = (error as { name?: unknown } | null)?.name;
  if (name === "NotCapable" || name === "PermissionDenied") {
    return "ERR_DENO_PERMISSION";
  }
  return "UNKNOWN";
}

function openFd(path: string, flags: string): number {
  try {
    return openSync(path, flags);
  } catch (error) {
    throw new KernelFileError(path, "open", codeOf(error));
  }
}

/**
 * The real kernel, through node:fs: one `openat`, `write`, `read` (`pread`
 * for {@linkcode KernelFile.readAt}) and `close` each, as measured with
 * strace in Deno, Bun and Node. Deno needs `--allow-read` and
 * `--allow-write` for the LSM's files and `/proc/self`; without them the
 * failures' code is `ERR_DENO_PERMISSION`.
 *
 * @example
 * ```ts
 * import { nodeKernelFiles } from "@peersec/peersec/access";
 *
 * const mounts = nodeKernelFiles.open("/proc/self/mounts");
 * const buffer = new Uint8Array(4096);
 * const length = mounts.readAt(buffer, 0);
 * mounts.close();
 * console.log(new TextDecoder().decode(buffer.subarray(0, length)));
 * ```
 */
export const nodeKernelFiles: KernelFiles = Object.freeze({
  open(path: string): KernelFile {
    let fd: number | null = openFd(path, "r");
    return {
      readAt(buffer: Uint8Array, position: number): number {
        if (fd === null) throw new KernelFileError(path, "read", "EBADF");
        try {
          return readSync(fd, buffer, 0, buffer.length, position);
        } catch (error) {
          throw new KernelFileError(path, "read", codeOf(error));
        }
      },
      close(): void {
        if (fd === null) return;
        const open = fd;
        fd = null;
        try {
          closeSync(open);
        } catch {
          // A close that fails has still released the fd (close(2)).
        }
      },
    };
  },
  transact(
    path: string,
    request: Uint8Array,
    maxReplyLength: number,
  ): Uint8Array {
    const fd = openFd(path, "r+");
    try {
      let written: number;
      try {
        written = writeSync(fd, request);
      } catch (error) {
        throw new KernelFileError(path, "write", codeOf(error));
      }
      if (written !== request.length) {
        throw new KernelFileError(path, "write", "ERR_SHORT_WRITE");
      }
      const reply = new Uint8Array(maxReplyLength);
      let length: number;
      try {
        length = readSync(fd, reply, 0, reply.length, null);
      } catch (error) {
        throw new KernelFileError(path, "read", codeOf(error));
      }
      return reply.subarray(0, length);
    } finally {
      try {
        closeSync(fd);
      } catch {
        // As above.
      }
    }
  },
});

/**
 * A whole small file (at most `limit` bytes; more is an error: kernel files
 * this code reads are small, and a bound keeps a strange one from costing
 * memory).
 */
export function readSmallFile(
  files: KernelFiles,
  path: string,
  limit: number,
): Uint8Array {
  const file = files.open(path);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = new Uint8Array(Math.min(65536, limit + 1 - total));
      const length = file.readAt(chunk, total);
      if (length === 0) break;
      chunks.push(chunk.subarray(0, length));
      total += length;
      if (total > limit) throw new KernelFileError(path, "read", "EFBIG");
    }
    const whole = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      whole.set(chunk, offset);
      offset += chunk.length;
    }
    return whole;
  } finally {
    file.close();
  }
}

/** The errno name of a failure, for decisions. */
export function failureCode(error: unknown): string {
  if (error instanceof KernelFileError) return error.code;
  return codeOf(error);
}

/** The system call of a failure, or "" when it is not a KernelFileError. */
export function failureSyscall(error: unknown): string {
  return error instanceof KernelFileError ? error.syscall : "";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A string from UTF-8 bytes, or null when they are not valid UTF-8. */
export function fromUtf8(bytes: Uint8Array): string | null {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}
