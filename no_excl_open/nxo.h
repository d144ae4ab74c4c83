/* nxo: internals of open_no_excl.so shared by the shim, its unit tests and
 * the fuzz target. Everything here works on caller-provided buffers: the shim
 * runs inside arbitrary programs (before main, in threads, maybe from a
 * malloc implementation's own init), so nothing in the hot path allocates,
 * locks or uses stdio. Only the four open entry points are exported from the
 * .so; these helpers are hidden (-fvisibility=hidden). */
#ifndef OPSKIT_NXO_H
#define OPSKIT_NXO_H

#include <stddef.h>

/* Size of every path buffer the shim uses (a cwd plus a relative name). */
#define NXO_PATH_BUF 8192

/* Lexically normalise the absolute path in buf, in place: collapse repeated
 * slashes, drop "." components, let ".." remove the previous component (never
 * above "/"), drop a trailing slash. Returns the new length; a path that does
 * not start with '/' is left alone and 0 is returned. */
size_t nxo_path_normalize(char *buf);

/* Write the normalised absolute form of name into out[outsz]: name itself if
 * it is absolute, else base (an absolute directory) + "/" + name. Returns 0,
 * or -1 when the result does not fit or base is not absolute. */
int nxo_path_absolute(char *out, size_t outsz, const char *base, const char *name);

/* 1 when the normalised absolute path equals prefix or lies below it (the
 * match ends at a component boundary: "/var/log" covers "/var/log/x" but not
 * "/var/logfoo"); prefix "/" covers every absolute path. */
int nxo_path_under(const char *path, const char *prefix);

/* A prefix list is a sequence of NUL-terminated normalised absolute paths
 * ended by an empty string. nxo_paths_parse fills list[listsz] from the
 * colon-separated spec (NO_EXCL_OPEN_PATHS); empty entries are skipped,
 * relative entries are resolved against cwd (skipped when cwd is NULL).
 * Returns the number of entries stored, or -1 when some did not fit (the
 * list then holds those that did, properly terminated). */
int nxo_paths_parse(char *list, size_t listsz, const char *spec, const char *cwd);

/* Append one more absolute path to a list built by nxo_paths_parse (used for
 * the symlink-resolved form of each entry). Returns 0, or -1 if no room. */
int nxo_paths_append(char *list, size_t listsz, const char *path);

/* 1 when path is under any prefix in list. */
int nxo_paths_match(const char *list, const char *path);

/* Remove every entry naming the shim itself (same path, or same file name as
 * self) from an LD_PRELOAD value, in place. Entries are separated by spaces or
 * colons, as ld.so reads them; the other entries keep their order. Returns 1
 * when something was removed (value may now be ""), else 0. */
int nxo_preload_strip(char *value, const char *self);

/* Does the original's rule apply: O_CREAT, O_RDWR access and no O_TRUNC? */
int nxo_rule_applies(int flags);

/* Format the NO_EXCL_OPEN_DEBUG line into buf[bufsz] (NUL-terminated, always
 * ends in "\n", cut short if it does not fit). fn is "open", "openat", ...; dirfd < -1000 means
 * "no dirfd" (open/open64); result is the fd or -1 with err. Returns length. */
size_t nxo_debug_format(char *buf, size_t bufsz, const char *what, const char *fn, int dirfd,
                        const char *path, int flags, unsigned mode, int result, int err);

/* Shim state, for the unit tests only: forget the resolved next symbols and
 * the configuration so that the next call resolves and loads again. */
void nxo_reset_for_tests(void);

#endif
