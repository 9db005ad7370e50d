/*
 * tmpdir.h - temporary directory trees for tests, made and removed without a shell.
 *
 * tst_tmpdir_make() creates a fresh private directory /tmp/cmc-<tag>-XXXXXX (mkdtemp) and
 * writes its path into the caller's buffer. tst_tmpdir_remove() deletes a tree bottom-up
 * with unlinkat(); it never follows a symbolic link out of the tree and never runs a
 * command, so a path with quotes or spaces is as safe as any other.
 *
 * Both return 0 on success and -1 on failure (errno set); removing a path that does not
 * exist is a success. Single-threaded use only, like the tests that call them.
 */
#ifndef CMC_TEST_SUPPORT_TMPDIR_H
#define CMC_TEST_SUPPORT_TMPDIR_H

#include <stddef.h>

int tst_tmpdir_make(const char *tag, char *out, size_t cap);
int tst_tmpdir_remove(const char *path);

#endif
