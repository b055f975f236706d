// HTTP on sockets a service manager passed in (systemd-style socket
// activation), in Node, Bun or Deno: each request is answered with the
// identity of the process that made its connection. serve's default policy
// answers this user's own processes only; others get a 403 (its `allow`
// option admits more).
//
// Under systemd, a unit pair like:
//   peersec-demo.socket:  [Socket] ListenStream=/run/peersec-demo.sock
//   peersec-demo.service: [Service] ExecStart=/usr/bin/node /opt/demo/socket_activation.mjs
//
// By hand, in a clone of the repository after `npm install`, with systemd's
// systemd-socket-activate, which listens and starts the server on the first
// connection. In Bun or Deno (which run the sources; the runtime is named by
// its path, not through npx: LISTEN_PID must be the server's own pid):
//
//   $ systemd-socket-activate -l /tmp/peersec-demo.sock --fdname=peersec-demo node_modules/.bin/bun examples/socket_activation.mjs
//   $ systemd-socket-activate -l /tmp/peersec-demo.sock --fdname=peersec-demo node_modules/.bin/deno run --allow-ffi --allow-env=LISTEN_PID,LISTEN_PIDFDID,LISTEN_FDS,LISTEN_FDNAMES examples/socket_activation.mjs
//
// In Node, which runs the npm package, build it first:
//
//   $ npx deno run -A build_npm.ts --skip-tests
//   $ systemd-socket-activate -l /tmp/peersec-demo.sock --fdname=peersec-demo node examples/socket_activation.mjs
//
// then, from another terminal:
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it (systemd-socket-activate leaves its socket file behind:
// remove it before the next run).
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
