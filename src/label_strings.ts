/**
 * Label bytes to strings, remembering the last few. A server sees the same
 * few peer labels over and over, and decoding is the dearest step of a read
 * in some runtimes (Deno's `TextDecoder` took ~480 ns for a 28-byte SELinux
 * context here, more than the system call; comparing the bytes with a
 * remembered label takes ~20 ns).
 *
 * A remembered string is returned only when every byte matches: a label is
 * never attributed on a partial match, a hash, or a length.
 *
 * @module
 */

/** How many distinct labels are remembered (replaced in turn). */
export const REMEMBERED_LABELS = 8;

/**
 * Decodes label bytes as strict UTF-8 and remembers the last
 * {@linkcode REMEMBERED_LABELS} distinct results.
 *
 * @example
 * ```ts
 * import { LabelStrings } from "./label_strings.ts";
 * const strings = new LabelStrings();
 * const bytes = new TextEncoder().encode("system_u:system_r:httpd_t:s0");
 * strings.decode(bytes, bytes.length); // "system_u:system_r:httpd_t:s0"
 * ```
 */
export class LabelStrings {
  #decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #bytes: Uint8Array[] = [];
  #strings: string[] = [];
  #next = 0;

  /**
   * The string for `value[0..len)`. Throws the decoder's `TypeError` for bytes
   * that are not UTF-8 (never remembered, so they fail every time).
   */
  decode(value: Uint8Array, len: number): string {
    const remembered = this.#bytes;
    for (let entry = 0; entry < remembered.length; entry++) {
      const bytes = remembered[entry];
      if (bytes.length !== len) continue;
      let index = 0;
      while (index < len && bytes[index] === value[index]) index++;
      if (index === len) return this.#strings[entry];
    }
    const string = this.#decoder.decode(value.subarray(0, len));
    this.#bytes[this.#next] = value.slice(0, len);
    this.#strings[this.#next] = string;
    this.#next = (this.#next + 1) % REMEMBERED_LABELS;
    return string;
  }
}
