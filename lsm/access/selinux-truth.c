/* The access lane's SELinux ground truth: libselinux's own
 * selinux_check_access() (the AVC, class mapping, permissive handling and
 * audit rules of libselinux 3.x), linked against the host's libselinux.so.1
 * and run in the guest next to it.
 *
 *   selinux-truth < questions      one "<scon> <tcon> <class> <perm>" a line
 *
 * Prints one JSON line per question: rc (0 allowed, -1 refused), errno, and
 * the AVC line libselinux logged for it (null when it logged none).
 * /etc/selinux/config must exist: without it libselinux calls SELinux
 * disabled and allows everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* From <selinux/selinux.h> (not installed on the host: declared here). */
union selinux_callback {
  int (*func_log)(int type, const char *fmt, ...);
  void *any;
};
#define SELINUX_CB_LOG 0
#define SELINUX_AVC 3
extern void selinux_set_callback(int type, union selinux_callback callback);
extern int selinux_check_access(const char *scon, const char *tcon, const char *tclass,
                                const char *perm, void *auditdata);
extern int security_deny_unknown(void);
extern int is_selinux_enabled(void);

static char logged[8192];

static int log_line(int type, const char *format, ...) {
  if (type != SELINUX_AVC) return 0;
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(logged, sizeof logged, format, arguments);
  va_end(arguments);
  return 0;
}

static void json_string(const char *text) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

int main(void) {
  union selinux_callback callback = {.func_log = log_line};
  selinux_set_callback(SELINUX_CB_LOG, callback);
  printf("{\"enabled\":%d,\"denyUnknown\":%d}\n", is_selinux_enabled(), security_deny_unknown());
  char line[16384], scon[4096], tcon[4096], tclass[256], perm[256];
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "%4095s %4095s %255s %255s", scon, tcon, tclass, perm) != 4) continue;
    logged[0] = 0;
    errno = 0;
    int rc = selinux_check_access(scon, tcon, tclass, perm, NULL);
    int error = rc ? errno : 0;
    size_t length = strlen(logged);
    while (length && logged[length - 1] == '\n') logged[--length] = 0;
    printf("{\"scon\":");
    json_string(scon);
    printf(",\"tcon\":");
    json_string(tcon);
    printf(",\"class\":");
    json_string(tclass);
    printf(",\"perm\":");
    json_string(perm);
    printf(",\"rc\":%d,\"errno\":%d,\"avc\":", rc, error);
    if (length) json_string(logged);
    else printf("null");
    printf("}\n");
    fflush(stdout);
  }
  return 0;
}
