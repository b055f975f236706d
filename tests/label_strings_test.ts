// The decoded-label memory must never hand back another label's string: every
// answer is checked against a fresh TextDecoder, over labels that differ in
// one byte, share lengths, outnumber the memory, and buffers that change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LabelStrings, REMEMBERED_LABELS } from "../src/label_strings.ts";
import { fakeReader, withNul } from "./fake_libc.ts";

const fresh = (bytes: Uint8Array, len: number) =>
  new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
    bytes.subarray(0, len),
  );

/** What the core does: the remembered string, else decode and remember. */
function decode(strings: LabelStrings, bytes: Uint8Array, len: number): string {
  const known = strings.find(bytes, len);
  if (known !== undefined) return known;
  const string = fresh(bytes, len);
  strings.remember(bytes, len, string);
  return string;
}

/** A deterministic pseudo-random generator (xorshift32). */
function randomSource(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

test("labels that differ in one byte, at every position, each decode to their own string", () => {
  const strings = new LabelStrings();
  const base = "system_u:system_r:httpd_t:s0";
  const labels = [base];
  for (let position = 0; position < base.length; position++) {
    labels.push(base.slice(0, position) + "X" + base.slice(position + 1));
  }
  const buffer = new Uint8Array(256);
  for (let round = 0; round < 3; round++) {
    for (const label of labels) {
      const { written } = new TextEncoder().encodeInto(label, buffer);
      assert.equal(decode(strings, buffer, written), label);
    }
  }
});

test("random labels, more than are remembered, in random order: always what TextDecoder says", () => {
  const random = randomSource(0x5eed);
  const alphabet = ["a", "b", "_", ":", "s", "0", "é", "∂", "𝄞"];
  const labels: string[] = [];
  for (let count = 0; count < REMEMBERED_LABELS * 3; count++) {
    let label = "";
    const length = 1 + Math.floor(random() * 6);
    for (let index = 0; index < length; index++) {
      label += alphabet[Math.floor(random() * alphabet.length)];
    }
    labels.push(label);
  }
  const strings = new LabelStrings();
  const buffer = new Uint8Array(256);
  for (let step = 0; step < 5_000; step++) {
    // Mostly a few hot labels, sometimes any of them.
    const pick = random() < 0.7
      ? Math.floor(random() * 3)
      : Math.floor(random() * labels.length);
    const { written } = new TextEncoder().encodeInto(labels[pick], buffer);
    // Leftover bytes past the length must not matter.
    buffer.fill(0x41, written, written + 8);
    assert.equal(decode(strings, buffer, written), fresh(buffer, written));
    assert.equal(decode(strings, buffer, written), labels[pick]);
  }
});

test("a remembered label is a copy: changing the buffer afterwards gives the new string", () => {
  const strings = new LabelStrings();
  const buffer = new TextEncoder().encode("user_u:user_r:user_t:s0");
  assert.equal(
    decode(strings, buffer, buffer.length),
    "user_u:user_r:user_t:s0",
  );
  buffer[0] = "x".charCodeAt(0);
  assert.equal(
    decode(strings, buffer, buffer.length),
    "xser_u:user_r:user_t:s0",
  );
  // A prefix of a remembered label is its own label.
  assert.equal(decode(strings, buffer, 6), "xser_u");
});

test("a buffer at an odd offset, and lengths that are not whole words, compare byte by byte", () => {
  const strings = new LabelStrings();
  const backing = new Uint8Array(64);
  const label = "abcdefghij"; // 10 bytes: two words and a tail of two
  const odd = backing.subarray(1);
  const { written } = new TextEncoder().encodeInto(label, odd);
  assert.equal(decode(strings, odd, written), label);
  for (let position = 0; position < written; position++) {
    const changed = odd.slice();
    changed[position] ^= 0x01;
    assert.equal(strings.find(changed, written), undefined, `byte ${position}`);
    const shifted = new Uint8Array(65).subarray(1);
    shifted.set(changed);
    assert.equal(strings.find(shifted, written), undefined, `byte ${position}`);
  }
  assert.equal(strings.find(odd.slice(), written), label);
});

test("through the reader: bytes that are not UTF-8, or hold a NUL, fail every time, also after remembered labels of their length", () => {
  const valid = new TextEncoder().encode("abc");
  const invalid = new Uint8Array([0x61, 0xff, 0x63]);
  const inner = new Uint8Array([0x61, 0x00, 0x63]);
  const { reader } = fakeReader([
    { value: valid },
    { value: invalid },
    { value: inner },
    { value: valid },
    { value: invalid },
    { value: inner },
  ]);
  for (let round = 0; round < 2; round++) {
    assert.equal(reader.getPeerSecurityContext(3), "abc");
    assert.throws(
      () => reader.getPeerSecurityContext(3),
      (error) => (error as { code?: string }).code === "ERR_INVALID_UTF8",
    );
    assert.throws(
      () => reader.tryGetPeerSecurityContext(3),
      (error) => (error as { code?: string }).code === "ERR_MALFORMED_LABEL",
    );
  }
});

test("through the reader: two peers' labels alternating, each fd gets its own peer's label", () => {
  const first = "system_u:system_r:httpd_t:s0";
  const second = "system_u:system_r:httpd_t:s1";
  const steps = [];
  for (let round = 0; round < 10; round++) {
    steps.push({ value: withNul(first) }, { value: withNul(second) });
  }
  const { reader } = fakeReader(steps);
  for (let round = 0; round < 10; round++) {
    assert.equal(reader.getPeerSecurityContext(3), first);
    assert.equal(reader.tryGetPeerSecurityContext(4), second);
  }
});
