/**
 * The runtime layer: which runtime this is, which machine, opening libc with
 * that runtime's backend, and reading the process environment — without ever
 * making Deno prompt. With the backends beside it, this folder is the only
 * place that looks at runtime globals; `src/` (the shared core) never does.
 *
 * @module
 */
import type { LibcBackend } from "../src/backend.ts";
import {
  type ArchitectureConstants,
  architectureFamily,
  constantsFor,
} from "../src/constants.ts";
import { PeerSecError } from "../src/errors.ts";
import type { PeerSecReader } from "../src/core.ts";
import type { ActivationEnvironment } from "../src/activation.ts";
import { pidfdInfo, readPeerPidfd } from "../src/identity.ts";
import { openLibc as openDenoLibc } from "./deno.ts";
import { openLibc as openBunLibc } from "./bun.ts";
import { nodeFfi, openLibcWithKoffi, openLibcWithNodeFfi } from "./node.ts";

/** The runtimes the detector tells apart. */
export type RuntimeName = "deno" | "bun" | "node" | "unknown";

/** The environment variable that names the C library to open instead. */
export const LIBC_ENVIRONMENT_VARIABLE = "PEERSEC_LIBC";

/** What Deno's permission API is asked here (never requested: queried). */
type PermissionDescriptor =
  | { name: "env"; variable: string }
  | { name: "ffi"; path?: string }
  | { name: "read"; path: string };

interface RuntimeGlobals {
  Deno?: {
    version?: { deno?: string };
    build: { os: string; arch: string };
    pid: number;
    env: {
      get(name: string): string | undefined;
      delete(name: string): void;
    };
    permissions?: {
      querySync?(descriptor: PermissionDescriptor): { state: string };
    };
    errors?: Record<string, new (...args: never[]) => Error>;
  };
  Bun?: unknown;
  process?: {
    platform?: string;
    arch?: string;
    versions?: Record<string, string | undefined>;
    env?: Record<string, string | undefined>;
    pid?: number;
    /** Node's permission model, when it runs under one. */
    permission?: unknown;
  };
}

const runtimeGlobals = globalThis as unknown as RuntimeGlobals;

/**
 * Detects the JavaScript runtime. Deno and Bun both also look like Node
 * (`process.versions.node`), so they are checked first, Deno before Bun.
 *
 * @example
 * ```ts
 * import { detectRuntime } from "./runtime.ts";
 * console.log(detectRuntime()); // "deno", "bun", "node" or "unknown"
 * ```
 */
export function detectRuntime(): RuntimeName {
  if (typeof runtimeGlobals.Deno?.version?.deno === "string") return "deno";
  if (
    runtimeGlobals.Bun !== undefined ||
    typeof runtimeGlobals.process?.versions?.bun === "string"
  ) return "bun";
  if (typeof runtimeGlobals.process?.versions?.node === "string") return "node";
  return "unknown";
}

/** The operating system name as the runtime reports it (`"linux"`, `"darwin"`, …). */
function operatingSystem(runtime: RuntimeName): string {
  if (runtime === "deno") return runtimeGlobals.Deno!.build.os;
  return runtimeGlobals.process?.platform ?? "unknown";
}

/** The CPU architecture name as the runtime reports it. */
function cpuArchitecture(runtime: RuntimeName): string {
  if (runtime === "deno") return runtimeGlobals.Deno!.build.arch;
  return runtimeGlobals.process?.arch ?? "unknown";
}

/** Whether Deno grants a permission, asked without ever prompting. */
function denoGrants(descriptor: PermissionDescriptor): boolean {
  return runtimeGlobals.Deno?.permissions?.querySync?.(descriptor).state ===
    "granted";
}

/** Reads PEERSEC_LIBC without asking Deno for a permission the user did not give. */
function libcOverride(runtime: RuntimeName): string | undefined {
  if (runtime === "deno") {
    if (!denoGrants({ name: "env", variable: LIBC_ENVIRONMENT_VARIABLE })) {
      return undefined;
    }
    return runtimeGlobals.Deno!.env.get(LIBC_ENVIRONMENT_VARIABLE) ||
      undefined;
  }
  return runtimeGlobals.process?.env?.[LIBC_ENVIRONMENT_VARIABLE] || undefined;
}

