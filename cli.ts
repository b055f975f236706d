#!/usr/bin/env node
/**
 * The `peersec` command: who is on the other end of a UNIX socket.
 *
 *     peersec [self] [--json]        self-check on a socketpair in this process
 *     peersec probe <path> [--json]  connect and show the server side's identity
 *     peersec probe <host:port> [--json]  the same over TCP: the server's label
 *     peersec serve <path> [--mode 0660] [--json]  listen and show each client's identity
 *     peersec access <label> <METHOD> <path> [--json]  may a peer with this label make this request?
 *     peersec access --peer-of <path> <METHOD> <path> [--json]  …the process serving that socket?
 *     peersec --help | --version     this usage text, or the version
 *
 * Exit codes: 0 done; 1 the check or connection failed, or peersec cannot run
 * here (platform, runtime, libc, permission); 2 bad usage.
 *
 * @example
 * ```sh
 * deno run --allow-ffi --allow-read --allow-net jsr:@peersec/peersec/cli probe /run/dbus/system_bus_socket
 * npx peersec serve /tmp/who.sock --json
 * ```
 *
 * @module
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { defaultReader } from "./ffi/default_reader.ts";
import { currentEnvironment } from "./ffi/runtime.ts";
import { PeerSecError } from "./src/errors.ts";
import {
  describeNetworkPeer,
  describePeer,
  formatNetworkPeer,
  formatPeer,
} from "./src/peer_description.ts";
import { selfCheck, type SelfCheckReport } from "./src/self_check.ts";
import { borrowSocketFd, withFoundSocketFd } from "./src/socket_fd.ts";
import { listenOnPath, removeSocketFile } from "./src/unix_listen.ts";
import { VERSION } from "./src/version.ts";
import { createAccessChecker, createRequestAccess } from "./access.ts";
import type { AccessLsm } from "./access/decision.ts";

const USAGE = `usage: peersec [self] [--json]
       peersec probe <unix-socket-path | host:port | [ipv6]:port> [--json]
       peersec serve <unix-socket-path> [--mode 0660] [--json]
       peersec access <label | --peer-of unix-socket-path> <METHOD> <path>
                      [--lsm selinux|apparmor|smack] [--target context]
                      [--service name] [--object label] [--json]
       peersec --help | --version

  self      (default) what SO_PEERSEC returns on this machine: active
            security modules, this process's label, and a socketpair's peer
  probe     connect to a listening UNIX socket and print the identity of the
            process that serves it: pid, executable, uid, gid, groups, label;
            or connect over TCP (host:port, [::1]:port) and print the label
            labeled networking (NetLabel/CIPSO, labeled IPsec) delivered,
            if any (a path with a colon and no slash: write ./name)
  serve     listen on a new UNIX socket and print each client's identity as
            it connects (and send it to the client), until interrupted;
            --mode sets the socket file's permissions before anyone can
            connect (default: from the umask, e.g. 0755: only this user)
  access    ask the loaded SELinux, AppArmor or Smack policy whether a peer
            with this label (or the process serving a UNIX socket, with
            --peer-of) may make this HTTP request, as a peersec server with
            the access option asks it: SELinux the peersec_http class on
            --target (default: this process's context), AppArmor the path
            /peersec-http/<--service>/<METHOD><path>, Smack access to
            --object; exit 0 allowed, 1 denied (with the reason)
  --json    one JSON object (for serve: one per line) instead of text
  --help    show this help (also -h)
  --version show peersec's version (also -V)

exit codes: 0 done (access: allowed), 1 failed or denied (or peersec cannot
run here), 2 bad usage`;

/** A failure to report in one line (or one JSON object), with exit code 1. */
class CliFailure extends Error {
  /** An errno name (`ENOENT`, …) or an `ERR_…` code, for `--json`. */
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

/**
 * What JSON.stringify leaves raw (it escapes C0 controls and lone surrogates)
 * but a terminal obeys or lays out differently: DEL, the C1 controls (U+009B
 * is CSI), bidirectional marks, embeddings, overrides and isolates, and the
 * line and paragraph separators. A peer names its own executable and label.
 */
const RAW_FOR_TERMINAL =
  /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `value` as one line of JSON that is safe on a terminal: the characters of
 * {@linkcode RAW_FOR_TERMINAL} as `\uXXXX`, which JSON reads back as the same
 * characters (they can only occur inside strings).
 */
function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(
    RAW_FOR_TERMINAL,
    (character) =>
      `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** One JSON object for a failure: `--json` output is JSON whatever happens. */
function jsonError(code: string, message: string): string {
  return jsonLine({ error: code, message });
}

/** What a self-check's unreadable file means, in words that are true. */
function unreadable(path: string, code: string | null): string {
  return code === "ERR_DENO_PERMISSION"
    ? `unknown (Deno reads ${path} only with --allow-all)`
    : `unknown (${path}: ${code})`;
}

function formatReport(report: SelfCheckReport): string {
  const modules = report.securityModules !== null
    ? report.securityModules.join(", ") || "none"
    : report.securityModulesError === "ENOENT"
    ? "unknown (securityfs is not mounted at /sys/kernel/security)"
    : unreadable("/sys/kernel/security/lsm", report.securityModulesError);
  const label = report.processLabel ??
    (report.processLabelError === "EINVAL"
      ? "none (EINVAL: no security module gives processes a label here)"
      : unreadable("/proc/self/attr/current", report.processLabelError));
  return [
    `peersec self-check (${report.runtime}, ${report.libraryPath} via ${report.ffi})`,
    `  security modules:      ${modules}`,
    `  this process's label:  ${label}`,
    `  SO_PEERSEC on a socketpair: ${
      report.socketLabel ?? report.socketError?.code
    }`,
    `verdict: ${report.verdict}`,
  ].join("\n");
}

