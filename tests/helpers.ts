// Real sockets and processes for the backend tests, in whichever runtime
// runs the suite.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectRuntime } from "../src/runtime.ts";

export const fixture = (name: string): string =>
  new URL(`./fixtures/${name}`, import.meta.url).pathname;

/** The command line that runs a JS file in the runtime running the tests. */
export function runtimeCommand(script: string, args: string[]): string[] {
  const runtime = detectRuntime();
  if (runtime === "deno") {
    return [process.execPath, "run", "--allow-all", script, ...args];
  }
  return [process.execPath, script, ...args];
}

/**
 * The label an independent source gives for a process: its
 * /proc/<pid>/attr/current, without the newline /proc adds (or a NUL). `null`
 * when the kernel refuses the read (no LSM provides the attribute).
 */
export function procAttrCurrent(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/attr/current`, "utf8")
      .replace(/\n$/, "")
      .replace(/\0$/, "");
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EINVAL" || code === "ENOENT" || code === "EOPNOTSUPP") {
      return null;
    }
    throw error;
  }
}

/** The OS fd of a node:net socket, where the runtime exposes it. */
export function netSocketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new Error(`this runtime exposes no fd for the socket (${fd})`);
  }
  return fd;
}

/**
 * Listens on a fresh UNIX socket path, starts a client in a separate process,
 * and calls `use` with the accepted connection's fd and the client's pid.
 */
export async function withClientProcessConnection<T>(
  use: (fd: number, clientPid: number) => T | Promise<T>,
): Promise<T> {
  const directory = mkdtempSync(join(tmpdir(), "peersec-test-"));
  const path = join(directory, "server.sock");
  const server = net.createServer();
  try {
    const accepted = new Promise<net.Socket>((resolve, reject) => {
      server.once("connection", resolve);
      server.once("error", reject);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const [command, ...args] = runtimeCommand(fixture("unix_client.mjs"), [
      path,
    ]);
    const client = spawn(command, args, {
      stdio: ["ignore", "ignore", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) =>
      client.once("exit", resolve)
    );
    const socket = await accepted;
    await new Promise((resolve) => socket.once("data", resolve));
    let result: T;
    try {
      result = await use(netSocketFd(socket), client.pid!);
    } finally {
      socket.end();
      await exited;
    }
    const code = await exited;
    assert.equal(code, 0, `client process exited with ${code}`);
    return result;
  } finally {
    await new Promise((resolve) => server.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  }
}
