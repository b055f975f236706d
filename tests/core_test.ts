// The shared core against a scripted fake libc: every branch of the growth
// loop, the NUL rule, decoding and errno handling.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PeerSecError } from "../mod.ts";
import {
  MAX_CAPACITY,
  MAX_ERRNO_RETRIES,
  MAX_GROWTH_ATTEMPTS,
} from "../src/core.ts";
import type { PeerSecReader } from "../src/core.ts";
import {
  readPeerCredentials,
  readPeerGroups,
  readPeerPidfd,
} from "../src/identity.ts";
import { bytes, E, fakeReader, withNul } from "./fake_libc.ts";

const capacities = (libc: { calls: { capacity: number }[] }) =>
  libc.calls.map((call) => call.capacity);

function assertPeerSecError(
  error: unknown,
  fields: {
    code?: string;
    errno?: number;
    syscall?: string;
    fd?: number;
    message?: RegExp;
  },
): true {
  assert.ok(error instanceof PeerSecError, `not a PeerSecError: ${error}`);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "PeerSecError");
  for (const [key, expected] of Object.entries(fields)) {
    if (key === "message") {
      assert.match(error.message, expected as RegExp);
    } else {
      assert.equal(error[key as keyof PeerSecError], expected, key);
    }
  }
  return true;
}

test("an SELinux-shaped label: the counted trailing NUL is dropped", () => {
  const label = "system_u:system_r:sshd_t:s0-s0:c0.c1023";
  const { reader, libc } = fakeReader([{ value: withNul(label) }]);
  assert.equal(reader.getPeerSecurityContext(7), label);
  assert.deepEqual(libc.calls, [{
    fd: 7,
    level: 1,
    option: 31,
    capacity: 256,
  }]);
  assert.equal(reader.tryGetPeerSecurityContext(7), label);
  assert.deepEqual(reader.getPeerSecurityContextBytes(7), bytes(label));
});

test("an AppArmor-shaped label without a NUL is returned whole", () => {
  const label = "/usr/sbin/nginx (enforce)";
  const { reader } = fakeReader([{ value: bytes(label) }]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.equal(reader.tryGetPeerSecurityContext(3), label);
  assert.deepEqual(reader.getPeerSecurityContextBytes(3), bytes(label));
});

test("a label of exactly the buffer size without a NUL keeps its last byte", () => {
  const label = "p".repeat(256);
  const { reader, libc } = fakeReader([{ value: bytes(label) }]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256]);
});

test("Smack's empty label (a lone NUL) means no label", () => {
  const { reader } = fakeReader([{ value: withNul("") }]);
  assert.equal(reader.tryGetPeerSecurityContext(3), null);
  assert.throws(
    () => reader.getPeerSecurityContext(3),
    (error) => assertPeerSecError(error, { code: "ERR_EMPTY_LABEL", fd: 3 }),
  );
  assert.throws(
    () => reader.getPeerSecurityContextBytes(3),
    (error) => assertPeerSecError(error, { code: "ERR_EMPTY_LABEL" }),
  );
});

test("a zero-length answer is no label too", () => {
  const { reader } = fakeReader([{ value: new Uint8Array(0) }]);
  assert.equal(reader.tryGetPeerSecurityContext(3), null);
});

test("ENOPROTOOPT: try returns null, the others throw a PeerSecError", () => {
  const { reader, libc } = fakeReader([{ errno: E.ENOPROTOOPT }]);
  assert.equal(reader.tryGetPeerSecurityContext(4), null);
  assert.deepEqual(capacities(libc), [256]);
  for (
    const read of [
      () => reader.getPeerSecurityContext(4),
      () => reader.getPeerSecurityContextBytes(4),
    ]
  ) {
    assert.throws(read, (error) =>
      assertPeerSecError(error, {
        code: "ENOPROTOOPT",
        errno: 92,
        syscall: "getsockopt",
        fd: 4,
        message: /no security module labels this socket/,
      }));
  }
});

