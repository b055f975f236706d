// The layers point one way: entry points (mod.ts, cli.ts) → the runtime
// layer (ffi/: detector, libc opening, backends) → the shared core (src/).
// The core never imports a backend and never touches a runtime's globals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./helpers.ts";

const sources = (folder: string) =>
  readdirSync(join(repoRoot, folder))
    .filter((name) => name.endsWith(".ts"))
    .map((name) => ({
      name: `${folder}/${name}`,
      text: readFileSync(join(repoRoot, folder, name), "utf8"),
    }));

/** The import specifiers of a module. */
const imports = (text: string) =>
  [
    ...text.matchAll(
      /^\s*(?:(?:import|export)\b[^;"']*?\bfrom|import)\s*["']([^"']+)["']/gm,
    ),
  ].map((match) => match[1]);

test("src/ (the core) imports nothing from ffi/ or the entry points, and no FFI", () => {
  for (const { name, text } of sources("src")) {
    for (const specifier of imports(text)) {
      assert.ok(
        specifier.startsWith("./") || specifier.startsWith("node:"),
        `${name} imports ${specifier}`,
      );
      assert.notEqual(specifier, "node:ffi", name);
    }
  }
});

test("src/ never reaches for Deno's or Bun's globals", () => {
  for (const { name, text } of sources("src")) {
    const code = text.split("\n").filter((line) =>
      !/^\s*(\*|\/\*|\/\/)/.test(line)
    ).join("\n");
    assert.doesNotMatch(
      code,
      // A use (Deno.env…) or a declaration of the global's shape ({ Deno?: {).
      /\b(?:Deno|Bun)\??\.(?:env|permissions|dlopen|build|pid|args)\b|\b(?:Deno|Bun)\??:\s*\{/,
      name,
    );
  }
});

test("ffi/ imports only the core, its own folder, and runtime modules", () => {
  for (const { name, text } of sources("ffi")) {
    for (const specifier of imports(text)) {
      assert.ok(
        specifier.startsWith("./") || specifier.startsWith("../src/") ||
          specifier.startsWith("node:") || specifier.startsWith("bun:"),
        `${name} imports ${specifier}`,
      );
    }
  }
});
