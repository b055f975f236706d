// Bad arguments are refused with TypeError/RangeError before any FFI call:
// the fake libc is never even opened.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as peersec from "../mod.ts";
import { fakeReader, withNul } from "./fake_libc.ts";

const notNumbers: unknown[] = [
  "3",
  3n,
  null,
  undefined,
  {},
  [3],
  true,
  new Number(3),
];
const outOfRange: unknown[] = [
  -1,
  -0,
  1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 32 + 3, // wraps to 3 in int32 arithmetic
  -(2 ** 31),
  Number.MAX_SAFE_INTEGER,
];
const methods = [
  "getPeerSecurityContext",
  "getPeerSecurityContextBytes",
  "tryGetPeerSecurityContext",
] as const;

test("a socket object where an fd belongs: the TypeError says to use socketFd or withSocketFd", () => {
  const socketLike = { _handle: { fd: 7 }, remoteAddress: "127.0.0.1" };
  const requestLike = { headers: {}, socket: socketLike };
  for (const value of [socketLike, requestLike]) {
    assert.throws(
      () => peersec.getPeerIdentity(value as unknown as number),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(
          error.message,
          /got object: for a socket object, pass socketFd\(socket\)/,
        );
        assert.match(error.message, /withSocketFd/);
        return true;
      },
    );
  }
  // Other values keep the plain message.
  assert.throws(
    () => peersec.getPeerIdentity("3" as unknown as number),
    /^TypeError: fd must be a number \(a socket file descriptor\), got string$/,
  );
});

test("assertAvailable opens libc now (here: it can), and is idempotent", () => {
  peersec.assertAvailable();
  peersec.assertAvailable();
});

test("a non-number fd is a TypeError, before libc is opened", () => {
  const { reader, libc, opened } = fakeReader([{ value: withNul("x") }]);
  for (const method of methods) {
    for (const fd of notNumbers) {
      assert.throws(
        () => reader[method](fd as number),
        TypeError,
        `${method}(${String(fd)})`,
      );
      assert.throws(() => peersec[method](fd as number), TypeError);
    }
  }
  assert.equal(opened(), 0);
  assert.equal(libc.calls.length, 0);
});

test("an fd out of range (negative, -0, fraction, NaN, ≥ 2^31) is a RangeError", () => {
  const { reader, libc, opened } = fakeReader([{ value: withNul("x") }]);
  for (const method of methods) {
    for (const fd of outOfRange) {
      assert.throws(
        () => reader[method](fd as number),
        RangeError,
        `${method}(${String(fd)})`,
      );
      assert.throws(() => peersec[method](fd as number), RangeError);
    }
  }
  assert.equal(opened(), 0);
  assert.equal(libc.calls.length, 0);
});

test("the messages name what was wrong", () => {
  const { reader } = fakeReader([{ value: withNul("x") }]);
  assert.throws(
    () => reader.getPeerSecurityContext("3" as unknown as number),
    /fd must be a number \(a socket file descriptor\), got string/,
  );
  assert.throws(
    () => reader.getPeerSecurityContext(-0),
    /from 0 to 2147483647, got -0/,
  );
});

test("the edges 0 and 2^31-1 are valid fds and reach the kernel", () => {
  const { reader, libc } = fakeReader([{ value: withNul("edge") }]);
  assert.equal(reader.getPeerSecurityContext(0), "edge");
  assert.equal(reader.getPeerSecurityContext(2 ** 31 - 1), "edge");
  assert.deepEqual(libc.calls.map((call) => call.fd), [0, 2 ** 31 - 1]);
});
