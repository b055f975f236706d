/* The lane's ground truth and helpers, a small static C program that runs
 * inside the guest. It reads SO_PEERSEC with one large buffer (no growth loop,
 * no NUL handling: the kernel's exact bytes and length) and prints JSON.
 *
 * An <address> is `unix:<path>` (SOCK_STREAM), `seqpacket:<path>`,
 * `tcp:<ipv4>:<port>` or `tcp:[<ipv6>]:<port>` (port 0: any free port), or
 * the same with `sctp:` (a one-to-one SCTP socket: SOCK_STREAM, IPPROTO_SCTP).
 *
 *   lsmtool socketpair [stream|seqpacket|dgram]
 *                                       SO_PEERSEC of a socketpair's end
 *   lsmtool serve <address> <client...> listen, start the client (the bound
 *                                       address appended), accept, print the
 *                                       accepted peer's SO_PEERSEC
 *   lsmtool listen <address>            accept and hold connections (forever)
 *   lsmtool client-side <address>       connect, print SO_PEERSEC of own end
 *   lsmtool listening <address>         SO_PEERSEC of a listening socket
 *   lsmtool connect <address>           connect, wait for the server to close
 *   lsmtool as <mode> <label> <argv...> exec argv under a label
 *                                       (mode: selinux, smack, apparmor,
 *                                       apparmor-stack)
 *   lsmtool inherit <truth-file> <name>=<kind>[,<argument>]... -- <argv...>
 *       makes one fd per name, writes its SO_PEERSEC (one JSON line each) to
 *       <truth-file>, and execs argv with the fds left open and named in
 *       PEERSEC_LANE_FDS ("name=fd[:clientPid],..."): the runtime then reads
 *       the very fds the truth was read from. Kinds:
 *         pair-stream, pair-seqpacket, pair-dgram   a socketpair's end
 *         accepted,<address>,<client...>            an accepted connection
 *                                                   (client words split on +)
 *         client-side,<address>                     a connected client
 *         listening,<address>                       a listening socket
 *         unconnected-tcp4, unconnected-tcp6        socket(), nothing else
 *         dgram-connected                           a UNIX datagram socket
 *                                                   connect()ed to another
 *         dgram-unconnected                         a bound, unconnected one
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char buf[65536];

static void print_peersec(FILE *out, int fd, const char *prefix,
                          const char *extra) {
  socklen_t len = sizeof buf;
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len);
  int err = rc == 0 ? 0 : errno;
  fprintf(out, "%s{\"errno\":%d,\"len\":%u,\"hex\":\"", prefix ? prefix : "",
          err, rc == 0 ? len : 0);
  if (rc == 0)
    for (socklen_t i = 0; i < len; i++) fprintf(out, "%02x", buf[i]);
  fprintf(out, "\"%s}%s\n", extra ? extra : "", prefix ? "}" : "");
  fflush(out);
}

/* A parsed <address>. */
struct address {
  int family, type, protocol;
  struct sockaddr_storage storage;
  socklen_t len;
};

