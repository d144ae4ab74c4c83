/* shim.c: open_no_excl.so, an LD_PRELOAD shim that drops O_EXCL from
 * open(O_CREAT|O_RDWR) without O_TRUNC, so that logrotate's `create` adopts
 * a log file the application already recreated instead of renaming it to
 * *.backup or failing with EEXIST.
 *
 * Exported: open, open64, openat, openat64 (the entry points that can carry
 * O_CREAT; the _FORTIFY_SOURCE __open_2 family aborts on O_CREAT, so it never
 * needs rewriting). The next definition of each is found lazily with
 * dlsym(RTLD_NEXT) and published with an atomic store, so the hot path is one
 * atomic load and a few flag tests: no allocation, no lock, no stdio; safe in
 * threads and before main. Configuration (NO_EXCL_OPEN_PATHS,
 * NO_EXCL_OPEN_DEBUG) is read once. The constructor removes the shim from
 * LD_PRELOAD so that children (postrotate scripts, compressors, mail) run
 * without it. */
#undef _FORTIFY_SOURCE   /* we define open() ourselves */
#undef _FILE_OFFSET_BITS /* keep open and open64 distinct symbols */
#include "nxo.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define NXO_EXPORT __attribute__((visibility("default")))
#define NO_DIRFD (-10000) /* open/open64: print no dirfd, scope against the cwd */

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

enum nxo_fn { FN_OPEN, FN_OPEN64, FN_OPENAT, FN_OPENAT64, FN_COUNT };
static const char *const fn_names[FN_COUNT] = {"open", "open64", "openat", "openat64"};

/* Next definition of each entry point; NULL until resolved. Written once
 * with the same value by whichever thread gets there first. */
static void *next_fn[FN_COUNT];

/* Set while this thread is inside dlsym() or loading the configuration, so
 * that an open() from there (a malloc replacement reading its config, a
 * signal handler) does not recurse. */
static __thread int nxo_busy __attribute__((tls_model("initial-exec")));

static int open_needs_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* Fallbacks when dlsym cannot find a next definition (or is re-entered):
 * the system call itself, which is what glibc's open does anyway. */
