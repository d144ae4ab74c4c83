/* Unit tests for open_no_excl.so's interposers. The shim's objects are
 * linked into this program (see no_excl_open/module.mk), so every open(),
 * open64(), openat() and openat64() below goes through the shim and reaches
 * libc through dlsym(RTLD_NEXT). Each test that expects success also checks
 * that libc's own open fails on the same call, so it cannot pass without the
 * shim. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../no_excl_open/nxo.h"

#define EXCL_FLAGS (O_CREAT | O_RDWR | O_EXCL)

static char dir[256]; /* fresh temporary directory */
static char cwd_save[4096];

typedef int (*open_fn)(const char *, int, ...);
static open_fn libc_open;

static void path_in(char *out, size_t outsz, const char *name)
{
    snprintf(out, outsz, "%s/%s", dir, name);
}

static void make_file(const char *name, const char *content)
{
    char p[512];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void set_env(const char *name, const char *value)
{
    if (value == NULL)
        unsetenv(name);
    else
        setenv(name, value, 1);
    nxo_reset_for_tests();
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_no_excl_open.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_non_null(getcwd(cwd_save, sizeof cwd_save));
    char p[512];
    path_in(p, sizeof p, "sub");
    assert_int_equal(mkdir(p, 0755), 0);
    path_in(p, sizeof p, "subfoo");
    assert_int_equal(mkdir(p, 0755), 0);
    make_file("exists.log", "old content\n");
    make_file("sub/exists.log", "old content\n");
    make_file("subfoo/exists.log", "old content\n");
    set_env("NO_EXCL_OPEN_PATHS", NULL);
    set_env("NO_EXCL_OPEN_DEBUG", NULL);
    libc_open = (open_fn)dlsym(RTLD_NEXT, "open");
    assert_non_null(libc_open);
    assert_ptr_not_equal(libc_open, (open_fn)open);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    assert_int_equal(chdir(cwd_save), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("NO_EXCL_OPEN_PATHS");
    unsetenv("NO_EXCL_OPEN_DEBUG");
    nxo_reset_for_tests();
    return 0;
}

/* libc alone refuses the call: the success the shim gives is its doing. */
static void assert_libc_refuses(const char *path, int flags)
{
    errno = 0;
    int fd = libc_open(path, flags, 0600);
    if (fd >= 0) close(fd);
    assert_int_equal(fd, -1);
    assert_int_equal(errno, EEXIST);
}

static void assert_fd_keeps_content(int fd)
{
    char buf[64] = {0};
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf - 1), 12);
    assert_string_equal(buf, "old content\n");
    close(fd);
}

enum ep { EP_OPEN, EP_OPEN64, EP_OPENAT, EP_OPENAT64 };

/* Call one entry point. For the *at forms, dirfd is an fd on dir (or
 * AT_FDCWD) and name is relative to it. */
static int call(enum ep e, int dirfd, const char *name, int flags, mode_t mode)
{
    switch (e) {
    case EP_OPEN:
        return open(name, flags, mode);
    case EP_OPEN64:
        return open64(name, flags, mode);
    case EP_OPENAT:
        return openat(dirfd, name, flags, mode);
    case EP_OPENAT64:
        return openat64(dirfd, name, flags, mode);
    }
    return -1;
}

static const enum ep all_eps[] = {EP_OPEN, EP_OPEN64, EP_OPENAT, EP_OPENAT64};

/* ---- the rule, on every entry point ---- */

static void test_excl_dropped_every_entry_point(void **state)
{
    (void)state;
    char abs[512];
    path_in(abs, sizeof abs, "exists.log");
    assert_libc_refuses(abs, EXCL_FLAGS);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    for (size_t i = 0; i < 4; i++) {
        enum ep e = all_eps[i];
        /* absolute path */
        assert_fd_keeps_content(call(e, dfd, abs, EXCL_FLAGS, 0600));
        /* relative: to the cwd for open/open64, to dirfd for the *at forms */
        assert_int_equal(chdir(dir), 0);
        assert_fd_keeps_content(call(e, dfd, "exists.log", EXCL_FLAGS, 0600));
        assert_fd_keeps_content(call(e, dfd, "sub/exists.log", EXCL_FLAGS | O_NOFOLLOW, 0600));
        assert_int_equal(chdir("/"), 0);
        if (e == EP_OPENAT || e == EP_OPENAT64) {
            assert_fd_keeps_content(call(e, dfd, "exists.log", EXCL_FLAGS, 0600));
            assert_fd_keeps_content(call(e, AT_FDCWD, abs, EXCL_FLAGS, 0600));
        }
    }
    close(dfd);
}

