// serve and serveNode with the system's security policy deciding each
// request (peersec/access): a real checker over the test kernel of
// access_kernel_fake.ts (this machine has no LSM), and a recording request
// checker that shows what serve asks — curl and the Python client as
// separate processes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import {
  type AccessDecision,
  createAccessChecker,
  createRequestAccess,
  type RequestAccess,
} from "../access.ts";
import { serve, serveNode } from "../serve.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import { fakeSmack } from "./access_kernel_fake.ts";
import { curl, python, workspace } from "./serve_clients.ts";

const runtime = detectRuntime();

test(`${runtime} serve with access: a peer without a label is denied by the policy, request by request, with the connection kept and the handler never run`, async () => {
  const { directory, client, path } = workspace();
  const checker = createAccessChecker({
    files: fakeSmack({ "cli api": "r" }, ["cli", "api", "srv"]),
    onAudit: "ignore",
  });
  const access = createRequestAccess(checker, { smack: { object: "api" } });
  let handled = 0;
  const server = serve({ path, access }, () => {
    handled++;
    return new Response("ok");
  });
  await server.ready;
  try {
    const result = await python(client, path, {
      requests: [{ path: "/a" }, { path: "/b" }],
      keepalive: true,
    });
    assert.deepEqual(result.responses.map((response) => response.status), [
      403,
      403,
    ]);
    assert.match(result.responses[0].body!, /security policy denies/);
    assert.equal(handled, 0);
  } finally {
    await server.shutdown();
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} serve and serveNode ask the request checker with the peer's label, the method and the path as sent; its verdict decides; a checker that throws denies`, async () => {
  for (const entry of ["serve", "serveNode"] as const) {
    const { directory, path } = workspace();
    const asked: [string | null | undefined, string, string][] = [];
    const access = {
      check(
        subject: string | null | undefined,
        method: string,
        target: string,
      ) {
        asked.push([subject, method, target]);
        if (target === "/throws") throw new Error("checker broke");
        return { allowed: method === "GET" } as AccessDecision;
      },
    } as unknown as RequestAccess;
    const server = entry === "serve"
      ? serve({ path, access }, () => new Response("ok"))
      : serveNode({ path, access }, (_req, res) => res.end("ok"));
    await server.ready;
    try {
      const code = async (args: string[]) =>
        (await curl([
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "--path-as-is",
          "--unix-socket",
          path,
          ...args,
        ])).stdout;
      assert.equal(await code(["http://localhost//admin/./x?q=1"]), "200");
      assert.equal(await code(["-X", "POST", "http://localhost/items"]), "403");
      assert.equal(await code(["http://localhost/throws"]), "403");
      assert.deepEqual(asked, [
        [null, "GET", "//admin/./x?q=1"],
        [null, "POST", "/items"],
        [null, "GET", "/throws"],
      ]);
    } finally {
      await server.shutdown();
      rmSync(directory, { recursive: true, force: true });
    }
  }
});

test("serve refuses an access option that is not a request checker", () => {
  for (const access of [null, {}, "selinux", { check: "no" }]) {
    assert.throws(
      () =>
        serve(
          { path: "/tmp/x.sock", access: access as never },
          () => new Response(""),
        ),
      TypeError,
    );
  }
});