/**
 * The names tried, in order: the override alone when set; else glibc's
 * `libc.so.6`, then musl's (`libc.musl-<arch>.so.1`, and `libc.so`, which is
 * musl itself on musl systems and a linker script that fails on glibc ones).
 */
export function libcCandidates(
  override: string | undefined,
  architecture: string,
): string[] {
  if (override !== undefined) return [override];
  const muslArchitecture = architecture === "x64"
    ? "x86_64"
    : architecture === "arm64"
    ? "aarch64"
    : architecture;
  return ["libc.so.6", `libc.musl-${muslArchitecture}.so.1`, "libc.so"];
}

function isPermissionError(runtime: RuntimeName, error: unknown): boolean {
  if (runtime !== "deno") return false;
  const errors = runtimeGlobals.Deno!.errors ?? {};
  return [errors.NotCapable, errors.PermissionDenied].some((type) =>
    type !== undefined && error instanceof type
  );
}

/** An opened libc plus the kernel numbers of this machine. */
export interface Platform {
  /** The runtime's FFI backend. */
  readonly backend: LibcBackend;
  /** The kernel constants for this CPU architecture. */
  readonly constants: ArchitectureConstants;
}

/**
 * Deno's dlopen prompts on a terminal when the flag does not cover the
 * library, which would block a server's event loop on its first connection:
 * peersec asks the permission API first and refuses on its own, naming the
 * flag that is missing.
 */
function refuseWithoutFfiPermission(
  candidates: string[],
  allowed: (path: string) => boolean,
): void {
  if (candidates.some(allowed)) return;
  const names = candidates.join(", ");
  // Deno's query does not say whether --allow-ffi was given for other paths,
  // so a restricted flag and none look alike: name both fixes.
  const message =
    denoGrants({ name: "env", variable: LIBC_ENVIRONMENT_VARIABLE })
      ? `Deno does not allow FFI for ${names}: run with --allow-ffi, or set ` +
        `${LIBC_ENVIRONMENT_VARIABLE} to the libc path that --allow-ffi names`
      : `Deno does not allow FFI for ${names}: run with --allow-ffi; or, if ` +
        `--allow-ffi names libc's path and ${LIBC_ENVIRONMENT_VARIABLE} is ` +
        `set to it, add --allow-env=${LIBC_ENVIRONMENT_VARIABLE} so that ` +
        "peersec can read it";
  throw new PeerSecError(
    `${message} (peersec calls getsockopt in libc; it never asks at a prompt)`,
    { code: "ERR_FFI_PERMISSION" },
  );
}

/** What `openPlatform` decides from; tests pass their own. */
export interface RuntimeEnvironment {
  /** The detected runtime. */
  readonly runtime: RuntimeName;
  /** The operating system, as the runtime names it. */
  readonly os: string;
  /** The CPU architecture, as the runtime names it. */
  readonly architecture: string;
  /** The value of PEERSEC_LIBC, when set and readable. */
  readonly libcOverride: string | undefined;
  /** Node only: PEERSEC_FFI (`koffi` or `node:ffi`), when set. */
  readonly ffiChoice?: string;
  /**
   * Deno only: whether `--allow-ffi` covers a library, asked without
   * prompting. Undefined elsewhere.
   */
  readonly denoFfiAllowed?: (path: string) => boolean;
}

/**
 * The environment of this process.
 *
 * @example
 * ```ts
 * import { currentEnvironment } from "./runtime.ts";
 * console.log(currentEnvironment().runtime);
 * ```
 */
export function currentEnvironment(): RuntimeEnvironment {
  const runtime = detectRuntime();
  return {
    runtime,
    os: operatingSystem(runtime),
    architecture: cpuArchitecture(runtime),
    libcOverride: libcOverride(runtime),
    ffiChoice: runtime === "node"
      ? runtimeGlobals.process?.env?.[FFI_ENVIRONMENT_VARIABLE] || undefined
      : undefined,
    denoFfiAllowed: runtime === "deno" ? denoFfiAllowed : undefined,
  };
}

function denoFfiAllowed(path: string): boolean {
  return denoGrants({ name: "ffi", path });
}