static void assert_eexist(enum ep e, int dfd, const char *name, int flags)
{
    errno = 0;
    int fd = call(e, dfd, name, flags, 0600);
    if (fd >= 0) close(fd);
    assert_int_equal(fd, -1);
    assert_int_equal(errno, EEXIST);
}

static void test_other_flags_keep_excl(void **state)
{
    (void)state;
    char abs[512];
    path_in(abs, sizeof abs, "exists.log");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    for (size_t i = 0; i < 4; i++) {
        enum ep e = all_eps[i];
        const char *name = (e == EP_OPENAT || e == EP_OPENAT64) ? "exists.log" : abs;
        assert_eexist(e, dfd, name, O_WRONLY | O_CREAT | O_EXCL);
        assert_eexist(e, dfd, name, O_RDONLY | O_CREAT | O_EXCL);
        assert_eexist(e, dfd, name, O_RDWR | O_CREAT | O_EXCL | O_TRUNC);
        assert_eexist(e, dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC);
        assert_eexist(e, dfd, name, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_TRUNC);
    }
    close(dfd);
    /* O_TRUNC stays O_TRUNC when nothing is rewritten: contents intact */
    int fd = open(abs, O_RDONLY);
    assert_fd_keeps_content(fd);
}

static void test_new_file_mode(void **state)
{
    (void)state;
    mode_t old = umask(0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    static const mode_t modes[] = {0640, 0600, 0444, 0751};
    for (size_t i = 0; i < 4; i++) {
        char name[64], abs[512];
        snprintf(name, sizeof name, "new%zu.log", i);
        path_in(abs, sizeof abs, name);
        enum ep e = all_eps[i];
        const char *arg = (e == EP_OPENAT || e == EP_OPENAT64) ? name : abs;
        int fd = call(e, dfd, arg, EXCL_FLAGS, modes[i]);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_mode & 07777, modes[i]);
        close(fd);
        /* the same mode again with the umask applied, as libc would */
        umask(027);
        snprintf(name, sizeof name, "umask%zu.log", i);
        path_in(abs, sizeof abs, name);
        arg = (e == EP_OPENAT || e == EP_OPENAT64) ? name : abs;
        fd = call(e, dfd, arg, EXCL_FLAGS, 0666);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        close(fd);
        umask(0);
    }
    /* O_TMPFILE carries a mode without O_CREAT */
    int fd = open(dir, O_TMPFILE | O_RDWR, 0604);
    if (fd >= 0) {
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0604);
        close(fd);
    } else {
        assert_true(errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL);
    }
    close(dfd);
    umask(old);
}

static void test_other_flags_kept(void **state)
{
    (void)state;
    char abs[512], link[512];
    path_in(abs, sizeof abs, "exists.log");
    path_in(link, sizeof link, "link.log");
    assert_int_equal(symlink(abs, link), 0);
    for (size_t i = 0; i < 4; i++) {
        enum ep e = all_eps[i];
        /* O_CLOEXEC and O_APPEND survive */
        int fd = call(e, AT_FDCWD, abs, EXCL_FLAGS | O_CLOEXEC | O_APPEND, 0600);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(fd, F_GETFL) & O_APPEND);
        assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        close(fd);
        fd = call(e, AT_FDCWD, abs, EXCL_FLAGS, 0600);
        assert_true(fd >= 0);
        assert_false(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
        /* O_NOFOLLOW survives: with O_EXCL gone, a symlink gives ELOOP
         * (with O_EXCL it would be EEXIST, without O_NOFOLLOW success) */
        errno = 0;
        fd = call(e, AT_FDCWD, link, EXCL_FLAGS | O_NOFOLLOW, 0600);
        assert_int_equal(fd, -1);
        assert_int_equal(errno, ELOOP);
    }
    /* libc on its own says EEXIST for that symlink */
    assert_libc_refuses(link, EXCL_FLAGS | O_NOFOLLOW);
}

