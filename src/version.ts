/**
 * peersec's version, as `peersec --version` prints it. deno.json's version;
 * build_npm.ts writes the npm build's own (tests/cli_test.ts checks both).
 *
 * @module
 */

/** The version of this copy of peersec. */
export const VERSION = "0.1.0";
