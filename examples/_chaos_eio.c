// An LD_PRELOAD shim for examples/chaos.ts (the disk-eio fault): while the file named by
// $TSRAFT_EIO_TRIGGER exists, write(), pwrite(), writev(), fsync() and fdatasync() on files
// under $TSRAFT_EIO_DIR fail with EIO. Built with `cc -shared -fPIC` at the start of a run.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int failing(int fd) {
  const char *trigger = getenv("TSRAFT_EIO_TRIGGER");
  const char *dir = getenv("TSRAFT_EIO_DIR");
  if (trigger == NULL || dir == NULL || access(trigger, F_OK) != 0) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = 0;
  return strncmp(path, dir, strlen(dir)) == 0;
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
  REAL(write);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd, buf, count);
}
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
  REAL(pwrite64);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd, buf, count, offset);
}
ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
  REAL(pwrite);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd, buf, count, offset);
}
ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
  REAL(writev);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd, iov, iovcnt);
}
int fsync(int fd) {
  REAL(fsync);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd);
}
int fdatasync(int fd) {
  REAL(fdatasync);
  if (failing(fd)) { errno = EIO; return -1; }
  return real(fd);
}
