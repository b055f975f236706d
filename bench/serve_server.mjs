// One server for `npm run bench:serve`, in whichever runtime runs this file:
//   <runtime> bench/serve_server.mjs <kind> <socket path>
// kinds: plain (node:http without peersec: the floor for this design),
// plain-front (node:http fed by a node:net server with emit("connection"),
// which is how serve reaches node:http in Bun), serve
// (peersec's serve), serve-policy (with a policy of three rules), native
// (Deno.serve or Bun.serve on the same kind of socket). Every one answers
// "ok\n"; serve answers with the peer's pid to prove it read it.
// web-objects (no path) prints the µs a Request + Response pair costs here.
import http from "node:http";
import net from "node:net";
import { rmSync } from "node:fs";

const [kind, path] = typeof Deno === "object"
  ? Deno.args
  : process.argv.slice(2);
if (kind === "web-objects") {
  // What any fetch-style server on node:http pays per request before doing
  // anything: the Request it hands out (with an abort signal) and the
  // Response the handler makes. Prints µs per pair.
  const pair = () => {
    new Request("http://localhost/", {
      method: "GET",
      headers: new Headers([["host", "localhost"]]),
      signal: new AbortController().signal,
    });
    return new Response("ok\n");
  };
  for (let index = 0; index < 5000; index++) pair();
  const count = 50_000;
  const start = performance.now();
  for (let index = 0; index < count; index++) pair();
  console.log(((performance.now() - start) * 1000 / count).toFixed(1));
  process.exit(0);
}
rmSync(path, { force: true });
const ready = () => console.log("listening");

if (kind === "plain") {
  http.createServer((_request, response) => response.end("ok\n"))
    .listen(path, ready);
} else if (kind === "plain-front") {
  const httpServer = http.createServer((_request, response) =>
    response.end("ok\n")
  );
  net.createServer((socket) => httpServer.emit("connection", socket))
    .listen(path, ready);
} else if (kind === "serve" || kind === "serve-policy") {
  const { serve } = await import("peersec/serve");
  serve({
    path,
    onListen: ready,
    allow: kind === "serve-policy"
      ? [{ selinuxType: "backup_t" }, { group: 4 }, { user: "root" }]
      : "everyone",
  }, (_request, { peer }) => new Response(`ok ${peer.pid}\n`));
} else if (kind === "native" && typeof Deno === "object") {
  Deno.serve({ path, onListen: ready }, () => new Response("ok\n"));
} else if (kind === "native" && typeof Bun === "object") {
  Bun.serve({ unix: path, fetch: () => new Response("ok\n") });
  ready();
} else {
  console.error(`no such server here: ${kind}`);
  process.exit(2);
}
