/* The lane's ground truth and helpers, a small static C program that runs
 * inside the guest. It reads SO_PEERSEC with one large buffer (no growth loop,
 * no NUL handling: the kernel's exact bytes and length) and prints JSON.
 *
 *   lsmtool socketpair                  SO_PEERSEC of a socketpair's end
 *   lsmtool serve <path> <client...>    listen, start the client, accept,
 *                                       print the accepted peer's SO_PEERSEC
 *   lsmtool listen <path>               accept and hold connections (forever)
 *   lsmtool client-side <path>          connect, print SO_PEERSEC of own end
 *   lsmtool listening <path>            SO_PEERSEC of a listening socket
 *   lsmtool connect <path>              connect, wait for the server to close
 *   lsmtool as <mode> <label> <argv...> exec argv under a label
 *                                       (mode: selinux, smack, apparmor,
 *                                       apparmor-stack)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char buf[65536];

static void print_peersec(int fd, const char *extra) {
  socklen_t len = sizeof buf;
  int rc = getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len);
  int err = rc == 0 ? 0 : errno;
  printf("{\"errno\":%d,\"len\":%u,\"hex\":\"", err, rc == 0 ? len : 0);
  if (rc == 0)
    for (socklen_t i = 0; i < len; i++) printf("%02x", buf[i]);
  printf("\"%s}\n", extra ? extra : "");
  fflush(stdout);
}

static int unix_socket(const char *path, int listening) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, path, sizeof address.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (listening) {
    unlink(path);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) ||
        listen(fd, 16))
      return -1;
  } else {
    for (int tries = 0; connect(fd, (struct sockaddr *)&address,
                                sizeof address) != 0; tries++) {
      if (tries > 500) return -1;
      usleep(10000);
    }
  }
  return fd;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -1;
  ssize_t written = write(fd, text, strlen(text));
  close(fd);
  return written == (ssize_t)strlen(text) ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *command = argv[1];
  if (!strcmp(command, "socketpair")) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return 1;
    print_peersec(fds[0], NULL);
    return 0;
  }
  if (!strcmp(command, "serve") && argc >= 4) {
    int listener = unix_socket(argv[2], 1);
    if (listener < 0) return perror("listen"), 1;
    pid_t child = fork();
    if (child == 0) {
      execv(argv[3], argv + 3);
      perror("exec client");
      _exit(127);
    }
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) return perror("accept"), 1;
    struct ucred cred;
    socklen_t cred_len = sizeof cred;
    getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"pid\":%d,\"clientPid\":%d", cred.pid,
             child);
    print_peersec(connection, extra);
    close(connection);
    waitpid(child, NULL, 0);
    unlink(argv[2]);
    return 0;
  }
  if (!strcmp(command, "listen") && argc == 3) {
    int listener = unix_socket(argv[2], 1);
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
    int listener = unix_socket(argv[2], 1);
    if (listener < 0) return perror("listen"), 1;
    print_peersec(listener, NULL);
    unlink(argv[2]);
    return 0;
  }
  if (!strcmp(command, "client-side") && argc == 3) {
    int fd = unix_socket(argv[2], 0);
    if (fd < 0) return perror("connect"), 1;
    print_peersec(fd, NULL);
    return 0;
  }
  if (!strcmp(command, "connect") && argc == 3) {
    int fd = unix_socket(argv[2], 0);
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
  fprintf(stderr, "lsmtool: bad arguments\n");
  return 2;
}
