/* no_excl_open: run a command (logrotate) with open_no_excl.so preloaded.
 *
 * Finds the shim (--shim, $NO_EXCL_OPEN_SHIM, next to this program, or in
 * ../lib relative to it, i.e. PREFIX/lib for PREFIX/bin/no_excl_open, or in
 * ../lib/<multiarch triplet>, where the Debian package puts it),
 * checks that it really loads (ld.so silently ignores a preload it cannot
 * load, which would bring back the very failure this tool exists to stop),
 * sets LD_PRELOAD, NO_EXCL_OPEN_PATHS and NO_EXCL_OPEN_DEBUG, and execs the
 * command. Options end at the first non-option or "--", like env(1) and
 * nice(1), so `no_excl_open logrotate -f conf` passes -f to logrotate.
 *
 * Exit status: the command's own; 1 for bad usage or a missing/broken shim
 * (the command was not started); 126 when the command cannot be executed,
 * 127 when it is not found. */
#include "version.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "no_excl_open"
#define SHIM_NAME "open_no_excl.so"

/* The multiarch triplet (x86_64-linux-gnu) of the Debian lib directory the shim is
 * installed in for PREFIX=/usr; set by packaging/module.mk from the compiler, empty
 * when the compiler has none. */
#ifndef NXO_MULTIARCH
#define NXO_MULTIARCH ""
#endif
#define NXO_NCAND 3

struct opts {
    char paths[8192]; /* joined --paths values; "" when none given */
    int paths_given;
    int debug;
    const char *shim; /* --shim */
};

static void usage(FILE *out)
{
    fputs("Usage: " PROG " [OPTIONS] [--] COMMAND [ARGS...]\n"
          "\n"
          "Run COMMAND with " SHIM_NAME " preloaded: open() with O_CREAT|O_RDWR and no\n"
          "O_TRUNC loses O_EXCL, so logrotate's `create` adopts a log file the application\n"
          "recreated instead of renaming it to *.backup or failing with \"File exists\".\n"
          "Children of COMMAND (postrotate scripts, compressors) run without the shim.\n"
          "\n"
          "Options:\n"
          "  -p, --paths=DIRS  rewrite only opens below these colon-separated directories\n"
          "                    (sets NO_EXCL_OPEN_PATHS; repeatable; default: everywhere)\n"
          "  -d, --debug       one line on stderr per rewritten open (NO_EXCL_OPEN_DEBUG=1)\n"
          "  -s, --shim=FILE   preload FILE instead of searching for " SHIM_NAME "\n"
          "  -h, --help        show this help and exit\n"
          "  -v, --version     show the version and exit\n"
          "\n"
          "The shim is looked for in: --shim, $NO_EXCL_OPEN_SHIM, the directory of this\n"
          "program, and ../lib relative to it (PREFIX/lib when installed in PREFIX/bin).\n"
          "\n"
          "Exit status: COMMAND's; 1 on bad usage or when the shim is missing or cannot be\n"
          "loaded (COMMAND is not started); 126 if COMMAND cannot be executed; 127 if it is\n"
          "not found.\n",
          out);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void add_paths(struct opts *o, const char *v)
{
    size_t have = strlen(o->paths), add = strlen(v);
    /* an empty list would mean "everywhere": most likely an unset variable */
    if (v[strspn(v, ":")] == '\0') fail("invalid value \"%s\" for --paths: no directory given", v);
    if (have + add + 2 > sizeof o->paths) fail("--paths: too long (%s)", v);
    if (have > 0) o->paths[have++] = ':';
    memcpy(o->paths + have, v, add + 1);
    o->paths_given = 1;
}

/* Parse options; returns the index of COMMAND in argv. */
static int parse_args(struct opts *o, int argc, char **argv)
{
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) return i + 1;
        if (a[0] != '-' || a[1] == '\0') return i;
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            const char *val = eq ? eq + 1 : NULL;
            int takes = 0;
            if (nlen == 5 && strncmp(name, "paths", 5) == 0) {
                takes = 1;
            } else if (nlen == 4 && strncmp(name, "shim", 4) == 0) {
                takes = 2;
            } else if (val == NULL && strcmp(name, "debug") == 0) {
                o->debug = 1;
            } else if (val == NULL && strcmp(name, "help") == 0) {
                usage(stdout);
                exit(0);
            } else if (val == NULL && strcmp(name, "version") == 0) {
                printf(PROG " version %s\n", OPSKIT_VERSION);
                exit(0);
            } else {
                fail("unknown flag: %s (try --help)", a);
            }
            if (takes) {
                if (val == NULL) {
                    if (i + 1 >= argc) fail("flag needs an argument: %s", a);
                    val = argv[++i];
                }
                if (takes == 1)
                    add_paths(o, val);
                else
                    o->shim = val;
            }
            i++;
            continue;
        }
        /* bundled short options: -d, -p DIRS, -pDIRS, -s FILE, -h, -v */
        for (const char *c = a + 1; *c != '\0'; c++) {
            if (*c == 'd') {
                o->debug = 1;
            } else if (*c == 'h') {
                usage(stdout);
                exit(0);
            } else if (*c == 'v') {
                printf(PROG " version %s\n", OPSKIT_VERSION);
                exit(0);
            } else if (*c == 'p' || *c == 's') {
                const char *val = c[1] != '\0' ? c + 1 : NULL;
                if (val == NULL) {
                    if (i + 1 >= argc) {
                        char f[3] = {'-', *c, '\0'};
                        fail("flag needs an argument: %s", f);
                    }
                    val = argv[++i];
                }
                if (*c == 'p')
                    add_paths(o, val);
                else
                    o->shim = val;
                break;
            } else {
                char f[3] = {'-', *c, '\0'};
                fail("unknown flag: %s (try --help)", f);
            }
        }
        i++;
    }
    return i;
}

