// What every stage of the LSM lane shares: where things are, how a command
// runs, how the lane logs and fails.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** lsm/ */
export const here = dirname(fileURLToPath(import.meta.url));
/** The repository. */
export const root = join(here, "..");
/** Kernels, packages, the Smack build, the initramfs: kept between runs. */
export const cache = process.env.PEERSEC_LSM_CACHE ?? "/var/cache/peersec-lsm";
/** Where the lane writes lsm.xml (for the total line) and lsm-bench.json. */
export const results = join(root, ".test-results");

const started = Date.now();
export const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

export function log(message) {
  console.log(`[lsm ${elapsed()}] ${message}`);
}

export function run(command, args, options = {}) {
  return execFileSync(command, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 256 * 1024 * 1024,
    ...options,
  });
}

/** The lane fails loudly: a stage that cannot run is a failure, not a skip. */
export function fail(message) {
  console.error(`\nLSM LANE FAILED: ${message}`);
  process.exit(1);
}

/** `text` as one single-quoted shell word. */
export function quote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}
