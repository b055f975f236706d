// An HTTP server on a UNIX socket, in Deno, that answers each request with the
// identity of the process on the other end of the connection.
//
//   deno run --allow-ffi --allow-net --allow-read --allow-write examples/deno_http_server.ts /tmp/peersec-demo.sock
//   curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Deno.serve exposes no socket fds, so connections are accepted with node:net
// and handed to node:http; req.socket then carries the fd.
import http from "node:http";
import net from "node:net";
import { rmSync } from "node:fs";
import { getPeerIdentity, withSocketFd } from "peersec";

const path = Deno.args[0] ?? "/tmp/peersec-demo.sock";

const httpServer = http.createServer((request, response) => {
  const identity = withSocketFd(request.socket, getPeerIdentity);
  response.setHeader("content-type", "application/json");
  response.end(
    JSON.stringify({
      pid: identity.pid,
      uid: identity.uid,
      gid: identity.gid,
      groups: identity.groups,
      label: identity.securityContext ?? "none",
    }) + "\n",
  );
});

const server = net.createServer((socket) =>
  httpServer.emit("connection", socket)
);
server.listen(path, () => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    server.close();
    rmSync(path, { force: true }); // in case the runtime left the file
    Deno.exit(0);
  });
}
