// A bounded soak: many calls mixing the success and error paths, in whichever
// runtime runs the suite. Nothing may leak: the open-fd count must not change
// and RSS must stay within a small bound.
//
// CI runs PEERSEC_SOAK_CALLS calls (default 300,000); set it to 1000000 for
// the full soak.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync, readdirSync } from "node:fs";
import {
  closeFd,
  getPeerCredentials,
  getPeerGroups,
  getPeerSecurityContextBytes,
  PeerSecError,
  tryGetPeerSecurityContext,
} from "../mod.ts";
import { socketPair } from "./helpers.ts";

const CALLS = Number(process.env.PEERSEC_SOAK_CALLS ?? 300_000);
/**
 * RSS may grow by at most this much after the warm-up. The garbage collectors
 * settle within it (measured: Deno < 3 MiB, Bun about 8 MiB whether 200,000
 * or 1,000,000 calls, i.e. a plateau, not growth). A leak of 84 bytes per
 * call (one leaked error, typed array or result object is more) exceeds it
 * over 300,000 calls; over the full 1,000,000 calls, a leak of 26 bytes does.
 */
const RSS_BOUND = 24 * 1024 * 1024;

const openFds = () => readdirSync("/proc/self/fd").map(Number);
const openFdCount = () => openFds().length;

function mixedCalls(count: number, fds: {
  connected: number;
  closed: number;
  file: number;
}): Record<string, number> {
  const seen: Record<string, number> = {};
  const note = (key: string) => (seen[key] = (seen[key] ?? 0) + 1);
  for (let index = 0; index < count; index++) {
    try {
      switch (index % 6) {
        case 0:
          getPeerCredentials(fds.connected);
          note("credentials");
          break;
        case 1:
          note(`label:${tryGetPeerSecurityContext(fds.connected)}`);
          break;
        case 2:
          getPeerGroups(fds.connected);
          note("groups");
          break;
        case 3:
          getPeerSecurityContextBytes(fds.connected);
          note("label bytes");
          break;
        case 4:
          tryGetPeerSecurityContext(fds.closed);
          note("closed fd returned");
          break;
        case 5:
          tryGetPeerSecurityContext(fds.file);
          note("file fd returned");
          break;
      }
    } catch (error) {
      if (!(error instanceof PeerSecError)) throw error;
      note(error.code);
    }
  }
  return seen;
}

/**
 * A full collection where the runtime offers one without flags (Bun), so
 * that RSS is compared between two collected heaps: what the calls retain,
 * not how far the collector let garbage pile up in this suite.
 */
function collectGarbage(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

test(`soak: ${CALLS} mixed calls leak no fd and no memory`, () => {
  const file = openSync("/proc/self/status", "r");
  const [connected, peer] = socketPair();
  // The EBADF path needs an fd number nothing can open during the run. A
  // closed low number is not one: the kernel hands the lowest free number to
  // the next open, and the runtime itself opens files in the background (a
  // CI run of Deno saw one EBADF turn into ENOTSOCK). Numbers are handed out
  // lowest first, so one far above every open fd stays closed.
  const closed = 1_000_000 + Math.max(...openFds());
  const fds = { connected, closed, file };
  try {
    mixedCalls(20_000, fds); // warm up: JIT, buffers, first GC cycles
    const fdsBefore = openFdCount();
    collectGarbage();
    const rssBefore = process.memoryUsage().rss;
    const seen = mixedCalls(CALLS, fds);
    collectGarbage();
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    assert.equal(openFdCount(), fdsBefore, "open fds changed");
    assert.ok(
      rssGrowth < RSS_BOUND,
      `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB over ${CALLS} calls`,
    );
    // Every path really ran, each about a sixth of the time.
    const sixth = Math.floor(CALLS / 6);
    assert.ok(seen.credentials >= sixth, JSON.stringify(seen));
    assert.ok(seen.groups >= sixth, JSON.stringify(seen));
    assert.ok(seen.EBADF >= sixth, JSON.stringify(seen));
    assert.ok(seen.ENOTSOCK >= sixth, JSON.stringify(seen));
    const labelPaths = (seen["label:null"] ?? 0) +
      Object.entries(seen).filter(([key]) =>
        key.startsWith("label:") && key !== "label:null"
      ).reduce((sum, [, count]) => sum + count, 0);
    assert.ok(labelPaths >= sixth, JSON.stringify(seen));
    console.log(
      `soak: ${CALLS} calls, RSS +${(rssGrowth / 2 ** 20).toFixed(1)} MiB, ` +
        `fds ${fdsBefore} → ${openFdCount()}, ${JSON.stringify(seen)}`,
    );
  } finally {
    closeSync(file);
    closeFd(connected);
    closeFd(peer);
  }
});
