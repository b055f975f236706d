/**
 * A peer's identity with the names a person reads: the executable behind the
 * pid, and user and group names. For the CLI; the library itself returns
 * numbers, which are what the kernel vouches for.
 *
 * Two things here are about trust, not looks:
 *   - the pid SO_PEERCRED gives is that of the process that called connect()
 *     (or, on a client's side, listen()) — it may have exited, and its number
 *     may belong to another process now. Where the kernel has SO_PEERPIDFD the
 *     pid and executable are tied to that very process through a pidfd, and
 *     a process that is gone is said to be gone;
 *   - the executable path and the label are the peer's own choice (or its
 *     policy author's): text output escapes every control character, so a
 *     name cannot rewrite the operator's terminal.
 *
 * @module
 */
import { readFileSync, readlinkSync } from "node:fs";
import type { PeerSecReader } from "./core.ts";
import { PeerSecError } from "./errors.ts";
import {
  closeFileDescriptor,
  pidfdInfo,
  readPeerIdentity,
  readPeerPidfd,
} from "./identity.ts";

/**
 * What the kernel said about the process behind the pid: `alive` (a pidfd
 * confirmed the executable belongs to it), `exited` (it is gone; the pid may
 * be another process's now), `unverified` (no SO_PEERPIDFD on this kernel,
 * or /proc/self/fdinfo unreadable: Deno without `--allow-all`).
 */
export type PeerProcessState = "alive" | "exited" | "unverified";

/** A peer, described. */
export interface PeerDescription {
  /** Process id of the peer (0 when not visible in this pid namespace). */
  pid: number;
  /** Whether the pid still names the peer's process (see {@linkcode PeerProcessState}). */
  process: PeerProcessState;
  /**
   * Whose pid it is: `client` (the process that called connect()) or
   * `listener` (the one that called listen(), which may not be the process
   * that serves the connection: a socket-activated or forking server).
   */
  role: "client" | "listener";
  /** `/proc/<pid>/exe` of that live process, or null when it cannot be read here. */
  executable: string | null;
  /** Effective user id. */
  uid: number;
  /** Its name in /etc/passwd, or null. */
  user: string | null;
  /** Effective group id. */
  gid: number;
  /** Its name in /etc/group, or null. */
  group: string | null;
  /** Supplementary groups, with names where /etc/group has them. */
  groups: { gid: number; name: string | null }[];
  /** The security label, or null when none is available. */
  label: string | null;
}

/** name by id, from a passwd(5)/group(5)-format file; empty when unreadable. */
function namesById(path: string): Map<number, string> {
  const names = new Map<number, string>();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return names;
  }
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (
      name && id !== undefined && /^\d+$/.test(id) && !names.has(Number(id))
    ) {
      names.set(Number(id), name);
    }
  }
  return names;
}

function readExecutable(pid: number): string | null {
  if (pid <= 0) return null;
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null; // another user's process, or Deno without --allow-all
  }
}

/**
 * The pid a pidfd refers to now (-1 once the process is gone), or null when
 * /proc/self/fdinfo cannot be read here (Deno without --allow-all).
 */
function pidfdPid(pidfd: number): number | null {
  const pid = pidfdInfo(pidfd, "Pid");
  return pid === null ? null : Number(pid);
}

/**
 * The executable of the peer process and whether it is that process's: read
 * between two looks at the peer's pidfd, so a pid reused in between cannot
 * lend its executable to the peer.
 */
function peerProcess(
  reader: PeerSecReader,
  fd: number,
  pid: number,
): { process: PeerProcessState; executable: string | null } {
  let pidfd: number;
  try {
    pidfd = readPeerPidfd(reader, fd);
  } catch (error) {
    if (!(error instanceof PeerSecError)) throw error;
    // ESRCH / ENODATA: the peer process is gone. Before Linux 6.5 the option
    // does not exist (ENOPROTOOPT), and EINVAL can mean either.
    if (error.code === "ESRCH" || error.code === "ENODATA") {
      return { process: "exited", executable: null };
    }
    return { process: "unverified", executable: readExecutable(pid) };
  }
  try {
    const before = pidfdPid(pidfd);
    if (before === null) {
      return { process: "unverified", executable: readExecutable(pid) };
    }
    if (before !== pid) return { process: "exited", executable: null };
    const executable = readExecutable(pid);
    if (pidfdPid(pidfd) !== pid) return { process: "exited", executable: null };
    return { process: "alive", executable };
  } finally {
    closeFileDescriptor(reader, pidfd);
  }
}

/**
 * Reads and describes the peer of a connected UNIX socket. `role` says whose
 * side this is: `client` when this is an accepted connection, `listener` when
 * this process connected (the peer's pid is the listen() caller's).
 */