test("each errno becomes a PeerSecError with its name, value, syscall and fd", () => {
  const cases: [number, string, RegExp][] = [
    [E.EBADF, "EBADF", /fd 5 is not an open file descriptor/],
    [E.ENOTSOCK, "ENOTSOCK", /fd 5 is not a socket/],
    [E.EINVAL, "EINVAL", /rejected/],
    [E.EFAULT, "EFAULT", /failed with errno 14/],
    [E.ENOMEM, "ENOMEM", /out of memory/],
    [E.EACCES, "EACCES", /permission denied/],
  ];
  for (const [errno, code, message] of cases) {
    const { reader } = fakeReader([{ errno }]);
    for (
      const read of [
        () => reader.getPeerSecurityContext(5),
        () => reader.getPeerSecurityContextBytes(5),
        () => reader.tryGetPeerSecurityContext(5),
      ]
    ) {
      assert.throws(read, (error) =>
        assertPeerSecError(error, {
          code,
          errno,
          syscall: "getsockopt",
          fd: 5,
          message,
        }));
    }
  }
});

test("growth 256 → 300: ERANGE carries the needed length, one retry", () => {
  const label = "t".repeat(299);
  const { reader, libc } = fakeReader([{ value: withNul(label) }]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 300]);
});

test("growth 256 → 4000, and the grown buffer serves the next read in one call", () => {
  const label = "c".repeat(3999);
  const { reader, libc } = fakeReader([{ value: withNul(label) }]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 4000]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 4000, 4000]);
});

test("the bytes form after growth holds the grown label (caught on a real kernel)", () => {
  const short = "system_u:base_r:kernel_t:s0";
  const long = "user_u:base_r:" + "t".repeat(298) + ":s0";
  const { reader, libc } = fakeReader([
    { value: withNul(short) },
    { value: withNul(long) },
  ]);
  assert.deepEqual(reader.getPeerSecurityContextBytes(3), bytes(short));
  assert.deepEqual(reader.getPeerSecurityContextBytes(3), bytes(long));
  assert.deepEqual(capacities(libc), [256, 256, 316]);
});

test("a label that grows twice between calls (relabel race) is followed", () => {
  const final = "z".repeat(499);
  const { reader, libc } = fakeReader([
    { value: withNul("y".repeat(299)) },
    { value: withNul(final) },
  ]);
  assert.equal(reader.getPeerSecurityContext(3), final);
  assert.deepEqual(capacities(libc), [256, 300, 500]);
});

test("a success whose length exceeds the buffer (a cut value) is read again", () => {
  const label = "k".repeat(400);
  const { reader, libc } = fakeReader([
    { rc: 0, len: 400, value: bytes(label) },
    { value: bytes(label) },
  ]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 400]);
});

test("ERANGE without a larger length: the buffer doubles instead", () => {
  const label = "d".repeat(400);
  const { reader, libc } = fakeReader([
    { errno: E.ERANGE, len: 256 },
    { value: withNul(label) },
  ]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 512]);
});

