/* The C floor: the same getsockopt calls peersec makes, on one connected
 * AF_UNIX socketpair, timed the same way. Prints one JSON line.
 *   floor <calls> <repetitions> [--labeled-fd]
 * --labeled-fd: also time SO_PEERSEC on a duplicate of the fd numbered from
 * 100 up ("labelPresent"), where the benchmark's stub getsockopt answers
 * with a label. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* SO_PEERCRED into a struct ucred. */
static int credentials(int fd) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) abort();
  return cred.pid;
}

/* SO_PEERSEC into a 256-byte buffer, reading errno on failure, as peersec. */
static int label(int fd) {
  static char buf[256];
  socklen_t len = sizeof buf;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len) != 0) return -errno;
  return (int)len;
}

static void measure(const char *name, int (*call)(int), int fd, long calls,
                    int repetitions, int last) {
  volatile int sink = 0;
  for (long i = 0; i < calls / 10; i++) sink += call(fd); /* warm up */
  printf("\"%s\":[", name);
  for (int r = 0; r < repetitions; r++) {
    double start = now_ns();
    for (long i = 0; i < calls; i++) sink += call(fd);
    printf("%s%.1f", r ? "," : "", (now_ns() - start) / calls);
  }
  printf("]%s", last ? "" : ",");
  (void)sink;
}

int main(int argc, char **argv) {
  long calls = argc > 1 ? atol(argv[1]) : 1000000;
  int repetitions = argc > 2 ? atoi(argv[2]) : 5;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 1;
  printf("{\"runtime\":\"c\",\"labelResult\":%d,", label(fds[0]));
  measure("credentials", credentials, fds[0], calls, repetitions, 0);
  int labeled = argc > 3 && strcmp(argv[3], "--labeled-fd") == 0;
  measure("label", label, fds[0], calls, repetitions, !labeled);
  if (labeled) {
    int high = fcntl(fds[0], F_DUPFD_CLOEXEC, 100);
    if (high < 0) return 1;
    measure("labelPresent", label, high, calls, repetitions, 1);
  }
  printf("}\n");
  return 0;
}