static int parse_address(const char *text, struct address *out) {
  memset(out, 0, sizeof *out);
  if (text[0] == '/' || !strncmp(text, "unix:", 5) ||
      !strncmp(text, "seqpacket:", 10)) {
    int seqpacket = !strncmp(text, "seqpacket:", 10);
    const char *path = text[0] == '/' ? text : strchr(text, ':') + 1;
    struct sockaddr_un *un = (struct sockaddr_un *)&out->storage;
    un->sun_family = AF_UNIX;
    strncpy(un->sun_path, path, sizeof un->sun_path - 1);
    out->family = AF_UNIX;
    out->type = seqpacket ? SOCK_SEQPACKET : SOCK_STREAM;
    out->len = sizeof *un;
    return 0;
  }
  if (strncmp(text, "tcp:", 4) && strncmp(text, "sctp:", 5)) return -1;
  out->protocol = text[0] == 's' ? IPPROTO_SCTP : 0;
  char host[128];
  const char *rest = strchr(text, ':') + 1, *colon;
  if (rest[0] == '[') {
    const char *close = strchr(rest, ']');
    if (!close || close[1] != ':' || close - rest - 1 >= (long)sizeof host)
      return -1;
    memcpy(host, rest + 1, close - rest - 1);
    host[close - rest - 1] = 0;
    colon = close + 1;
  } else {
    colon = strrchr(rest, ':');
    if (!colon || colon - rest >= (long)sizeof host) return -1;
    memcpy(host, rest, colon - rest);
    host[colon - rest] = 0;
  }
  int port = atoi(colon + 1);
  out->type = SOCK_STREAM;
  struct sockaddr_in *in4 = (struct sockaddr_in *)&out->storage;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->storage;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = out->family = AF_INET;
    in4->sin_port = htons(port);
    out->len = sizeof *in4;
    return 0;
  }
  memset(&out->storage, 0, sizeof out->storage);
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = out->family = AF_INET6;
    in6->sin6_port = htons(port);
    out->len = sizeof *in6;
    return 0;
  }
  return -1;
}

/* The address a listener is bound to, as an <address> (its real port). */
static void format_bound(int fd, const char *requested, char *out, size_t size) {
  const char *scheme = strncmp(requested, "sctp:", 5) ? "tcp" : "sctp";
  struct sockaddr_storage storage;
  socklen_t len = sizeof storage;
  char host[INET6_ADDRSTRLEN];
  getsockname(fd, (struct sockaddr *)&storage, &len);
  if (storage.ss_family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&storage;
    inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
    snprintf(out, size, "%s:%s:%d", scheme, host, ntohs(in4->sin_port));
  } else if (storage.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&storage;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(out, size, "%s:[%s]:%d", scheme, host, ntohs(in6->sin6_port));
  } else {
    snprintf(out, size, "%s", requested);
  }
}

static int open_listener(const char *text) {
  struct address address;
  if (parse_address(text, &address)) return errno = EINVAL, -1;
  int fd = socket(address.family, address.type, address.protocol);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.family == AF_UNIX)
    unlink(((struct sockaddr_un *)&address.storage)->sun_path);
  if (bind(fd, (struct sockaddr *)&address.storage, address.len) ||
      listen(fd, 16))
    return -1;
  return fd;
}

static int open_client(const char *text) {
  struct address address;
  if (parse_address(text, &address)) return errno = EINVAL, -1;
  for (int tries = 0;; tries++) {
    int fd = socket(address.family, address.type, address.protocol);
    if (fd < 0) return -1;
    if (address.family != AF_UNIX) {
      /* From the server's own address, so both directions of the
       * connection take the same labeling rule (loopback would pick
       * 127.0.0.1 as the source for any 127.x address). */
      struct address local = address;
      ((struct sockaddr_in *)&local.storage)->sin_port = 0;
      if (bind(fd, (struct sockaddr *)&local.storage, local.len)) return -1;
    }
    if (connect(fd, (struct sockaddr *)&address.storage, address.len) == 0)
      return fd;
    close(fd);
    if (tries > 500) return -1;
    usleep(10000);
  }
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -1;
  ssize_t written = write(fd, text, strlen(text));
  close(fd);
  return written == (ssize_t)strlen(text) ? 0 : -1;
}

/* Starts argv (the address appended), accepts its connection. */
static int accept_from(const char *address, char **argv, int argc,
                       pid_t *child_out) {
  int listener = open_listener(address);
  if (listener < 0) return perror("listen"), -1;
  char bound[256];
  format_bound(listener, address, bound, sizeof bound);
  char **client = calloc(argc + 2, sizeof *client);
  memcpy(client, argv, argc * sizeof *client);
  client[argc] = bound;
  pid_t child = fork();
  if (child == 0) {
    /* The client holds no other fd: one it kept would keep another
     * connection of this process from ever ending. */
    for (int fd = 3; fd < 1024; fd++) close(fd);
    execv(client[0], client);
    perror("exec client");
    _exit(127);
  }
  free(client);
  int connection = accept(listener, NULL, NULL);
  if (connection < 0) return perror("accept"), -1;
  close(listener);
  if (address[0] == '/' || !strncmp(address, "unix:", 5) ||
      !strncmp(address, "seqpacket:", 10))
    unlink(strchr(address, '/'));
  *child_out = child;
  return connection;
}

