/**
 * The server's own log lines: one line per event, every byte a peer could
 * have chosen escaped, and rate-limited per kind of event so that a peer who
 * makes the server fail over and over (holding connections until the fd limit,
 * say) costs one line a second, not one per attempt.
 *
 * Only a short line is written, never an error's stack: formatting a
 * source-mapped stack at the fd limit made Deno 2.9 panic.
 *
 * @module
 */
import { escapeForTerminal } from "../src/peer_description.ts";

/** How often a kind of event may be logged. */
const LOG_INTERVAL_MS = 1000;

/** `code: message` of an error, or the value as text (the log escapes it). */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string"
      ? `${code}: ${error.message}`
      : error.message;
  }
  try {
    return String(error);
  } catch {
    return "an error that cannot be shown";
  }
}

/** Writes `peersec serve: <message>` lines, at most one per kind per second. */
export type ServerLog = (kind: string, message: string) => void;

/**
 * A rate-limited logger: the first event of a kind is written at once; later
 * ones within the interval are counted and the count is added to the next
 * line written for that kind.
 */
export function rateLimitedLog(
  write: (line: string) => void = (line) => console.error(line),
  now: () => number = Date.now,
): ServerLog {
  const kinds = new Map<string, { last: number; suppressed: number }>();
  return (kind, message) => {
    const time = now();
    const state = kinds.get(kind);
    if (state !== undefined && time - state.last < LOG_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    kinds.set(kind, { last: time, suppressed: 0 });
    const more = suppressed > 0 ? ` (and ${suppressed} more like it)` : "";
    try {
      write(`peersec serve: ${escapeForTerminal(message).text}${more}`);
    } catch {
      // A closed stderr must not take the server down.
    }
  };
}
