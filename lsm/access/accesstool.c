/* The access lane's guest helper, a small static C program.
 *
 *   accesstool http <socket> <method> <path>
 *       one HTTP/1.1 request over a UNIX stream socket (the path sent as
 *       given, unnormalised); prints the response's status code
 *   accesstool open <path> <r|w>
 *       the kernel's own decision on a real file: prints 0 when open()
 *       succeeds, else the errno (AppArmor's file rules)
 *   accesstool open-as-nobody <path> <r|w>
 *       the same as nobody (Smack: root's CAP_MAC_OVERRIDE bypasses it)
 *   accesstool smack-label <path> <label>
 *       sets a file's Smack label (security.SMACK64)
 *   accesstool smack-get <path>
 *       prints a file's Smack label
 *   accesstool access2 <subject> <object> <access>
 *       libsmack's smack_have_access, done the same way: one transaction on
 *       /sys/fs/smackfs/access2; prints 1, 0, or "error <errno>"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

static int http(const char *socket_path, const char *method, const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
  if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address)) {
    printf("error %d\n", errno);
    return 1;
  }
  char request[8192];
  int length = snprintf(request, sizeof request,
                        "%s %s HTTP/1.1\r\nHost: lane\r\nConnection: close\r\n\r\n",
                        method, path);
  if (write(fd, request, length) != length) {
    printf("error %d\n", errno);
    return 1;
  }
  char response[4096];
  size_t have = 0;
  ssize_t got;
  while (have < sizeof response - 1 &&
         (got = read(fd, response + have, sizeof response - 1 - have)) > 0) {
    have += got;
  }
  response[have] = 0;
  int status = 0;
  if (sscanf(response, "HTTP/1.%*d %d", &status) != 1) {
    printf("error bad-response\n");
    return 1;
  }
  printf("%d\n", status);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "http")) return http(argv[2], argv[3], argv[4]);
  if (argc == 4 && (!strcmp(argv[1], "open") || !strcmp(argv[1], "open-as-nobody"))) {
    if (!strcmp(argv[1], "open-as-nobody") &&
        (setgroups(0, NULL) || setgid(65534) || setuid(65534))) {
      perror("dropping root");
      return 1;
    }
    int fd = open(argv[2], (argv[3][0] == 'w' ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    printf("%d\n", fd < 0 ? errno : 0);
    if (fd >= 0) close(fd);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "smack-label")) {
    if (setxattr(argv[2], "security.SMACK64", argv[3], strlen(argv[3]), 0)) {
      perror("setxattr");
      return 1;
    }
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "smack-get")) {
    char label[512] = {0};
    if (getxattr(argv[2], "security.SMACK64", label, sizeof label - 1) < 0) {
      printf("error %d\n", errno);
      return 0;
    }
    printf("%s\n", label);
    return 0;
  }
  if (argc == 5 && !strcmp(argv[1], "access2")) {
    char request[1024], reply[8] = {0};
    int length = snprintf(request, sizeof request, "%s %s %s", argv[2], argv[3], argv[4]);
    int fd = open("/sys/fs/smackfs/access2", O_RDWR | O_CLOEXEC);
    if (fd < 0 || write(fd, request, length) != length || read(fd, reply, sizeof reply - 1) < 1) {
      printf("error %d\n", errno);
      return 0;
    }
    printf("%c\n", reply[0]);
    return 0;
  }
  fprintf(stderr, "usage: accesstool http|open|smack-label|access2 ...\n");
  return 2;
}
