// A Fastify 5 app behind peersec: serveNode reads each connection's peer at
// accept (a policy could refuse it before any route runs), and peerOf(req)
// gives a route the identity of the process on the other end. The same file
// runs in Node, Deno and Bun.
//
// In a clone of the repository, after `npm install` (Node runs the npm
// build; Deno and Bun run the sources):
//
//   $ npx deno run -A build_npm.ts --skip-tests
//   $ node examples/fastify_server.mjs /tmp/peersec-demo.sock
//   $ npx bun examples/fastify_server.mjs /tmp/peersec-demo.sock
//   $ npx deno run --allow-ffi --allow-read --allow-write --allow-net --allow-sys --allow-env examples/fastify_server.mjs /tmp/peersec-demo.sock
//
// then, from another terminal (as any user: the socket is 0666 and
// allow: "everyone" serves every peer — say who may with allow: [...]):
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it and removes the socket file.
import Fastify from "fastify";
import { peerOf, serveNode } from "peersec/serve";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

const fastify = Fastify();
fastify.get("/", (request) => peerOf(request.raw));
await fastify.ready();

const server = serveNode(
  { path, mode: 0o666, allow: "everyone" },
  (req, res) => fastify.routing(req, res),
);
server.ready.then(() => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => server.shutdown().then(() => process.exit(0)));
}
