// Peer identity on real sockets (SO_PEERCRED, SO_PEERGROUPS, SO_PEERPIDFD),
// checked against /proc/<pid>/status and /proc/self/fdinfo, and the same
// options' branches through the scripted fake libc.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  closeFd,
  getPeerCredentials,
  getPeerGroups,
  getPeerIdentity,
  getPeerInfo,
  getPeerPidfd,
  PeerSecError,
} from "../mod.ts";
import { defaultReader } from "../ffi/default_reader.ts";
import {
  readPeerCredentials,
  readPeerGroups,
  readPeerInfo,
  readPeerPidfd,
} from "../src/identity.ts";
import { constantsFor } from "../src/constants.ts";
import { E, fakeReader, withNul } from "./fake_libc.ts";
import {
  isRoot,
  procAttrCurrent,
  procStatus,
  socketPair,
  withClientProcessConnection,
  withTcpConnection,
} from "./helpers.ts";

const words = (...values: number[]) =>
  new Uint8Array(new Uint32Array(values).buffer);

function codeIs(...codes: string[]) {
  return (error: unknown) => {
    assert.ok(error instanceof PeerSecError, String(error));
    assert.ok(codes.includes(error.code), `${error.code}: ${error.message}`);
    return true;
  };
}

/** The pid a pidfd refers to, from /proc/self/fdinfo. */
function pidfdPid(pidfd: number): number {
  const info = readFileSync(`/proc/self/fdinfo/${pidfd}`, "utf8");
  return Number(info.match(/^Pid:\s*(-?\d+)$/m)![1]);
}

test("socketpair: credentials and groups are this process's, per /proc/self/status", () => {
  const [left, right] = socketPair();
  try {
    const status = procStatus(process.pid);
    assert.deepEqual(getPeerCredentials(left), {
      pid: process.pid,
      uid: status.uid,
      gid: status.gid,
    });
    assert.deepEqual(getPeerGroups(left), status.groups);
    assert.deepEqual(getPeerIdentity(right), {
      pid: process.pid,
      uid: status.uid,
      gid: status.gid,
      groups: status.groups,
      securityContext: procAttrCurrent(process.pid),
    });
  } finally {
    closeFd(left);
    closeFd(right);
  }
});

test("a client process with known uid, gid and supplementary groups", async () => {
  // As root the client runs under setpriv with ids chosen here; otherwise it
  // runs as this user, and /proc/<pid>/status alone is the reference.
  const prefix = isRoot()
    ? [
      "setpriv",
      "--groups",
      "1,2,3,40000",
      "--regid",
      "4321",
      "--reuid",
      "1234",
      "--",
    ]
    : [];
  await withClientProcessConnection(
    (fd, clientPid) => {
      const status = procStatus(clientPid);
      if (isRoot()) {
        assert.deepEqual(status, {
          uid: 1234,
          gid: 4321,
          groups: [1, 2, 3, 40000],
        });
      }
      const identity = getPeerIdentity(fd);
      assert.deepEqual(identity, {
        pid: clientPid,
        uid: status.uid,
        gid: status.gid,
        groups: status.groups,
        securityContext: procAttrCurrent(clientPid),
      });
      assert.deepEqual(getPeerCredentials(fd), {
        pid: clientPid,
        uid: status.uid,
        gid: status.gid,
      });
      assert.deepEqual(getPeerGroups(fd), status.groups);
    },
    { prefix },
  );
});

test("pidfd of a client process refers to it (fdinfo Pid:), and closeFd closes it", async () => {
  await withClientProcessConnection((fd, clientPid) => {
    let pidfd: number;
    try {
      pidfd = getPeerPidfd(fd);
    } catch (error) {
      // Kernels before 6.5: the documented error, nothing else.
      codeIs("ENOPROTOOPT", "EINVAL")(error);
      assert.match((error as Error).message, /Linux 6\.5/);
      return;
    }
    assert.notEqual(pidfd, fd);
    assert.equal(pidfdPid(pidfd), clientPid);
    closeFd(pidfd);
    assert.throws(() => readFileSync(`/proc/self/fdinfo/${pidfd}`));
    assert.throws(() => closeFd(pidfd), (error) => {
      codeIs("EBADF")(error);
      assert.equal((error as PeerSecError).syscall, "close");
      assert.equal((error as PeerSecError).fd, pidfd);
      return true;
    });
  });
});

