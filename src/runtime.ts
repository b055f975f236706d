/**
 * Which runtime this is, which machine, and opening libc with that runtime's
 * backend. This is the only module that looks at runtime globals.
 *
 * @module
 */
import type { LibcBackend } from "./backend.ts";
import {
  type ArchitectureConstants,
  architectureFamily,
  constantsFor,
} from "./constants.ts";
import { PeerSecError } from "./errors.ts";
import { openLibc as openDenoLibc } from "../ffi/deno.ts";
import { openLibc as openBunLibc } from "../ffi/bun.ts";
import {
  nodeFfi,
  openLibcWithKoffi,
  openLibcWithNodeFfi,
} from "../ffi/node.ts";

/** The runtimes the detector tells apart. */
export type RuntimeName = "deno" | "bun" | "node" | "unknown";

/** The environment variable that names the C library to open instead. */
export const LIBC_ENVIRONMENT_VARIABLE = "PEERSEC_LIBC";

interface RuntimeGlobals {
  Deno?: {
    version?: { deno?: string };
    build: { os: string; arch: string };
    env: { get(name: string): string | undefined };
    permissions?: {
      querySync?(descriptor: { name: "env"; variable: string }): {
        state: string;
      };
    };
    errors?: Record<string, new (...args: never[]) => Error>;
  };
  Bun?: unknown;
  process?: {
    platform?: string;
    arch?: string;
    versions?: Record<string, string | undefined>;
    env?: Record<string, string | undefined>;
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

/** Reads PEERSEC_LIBC without asking Deno for a permission the user did not give. */
function libcOverride(runtime: RuntimeName): string | undefined {
  if (runtime === "deno") {
    const deno = runtimeGlobals.Deno!;
    const state = deno.permissions?.querySync?.({
      name: "env",
      variable: LIBC_ENVIRONMENT_VARIABLE,
    }).state;
    if (state !== "granted") return undefined;
    return deno.env.get(LIBC_ENVIRONMENT_VARIABLE) || undefined;
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
  };
}

/**
 * Node's FFI: the built-in `node:ffi` where Node has it (26+), else koffi,
 * which the application installs (an optional peer dependency of the npm
 * package). A missing koffi is an error that says what to install.
 */
function nodeOpener(): (libraryPath: string) => LibcBackend {
  if (nodeFfi() !== undefined) return openLibcWithNodeFfi;
  return (libraryPath) => {
    try {
      return openLibcWithKoffi(libraryPath);
    } catch (error) {
      if ((error as { code?: string }).code === "MODULE_NOT_FOUND") {
        throw new PeerSecError(
          "peersec on Node before 26 needs koffi for FFI: run `npm install koffi` " +
            "(Node 26+ has node:ffi built in and needs nothing)",
          { code: "ERR_KOFFI_MISSING", cause: error },
        );
      }
      throw error;
    }
  };
}

function opener(
  runtime: RuntimeName,
): ((libraryPath: string) => LibcBackend) | undefined {
  if (runtime === "deno") return openDenoLibc;
  if (runtime === "bun") return openBunLibc;
  if (runtime === "node") return nodeOpener();
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
  const open = opener(runtime);
  if (open === undefined) {
    throw new PeerSecError(
      "peersec has no FFI backend for this runtime; it runs in Deno " +
        "(with --allow-ffi), Bun, and Node (node:ffi on 26+, koffi before)",
      { code: "ERR_UNSUPPORTED_RUNTIME" },
    );
  }
  const candidates = libcCandidates(environment.libcOverride, architecture);
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