static void test_errno_preserved(void **state)
{
    (void)state;
    char abs[512], missing[512];
    path_in(abs, sizeof abs, "exists.log");
    path_in(missing, sizeof missing, "nodir/x.log");
    set_env("NO_EXCL_OPEN_PATHS", dir);
    assert_int_equal(chdir(dir), 0);
    for (size_t i = 0; i < 4; i++) {
        enum ep e = all_eps[i];
        /* success leaves errno alone, even after resolving the cwd */
        errno = EDOM;
        int fd = call(e, AT_FDCWD, "exists.log", EXCL_FLAGS, 0600);
        assert_true(fd >= 0);
        assert_int_equal(errno, EDOM);
        close(fd);
        /* failure reports what the kernel said */
        errno = 0;
        assert_int_equal(call(e, AT_FDCWD, missing, EXCL_FLAGS, 0600), -1);
        assert_int_equal(errno, ENOENT);
        errno = 0;
        assert_int_equal(call(e, AT_FDCWD, "nodir/x.log", EXCL_FLAGS, 0600), -1);
        assert_int_equal(errno, ENOENT);
        errno = 0;
        assert_int_equal(call(e, AT_FDCWD, abs, EXCL_FLAGS | O_DIRECTORY, 0600), -1);
        assert_true(errno == EINVAL || errno == ENOTDIR || errno == EISDIR);
    }
    /* a bad dirfd: EBADF from the kernel, not something of ours */
    errno = 0;
    assert_int_equal(openat(987, "exists.log", EXCL_FLAGS, 0600), -1);
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_int_equal(openat64(987, "exists.log", EXCL_FLAGS, 0600), -1);
    assert_int_equal(errno, EBADF);
}

/* ---- NO_EXCL_OPEN_PATHS ---- */