/**
 * The pidfd inode id of this process (what systemd puts in LISTEN_PIDFDID),
 * or null when it cannot be learned here: before Linux 6.5 (no
 * SO_PEERPIDFD), or in Deno without `--allow-all` (Deno guards
 * /proc/self/fdinfo behind it). sd_listen_fds then relies on LISTEN_PID
 * alone, and so does this.
 */
function ownPidfdId(reader: PeerSecReader): bigint | null {
  // A socketpair's peer is this process: SO_PEERPIDFD gives its pidfd
  // without a raw syscall, and /proc/self/fdinfo tells the pidfd's inode.
  const { AF_UNIX, SOCK_STREAM } = reader.constants.socket;
  const fds = new Int32Array(2);
  if (reader.backend.socketpair(AF_UNIX, SOCK_STREAM, 0, fds).rc !== 0) {
    return null;
  }
  let pidfd = -1;
  try {
    pidfd = readPeerPidfd(reader, fds[0]);
    return pidfdInfo(pidfd, "ino");
  } catch {
    return null; // no SO_PEERPIDFD (before Linux 6.5)
  } finally {
    if (pidfd >= 0) reader.backend.close(pidfd);
    reader.backend.close(fds[0]);
    reader.backend.close(fds[1]);
  }
}

/**
 * The process environment for socket activation: `process.env`, or Deno's
 * env after checking the permission without prompting.
 *
 * @example
 * ```ts
 * import { activationEnvironment } from "./runtime.ts";
 * import { defaultReader } from "./default_reader.ts";
 * console.log(activationEnvironment(defaultReader, ["LISTEN_PID"]).pid);
 * ```
 */
export function activationEnvironment(
  reader: PeerSecReader,
  variables: readonly string[],
): ActivationEnvironment {
  const deno = runtimeGlobals.Deno;
  if (detectRuntime() === "deno" && deno !== undefined) {
    for (const variable of variables) {
      if (!denoGrants({ name: "env", variable })) {
        throw new PeerSecError(
          `Deno needs --allow-env=${
            variables.join(",")
          } to read socket activation`,
          { code: "ERR_ENV_PERMISSION" },
        );
      }
    }
    return {
      get: (name) => deno.env.get(name),
      delete: (name) => deno.env.delete(name),
      pid: deno.pid,
      ownPidfdId: () => ownPidfdId(reader),
    };
  }
  const process = runtimeGlobals.process!;
  const env = process.env!;
  return {
    get: (name) => env[name],
    delete: (name) => delete env[name],
    pid: process.pid!,
    ownPidfdId: () => ownPidfdId(reader),
  };
}

/** The environment variable that picks Node's FFI: `koffi` or `node:ffi`. */
export const FFI_ENVIRONMENT_VARIABLE = "PEERSEC_FFI";

/** The fields Node puts on the errors it throws. */
interface NodeError {
  code?: string;
  message?: string;
  permission?: string;
  resource?: string;
}

const isModuleNotFound = (error: unknown) =>
  (error as NodeError).code === "MODULE_NOT_FOUND";

/**
 * koffi itself is not installed (rather than installed but unable to load one
 * of its own files): Node's resolver names the module it could not find.
 */
const isKoffiNotInstalled = (error: unknown) =>
  isModuleNotFound(error) &&
  /^Cannot find module 'koffi'/.test((error as NodeError).message ?? "");

function koffiMissing(cause: unknown, nodeVersion: string): PeerSecError {
  // Name the runtime that ran: a Bun user reaches Node through `bunx`, whose
  // default is the bin's #!/usr/bin/env node.
  const execPath = (globalThis as { process?: { execPath?: string } }).process
    ?.execPath;
  return new PeerSecError(
    `this is Node ${nodeVersion}${execPath ? ` (${execPath})` : ""}, which ` +
      "needs koffi for FFI: run `npm install koffi` " +
      "(Node 26+ also has node:ffi built in, which needs nothing; Bun and " +
      "Deno need neither — with bunx, run `bunx --bun peersec`)",
    // Node's "Cannot find module 'koffi'" (and its require stack, a dozen
    // lines under an uncaught error) says nothing the message does not; a
    // koffi that is there but broken keeps its cause.
    {
      code: "ERR_KOFFI_MISSING",
      cause: isKoffiNotInstalled(cause) ? undefined : cause,
    },
  );
}

