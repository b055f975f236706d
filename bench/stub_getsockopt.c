/* A getsockopt that never enters the kernel, for the benchmark's second table:
 * loaded with PEERSEC_LIBC (every runtime finds the other libc functions
 * through this library's dependency on libc.so.6), and linked into a second
 * C floor. Without the ~0.3-1 µs of the system call in every sample, what is
 * left is the FFI's cost and peersec's own, a few ns each, which the first
 * table's noise hides.
 *   SO_PEERCRED: a struct ucred from memory.
 *   SO_PEERSEC: on fds from 100 up, an SELinux context (with the NUL SELinux
 *   counts, ERANGE and the length needed when it does not fit), as a labeled
 *   peer; on lower fds -1 with errno ENOPROTOOPT, as a kernel without an LSM.
 * Build: cc -O2 -shared -fPIC -o libpeersec_stub.so stub_getsockopt.c */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int getsockopt(int fd, int level, int optname, void *optval,
               socklen_t *optlen) {
  if (level == SOL_SOCKET && optname == SO_PEERCRED &&
      *optlen >= sizeof(struct ucred)) {
    struct ucred cred = {.pid = 4242, .uid = 1000, .gid = 1000};
    memcpy(optval, &cred, sizeof cred);
    *optlen = sizeof cred;
    return 0;
  }
  if (level == SOL_SOCKET && optname == SO_PEERSEC && fd >= 100) {
    static const char label[] = "system_u:system_r:httpd_t:s0";
    if (*optlen < sizeof label) {
      *optlen = sizeof label;
      errno = ERANGE;
      return -1;
    }
    memcpy(optval, label, sizeof label);
    *optlen = sizeof label;
    return 0;
  }
  errno = ENOPROTOOPT;
  return -1;
}
