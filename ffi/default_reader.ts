/**
 * The process-wide reader behind the public functions: libc is opened on the
 * first call, once.
 *
 * @module
 */
import { PeerSecReader } from "../src/core.ts";
import { openPlatform } from "./runtime.ts";

/** The reader `mod.ts` and the CLI share. */
export const defaultReader: PeerSecReader = new PeerSecReader(openPlatform);