/**
 * What Node's own options refused, told by the error Node threw (its
 * `process.permission.has("addon")` answers false in Node 20 even with
 * --allow-addons, and `has("ffi")` is false before 26 whatever the flags):
 * `ERR_DLOPEN_DISABLED` when loading koffi's native addon is refused (the
 * permission model without --allow-addons, or --no-addons), and
 * `ERR_ACCESS_DENIED` with `permission: "FFI"` (node:ffi without --allow-ffi)
 * or `"FileSystemRead"` (koffi's files outside --allow-fs-read).
 */
function nodeRefusal(
  error: unknown,
): "addons" | "ffi" | "read" | undefined {
  const { code, permission } = (error ?? {}) as NodeError;
  if (code === "ERR_DLOPEN_DISABLED") return "addons";
  if (code !== "ERR_ACCESS_DENIED") return undefined;
  if (permission === "FFI") return "ffi";
  if (permission === "FileSystemRead") return "read";
  return undefined;
}

/**
 * `ERR_NODE_PERMISSION`: Node refuses the FFI peersec needs, and the message
 * names the flag that allows it in this Node. No cause: Node's error says
 * less, and its code is named in the message.
 */
function nodePermissionError(
  refused: "addons" | "ffi" | "read",
  error: unknown,
  nodeVersion: string,
  choice: string | undefined,
  offerKoffi: boolean,
): PeerSecError {
  const { code, resource } = error as NodeError;
  const version = `Node ${nodeVersion}`;
  const koffi = choice === "koffi"
    ? `koffi, which ${FFI_ENVIRONMENT_VARIABLE}=koffi asks for,`
    : "koffi, which peersec uses for FFI before Node 26,";
  let message: string;
  if (refused === "ffi") {
    const also = choice === undefined && offerKoffi
      ? ", or --allow-addons (to use koffi, which is installed)"
      : choice === "node:ffi"
      ? ` (${FFI_ENVIRONMENT_VARIABLE}=node:ffi asks for node:ffi)`
      : "";
    message = `${version}'s permission model refuses FFI (${code}), which ` +
      `peersec needs to call getsockopt in libc: run Node with --allow-ffi` +
      also;
  } else if (refused === "read") {
    const directory = /^(.*\/node_modules\/koffi)(\/|$)/.exec(resource ?? "")
      ?.[1] ?? resource ?? "koffi's directory";
    message = `${version}'s permission model refuses reading ` +
      `${resource ?? "koffi's files"} (${code}), and ${koffi} is there: ` +
      `add --allow-fs-read=${directory} (with --allow-addons)`;
  } else if (runtimeGlobals.process?.permission !== undefined) {
    message = `${version}'s permission model refuses native addons ` +
      `(${code}), and ${koffi} is one: run Node with --allow-addons` +
      (Number(nodeVersion.split(".")[0]) < 26
        ? " (--allow-ffi is Node 26's flag, for node:ffi: this Node rejects it)"
        : "");
  } else {
    message = `${version} runs with --no-addons, which refuses native ` +
      `addons (${code}), and ${koffi} is one: run Node without --no-addons`;
  }
  return new PeerSecError(message, {
    code: "ERR_NODE_PERMISSION",
  });
}

/**
 * Node's FFI. koffi (an optional peer dependency the application installs)
 * when it is installed: on Node 26 it measured faster than the built-in
 * `node:ffi` (the credentials call without the kernel, `npm run bench`:
 * 113 vs 369 ns here; with it 1654 vs 2514 ns) and prints no
 * ExperimentalWarning. Otherwise `node:ffi` where Node has it
 * (26+), also when koffi is installed but Node refuses native addons
 * (`--permission` with `--allow-ffi` but not `--allow-addons`, or
 * `--no-addons`). `PEERSEC_FFI=koffi` or `=node:ffi` forces one. With
 * neither, the error says what to install; when Node's options refuse FFI,
 * `ERR_NODE_PERMISSION` says which flag allows it.
 */
