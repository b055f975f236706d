// The policy templates: the shipped files are the functions' defaults, and
// the generated text has the shape each LSM's loader reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  appArmorClientRules,
  appArmorServerAbstraction,
  selinuxPolicyModule,
  smackRules,
} from "../access.ts";
import { repoRoot } from "./helpers.ts";

const shipped = (name: string) =>
  readFileSync(join(repoRoot, "access", "templates", name), "utf8");

test("templates: the shipped files are the functions' output", () => {
  assert.equal(shipped("peersec_http.cil"), selinuxPolicyModule());
  assert.equal(
    shipped("apparmor/peersec-http-server"),
    appArmorServerAbstraction(),
  );
  assert.equal(
    shipped("apparmor/peersec-http-client.example"),
    appArmorClientRules(),
  );
  assert.equal(shipped("peersec-http.smack"), smackRules());
});

test("templates: the CIL module declares the class and the attributes' rules", () => {
  const cil = selinuxPolicyModule({
    servers: ["myapi_t"],
    readers: ["backup_t", "monitor_t"],
    writers: ["unconfined_t"],
  });
  const statements = cil.split("\n").filter((line) => line.startsWith("("));
  // Every statement's parentheses balance.
  for (const statement of statements) {
    let depth = 0;
    for (const character of statement) {
      depth += character === "(" ? 1 : character === ")" ? -1 : 0;
      assert.ok(depth >= 0, statement);
    }
    assert.equal(depth, 0, statement);
  }
  assert.ok(
    statements.includes(
      "(class peersec_http (get head post put patch delete))",
    ),
  );
  assert.ok(statements.includes("(classorder (unordered peersec_http))"));
  assert.ok(
    statements.includes(
      "(allow peersec_http_server security_t (security (compute_av)))",
    ),
  );
  assert.ok(
    statements.includes(
      "(allow peersec_http_reader peersec_http_server (peersec_http (get head)))",
    ),
  );
  assert.ok(
    statements.includes(
      "(typeattributeset peersec_http_reader (backup_t monitor_t))",
    ),
  );
  assert.ok(
    statements.includes("(typeattributeset peersec_http_server (myapi_t))"),
  );
  const other = selinuxPolicyModule({
    className: "api_calls",
    permissions: ["call", "list"],
  });
  assert.ok(other.includes("(class api_calls (call list))"));
  assert.ok(!other.includes("api_calls_reader api_calls_server"));
  assert.throws(() => selinuxPolicyModule({ servers: ["a b"] }), RangeError);
  assert.throws(
    () => selinuxPolicyModule({ readers: "x_t" as never }),
    TypeError,
  );
  assert.throws(() => selinuxPolicyModule({ className: "x)(" }), RangeError);
  assert.throws(() => selinuxPolicyModule({ permissions: [] }), RangeError);
});

test("templates: AppArmor and Smack texts", () => {
  const server = appArmorServerAbstraction();
  assert.match(
    server,
    /^ {2}\/sys\/kernel\/security\/apparmor\/\.access rw,$/m,
  );
  for (
    const line of server.split("\n").filter((line) =>
      line && !line.startsWith("#")
    )
  ) {
    assert.match(line, /^ {2}\S.*,$/, line);
  }
  const client = appArmorClientRules("myapi");
  assert.match(client, /^ {2}\/peersec-http\/myapi\/\{GET,HEAD\}\/\*\* r,$/m);
  assert.match(
    client,
    /^ {2}deny \/peersec-http\/myapi\/\*\/admin\{,\/\*\*\} r,$/m,
  );
  assert.throws(() => appArmorClientRules("a/b"), RangeError);
  assert.throws(() => appArmorServerAbstraction("relative"), RangeError);
  const rules = smackRules({
    server: "api",
    object: "api-req",
    clients: { backup: "R", admin: "wr" },
  });
  assert.equal(
    rules,
    "backup api w\napi backup w\nbackup api-req r\nadmin api w\napi admin w\nadmin api-req rw\n",
  );
  // Every line is "subject object access", as load2 takes it.
  for (const line of smackRules().trimEnd().split("\n")) {
    assert.match(
      line,
      /^[^\s/"'\\-][^\s/"'\\]* [^\s/"'\\-][^\s/"'\\]* [rwxatl]+$/,
      line,
    );
  }
  assert.throws(() => smackRules({ server: "a b" }), RangeError);
  assert.throws(() => smackRules({ clients: { x: "q" } }), RangeError);
});