export function describePeer(
  reader: PeerSecReader,
  fd: number,
  role: "client" | "listener" = "client",
): PeerDescription {
  const identity = readPeerIdentity(reader, fd);
  const users = namesById("/etc/passwd");
  const groupNames = namesById("/etc/group");
  const { process, executable } = peerProcess(reader, fd, identity.pid);
  return {
    pid: identity.pid,
    process,
    role,
    executable,
    uid: identity.uid,
    user: users.get(identity.uid) ?? null,
    gid: identity.gid,
    group: groupNames.get(identity.gid) ?? null,
    groups: identity.groups.map((gid) => ({
      gid,
      name: groupNames.get(gid) ?? null,
    })),
    label: identity.securityContext,
  };
}

/**
 * Control characters (C0, DEL, C1), Unicode bidirectional controls, the line
 * and paragraph separators, and the backslash that starts an escape: what could make text lie on a terminal.
 */
const UNSAFE_FOR_TERMINAL =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;

/**
 * `text` safe to print on a terminal: every character in
 * {@linkcode UNSAFE_FOR_TERMINAL} as a `\xNN` / `\u{NNNN}` escape (`\\` for a
 * backslash), and whether anything was escaped.
 */
export function escapeForTerminal(
  text: string,
): { text: string; escaped: boolean } {
  let escaped = false;
  const safe = text.replace(UNSAFE_FOR_TERMINAL, (character) => {
    if (character === "\\") return "\\\\";
    escaped = true;
    const code = character.codePointAt(0)!;
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u{${code.toString(16)}}`;
  });
  return { text: safe, escaped };
}

/** The description as lines of text, every peer-chosen string escaped. */
export function formatPeer(peer: PeerDescription): string {
  let escapedAny = false;
  const safe = (text: string) => {
    const { text: result, escaped } = escapeForTerminal(text);
    escapedAny ||= escaped;
    return result;
  };
  const named = (id: number, name: string | null) =>
    name === null ? String(id) : `${id} (${safe(name)})`;
  const whose = peer.role === "listener"
    ? "the process that called listen() on this socket — not necessarily " +
      "the one serving it"
    : "the process that connected";
  const state = peer.process === "alive"
    ? ""
    : peer.process === "exited"
    ? "; it has exited, and this pid may belong to another process now"
    : "; not verified (no SO_PEERPIDFD here, or Deno without --allow-all)";
  const lines = [
    `pid    ${peer.pid}${
      peer.executable ? ` (${safe(peer.executable)})` : ""
    } [${whose}${state}]`,
    `uid    ${named(peer.uid, peer.user)}`,
    `gid    ${named(peer.gid, peer.group)}`,
    `groups ${
      peer.groups.map(({ gid, name }) => named(gid, name)).join(", ") ||
      "none"
    }`,
    `label  ${
      peer.label === null
        ? "none (no security module labels this socket)"
        : safe(peer.label)
    }`,
  ];
  if (escapedAny) {
    lines.push(
      "note   control characters above are shown escaped (\\xNN): the peer " +
        "chose those bytes; --json gives them exactly",
    );
  }
  return lines.join("\n");
}

/** A TCP peer, described: only a label can travel with it, never credentials. */
export interface NetworkPeerDescription {
  /** Always `tcp`: what told this apart from a UNIX peer's description. */
  transport: "tcp";
  /** The peer's address, as the runtime reports it (`127.0.0.1`, `::1`). */
  address: string;
  /** The peer's port. */
  port: number;
  /**
   * The peer's label as labeled networking (NetLabel/CIPSO, labeled IPsec,
   * Smack's CIPSO) delivered it, or null when none arrived.
   */
  label: string | null;
  /**
   * Why `label` is null: `ENOPROTOOPT` (no labeled networking for this
   * connection), `ERR_EMPTY_LABEL` (an empty label arrived); null otherwise.
   */
  labelError: string | null;
}

/** Reads and describes the label a TCP connection's peer carries. */
export function describeNetworkPeer(
  reader: PeerSecReader,
  fd: number,
  address: string,
  port: number,
): NetworkPeerDescription {
  try {
    const label = reader.getPeerSecurityContext(fd);
    return { transport: "tcp", address, port, label, labelError: null };
  } catch (error) {
    if (
      error instanceof PeerSecError &&
      (error.code === "ENOPROTOOPT" || error.code === "ERR_EMPTY_LABEL")
    ) {
      return {
        transport: "tcp",
        address,
        port,
        label: null,
        labelError: error.code,
      };
    }
    throw error;
  }
}

/** The TCP description as lines of text, the label escaped. */
export function formatNetworkPeer(peer: NetworkPeerDescription): string {
  const where = peer.address.includes(":")
    ? `[${peer.address}]:${peer.port}`
    : `${peer.address}:${peer.port}`;
  const label = peer.label !== null
    ? escapeForTerminal(peer.label).text
    : peer.labelError === "ENOPROTOOPT"
    ? "none (ENOPROTOOPT: no labeled networking — NetLabel/CIPSO or " +
      "labeled IPsec — is configured for this connection)"
    : "none (ERR_EMPTY_LABEL: the kernel gave an empty label)";
  return [
    `peer   ${where} [TCP: no process credentials travel over TCP, only a label]`,
    `label  ${label}`,
  ].join("\n");
}