function nodeOpener(
  choice: string | undefined,
): (libraryPath: string) => LibcBackend {
  const nodeVersion = runtimeGlobals.process?.versions?.node ?? "?";
  if (choice !== undefined && choice !== "koffi" && choice !== "node:ffi") {
    throw new PeerSecError(
      `${FFI_ENVIRONMENT_VARIABLE} must be "koffi" or "node:ffi", got ${
        JSON.stringify(choice)
      }`,
      { code: "ERR_INVALID_ENVIRONMENT" },
    );
  }
  // Asking for node:ffi loads it, and loading it prints Node's
  // ExperimentalWarning: ask only when it is the one to use.
  const builtIn = () => nodeFfi() !== undefined;
  const openWithNodeFfi = (libraryPath: string, offerKoffi: boolean) => {
    try {
      return openLibcWithNodeFfi(libraryPath);
    } catch (error) {
      if (nodeRefusal(error) !== "ffi") throw error;
      throw nodePermissionError(
        "ffi",
        error,
        nodeVersion,
        choice,
        offerKoffi,
      );
    }
  };
  if (choice === "node:ffi") {
    if (!builtIn()) {
      throw new PeerSecError(
        `${FFI_ENVIRONMENT_VARIABLE}=node:ffi, but Node ${nodeVersion} has no ` +
          "node:ffi (it needs Node 26+, without --no-experimental-ffi)",
        { code: "ERR_NODE_FFI_MISSING" },
      );
    }
    return (libraryPath) => openWithNodeFfi(libraryPath, false);
  }
  return (libraryPath) => {
    try {
      return openLibcWithKoffi(libraryPath);
    } catch (error) {
      const refused = nodeRefusal(error);
      if (!isModuleNotFound(error) && refused === undefined) throw error;
      if (choice === undefined && builtIn()) {
        // koffi is offered as the other fix only where Node refused
        // nothing but its addon.
        return openWithNodeFfi(libraryPath, refused === "addons");
      }
      if (refused !== undefined) {
        throw nodePermissionError(refused, error, nodeVersion, choice, true);
      }
      throw koffiMissing(error, nodeVersion);
    }
  };
}

function opener(
  runtime: RuntimeName,
  ffiChoice: string | undefined,
): ((libraryPath: string) => LibcBackend) | undefined {
  if (runtime === "deno") return openDenoLibc;
  if (runtime === "bun") return openBunLibc;
  if (runtime === "node") return nodeOpener(ffiChoice);
  return undefined;
}

/**
 * Checks the platform, picks the backend for the runtime and opens libc.
 * Throws a {@linkcode PeerSecError} that says what to do when any step fails.
 *
 * @example
 * ```ts
 * import { openPlatform } from "./runtime.ts";
 * const { backend, constants } = openPlatform();
 * ```
 */
export function openPlatform(
  environment: RuntimeEnvironment = currentEnvironment(),
): Platform {
  const { runtime, os, architecture } = environment;
  if (os !== "linux") {
    throw new PeerSecError(
      `peersec works on Linux only (SO_PEERSEC is a Linux socket option); this is ${os}`,
      { code: "ERR_UNSUPPORTED_PLATFORM" },
    );
  }
  const open = opener(runtime, environment.ffiChoice);
  if (open === undefined) {
    throw new PeerSecError(
      "peersec has no FFI backend for this runtime; it runs in Deno " +
        "(with --allow-ffi), Bun, and Node (node:ffi on 26+, koffi before)",
      { code: "ERR_UNSUPPORTED_RUNTIME" },
    );
  }
  const candidates = libcCandidates(environment.libcOverride, architecture);
  if (runtime === "deno" && environment.denoFfiAllowed !== undefined) {
    refuseWithoutFfiPermission(candidates, environment.denoFfiAllowed);
  }
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      return {
        backend: open(candidate),
        constants: constantsFor(architectureFamily(architecture)),
      };
    } catch (error) {
      if (error instanceof PeerSecError) throw error;
      if (isPermissionError(runtime, error)) {
        throw new PeerSecError(
          `Deno refused to load ${candidate}: run with --allow-ffi ` +
            `(peersec calls getsockopt in libc)`,
          { code: "ERR_FFI_PERMISSION", cause: error },
        );
      }
      firstError ??= error;
    }
  }
  throw new PeerSecError(
    `could not load the C library (tried ${candidates.join(", ")}); ` +
      `set ${LIBC_ENVIRONMENT_VARIABLE} to its path`,
    { code: "ERR_LIBC_LOAD", cause: firstError },
  );
}
