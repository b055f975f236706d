// Real sockets and processes for the backend tests, in whichever runtime
// runs the suite.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultReader } from "../src/default_reader.ts";
import { detectRuntime } from "../src/runtime.ts";

/**
 * The repository's root: the nearest folder above this file with deno.json.
 * The same whether the suite runs from source or from the npm build's JS.
 */
export const repoRoot: string = (() => {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, "deno.json"))) {
    const parent = dirname(directory);
    if (parent === directory) throw new Error("no deno.json above the tests");
    directory = parent;
  }
  return directory;
})();

/** A test fixture (always the source one: Deno and Bun run it as it is). */
export const fixture = (name: string): string =>
  join(repoRoot, "tests", "fixtures", name);

/** A dev tool installed by `npm install` (deno, bun, …). */
export const binary = (name: string): string =>
  join(repoRoot, "node_modules", ".bin", name);

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
  options: { prefix?: string[] } = {},
): Promise<T> {
  const directory = mkdtempSync(join(tmpdir(), "peersec-test-"));
  // A client started under another uid must reach the socket and have a
  // writable home (Deno keeps a cache there).
  chmodSync(directory, 0o777);
  const path = join(directory, "server.sock");
  const server = net.createServer();
  try {
    const accepted = new Promise<net.Socket>((resolve, reject) => {
      server.once("connection", resolve);
      server.once("error", reject);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    chmodSync(path, 0o777);
    const [command, ...args] = [
      ...(options.prefix ?? []),
      ...runtimeCommand(fixture("unix_client.mjs"), [path]),
    ];
    const env = options.prefix
      ? { ...process.env, HOME: directory, DENO_DIR: join(directory, "deno") }
      : process.env;
    const client = spawn(command, args, {
      stdio: ["ignore", "ignore", "inherit"],
      env,
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

/** A process's real/effective ids and groups from /proc/<pid>/status. */
export function procStatus(
  pid: number,
): { uid: number; gid: number; groups: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    status.match(new RegExp(`^${name}:[ \\t]*(.*)$`, "m"))![1].trim().split(
      /\s+/,
    )
      .filter((value) => value !== "").map(Number);
  // Uid:/Gid: list real, effective, saved, filesystem: SO_PEERCRED has the effective.
  return {
    uid: field("Uid")[1],
    gid: field("Gid")[1],
    groups: field("Groups"),
  };
}

/** Whether this process may change uid and groups (root). */
export const isRoot = (): boolean => procStatus(process.pid).uid === 0;

/**
 * A TCP connection on loopback in this process; calls `use` with the accepted
 * socket's fd. Deno exposes only a dup of a TCP socket's fd: it is closed here.
 */
export async function withTcpConnection<T>(
  use: (fd: number) => T | Promise<T>,
  closeDuplicate: (fd: number) => void,
): Promise<T> {
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) =>
    server.once("connection", resolve)
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, "127.0.0.1");
  const socket = await accepted;
  const handle = (socket as unknown as {
    _handle: { fd?: number; fdForIpc?: () => number };
  })._handle;
  const duplicate = typeof handle.fd === "number" && handle.fd >= 0
    ? undefined
    : handle.fdForIpc!();
  try {
    return await use(duplicate ?? handle.fd!);
  } finally {
    if (duplicate !== undefined) closeDuplicate(duplicate);
    socket.destroy();
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A connected AF_UNIX stream socketpair in this process, made through libc. */
export function socketPair(): [number, number] {
  const { AF_UNIX, SOCK_STREAM } = defaultReader.constants.socket;
  const fds = new Int32Array(2);
  const { rc, errno } = defaultReader.backend.socketpair(
    AF_UNIX,
    SOCK_STREAM,
    0,
    fds,
  );
  assert.equal(rc, 0, `socketpair failed, errno ${errno}`);
  return [fds[0], fds[1]];
}
