// An HTTP server on a UNIX socket, in Node, that answers each request with the
// identity of the process on the other end of the connection.
//
//   npm install peersec koffi      (koffi only before Node 26)
//   node examples/node_http_server.mjs /tmp/peersec-demo.sock
//   curl --unix-socket /tmp/peersec-demo.sock http://localhost/
import http from "node:http";
import { rmSync } from "node:fs";
import { getPeerIdentity, socketFd } from "peersec";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

const server = http.createServer((request, response) => {
  const identity = getPeerIdentity(socketFd(request.socket));
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
server.listen(path, () => console.log(`listening on ${path}`));

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    rmSync(path, { force: true }); // in case the runtime left the file
    process.exit(0);
  });
}