/** Plain words for the errors a person causes with a path. */
function pathFailure(path: string, error: unknown): CliFailure {
  const { code, name, message } = error as {
    code?: string;
    name?: string;
    message?: string;
  };
  if (name === "NotCapable" || name === "PermissionDenied") {
    return new CliFailure(
      `Deno needs --allow-net --allow-read --allow-write (and --allow-sys with --mode) for ${path}: ${message}`,
      "ERR_PERMISSION",
    );
  }
  // Deno reports a missing directory as EACCES: look before saying which.
  if (
    (code === "ENOENT" || code === "EACCES" || code === "EPERM") &&
    path.includes("/") && !existsSync(dirname(path))
  ) {
    return new CliFailure(
      `${path}: the directory ${dirname(path)} does not exist`,
      "ENOENT",
    );
  }
  const words: Record<string, string> = {
    ENOENT: "no such file or directory",
    EACCES: "permission denied",
    EPERM: "permission denied",
    ECONNREFUSED: "nothing is listening there",
    ENOTSOCK: "not a socket",
    EADDRINUSE: "already exists (remove it or choose another path)",
    ENOTDIR: "a part of the path is not a directory",
    ETIMEDOUT: "timed out connecting",
    ENAMETOOLONG: "path too long for a UNIX socket",
  };
  return new CliFailure(
    `${path}: ${words[code ?? ""] ?? message ?? code}`,
    code ?? "ERR_PATH",
  );
}

/** `host:port` or `[v6]:port` (never a path: those have a slash). */
function tcpTarget(operand: string): { host: string; port: number } | null {
  const match = /^\[([0-9A-Fa-f:.%\w]+)\]:(\d{1,5})$/.exec(operand) ??
    /^([^/:\[\]]+):(\d{1,5})$/.exec(operand);
  if (!match || Number(match[2]) > 65535) return null;
  return { host: match[1], port: Number(match[2]) };
}

/**
 * Connects to `target` (a UNIX socket path, or host and port), calls `use`
 * with the connected socket, and closes it. `operand` names the target in
 * errors; nothing waits more than 5 s for the connection.
 */
function connected<T>(
  target: string | { host: string; port: number },
  operand: string,
  use: (socket: net.Socket) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(
      typeof target === "string" ? { path: target } : target,
    );
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(pathFailure(operand, { code: "ETIMEDOUT" }));
    });
    socket.once("error", (error) => reject(pathFailure(operand, error)));
    socket.once("connect", () => {
      try {
        resolve(use(socket));
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
      }
    });
  });
}

