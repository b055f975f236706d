// The real backend of the runtime running the suite, on real sockets of this
// kernel, checked against independent sources: /proc/<pid>/attr/current for
// the label, SO_PEERCRED for which process is on the other end.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  closeSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  getPeerSecurityContext,
  getPeerSecurityContextBytes,
  PeerSecError,
  tryGetPeerSecurityContext,
} from "../mod.ts";
import { PeerSecReader } from "../src/core.ts";
import { detectRuntime, openPlatform } from "../ffi/runtime.ts";
import {
  procAttrCurrent,
  socketPair,
  withClientProcessConnection,
} from "./helpers.ts";

const reader = new PeerSecReader(openPlatform);

function closeFd(fd: number): void {
  assert.equal(reader.backend.close(fd).rc, 0);
}

/** The peer's pid by SO_PEERCRED, read through the same backend. */
function peerPid(fd: number): number {
  const len = reader.readOption(
    fd,
    reader.constants.socket.SO_PEERCRED,
    "SO_PEERCRED",
    12,
  );
  assert.ok(len >= 12, `SO_PEERCRED gave ${len}`);
  return new DataView(reader.value.buffer).getInt32(0, true);
}

/**
 * What SO_PEERSEC must say for a peer whose /proc label is `expected`: that
 * label, or, when the kernel has no LSM giving one, ENOPROTOOPT.
 */
function assertLabelAgrees(fd: number, expected: string | null): void {
  if (expected === null) {
    assert.equal(tryGetPeerSecurityContext(fd), null);
    for (const read of [getPeerSecurityContext, getPeerSecurityContextBytes]) {
      assert.throws(() => read(fd), (error) => {
        assert.ok(error instanceof PeerSecError);
        assert.equal(error.code, "ENOPROTOOPT");
        assert.equal(error.errno, reader.constants.errno.ENOPROTOOPT);
        assert.equal(error.syscall, "getsockopt");
        assert.equal(error.fd, fd);
        return true;
      });
    }
  } else {
    assert.equal(getPeerSecurityContext(fd), expected);
    assert.equal(tryGetPeerSecurityContext(fd), expected);
    assert.deepEqual(
      getPeerSecurityContextBytes(fd),
      new TextEncoder().encode(expected),
    );
  }
}

test(`the ${detectRuntime()} backend is the one in use`, () => {
  const runtime = detectRuntime();
  assert.equal(reader.backend.runtime, runtime);
  const nodeMajor = Number(process.versions.node.split(".")[0]);
  assert.equal(
    reader.backend.ffi,
    runtime === "deno" ? "Deno.dlopen" : runtime === "bun"
      ? "bun:ffi"
      // Node: koffi when installed (this repository has it), which measured
      // faster than node:ffi on Node 26; PEERSEC_FFI forces one.
      : process.env.PEERSEC_FFI ?? (nodeMajor >= 26 ? "koffi" : "koffi"),
  );
  assert.equal(
    reader.backend.libraryPath,
    process.env.PEERSEC_LIBC || "libc.so.6",
  );
});

test("a socketpair in this process: SO_PEERSEC agrees with /proc/self/attr/current", () => {
  const [left, right] = socketPair();
  try {
    assert.equal(peerPid(left), process.pid);
    assertLabelAgrees(left, procAttrCurrent(process.pid));
    assertLabelAgrees(right, procAttrCurrent(process.pid));
  } finally {
    closeFd(left);
    closeFd(right);
  }
});

test("an accepted connection from a client process: SO_PEERSEC agrees with the client's /proc label", async () => {
  await withClientProcessConnection((fd, clientPid) => {
    assert.notEqual(clientPid, process.pid);
    assert.equal(peerPid(fd), clientPid);
    assertLabelAgrees(fd, procAttrCurrent(clientPid));
  });
});

test("a closed fd is EBADF, from every function", () => {
  const [left, right] = socketPair();
  closeFd(left);
  closeFd(right);
  for (
    const read of [
      getPeerSecurityContext,
      getPeerSecurityContextBytes,
      tryGetPeerSecurityContext,
    ]
  ) {
    assert.throws(() => read(left), (error) => {
      assert.ok(error instanceof PeerSecError);
      assert.equal(error.code, "EBADF");
      assert.equal(error.errno, reader.constants.errno.EBADF);
      assert.equal(error.fd, left);
      assert.match(error.message, /not an open file descriptor/);
      return true;
    });
  }
});

test("a regular file's fd is ENOTSOCK, from every function", () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-test-"));
  const path = join(directory, "plain.txt");
  writeFileSync(path, "not a socket\n");
  const fd = openSync(path, "r");
  try {
    for (
      const read of [
        getPeerSecurityContext,
        getPeerSecurityContextBytes,
        tryGetPeerSecurityContext,
      ]
    ) {
      assert.throws(() => read(fd), (error) => {
        assert.ok(error instanceof PeerSecError);
        assert.equal(error.code, "ENOTSOCK");
        assert.equal(error.errno, reader.constants.errno.ENOTSOCK);
        assert.equal(error.syscall, "getsockopt");
        return true;
      });
    }
  } finally {
    closeSync(fd);
    rmSync(directory, { recursive: true, force: true });
  }
});

test("getsockopt writes into the buffer it is handed, also after another buffer and garbage collections (no stale address)", () => {
  // Deno and node:ffi take a buffer's address once and reuse it while the
  // same buffer comes back: a stale address would write elsewhere. A small
  // typed array starts on the V8 heap, where a scavenge moves it.
  const [left, right] = socketPair();
  const { SOL_SOCKET, SO_PEERCRED } = reader.constants.socket;
  const pidIn = (buffer: Uint8Array) =>
    new DataView(buffer.buffer, buffer.byteOffset).getInt32(0, true);
  const read = (buffer: Uint8Array) => {
    buffer.fill(0);
    const result = reader.backend.getsockopt(
      left,
      SOL_SOCKET,
      SO_PEERCRED,
      buffer,
      12,
    );
    assert.equal(result.rc, 0);
    assert.equal(result.len, 12);
    return pidIn(buffer);
  };
  try {
    const small = new Uint8Array(16);
    const large = new Uint8Array(512);
    assert.equal(read(small), process.pid);
    assert.equal(read(large), process.pid);
    small.fill(0);
    assert.equal(read(small), process.pid);
    for (let round = 0; round < 20; round++) {
      // Young-generation garbage: each round forces scavenges that move
      // whatever still lives on the young heap.
      let junk: unknown[] = [];
      for (let index = 0; index < 200_000; index++) junk.push({ index });
      junk = [];
      large.fill(0xee);
      assert.equal(read(small), process.pid, `round ${round}`);
      assert.ok(
        large.every((byte) => byte === 0xee),
        "a call for `small` wrote into `large`",
      );
    }
  } finally {
    closeFd(left);
    closeFd(right);
  }
});
