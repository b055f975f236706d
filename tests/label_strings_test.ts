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
      assert.equal(strings.decode(buffer, written), label);
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
    assert.equal(strings.decode(buffer, written), fresh(buffer, written));
    assert.equal(strings.decode(buffer, written), labels[pick]);
  }
});

test("a remembered label is a copy: changing the buffer afterwards gives the new string", () => {
  const strings = new LabelStrings();
  const buffer = new TextEncoder().encode("user_u:user_r:user_t:s0");
  assert.equal(
    strings.decode(buffer, buffer.length),
    "user_u:user_r:user_t:s0",
  );
  buffer[0] = "x".charCodeAt(0);
  assert.equal(
    strings.decode(buffer, buffer.length),
    "xser_u:user_r:user_t:s0",
  );
  // A prefix of a remembered label is its own label.
  assert.equal(strings.decode(buffer, 6), "xser_u");
});

test("bytes that are not UTF-8 fail every time, also beside remembered labels of their length", () => {
  const strings = new LabelStrings();
  const valid = new Uint8Array([0x61, 0x62, 0x63]);
  const invalid = new Uint8Array([0x61, 0xff, 0x63]);
  assert.equal(strings.decode(valid, 3), "abc");
  for (let attempt = 0; attempt < 3; attempt++) {
    assert.throws(() => strings.decode(invalid, 3), TypeError);
  }
  assert.equal(strings.decode(valid, 3), "abc");
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
