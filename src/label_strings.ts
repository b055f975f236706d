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
  // Each remembered label's bytes, copied into whole 32-bit words (the tail
  // padded with zeros) so that most of a comparison goes 4 bytes at a time.
  #lengths: number[] = [];
  #words: Int32Array[] = [];
  #bytes: Uint8Array[] = [];
  #strings: string[] = [];
  #next = 0;
  // A word view of the buffer last asked about (the core reuses one).
  #viewed: Uint8Array | undefined;
  #viewedWords: Int32Array | undefined;

  /** The remembered string for exactly the bytes `value[0..len)`, if any. */
  find(value: Uint8Array, len: number): string | undefined {
    const lengths = this.#lengths;
    for (let entry = 0; entry < lengths.length; entry++) {
      if (lengths[entry] !== len) continue;
      if (this.#matches(this.#words[entry], this.#bytes[entry], value, len)) {
        return this.#strings[entry];
      }
    }
    return undefined;
  }

  /** Remembers `string` as the label `value[0..len)`, replacing the oldest. */
  remember(value: Uint8Array, len: number, string: string): void {
    const words = new Int32Array(Math.ceil(len / 4));
    new Uint8Array(words.buffer).set(value.subarray(0, len));
    this.#lengths[this.#next] = len;
    this.#words[this.#next] = words;
    this.#bytes[this.#next] = new Uint8Array(words.buffer);
    this.#strings[this.#next] = string;
    this.#next = (this.#next + 1) % REMEMBERED_LABELS;
  }

  #matches(
    words: Int32Array,
    bytes: Uint8Array,
    value: Uint8Array,
    len: number,
  ): boolean {
    const whole = len >> 2;
    if (value.byteOffset % 4 === 0) {
      if (value !== this.#viewed) {
        this.#viewed = value;
        this.#viewedWords = new Int32Array(
          value.buffer,
          value.byteOffset,
          value.byteLength >> 2,
        );
      }
      const valueWords = this.#viewedWords!;
      for (let index = 0; index < whole; index++) {
        if (valueWords[index] !== words[index]) return false;
      }
    } else {
      for (let index = 0; index < whole * 4; index++) {
        if (value[index] !== bytes[index]) return false;
      }
    }
    for (let index = whole * 4; index < len; index++) {
      if (value[index] !== bytes[index]) return false;
    }
    return true;
  }
}
