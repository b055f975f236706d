// Serving on sockets a service manager passed in (systemd-style socket
// activation), in Node, Bun or Deno: each client gets its identity as JSON.
//
//   a unit pair like:
//     peersec-demo.socket:  [Socket] ListenStream=/run/peersec-demo.sock
//     peersec-demo.service: [Service] ExecStart=/usr/bin/node /opt/demo/socket_activation.mjs
//   or by hand:  systemd-socket-activate -l /tmp/peersec-demo.sock node examples/socket_activation.mjs
//   Deno: deno run --allow-ffi --allow-read --allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES examples/socket_activation.mjs
import net from "node:net";
import { getPeerIdentity, listenFds, withSocketFd } from "peersec";

const passed = listenFds({ unsetEnvironment: true });
if (passed.length === 0) {
  console.error(
    "no sockets passed (LISTEN_FDS / LISTEN_PID not set for this process)",
  );
  process.exit(1);
}
for (const { fd, name } of passed) {
  net.createServer((socket) => {
    const identity = withSocketFd(socket, getPeerIdentity);
    socket.end(
      JSON.stringify({
        ...identity,
        label: identity.securityContext ?? "none",
      }) + "\n",
    );
  }).listen({ fd }, () => console.log(`listening on fd ${fd} (${name})`));
}
