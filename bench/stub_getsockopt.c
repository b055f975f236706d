/* A getsockopt that never enters the kernel, for the benchmark's second table:
 * loaded with PEERSEC_LIBC (every runtime finds the other libc functions
 * through this library's dependency on libc.so.6), and linked into a second
 * C floor. Without the ~0.3-1 µs of the system call in every sample, what is
 * left is the FFI's cost and peersec's own, a few ns each, which the first
 * table's noise hides.
 *   SO_PEERCRED: a struct ucred from memory.  SO_PEERSEC: -1, errno ENOPROTOOPT.
 * Build: cc -O2 -shared -fPIC -o libpeersec_stub.so stub_getsockopt.c */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int getsockopt(int fd, int level, int optname, void *optval,
               socklen_t *optlen) {
  (void)fd;
  if (level == SOL_SOCKET && optname == SO_PEERCRED &&
      *optlen >= sizeof(struct ucred)) {
    struct ucred cred = {.pid = 4242, .uid = 1000, .gid = 1000};
    memcpy(optval, &cred, sizeof cred);
    *optlen = sizeof cred;
    return 0;
  }
  errno = ENOPROTOOPT;
  return -1;
}