static void test_scope(void **state)
{
    (void)state;
    char sub[512], top[512], subfoo[512], spec[1200];
    path_in(sub, sizeof sub, "sub");
    path_in(top, sizeof top, "exists.log");
    path_in(subfoo, sizeof subfoo, "subfoo/exists.log");
    snprintf(spec, sizeof spec, "/nonexistent::%s", sub);
    set_env("NO_EXCL_OPEN_PATHS", spec);

    int dtop = open(dir, O_RDONLY | O_DIRECTORY);
    int dsub = open(sub, O_RDONLY | O_DIRECTORY);
    assert_true(dtop >= 0 && dsub >= 0);
    for (size_t i = 0; i < 4; i++) {
        enum ep e = all_eps[i];
        int at = (e == EP_OPENAT || e == EP_OPENAT64);
        /* outside: untouched, EEXIST as without the shim */
        assert_eexist(e, dtop, top, EXCL_FLAGS);
        /* /x/sub must not cover /x/subfoo */
        assert_eexist(e, dtop, subfoo, EXCL_FLAGS);
        assert_int_equal(chdir(dir), 0);
        assert_eexist(e, dtop, "exists.log", EXCL_FLAGS);
        assert_eexist(e, dtop, "subfoo/exists.log", EXCL_FLAGS);
        assert_eexist(e, dtop, "sub/../exists.log", EXCL_FLAGS);
        assert_eexist(e, dtop, "sub/./../subfoo/exists.log", EXCL_FLAGS);
        /* inside */
        assert_fd_keeps_content(call(e, dtop, "sub/exists.log", EXCL_FLAGS, 0600));
        assert_fd_keeps_content(call(e, dtop, "./sub//exists.log", EXCL_FLAGS, 0600));
        assert_fd_keeps_content(call(e, dtop, "subfoo/../sub/exists.log", EXCL_FLAGS, 0600));
        assert_int_equal(chdir(sub), 0);
        if (!at) {
            assert_fd_keeps_content(call(e, -1, "exists.log", EXCL_FLAGS, 0600));
            assert_eexist(e, -1, "../exists.log", EXCL_FLAGS);
        } else {
            /* relative to the dirfd, whatever the cwd */
            assert_eexist(e, dtop, "exists.log", EXCL_FLAGS);
            assert_fd_keeps_content(call(e, dsub, "exists.log", EXCL_FLAGS, 0600));
            assert_eexist(e, dsub, "../exists.log", EXCL_FLAGS);
            assert_fd_keeps_content(call(e, AT_FDCWD, "exists.log", EXCL_FLAGS, 0600));
            assert_int_equal(chdir(dir), 0);
            assert_fd_keeps_content(call(e, dsub, "exists.log", EXCL_FLAGS, 0600));
        }
        assert_int_equal(chdir("/"), 0);
    }
    close(dtop);
    close(dsub);

    /* the directory itself as an exact entry, and a file as an entry */
    char file[512];
    path_in(file, sizeof file, "exists.log");
    set_env("NO_EXCL_OPEN_PATHS", file);
    assert_fd_keeps_content(open(file, EXCL_FLAGS, 0600));
    assert_eexist(EP_OPEN, -1, subfoo, EXCL_FLAGS);

    /* empty or only colons: everywhere, like unset */
    set_env("NO_EXCL_OPEN_PATHS", "::");
    assert_fd_keeps_content(open(subfoo, EXCL_FLAGS, 0600));
    set_env("NO_EXCL_OPEN_PATHS", "");
    assert_fd_keeps_content(open(subfoo, EXCL_FLAGS, 0600));
    /* "/" covers everything */
    set_env("NO_EXCL_OPEN_PATHS", "/");
    assert_fd_keeps_content(open(subfoo, EXCL_FLAGS, 0600));
    /* a relative entry is resolved against the cwd at load time */
    assert_int_equal(chdir(dir), 0);
    set_env("NO_EXCL_OPEN_PATHS", "sub");
    assert_fd_keeps_content(open("sub/exists.log", EXCL_FLAGS, 0600)); /* loads it */
    assert_int_equal(chdir("/"), 0);
    char subfile[512];
    path_in(subfile, sizeof subfile, "sub/exists.log");
    assert_fd_keeps_content(open(subfile, EXCL_FLAGS, 0600));
    assert_eexist(EP_OPEN, -1, top, EXCL_FLAGS);
}

static void test_scope_symlinked_prefix(void **state)
{
    (void)state;
    char sub[512], link[512], via_link[600], real[512];
    path_in(sub, sizeof sub, "sub");
    path_in(link, sizeof link, "loglink");
    assert_int_equal(symlink(sub, link), 0);
    snprintf(via_link, sizeof via_link, "%s/exists.log", link);
    path_in(real, sizeof real, "sub/exists.log");
    set_env("NO_EXCL_OPEN_PATHS", link);
    /* spelled through the symlink, and by its real name */
    assert_fd_keeps_content(open(via_link, EXCL_FLAGS, 0600));
    assert_fd_keeps_content(open(real, EXCL_FLAGS, 0600));
    assert_int_equal(chdir(sub), 0);
    assert_fd_keeps_content(open("exists.log", EXCL_FLAGS, 0600));
    assert_int_equal(chdir("/"), 0);
    char top[512];
    path_in(top, sizeof top, "exists.log");
    assert_eexist(EP_OPEN, -1, top, EXCL_FLAGS);
}

/* ---- NO_EXCL_OPEN_DEBUG ---- */

