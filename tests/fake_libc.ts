/**
 * A scripted fake libc for testing the core's branches without a kernel.
 *
 * Each getsockopt call takes the next step of the script:
 *  - `{ value }`: behave like the kernel with that value: copy it when it fits
 *    (len = its length), else fail with ERANGE and len = its length;
 *  - `{ errno, len? }`: fail with that errno (len defaults to the capacity);
 *  - `{ rc: 0, len, value? }`: succeed with exactly that len (to fake a kernel
 *    that reports a cut value).
 * The last step repeats once the script runs out.
 */
import type { CallResult, LibcBackend } from "../src/backend.ts";
import { type ArchitectureConstants, constantsFor } from "../src/constants.ts";
import { PeerSecReader } from "../src/core.ts";

export type Step =
  | { value: Uint8Array }
  | { errno: number; len?: number }
  | { rc: 0; len: number; value?: Uint8Array };

export interface RecordedCall {
  fd: number;
  level: number;
  option: number;
  capacity: number;
}

export const GENERIC: ArchitectureConstants = constantsFor("generic");
export const E = GENERIC.errno;

export const bytes = (text: string): Uint8Array =>
  new TextEncoder().encode(text);
export const withNul = (text: string): Uint8Array => bytes(text + "\0");

export class FakeLibc implements LibcBackend {
  readonly runtime = "fake";
  readonly ffi = "scripted";
  readonly libraryPath = "fake-libc";
  readonly calls: RecordedCall[] = [];
  #steps: Step[];
  #result: CallResult = { rc: 0, errno: 0, len: 0 };

  constructor(steps: Step[]) {
    this.#steps = steps;
  }

  getsockopt(
    fd: number,
    level: number,
    option: number,
    value: Uint8Array,
    capacity: number,
  ): CallResult {
    if (value.byteLength < capacity) {
      throw new Error(`buffer of ${value.byteLength} < capacity ${capacity}`);
    }
    this.calls.push({ fd, level, option, capacity });
    const step = this.#steps.length > 1 ? this.#steps.shift()! : this.#steps[0];
    const result = this.#result;
    if ("errno" in step) {
      result.rc = -1;
      result.errno = step.errno;
      result.len = step.len ?? capacity;
    } else if ("rc" in step) {
      if (step.value) value.set(step.value.subarray(0, capacity));
      result.rc = 0;
      result.errno = 0;
      result.len = step.len;
    } else if (step.value.byteLength <= capacity) {
      value.set(step.value);
      result.rc = 0;
      result.errno = 0;
      result.len = step.value.byteLength;
    } else {
      result.rc = -1;
      result.errno = E.ERANGE;
      result.len = step.value.byteLength;
    }
    return result;
  }

  socketpair(): CallResult {
    throw new Error("not scripted");
  }

  close(): CallResult {
    throw new Error("not scripted");
  }

  socket(): CallResult {
    throw new Error("not scripted");
  }

  sendto(): CallResult {
    throw new Error("not scripted");
  }

  recv(): CallResult {
    throw new Error("not scripted");
  }

  /** fcntl calls made, and the answers to give them in order (default rc 0). */
  readonly fcntlCalls: { fd: number; command: number; argument: number }[] = [];
  readonly fcntlAnswers: { rc: number; errno?: number }[] = [];

  fcntl(fd: number, command: number, argument: number): CallResult {
    this.fcntlCalls.push({ fd, command, argument });
    const answer = this.fcntlAnswers.shift() ?? { rc: 0 };
    return { rc: answer.rc, errno: answer.errno ?? 0, len: 0 };
  }
}

/** A reader over a fake libc, plus a counter of how often it was opened. */
export function fakeReader(
  steps: Step[],
  constants: ArchitectureConstants = GENERIC,
): { reader: PeerSecReader; libc: FakeLibc; opened: () => number } {
  const libc = new FakeLibc(steps);
  let opens = 0;
  const reader = new PeerSecReader(() => {
    opens++;
    return { backend: libc, constants };
  });
  return { reader, libc, opened: () => opens };
}
