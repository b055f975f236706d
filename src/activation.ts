/**
 * systemd-style socket activation: the listening sockets a service manager
 * passed to this process (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`; the
 * fds start at 3), as sd_listen_fds(3) reads them.
 *
 * @module
 */
import { PeerSecError } from "./errors.ts";

/** The first passed fd: SD_LISTEN_FDS_START. */
export const LISTEN_FDS_START = 3;
const VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

/** One listening socket passed by the service manager. */
export interface ListenFd {
  /** The fd (3, 4, …). */
  fd: number;
  /** Its name from `LISTEN_FDNAMES` (systemd's `FileDescriptorName=`), or `"unknown"`. */
  name: string;
}

interface Environment {
  get(name: string): string | undefined;
  delete(name: string): void;
  pid: number;
}

/** process.env, or Deno's env after checking the permission without prompting. */
function environment(): Environment {
  const deno = (globalThis as unknown as {
    Deno?: {
      pid: number;
      env: {
        get(name: string): string | undefined;
        delete(name: string): void;
      };
      permissions: {
        querySync(descriptor: { name: "env"; variable: string }): {
          state: string;
        };
      };
    };
  }).Deno;
  if (deno !== undefined) {
    for (const variable of VARIABLES) {
      if (
        deno.permissions.querySync({ name: "env", variable }).state !==
          "granted"
      ) {
        throw new PeerSecError(
          `Deno needs --allow-env=${
            VARIABLES.join(",")
          } to read socket activation`,
          { code: "ERR_ENV_PERMISSION" },
        );
      }
    }
    return {
      get: (name) => deno.env.get(name),
      delete: (name) => deno.env.delete(name),
      pid: deno.pid,
    };
  }
  const process = (globalThis as {
    process: { env: Record<string, string | undefined>; pid: number };
  }).process;
  return {
    get: (name) => process.env[name],
    delete: (name) => delete process.env[name],
    pid: process.pid,
  };
}

/** See `listenFds` in mod.ts. */
export function readListenFds(
  options: { unsetEnvironment?: boolean } = {},
): ListenFd[] {
  if (options === null || typeof options !== "object") {
    throw new TypeError("listenFds takes an options object");
  }
  const env = environment();
  const pid = env.get("LISTEN_PID");
  const count = env.get("LISTEN_FDS");
  const names = env.get("LISTEN_FDNAMES");
  if (options.unsetEnvironment === true) {
    for (const variable of VARIABLES) env.delete(variable);
  }
  // Not for this process (a parent's variables leaked to a child), or none.
  if (pid === undefined || count === undefined) return [];
  if (!/^[1-9]\d*$/.test(pid)) {
    throw new PeerSecError(`LISTEN_PID is not a pid: ${JSON.stringify(pid)}`, {
      code: "ERR_INVALID_ENVIRONMENT",
    });
  }
  if (Number(pid) !== env.pid) return [];
  if (!/^\d+$/.test(count) || Number(count) > 65536) {
    throw new PeerSecError(
      `LISTEN_FDS is not a count of fds: ${JSON.stringify(count)}`,
      { code: "ERR_INVALID_ENVIRONMENT" },
    );
  }
  const nameList = names === undefined ? [] : names.split(":");
  return Array.from({ length: Number(count) }, (_, index) => ({
    fd: LISTEN_FDS_START + index,
    name: nameList[index] || "unknown",
  }));
}