/* Run f with stderr redirected to a file; return what was written. */
static void capture_stderr(void (*f)(void), char *out, size_t outsz)
{
    char p[512];
    path_in(p, sizeof p, "stderr.txt");
    int cap = libc_open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(cap >= 0);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(cap, 2);
    f();
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(cap, out, outsz - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(cap);
}

static void debug_opens(void)
{
    char abs[512];
    path_in(abs, sizeof abs, "exists.log");
    int fd = open(abs, EXCL_FLAGS | O_NOFOLLOW | O_CLOEXEC, 0600);
    close(fd);
    fd = open(abs, O_RDONLY); /* not a candidate: silent */
    close(fd);
    fd = open(abs, O_RDWR | O_CREAT, 0600); /* no O_EXCL to drop: silent */
    close(fd);
    fd = openat(AT_FDCWD, "/nonexistent-dir/x", EXCL_FLAGS, 0640);
    (void)fd;
}

static void test_debug_lines(void **state)
{
    (void)state;
    char out[4096], want[1200];
    set_env("NO_EXCL_OPEN_DEBUG", "1");
    capture_stderr(debug_opens, out, sizeof out);
    snprintf(want, sizeof want,
             "no_excl_open: open(\"%s/exists.log\", "
             "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600): O_EXCL dropped = 3\n"
             "no_excl_open: openat(AT_FDCWD, \"/nonexistent-dir/x\", O_RDWR|O_CREAT|O_EXCL, "
             "0640): O_EXCL dropped = -1 ENOENT\n",
             dir);
    /* fd numbers depend on what is open: compare with the fd masked out */
    char *p = strstr(out, "dropped = ");
    assert_non_null(p);
    assert_true(p[10] >= '0' && p[10] <= '9');
    p[10] = '3';
    assert_string_equal(out, want);

    /* 0 is off */
    set_env("NO_EXCL_OPEN_DEBUG", "0");
    capture_stderr(debug_opens, out, sizeof out);
    assert_string_equal(out, "");
}

static void scoped_out_open(void)
{
    char abs[512];
    path_in(abs, sizeof abs, "exists.log");
    int fd = open(abs, EXCL_FLAGS, 0600);
    assert_int_equal(fd, -1);
}

static void test_debug_level2_scope(void **state)
{
    (void)state;
    char out[4096];
    set_env("NO_EXCL_OPEN_PATHS", "/nonexistent");
    set_env("NO_EXCL_OPEN_DEBUG", "1");
    capture_stderr(scoped_out_open, out, sizeof out);
    assert_string_equal(out, "");
    set_env("NO_EXCL_OPEN_DEBUG", "2");
    capture_stderr(scoped_out_open, out, sizeof out);
    assert_non_null(strstr(out, "outside NO_EXCL_OPEN_PATHS, O_EXCL kept = -1 EEXIST\n"));
}

/* When stderr is closed the rewritten open may get fd 2 itself: the debug
 * line must not end up in that file. */
static void test_debug_never_into_opened_fd2(void **state)
{
    (void)state;
    char abs[512], buf[64] = {0};
    path_in(abs, sizeof abs, "exists.log");
    set_env("NO_EXCL_OPEN_DEBUG", "1");
    int saved = dup(2);
    close(2);
    int fd = open(abs, EXCL_FLAGS, 0600);
    int fd_was = fd;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(fd_was, 2);
    assert_int_equal(n, 12);
    assert_string_equal(buf, "old content\n");
}

/* ---- threads, lazy resolution ---- */

static void *thread_opens(void *arg)
{
    const char *abs = arg;
    for (int i = 0; i < 300; i++) {
        int fd = (i % 2) ? open(abs, EXCL_FLAGS, 0600) : openat64(AT_FDCWD, abs, EXCL_FLAGS, 0600);
        if (fd < 0) return (void *)1;
        close(fd);
    }
    return NULL;
}

static void test_threads_first_use(void **state)
{
    (void)state;
    static char abs[512];
    path_in(abs, sizeof abs, "exists.log");
    char spec[600];
    snprintf(spec, sizeof spec, "/a:/b:%s", dir);
    for (int round = 0; round < 5; round++) {
        /* nothing resolved, nothing loaded: all threads race for both */
        set_env("NO_EXCL_OPEN_PATHS", spec);
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            assert_int_equal(pthread_create(&t[i], NULL, thread_opens, abs), 0);
        for (int i = 0; i < 8; i++) {
            void *r;
            assert_int_equal(pthread_join(t[i], &r), 0);
            assert_null(r);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_excl_dropped_every_entry_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_flags_keep_excl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_flags_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scope_symlinked_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_level2_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_never_into_opened_fd2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_first_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
