// An HTTP server on a UNIX socket, in Deno, that answers each request with the
// identity of the process on the other end of the connection.
//
// Run it in a clone of the repository, after `npm install` (which installs
// Deno into node_modules/.bin; deno.json maps "peersec" to mod.ts):
//
//   $ npx deno run --allow-ffi --allow-net --allow-read --allow-write examples/deno_http_server.ts /tmp/peersec-demo.sock
//
// then, from another terminal:
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it and removes the socket file. --allow-ffi is for peersec
// (getsockopt in libc); the others are for the server (its socket file).
//
// Deno.serve exposes no socket fds, so this is node:http, listening itself:
// its UNIX connections carry their fd (withSocketFd also covers TCP, where
// Deno gives only a duplicate). Connections handed to Deno's node:http from
// a node:net server lose keep-alive, so don't put one in front.
import http from "node:http";
import { rmSync } from "node:fs";
import { assertAvailable, getPeerIdentity, withSocketFd } from "peersec";

const path = Deno.args[0] ?? "/tmp/peersec-demo.sock";

// Without --allow-ffi: ERR_FFI_PERMISSION here, at start. Later, Deno's
// node:http would turn the handler's error into a bare 400 and print nothing.
assertAvailable();

const server = http.createServer((request, response) => {
  try {
    const identity = withSocketFd(request.socket, getPeerIdentity);
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify(identity) + "\n");
  } catch (error) {
    console.error(error);
    response.statusCode = 500;
    response.end(`${error}\n`);
  }
});
server.listen(path, () => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    server.close();
    rmSync(path, { force: true }); // in case the runtime left the file
    Deno.exit(0);
  });
}