static int is_readable_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, R_OK) == 0;
}

/* Find the shim; its absolute path goes to out. Exits with a clear message
 * when there is none. */
static void find_shim(const struct opts *o, char out[PATH_MAX])
{
    const char *explicit = o->shim, *how = "--shim";
    if (explicit == NULL) {
        const char *e = getenv("NO_EXCL_OPEN_SHIM");
        if (e != NULL && e[0] != '\0') {
            explicit = e;
            how = "NO_EXCL_OPEN_SHIM";
        }
    }

    if (explicit != NULL) {
        if (!is_readable_file(explicit) || realpath(explicit, out) == NULL)
            fail("shim not found: %s (given by %s)", explicit, how);
        return;
    }

    char exe[PATH_MAX], cand[NXO_NCAND][PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        fail("cannot find " SHIM_NAME ": /proc/self/exe: %s; set NO_EXCL_OPEN_SHIM",
             strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) *slash = '\0';
    int nc = 0;
    snprintf(cand[nc++], sizeof cand[0], "%s/%s", exe, SHIM_NAME);
    snprintf(cand[nc++], sizeof cand[0], "%s/../lib/%s", exe, SHIM_NAME);
    /* the Debian layout: /usr/bin/no_excl_open, /usr/lib/<triplet>/open_no_excl.so */
    if (NXO_MULTIARCH[0] != '\0')
        snprintf(cand[nc++], sizeof cand[0], "%s/../lib/%s/%s", exe, NXO_MULTIARCH, SHIM_NAME);
    for (int k = 0; k < nc; k++)
        if (is_readable_file(cand[k]) && realpath(cand[k], out) != NULL) return;
    if (nc == 2)
        fprintf(stderr,
                PROG ": cannot find " SHIM_NAME " (looked for %s and %s); install it or set "
                     "NO_EXCL_OPEN_SHIM\n",
                cand[0], cand[1]);
    else
        fprintf(stderr,
                PROG ": cannot find " SHIM_NAME " (looked for %s, %s and %s); install it or "
                     "set NO_EXCL_OPEN_SHIM\n",
                cand[0], cand[1], cand[2]);
    exit(1);
}

int main(int argc, char **argv)
{
    static struct opts o;
    int cmd = parse_args(&o, argc, argv);
    if (cmd >= argc) fail("missing COMMAND (usage: " PROG " [OPTIONS] [--] COMMAND [ARGS...])");

    char shim[PATH_MAX];
    find_shim(&o, shim);
    if (strpbrk(shim, " :") != NULL)
        fail("shim path %s contains a space or colon, which LD_PRELOAD cannot carry", shim);

    /* ld.so prints a warning and runs the command WITHOUT a preload it cannot
     * load; refuse instead. */
    void *h = dlopen(shim, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) fail("cannot load shim: %s", dlerror());
    /* and it must be the shim: its own openat, not one found in a dependency
     * (any library "loads", and then nothing would be rewritten) */
    void *sym = dlsym(h, "openat");
    Dl_info di;
    char from[PATH_MAX];
    if (sym == NULL || dladdr(sym, &di) == 0 || di.dli_fname == NULL ||
        realpath(di.dli_fname, from) == NULL || strcmp(from, shim) != 0)
        fail("%s is not " SHIM_NAME " (it defines no open/openat of its own)", shim);

    static char preload[PATH_MAX * 3];
    const char *old = getenv("LD_PRELOAD");
    if (old != NULL && old[0] != '\0')
        snprintf(preload, sizeof preload, "%s %s", old, shim);
    else
        snprintf(preload, sizeof preload, "%s", shim);
    if (setenv("LD_PRELOAD", preload, 1) != 0 ||
        (o.paths_given && setenv("NO_EXCL_OPEN_PATHS", o.paths, 1) != 0) ||
        (o.debug && setenv("NO_EXCL_OPEN_DEBUG", "1", 1) != 0))
        fail("setenv: %s", strerror(errno));

    if (o.debug) {
        const char *p = getenv("NO_EXCL_OPEN_PATHS");
        fprintf(stderr, PROG ": exec %s with LD_PRELOAD=%s NO_EXCL_OPEN_PATHS=%s\n", argv[cmd],
                preload, p ? p : "(unset: everywhere)");
    }

    execvp(argv[cmd], argv + cmd);
    int err = errno;
    fprintf(stderr, PROG ": %s: %s\n", argv[cmd], strerror(err));
    return err == ENOENT ? 127 : 126;
}
