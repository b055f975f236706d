// An HTTP server on a UNIX socket, in Node, that answers each request with the
// identity of the process on the other end of the connection.
//
// Node runs the npm package, which build_npm.ts builds into npm/ (the
// repository's package.json maps "peersec" there for Node). In a clone of the
// repository, after `npm install`:
//
//   $ npx deno run -A build_npm.ts --skip-tests
//   $ node examples/node_http_server.mjs /tmp/peersec-demo.sock
//
// then, from another terminal:
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it (Node removes the socket file). Node 20-25 use koffi, which
// `npm install` installed here; Node 26+ also has node:ffi built in. In a
// project of your own: `npm install peersec koffi` (koffi only before Node
// 26), and the same code.
import http from "node:http";
import { assertAvailable, getPeerIdentity, socketFd } from "peersec";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

// Node 20-25 without koffi: ERR_KOFFI_MISSING here, at start, rather than a
// failed request (curl: "empty reply") on every connection.
assertAvailable();

const server = http.createServer((request, response) => {
  try {
    const identity = getPeerIdentity(socketFd(request.socket));
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify(identity) + "\n");
  } catch (error) {
    console.error(error); // the server says what went wrong, not just the client
    response.statusCode = 500;
    response.end(`${error}\n`);
  }
});
server.listen(path, () => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"]) {
  // Node removes the socket file when the server closes.
  process.once(signal, () => server.close(() => process.exit(0)));
}