static int socketpair_of(const char *kind, int fds[2]) {
  int type = !strcmp(kind, "seqpacket") ? SOCK_SEQPACKET
             : !strcmp(kind, "dgram")   ? SOCK_DGRAM
                                        : SOCK_STREAM;
  return socketpair(AF_UNIX, type, 0, fds);
}

/* Two UNIX datagram sockets; the first connect()ed to the second unless
 * `connected` is 0. Returns the first. */
static int datagram_socket(const char *name, int connected) {
  struct sockaddr_un self = {.sun_family = AF_UNIX},
                     other = {.sun_family = AF_UNIX};
  snprintf(self.sun_path, sizeof self.sun_path, "/tmp/%s-a.dgram", name);
  snprintf(other.sun_path, sizeof other.sun_path, "/tmp/%s-b.dgram", name);
  unlink(self.sun_path);
  unlink(other.sun_path);
  int a = socket(AF_UNIX, SOCK_DGRAM, 0), b = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (a < 0 || b < 0 || bind(a, (struct sockaddr *)&self, sizeof self) ||
      bind(b, (struct sockaddr *)&other, sizeof other))
    return -1;
  if (connected && connect(a, (struct sockaddr *)&other, sizeof other))
    return -1;
  return a;
}

/* One `name=kind[,argument...]` of `inherit`: the fd, or -1. */
static int inherited_fd(char *spec, char **name_out, pid_t *child_out) {
  char *equals = strchr(spec, '=');
  *name_out = spec;
  *child_out = 0;
  if (!equals) return errno = EINVAL, -1;
  *equals = 0;
  char *kind = equals + 1, *argument = strchr(kind, ',');
  if (argument) *argument++ = 0;
  if (!strncmp(kind, "pair-", 5)) {
    int fds[2];
    return socketpair_of(kind + 5, fds) ? -1 : fds[0];
  }
  if (!strcmp(kind, "unconnected-tcp4")) return socket(AF_INET, SOCK_STREAM, 0);
  if (!strcmp(kind, "unconnected-tcp6"))
    return socket(AF_INET6, SOCK_STREAM, 0);
  if (!strcmp(kind, "dgram-connected")) return datagram_socket(spec, 1);
  if (!strcmp(kind, "dgram-unconnected")) return datagram_socket(spec, 0);
  if (!argument) return errno = EINVAL, -1;
  if (!strcmp(kind, "listening")) return open_listener(argument);
  if (!strcmp(kind, "client-side")) return open_client(argument);
  if (!strcmp(kind, "accepted")) {
    char *client = strchr(argument, ',');
    if (!client) return errno = EINVAL, -1;
    *client++ = 0;
    char *words[32];
    int count = 0;
    for (char *word = strtok(client, "+"); word && count < 31;
         word = strtok(NULL, "+"))
      words[count++] = word;
    return accept_from(argument, words, count, child_out);
  }
  return errno = EINVAL, -1;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *command = argv[1];
  if (!strcmp(command, "socketpair")) {
    int fds[2];
    if (socketpair_of(argc > 2 ? argv[2] : "stream", fds)) return 1;
    print_peersec(stdout, fds[0], NULL, NULL);
    return 0;
  }
  if (!strcmp(command, "serve") && argc >= 4) {
    pid_t child;
    int connection = accept_from(argv[2], argv + 3, argc - 3, &child);
    if (connection < 0) return 1;
    struct ucred cred = {0};
    socklen_t cred_len = sizeof cred;
    getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"pid\":%d,\"clientPid\":%d", cred.pid,
             child);
    print_peersec(stdout, connection, NULL, extra);
    close(connection);
    waitpid(child, NULL, 0);
    return 0;
  }
  if (!strcmp(command, "listen") && argc == 3) {
    int listener = open_listener(argv[2]);
    if (listener < 0) return perror("listen"), 1;
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
      int connection = accept(listener, NULL, NULL);
      if (connection < 0) continue;
      if (fork() == 0) {
        char byte;
        while (read(connection, &byte, 1) > 0) {
        }
        _exit(0);
      }
      close(connection);
    }
  }
  if (!strcmp(command, "listening") && argc == 3) {
    int listener = open_listener(argv[2]);
    if (listener < 0) return perror("listen"), 1;
    print_peersec(stdout, listener, NULL, NULL);
    if (argv[2][0] == '/' || !strncmp(argv[2], "unix:", 5))
      unlink(strchr(argv[2], '/'));
    return 0;
  }
  if (!strcmp(command, "client-side") && argc == 3) {
    int fd = open_client(argv[2]);
    if (fd < 0) return perror("connect"), 1;
    print_peersec(stdout, fd, NULL, NULL);
    return 0;
  }
  if (!strcmp(command, "connect") && argc == 3) {
    int fd = open_client(argv[2]);
    if (fd < 0) return perror("connect"), 1;
    char byte;
    write(fd, "x", 1);
    while (read(fd, &byte, 1) > 0) {
    }
    return 0;
  }
  if (!strcmp(command, "as") && argc >= 5) {
    const char *mode = argv[2], *label = argv[3];
    char text[4096];
    int rc = -1;
    if (!strcmp(mode, "selinux")) {
      rc = write_file("/proc/self/attr/exec", label);
    } else if (!strcmp(mode, "smack")) {
      rc = write_file("/proc/self/attr/current", label);
    } else if (!strcmp(mode, "apparmor")) {
      snprintf(text, sizeof text, "exec %s", label);
      rc = write_file("/proc/self/attr/exec", text);
    } else if (!strcmp(mode, "apparmor-stack")) {
      snprintf(text, sizeof text, "stack %s", label);
      rc = write_file("/proc/self/attr/exec", text);
    }
    if (rc) {
      fprintf(stderr, "lsmtool as %s %s: %s\n", mode, label, strerror(errno));
      return 1;
    }
    execv(argv[4], argv + 4);
    perror("exec");
    return 127;
  }
  if (!strcmp(command, "inherit") && argc >= 5) {
    FILE *truth = fopen(argv[2], "w");
    if (!truth) return perror(argv[2]), 1;
    static char names[8192];
    size_t used = 0;
    int at = 3;
    for (; at < argc && strcmp(argv[at], "--"); at++) {
      char *name;
      pid_t child;
      int fd = inherited_fd(argv[at], &name, &child);
      char prefix[256], extra[64] = "";
      snprintf(prefix, sizeof prefix,
               "{\"runtime\":\"c\",\"scenario\":\"%s\",\"truth\":", name);
      if (fd < 0) {
        fprintf(truth, "%s{\"setupErrno\":%d}}\n", prefix, errno);
        continue;
      }
      if (child) {
        struct ucred cred = {0};
        socklen_t cred_len = sizeof cred;
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len);
        snprintf(extra, sizeof extra, ",\"pid\":%d,\"clientPid\":%d",
                 cred.pid, child);
      }
      print_peersec(truth, fd, prefix, extra);
      used += snprintf(names + used, sizeof names - used, "%s%s=%d",
                       used ? "," : "", name, fd);
      if (child)
        used += snprintf(names + used, sizeof names - used, ":%d", child);
    }
    fclose(truth);
    if (at + 1 >= argc) return fprintf(stderr, "inherit: no command\n"), 2;
    setenv("PEERSEC_LANE_FDS", names, 1);
    signal(SIGCHLD, SIG_DFL);
    execv(argv[at + 1], argv + at + 1);
    perror("exec");
    return 127;
  }
  fprintf(stderr, "lsmtool: bad arguments\n");
  return 2;
}
