// The same answer with Bun.listen, Bun's own socket server, speaking just
// enough HTTP/1.1 for one request per connection.
//
// Run it in a clone of the repository, after `npm install` (which installs
// Bun into node_modules/.bin; Bun runs the TypeScript sources):
//
//   $ npx bun examples/bun_listen_server.ts /tmp/peersec-demo.sock
//
// then, from another terminal:
//
//   $ curl --unix-socket /tmp/peersec-demo.sock http://localhost/
//
// Ctrl-C stops it and removes the socket file.
import { rmSync } from "node:fs";
import { getPeerIdentity, socketFd } from "peersec";

const path = process.argv[2] ?? "/tmp/peersec-demo.sock";

const listener = Bun.listen({
  unix: path,
  socket: {
    data(socket) {
      // The identity is the connection's, whatever the request says.
      const identity = getPeerIdentity(socketFd(socket));
      const body = JSON.stringify(identity) + "\n";
      socket.end(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    },
  },
});
console.log(`listening on ${path}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    listener.stop(true);
    rmSync(path, { force: true }); // in case the runtime left the file
    process.exit(0);
  });
}
