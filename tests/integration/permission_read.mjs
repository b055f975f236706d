// Copied into a consumer project by tarball.mjs and run under Node's
// permission model: a node:net server on the UNIX socket path it is given
// reads its one client's credentials and label, sends them to the client as
// a JSON line and exits.
import net from "node:net";
import {
  getPeerCredentials,
  socketFd,
  tryGetPeerSecurityContext,
} from "peersec";

const server = net.createServer((socket) => {
  const fd = socketFd(socket);
  const report = {
    ...getPeerCredentials(fd),
    securityContext: tryGetPeerSecurityContext(fd),
  };
  socket.end(JSON.stringify(report) + "\n");
  server.close();
});
server.listen(process.argv[2], () => console.log("listening"));