test("TCP carries no credentials: ENODATA, not pid 0 and uid 4294967295", async () => {
  await withTcpConnection((fd) => {
    assert.throws(() => getPeerCredentials(fd), (error) => {
      codeIs("ENODATA")(error);
      assert.equal(
        (error as PeerSecError).errno,
        defaultReader.constants.errno.ENODATA,
      );
      assert.match((error as Error).message, /no peer credentials/);
      return true;
    });
    assert.throws(() => getPeerGroups(fd), codeIs("ENODATA"));
    assert.throws(() => getPeerIdentity(fd), codeIs("ENODATA"));
    assert.throws(
      () => getPeerPidfd(fd),
      codeIs("ENODATA", "ESRCH", "ENOPROTOOPT", "EINVAL"),
    );
  }, closeFd);
});

test("getPeerInfo on TCP: no credentials and no groups as null, no exception", async () => {
  await withTcpConnection((fd) => {
    assert.deepEqual(getPeerInfo(fd), {
      credentials: null,
      groups: null,
      // No labeled networking here (and no LSM): no label.
      securityContext: null,
    });
  }, closeFd);
});

test("getPeerInfo on UNIX: the same credentials, groups and label as getPeerIdentity", async () => {
  await withClientProcessConnection((fd, clientPid) => {
    const status = procStatus(clientPid);
    assert.deepEqual(getPeerInfo(fd), {
      credentials: { pid: clientPid, uid: status.uid, gid: status.gid },
      groups: status.groups,
      securityContext: procAttrCurrent(clientPid),
    });
  });
});

test("getPeerInfo: EBADF, ENOTSOCK and bad arguments still throw", () => {
  const [left, right] = socketPair();
  closeFd(left);
  closeFd(right);
  assert.throws(() => getPeerInfo(left), codeIs("EBADF"));
  assert.throws(() => getPeerInfo("4" as unknown as number), TypeError);
  assert.throws(() => getPeerInfo(-1), RangeError);
});

test("fake: getPeerInfo keeps a real label of a peer without credentials", () => {
  const { reader } = fakeReader([
    { value: words(0, 0xffffffff, 0xffffffff) },
    { value: withNul("system_u:object_r:netmsg_t:s0:c1,c2") },
  ]);
  assert.deepEqual(readPeerInfo(reader, 5), {
    credentials: null,
    groups: null,
    securityContext: "system_u:object_r:netmsg_t:s0:c1,c2",
  });
  // A failure that is not "none" is not hidden as null.
  const failing = fakeReader([{ errno: E.ENOTSOCK }]);
  assert.throws(() => readPeerInfo(failing.reader, 5), codeIs("ENOTSOCK"));
  const groupsFail = fakeReader([
    { value: words(7, 1, 1) },
    { errno: E.EBADF },
  ]);
  assert.throws(() => readPeerInfo(groupsFail.reader, 5), codeIs("EBADF"));
});

test("closed and non-socket fds: EBADF and ENOTSOCK from every identity function", () => {
  const [left, right] = socketPair();
  closeFd(left);
  closeFd(right);
  for (
    const read of [
      getPeerCredentials,
      getPeerGroups,
      getPeerPidfd,
      getPeerIdentity,
    ]
  ) {
    assert.throws(() => read(left), codeIs("EBADF"));
  }
  assert.throws(() => closeFd(left), codeIs("EBADF"));
});

test("identity functions refuse bad fds with TypeError/RangeError", () => {
  for (
    const call of [
      getPeerCredentials,
      getPeerGroups,
      getPeerPidfd,
      getPeerIdentity,
      closeFd,
    ]
  ) {
    assert.throws(() => call("4" as unknown as number), TypeError);
    assert.throws(() => call(-1), RangeError);
    assert.throws(() => call(-0), RangeError);
    assert.throws(() => call(0.5), RangeError);
  }
});

// ---- the same options through the scripted fake libc ----

test("fake: SO_PEERCRED is read from struct ucred, with the family's option number", () => {
  const { reader, libc } = fakeReader([{ value: words(4242, 1000, 100) }]);
  assert.deepEqual(readPeerCredentials(reader, 5), {
    pid: 4242,
    uid: 1000,
    gid: 100,
  });
  assert.deepEqual(libc.calls, [{
    fd: 5,
    level: 1,
    option: 17,
    capacity: 256,
  }]);

  const powerpc = fakeReader(
    [{ value: words(1, 2, 3) }],
    constantsFor("powerpc"),
  );
  readPeerCredentials(powerpc.reader, 5);
  assert.equal(powerpc.libc.calls[0].option, 21);
});

