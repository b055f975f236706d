// An HTTP server on a UNIX socket, in Bun, with node:http, that answers each
// request with the identity of the process on the other end.
//
// Run it in a clone of the repository, after `npm install` (which installs
// Bun into node_modules/.bin; Bun runs the TypeScript sources, and the
// repository's package.json maps "peersec" to mod.ts for it):
//
//   $ npx bun examples/bun_http_server.ts /tmp/peersec-demo.sock
//
// then, from another terminal:
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it and removes the socket file. In a project of your own:
// `bun add peersec`, and the same code.
//
// Bun's node:http gives request sockets no fd (and Bun.serve none at all), so
// connections are accepted with node:net, whose sockets carry it, and handed
// to node:http.
import http from "node:http";
import net from "node:net";
import { rmSync } from "node:fs";
import { getPeerIdentity, socketFd } from "peersec";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

const httpServer = http.createServer((request, response) => {
  const identity = getPeerIdentity(socketFd(request.socket));
  response.setHeader("content-type", "application/json");
  response.end(
    JSON.stringify(identity) + "\n",
  );
});

const server = net.createServer((socket) =>
  httpServer.emit("connection", socket)
);
server.listen(path, () => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    server.close();
    rmSync(path, { force: true }); // in case the runtime left the file
    process.exit(0);
  });
}
