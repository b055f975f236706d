// An HTTP server on a UNIX socket, in Bun, with node:http, that answers each
// request with the identity of the process on the other end.
//
//   bun examples/bun_http_server.ts /tmp/peersec-demo.sock
//   curl --unix-socket /tmp/peersec-demo.sock http://localhost/
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