static int sys_openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (open_needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static int sys_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (open_needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static void *fallback_fn(enum nxo_fn i)
{
    return (i == FN_OPEN || i == FN_OPEN64) ? (void *)sys_open : (void *)sys_openat;
}

static void *next(enum nxo_fn i)
{
    void *f = __atomic_load_n(&next_fn[i], __ATOMIC_ACQUIRE);
    if (__builtin_expect(f != NULL, 1)) return f;
    if (nxo_busy) return fallback_fn(i);
    int saved = errno;
    nxo_busy = 1;
    f = dlsym(RTLD_NEXT, fn_names[i]);
    nxo_busy = 0;
    errno = saved;
    if (f == NULL) f = fallback_fn(i);
    __atomic_store_n(&next_fn[i], f, __ATOMIC_RELEASE);
    return f;
}

/* ---- configuration ---- */

enum { CFG_UNLOADED, CFG_LOADING, CFG_READY };
static int cfg_state;
/* Written only by the thread that moved cfg_state to CFG_LOADING, read only
 * after seeing CFG_READY (release/acquire). */
static int cfg_debug;  /* 0 off, 1 rewritten opens, 2 also opens left alone by scope */
static int cfg_scoped; /* NO_EXCL_OPEN_PATHS given: rewrite only below cfg_list */
static char cfg_list[2 * NXO_PATH_BUF];

static void say(const char *msg)
{
    ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
    (void)r;
}

static void cfg_load(void)
{
    const char *dbg = getenv("NO_EXCL_OPEN_DEBUG");
    const char *spec = getenv("NO_EXCL_OPEN_PATHS");

    cfg_debug = 0;
    if (dbg != NULL && dbg[0] != '\0' && strcmp(dbg, "0") != 0)
        cfg_debug = dbg[0] >= '2' && dbg[0] <= '9' ? 2 : 1;

    cfg_scoped = 0;
    cfg_list[0] = '\0';
    /* Unset, empty or only colons: everywhere, as the original. */
    if (spec == NULL || spec[strspn(spec, ":")] == '\0') return;
    cfg_scoped = 1;

    char cwd[PATH_MAX];
    int n = nxo_paths_parse(cfg_list, sizeof cfg_list, spec, getcwd(cwd, sizeof cwd));
    if (n < 0 && cfg_debug)
        say("no_excl_open: NO_EXCL_OPEN_PATHS too long, some entries ignored\n");

    /* Also accept each prefix's symlink-free form: a relative name resolved
     * against getcwd() or /proc/self/fd is always symlink-free. */
    const char *end = cfg_list;
    while (*end != '\0')
        end += strlen(end) + 1;
    for (const char *p = cfg_list; p < end; p += strlen(p) + 1) {
        char real[PATH_MAX];
        if (realpath(p, real) != NULL && strcmp(real, p) != 0 && !nxo_paths_match(cfg_list, real))
            (void)nxo_paths_append(cfg_list, sizeof cfg_list, real);
    }
}

/* 1 when the configuration can be read; 0 only while this same thread is
 * loading it (re-entry), in which case the open is passed through as is. */
static int cfg_ready(void)
{
    int st = __atomic_load_n(&cfg_state, __ATOMIC_ACQUIRE);
    if (__builtin_expect(st == CFG_READY, 1)) return 1;
    if (nxo_busy) return 0;
    int expected = CFG_UNLOADED;
    if (__atomic_compare_exchange_n(&cfg_state, &expected, CFG_LOADING, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        int saved = errno;
        nxo_busy = 1;
        cfg_load();
        nxo_busy = 0;
        errno = saved;
        __atomic_store_n(&cfg_state, CFG_READY, __ATOMIC_RELEASE);
        return 1;
    }
    /* Another thread is loading (threads running before our constructor):
     * it takes microseconds. */
    while (__atomic_load_n(&cfg_state, __ATOMIC_ACQUIRE) != CFG_READY)
        sched_yield();
    return 1;
}

/* ---- scope ---- */

static int fd_path(int fd, char *out, size_t outsz)
{
    char link[32] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    unsigned v = (unsigned)fd;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t l = strlen(link);
    while (n > 0)
        link[l++] = digits[--n];
    link[l] = '\0';
    ssize_t r = readlink(link, out, outsz - 1);
    if (r <= 0 || (size_t)r >= outsz - 1 || out[0] != '/') return -1;
    out[r] = '\0';
    return 0;
}

/* Is path (relative to dirfd) below one of the configured prefixes? When
 * the directory cannot be named (no /proc, cwd gone), the answer is no:
 * outside the configured trees nothing changes. */
static int in_scope(int dirfd, const char *path)
{
    char base[PATH_MAX], abs[NXO_PATH_BUF];
    const char *b = NULL;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD || dirfd == NO_DIRFD) {
            if (getcwd(base, sizeof base) == NULL || base[0] != '/') return 0;
        } else if (fd_path(dirfd, base, sizeof base) < 0) {
            return 0;
        }
        b = base;
    }
    if (nxo_path_absolute(abs, sizeof abs, b, path) < 0) return 0;
    return nxo_paths_match(cfg_list, abs);
}

/* ---- the entry points ---- */

static int do_open(enum nxo_fn i, int dirfd, const char *path, int flags, mode_t mode)
{
    const char *note = NULL;
    int newflags = flags;

    if (__builtin_expect((flags & O_EXCL) && nxo_rule_applies(flags) && path != NULL, 0) &&
        cfg_ready()) {
        int saved = errno;
        if (cfg_scoped && !in_scope(dirfd, path)) {
            if (cfg_debug >= 2) note = "outside NO_EXCL_OPEN_PATHS, O_EXCL kept";
        } else {
            newflags = flags & ~O_EXCL;
            if (cfg_debug) note = "O_EXCL dropped";
        }
        errno = saved;
    }

    int fd;
    if (i == FN_OPEN || i == FN_OPEN64)
        fd = ((open_fn)next(i))(path, newflags, mode);
    else
        fd = ((openat_fn)next(i))(dirfd, path, newflags, mode);

    /* Never write the debug line into the file just opened on fd 2. */
    if (note != NULL && fd != STDERR_FILENO) {
        int err = errno;
        char line[1024];
        size_t n = nxo_debug_format(line, sizeof line, note, fn_names[i], dirfd, path, flags,
                                    (unsigned)mode, fd, err);
        ssize_t r = write(STDERR_FILENO, line, n);
        (void)r;
        errno = err;
    }
    return fd;
}

#define MODE_ARG(flags, last)                                                                      \
    mode_t mode = 0;                                                                               \
    if (open_needs_mode(flags)) {                                                                  \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = (mode_t)va_arg(ap, int);                                                            \
        va_end(ap);                                                                                \
    }

NXO_EXPORT int open(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return do_open(FN_OPEN, NO_DIRFD, path, flags, mode);
}

NXO_EXPORT int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return do_open(FN_OPEN64, NO_DIRFD, path, flags, mode);
}

NXO_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return do_open(FN_OPENAT, dirfd, path, flags, mode);
}

NXO_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    return do_open(FN_OPENAT64, dirfd, path, flags, mode);
}

/* ---- load time ---- */

/* Take ourselves out of LD_PRELOAD (other preloaded libraries stay). */
static void preload_forget_self(void)
{
    const char *v = getenv("LD_PRELOAD");
    Dl_info info;
    char buf[NXO_PATH_BUF];

    if (v == NULL || dladdr((void *)preload_forget_self, &info) == 0 || info.dli_fname == NULL)
        return;
    size_t len = strlen(v);
    /* a long list (many preloads) gets a heap copy: the children must not
     * inherit us whatever the length */
    char *copy = len < sizeof buf ? buf : malloc(len + 1);
    if (copy == NULL) return;
    memcpy(copy, v, len + 1);
    if (nxo_preload_strip(copy, info.dli_fname)) {
        if (copy[0] == '\0')
            unsetenv("LD_PRELOAD");
        else
            setenv("LD_PRELOAD", copy, 1);
    }
    if (copy != buf) free(copy);
}

__attribute__((constructor)) static void nxo_init(void)
{
    for (int i = 0; i < FN_COUNT; i++)
        (void)next((enum nxo_fn)i);
    (void)cfg_ready();
    preload_forget_self();
}

void nxo_reset_for_tests(void)
{
    for (int i = 0; i < FN_COUNT; i++)
        __atomic_store_n(&next_fn[i], NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&cfg_state, CFG_UNLOADED, __ATOMIC_RELEASE);
}
