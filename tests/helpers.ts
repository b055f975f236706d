// Real sockets and processes for the backend tests, in whichever runtime
// runs the suite.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultReader } from "../ffi/default_reader.ts";
import { detectRuntime } from "../ffi/runtime.ts";

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
 * The machine's Python, by absolute path: a PATH lookup may find a shim in a
 * home directory that another uid cannot enter.
 */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** A child process whose end is always observed, and bounded in time. */
export interface ClientProcess {
  /** Its pid. */
  readonly pid: number;
  /** Settles when it exits (or is killed at its deadline). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** `promise`, unless the process exits or its deadline passes first. */
  racing<T>(promise: Promise<T>): Promise<T>;
  /** Kills it if it still runs, and waits for its end. */
  stop(): Promise<void>;
  /** What it printed so far (with `capture: true`). */
  stdout(): string;
}

/**
 * Spawns a process that cannot hang a test: it is killed after `timeoutMs`,
 * and `racing` turns "it died before doing its part" into a failure instead
 * of a wait forever.
 */
export function startProcess(
  command: string,
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    timeoutMs?: number;
    capture?: boolean;
  } = {},
): ClientProcess {
  const child = spawn(command, args, {
    stdio: ["ignore", options.capture ? "pipe" : "ignore", "inherit"],
    env: options.env ?? { ...process.env, NO_COLOR: "1" },
  });
  let output = "";
  child.stdout?.on("data", (chunk) => output += chunk);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    (resolve) => {
      child.once("error", () => resolve({ code: null, signal: "spawn-error" }));
      child.once("exit", (code, signal) => resolve({ code, signal }));
    },
  ).finally(() => clearTimeout(deadline));
  return {
    pid: child.pid ?? -1,
    exited,
    racing<T>(promise: Promise<T>): Promise<T> {
      const died = exited.then(({ code, signal }) => {
        throw new Error(
          `${command} ${
            args.join(" ")
          } ended (exit ${code}, signal ${signal}) ` +
            "before the test got what it waited for",
        );
      });
      died.catch(() => {}); // only a failure if it wins the race
      return Promise.race([promise, died]);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
      }
      await exited;
    },
    stdout: () => output,
  };
}

/**
 * Listens on a fresh UNIX socket path, starts a client in a separate process,
 * and calls `use` with the accepted connection's fd and the client's pid.
 * With `prefix` (e.g. setpriv, to run as another user) the client is a Python
 * script copied next to the socket, so that the other user can read and run
 * it wherever the repository lives.
 */
export async function withClientProcessConnection<T>(
  use: (fd: number, clientPid: number) => T | Promise<T>,
  options: { prefix?: string[] } = {},
): Promise<T> {
  const directory = mkdtempSync(join(tmpdir(), "peersec-test-"));
  // A client started under another uid must reach the socket and its script.
  chmodSync(directory, 0o755);
  const path = join(directory, "server.sock");
  const server = net.createServer();
  let client: ClientProcess | undefined;
  try {
    const accepted = new Promise<net.Socket>((resolve, reject) => {
      server.once("connection", resolve);
      server.once("error", reject);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    chmodSync(path, 0o777);
    let command: string[];
    if (options.prefix) {
      const script = join(directory, "unix_client.py");
      copyFileSync(fixture("unix_client.py"), script);
      chmodSync(script, 0o644);
      command = [...options.prefix, SYSTEM_PYTHON, script, path];
    } else {
      command = runtimeCommand(fixture("unix_client.mjs"), [path]);
    }
    client = startProcess(command[0], command.slice(1));
    const socket = await client.racing(accepted);
    await client.racing(
      new Promise((resolve) => socket.once("data", resolve)),
    );
    let result: T;
    try {
      result = await use(netSocketFd(socket), client.pid);
    } finally {
      socket.end();
    }
    const { code } = await client.exited;
    assert.equal(code, 0, `client process exited with ${code}`);
    return result;
  } finally {
    await client?.stop();
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
