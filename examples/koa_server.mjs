// A Koa 3 app behind peersec: serveNode reads each connection's peer at
// accept (a policy could refuse it before any route runs), and peerOf(req)
// gives a route the identity of the process on the other end. The same file
// runs in Node, Deno and Bun.
//
// In a clone of the repository, after `npm install` (Node runs the npm
// build; Deno and Bun run the sources):
//
//   $ npx deno run -A build_npm.ts --skip-tests
//   $ node examples/koa_server.mjs /tmp/peersec-demo.sock
//   $ npx bun examples/koa_server.mjs /tmp/peersec-demo.sock
//   $ npx deno run --allow-ffi --allow-read --allow-write --allow-net --allow-sys --allow-env examples/koa_server.mjs /tmp/peersec-demo.sock
//
// then, from another terminal (as any user: the socket is 0666 and
// allow: "everyone" serves every peer — say who may with allow: [...]):
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it and removes the socket file.
import Koa from "koa";
import { peerOf, serveNode } from "peersec/serve";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

const app = new Koa();
app.use((context) => {
  context.body = peerOf(context.req);
});

const server = serveNode(
  { path, mode: 0o666, allow: "everyone" },
  app.callback(),
);
server.ready.then(() => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => server.shutdown().then(() => process.exit(0)));
}
