/**
 * The self-check: what this machine's kernel says about socket labels, on a
 * socketpair made in this process.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { PeerSecReader } from "./core.ts";
import { PeerSecError } from "./errors.ts";

/** What the self-check found. */
export interface SelfCheckReport {
  /** Runtime, OS and CPU architecture. */
  runtime: string;
  /** The C library that was opened, or null when none could be. */
  libraryPath: string | null;
  /** The FFI that opened it (`Deno.dlopen`, `bun:ffi`, `node:ffi`, `koffi`). */
  ffi: string | null;
  /** Active security modules from /sys/kernel/security/lsm, or null when unreadable. */
  securityModules: string[] | null;
  /**
   * Why /sys/kernel/security/lsm could not be read: `ENOENT` (securityfs is
   * not mounted there), `ERR_DENO_PERMISSION`, or another error code.
   */
  securityModulesError: string | null;
  /** This process's label from /proc/self/attr/current, or null with `processLabelError`. */
  processLabel: string | null;
  /**
   * Why /proc/self/attr/current could not be read: `EINVAL` (no security
   * module gives processes a label), `ERR_DENO_PERMISSION` (Deno reads it only
   * with --allow-all), or another error code.
   */
  processLabelError: string | null;
  /** What SO_PEERSEC returned for the socketpair: the label, or null. */
  socketLabel: string | null;
  /** The error code when SO_PEERSEC gave no label (`ENOPROTOOPT`, …). */
  socketError: { code: string; message: string } | null;
  /** True when SO_PEERSEC returned a label. */
  labelsAvailable: boolean;
  /** One sentence for a person. */
  verdict: string;
}

function readText(path: string): { text: string | null; error: string | null } {
  try {
    return {
      text: readFileSync(path, "utf8").replace(/\n$/, "").replace(/\0$/, ""),
      error: null,
    };
  } catch (error) {
    const { code, name } = error as { code?: string; name?: string };
    if (name === "NotCapable" || name === "PermissionDenied") {
      // Deno guards /proc/<pid>/attr/* behind --allow-all, not --allow-read.
      return { text: null, error: "ERR_DENO_PERMISSION" };
    }
    return { text: null, error: code ?? String(error) };
  }
}

/** Where the self-check runs, as the runtime layer describes it. */
export interface SelfCheckEnvironment {
  /** The detected runtime. */
  readonly runtime: string;
  /** The operating system. */
  readonly os: string;
  /** The CPU architecture. */
  readonly architecture: string;
}

/**
 * Runs the self-check through `reader`. Throws a `PeerSecError` only when the
 * library itself cannot run here (platform, runtime, libc, permission).
 */
export function selfCheck(
  reader: PeerSecReader,
  environment: SelfCheckEnvironment,
): SelfCheckReport {
  const lsm = readText("/sys/kernel/security/lsm");
  const processLabel = readText("/proc/self/attr/current");
  const report: SelfCheckReport = {
    runtime:
      `${environment.runtime} on ${environment.os} ${environment.architecture}`,
    libraryPath: null,
    ffi: null,
    securityModules: lsm.text === null
      ? null
      : lsm.text.split(",").filter((name) => name !== ""),
    securityModulesError: lsm.error,
    processLabel: processLabel.text,
    processLabelError: processLabel.error,
    socketLabel: null,
    socketError: null,
    labelsAvailable: false,
    verdict: "",
  };
  const { backend, constants } = reader;
  report.libraryPath = backend.libraryPath;
  report.ffi = backend.ffi;
  const fds = new Int32Array(2);
  const { AF_UNIX, SOCK_STREAM } = constants.socket;
  const made = backend.socketpair(AF_UNIX, SOCK_STREAM, 0, fds);
  if (made.rc !== 0) {
    throw new PeerSecError(
      `socketpair failed [${reader.errnoName(made.errno)}]`,
      {
        code: reader.errnoName(made.errno),
        errno: made.errno,
        syscall: "socketpair",
      },
    );
  }
  try {
    report.socketLabel = reader.getPeerSecurityContext(fds[0]);
    report.labelsAvailable = true;
    report.verdict = "labels available: SO_PEERSEC reports the peer's label";
  } catch (error) {
    if (!(error instanceof PeerSecError)) throw error;
    report.socketError = { code: error.code, message: error.message };
    report.verdict = error.code === "ENOPROTOOPT"
      ? "no LSM provides socket labels on this kernel"
      : error.code === "ERR_EMPTY_LABEL"
      ? "a security module answers, but with an empty label for this socket"
      : `SO_PEERSEC failed here: ${error.message}`;
  } finally {
    backend.close(fds[0]);
    backend.close(fds[1]);
  }
  return report;
}
