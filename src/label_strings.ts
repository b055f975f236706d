/**
 * Label bytes to strings, remembering the last few. A server sees the same
 * few peer labels over and over, and decoding is the dearest step of a read
 * in some runtimes (Deno's `TextDecoder` took ~480 ns for a 28-byte SELinux
 * context here, more than the system call; comparing the bytes with a
 * remembered label takes ~10 ns).
 *
 * A remembered string is returned only when every byte matches: a label is
 * never attributed on a partial match, a hash, or a length.
 *
 * @module
 */

/** How many distinct labels are remembered (replaced in turn). */
export const REMEMBERED_LABELS = 8;

/**
 * The last {@linkcode REMEMBERED_LABELS} distinct labels the core decoded,
 * as bytes and string. The core remembers only labels that passed its NUL
 * rule and decoded as UTF-8, so bytes equal to a remembered label need
 * neither check again.
 *
 * @example
 * ```ts
 * import { LabelStrings } from "./label_strings.ts";
 * const strings = new LabelStrings();
 * const bytes = new TextEncoder().encode("system_u:system_r:httpd_t:s0");
 * strings.find(bytes, bytes.length); // undefined
 * strings.remember(bytes, bytes.length, "system_u:system_r:httpd_t:s0");
 * strings.find(bytes, bytes.length); // "system_u:system_r:httpd_t:s0"
 * ```
 */
export class LabelStrings {
  // Each remembered label's bytes are copied into whole 32-bit words (the
  // tail padded with zeros) so that most of a comparison goes 4 bytes at a
  // time; one object per label keeps a lookup to few field reads.
  #entries: RememberedLabel[] = [];
  #next = 0;
  // A word view of the buffer last asked about (the core reuses one).
  #viewed: Uint8Array | undefined;
  #viewedWords: Int32Array = new Int32Array(0);

  /** The remembered string for exactly the bytes `value[0..len)`, if any. */
  find(value: Uint8Array, len: number): string | undefined {
    const wordAligned = value.byteOffset % 4 === 0;
    if (wordAligned && value !== this.#viewed) {
      this.#viewed = value;
      this.#viewedWords = new Int32Array(
        value.buffer,
        value.byteOffset,
        value.byteLength >> 2,
      );
    }
    const valueWords = this.#viewedWords;
    const whole = len >> 2;
    const entries = this.#entries;
    // Whole words where the buffer allows it, then byte by byte.
    const bytesFrom = wordAligned ? whole * 4 : 0;
    next: for (let entry = 0; entry < entries.length; entry++) {
      const remembered = entries[entry];
      if (remembered.len !== len) continue;
      if (wordAligned) {
        const words = remembered.words;
        for (let index = 0; index < whole; index++) {
          if (valueWords[index] !== words[index]) continue next;
        }
      }
      const bytes = remembered.bytes;
      for (let index = bytesFrom; index < len; index++) {
        if (value[index] !== bytes[index]) continue next;
      }
      return remembered.string;
    }
    return undefined;
  }

  /** Remembers `string` as the label `value[0..len)`, replacing the oldest. */
  remember(value: Uint8Array, len: number, string: string): void {
    const words = new Int32Array(Math.ceil(len / 4));
    const bytes = new Uint8Array(words.buffer);
    bytes.set(value.subarray(0, len));
    this.#entries[this.#next] = { len, words, bytes, string };
    this.#next = (this.#next + 1) % REMEMBERED_LABELS;
  }
}

/** One remembered label: its length, its bytes (also as words), its string. */
interface RememberedLabel {
  len: number;
  words: Int32Array;
  bytes: Uint8Array;
  string: string;
}