async function probeTcp(
  target: { host: string; port: number },
  operand: string,
  json: boolean,
): Promise<void> {
  const peer = await connected(target, operand, (socket) =>
    // Deno keeps TCP fds to itself: withSocketFd's duplicate, closed after.
    withFoundSocketFd(
      defaultReader,
      socket,
      (fd) =>
        describeNetworkPeer(
          defaultReader,
          fd,
          socket.remoteAddress ?? target.host,
          socket.remotePort ?? target.port,
        ),
    ));
  console.log(json ? jsonLine(peer) : formatNetworkPeer(peer));
}

/** The identity of the process serving a UNIX socket. */
function serverOf(path: string) {
  return connected(path, path, (socket) =>
    // This side's peer credentials are the listen() caller's.
    describePeer(
      defaultReader,
      borrowSocketFd(defaultReader, socket),
      "listener",
    ));
}

async function probe(path: string, json: boolean): Promise<void> {
  const target = tcpTarget(path);
  if (target) return probeTcp(target, path, json);
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw pathFailure(path, error);
  }
  if (!stats.isSocket()) {
    throw new CliFailure(`${path}: not a socket`, "ENOTSOCK");
  }
  const peer = await serverOf(path);
  console.log(json ? jsonLine(peer) : formatPeer(peer));
}

