/* test_rename_hook.c: TEST ONLY (built into build/tests/helpers/, never
 * installed). An LD_PRELOAD helper that makes logrotate's race with an
 * application deterministic: right after every successful rename(2) whose
 * source is $NXO_HOOK_PATH it recreates that file, the way an app that opens,
 * writes and closes its log per line does, and writes one unique line into
 * it. Each line is also appended to $NXO_HOOK_LEDGER (the app's own record
 * of what it wrote), so the test can check that no line was lost.
 *
 *   NXO_HOOK_PATH    absolute path of the log, exactly as logrotate names it
 *   NXO_HOOK_TIMES   recreate at most this many times (default: every rename)
 *   NXO_HOOK_LEDGER  optional file collecting every line written
 *
 * Unlike the real shim it stays in LD_PRELOAD: it must survive the
 * no_excl_open wrapper, which is itself a child of the test. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static int recreated;

static void append_line(const char *path, const char *line, size_t len, mode_t mode)
{
    /* Raw system call: the helper's own open must not go through any shim. */
    int fd =
        (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode);
    if (fd < 0) return;
    ssize_t r = write(fd, line, len);
    (void)r;
    close(fd);
}

static void after_rename(const char *oldpath)
{
    const char *target = getenv("NXO_HOOK_PATH");
    const char *times = getenv("NXO_HOOK_TIMES");
    const char *ledger = getenv("NXO_HOOK_LEDGER");

    if (target == NULL || strcmp(oldpath, target) != 0) return;
    if (times != NULL && *times != '\0' && recreated >= atoi(times)) return;
    recreated++;
    char line[128];
    int n = snprintf(line, sizeof line, "app line recreated-after-rename-%d pid-%d\n", recreated,
                     (int)getpid());
    append_line(target, line, (size_t)n, 0644);
    if (ledger != NULL && *ledger != '\0') append_line(ledger, line, (size_t)n, 0644);
}

EXPORT int rename(const char *oldpath, const char *newpath)
{
    int (*next)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int r = next(oldpath, newpath);
    if (r == 0) {
        int saved = errno;
        after_rename(oldpath);
        errno = saved;
    }
    return r;
}

EXPORT int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    int (*next)(int, const char *, int, const char *) =
        (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    int r = next(olddirfd, oldpath, newdirfd, newpath);
    if (r == 0 && (olddirfd == AT_FDCWD || oldpath[0] == '/')) {
        int saved = errno;
        after_rename(oldpath);
        errno = saved;
    }
    return r;
}
