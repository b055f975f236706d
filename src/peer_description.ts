/**
 * A peer's identity with the names a person reads: the executable behind the
 * pid, and user and group names. For the CLI; the library itself returns
 * numbers, which are what the kernel vouches for.
 *
 * @module
 */
import { readFileSync, readlinkSync } from "node:fs";
import type { PeerSecReader } from "./core.ts";
import { readPeerIdentity } from "./identity.ts";

/** A peer, described. */
export interface PeerDescription {
  /** Process id of the peer (0 when not visible in this pid namespace). */
  pid: number;
  /** `/proc/<pid>/exe`, or null when it cannot be read here. */
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

function executableOf(pid: number): string | null {
  if (pid <= 0) return null;
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null; // another user's process, or Deno without --allow-all
  }
}

/** Reads and describes the peer of a connected UNIX socket. */
export function describePeer(
  reader: PeerSecReader,
  fd: number,
): PeerDescription {
  const identity = readPeerIdentity(reader, fd);
  const users = namesById("/etc/passwd");
  const groupNames = namesById("/etc/group");
  return {
    pid: identity.pid,
    executable: executableOf(identity.pid),
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

/** The description as lines of text. */
export function formatPeer(peer: PeerDescription): string {
  const named = (id: number, name: string | null) =>
    name === null ? String(id) : `${id} (${name})`;
  return [
    `pid    ${peer.pid}${peer.executable ? ` (${peer.executable})` : ""}`,
    `uid    ${named(peer.uid, peer.user)}`,
    `gid    ${named(peer.gid, peer.group)}`,
    `groups ${
      peer.groups.map(({ gid, name }) => named(gid, name)).join(", ") ||
      "none"
    }`,
    `label  ${peer.label ?? "none (no security module labels this socket)"}`,
  ].join("\n");
}
