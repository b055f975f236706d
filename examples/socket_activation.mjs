// HTTP on sockets a service manager passed in (systemd-style socket
// activation), in Node, Bun or Deno: each request is answered with the
// identity of the process that made its connection.
//
//   a unit pair like:
//     peersec-demo.socket:  [Socket] ListenStream=/run/peersec-demo.sock
//     peersec-demo.service: [Service] ExecStart=/usr/bin/node /opt/demo/socket_activation.mjs
//   or by hand:  systemd-socket-activate -l /tmp/peersec-demo.sock node examples/socket_activation.mjs
//   Deno: deno run --allow-ffi --allow-read --allow-write --allow-net --allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES examples/socket_activation.mjs
//   curl --unix-socket /tmp/peersec-demo.sock http://localhost/
import { listenFds } from "peersec";
import { serve } from "peersec/serve";

const passed = listenFds({ unsetEnvironment: true });
if (passed.length === 0) {
  console.error(
    "no sockets passed (LISTEN_FDS / LISTEN_PID not set for this process)",
  );
  process.exit(1);
}
const servers = passed.map(({ fd, name }) =>
  serve({
    fd,
    onListen: () => console.log(`listening on fd ${fd} (${name})`),
  }, (_request, { peer }) => Response.json(peer))
);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => servers.forEach((server) => server.shutdown()));
}