test("fake: uid and gid above 2^31 are unsigned; a short ucred is an error", () => {
  const { reader } = fakeReader([{ value: words(7, 0xfffffffe, 0x80000000) }]);
  assert.deepEqual(readPeerCredentials(reader, 5), {
    pid: 7,
    uid: 0xfffffffe,
    gid: 0x80000000,
  });
  const short = fakeReader([{ value: words(7, 1) }]);
  assert.throws(() => readPeerCredentials(short.reader, 5), (error) => {
    codeIs("ERR_MALFORMED_ANSWER")(error);
    assert.match((error as Error).message, /8 bytes, a struct ucred has 12/);
    return true;
  });
});

test("fake: the TCP-shaped ucred (pid 0, uid/gid -1) is ENODATA", () => {
  const { reader } = fakeReader([{ value: words(0, 0xffffffff, 0xffffffff) }]);
  assert.throws(() => readPeerCredentials(reader, 5), codeIs("ENODATA"));
});

test("fake: SO_PEERGROUPS grows through the core's loop on ERANGE", () => {
  const groups = Array.from({ length: 100 }, (_, index) => 1000 + index);
  const { reader, libc } = fakeReader([{ value: words(...groups) }]);
  assert.deepEqual(readPeerGroups(reader, 5), groups);
  assert.deepEqual(libc.calls.map((call) => [call.option, call.capacity]), [[
    59,
    256,
  ], [59, 400]]);
});

test("fake: groups that change size between calls are followed, within the bounds", () => {
  const { reader, libc } = fakeReader([
    { value: words(...Array.from({ length: 70 }, (_, index) => index)) },
    { value: words(...Array.from({ length: 90 }, (_, index) => index)) },
  ]);
  assert.equal(readPeerGroups(reader, 5).length, 90);
  assert.deepEqual(libc.calls.map((call) => call.capacity), [256, 280, 360]);

  const endless = fakeReader(
    Array.from({ length: 10 }, (_, step) => ({
      value: words(
        ...Array.from({ length: 70 + 10 * step }, (_, index) => index),
      ),
    })),
  );
  assert.throws(() => readPeerGroups(endless.reader, 5), codeIs("ERANGE"));
  assert.equal(endless.libc.calls.length, 8);
});

test("fake: no groups is an empty list; a length not a multiple of 4 is an error", () => {
  assert.deepEqual(
    readPeerGroups(fakeReader([{ value: new Uint8Array(0) }]).reader, 5),
    [],
  );
  const odd = fakeReader([{ value: new Uint8Array(6) }]);
  assert.throws(() => readPeerGroups(odd.reader, 5), (error) => {
    codeIs("ERR_MALFORMED_ANSWER")(error);
    assert.match((error as Error).message, /6 bytes/);
    return true;
  });
});

test("fake: SO_PEERPIDFD errors say what they mean", () => {
  const cases: [number, string, RegExp][] = [
    [E.ENOPROTOOPT, "ENOPROTOOPT", /needs Linux 6\.5/],
    [E.EINVAL, "EINVAL", /needs Linux 6\.5/],
    [E.ESRCH, "ESRCH", /peer process is gone/],
    [E.ENODATA, "ENODATA", /peer process is gone/],
    [E.EMFILE, "EMFILE", /errno 24/],
  ];
  for (const [errno, code, message] of cases) {
    const { reader } = fakeReader([{ errno }]);
    assert.throws(() => readPeerPidfd(reader, 5), (error) => {
      codeIs(code)(error);
      assert.equal((error as PeerSecError).errno, errno);
      assert.equal((error as PeerSecError).syscall, "getsockopt");
      assert.match((error as Error).message, message);
      return true;
    });
  }
  const { reader, libc } = fakeReader([{ value: words(42) }]);
  assert.equal(readPeerPidfd(reader, 5), 42);
  assert.equal(libc.calls.length, 1, "one call: a retry would leak a pidfd");
  assert.equal(libc.calls[0].option, 77);
});

test("fake: a label read after a grown groups buffer still applies the NUL rule", () => {
  const groups = words(...Array.from({ length: 100 }, (_, index) => index));
  const { reader } = fakeReader([
    { value: groups }, // ERANGE at 256
    { value: groups }, // fits at 400
    { value: withNul("after_groups") },
  ]);
  readPeerGroups(reader, 5);
  assert.equal(reader.getPeerSecurityContext(5), "after_groups");
});
