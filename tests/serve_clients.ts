// Clients for the server tests, each a separate process: curl, a Python
// HTTP client (http.client, keep-alive or not), and a raw Python client that
// sends exactly the bytes it is told. Run under other uids with setpriv.
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixture, isRoot, startProcess, SYSTEM_PYTHON } from "./helpers.ts";

/**
 * A directory other users can enter, with both Python clients copied in:
 * `client` (http_client.py), `rawClient` (raw_http_client.py), and `path`
 * for a socket.
 */
export function workspace(): {
  directory: string;
  client: string;
  rawClient: string;
  path: string;
} {
  const directory = mkdtempSync(join(tmpdir(), "peersec-serve-"));
  chmodSync(directory, 0o755);
  const copy = (name: string) => {
    const file = join(directory, name);
    copyFileSync(fixture(name), file);
    chmodSync(file, 0o644);
    return file;
  };
  return {
    directory,
    client: copy("http_client.py"),
    rawClient: copy("raw_http_client.py"),
    path: join(directory, "http.sock"),
  };
}

/** `setpriv` as another user, when this is root (else nothing). */
export const asUser = (uid: number, groups = ""): string[] =>
  isRoot()
    ? [
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${uid}`,
      groups ? `--groups=${groups}` : "--clear-groups",
      "--",
    ]
    : [];

/** What the Python HTTP client reports. */
export interface ClientResult {
  pid: number;
  uid: number;
  responses: {
    status: number;
    headers: [string, string][];
    body?: string;
    sha256?: string;
    length?: number;
  }[];
}

/** Runs the Python client (optionally as another user); resolves to its report. */
export async function python(
  client: string,
  path: string,
  spec: unknown,
  prefix: string[] = [],
): Promise<ClientResult> {
  const command = [
    ...prefix,
    SYSTEM_PYTHON,
    client,
    path,
    JSON.stringify(spec),
  ];
  const child = startProcess(command[0], command.slice(1), {
    capture: true,
    timeoutMs: 120_000,
  });
  const { code } = await child.exited;
  assert.equal(code, 0, `the client failed: ${child.stdout()}`);
  return JSON.parse(child.stdout());
}

/** Runs curl; resolves to its pid, exit code and output. */
export async function curl(
  args: string[],
  prefix: string[] = [],
): Promise<{ pid: number; code: number | null; stdout: string }> {
  const command = [...prefix, "curl", "-sS", ...args];
  const child = startProcess(command[0], command.slice(1), { capture: true });
  const { code } = await child.exited;
  return { pid: child.pid, code, stdout: child.stdout() };
}

/** What the raw client reports. */
export interface RawResult {
  /** Per connection, ms until the server closed it (null: still open). */
  closed_after_ms: (number | null)[];
  received: string[];
  responses: ([number, [string, string][], string | null] | null)[];
}

/** One step of the raw client. */
export type RawStep =
  | { send: string }
  | { sleep: number }
  | { read_response: true }
  | { read_until_close: true };

/** Runs the raw client; resolves to its report. */
export async function raw(
  client: string,
  target: string,
  spec: { connections?: number; steps: RawStep[]; hold_ms?: number },
  prefix: string[] = [],
): Promise<RawResult> {
  const command = [
    ...prefix,
    SYSTEM_PYTHON,
    client,
    target,
    JSON.stringify(spec),
  ];
  const child = startProcess(command[0], command.slice(1), {
    capture: true,
    timeoutMs: 60_000,
  });
  const { code } = await child.exited;
  assert.equal(code, 0, `the raw client failed: ${child.stdout()}`);
  return JSON.parse(child.stdout());
}
