/*
 * tmpdir.c - see tmpdir.h. Removal walks the tree with directory file descriptors
 * (openat/fdopendir/unlinkat) so a deep tree needs no path buffers.
 */
#include "tests/support/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tst_tmpdir_make(const char *tag, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/tmp/cmc-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) == NULL ? -1 : 0;
}

/* Empties the directory open as `fd` (which this function closes), depth first. */
static int empty_dir(int fd)
{
    DIR *d = fdopendir(fd);
    struct dirent *en;
    int rc = 0;
    if (d == NULL) {
        close(fd);
        return -1;
    }
    while ((en = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(en->d_name, ".") == 0 || strcmp(en->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), en->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = -1;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), en->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (sub < 0 || empty_dir(sub) != 0 || unlinkat(dirfd(d), en->d_name, AT_REMOVEDIR) != 0)
                rc = -1;
        } else if (unlinkat(dirfd(d), en->d_name, 0) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

int tst_tmpdir_remove(const char *path)
{
    struct stat st;
    int fd;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0 || empty_dir(fd) != 0)
        return -1;
    return rmdir(path);
}