function serve(
  path: string,
  json: boolean,
  mode: number | undefined,
): Promise<void> {
  let exists = true;
  try {
    statSync(path);
  } catch {
    exists = false;
  }
  if (exists) throw pathFailure(path, { code: "EADDRINUSE" });
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.on("error", () => {}); // a client that goes away is its business
      try {
        const peer = describePeer(
          defaultReader,
          borrowSocketFd(defaultReader, socket),
          "client",
        );
        console.log(json ? jsonLine(peer) : `${formatPeer(peer)}\n`);
        socket.end(jsonLine(peer) + "\n");
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const code = (error as { code?: string }).code ?? "ERR_CLIENT";
        if (json) console.log(jsonError(code, `a client: ${message}`));
        else console.error(`peersec: a client: ${message}`);
        socket.destroy();
      }
    });
    listenOnPath(server, path, mode).then(() => {
      console.error(
        `peersec: listening on ${path}${
          mode === undefined ? "" : ` (mode ${mode.toString(8)})`
        } (Ctrl-C to stop)`,
      );
    }, (error) => reject(pathFailure(path, error)));
    const stop = () => {
      server.close();
      removeSocketFile(path);
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** What `peersec access` is asked. */
interface AccessQuestion {
  label: string | null;
  method: string;
  path: string;
  lsm?: string;
  target?: string;
  service?: string;
  object?: string;
}

/** `peersec access`: the policy's decision; true when allowed. */
function access(question: AccessQuestion, json: boolean): boolean {
  const lsm = question.lsm ?? "auto";
  const checker = createAccessChecker({
    lsm: lsm as "auto" | AccessLsm,
    onAudit: "ignore", // a question from a shell, not an access
  });
  try {
    const requests = createRequestAccess(checker, {
      selinux: question.target === undefined ? {} : { target: question.target },
      apparmor: question.service === undefined
        ? {}
        : { service: question.service },
      smack: question.object === undefined ? {} : { object: question.object },
    });
    const decision = requests.check(
      question.label,
      question.method,
      question.path,
    );
    console.log(
      json
        ? jsonLine(decision)
        : `${decision.allowed ? "allowed" : "denied"}: ${decision.reason}` +
          `${
            decision.lsm === null ? "" : ` (${decision.lsm})`
          } — ${decision.detail}`,
    );
    return decision.allowed;
  } finally {
    checker.close();
  }
}

/** Runs the CLI with the given arguments; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  const json = args.includes("--json");
  let rest = args.filter((arg) => arg !== "--json");
  /** Takes `--name value` / `--name=value` out of `rest`. */
  const take = (name: string): string | undefined => {
    const at = rest.findIndex((arg) =>
      arg === `--${name}` || arg.startsWith(`--${name}=`)
    );
    if (at === -1) return undefined;
    const arg = rest[at];
    const separate = arg === `--${name}`;
    const value = separate ? rest[at + 1] ?? "" : arg.slice(name.length + 3);
    rest = rest.filter((_, index) =>
      index !== at && (!separate || index !== at + 1)
    );
    return value;
  };
  // --mode 0660 / --mode=0660 (serve): the socket file's permissions.
  const modeText = take("mode");
  const accessOptions = {
    peerOf: take("peer-of"),
    lsm: take("lsm"),
    target: take("target"),
    service: take("service"),
    object: take("object"),
  };
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (rest.includes("--version") || rest.includes("-V")) {
    console.log(
      json ? jsonLine({ version: VERSION }) : `peersec ${VERSION}`,
    );
    return 0;
  }
  const [command = "self", ...operands] = rest;
  const unknownOption = operands.find((arg) => arg.startsWith("-"));
  const usage = (problem: string) => {
    if (json) console.log(jsonError("ERR_USAGE", problem));
    else console.error(`peersec: ${problem}\n\n${USAGE}`);
    return 2;
  };
  if (unknownOption) return usage(`unknown option ${unknownOption}`);
  const accessOption = Object.entries(accessOptions).find(([, value]) =>
    value !== undefined
  );
  if (accessOption !== undefined && command !== "access") {
    return usage(
      `--${
        accessOption[0] === "peerOf" ? "peer-of" : accessOption[0]
      } is for access`,
    );
  }
  let mode: number | undefined;
  if (modeText !== undefined) {
    if (command !== "serve") return usage("--mode is for serve");
    if (!/^0?[0-7]{3}$/.test(modeText)) {
      return usage(
        `--mode takes an octal file mode such as 0660, got "${modeText}"`,
      );
    }
    mode = parseInt(modeText, 8);
  }
  try {
    if (command === "self" && operands.length === 0) {
      const report = selfCheck(defaultReader, currentEnvironment());
      console.log(json ? jsonLine(report) : formatReport(report));
    } else if (command === "probe" || command === "serve") {
      if (operands.length !== 1 || operands[0] === "") {
        return usage(
          command === "probe"
            ? "probe takes one UNIX socket path or host:port"
            : "serve takes one UNIX socket path",
        );
      }
      await (command === "probe"
        ? probe(operands[0], json)
        : serve(operands[0], json, mode));
    } else if (command === "access") {
      const wanted = accessOptions.peerOf === undefined ? 3 : 2;
      if (operands.length !== wanted || operands.some((operand) => !operand)) {
        return usage(
          "access takes <label> <METHOD> <path>, or --peer-of <socket> <METHOD> <path>",
        );
      }
      const { lsm } = accessOptions;
      if (
        lsm !== undefined && !["selinux", "apparmor", "smack"].includes(lsm)
      ) {
        return usage(`--lsm takes selinux, apparmor or smack, got "${lsm}"`);
      }
      const label = accessOptions.peerOf === undefined
        ? operands[0]
        : (await serverOf(accessOptions.peerOf)).label;
      const [method, path] = operands.slice(wanted - 2);
      const { target, service, object } = accessOptions;
      return access({ label, method, path, lsm, target, service, object }, json)
        ? 0
        : 1;
    } else {
      return usage(`unknown arguments: ${rest.join(" ")}`);
    }
    return 0;
  } catch (error) {
    if (error instanceof PeerSecError) {
      if (json) {
        console.log(jsonError(error.code, error.message));
      } else {
        console.error(`peersec: ${error.message} [${error.code}]`);
      }
      return 1;
    }
    if (error instanceof CliFailure) {
      if (json) console.log(jsonError(error.code, error.message));
      else console.error(`peersec: ${error.message}`);
      return 1;
    }
    const { name, message } = error as { name?: string; message?: string };
    if (name === "NotCapable" || name === "PermissionDenied") {
      const text = `${message?.split("\n")[0]} (Deno: peersec needs ` +
        "--allow-ffi --allow-read, and --allow-net --allow-write for probe and serve)";
      if (json) console.log(jsonError("ERR_PERMISSION", text));
      else console.error(`peersec: ${text}`);
      return 1;
    }
    throw error;
  }
}

/** True when this file is the program being run (Deno, Bun, and any Node). */
function isMain(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main;
  const script = (globalThis as { process?: { argv?: string[] } }).process
    ?.argv?.[1];
  if (!script) return false;
  try {
    return realpathSync(script) ===
      realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = typeof Deno === "object" ? Deno.args : process.argv.slice(2);
  main(args).then((code) => {
    process.exitCode = code;
  });
}
