/* The access lane's guest helper, a small static C program.
 *
 *   accesstool http <socket> <close|keep-alive> <method> <path> [<method> <path>...]
 *       HTTP/1.1 requests over a UNIX stream socket, each path sent as given
 *       (unnormalised): with close, one connection per request
 *       (Connection: close); with keep-alive, all of them one after another
 *       on one connection. Prints one JSON line per request:
 *       {"status":200,"body":"..."} or {"error":"..."} (then stops).
 *       Responses are read by their framing (content-length, chunked, or to
 *       the end of the connection); every read has a 20 s deadline.
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
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

/* A connection's bytes not yet consumed. */
struct reader {
  int fd;
  char data[65536];
  size_t start, end;
};

/* Reads more into the buffer; returns the bytes read (0 at the end, -1 on error). */
static ssize_t fill(struct reader *in) {
  if (in->start > 0) {
    memmove(in->data, in->data + in->start, in->end - in->start);
    in->end -= in->start;
    in->start = 0;
  }
  if (in->end == sizeof in->data) return -1;
  ssize_t got = read(in->fd, in->data + in->end, sizeof in->data - in->end);
  if (got > 0) in->end += got;
  return got;
}

/* The next line (CRLF stripped) into `line`; 0, or -1 at the end or on error. */
static int read_line(struct reader *in, char *line, size_t size) {
  for (;;) {
    char *at = memchr(in->data + in->start, '\n', in->end - in->start);
    if (at) {
      size_t length = at - (in->data + in->start);
      size_t copy = length < size - 1 ? length : size - 1;
      memcpy(line, in->data + in->start, copy);
      line[copy] = 0;
      if (copy && line[copy - 1] == '\r') line[copy - 1] = 0;
      in->start += length + 1;
      return 0;
    }
    if (fill(in) <= 0) return -1;
  }
}

/* Appends up to `count` body bytes to `body` (at most `size` kept); -1 when the connection ended first. */
static int read_exactly(struct reader *in, size_t count, char *body, size_t *have,
                        size_t size) {
  while (count > 0) {
    if (in->start == in->end && fill(in) <= 0) return -1;
    size_t take = in->end - in->start < count ? in->end - in->start : count;
    for (size_t index = 0; index < take; index++) {
      if (*have < size - 1) body[(*have)++] = in->data[in->start + index];
    }
    in->start += take;
    count -= take;
  }
  return 0;
}

static void json_string(const char *text, size_t length) {
  putchar('"');
  for (size_t index = 0; index < length; index++) {
    unsigned char c = text[index];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void error_line(const char *what, int error) {
  printf("{\"error\":\"%s%s%s\"}\n", what, error ? " " : "", error ? strerror(error) : "");
}

static int connect_to(const char *socket_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
  struct timeval deadline = {.tv_sec = 20};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof deadline);
  if (connect(fd, (struct sockaddr *)&address, sizeof address)) {
    int error = errno;
    close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

/* One request on `in`'s connection and its response, as a JSON line; -1 when the connection cannot go on. */
static int exchange(struct reader *in, const char *method, const char *path, int close_after) {
  char request[8192];
  int length = snprintf(request, sizeof request, "%s %s HTTP/1.1\r\nHost: lane\r\n%s\r\n",
                        method, path, close_after ? "Connection: close\r\n" : "");
  if (length <= 0 || length >= (int)sizeof request) return error_line("request too long", 0), -1;
  if (write(in->fd, request, length) != length) return error_line("write", errno), -1;
  char line[8192];
  int status = 0;
  if (read_line(in, line, sizeof line) || sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
    return error_line("no status line", errno), -1;
  }
  long content_length = -1;
  int chunked = 0, closes = 0;
  for (;;) {
    if (read_line(in, line, sizeof line)) return error_line("headers cut short", errno), -1;
    if (line[0] == 0) break;
    if (!strncasecmp(line, "content-length:", 15)) content_length = strtol(line + 15, NULL, 10);
    if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line, "chunked")) chunked = 1;
    if (!strncasecmp(line, "connection:", 11) && strcasestr(line, "close")) closes = 1;
  }
  static char body[4096];
  size_t have = 0;
  int bodiless = !strcmp(method, "HEAD") || status == 204 || status == 304 ||
                 (status >= 100 && status < 200);
  if (bodiless) {
  } else if (chunked) {
    for (;;) {
      if (read_line(in, line, sizeof line)) return error_line("chunk size cut short", errno), -1;
      long size = strtol(line, NULL, 16);
      if (size < 0) return error_line("bad chunk size", 0), -1;
      if (size == 0) {
        do {
          if (read_line(in, line, sizeof line)) return error_line("trailer cut short", errno), -1;
        } while (line[0]);
        break;
      }
      if (read_exactly(in, size, body, &have, sizeof body) ||
          read_line(in, line, sizeof line)) {
        return error_line("chunk cut short", errno), -1;
      }
    }
  } else if (content_length >= 0) {
    if (read_exactly(in, content_length, body, &have, sizeof body)) {
      return error_line("body cut short", errno), -1;
    }
  } else {
    for (;;) {
      if (in->start == in->end) {
        ssize_t got = fill(in);
        if (got == 0) break;
        if (got < 0) return error_line("body", errno), -1;
      }
      read_exactly(in, in->end - in->start, body, &have, sizeof body);
    }
    closes = 1;
  }
  printf("{\"status\":%d,\"body\":", status);
  json_string(body, have);
  printf("}\n");
  fflush(stdout);
  return closes ? 1 : 0;
}

static int http(int argc, char **argv) {
  const char *socket_path = argv[2];
  int keep_alive = !strcmp(argv[3], "keep-alive");
  if (!keep_alive && strcmp(argv[3], "close")) {
    fprintf(stderr, "accesstool http: close or keep-alive, not %s\n", argv[3]);
    return 2;
  }
  static struct reader in;
  in.fd = -1;
  for (int at = 4; at + 1 < argc; at += 2) {
    if (in.fd < 0) {
      in.fd = connect_to(socket_path);
      in.start = in.end = 0;
      if (in.fd < 0) return error_line("connect", errno), 1;
    }
    int last = at + 3 >= argc;
    int result = exchange(&in, argv[at], argv[at + 1], !keep_alive || last);
    if (result < 0) return 1;
    if (!keep_alive || result == 1) {
      if (keep_alive && !last) return error_line("the server closed a keep-alive connection", 0), 1;
      close(in.fd);
      in.fd = -1;
    }
  }
  if (in.fd >= 0) close(in.fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && argc % 2 == 0 && !strcmp(argv[1], "http")) return http(argc, argv);
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