test("ERANGE without a larger length forever: bounded, then an ERANGE error", () => {
  const { reader, libc } = fakeReader([{ errno: E.ERANGE, len: 10 }]);
  assert.throws(
    () => reader.tryGetPeerSecurityContext(3),
    (error) =>
      assertPeerSecError(error, {
        code: "ERANGE",
        errno: 34,
        syscall: "getsockopt",
        message: /kept growing over 8 attempts/,
      }),
  );
  assert.equal(libc.calls.length, MAX_GROWTH_ATTEMPTS);
  assert.deepEqual(
    capacities(libc),
    [256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
  );
});

test("a label that never settles stops after 8 attempts", () => {
  const steps = Array.from({ length: 12 }, (_, index) => ({
    value: withNul("g".repeat(300 + 100 * index)),
  }));
  const { reader, libc } = fakeReader(steps);
  assert.throws(
    () => reader.getPeerSecurityContext(3),
    (error) => assertPeerSecError(error, { code: "ERANGE", errno: 34 }),
  );
  assert.equal(libc.calls.length, 8);
});

test("the 64 KiB cap: exactly 64 KiB is read, one byte more is refused", () => {
  const largest = "m".repeat(MAX_CAPACITY - 1);
  const fits = fakeReader([{ value: withNul(largest) }]);
  assert.equal(fits.reader.getPeerSecurityContext(3), largest);
  assert.deepEqual(capacities(fits.libc), [256, MAX_CAPACITY]);

  const tooLarge = fakeReader([{ value: withNul("m".repeat(MAX_CAPACITY)) }]);
  assert.throws(
    () => tooLarge.reader.tryGetPeerSecurityContext(3),
    (error) =>
      assertPeerSecError(error, {
        code: "ERANGE",
        errno: 34,
        message: /65537 bytes, more than the 65536-byte limit/,
      }),
  );
  assert.deepEqual(capacities(tooLarge.libc), [256]);
});

test("errno clobbered once (Deno's ENOENT) then real: the call is made again", () => {
  const { reader, libc } = fakeReader([
    { errno: E.ENOENT },
    { errno: E.ENOPROTOOPT },
  ]);
  assert.equal(reader.tryGetPeerSecurityContext(3), null);
  assert.equal(libc.calls.length, 2);

  const label = "user_u:base_r:cli_t:s0";
  const second = fakeReader([{ errno: 0 }, { value: withNul(label) }]);
  assert.equal(second.reader.getPeerSecurityContext(3), label);
  assert.equal(second.libc.calls.length, 2);
});

test("errno is checked per option: what one option can return is a forgery for another", () => {
  // SO_PEERSEC never answers ENODATA, ESRCH, EMFILE or ENOTCONN: each is a
  // clobbered errno, so the call is made again and the real EBADF comes out.
  for (const forged of [E.ENODATA, E.ESRCH, E.EMFILE, E.ENOTCONN]) {
    const { reader, libc } = fakeReader([{ errno: forged }, {
      errno: E.EBADF,
    }]);
    assert.throws(
      () => reader.tryGetPeerSecurityContext(7),
      (error) => assertPeerSecError(error, { code: "EBADF", fd: 7 }),
      `SO_PEERSEC after a forged errno ${forged}`,
    );
    assert.equal(libc.calls.length, 2);
  }
  // SO_PEERCRED never answers ENOPROTOOPT (a clobber to it after a real
  // EBADF must not pass for "no such option").
  const credentials = fakeReader([{ errno: E.ENOPROTOOPT }, {
    errno: E.EBADF,
  }]);
  assert.throws(
    () => readPeerCredentials(credentials.reader, 7),
    (error) => assertPeerSecError(error, { code: "EBADF" }),
  );
  assert.equal(credentials.libc.calls.length, 2);
  // …while the errnos each option really returns are believed at once.
  const cases: [(reader: PeerSecReader) => unknown, number, string][] = [
    [(reader) => readPeerPidfd(reader, 7), E.ESRCH, "ESRCH"],
    [(reader) => readPeerPidfd(reader, 7), E.ENODATA, "ENODATA"],
    [(reader) => readPeerGroups(reader, 7), E.ENODATA, "ENODATA"],
    [(reader) => reader.getPeerSecurityContext(7), E.ENOMEM, "ENOMEM"],
  ];
  for (const [read, errno, code] of cases) {
    const { reader, libc } = fakeReader([{ errno }]);
    assert.throws(
      () => read(reader),
      (error) => assertPeerSecError(error, { code }),
    );
    assert.equal(libc.calls.length, 1, code);
  }
  // A forged errno that never stops being forged: bounded, then said so.
  const stuck = fakeReader([{ errno: E.ENOTCONN }]);
  assert.throws(
    () => stuck.reader.tryGetPeerSecurityContext(7),
    (error) => assertPeerSecError(error, { code: "ERR_ERRNO_UNRELIABLE" }),
  );
});

test("one reader alternating options checks each failure against its own option's errnos", () => {
  // ENOPROTOOPT is real for SO_PEERSEC and forged for SO_PEERCRED, in turns
  // on one reader; errno values past every table, and negative ones, are
  // forged for both.
  const { reader, libc } = fakeReader([
    { errno: E.ENOPROTOOPT },
    { errno: E.ENOPROTOOPT },
    { errno: E.EBADF },
    { errno: E.ENOPROTOOPT },
    { errno: 5000 },
    { errno: -1 },
    { errno: E.EBADF },
  ]);
  assert.equal(reader.tryGetPeerSecurityContext(7), null);
  assert.throws(
    () => readPeerCredentials(reader, 7),
    (error) => assertPeerSecError(error, { code: "EBADF" }),
  );
  assert.equal(reader.tryGetPeerSecurityContext(7), null);
  assert.throws(
    () => readPeerCredentials(reader, 7),
    (error) => assertPeerSecError(error, { code: "EBADF" }),
  );
  assert.equal(libc.calls.length, 7);
});

test("an ERANGE whose errno was clobbered still grows", () => {
  const label = "q".repeat(600);
  const { reader, libc } = fakeReader([
    { errno: E.ENOENT, len: 601 },
    { value: withNul(label) },
  ]);
  assert.equal(reader.getPeerSecurityContext(3), label);
  assert.deepEqual(capacities(libc), [256, 256, 601]);
});

test("errno clobbered every time: bounded, then ERR_ERRNO_UNRELIABLE", () => {
  const { reader, libc } = fakeReader([{ errno: E.ENOENT }]);
  assert.throws(
    () => reader.tryGetPeerSecurityContext(3),
    (error) =>
      assertPeerSecError(error, {
        code: "ERR_ERRNO_UNRELIABLE",
        errno: undefined,
        fd: 3,
        message: /errno read 2 \(ENOENT\) 5 times/,
      }),
  );
  assert.equal(libc.calls.length, MAX_ERRNO_RETRIES + 1);
});

test("an embedded NUL is not a label", () => {
  for (const value of [withNul("ab\0cd"), bytes("ab\0cd"), withNul("x\0")]) {
    const { reader } = fakeReader([{ value }]);
    for (
      const read of [
        () => reader.getPeerSecurityContext(3),
        () => reader.getPeerSecurityContextBytes(3),
        () => reader.tryGetPeerSecurityContext(3),
      ]
    ) {
      assert.throws(
        read,
        (error) =>
          assertPeerSecError(error, {
            code: "ERR_MALFORMED_LABEL",
            message: /NUL at byte/,
          }),
      );
    }
  }
});

test("invalid UTF-8: the string forms refuse and point to the bytes form", () => {
  const raw = new Uint8Array([0x6c, 0xff, 0xfe, 0x61, 0]);
  const { reader } = fakeReader([{ value: raw }]);
  for (
    const read of [
      () => reader.getPeerSecurityContext(3),
      () => reader.tryGetPeerSecurityContext(3),
    ]
  ) {
    assert.throws(read, (error) =>
      assertPeerSecError(error, {
        code: "ERR_INVALID_UTF8",
        message: /getPeerSecurityContextBytes/,
      }));
  }
  assert.deepEqual(
    reader.getPeerSecurityContextBytes(3),
    new Uint8Array([0x6c, 0xff, 0xfe, 0x61]),
  );
});

test("UTF-8 labels are decoded, and a leading BOM is kept, not stripped", () => {
  const { reader } = fakeReader([{ value: withNul("\uFEFFétiquette") }]);
  assert.equal(reader.getPeerSecurityContext(3), "\uFEFFétiquette");
});

test("the bytes form returns a copy the caller owns", () => {
  const { reader } = fakeReader([
    { value: withNul("first") },
    { value: withNul("other") },
  ]);
  const first = reader.getPeerSecurityContextBytes(3);
  first[0] = 0x58;
  const second = reader.getPeerSecurityContextBytes(3);
  assert.deepEqual(second, bytes("other"));
  assert.deepEqual(first, bytes("Xirst"));
  assert.notEqual(first.buffer, second.buffer);
});
