/***
 * Durable files: what a journal (assesskit.journal) needs below Lua's io library: data
 * flushed to the disk (fdatasync), an exclusive lock held while a process uses a file
 * (flock), a torn tail cut off (ftruncate). Each takes a file handle from `io.open`.
 * @submodule assesskit.core
 */
/* flock(2) is BSD, not POSIX: ask glibc for it (the build defines _POSIX_C_SOURCE). */
#define _DEFAULT_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "util.h"

/* The open FILE* of the Lua file handle at `idx`; raises when it is not one or is closed. */
static FILE *check_file(lua_State *L, int idx)
{
  FILE *f = ak_tofile(L, idx);
  if (f == NULL)
    luaL_argerror(L, idx, "attempt to use a closed file");
  return f;
}

/* nil, "<what>: <strerror>", "io" (or `kind`) */
static int fail(lua_State *L, const char *what, int err, const char *kind)
{
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(err));
  lua_pushstring(L, kind);
  return 3;
}

/***
 * Make what was written to a file durable: flush Lua's buffer, then `fdatasync` it.
 * @function file_sync
 * @tparam file f a file handle from `io.open`
 * @treturn[1] boolean true
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind `"io"`
 */
static int fileio_sync(lua_State *L)
{
  FILE *f = check_file(L, 1);
  if (fflush(f) != 0)
    return fail(L, "flush", errno, "io");
  while (fdatasync(fileno(f)) != 0) {
    if (errno != EINTR)
      return fail(L, "fdatasync", errno, "io");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Make a directory's entries durable (after a file was created in it): `fsync` of the
 * directory.
 * @function dir_sync
 * @string path the directory
 * @treturn[1] boolean true
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind `"io"`
 */
static int fileio_dir_sync(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  int fd, rc, err = 0;
  do {
    fd = open(path, O_RDONLY | O_DIRECTORY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return fail(L, path, errno, "io");
  do {
    rc = fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    err = errno;
  close(fd);
  if (rc != 0)
    return fail(L, path, err, "io");
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Take an exclusive lock on a file without waiting (`flock`, `LOCK_EX | LOCK_NB`). The lock
 * belongs to this open file: another `io.open` of the same file, in this process or another,
 * cannot take it; it goes when the handle is closed or the process ends. The descriptor is
 * marked close-on-exec first, so that a command the process starts (`os.execute`,
 * `io.popen`) neither inherits the file nor keeps the lock after the handle is closed.
 * @function file_lock
 * @tparam file f a file handle from `io.open`
 * @treturn[1] boolean true
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind: `"busy"` (someone else holds it) or `"io"`
 */
static int fileio_lock(lua_State *L)
{
  FILE *f = check_file(L, 1);
  int flags = fcntl(fileno(f), F_GETFD);
  if (flags < 0 || fcntl(fileno(f), F_SETFD, flags | FD_CLOEXEC) != 0)
    return fail(L, "close-on-exec", errno, "io");
  while (flock(fileno(f), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return fail(L, "lock", errno, "busy");
    if (errno != EINTR)
      return fail(L, "lock", errno, "io");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Cut a file to `size` bytes (after flushing Lua's buffer).
 * @function file_truncate
 * @tparam file f a file handle from `io.open`, open for writing
 * @int size the new length in bytes (>= 0)
 * @treturn[1] boolean true
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind `"io"`
 */
static int fileio_truncate(lua_State *L)
{
  FILE *f = check_file(L, 1);
  lua_Number n = luaL_checknumber(L, 2);
  off_t size = (off_t)n;
  luaL_argcheck(L, n >= 0 && (lua_Number)size == n, 2, "a whole number of bytes >= 0 expected");
  if (fflush(f) != 0)
    return fail(L, "flush", errno, "io");
  while (ftruncate(fileno(f), size) != 0) {
    if (errno != EINTR)
      return fail(L, "truncate", errno, "io");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/***
 * Whether a file is a regular file on disk, not a FIFO, a pipe, a terminal, a socket or a
 * device (`fstat`): what a journal can be (reading one of the others may never end).
 * @function file_is_regular
 * @tparam file f a file handle from `io.open`
 * @treturn[1] boolean
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind `"io"`
 */
static int fileio_is_regular(lua_State *L)
{
  FILE *f = check_file(L, 1);
  struct stat st;
  if (fstat(fileno(f), &st) != 0)
    return fail(L, "stat", errno, "io");
  lua_pushboolean(L, S_ISREG(st.st_mode));
  return 1;
}

static const luaL_Reg fileio_funcs[] = {
  {"file_sync", fileio_sync},
  {"dir_sync", fileio_dir_sync},
  {"file_lock", fileio_lock},
  {"file_truncate", fileio_truncate},
  {"file_is_regular", fileio_is_regular},
  {NULL, NULL}
};

void fileio_open(lua_State *L)
{
  luaL_setfuncs(L, fileio_funcs, 0);
}
